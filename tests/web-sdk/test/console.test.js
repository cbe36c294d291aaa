'use strict';
// The console (docs/console.md) in real Chromium, next to the unmodified Web SDK: a call appears
// live, its ladder has the expected arrows in order with the codes, answering a ringing phone from
// the console connects the call, the keypad reaches the SDK as cs_dtmf (onDtmfData), advancing the
// manual clock ends a ringing call, retransmissions show, and a signature failure shows the
// highlighted difference. Each scenario takes screenshots of the views it shows: into
// target/console-screenshots, or into docs/console (committed) with UPDATE_SCREENSHOTS=1.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { webSdkSuite, eventually } = require('../lib/suite');
const { REPO } = require('../lib/emulator');
const C = require('../lib/calls');

const s = webSdkSuite('console.test.js');

const MANUAL = '[clock]\nmode = "manual"\n';
const SHOW = '02160000001';
const MANUAL_PHONE = '13800000011'; // magic: rings until someone answers (docs/pstn.md)
const RINGS_FOREVER = '13800000003';
const SHOTS = process.env.UPDATE_SCREENSHOTS ? path.join(REPO, 'docs', 'console') : path.join(REPO, 'target', 'console-screenshots');

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.evaluate(() => { document.getElementById('toast').hidden = true; });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** Opens the console at `hash` and waits for the live stream. */
async function openConsole(ctx, hash) {
  const c = await ctx.page('console', `${ctx.emu.adminUrl}/${hash}`);
  await c.page.waitForFunction(() => document.getElementById('live').textContent.includes('live'), { timeout: 10000 });
  return c;
}

/** Clicks in one script turn: the console re-renders live, so a two-step puppeteer click could
 * find a node that is replaced before the mouse event lands. */
async function click(c, selector) {
  await c.page.waitForSelector(selector, { timeout: 5000 });
  await c.page.$eval(selector, (el) => el.click());
}

async function go(c, hash, readySelector) {
  await c.page.evaluate((h) => { location.hash = h; }, hash);
  if (readySelector) await c.page.waitForSelector(readySelector, { timeout: 10000 });
}

/** The ladder's rows as "kind label" strings, in order. */
async function ladderRows(c) {
  return c.page.$$eval('#ladder .msg', (rows) => rows.map((r) => `${r.dataset.kind} ${r.dataset.label}`));
}

function inOrder(rows, patterns) {
  let at = -1;
  for (const p of patterns) {
    const i = rows.findIndex((r, k) => k > at && p.test(r));
    assert.ok(i > at, `no row matching ${p} after row ${at} in:\n  ${rows.join('\n  ')}`);
    at = i;
  }
}

