'use strict';
// Starts the built alicom-emu binary for the Web SDK suite and stops it again.
//   binary: $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu (never built here)
//   config: optional TOML text, written to <tmp>/config.toml and passed with --config
//   ports:  --ephemeral-ports, read back from <tmp>/ready.json
//   log:    <tmp>/emulator.log (stdout + stderr), RUST_LOG from the environment or `rustLog`
//   recordings: <tmp>/recordings (ALICOM_EMU_MEDIA__RECORDINGS_DIR, unless already set)

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const REPO = path.resolve(__dirname, '..', '..', '..');
const READY_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 10000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

// eslint-disable-next-line no-control-regex
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

async function http(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch (_) {
    json = undefined;
  }
  if (!res.ok) throw new Error(`${method} ${url} -> HTTP ${res.status}: ${text}`);
  return json === undefined ? text : json;
}

async function startEmulator({ config = '', rustLog } = {}) {
  const bin = binary();
  if (!fs.existsSync(bin)) {
    throw new Error(`emulator binary not found: ${bin} (run cargo build --release, or set ALICOM_EMU_BIN)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alicom-emu-web-'));
  const readyFile = path.join(dir, 'ready.json');
  const logFile = path.join(dir, 'emulator.log');
  const args = ['--ephemeral-ports', '--ready-file', readyFile];
  if (config) {
    const cfgFile = path.join(dir, 'config.toml');
    fs.writeFileSync(cfgFile, config);
    args.unshift('--config', cfgFile);
  }
  const env = { ...process.env };
  if (rustLog) env.RUST_LOG = rustLog;
  // Recordings (VoIP→PSTN calls are recorded by default) go to the scenario's own tmp directory,
  // removed with it; the emulator's default is a fresh $TMPDIR/alicom-emu-recordings-<pid> that
  // nobody removes.
  if (!env.ALICOM_EMU_MEDIA__RECORDINGS_DIR) env.ALICOM_EMU_MEDIA__RECORDINGS_DIR = path.join(dir, 'recordings');
  const logFd = fs.openSync(logFile, 'w');
  const child = spawn(bin, args, { cwd: dir, env, stdio: ['ignore', logFd, logFd] });
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
    if (exit) throw new Error(`emulator exited (${JSON.stringify(exit)}) before it was ready\n--- log ---\n${readLog(logFile)}`);
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

  const admin = info.admin.replace(/\/$/, '');
  const pop = new URL(info.pop);
  const emu = {
    info,
    dir,
    pid: child.pid,
    logFile,
    args,
    log: () => stripAnsi(readLog(logFile)),
    popEndpoint: `http://${pop.host}`,
    adminUrl: admin,
    accessKeyId: info.access_key_id || 'testAK',
    accessKeySecret: info.access_key_secret || 'testSecret',
    get exit() {
      return exit;
    },
    admin: {
      get: (p) => http('GET', `${admin}${p}`),
      post: (p, body) => http('POST', `${admin}${p}`, body === undefined ? {} : body),
      put: (p, body) => http('PUT', `${admin}${p}`, body === undefined ? {} : body),
      devices: async () => (await http('GET', `${admin}/admin/devices`)).devices,
      events: async (rtcId, limit = 5000) =>
        (await http('GET', `${admin}/admin/events?limit=${limit}${rtcId ? `&rtcId=${encodeURIComponent(rtcId)}` : ''}`)).events,
      advanceClock: (ms) => http('POST', `${admin}/admin/clock/advance`, { ms }),
    },
    /** SIGTERM, then SIGKILL after 10 s. Resolves to the exit status; never throws. */
    async stop() {
      if (exit) return exit;
      child.kill('SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS);
      });
      const res = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (!res) {
        child.kill('SIGKILL');
        await exited;
        return { ...exit, note: `did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM` };
      }
      return res;
    },
  };
  return emu;
}

module.exports = { startEmulator, REPO };
