'use strict';
// Calls with audio (docs/protocol.md#the-joinchannel-result, docs/media.md): the unmodified SDK's WebRTC against the
// emulator's media server (ICE-lite, the embedded TURN relay for sigv 1, Opus forwarding between
// browsers, the simulated phone's G.711 tone, recordings). Each scenario asserts
//   * the SDK's own callbacks and codes, now with onActive (the stats-driven onNetworkQuality and
//     onMediaStatistics stay unasserted: docs/protocol.md#network-quality-and-statistics);
//   * the browsers' view of the audio: getStats() on the PeerConnections the SDK made (wrapped by
//     harness/pc-wrap.js): inbound-rtp packetsReceived growing, audio energy, the selected ICE
//     candidate pair, the PeerConnection's configuration (TURN + relay for sigv 1, none for sigv 2);
//   * the emulator's view: /admin/calls/{channelId} (state, legs, CDR) and its `media` (per-leg
//     state, sigv, codec, RTP counters, remote address; the bridge), /admin/recordings, the MNS
//     receipts.
// The server-side waits (a phone's ring) run on the manual clock; only the SDK's timers are real.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { webSdkSuite, eventually } = require('../lib/suite');
const C = require('../lib/calls');
const M = require('../lib/media');

const s = webSdkSuite('calls-media.test.js');

const MANUAL = '[clock]\nmode = "manual"\n';
const SHOW = '02160000001'; // a bought number of the default tenant (fixtures/default.toml)
const ACTIVE_TIMEOUT = 15000;
// At 20 ms per packet a second of audio is 50 packets; ask for 1.5 s worth.
const GROW = 75;


