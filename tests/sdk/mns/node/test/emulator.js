'use strict';
// Starts the built alicom-emu binary for the Node MNS real-SDK suite and stops it again.
//   binary: $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu
//   config: <repo>/tests/fixtures/two-tenants.toml, ephemeral ports, ready-file in a tmp dir
// The MNS endpoint is the ready-file's "mns"; `emu.info.mns` is undefined when the binary has no
// MNS service (the suite then skips).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const REPO = path.resolve(__dirname, '..', '..', '..', '..', '..');
const CONFIG = path.join(REPO, 'tests', 'fixtures', 'two-tenants.toml');
const READY_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 10000;

function binary() {
  return process.env.ALICOM_EMU_BIN || path.join(REPO, 'target', 'release', 'alicom-emu');
}

function readLog(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    return `<cannot read ${file}: ${e.message}>`;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startEmulator() {
  const bin = binary();
  if (!fs.existsSync(bin)) {
    throw new Error(`emulator binary not found: ${bin} (build it, or set ALICOM_EMU_BIN)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alicom-emu-mns-node-'));
  const readyFile = path.join(dir, 'ready.json');
  const logFile = path.join(dir, 'emulator.log');
  const logFd = fs.openSync(logFile, 'w');
  const args = ['--config', CONFIG, '--ephemeral-ports', '--ready-file', readyFile];
  const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);

  let exit = null;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let info = null;
  while (Date.now() < deadline) {
    if (exit) {
      throw new Error(`emulator exited (${JSON.stringify(exit)}) before it was ready\n--- log ---\n${readLog(logFile)}`);
    }
    if (fs.existsSync(readyFile)) {
      try {
        info = JSON.parse(fs.readFileSync(readyFile, 'utf8'));
        break;
      } catch (_) {
        // written atomically; be lenient anyway
      }
    }
    await sleep(50);
  }
  if (!info) {
    child.kill('SIGKILL');
    throw new Error(`emulator not ready within ${READY_TIMEOUT_MS} ms\n--- log ---\n${readLog(logFile)}`);
  }

  return {
    info,
    log: () => readLog(logFile),
    mnsEndpoint: info.mns ? info.mns.replace(/\/$/, '') : undefined,
    adminUrl: info.admin ? info.admin.replace(/\/$/, '') : undefined,
    popEndpoint: info.pop ? info.pop.replace(/\/$/, '') : undefined,
    accessKeyId: info.access_key_id || 'testAK',
    accessKeySecret: info.access_key_secret || 'testSecret',
    uid: info.uid || '1234567890123456',
    async stop() {
      if (exit) {
        throw new Error(`emulator died during the tests (${JSON.stringify(exit)})\n--- log ---\n${readLog(logFile)}`);
      }
      child.kill('SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS);
      });
      const res = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (!res) {
        child.kill('SIGKILL');
        throw new Error(`emulator did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n--- log ---\n${readLog(logFile)}`);
      }
      if (res.code !== 0) {
        throw new Error(`emulator exited with ${JSON.stringify(res)} after SIGTERM (expected code 0)\n--- log ---\n${readLog(logFile)}`);
      }
    },
  };
}

module.exports = { startEmulator };
