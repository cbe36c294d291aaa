'use strict';
// init → onServiceAvailable (docs/protocol.md#handshake): the unmodified SDK connects over MQTT/WebSocket,
// uploads its token, subscribes, registers, is ACKed 200 and asks for SLS credentials.

const assert = require('node:assert/strict');
const { webSdkSuite, eventually } = require('../lib/suite');

const s = webSdkSuite('init.test.js');

s.scenario(
  'init: onServiceAvailable',
  {
    description:
      'One page calls initWithRtcId with a token from GetRtcToken (pop-core, tenant AccessKey). Expected: ' +
      'onServiceIdle (initWithRtcId), updateToken once, onServiceAvailable within 15 s and nothing else; the emulator ' +
      'lists the rtcId online over websocket and logged cs_register and cs_get_sls_sts.',
  },
  async (ctx) => {
    const alice = await ctx.device('alice');

    await ctx.step('initWithRtcId → onServiceAvailable within 15 s', async () => {
      await ctx.init(alice);
      const ev = await ctx.waitFor(alice, 'onServiceAvailable', { timeout: 15000 });
      ctx.timing('init → onServiceAvailable', ev.dt);
    });

    await ctx.step('the SDK callbacks: onServiceIdle, updateToken ×1, setToken, onServiceAvailable; no onServiceUnavailable', async () => {
      const evs = (await ctx.events(alice)).filter((e) => e.source === 'service' || e.source === 'token');
      assert.deepEqual(
        evs.map((e) => e.name),
        ['onServiceIdle', 'updateToken', 'setToken', 'onServiceAvailable'],
        JSON.stringify(evs),
      );
      const st = await ctx.state(alice);
      assert.equal(st.updateTokenCalls, 1);
      assert.deepEqual(st.tokenErrors, []);
      assert.equal(alice.pageErrors.length, 0, JSON.stringify(alice.pageErrors));
    });

    const token = (await ctx.state(alice)).tokens[0];

    await ctx.step('GET /admin/devices: the rtcId is online over websocket with the token\'s clientId', async () => {
      const devs = await ctx.emu.admin.devices();
      const d = devs.find((x) => x.rtcId === alice.rtcId);
      assert.ok(d, `rtcId ${alice.rtcId} not in /admin/devices: ${JSON.stringify(devs)}`);
      assert.equal(d.online, true, JSON.stringify(d));
      assert.ok(d.connection, JSON.stringify(d));
      assert.equal(d.connection.transport, 'websocket', JSON.stringify(d));
      assert.equal(d.clientId, token.clientId, JSON.stringify(d));
      assert.equal(d.deviceId, alice.deviceId, JSON.stringify(d));
    });

    await ctx.step('GET /admin/events?rtcId=: token accepted, registered, cs_register and cs_get_sls_sts envelopes', async () => {
      const evs = await eventually(
        async () => {
          const e = await ctx.emu.admin.events(alice.rtcId);
          return e.some((x) => x.kind.startsWith('envelope') && x.detail && x.detail.messageType === 'cs_get_sls_sts') && e;
        },
        { timeout: 5000, what: 'cs_get_sls_sts in /admin/events' },
      );
      const kinds = evs.map((e) => e.kind);
      assert.ok(kinds.includes('token.accepted'), kinds.join(','));
      assert.ok(kinds.includes('device.registered'), kinds.join(','));
      const env = (type) => evs.filter((e) => e.kind.startsWith('envelope') && e.detail && e.detail.messageType === type);
      const reg = env('cs_register');
      assert.ok(reg.length >= 1, `no cs_register envelope: ${JSON.stringify(evs)}`);
      assert.equal(reg[0].detail.code, 200, JSON.stringify(reg[0]));
      const sls = env('cs_get_sls_sts');
      assert.ok(sls.length >= 1, `no cs_get_sls_sts envelope: ${JSON.stringify(evs)}`);
      // order: registered before the SDK asked for SLS credentials (it asks only once READY)
      assert.ok(reg[0].seq < sls[0].seq, JSON.stringify(evs));
    });
  },
);

s.scenario(
  'destroy: onServiceUnavailable(2000116) → onServiceIdle, monitor record reaches the SLS sink',
  {
    description:
      'After onServiceAvailable the page calls rtc.destroy() (docs/protocol.md#heartbeats-and-reconnect). Expected: onServiceUnavailable(2000116, ' +
      '"local destroy") then onServiceIdle; the emulator sees the WebSocket close (the device goes offline). ' +
      'destroy() commits a "service broken" monitor record, which the SDK uploads within ~3 s to the SLS endpoint ' +
      'that cs_get_sls_sts handed out (docs/protocol.md#sls-log-upload); GET /admin/sls lists it, once. (A plain init commits no monitor ' +
      'record, so nothing is uploaded before this.)',
  },
  async (ctx) => {
    const alice = await ctx.device('alice');
    await ctx.init(alice);
    await ctx.step('onServiceAvailable', () => ctx.waitFor(alice, 'onServiceAvailable', { timeout: 15000 }));
    await ctx.step('GET /admin/sls: no upload before destroy', async () => {
      const r = await ctx.emu.admin.get('/admin/sls');
      ctx.note(`GET /admin/sls before destroy: ${JSON.stringify(r)}`);
    });
    const t = Date.now();
    await ctx.step('destroy() → onServiceUnavailable(2000116, "local destroy") → onServiceIdle', async () => {
      await alice.page.evaluate(() => window.harness.destroy());
      const un = await ctx.waitFor(alice, 'onServiceUnavailable', { timeout: 5000 });
      assert.deepEqual(un.args, [2000116, 'local destroy']);
      const idle = await ctx.waitFor(alice, 'onServiceIdle', { timeout: 5000, afterSeq: un.seq });
      ctx.timing('destroy → onServiceIdle', Date.now() - t);
      assert.ok(idle.seq > un.seq);
    });
    await ctx.step('GET /admin/devices: the rtcId is no longer online', async () => {
      await eventually(
        async () => {
          const d = (await ctx.emu.admin.devices()).find((x) => x.rtcId === alice.rtcId);
          return !d || d.online === false;
        },
        { timeout: 5000, what: `rtcId ${alice.rtcId} offline after destroy` },
      );
    });
    await ctx.step('GET /admin/sls lists the monitor upload within 10 s', async () => {
      const ups = await eventually(
        async () => {
          const r = await ctx.emu.admin.get('/admin/sls');
          const list = Array.isArray(r) ? r : r.uploads;
          return list && list.length > 0 && list;
        },
        { timeout: 10000, interval: 250, what: 'an SLS upload' },
      );
      ctx.timing('destroy → first SLS upload', Date.now() - t);
      ctx.note(`first upload: ${JSON.stringify(ups[0])}`);
      assert.equal(ups[0].logstore, 'alicom-emu-stats', JSON.stringify(ups));
    });
    await ctx.step('the SDK counted it as delivered: no re-upload on the next 3 s ticks (4 s)', async () => {
      await ctx.sleep(4000);
      const r = await ctx.emu.admin.get('/admin/sls');
      ctx.note(`the page's SLS requests: ${JSON.stringify(alice.sls)} (Chromium reports the POST as ERR_ABORTED because ` +
        'the SDK never reads the empty 200 response body; the sink has it, and the SDK does not retry)');
      assert.equal(r.uploads.length, 1, JSON.stringify(r));
    });
  },
);