/** A calls B, B answers; both pages onActive. Returns {ch, tAnswer}. */
async function connectVoip(ctx, a, b) {
  const t0 = Date.now();
  await a.page.evaluate((id) => window.harness.call(id), b.rtcId);
  await ctx.step('A calls B: B onReceivingAudioCall (peer = A), A onCalleeRinging', async () => {
    const ev = await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
    assert.equal(ev.args[0].peer.rtcId, a.rtcId, JSON.stringify(ev.args));
    const r = await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
    ctx.timing('call → A onCalleeRinging', r.t - t0);
  });
  const ch = await C.channelOf(a);
  assert.equal(await C.channelOf(b), ch, 'both pages hold the same channelId');
  const tAnswer = Date.now();
  await b.page.evaluate(() => window.harness.answer());
  await ctx.step('B answers (start()): B onActive, A onActive', async () => {
    const eb = await ctx.waitFor(b, 'onActive', { timeout: ACTIVE_TIMEOUT });
    const ea = await ctx.waitFor(a, 'onActive', { timeout: ACTIVE_TIMEOUT });
    ctx.timing('B start() → B onActive', eb.t - tAnswer);
    ctx.timing('B start() → A onActive', ea.t - tAnswer);
    assert.deepEqual(await M.callbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onActive']);
    assert.deepEqual(await M.callbacks(ctx, b), ['onActive']);
  });
  return { ch, tAnswer };
}

/** Inbound audio grows on every page given; notes the counts. */
async function audioBothWays(ctx, devs, { energy = false } = {}) {
  await ctx.step(`inbound audio (getStats inbound-rtp packetsReceived) grows by ≥ ${GROW} packets on ${devs.map((d) => d.name).join(' and ')}`, async () => {
    const rs = await Promise.all(devs.map((d) => M.inboundGrows(d, { min: GROW, timeout: 10000, energy })));
    rs.forEach((r, i) => {
      const d = devs[i];
      ctx.timing(`${d.name}: +${GROW} inbound packets`, r.ms);
      ctx.note(
        `${d.name}: inbound packets ${r.before.packetsReceived} → ${r.after.packetsReceived} in ${r.ms} ms, codec in ${r.after.codecIn}, ` +
          `out ${r.after.codecOut} (${r.after.packetsSent} sent), totalAudioEnergy ${r.after.totalAudioEnergy.toFixed(4)}, audioLevel ${r.after.audioLevel}`,
      );
      assert.ok(r.after.packetsSent > 0, `${d.name} sends audio: ${JSON.stringify(r.after)}`);
    });
    return rs;
  });
}

/**
 * The SDK's PeerConnection (the page's first): its config and the selected candidate pair.
 * Chrome marks even the selected pair "in-progress" while one of its periodic consent checks
 * (a STUN binding request every few seconds) awaits the media server's answer, so a pair caught
 * in that window is read again until the answer is in: the media server must answer every check.
 */
async function pcView(dev) {
  const [log] = await M.pcLog(dev);
  let st;
  await eventually(
    async () => {
      [st] = await M.audioStats(dev);
      return st && st.pair && st.pair.state !== 'in-progress';
    },
    { timeout: 5000, interval: 50, what: `${dev.name}: the selected pair's consent check answered` },
  ).catch(() => {}); // the assertions below report what was seen
  assert.ok(log && st, `${dev.name}: the SDK made a PeerConnection`);
  return { log, st };
}

/** sigv 1 (docs/protocol.md#sigv-1): TURN + relay policy; the selected pair is relay → the media server. */
async function assertSigv1Path(ctx, dev, leg, ready) {
  const { log, st } = await pcView(dev);
  assert.equal(log.config.iceTransportPolicy, 'relay', JSON.stringify(log.config));
  assert.equal(log.config.iceServers.length, 1, JSON.stringify(log.config));
  const url = [].concat(log.config.iceServers[0].urls)[0];
  assert.equal(url, ready.turn, 'the TURN server of the joinChannel result is the emulator\'s');
  assert.ok(log.config.iceServers[0].hasUsername && log.config.iceServers[0].hasCredential, 'TURN credentials');
  assert.equal(st.iceConnectionState === 'connected' || st.iceConnectionState === 'completed', true, st.iceConnectionState);
  assert.ok(st.pair, `${dev.name}: a selected candidate pair: ${JSON.stringify(st)}`);
  assert.equal(st.pair.state, 'succeeded', JSON.stringify(st.pair));
  assert.equal(st.pair.local.candidateType, 'relay', JSON.stringify(st.pair));
  assert.equal(`${st.pair.remote.address}:${st.pair.remote.port}`, ready.media_udp, JSON.stringify(st.pair));
  // The emulator sees the browser's packets coming from one of its TURN relay addresses. Chrome
  // allocates one relay per local network (two on this loopback-only machine) and checks both;
  // the emulator's `remoteAddress` is the last address that *first* sent a STUN check
  // (emu-media server.rs, Leg::stats_json: addrs.last()), not necessarily the selected pair's, so
  // only membership is asserted and a mismatch is noted.
  const relays = log.events
    .filter((e) => e.name === 'icecandidate' && e.value && / typ relay /.test(e.value))
    .map((e) => {
      const f = e.value.split(' ');
      return `${f[4]}:${f[5]}`;
    });
  assert.ok(relays.includes(leg.remoteAddress), `emulator leg remoteAddress ${leg.remoteAddress} is one of ${dev.name}'s relay candidates ${relays.join(', ')}`);
  const selected = `${st.pair.local.address}:${st.pair.local.port}`;
  ctx.note(
    `${dev.name}: relay candidates ${relays.join(', ')}; selected pair ${st.pair.local.candidateType} ${selected} → ${st.pair.remote.candidateType} ` +
      `${st.pair.remote.address}:${st.pair.remote.port}; emulator leg remoteAddress ${leg.remoteAddress}` +
      (leg.remoteAddress === selected ? ' (= the selected pair)' : ' (NOT the selected pair: see emu-media Leg::stats_json remoteAddress)'),
  );
}

/** The emulator's media view of a connected leg. */
function assertLeg(leg, { sigv, codec }) {
  const j = JSON.stringify(leg);
  assert.equal(leg.state, 'connected', j);
  assert.equal(leg.sigv, sigv, j);
  assert.equal(String(leg.codec).toLowerCase(), codec, j);
  assert.ok(leg.rtpPacketsIn > 0 && leg.rtpPacketsOut > 0, j);
  assert.ok(leg.connectedMs !== null && leg.connectedMs !== undefined, j);
}

/** The service stayed up (idle, available); no page error but the SDK's known stats bug. */
async function assertStayedUp(ctx, ...devs) {
  for (const d of devs) await C.serviceStayedUp(ctx, d);
}

// ---------------------------------------------------------------------------------------------

for (const who of ['caller', 'callee']) {
  s.scenario(
    `voip→voip with audio both ways; the ${who} hangs up → the ${who === 'caller' ? 'callee' : 'caller'} onStopped(2000099)`,
    {
      description:
        'sigv 1 (fresh profiles). A calls B, B answers with start(): both pages onActive (A: connecting, ringing, ' +
        'active; B: active). Each browser reaches the media server only through the embedded TURN relay ' +
        '(iceTransportPolicy relay, the joinChannel result\'s turnServers): the selected candidate pair is relay → ' +
        'the media port, and the emulator\'s leg remoteAddress is one of the page\'s relay candidates. Inbound audio ' +
        `(getStats inbound-rtp packetsReceived) grows by ≥ ${GROW} packets on both pages (Opus forwarded untouched). ` +
        'Emulator: the call active, two legs connected (sigv 1, opus, RTP in and out), the bridge A → B, not ' +
        `recorded. Then the ${who} calls stop(): it gets onStopping(0,"ok"), onStopped(0,"ok"); the other page ` +
        'onStopped(2000099,"remote hangup") (peerLeftChannel). Emulator: ended 2000099, CDR voip2voip completed, ' +
        'the channel\'s media released with its final counters, no recording, no leg or TURN user left.',
    },
    async (ctx) => {
      const [a, b] = await C.online(ctx, 'alice', 'bob');
      M.mediaAtEnd(ctx, [a, b]);
      const ready = ctx.emu.info;
      const { ch } = await connectVoip(ctx, a, b);
      await audioBothWays(ctx, [a, b]);
      await ctx.step('emulator: active; legs A and B connected (sigv 1, opus, RTP both ways); bridge A → B, not recorded', async () => {
        const c = await C.waitCall(ctx, ch, 'active');
        assert.equal(c.legs[0].state, 'answered');
        const m = await M.legsFlowing(ctx, ch, [a.rtcId, b.rtcId]);
        ctx.note(`emulator media while active: ${JSON.stringify(m)}`);
        assertLeg(M.legOf(m, a.rtcId), { sigv: 1, codec: 'opus' });
        assertLeg(M.legOf(m, b.rtcId), { sigv: 1, codec: 'opus' });
        assert.ok(m.bridge, JSON.stringify(m));
        assert.equal(m.bridge.record, false, JSON.stringify(m.bridge));
        assert.equal(JSON.stringify(m.bridge.caller).includes(a.rtcId), true, JSON.stringify(m.bridge));
        assert.equal(JSON.stringify(m.bridge.callee).includes(b.rtcId), true, JSON.stringify(m.bridge));
      });
      await ctx.step('both browsers: TURN + relay policy; selected pair relay → the media port; the emulator\'s leg address is a relay candidate', async () => {
        const m = await M.mediaOf(ctx, ch);
        await assertSigv1Path(ctx, a, M.legOf(m, a.rtcId), ready);
        await assertSigv1Path(ctx, b, M.legOf(m, b.rtcId), ready);
      });

      const [stopper, other] = who === 'caller' ? [a, b] : [b, a];
      const th = Date.now();
      await stopper.page.evaluate(() => window.harness.hangup());
      await ctx.step(`${other.name}: onStopped(2000099, "remote hangup"); ${stopper.name}: onStopping(0,"ok"), onStopped(0,"ok")`, async () => {
        const so = await ctx.waitFor(other, 'onStopped', { timeout: 10000 });
        ctx.timing(`${stopper.name} stop() → ${other.name} onStopped`, so.t - th);
        assert.deepEqual(so.args.slice(0, 2), [2000099, 'remote hangup']);
        const ss = await ctx.waitFor(stopper, 'onStopped', { timeout: 10000 });
        ctx.timing(`${stopper.name} stop() → ${stopper.name} onStopped`, ss.t - th);
        const head = (d) => (d === a ? ['onCalleeConnecting', 'onCalleeRinging', 'onActive'] : ['onActive']);
        assert.deepEqual(await M.callbacks(ctx, stopper), [...head(stopper), 'onStopping(0,"ok")', 'onStopped(0,"ok")']);
        assert.deepEqual(await M.callbacks(ctx, other), [...head(other), 'onStopped(2000099,"remote hangup")']);
      });
      await ctx.step('emulator: ended 2000099, CDR voip2voip completed; media released with its counters; no recording, no leg left', async () => {
        const c = await C.waitCall(ctx, ch, 'ended');
        ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
        assert.equal(c.causeCode, 2000099);
        assert.equal(c.legs[0].outcome, 'completed');
        const cdr = await C.cdrOf(ctx, ch);
        ctx.note(`CDR: ${JSON.stringify(cdr)}`);
        assert.equal(cdr.alicomRtcType, 'voip2voip');
        assert.equal(cdr.caller, a.rtcId);
        assert.equal(cdr.callee, b.rtcId);
        assert.ok(cdr.startTime, 'answered: a startTime');
        assert.equal(cdr.detail.causeCode, 2000099);
        assert.equal(cdr.callOutInfo[0].outcome, 'completed');
        const m = c.media;
        assert.equal(m && m.released, true, JSON.stringify(m));
        for (const id of [a.rtcId, b.rtcId]) {
          const l = M.legOf(m, id);
          assert.ok(l.rtpPacketsIn >= GROW && l.rtpPacketsOut >= GROW, JSON.stringify(l));
        }
        const recs = (await ctx.emu.admin.get('/admin/recordings')).recordings;
        assert.equal(recs.filter((r) => r.channelId === ch).length, 0, `voip2voip is not recorded: ${JSON.stringify(recs)}`);
        const all = await ctx.emu.admin.get('/admin/media');
        assert.equal(all.legs, 0, JSON.stringify(all));
        assert.equal(all.channels, 0, JSON.stringify(all));
        assert.equal(all.turnUsers, 0, JSON.stringify(all));
      });
      await ctx.step('both pages stay available, no page error', () => assertStayedUp(ctx, a, b));
    },
  );
}

// ---------------------------------------------------------------------------------------------

async function callPstn(ctx, dev, phoneNumber) {
  const t0 = Date.now();
  await dev.page.evaluate((show, n) => window.harness.callPstn(show, n), SHOW, phoneNumber);
  return t0;
}

/** VoIP→PSTN up to onActive: ringing, the clock moves 1 s, the phone answers, A onActive. */
async function pstnActive(ctx, a, number) {
  const t0 = await callPstn(ctx, a, number);
  await ctx.step(`A: onCalleeConnecting, onCalleeRinging; the phone ${number} rings`, async () => {
    const r = await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
    ctx.timing('callPstn → onCalleeRinging', r.t - t0);
    assert.equal((await C.phone(ctx, number)).state, 'ringing');
  });
  const ch = await C.channelOf(a);
  await ctx.step('while ringing: A\'s leg connects (sigv 1, PCMU first: a phone call); no onActive before the answer', async () => {
    let last;
    const m = await eventually(
      async () => {
        last = await M.mediaOf(ctx, ch);
        const l = last && last.legs && last.legs.find((x) => x.rtcId === a.rtcId);
        return l && l.state === 'connected' && last;
      },
      { timeout: 10000, what: 'A\'s media leg connected' },
    ).catch((e) => {
      e.message += `\nlast media: ${JSON.stringify(last)}`;
      throw e;
    });
    const l = M.legOf(m, a.rtcId);
    assert.equal(l.sigv, 1);
    assert.equal(String(l.codec).toLowerCase(), 'pcmu', JSON.stringify(l));
    ctx.note(`A's leg while ringing: ${JSON.stringify(l)}`);
    const before = M.totals(await M.audioStats(a));
    ctx.note(`before the answer: the emulator sent A ${l.rtpPacketsOut} RTP packets; A's inbound packetsReceived ${before.packetsReceived}`);
    assert.deepEqual(await M.callbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging'], 'no onActive before the answer');
  });
  const ta = Date.now();
  await ctx.step('advance 1 s: the phone answers → A onActive; the call active, the phone in_call', async () => {
    await ctx.emu.admin.advanceClock(1000);
    const ev = await ctx.waitFor(a, 'onActive', { timeout: ACTIVE_TIMEOUT });
    ctx.timing('advance (answer) → A onActive', ev.t - ta);
    const c = await C.waitCall(ctx, ch, 'active');
    assert.equal(c.alicomRtcType, 'voip2pstn');
    const p = await C.phone(ctx, number);
    assert.equal(p.state, 'in_call', JSON.stringify(p));
    assert.deepEqual(await M.callbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onActive']);
  });
  return ch;
}

/** The phone's tone reaches the page: packets grow, PCMU, audio energy and level > 0. */
async function phoneToneArrives(ctx, dev) {
  return ctx.step(`the phone's 440 Hz tone arrives: inbound packets +${GROW}, PCMU, totalAudioEnergy grows, audioLevel > 0`, async () => {
    const r = await M.inboundGrows(dev, { min: GROW, timeout: 10000, energy: true });
    ctx.timing(`${dev.name}: +${GROW} inbound packets`, r.ms);
    ctx.note(
      `${dev.name}: inbound ${r.before.packetsReceived} → ${r.after.packetsReceived} packets in ${r.ms} ms, codec ${r.after.codecIn}, ` +
        `totalAudioEnergy ${r.before.totalAudioEnergy.toFixed(4)} → ${r.after.totalAudioEnergy.toFixed(4)}, audioLevel ${r.after.audioLevel}`,
    );
    assert.equal(r.after.codecIn, 'audio/PCMU/8000', JSON.stringify(r.after));
    assert.ok(r.after.totalAudioEnergy > r.before.totalAudioEnergy, JSON.stringify(r));
    // a -10 dBFS sine has an audioLevel (linear, 0..1) around 0.3; ask for clearly non-silent
    const level = await eventually(
      async () => {
        const t = M.totals(await M.audioStats(dev));
        return t.audioLevel > 0.05 && t.audioLevel;
      },
      { timeout: 3000, what: `${dev.name}: inbound audioLevel > 0.05` },
    );
    ctx.note(`${dev.name}: inbound audioLevel ${level}`);
    return r;
  });
}

s.scenario(
  'voip→pstn with audio: answering phone 13800000001 → onCalleeRinging, onActive, the phone\'s tone arrives (manual clock)',
  {
    config: MANUAL,
    description:
      'A calls 13800000001 (rings 1 s, answers, plays a 440 Hz tone) showing 02160000001. A onCalleeConnecting, ' +
      'onCalleeRinging; A\'s media leg connects through TURN while the phone rings (PCMU: a phone call), and no ' +
      'onActive yet. Advancing the clock 1 s the phone answers (answered + peerJoinedChannel) → A onActive. The ' +
      `tone arrives: inbound packets +${GROW}, codec PCMU, totalAudioEnergy grows and audioLevel > 0.05. Emulator: ` +
      'A\'s leg connected (sigv 1, pcmu, RTP both ways: the phone\'s tone out, the browser\'s microphone in), the ' +
      'bridge A → phone, recorded (VoIP→PSTN by default). A stop(): onStopping(0,"ok"), onStopped(0,"ok"); the ' +
      'phone idle, CDR voip2pstn completed.',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    M.mediaAtEnd(ctx, [a]);
    const ch = await pstnActive(ctx, a, '13800000001');
    await phoneToneArrives(ctx, a);
    await ctx.step('emulator: A\'s leg connected (sigv 1, pcmu, RTP both ways); bridge A → phone 13800000001, recorded', async () => {
      const m = await M.legsFlowing(ctx, ch, [a.rtcId]);
      ctx.note(`emulator media while active: ${JSON.stringify(m)}`);
      assertLeg(M.legOf(m, a.rtcId), { sigv: 1, codec: 'pcmu' });
      assert.ok(JSON.stringify(m.bridge.callee).includes('13800000001'), JSON.stringify(m.bridge));
      assert.equal(m.bridge.record, true, JSON.stringify(m.bridge));
      await assertSigv1Path(ctx, a, M.legOf(m, a.rtcId), ctx.emu.info);
    });
    const th = Date.now();
    await a.page.evaluate(() => window.harness.hangup());
    await ctx.step('A stop(): onStopping(0,"ok"), onStopped(0,"ok"); the call ended, phone idle; CDR voip2pstn completed', async () => {
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 5000 });
      ctx.timing('stop() → onStopped', st.t - th);
      assert.deepEqual(await M.callbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onActive', 'onStopping(0,"ok")', 'onStopped(0,"ok")']);
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.causeCode, 2000099);
      assert.equal((await C.phone(ctx, '13800000001')).state, 'idle');
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.alicomRtcType, 'voip2pstn');
      assert.equal(cdr.callOutInfo[0].outcome, 'completed');
      assert.equal(c.media.released, true, JSON.stringify(c.media));
    });
    await ctx.step('A stays available', () => assertStayedUp(ctx, a));
  },
);

