'use strict';
// Kick (docs/protocol.md#kick): a second login of the same account makes the server send cs_quit to
// the first connection; its SDK reports onServiceUnavailable(3110000, "kicked") about 1 s later,
// closes the WebSocket and reports onServiceIdle. The second login stays available.

const assert = require('node:assert/strict');
const { webSdkSuite, eventually } = require('../lib/suite');

const s = webSdkSuite('kick.test.js');

async function onlineConn(ctx, rtcId) {
  const d = (await ctx.emu.admin.devices()).find((x) => x.rtcId === rtcId);
  return d && d.online && d.connection ? d : null;
}

async function kickScenario(ctx, { sameDevice }) {
  const first = await ctx.device('first');
  await ctx.init(first);
  await ctx.step('first page: onServiceAvailable', () => ctx.waitFor(first, 'onServiceAvailable', { timeout: 15000 }));
  const before = await ctx.step('emulator: the rtcId is online on the first connection', () =>
    eventually(() => onlineConn(ctx, first.rtcId), { timeout: 5000, what: 'first connection online' }),
  );

  const secondDeviceId = sameDevice ? first.deviceId : ctx.newDeviceId('web-second');
  const second = await ctx.device('second', { rtcId: first.rtcId, deviceId: secondDeviceId });
  const t = Date.now();
  await ctx.init(second);

  await ctx.step('second page: onServiceAvailable', async () => {
    const ev = await ctx.waitFor(second, 'onServiceAvailable', { timeout: 15000 });
    ctx.timing('second init → onServiceAvailable', ev.dt);
  });

  await ctx.step('first page: onServiceUnavailable(3110000, "kicked") then onServiceIdle', async () => {
    const init = (await ctx.events(first)).filter((e) => e.name === 'onServiceAvailable').pop();
    const un = await ctx.waitFor(first, 'onServiceUnavailable', { timeout: 10000, afterSeq: init.seq });
    ctx.timing('second init → first onServiceUnavailable', un.t - t);
    assert.deepEqual(un.args, [3110000, 'kicked']);
    const idle = await ctx.waitFor(first, 'onServiceIdle', { timeout: 10000, afterSeq: un.seq });
    ctx.timing('second init → first onServiceIdle', idle.t - t);
    const all = await ctx.events(first);
    const service = all.filter((e) => e.source === 'service').map((e) => e.name + (e.args.length ? JSON.stringify(e.args) : ''));
    assert.deepEqual(service, ['onServiceIdle', 'onServiceAvailable', 'onServiceUnavailable[3110000,"kicked"]', 'onServiceIdle']);
  });

  await ctx.step('second page stays available (no onServiceUnavailable / onServiceIdle after it, 3 s)', async () => {
    await ctx.sleep(3000);
    const evs = (await ctx.events(second)).filter((e) => e.source === 'service').map((e) => e.name);
    assert.deepEqual(evs, ['onServiceIdle', 'onServiceAvailable']);
  });

  await ctx.step('emulator: the rtcId is online on the second connection; the first was kicked', async () => {
    const after = await onlineConn(ctx, first.rtcId);
    assert.ok(after, 'rtcId not online after the kick');
    assert.notEqual(after.connection.id, before.connection.id, JSON.stringify({ before, after }));
    assert.equal(after.deviceId, secondDeviceId);
    assert.equal(after.clientId, (await ctx.state(second)).tokens[0].clientId);
    const evs = await ctx.emu.admin.events(first.rtcId);
    const kicked = evs.filter((e) => e.kind === 'device.kicked');
    assert.equal(kicked.length, 1, JSON.stringify(evs));
    assert.equal(kicked[0].detail.conn, before.connection.id, JSON.stringify(kicked));
    ctx.note(`emulator kick reason: ${kicked[0].detail.reason}`);
    const conns = (await ctx.emu.admin.get('/admin/devices')).connections;
    assert.equal(conns, 1, `connections open after the kick: ${conns}`);
  });
}

s.scenario(
  'kick: second login with the same rtcId and DeviceId',
  {
    description:
      'Page 1 logs in; page 2 (another browser context) logs in with the same rtcId, its token fetched with the same ' +
      'DeviceId. The emulator sends cs_quit to page 1 when page 2 registers.',
  },
  (ctx) => kickScenario(ctx, { sameDevice: true }),
);

s.scenario(
  'kick: token for the same account issued to another DeviceId',
  {
    description:
      'Page 1 logs in; page 2 logs in with the same rtcId but a token fetched for another DeviceId. The emulator ' +
      'kicks page 1 already when GetRtcToken issues the token for the new device (docs/pop-api.md).',
  },
  (ctx) => kickScenario(ctx, { sameDevice: false }),
);