s.scenario(
  'console: a call to a phone shows live; answering it and the keypad from the console reach the SDK; the ladder has every arrow in order',
  {
    config: MANUAL,
    description:
      'A (the Web SDK) calls the manual magic phone 13800000011. The console\'s Calls view lists the call live ' +
      '(no reload). In Phones, "answer" connects the call (emulator: active) and keypad "5" reaches A as cs_dtmf ' +
      '(onDtmfData "5"). A hangs up; the call\'s ladder shows, in order: A→platform call, platform→phone dial, ' +
      'phone ringing, platform→A ringing and its ACK, phone answered, platform→A answered, phone DTMF "5", ' +
      'platform→A cs_dtmf, A leaveChannel, ENDED 2000099, CDR to MNS. Clicking the request with the SDP offer ' +
      'shows its payload, mediaSignal decoded, the SDP apart.',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    const c = await openConsole(ctx, '#/calls');
    await a.page.evaluate((show, n) => window.harness.callPstn(show, n), SHOW, MANUAL_PHONE);
    await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
    const ch = await C.channelOf(a);
    await ctx.step('Calls: the call appears live, ringing, voip2pstn', async () => {
      await c.page.waitForSelector(`a[data-channel="${ch}"]`, { timeout: 5000 });
      const row = await c.page.$eval(`a[data-channel="${ch}"]`, (el) => el.closest('tr').textContent);
      assert.match(row, /voip2pstn/);
      assert.match(row, /ringing/);
      await shot(c.page, 'calls');
    });
    await ctx.step('Phones: the phone is ringing; "answer" connects the call', async () => {
      await go(c, '#/phones', `#phone-${MANUAL_PHONE}-state`);
      await c.page.waitForFunction((n) => document.getElementById(`phone-${n}-state`).textContent === 'ringing', { timeout: 5000 }, MANUAL_PHONE);
      await click(c, `#phone-${MANUAL_PHONE}-answer`);
      await C.waitCall(ctx, ch, 'active');
      await c.page.waitForFunction((n) => document.getElementById(`phone-${n}-state`).textContent === 'in_call', { timeout: 5000 }, MANUAL_PHONE);
    });
    await ctx.step('keypad "5" → A onDtmfData("5")', async () => {
      await c.page.evaluate((n) => [...document.querySelectorAll('button')].find((b) => b.textContent === 'keypad…' && b.closest('tr').textContent.includes(n)).click(), MANUAL_PHONE);
      await c.page.waitForSelector('#key-5', { timeout: 5000 });
      await click(c, '#key-5');
      const ev = await ctx.waitFor(a, 'onDtmfData', { timeout: 5000 });
      assert.equal(ev.args[0], '5');
      await shot(c.page, 'phones');
    });
    await a.page.evaluate(() => window.harness.hangup());
    await C.waitCall(ctx, ch, 'ended');
    await ctx.step('the ladder: every arrow in order, the ending code, ACKs', async () => {
      await go(c, `#/calls/${ch}`, '#ladder .msg');
      const rows = await eventually(async () => {
        const r = await ladderRows(c);
        return r.some((x) => /^receipt\.queued/.test(x)) && r;
      }, { timeout: 5000, what: 'the ladder shows the receipt' });
      inOrder(rows, [
        /^envelope\.in call/,
        /^pstn\.dial dial/,
        /^pstn\.ringing ringing/,
        /^envelope\.out ringing/,
        /^envelope\.ack ACK ringing 200/,
        /^pstn\.answered answered/,
        /^envelope\.out answered/,
        /^pstn\.dtmf DTMF “5”/,
        /^envelope\.out cs_dtmf/,
        /^envelope\.in leaveChannel/,
        /^call\.state ENDED 2000099/,
        /^cdr CDR written/,
      ]);
      const lanes = await c.page.$$eval('#ladder .lanes .names > div', (d) => d.map((x) => x.title));
      assert.deepEqual(lanes.slice(0, 3), [a.rtcId, 'Platform', `☎ ${MANUAL_PHONE}`]);
      assert.ok(lanes.includes('MNS'), lanes.join(','));
      const ending = await c.page.$$eval('#ladder .msg.ending', (r) => r.map((x) => x.dataset.label));
      assert.ok(ending.some((l) => l.includes('2000099')), JSON.stringify(ending));
      assert.match(await c.page.$eval('#call-state', (e) => e.textContent), /ended/);
    });
    await ctx.step('clicking the request that carries the SDP offer shows it, mediaSignal decoded', async () => {
      // One ladder row per timeline event, in the same order.
      const timeline = (await C.adminCall(ctx, ch)).timeline;
      const i = timeline.findIndex((e) => e.kind === 'envelope.in' && JSON.stringify(e.detail).includes('v=0'));
      assert.ok(i >= 0, 'no request with an SDP offer in the timeline');
      ctx.note(`the offer came in ${timeline[i].detail.messageType}`);
      await click(c, `#row-${i}`);
      await c.page.waitForSelector('#payload-json', { timeout: 5000 });
      const text = await c.page.$eval('#payload', (e) => e.textContent);
      assert.match(text, /"mediaSignal"/);
      assert.match(text, /SDP in /);
      assert.match(text, /v=0/);
      await shot(c.page, 'call-ladder');
    });
    await ctx.step('Queues: the CDR queue holds the CDR, rendered as a table', async () => {
      await go(c, '#/queues', 'table');
      await c.page.evaluate(() => [...document.querySelectorAll('tr')].find((r) => r.textContent.includes('ArtcCdrReport')).querySelector('button').click());
      await c.page.waitForFunction((id) => document.body.textContent.includes(id.slice(0, 10)), { timeout: 5000 }, ch);
      await shot(c.page, 'queues');
    });
    await ctx.step('Devices and Events views render the browser device and the call\'s events', async () => {
      await go(c, '#/devices', 'table');
      await c.page.waitForFunction((id) => document.body.textContent.includes(id), { timeout: 5000 }, a.rtcId);
      await shot(c.page, 'devices');
      await go(c, '#/events', '#filter-kind');
      await c.page.focus('#filter-kind');
      await c.page.keyboard.type('envelope.', { delay: 30 });
      const kinds = await eventually(async () => {
        const k = await c.page.$$eval('tbody tr td:nth-child(3)', (t) => t.map((x) => x.textContent));
        return k.length > 5 && k.every((x) => x.startsWith('envelope.')) && k;
      }, { timeout: 5000, what: 'only envelope.* events listed' });
      assert.ok(kinds.includes('envelope.ack'), kinds.join(','));
      await shot(c.page, 'events');
    });
    assert.deepEqual(c.pageErrors, []);
  },
);

