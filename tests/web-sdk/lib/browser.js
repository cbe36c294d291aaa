'use strict';
// Headless Chromium (Debian's /usr/bin/chromium, never a downloaded one) through puppeteer-core.
// One browser per test file, one incognito browser context per simulated device (each device
// needs its own localStorage: the SDK keeps ARTC_SIGV there).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const puppeteer = require('puppeteer-core');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// The flags of the recording setup behind docs/protocol.md, plus the suite's own hygiene flags.
const SPEC_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--no-first-run',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];
const EXTRA_FLAGS = ['--disable-component-update', '--disable-sync'];

async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_BIN)`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'alicom-web-chromium-'));
  const args = [...SPEC_FLAGS, ...EXTRA_FLAGS, `--user-data-dir=${userDataDir}`];
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    // Exactly our flags: none of puppeteer's defaults (it only adds --remote-debugging-pipe).
    ignoreDefaultArgs: true,
    args,
    pipe: true,
    headless: true,
    timeout: 30000,
    protocolTimeout: 60000,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  const version = await browser.version();
  const devices = [];
  return {
    browser,
    version,
    args,
    devices,
    /**
     * A fresh browser context with the harness page loaded. `localStorage` ({key: value}) is
     * written before any script of the page runs (so the SDK reads it when it loads).
     */
    async openDevice(name, harnessUrl, { localStorage } = {}) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      if (localStorage && Object.keys(localStorage).length) {
        await page.evaluateOnNewDocument((kv) => {
          for (const [k, v] of Object.entries(kv)) window.localStorage.setItem(k, v);
        }, localStorage);
      }
      const dev = { name, context, page, console: [], pageErrors: [], offline: [], failedRequests: [], sls: [] };
      page.on('console', (m) => dev.console.push({ t: Date.now(), type: m.type(), text: m.text().slice(0, 2000) }));
      page.on('pageerror', (e) => dev.pageErrors.push({ t: Date.now(), message: String(e && (e.stack || e.message || e)) }));
      page.on('request', (r) => {
        // tracking beacons and anything else that is not ours: remembered, answered NOTFOUND by
        // the host-resolver-rules
        const u = r.url();
        if (!u.startsWith('http://127.0.0.1') && !u.startsWith('ws://127.0.0.1') && !u.startsWith('data:')) {
          dev.offline.push(u.slice(0, 200));
        }
      });
      page.on('requestfailed', (r) => {
        const u = r.url();
        const row = { t: Date.now(), method: r.method(), url: u, error: r.failure() && r.failure().errorText };
        if (u.includes('/logstores/')) dev.sls.push(row);
        else if (u.startsWith('http://127.0.0.1')) dev.failedRequests.push(row);
      });
      page.on('requestfinished', (r) => {
        const u = r.url();
        const res = r.response();
        if (u.includes('/logstores/')) dev.sls.push({ t: Date.now(), method: r.method(), url: u, status: res && res.status() });
      });
      await page.goto(`${harnessUrl}/`, { waitUntil: 'load', timeout: 30000 });
      const ok = await page.evaluate(() => typeof window.harness === 'object' && typeof window.AlicomRTC === 'function');
      if (!ok) throw new Error(`${name}: the harness page did not load the SDK (window.AlicomRTC missing)`);
      devices.push(dev);
      return dev;
    },
    /**
     * A fresh browser context with any page (no SDK), e.g. the emulator's console, at 1280×800.
     * Page errors and console errors are collected in `pageErrors` / `console`.
     */
    async openPage(name, url, { width = 1280, height = 800 } = {}) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      await page.setViewport({ width, height });
      const dev = { name, context, page, console: [], pageErrors: [], offline: [], failedRequests: [], sls: [] };
      page.on('console', (m) => dev.console.push({ t: Date.now(), type: m.type(), text: m.text().slice(0, 2000) }));
      page.on('pageerror', (e) => dev.pageErrors.push({ t: Date.now(), message: String(e && (e.stack || e.message || e)) }));
      await page.goto(url, { waitUntil: 'load', timeout: 30000 });
      devices.push(dev);
      return dev;
    },
    async close() {
      for (const d of devices) {
        try {
          await d.context.close();
        } catch (_) {
          // browser may be gone already
        }
      }
      try {
        await browser.close();
      } catch (_) {
        const p = browser.process();
        if (p) p.kill('SIGKILL');
      }
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** The page's recorded SDK callbacks (window.__events). */
async function pageEvents(dev) {
  return dev.page.evaluate(() => window.__events.slice());
}

async function pageState(dev) {
  return dev.page.evaluate(() => window.harness.state());
}

/**
 * Waits until the page has recorded `count` events called `name` (after `afterSeq`, if given) and
 * returns the newest matching one. Throws with the page's events on timeout.
 */
async function waitForEvent(dev, name, { timeout = 15000, count = 1, afterSeq = 0 } = {}) {
  try {
    await dev.page.waitForFunction(
      (n, c, a) => window.__events.filter((e) => e.name === n && e.seq > a).length >= c,
      { timeout, polling: 100 },
      name,
      count,
      afterSeq,
    );
  } catch (e) {
    const evs = await pageEvents(dev).catch(() => []);
    const seen = evs.map((x) => `+${x.dt}ms ${x.source}.${x.name}${x.args.length ? ' ' + JSON.stringify(x.args) : ''}`).join('\n  ');
    throw new Error(`${dev.name}: no ${count > 1 ? `${count}x ` : ''}${name} within ${timeout} ms; the page recorded:\n  ${seen || '(nothing)'}`);
  }
  const evs = await pageEvents(dev);
  return evs.filter((e) => e.name === name && e.seq > afterSeq).pop();
}

module.exports = { launchBrowser, pageEvents, pageState, waitForEvent, CHROMIUM };