// ---------------------------------------------------------------------------------------------

const CALLER = '13911112222';

s.scenario(
  'pstn→voip with audio: a phone calls 02160000001, routed to B; B start() → onActive, the phone\'s tone arrives',
  {
    description:
      'A tiny HTTP server is the inbound callback ({success:true, model:{mixedCalleeInfos:[{type:"voip", rtcId:B}]}}). ' +
      'POST /admin/pstn/calls {from:13911112222, to:02160000001}: B onReceivingAudioCall (peer: the phone). B ' +
      `start() → answer + joinChannel + TURN → B onActive. The phone's 440 Hz tone arrives: inbound packets +${GROW}, ` +
      'PCMU, energy and level > 0. Emulator: active pstn2voip, B\'s leg connected (sigv 1, pcmu, RTP both ways), ' +
      'the bridge phone → B, not recorded (inbound calls are not recorded by default). The phone hangs up: B ' +
      'onStopped(2000099,"remote hangup"); CDR pstn2voip completed; no recording.',
  },
  async (ctx) => {
    const [b] = await C.online(ctx, 'bob');
    M.mediaAtEnd(ctx, [b]);
    const cb = await C.callbackServer(() => ({ success: true, model: { mixedCalleeInfos: [{ type: 'voip', rtcId: b.rtcId }] } }));
    try {
      await ctx.emu.admin.put('/admin/callbacks', { inbound: `${cb.url}/inbound` });
      const t0 = Date.now();
      const { channelId: ch } = await ctx.emu.admin.post('/admin/pstn/calls', { from: CALLER, to: SHOW });
      assert.ok(ch);
      await ctx.step('B: onReceivingAudioCall, peer = the phone; the inbound callback was asked', async () => {
        const ev = await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
        ctx.timing('dial-in → B onReceivingAudioCall', ev.t - t0);
        assert.equal(ev.args[0].peer.isPstn, true, JSON.stringify(ev.args));
        assert.equal(ev.args[0].peer.phoneNumber, CALLER, JSON.stringify(ev.args));
        assert.equal(await C.channelOf(b), ch);
        assert.equal(cb.requests.length, 1, JSON.stringify(cb.requests));
        assert.deepEqual(cb.requests[0].body, { phoneNumber: CALLER, platformNumber: SHOW, channelId: ch });
      });
      const ta = Date.now();
      await b.page.evaluate(() => window.harness.answer());
      await ctx.step('B start(): B onActive; the call active (pstn2voip), the phone in_call', async () => {
        const ev = await ctx.waitFor(b, 'onActive', { timeout: ACTIVE_TIMEOUT });
        ctx.timing('B start() → B onActive', ev.t - ta);
        assert.deepEqual(await M.callbacks(ctx, b), ['onActive']);
        const c = await C.waitCall(ctx, ch, 'active');
        assert.equal(c.alicomRtcType, 'pstn2voip');
        assert.equal((await C.phone(ctx, CALLER)).state, 'in_call');
      });
      await phoneToneArrives(ctx, b);
      await ctx.step('emulator: B\'s leg connected (sigv 1, pcmu, RTP both ways); bridge phone → B, not recorded', async () => {
        const m = await M.legsFlowing(ctx, ch, [b.rtcId]);
        ctx.note(`emulator media while active: ${JSON.stringify(m)}`);
        assertLeg(M.legOf(m, b.rtcId), { sigv: 1, codec: 'pcmu' });
        assert.ok(JSON.stringify(m.bridge.caller).includes(CALLER), JSON.stringify(m.bridge));
        assert.ok(JSON.stringify(m.bridge.callee).includes(b.rtcId), JSON.stringify(m.bridge));
        assert.equal(m.bridge.record, false, JSON.stringify(m.bridge));
        await assertSigv1Path(ctx, b, M.legOf(m, b.rtcId), ctx.emu.info);
      });
      const th = Date.now();
      await ctx.emu.admin.post(`/admin/pstn/phones/${CALLER}/hangup`);
      await ctx.step('the phone hangs up: B onStopped(2000099, "remote hangup"); CDR pstn2voip completed; no recording', async () => {
        const st = await ctx.waitFor(b, 'onStopped', { timeout: 5000 });
        ctx.timing('phone hangup → B onStopped', st.t - th);
        assert.deepEqual(st.args.slice(0, 2), [2000099, 'remote hangup']);
        assert.deepEqual(await M.callbacks(ctx, b), ['onActive', 'onStopped(2000099,"remote hangup")']);
        const c = await C.waitCall(ctx, ch, 'ended');
        ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
        assert.equal(c.causeCode, 2000099);
        const cdr = await C.cdrOf(ctx, ch);
        assert.equal(cdr.alicomRtcType, 'pstn2voip');
        assert.equal(cdr.callOutInfo[0].outcome, 'completed');
        assert.equal(c.media.released, true, JSON.stringify(c.media));
        const recs = (await ctx.emu.admin.get('/admin/recordings')).recordings;
        assert.equal(recs.filter((r) => r.channelId === ch).length, 0, JSON.stringify(recs));
      });
      await ctx.step('B stays available', () => assertStayedUp(ctx, b));
    } finally {
      await cb.close();
    }
  },
);

