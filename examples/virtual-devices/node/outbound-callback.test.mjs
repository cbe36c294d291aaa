// Testing a customer's outbound-callback server with nothing but HTTP (Node 18+: fetch and
// node:test, no packages). The system under test is `authorize`: the app server's outbound
// callback, asked before every call an app starts (docs/calls.md#customer-callbacks). It lets app
// users call each other for at most 60 s and refuses calls to phones. Every party is one of the
// emulator's virtual devices (docs/voip-devices.md), under its manual clock.
//
// Run: ALICOM_EMU_BIN=target/release/alicom-emu node --test examples/virtual-devices/node

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const BINARY = process.env.ALICOM_EMU_BIN || join(REPO, 'target/release/alicom-emu');

// ------------------------------------------------------------------ the system under test

function authorize(request) {
  if ((request.calleeInfos || []).some((c) => c.isPstn)) {
    return { success: false, message: 'calls to phones are not part of this plan' };
  }
  return { success: true, model: { timeLimit: 60 } };
}

const asked = [];
const customer = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const request = JSON.parse(body);
    asked.push(request);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(authorize(request)));
  });
});

// ------------------------------------------------------------------ the emulator, over HTTP

let emulator;
let admin;
let dir;

async function call(method, path, body) {
  const res = await fetch(admin + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function ok(method, path, body) {
  const r = await call(method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** The callback goes out over real HTTP: wait (bounded) until `check()` returns something. */
async function waitUntil(check, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await check();
    if (v) return v;
    assert.ok(Date.now() < deadline, 'timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const advance = (ms) => ok('POST', '/admin/clock/advance', { ms });
const device = (rtcId, behavior) => ok('PUT', `/admin/voip/devices/${rtcId}`, { deviceId: `app-${rtcId}`, behavior });
const state = async (rtcId) => (await ok('GET', `/admin/voip/devices/${rtcId}`)).state;
const lastCall = async (rtcId) => (await ok('GET', `/admin/voip/devices/${rtcId}`)).calls.at(-1);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'alicom-emu-example-'));
  const ready = join(dir, 'ready.json');
  emulator = spawn(BINARY, ['--ephemeral-ports', '--ready-file', ready], {
    env: { ...process.env, ALICOM_EMU_CLOCK__MODE: 'manual', ALICOM_EMU_SERVER__LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  await waitUntil(() => existsSync(ready), 15000);
  admin = JSON.parse(readFileSync(ready, 'utf8')).admin;
  await new Promise((r) => customer.listen(0, '127.0.0.1', r));
  await ok('PUT', '/admin/callbacks', { outbound: `http://127.0.0.1:${customer.address().port}/outbound` });
});

after(() => {
  customer.close();
  emulator.kill();
  rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ the tests

test('app-to-app calls are allowed for 60 seconds', async () => {
  await device('8100000000000001', { then: 'manual' });
  await device('8100000000000002', { ring_ms: 1000, then: 'answer' });
  const { channelId } = await ok('POST', '/admin/voip/calls', {
    from: '8100000000000001',
    to: ['8100000000000002'],
    extend: 'order-7',
  });
  // The platform asks the customer's server first; the callee rings once it said yes.
  await waitUntil(async () => (await state('8100000000000002')) === 'ringing');
  const request = asked.at(-1);
  assert.equal(request.callerInfo.voipId, '8100000000000001');
  assert.deepEqual(request.calleeInfos, [{ isPstn: false, voipId: '8100000000000002' }]);
  assert.equal(request.extend, 'order-7');

  await advance(1000); // the callee answers
  assert.equal((await ok('GET', `/admin/calls/${channelId}`)).state, 'active');
  await advance(60_000); // the customer's timeLimit
  const c = await ok('GET', `/admin/calls/${channelId}`);
  assert.equal(c.state, 'ended');
  assert.equal(c.cdr.duration, '60');
  assert.equal((await lastCall('8100000000000001')).outcome, 'completed');
});

test('calls to phones are refused', async () => {
  await device('8100000000000003', { then: 'manual' });
  const { channelId } = await ok('POST', '/admin/voip/calls', {
    from: '8100000000000003',
    phone: '13912345678',
    display: '02160000001',
  });
  const c = await waitUntil(async () => {
    const v = await ok('GET', `/admin/calls/${channelId}`);
    return v.state === 'ended' && v;
  });
  assert.equal(c.causeCode, 3100007);
  assert.equal(asked.at(-1).calleeInfos[0].isPstn, true);
  const refused = await lastCall('8100000000000003');
  assert.equal(refused.outcome, 'failed');
  assert.equal(refused.cause, 'calls to phones are not part of this plan');
});