s.scenario(
  'console: advancing the manual clock from the Overview ends a ringing call; unACKed messages show as retransmissions',
  {
    config: MANUAL + '[gateway]\nretransmit_interval_ms = 300\nretransmit_attempts = 2\n',
    description:
      'A calls 13800000003 (rings forever). The Overview shows 1 call active; "+30 s" twice passes the 60 s ring ' +
      'timeout: the call ends (the Calls view shows ended with a cause code, the Overview 0 active). Then a virtual ' +
      'device that never ACKs (ack: false) is called by the tone device; the ladder shows the retransmissions of ' +
      '"called" (dotted, numbered) and "never ACKed".',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    const c = await openConsole(ctx, '#/overview');
    await a.page.evaluate((show, n) => window.harness.callPstn(show, n), SHOW, RINGS_FOREVER);
    await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
    const ch = await C.channelOf(a);
    await ctx.step('Overview: 1 call active, a manual clock with advance buttons', async () => {
      await c.page.waitForFunction(() => document.getElementById('count-calls').textContent === '1', { timeout: 5000 });
      await c.page.waitForSelector('#advance-30000', { timeout: 5000 });
      await shot(c.page, 'overview');
    });
    await ctx.step('"+30 s" twice: the ringing call ends (no answer); the Overview shows 0 active', async () => {
      const before = (await ctx.emu.admin.get('/admin/clock')).nowMs;
      await click(c, '#advance-30000');
      await eventually(async () => (await ctx.emu.admin.get('/admin/clock')).nowMs >= before + 30000, { what: 'first advance' });
      await click(c, '#advance-30000');
      const call = await C.waitCall(ctx, ch, 'ended');
      assert.ok(call.causeCode, JSON.stringify(call));
      await ctx.waitFor(a, 'onStopped', { timeout: 5000 });
      await c.page.waitForFunction(() => document.getElementById('count-calls').textContent === '0', { timeout: 5000 });
      await go(c, '#/calls', `a[data-channel="${ch}"]`);
      const row = await c.page.$eval(`a[data-channel="${ch}"]`, (el) => el.closest('tr').textContent);
      assert.match(row, /ended/);
      assert.ok(row.includes(String(call.causeCode)), row);
    });
    await ctx.step('a virtual device that never ACKs: "called" retransmitted, then never ACKed', async () => {
      await ctx.emu.admin.put('/admin/voip/devices/9000000000000077', { deviceId: 'virtual-deaf', behavior: { then: 'manual', ack: false } });
      const r = await ctx.emu.admin.post('/admin/voip/calls', { from: '9000000000000004', to: ['9000000000000077'] });
      await go(c, `#/calls/${r.channelId}`, '#ladder .msg');
      await c.page.waitForFunction(() => [...document.querySelectorAll('#ladder .msg')].some((m) => m.dataset.label.includes('never ACKed')), { timeout: 10000 });
      const rows = await ladderRows(c);
      inOrder(rows, [/^envelope\.out called/, /^envelope\.retransmit ⟳ called \(retransmission 1/, /^envelope\.retransmit ⟳ called \(retransmission 2/, /^envelope\.undelivered ✖ called never ACKed/]);
      await shot(c.page, 'call-retransmissions');
    });
    assert.deepEqual(c.pageErrors, []);
  },
);

/** RPC signature (HMAC-SHA1) of `params` for `method`. */
function rpcSign(method, params, secret) {
  const enc = (x) => encodeURIComponent(x).replace(/[!'()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase());
  const canon = Object.keys(params).sort().map((k) => `${enc(k)}=${enc(params[k])}`).join('&');
  const sts = `${method}&${enc('/')}&${enc(canon)}`;
  return crypto.createHmac('sha1', secret + '&').update(sts).digest('base64');
}

s.scenario(
  'console: a signature failure shows the client\'s and the server\'s string-to-sign with the first difference highlighted',
  {
    description:
      'A client signs GetRtcToken for GET but sends it as POST (a known mistake the emulator diagnoses). The Requests ' +
      'view shows SignatureDoesNotMatch, both strings side by side, the first difference (character 0: G vs P) marked.',
  },
  async (ctx) => {
    const params = {
      AccessKeyId: ctx.emu.accessKeyId, Action: 'GetRtcToken', Format: 'JSON', RegionId: 'cn-hangzhou',
      SignatureMethod: 'HMAC-SHA1', SignatureNonce: crypto.randomUUID(), SignatureVersion: '1.0',
      Timestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), Version: '2017-05-25', UserId: 'u1', DeviceId: 'd1', IsCustomAccount: 'false',
    };
    params.Signature = rpcSign('GET', params, ctx.emu.accessKeySecret);
    const res = await fetch(`${ctx.emu.popEndpoint}/`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params).toString(),
    });
    const body = await res.json();
    assert.equal(body.Code, 'SignatureDoesNotMatch', JSON.stringify(body));
    const c = await openConsole(ctx, '#/requests');
    await ctx.step('Requests: both strings, the first difference marked', async () => {
      await c.page.waitForSelector('.sigdiff', { timeout: 5000 });
      const d = await c.page.$eval('.sigdiff', (e) => ({
        text: e.textContent,
        client: e.querySelector('pre.client mark') && e.querySelector('pre.client mark').textContent,
        server: e.querySelector('pre.server mark') && e.querySelector('pre.server mark').textContent,
      }));
      assert.match(d.text, /First difference at character 0/);
      assert.deepEqual([d.client, d.server], ['G', 'P']);
      assert.match(d.text, /Hint:/);
      await shot(c.page, 'requests');
    });
    assert.deepEqual(c.pageErrors, []);
  },
);

s.scenario(
  'console: with an admin token the page asks for it once, then shows everything live',
  {
    config: '[admin]\ntoken = "c0nsole-T0ken"\n',
    description:
      'The emulator runs with [admin] token. The console page loads without it, asks for it once (a prompt), and ' +
      'then reads the API and the event stream with it: the Overview shows the AccessKey secret (given only with the ' +
      'token) and, live, the call a script places from Node. A request from the page without the token is refused (401).',
  },
  async (ctx) => {
    const token = 'c0nsole-T0ken';
    const c = await ctx.page('console', 'about:blank');
    let asked = 0;
    c.page.on('dialog', async (d) => {
      asked += 1;
      await d.accept(token);
    });
    await c.page.goto(`${ctx.emu.adminUrl}/#/overview`, { waitUntil: 'load' });
    await ctx.step('asked once; the Overview and the live stream work with the token', async () => {
      await c.page.waitForFunction(() => document.getElementById('live').textContent.includes('live'), { timeout: 10000 });
      await c.page.waitForFunction(() => document.body.textContent.includes('testSecret'), { timeout: 10000 });
      assert.equal(asked, 1);
      assert.equal(await c.page.evaluate(async () => (await fetch('/admin/calls')).status), 401);
    });
    await ctx.step('a call placed from outside appears live', async () => {
      const r = await fetch(`${ctx.emu.adminUrl}/admin/voip/calls`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ from: '9000000000000004', to: ['9000000000000001'] }),
      });
      assert.equal(r.status, 201, await r.text());
      await c.page.waitForFunction(() => document.getElementById('count-calls').textContent === '1', { timeout: 10000 });
      assert.equal(asked, 1);
    });
    assert.deepEqual(c.pageErrors, []);
  },
);