// ---------------------------------------------------------------------------------------------

s.scenario(
  'sigv 2 (localStorage.ARTC_SIGV = "2"): voip→voip with audio both ways, no TURN',
  {
    description:
      'Both pages get localStorage.ARTC_SIGV = "2" before the SDK loads (docs/protocol.md#sigv-2): the SDK builds its ' +
      'PeerConnection with no configuration (no TURN, no relay policy) and puts the offer in joinChannel; the ' +
      'join result carries the answer and one candidate; the browsers never send sdpCandidate/candidate, and the ' +
      'media server learns their addresses from their STUN checks. A calls B, B answers: both onActive, inbound ' +
      `audio +${GROW} packets on both. The selected pair is host → the media port. Emulator: legs sigv 2, opus, RTP ` +
      'both ways; no sdpCandidate from either page. A hangs up: B onStopped(2000099,"remote hangup").',
  },
  async (ctx) => {
    const devs = [];
    for (const n of ['alice', 'bob']) devs.push(await ctx.device(n, { localStorage: { ARTC_SIGV: '2' } }));
    const [a, b] = devs;
    for (const d of devs) await ctx.init(d);
    await ctx.step('alice, bob: onServiceAvailable; localStorage ARTC_SIGV is "2"', async () => {
      for (const d of devs) {
        await ctx.waitFor(d, 'onServiceAvailable', { timeout: 15000 });
        assert.equal((await ctx.state(d)).sigv, '2');
      }
    });
    M.mediaAtEnd(ctx, [a, b]);
    const { ch } = await connectVoip(ctx, a, b);
    await audioBothWays(ctx, [a, b]);
    await ctx.step('both browsers: a PeerConnection without TURN; selected pair host → the media port', async () => {
      for (const d of [a, b]) {
        const { log, st } = await pcView(d);
        assert.ok(!log.config || (log.config.iceServers.length === 0 && log.config.iceTransportPolicy !== 'relay'), JSON.stringify(log.config));
        assert.ok(st.pair, JSON.stringify(st));
        assert.equal(st.pair.state, 'succeeded', JSON.stringify(st.pair));
        assert.equal(st.pair.local.candidateType, 'host', JSON.stringify(st.pair));
        assert.equal(`${st.pair.remote.address}:${st.pair.remote.port}`, ctx.emu.info.media_udp, JSON.stringify(st.pair));
        ctx.note(`${d.name}: config ${JSON.stringify(log.config)}; selected pair ${st.pair.local.candidateType} ${st.pair.local.address}:${st.pair.local.port} → ${st.pair.remote.address}:${st.pair.remote.port}`);
      }
    });
    await ctx.step('emulator: legs sigv 2, opus, RTP both ways; the browsers sent no sdpCandidate / candidate', async () => {
      const m = await M.legsFlowing(ctx, ch, [a.rtcId, b.rtcId]);
      ctx.note(`emulator media while active: ${JSON.stringify(m)}`);
      assertLeg(M.legOf(m, a.rtcId), { sigv: 2, codec: 'opus' });
      assertLeg(M.legOf(m, b.rtcId), { sigv: 2, codec: 'opus' });
      const tl = (await C.adminCall(ctx, ch)).timeline;
      const ins = tl.filter((e) => e.kind === 'envelope.in').map((e) => `${e.rtcId === a.rtcId ? 'A' : 'B'}:${e.detail && e.detail.messageType}${e.detail && e.detail.api ? `/${e.detail.api}` : ''}`);
      ctx.note(`requests in for the channel: ${ins.join(', ')}`);
      assert.ok(!ins.some((x) => /sdpCandidate|candidate$/.test(x)), ins.join(', '));
    });
    const th = Date.now();
    await a.page.evaluate(() => window.harness.hangup());
    await ctx.step('A stop(): B onStopped(2000099, "remote hangup"), A onStopped(0,"ok"); CDR voip2voip completed', async () => {
      const sb = await ctx.waitFor(b, 'onStopped', { timeout: 10000 });
      ctx.timing('A stop() → B onStopped', sb.t - th);
      assert.deepEqual(sb.args.slice(0, 2), [2000099, 'remote hangup']);
      await ctx.waitFor(a, 'onStopped', { timeout: 10000 });
      assert.deepEqual(await M.callbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onActive', 'onStopping(0,"ok")', 'onStopped(0,"ok")']);
      const c = await C.waitCall(ctx, ch, 'ended');
      assert.equal(c.causeCode, 2000099);
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.callOutInfo[0].outcome, 'completed');
    });
    await ctx.step('both pages stay available', () => assertStayedUp(ctx, a, b));
  },
);

