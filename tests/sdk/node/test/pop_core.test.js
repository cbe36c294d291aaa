'use strict';
// @alicloud/pop-core 1.8.0 (unmodified) against the alicom-emu binary, with both request shapes:
// GET (the SDK default: everything in the query) and {method: 'POST'} (everything in a form body).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const RPCClient = require('@alicloud/pop-core').RPCClient;
const { startEmulator } = require('./emulator');

const API_VERSION = '2017-05-25';
const TIMEOUT_MS = 10000;

const BOOL_FIELDS = ['cleansession', 'useTLS'];
const INT_FIELDS = ['meetingEventKeepAliveInterval', 'port', 'reconnectTimeout', 'registerTime', 'sdkClientPort', 'tlsport'];
const STR_FIELDS = ['clientId', 'conferenceTopic', 'host', 'phoneTopic', 'serverId', 'sgwServerTopic', 'tokenData'];

let emu;
const clients = [];

before(async () => {
  emu = await startEmulator();
});

after(async () => {
  for (const c of clients) c.keepAliveAgent.destroy();
  if (emu) await emu.stop();
});

function newDeviceId(prefix = 'dev') {
  return `${prefix}-${crypto.randomUUID()}`;
}

function client({ accessKeyId, accessKeySecret } = {}) {
  // verbose = true: request() resolves to [json, entry] so the HTTP status is visible
  const c = new RPCClient(
    {
      accessKeyId: accessKeyId || emu.accessKeyId,
      accessKeySecret: accessKeySecret || emu.accessKeySecret,
      endpoint: emu.popEndpoint,
      apiVersion: API_VERSION,
      opts: { timeout: TIMEOUT_MS },
    },
    true,
  );
  clients.push(c);
  return c;
}

function checkToken(module, rtcId) {
  assert.equal(typeof module, 'string', `Module must be a JSON string: ${JSON.stringify(module)}`);
  const t = JSON.parse(module);
  for (const f of [...BOOL_FIELDS, ...INT_FIELDS, ...STR_FIELDS]) {
    assert.ok(Object.prototype.hasOwnProperty.call(t, f), `token lacks ${f}: ${module}`);
  }
  for (const f of BOOL_FIELDS) assert.equal(typeof t[f], 'boolean', `${f} must be a bool: ${t[f]}`);
  for (const f of INT_FIELDS) assert.ok(Number.isInteger(t[f]), `${f} must be an int: ${JSON.stringify(t[f])}`);
  for (const f of STR_FIELDS) assert.equal(typeof t[f], 'string', `${f} must be a string: ${JSON.stringify(t[f])}`);
  assert.equal(t.host, emu.expectedTokenHost);
  assert.ok(t.clientId.startsWith(`GID_VOIP@@@ClientId_${rtcId}_`), t.clientId);
  assert.ok(t.tokenData.length > 0);
  return t;
}

async function expectThrow(promise, code, status) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${code}, but the call succeeded`);
  assert.equal(err.code, code, `${err.name}: ${err.message}`);
  if (status !== undefined) {
    assert.ok(err.entry && err.entry.response, `no response entry on ${err.stack}`);
    assert.equal(err.entry.response.statusCode, status, JSON.stringify(err.data));
  }
  assert.ok(err.data && err.data.RequestId, JSON.stringify(err.data));
  return err;
}

for (const method of ['GET', 'POST']) {
  describe(`pop-core ${method}`, () => {
    const opts = method === 'POST' ? { method: 'POST' } : {};
    let c;
    before(() => {
      c = client();
    });

    async function call(cl, action, params) {
      const [json, entry] = await cl.request(action, params, { ...opts });
      assert.equal(entry.response.statusCode, 200);
      assert.equal(json.Code, 'OK');
      assert.ok(json.RequestId);
      return json;
    }

    async function addAccount(deviceId) {
      const json = await call(c, 'AddRtcAccount', { DeviceId: deviceId });
      assert.equal(typeof json.Module, 'string');
      assert.match(json.Module, /^[0-9]+$/);
      return json.Module;
    }

    it('AddRtcAccount: one account per DeviceId', async () => {
      const dev = newDeviceId();
      const first = await addAccount(dev);
      assert.equal(await addAccount(dev), first, 'same DeviceId -> same rtcId');
      assert.notEqual(await addAccount(newDeviceId()), first, 'another DeviceId -> another rtcId');
    });

    it('GetRtcToken: token JSON with 15 typed fields, fresh per call', async () => {
      const dev = newDeviceId();
      const rtcId = await addAccount(dev);
      const tokens = [];
      for (let i = 0; i < 2; i++) {
        const json = await call(c, 'GetRtcToken', { UserId: rtcId, DeviceId: dev, IsCustomAccount: false });
        tokens.push(checkToken(json.Module, rtcId));
      }
      assert.notEqual(tokens[0].clientId, tokens[1].clientId);
      assert.notEqual(tokens[0].tokenData, tokens[1].tokenData);
    });

    it('GetRtcToken: custom account', async () => {
      const json = await call(c, 'GetRtcToken', { UserId: 'my-app-user-1', DeviceId: newDeviceId(), IsCustomAccount: true });
      const t = JSON.parse(json.Module);
      assert.equal(typeof t.tokenData, 'string');
      assert.ok(t.tokenData.length > 0);
    });

    it('wrong secret -> SignatureDoesNotMatch (400)', async () => {
      const bad = client({ accessKeySecret: 'definitely-not-the-secret' });
      const err = await expectThrow(bad.request('AddRtcAccount', { DeviceId: newDeviceId() }, { ...opts }), 'SignatureDoesNotMatch', 400);
      assert.match(err.data.Message, /server string to sign is:/);
      assert.ok(err.data.Message.includes(`${method}&%2F&`), err.data.Message);
    });

    it('unknown AccessKeyId -> InvalidAccessKeyId.NotFound (404)', async () => {
      const bad = client({ accessKeyId: `NoSuchAK${crypto.randomBytes(3).toString('hex')}`, accessKeySecret: 'x' });
      await expectThrow(bad.request('AddRtcAccount', { DeviceId: newDeviceId() }, { ...opts }), 'InvalidAccessKeyId.NotFound', 404);
    });

    it('missing DeviceId -> isv.INVALID_PARAMETERS (200)', async () => {
      await expectThrow(c.request('AddRtcAccount', {}, { ...opts }), 'isv.INVALID_PARAMETERS', 200);
    });

    it('token for an unknown rtcId -> isv.ACCOUNT_NOT_EXISTS', async () => {
      await expectThrow(
        c.request('GetRtcToken', { UserId: '1999999999999999', DeviceId: newDeviceId(), IsCustomAccount: false }, { ...opts }),
        'isv.ACCOUNT_NOT_EXISTS',
        200,
      );
    });

    it('unknown action -> InvalidAction.NotFound (404)', async () => {
      await expectThrow(c.request('NoSuchAction', { DeviceId: newDeviceId() }, { ...opts }), 'InvalidAction.NotFound', 404);
    });
  });
}
