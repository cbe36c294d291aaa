'use strict';
// Virtual VoIP devices (docs/voip-devices.md) against the unmodified SDK in Chromium: the
// ready-made echo account answers the browser and sends its own audio back; a virtual device
// calls the browser, which answers and hears its tone. The virtual device's side is played by the
// media server (Opus for a VoIP call), like a phone's.

const assert = require('node:assert/strict');
const { webSdkSuite, eventually } = require('../lib/suite');
const C = require('../lib/calls');
const M = require('../lib/media');

const s = webSdkSuite('virtual-devices.test.js');

const MANUAL = '[clock]\nmode = "manual"\n';
const ECHO = '9000000000000001';
const TONE = '9000000000000004';
const GROW = 75;
const ACTIVE_TIMEOUT = 15000;

/** Inbound audio grows with energy; returns the stats. */
async function audioArrives(ctx, dev, what) {
  return ctx.step(`${what}: inbound packets +${GROW}, totalAudioEnergy grows`, async () => {
    const r = await M.inboundGrows(dev, { min: GROW, timeout: 10000, energy: true });
    ctx.timing(`${dev.name}: +${GROW} inbound packets`, r.ms);
    ctx.note(
      `${dev.name}: inbound ${r.before.packetsReceived} → ${r.after.packetsReceived} packets in ${r.ms} ms, codec ${r.after.codecIn}, ` +
        `totalAudioEnergy ${r.before.totalAudioEnergy.toFixed(4)} → ${r.after.totalAudioEnergy.toFixed(4)}, audioLevel ${r.after.audioLevel}`,
    );
    assert.equal(r.after.codecIn, 'audio/opus/48000', JSON.stringify(r.after));
    assert.ok(r.after.totalAudioEnergy > r.before.totalAudioEnergy, JSON.stringify(r));
    return r;
  });
}

s.scenario(
  'voip→virtual: the echo account 9000000000000001 answers after 1 s (manual clock) and sends the browser its own audio back',
  {
    config: MANUAL,
    description:
      'A calls the ready-made echo account. A onCalleeConnecting, onCalleeRinging (the virtual device ACKed called); ' +
      'advancing the clock 1 s it answers and joins → A onActive. What A\'s fake microphone sends comes back: inbound ' +
      `packets +${GROW}, Opus, totalAudioEnergy grows. Emulator: the call active (voip2voip), the virtual device in_call, ` +
      'A\'s leg connected. A stop(): the device\'s history says completed, 2000099.',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    M.mediaAtEnd(ctx, [a]);
    const t0 = Date.now();
    await a.page.evaluate((id) => window.harness.call(id), ECHO);
    await ctx.step('A: onCalleeRinging; the echo device rings', async () => {
      const r = await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
      ctx.timing('call → A onCalleeRinging', r.t - t0);
      const d = await ctx.emu.admin.get(`/admin/voip/devices/${ECHO}`);
      assert.equal(d.state, 'ringing', JSON.stringify(d));
    });
    const ch = await C.channelOf(a);
    const ta = Date.now();
    await ctx.step('advance 1 s: the echo account answers → A onActive; the call active', async () => {
      await ctx.emu.admin.advanceClock(1000);
      const ev = await ctx.waitFor(a, 'onActive', { timeout: ACTIVE_TIMEOUT });
      ctx.timing('advance (answer) → A onActive', ev.t - ta);
      const c = await C.waitCall(ctx, ch, 'active');
      assert.equal(c.alicomRtcType, 'voip2voip');
      assert.equal((await ctx.emu.admin.get(`/admin/voip/devices/${ECHO}`)).state, 'in_call');
    });
    await audioArrives(ctx, a, 'A hears itself');
    await ctx.step('emulator: A\'s leg connected with RTP both ways', async () => {
      const m = await M.legsFlowing(ctx, ch, [a.rtcId]);
      ctx.note(`emulator media while active: ${JSON.stringify(m)}`);
      assert.ok(JSON.stringify(m.bridge).includes(ECHO), JSON.stringify(m.bridge));
    });
    await a.page.evaluate(() => window.harness.hangup());
    await ctx.step('A stop(): the call ends; the echo device\'s history: completed, 2000099', async () => {
      await ctx.waitFor(a, 'onStopped', { timeout: 5000 });
      await C.waitCall(ctx, ch, 'ended');
      const d = await eventually(
        async () => {
          const v = await ctx.emu.admin.get(`/admin/voip/devices/${ECHO}`);
          return v.state === 'idle' && v;
        },
        { timeout: 5000, what: 'the echo device idle again' },
      );
      const last = d.calls[d.calls.length - 1];
      assert.equal(last.channelId, ch, JSON.stringify(d.calls));
      assert.equal(last.outcome, 'completed');
      assert.equal(last.code, 2000099);
    });
    await ctx.step('A stays available', () => C.serviceStayedUp(ctx, a));
  },
);