// ---------------------------------------------------------------------------------------------

/** The first m-line of `kind` in an SDP: {port, formats, mid}, or null. */
function mLine(sdp, kind) {
  const sections = String(sdp || '').split(/\r?\n(?=m=)/).filter((x) => x.startsWith('m='));
  const sec = sections.find((x) => x.startsWith(`m=${kind} `));
  if (!sec) return null;
  const f = sec.split(/\r?\n/)[0].trim().split(/\s+/);
  const mid = (sec.match(/^a=mid:(\S+)/m) || [])[1] || null;
  return { port: f[1], formats: f.slice(3), mid, index: sections.indexOf(sec) };
}

function bundleOf(sdp) {
  const l = String(sdp || '').split(/\r?\n/).find((x) => x.startsWith('a=group:BUNDLE'));
  return l ? l.trim().split(/\s+/).slice(1) : [];
}

s.scenario(
  'video offers (a camera track on each PeerConnection): the answer rejects video, Chromium accepts it, audio both ways',
  {
    description:
      'Each page adds the fake camera to the SDK\'s RTCPeerConnection before the offer (harness/pc-wrap.js, ' +
      'localStorage.HARNESS_CAMERA): alice (sigv 2: the offer in joinChannel, the answer in its result) after the ' +
      'SDK\'s audio, bob (sigv 1: sdpCandidate, TURN) as the first m-line. A calls B, B answers: both onActive. ' +
      'Each offer carries m=video; each answer has the video m-line rejected (port 0, at least one format, the ' +
      'offer\'s mid, left out of BUNDLE) and audio bundled; setRemoteDescription succeeds, ICE connects, inbound ' +
      `audio +${GROW} packets on both pages. Emulator: both legs opus with RTP in and out. A hangs up: B ` +
      'onStopped(2000099,"remote hangup"); both pages stay available.',
  },
  async (ctx) => {
    const a = await ctx.device('alice', { localStorage: { ARTC_SIGV: '2', HARNESS_CAMERA: 'after' } });
    const b = await ctx.device('bob', { localStorage: { HARNESS_CAMERA: 'first' } });
    for (const d of [a, b]) await ctx.init(d);
    await ctx.step('alice, bob: onServiceAvailable', async () => {
      for (const d of [a, b]) await ctx.waitFor(d, 'onServiceAvailable', { timeout: 15000 });
    });
    M.mediaAtEnd(ctx, [a, b]);
    const { ch } = await connectVoip(ctx, a, b);
    await ctx.step('both browsers: the offer has video; the answer rejects it (port 0, a format, its mid, not bundled); setRemoteDescription ok; ICE connected', async () => {
      for (const [d, videoIndex] of [[a, 1], [b, 0]]) {
        const [pc] = await d.page.evaluate(() => window.__pcView());
        const j = JSON.stringify({ transceivers: pc.transceivers, log: pc.log, remote: pc.remote });
        const offered = mLine(pc.local, 'video');
        const answered = mLine(pc.remote, 'video');
        assert.ok(offered && offered.port !== '0', `${d.name} offered video: ${pc.local}`);
        assert.equal(offered.index, videoIndex, `${d.name}: video m-line position: ${pc.local}`);
        assert.ok(answered, `${d.name}: the answer has the video m-line: ${j}`);
        assert.equal(answered.port, '0', `${d.name}: video rejected: ${j}`);
        assert.ok(answered.formats.length >= 1, `${d.name}: the rejected line lists a format: ${j}`);
        assert.equal(answered.mid, offered.mid, `${d.name}: the mid is kept: ${j}`);
        assert.equal(answered.index, offered.index, j);
        const audio = mLine(pc.remote, 'audio');
        assert.ok(audio && audio.port !== '0', j);
        assert.ok(bundleOf(pc.remote).includes(audio.mid) && !bundleOf(pc.remote).includes(answered.mid), `${d.name}: BUNDLE ${bundleOf(pc.remote)}: ${j}`);
        assert.ok(pc.log.some((e) => e.name === 'setRemoteDescription.ok'), `${d.name}: setRemoteDescription succeeded: ${j}`);
        assert.ok(!pc.log.some((e) => /error/.test(e.name)), `${d.name}: no error: ${j}`);
        assert.equal(pc.signalingState, 'stable', j);
        assert.ok(['connected', 'completed'].includes(pc.iceConnectionState), `${d.name}: ICE ${pc.iceConnectionState}`);
        // Chromium stops a transceiver whose m-line the answer rejected (and then drops it).
        const video = pc.transceivers.find((t) => t.kind === 'video') || null;
        assert.ok(!video || ['stopped', 'inactive'].includes(video.currentDirection), `${d.name}: the camera's transceiver sends nothing: ${j}`);
        assert.ok(pc.log.some((e) => e.name === 'camera' && /^track /.test(e.value)), `${d.name}: the camera's track was added: ${j}`);
        ctx.note(`${d.name}: offered m=video ${offered.port} (${offered.formats.length} formats, mid ${offered.mid}); answered m=video ${answered.port} ${answered.formats.join(' ')}; BUNDLE ${bundleOf(pc.remote).join(' ')}; video transceiver ${JSON.stringify(video)}`);
      }
    });
    await audioBothWays(ctx, [a, b]);
    await ctx.step('emulator: legs A (sigv 2) and B (sigv 1) connected, opus, RTP both ways', async () => {
      const m = await M.legsFlowing(ctx, ch, [a.rtcId, b.rtcId]);
      ctx.note(`emulator media while active: ${JSON.stringify(m)}`);
      assertLeg(M.legOf(m, a.rtcId), { sigv: 2, codec: 'opus' });
      assertLeg(M.legOf(m, b.rtcId), { sigv: 1, codec: 'opus' });
    });
    const th = Date.now();
    await a.page.evaluate(() => window.harness.hangup());
    await ctx.step('A stop(): B onStopped(2000099, "remote hangup"); both pages stay available', async () => {
      const sb = await ctx.waitFor(b, 'onStopped', { timeout: 10000 });
      ctx.timing('A stop() → B onStopped', sb.t - th);
      assert.deepEqual(sb.args.slice(0, 2), [2000099, 'remote hangup']);
      await ctx.waitFor(a, 'onStopped', { timeout: 10000 });
      await assertStayedUp(ctx, a, b);
    });
  },
);

