'use strict';
// The scaffolding every test file uses:
//   const s = webSdkSuite('init.test.js');   // one Chromium for the file (before/after)
//   s.scenario('name', {config, timeout, description}, async (ctx) => { ... });
// Each scenario gets its own emulator (ephemeral ports, `config` TOML merged over the defaults)
// and its own harness server, both stopped when it ends, and writes its part of the report.
//
// ctx:
//   ctx.emu, ctx.harness                 the running emulator (lib/emulator.js) and page server
//   await ctx.device(name, {deviceId, rtcId, localStorage})
//                                        a new browser context with the harness page; creates the
//                                        account (AddRtcAccount(deviceId)) unless rtcId is given;
//                                        `localStorage` ({key: value}) is set before any page script
//                                        runs (e.g. {ARTC_SIGV: "2"}, read when the SDK loads)
//   await ctx.page(name, url, {width, height})
//                                        a plain page (no SDK) in its own context, e.g. the console
//   await ctx.init(dev)                  harness.init({rtcId, deviceId}) in the page
//   await ctx.waitFor(dev, name, opts)   see lib/browser.js waitForEvent
//   await ctx.step(label, async () => {...})   a named, timed check for the report
//   ctx.timing(label, ms), ctx.note(text)
//   ctx.atEnd(async () => {...})         runs when the scenario ends, pass or fail (report notes)
//   ctx.failed()                         in an end hook: whether the scenario failed

const fs = require('node:fs');
const crypto = require('node:crypto');
const path = require('node:path');
const { test, before, after } = require('node:test');
const { startEmulator, REPO } = require('./emulator');
const { startHarness } = require('../harness/server');
const { launchBrowser, waitForEvent, pageEvents, pageState } = require('./browser');
const { writeScenario } = require('./report');

const DEFAULT_RUST_LOG = 'info,emu_gateway=debug,emu_pop=debug';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let environmentCache;
function environment(browser) {
  if (!environmentCache) {
    const sdkPkg = require('aliyun-voip-web-sdk/package.json');
    const bundle = fs.readFileSync(require.resolve('aliyun-voip-web-sdk/build/voip-web-sdk.js'));
    environmentCache = {
      sdk: `aliyun-voip-web-sdk@${sdkPkg.version}`,
      sdkSha256: crypto.createHash('sha256').update(bundle).digest('hex'),
      puppeteer: require('puppeteer-core/package.json').version,
      node: process.version,
      emulatorBinary: process.env.ALICOM_EMU_BIN || path.join(REPO, 'target', 'release', 'alicom-emu'),
    };
  }
  return { ...environmentCache, browser: browser ? browser.version : null, chromiumArgs: browser ? browser.args : null };
}

