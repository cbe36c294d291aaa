'use strict';
// Token refresh (docs/protocol.md#token-refresh): when a connection's token expires the emulator publishes
// $SYS/tokenExpireNotice; the SDK calls the app's updateToken again, and after setToken re-publishes
// $SYS/uploadToken (and re-SUBSCRIBEs) on the same MQTT connection, keeping its old clientId.
// The service stays available throughout.

const assert = require('node:assert/strict');
const { webSdkSuite, eventually } = require('../lib/suite');

const s = webSdkSuite('token-refresh.test.js');

async function device(ctx, rtcId) {
  return (await ctx.emu.admin.devices()).find((x) => x.rtcId === rtcId);
}

/** Checks one refresh: updateToken call number `n`, bound on connection `conn`. */
async function expectRefresh(ctx, dev, { n, conn, prevExpires, firstClientId, triggeredAt, timeout }) {
  await ctx.step(`refresh ${n - 1}: updateToken called again (call #${n}) and setToken with a new token`, async () => {
    const ev = await ctx.waitFor(dev, 'setToken', { count: n, timeout });
    ctx.timing(`refresh ${n - 1}: expiry trigger → setToken`, ev.t - triggeredAt);
    const st = await ctx.state(dev);
    assert.equal(st.updateTokenCalls, n);
    assert.deepEqual(st.tokenErrors, []);
    assert.notEqual(st.tokens[n - 1].tokenData, st.tokens[n - 2].tokenData);
  });

  return ctx.step(`refresh ${n - 1}: the emulator bound the new token to the same connection (no reconnect)`, async () => {
    const d = await eventually(
      async () => {
        const x = await device(ctx, dev.rtcId);
        return x && x.connection && x.connection.tokenExpiresMs > prevExpires && x;
      },
      { timeout: 5000, what: 'tokenExpiresMs moved forward in /admin/devices' },
    );
    assert.equal(d.online, true, JSON.stringify(d));
    assert.equal(d.connection.id, conn, `connection changed: ${JSON.stringify(d)}`);
    const evs = await ctx.emu.admin.events(dev.rtcId);
    const expired = evs.filter((e) => e.kind === 'token.expired');
    assert.equal(expired.length, n - 1, `token.expired events: ${JSON.stringify(evs)}`);
    const accepted = evs.filter((e) => e.kind === 'token.accepted');
    assert.equal(accepted.length, n, `token.accepted events: ${JSON.stringify(evs)}`);
    const last = accepted[accepted.length - 1];
    assert.ok(last.seq > expired[expired.length - 1].seq, JSON.stringify(evs));
    assert.equal(last.detail.conn, conn, JSON.stringify(last));
    // the SDK keeps the MQTT clientId of the first token on its connection (docs/protocol.md#token-refresh)
    assert.equal(last.detail.clientId, firstClientId, JSON.stringify(last));
    return d;
  });
}

async function serviceEventsAre(ctx, dev, expected) {
  const evs = (await ctx.events(dev)).filter((e) => e.source === 'service').map((e) => e.name);
  assert.deepEqual(evs, expected);
}

s.scenario(
  'token refresh: manual clock, two expiries',
  {
    config: '[clock]\nmode = "manual"\n\n[tokens]\nlifetime_secs = 20\n',
    description:
      'Emulator with a manual clock and 20 s tokens. After onServiceAvailable the test advances the emulator clock ' +
      'by 21 s, twice. Each time: $SYS/tokenExpireNotice → updateToken → GetRtcToken → setToken → uploadToken on ' +
      'the same connection; no onServiceUnavailable; the device stays online.',
  },
  async (ctx) => {
    const alice = await ctx.device('alice');
    await ctx.init(alice);
    await ctx.step('onServiceAvailable', () => ctx.waitFor(alice, 'onServiceAvailable', { timeout: 15000 }));
    let d = await ctx.step('emulator: online, token expiry known', () =>
      eventually(async () => {
        const x = await device(ctx, alice.rtcId);
        return x && x.online && x.connection && x.connection.tokenExpiresMs && x;
      }, { timeout: 5000, what: 'device online' }),
    );
    const conn = d.connection.id;
    const firstClientId = (await ctx.state(alice)).tokens[0].clientId;

    for (const n of [2, 3]) {
      const t = Date.now();
      await ctx.step(`advance the emulator clock by 21 s (token ${n - 1} expires)`, () => ctx.emu.admin.advanceClock(21000));
      d = await expectRefresh(ctx, alice, { n, conn, prevExpires: d.connection.tokenExpiresMs, firstClientId, triggeredAt: t, timeout: 10000 });
    }

    await ctx.step('the service stayed available: no onServiceUnavailable/onServiceIdle after onServiceAvailable (3 s)', async () => {
      await ctx.sleep(3000);
      await serviceEventsAre(ctx, alice, ['onServiceIdle', 'onServiceAvailable']);
      const x = await device(ctx, alice.rtcId);
      assert.equal(x.online, true);
      assert.equal(x.connection.id, conn);
      assert.equal(alice.pageErrors.length, 0, JSON.stringify(alice.pageErrors));
    });
  },
);

s.scenario(
  'token refresh: real clock, 20 s tokens, heartbeat after the refresh',
  {
    config: '[tokens]\nlifetime_secs = 20\n',
    timeout: 120000,
    description:
      'Emulator on the real clock with 20 s tokens. The token expires ~20 s after it was issued; the SDK refreshes it ' +
      'on the same connection, and its 30 s cs_register heartbeat (sent after the refresh) is still ACKed 200; the ' +
      'service stays available. Takes ~35 s.',
  },
  async (ctx) => {
    const alice = await ctx.device('alice');
    await ctx.init(alice);
    await ctx.step('onServiceAvailable', () => ctx.waitFor(alice, 'onServiceAvailable', { timeout: 15000 }));
    const d = await ctx.step('emulator: online, token expiry known', () =>
      eventually(async () => {
        const x = await device(ctx, alice.rtcId);
        return x && x.online && x.connection && x.connection.tokenExpiresMs && x;
      }, { timeout: 5000, what: 'device online' }),
    );
    const conn = d.connection.id;
    const firstClientId = (await ctx.state(alice)).tokens[0].clientId;
    const issued = (await ctx.events(alice)).find((e) => e.name === 'setToken').t;
    await expectRefresh(ctx, alice, {
      n: 2,
      conn,
      prevExpires: d.connection.tokenExpiresMs,
      firstClientId,
      triggeredAt: issued,
      timeout: 30000,
    });

    await ctx.step('the 30 s heartbeat (cs_register) after the refresh is ACKed 200 on the same connection', async () => {
      const x = await eventually(
        async () => {
          const y = await device(ctx, alice.rtcId);
          return y && y.heartbeats >= 1 && y;
        },
        { timeout: 20000, interval: 250, what: 'a heartbeat counted in /admin/devices' },
      );
      ctx.timing('init → first heartbeat', x.lastHeartbeatMs - issued);
      assert.equal(x.online, true);
      assert.equal(x.connection.id, conn);
      const regs = (await ctx.emu.admin.events(alice.rtcId)).filter((e) => e.kind === 'envelope.in' && e.detail.messageType === 'cs_register');
      assert.ok(regs.length >= 2, JSON.stringify(regs));
      assert.ok(regs.every((e) => e.detail.code === 200), JSON.stringify(regs));
    });

    await ctx.step('the service stayed available throughout', async () => {
      await serviceEventsAre(ctx, alice, ['onServiceIdle', 'onServiceAvailable']);
      assert.equal(alice.pageErrors.length, 0, JSON.stringify(alice.pageErrors));
    });
  },
);