// ---------------------------------------------------------------------------------------------

s.scenario(
  'recorded voip→pstn: phone 13800000007 hangs up after 5 s → a stereo WAV recording, VoiceRecordReport and ArtcCdrReport in MNS (manual clock)',
  {
    config: MANUAL,
    timeout: 60000,
    description:
      'VoIP→PSTN calls are recorded by default. A calls 13800000007 (rings 1 s, answers, plays 440 Hz, hangs up 5 s ' +
      'later). Advance 1 s: A onActive, the tone arrives; 3 s of real audio; advance 5 s: the phone hangs up → A ' +
      'onStopped(2000099, …). GET /admin/recordings lists the channel\'s recording; its URL downloads a RIFF/WAVE, ' +
      'PCM 16-bit, 8 kHz, 2 channels (caller left, callee right), as long as listed; the right channel holds the ' +
      'phone\'s ~440 Hz tone, the left one the browser\'s (fake) microphone. The MNS queue ' +
      'Alicom-Queue-<uid>-VoiceRecordReport holds a VoiceRecordReport for the channel with that URL, and ' +
      'Alicom-Queue-<uid>-ArtcCdrReport the CDR.',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    M.mediaAtEnd(ctx, [a]);
    const uid = ctx.emu.info.uid;
    assert.ok(uid, `the ready-file names the tenant uid: ${JSON.stringify(ctx.emu.info)}`);
    const ch = await pstnActive(ctx, a, '13800000007');
    await phoneToneArrives(ctx, a);
    await ctx.sleep(2000);
    const th = Date.now();
    await ctx.step('advance 5 s: the phone hangs up → A onStopped(2000099, …)', async () => {
      await ctx.emu.admin.advanceClock(5000);
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 5000 });
      ctx.timing('advance (phone hangs up) → A onStopped', st.t - th);
      ctx.note(`A onStopped args: ${JSON.stringify(st.args.slice(0, 2))}`);
      assert.equal(st.args[0], 2000099, JSON.stringify(st.args));
      assert.deepEqual(await M.callbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onActive', C.fmt(st)]);
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.causeCode, 2000099);
      const p = await C.phone(ctx, '13800000007');
      assert.equal(p.history[0].end, 'hung_up', JSON.stringify(p));
    });
    const rec = await ctx.step('GET /admin/recordings lists the recording of the channel', async () => {
      const r = await eventually(
        async () => (await ctx.emu.admin.get('/admin/recordings')).recordings.find((x) => x.channelId === ch),
        { timeout: 5000, what: `a recording for ${ch} in /admin/recordings` },
      );
      ctx.note(`recording: ${JSON.stringify(r)}`);
      assert.equal(r.tenant, 'default');
      assert.ok(r.durationMs >= 2500, `the call carried ≥ 2.5 s of audio: ${JSON.stringify(r)}`);
      assert.ok(r.url.startsWith(`${ctx.emu.adminUrl}/recordings/`), JSON.stringify(r));
      // the suite points media.recordings_dir at the scenario's tmp directory (lib/emulator.js)
      assert.ok(fs.existsSync(path.join(ctx.emu.dir, 'recordings', r.file)), `${r.file} in ${ctx.emu.dir}/recordings`);
      return r;
    });
    await ctx.step('its URL downloads a stereo WAV (RIFF/WAVE, PCM 16-bit, 8 kHz, 2 channels); right = the phone\'s 440 Hz tone', async () => {
      const res = await fetch(rec.url, { signal: AbortSignal.timeout(10000) });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') || '', /audio\/(wav|x-wav|wave)/);
      const buf = Buffer.from(await res.arrayBuffer());
      const w = M.parseWav(buf);
      const { samples, ...hdr } = w;
      ctx.note(`WAV header: ${JSON.stringify(hdr)}`);
      assert.equal(w.format, 1, 'PCM');
      assert.equal(w.channels, 2, 'stereo');
      assert.equal(w.sampleRate, 8000);
      assert.equal(w.bitsPerSample, 16);
      assert.equal(w.blockAlign, 4);
      assert.equal(w.riffSize, buf.length - 8, 'RIFF size = file size - 8');
      assert.equal(buf.length, rec.bytes, 'the listed size');
      const secs = w.frames / w.sampleRate;
      assert.ok(Math.abs(secs * 1000 - rec.durationMs) <= 500, `${secs} s of frames vs durationMs ${rec.durationMs}`);
      const left = M.channelSummary(samples[0], w.sampleRate);
      const right = M.channelSummary(samples[1], w.sampleRate);
      ctx.note(`left (caller, the browser): ${JSON.stringify(left)}; right (callee, the phone): ${JSON.stringify(right)}`);
      assert.ok(right.nonSilentShare >= 0.5, `the phone's tone fills the right channel: ${JSON.stringify(right)}`);
      assert.ok(right.zeroCrossingHz >= 400 && right.zeroCrossingHz <= 480, `≈440 Hz on the right: ${JSON.stringify(right)}`);
      assert.ok(left.peak > 0, `the browser's audio on the left: ${JSON.stringify(left)}`);
    });
    await ctx.step(`MNS: Alicom-Queue-${uid}-VoiceRecordReport has the channel's VoiceRecordReport (its URL); ArtcCdrReport has the CDR`, async () => {
      const vq = `Alicom-Queue-${uid}-VoiceRecordReport`;
      const vr = await eventually(
        async () => (await M.queueMessages(ctx, vq)).find((m) => m.decoded && (m.decoded.channelId === ch || m.decoded.call_id === ch)),
        { timeout: 5000, what: `a VoiceRecordReport for ${ch} in ${vq}` },
      );
      ctx.note(`VoiceRecordReport: ${JSON.stringify(vr.decoded)}`);
      assert.equal(vr.decoded.record_url, rec.url, JSON.stringify(vr.decoded));
      assert.equal(vr.decoded.callee, '13800000007', JSON.stringify(vr.decoded));
      assert.equal(vr.decoded.alicomRtcType, 'voip2pstn', JSON.stringify(vr.decoded));
      const cq = `Alicom-Queue-${uid}-ArtcCdrReport`;
      const cr = (await M.queueMessages(ctx, cq)).filter((m) => m.decoded && m.decoded.channelId === ch);
      assert.equal(cr.length, 1, `one ArtcCdrReport for ${ch} in ${cq}`);
      const cdr = await C.cdrOf(ctx, ch);
      assert.deepEqual(cr[0].decoded, cdr);
      ctx.note(`ArtcCdrReport: ${JSON.stringify(cr[0].decoded)}`);
      assert.equal(cdr.alicomRtcType, 'voip2pstn');
      // Not asserted: the call was recorded by default (media.record_voip2pstn), but the CDR's
      // detail.needRecord (and /admin/calls needRecord) only reflect what was asked for.
      ctx.note(`CDR detail.needRecord = ${cdr.detail.needRecord} (recorded by default: media.record_voip2pstn)`);
    });
    await ctx.step('A stays available', () => assertStayedUp(ctx, a));
  },
);