function webSdkSuite(file) {
  let browser = null;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
  });

  function scenario(name, opts, fn) {
    const { config = '', timeout = 120000, description = '' } = opts;
    test(name, { timeout }, async () => {
      const startedAt = new Date();
      const result = {
        scenario: name,
        file,
        description,
        status: 'fail',
        startedAt: startedAt.toISOString(),
        durationMs: 0,
        config,
        steps: [],
        timings: {},
        notes: [],
        devices: [],
      };
      const devices = [];
      const pages = [];
      let emu = null;
      let harness = null;
      let failure = null;
      const endHooks = [];
      const ctx = {
        get emu() {
          return emu;
        },
        get harness() {
          return harness;
        },
        newDeviceId: (prefix) => `${prefix}-${crypto.randomUUID().slice(0, 8)}`,
        async device(devName, { deviceId, rtcId, localStorage } = {}) {
          const d = await browser.openDevice(devName, harness.url, { localStorage });
          d.deviceId = deviceId || ctx.newDeviceId(`web-${devName}`);
          d.rtcId = rtcId || (await harness.addAccount(d.deviceId));
          devices.push(d);
          return d;
        },
        /** A plain page (no SDK) at `url`, e.g. the console; closed when the scenario ends. */
        async page(pageName, url, size) {
          const p = await browser.openPage(pageName, url, size);
          pages.push(p);
          return p;
        },
        async init(d) {
          d.initAt = Date.now();
          await d.page.evaluate((o) => window.harness.init(o), { rtcId: d.rtcId, deviceId: d.deviceId });
        },
        waitFor: (d, evName, o) => waitForEvent(d, evName, o),
        events: (d) => pageEvents(d),
        state: (d) => pageState(d),
        async step(label, body) {
          const st = { name: label, status: 'running', durationMs: 0 };
          result.steps.push(st);
          const t = Date.now();
          try {
            const v = await body();
            st.status = 'pass';
            return v;
          } catch (e) {
            st.status = 'fail';
            st.error = String((e && e.message) || e);
            throw e;
          } finally {
            st.durationMs = Date.now() - t;
          }
        },
        timing(label, ms) {
          result.timings[label] = ms;
        },
        note(text) {
          result.notes.push(text);
        },
        sleep,
        /** True once the scenario has failed (for end hooks that dump more on failure). */
        failed: () => failure !== null,
        /** Runs `fn` when the scenario ends (pass or fail), before the pages close; errors ignored. */
        atEnd(fn) {
          endHooks.push(fn);
        },
      };

      try {
        if (!browser) throw new Error('Chromium did not start (see the before hook)');
        emu = await startEmulator({ config, rustLog: process.env.RUST_LOG || DEFAULT_RUST_LOG });
        harness = await startHarness(emu);
        await fn(ctx);
        result.status = 'pass';
      } catch (e) {
        failure = e;
        result.error = String((e && (e.stack || e.message)) || e);
      } finally {
        for (const fn of endHooks) {
          try {
            await fn();
          } catch (e) {
            result.notes.push(`end hook failed: ${e && e.message}`);
          }
        }
        result.durationMs = Date.now() - startedAt.getTime();
        result.environment = environment(browser);
        for (const d of devices) {
          const row = {
            name: d.name,
            rtcId: d.rtcId,
            deviceId: d.deviceId,
            events: await pageEvents(d).catch(() => []),
            state: await pageState(d).catch(() => null),
            pageErrors: d.pageErrors,
            console: d.console,
            offlineRequests: d.offline.length,
            failedLocalRequests: d.failedRequests,
            slsRequests: d.sls,
          };
          result.devices.push(row);
        }
        if (emu) {
          result.emulator = { args: emu.args, exit: null };
          try {
            result.emulatorDevices = await emu.admin.devices();
          } catch (e) {
            result.emulatorDevices = String(e.message);
          }
          if (failure) {
            result.emulatorEvents = {};
            for (const rtcId of [...new Set(devices.map((d) => d.rtcId))]) {
              result.emulatorEvents[rtcId] = await emu.admin.events(rtcId).catch((e) => [{ seq: 0, timeMs: 0, kind: 'error', detail: String(e.message) }]);
            }
          }
        }
        for (const p of pages) {
          if (p.pageErrors.length) result.notes.push(`${p.name}: page errors: ${JSON.stringify(p.pageErrors)}`);
          await p.context.close().catch(() => {});
        }
        for (const d of devices) await d.context.close().catch(() => {});
        if (browser) browser.devices.splice(0, browser.devices.length);
        if (harness) await harness.close().catch(() => {});
        if (emu) {
          result.emulator.exit = await emu.stop();
          if (failure) result.emulatorLogTail = emu.log().split('\n').slice(-150).join('\n');
          if (result.emulator.exit.code !== 0 && !failure) {
            failure = new Error(`emulator exited with ${JSON.stringify(result.emulator.exit)} after SIGTERM (expected 0)`);
            result.status = 'fail';
            result.error = failure.message;
            result.emulatorLogTail = emu.log().split('\n').slice(-150).join('\n');
          }
          if (!failure) fs.rmSync(emu.dir, { recursive: true, force: true });
          else result.emulatorLogFile = emu.logFile;
        }
        writeScenario(result);
      }
      if (failure) throw failure;
    });
  }

  return { scenario };
}

/** Polls `fn` until it returns a truthy value; throws the last error / a timeout message. */
async function eventually(fn, { timeout = 5000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = null;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not met within ${timeout} ms${last ? `: ${last.message}` : ''}`);
    }
    await sleep(interval);
  }
}

module.exports = { webSdkSuite, eventually, sleep };