s.scenario(
  'virtual→voip: the tone account 9000000000000004 calls B (POST /admin/voip/calls); B answers and hears the 440 Hz tone',
  {
    config: MANUAL,
    description:
      'POST /admin/voip/calls {from: 9000000000000004, to: [B]}: B onReceivingAudioCall with the virtual device as the ' +
      `peer. B start() → onActive. The tone arrives: inbound packets +${GROW}, Opus, energy grows, audioLevel > 0.05. ` +
      'POST /admin/voip/devices/9000000000000004/hangup → B onStopped(2000099, "remote hangup"); CDR voip2voip.',
  },
  async (ctx) => {
    const [b] = await C.online(ctx, 'bob');
    M.mediaAtEnd(ctx, [b]);
    const t0 = Date.now();
    const { channelId: ch } = await ctx.emu.admin.post('/admin/voip/calls', { from: TONE, to: [b.rtcId] });
    assert.ok(ch);
    await ctx.step('B: onReceivingAudioCall, peer = the virtual device', async () => {
      const ev = await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
      ctx.timing('POST /admin/voip/calls → B onReceivingAudioCall', ev.t - t0);
      assert.equal(ev.args[0].peer.rtcId, TONE, JSON.stringify(ev.args));
      assert.equal(await C.channelOf(b), ch);
    });
    const ta = Date.now();
    await b.page.evaluate(() => window.harness.answer());
    await ctx.step('B start(): B onActive; the call active, the virtual device in_call', async () => {
      const ev = await ctx.waitFor(b, 'onActive', { timeout: ACTIVE_TIMEOUT });
      ctx.timing('B start() → B onActive', ev.t - ta);
      await C.waitCall(ctx, ch, 'active');
      assert.equal((await ctx.emu.admin.get(`/admin/voip/devices/${TONE}`)).state, 'in_call');
    });
    await audioArrives(ctx, b, 'the virtual device\'s tone');
    await ctx.step('the tone is loud: inbound audioLevel > 0.05', async () => {
      const level = await eventually(
        async () => {
          const t = M.totals(await M.audioStats(b));
          return t.audioLevel > 0.05 && t.audioLevel;
        },
        { timeout: 3000, what: 'B: inbound audioLevel > 0.05' },
      );
      ctx.note(`B: inbound audioLevel ${level}`);
    });
    const th = Date.now();
    await ctx.emu.admin.post(`/admin/voip/devices/${TONE}/hangup`, {});
    await ctx.step('the virtual device hangs up: B onStopped(2000099, "remote hangup"); CDR voip2voip', async () => {
      const st = await ctx.waitFor(b, 'onStopped', { timeout: 5000 });
      ctx.timing('hangup → B onStopped', st.t - th);
      assert.deepEqual(st.args.slice(0, 2), [2000099, 'remote hangup']);
      await C.waitCall(ctx, ch, 'ended');
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.alicomRtcType, 'voip2voip');
      assert.equal(cdr.caller, TONE);
    });
    await ctx.step('B stays available', () => C.serviceStayedUp(ctx, b));
  },
);
