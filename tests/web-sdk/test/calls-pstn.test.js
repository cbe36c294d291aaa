'use strict';
// VoIP→PSTN, DTMF and PSTN→VoIP signalling (docs/protocol.md, docs/calls.md, docs/pstn.md):
// a page calls the emulator's simulated phones (magic numbers) through the unmodified SDK, and a
// simulated phone calls a page through a bought number and the customer's inbound callback.
// Every check is signalling, the SDK's callbacks and codes, and the emulator's view of the call and
// the phone. Media-dependent callbacks (onActive, onNetworkQuality, onMediaStatistics) are left out
// of the asserted callback lists; the calls with audio are test/calls-media.test.js.
// Most scenarios run the emulator on a manual clock, so the phones' timings are exact and free.

const assert = require('node:assert/strict');
const { webSdkSuite } = require('../lib/suite');
const C = require('../lib/calls');

const s = webSdkSuite('calls-pstn.test.js');

const MANUAL = '[clock]\nmode = "manual"\n';
const SHOW = '02160000001'; // a bought number of the default tenant (fixtures/default.toml)

async function callPstn(ctx, dev, phoneNumber) {
  const t0 = Date.now();
  await dev.page.evaluate((show, n) => window.harness.callPstn(show, n), SHOW, phoneNumber);
  return t0;
}

s.scenario(
  'voip→pstn: busy phone 13800000002 → onStopped(2000109)',
  {
    config: MANUAL,
    description:
      'A calls the magic busy number 13800000002 showing 02160000001. The phone answers Busy at once: A ' +
      'onCalleeConnecting, then cs_disconnect{2000109,"callee busy"} → onStopped(2000109,"callee busy"); no ' +
      'onCalleeRinging. Emulator: ended, causeCode 2000109, leg busy; the phone idle, its history end "busy"; CDR ' +
      'voip2pstn with the display number.',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    C.wiresAtEnd(ctx, [a]);
    const t0 = await callPstn(ctx, a, '13800000002');
    await ctx.step('A: onCalleeConnecting, onStopped(2000109, "callee busy")', async () => {
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 10000 });
      ctx.timing('callPstn → onStopped', st.t - t0);
      assert.deepEqual(st.args.slice(0, 2), [2000109, 'callee busy']);
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onStopped(2000109,"callee busy")']);
    });
    const ch = await C.channelOf(a);
    await ctx.step('emulator: ended, causeCode 2000109, leg busy; phone idle (history: busy); CDR voip2pstn', async () => {
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.causeCode, 2000109);
      assert.equal(c.legs.length, 1);
      assert.deepEqual(c.legs[0].target, { type: 'phone', number: '13800000002', display: SHOW });
      assert.equal(c.legs[0].outcome, 'busy');
      const p = await C.phone(ctx, '13800000002');
      assert.equal(p.state, 'idle', JSON.stringify(p));
      assert.equal(p.history.length, 1, JSON.stringify(p));
      assert.equal(p.history[0].end, 'busy', JSON.stringify(p));
      assert.equal(p.history[0].channelId, ch);
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.alicomRtcType, 'voip2pstn');
      assert.equal(cdr.callee, '13800000002');
      assert.equal(cdr.detail.displayNumber, SHOW);
      assert.equal(cdr.detail.causeCode, 2000109);
      assert.equal(cdr.callOutInfo[0].outcome, 'busy');
    });
    await ctx.step('A stays available', () => C.serviceStayedUp(ctx, a));
  },
);

s.scenario(
  'voip→pstn: rejecting phone 13800000004 → onCalleeRinging, onStopped(2000106) after 2 s (manual clock)',
  {
    config: MANUAL,
    description:
      'A calls 13800000004 (rings 2 s, rejects). The phone rings at once → A onCalleeRinging. The test advances the ' +
      'emulator clock 1.9 s (still ringing), then 0.1 s: the phone rejects → answered{callResult:2} → A ' +
      'onStopped(2000106,"answer reject"). Emulator: ended, causeCode 2000106, leg rejected; phone idle, history ' +
      '"rejected".',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    C.wiresAtEnd(ctx, [a]);
    const t0 = await callPstn(ctx, a, '13800000004');
    await ctx.step('A: onCalleeConnecting, onCalleeRinging; the phone is ringing', async () => {
      const r = await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
      ctx.timing('callPstn → onCalleeRinging', r.t - t0);
      const ch = await C.channelOf(a);
      await C.waitCall(ctx, ch, 'ringing');
      const p = await C.phone(ctx, '13800000004');
      assert.equal(p.state, 'ringing', JSON.stringify(p));
      assert.equal(p.channelId, ch);
      assert.equal(p.peer, SHOW, 'the phone sees the display number');
    });
    const ch = await C.channelOf(a);
    await ctx.step('advance 1.9 s: still ringing', async () => {
      await ctx.emu.admin.advanceClock(1900);
      await ctx.sleep(300);
      assert.equal((await C.phone(ctx, '13800000004')).state, 'ringing');
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging']);
    });
    const t = Date.now();
    await ctx.step('advance 0.1 s: A onStopped(2000106, "answer reject")', async () => {
      await ctx.emu.admin.advanceClock(100);
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 5000 });
      ctx.timing('advance → onStopped', st.t - t);
      assert.deepEqual(st.args.slice(0, 2), [2000106, 'answer reject']);
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onStopped(2000106,"answer reject")']);
    });
    await ctx.step('emulator: ended, causeCode 2000106, leg rejected after 2000 ms; phone idle (history: rejected)', async () => {
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.causeCode, 2000106);
      assert.equal(c.legs[0].outcome, 'rejected');
      assert.equal(c.legs[0].endedMs - c.legs[0].startMs, 2000);
      const p = await C.phone(ctx, '13800000004');
      assert.equal(p.state, 'idle');
      assert.equal(p.history[0].end, 'rejected', JSON.stringify(p));
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.alicomRtcType, 'voip2pstn');
      assert.equal(cdr.callOutInfo[0].outcome, 'rejected');
    });
    await ctx.step('A stays available', () => C.serviceStayedUp(ctx, a));
  },
);

s.scenario(
  'voip→pstn: answering phone 13800000001 → active, phone in_call; caller stop() → phone idle, CDR voip2pstn',
  {
    config: MANUAL,
    description:
      'A calls 13800000001 (rings 1 s, answers). A onCalleeRinging; advancing 1 s the phone answers: the emulator ' +
      'shows the call active, the leg answered, the phone in_call, and sends A answered{1} + peerJoinedChannel (media ' +
      'callbacks are not asserted here: calls-media.test.js). After 5 s more of emulator time A calls stop(): A onStopping(0,"ok"), ' +
      'onStopped(0,"ok") (leaveChannel); the phone is idle, history "ended"; the CDR is voip2pstn with one leg, ' +
      'completed, duration 5 s.',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    C.wiresAtEnd(ctx, [a]);
    const t0 = await callPstn(ctx, a, '13800000001');
    await ctx.step('A: onCalleeConnecting, onCalleeRinging; the phone rings', async () => {
      const r = await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
      ctx.timing('callPstn → onCalleeRinging', r.t - t0);
      assert.equal((await C.phone(ctx, '13800000001')).state, 'ringing');
    });
    const ch = await C.channelOf(a);
    await ctx.step('advance 1 s: the phone answers; emulator: active, leg answered, phone in_call', async () => {
      await ctx.emu.admin.advanceClock(1000);
      const c = await C.waitCall(ctx, ch, 'active');
      assert.equal(c.legs[0].state, 'answered');
      assert.equal(c.alicomRtcType, 'voip2pstn');
      const p = await C.phone(ctx, '13800000001');
      assert.equal(p.state, 'in_call', JSON.stringify(p));
      assert.equal(p.channelId, ch);
      assert.equal(p.role, 'callee');
    });
    await ctx.step('the emulator sent A answered and peerJoinedChannel; no signalling callback fires (media callbacks not asserted)', async () => {
      const tl = (await C.adminCall(ctx, ch)).timeline;
      const out = tl.filter((e) => e.kind === 'envelope.out' && e.rtcId === a.rtcId).map((e) => e.detail && e.detail.messageType);
      ctx.note(`emulator → A for the channel: ${out.join(', ')}`);
      assert.ok(out.includes('answered'), out.join(','));
      assert.ok(out.includes('peerJoinedChannel'), out.join(','));
      await ctx.sleep(500);
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging']);
    });
    await ctx.emu.admin.advanceClock(5000);
    const th = Date.now();
    await a.page.evaluate(() => window.harness.hangup());
    await ctx.step('A stop(): onStopping(0,"ok"), onStopped(0,"ok")', async () => {
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 5000 });
      ctx.timing('stop() → onStopped', st.t - th);
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onStopping(0,"ok")', 'onStopped(0,"ok")']);
    });
    await ctx.step('emulator: ended (hung up by the caller), phone idle (history: ended); CDR voip2pstn, one leg, 5 s', async () => {
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.causeCode, 2000099);
      assert.equal(c.legs[0].outcome, 'completed');
      const p = await C.phone(ctx, '13800000001');
      assert.equal(p.state, 'idle', JSON.stringify(p));
      assert.equal(p.history.length, 1, JSON.stringify(p));
      assert.equal(p.history[0].end, 'ended', JSON.stringify(p));
      assert.equal(p.history[0].channelId, ch);
      assert.equal(p.history[0].answeredAt, c.answeredMs, JSON.stringify(p));
      assert.equal(p.history[0].endedAt, c.endedMs, JSON.stringify(p));
      const cdr = await C.cdrOf(ctx, ch);
      ctx.note(`CDR: ${JSON.stringify(cdr)}`);
      assert.equal(cdr.alicomRtcType, 'voip2pstn');
      assert.equal(cdr.caller, a.rtcId);
      assert.equal(cdr.callee, '13800000001');
      assert.equal(cdr.duration, '5');
      assert.equal(cdr.detail.displayNumber, SHOW);
      assert.equal(cdr.callOutInfo.length, 1);
      assert.equal(cdr.callOutInfo[0].callee, '13800000001');
      assert.equal(cdr.callOutInfo[0].caller, SHOW);
      assert.equal(cdr.callOutInfo[0].outcome, 'completed');
      assert.equal(cdr.callOutInfo[0].duration, '5');
    });
    await ctx.step('A stays available', () => C.serviceStayedUp(ctx, a));
  },
);

s.scenario(
  'dtmf: phone 13800000008 presses 1234# → onDtmfData "1","2","3","4","#" in order (manual clock)',
  {
    config: MANUAL,
    description:
      'A calls 13800000008 (rings 1 s, answers, presses 1234# from 1 s after answering, 300 ms apart). The test ' +
      'advances the clock 1 s (answer), then 3.2 s. The emulator sends cs_dtmf per key; the SDK delivers ' +
      'onDtmfData(dtmf, timestamp); the SDK\'s handler only checks state != DESTROYED, so the digits arrive whether ' +
      'or not the call is ACTIVE yet. Digits in order, timestamps = the emulator-clock press times.',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    C.wiresAtEnd(ctx, [a]);
    await callPstn(ctx, a, '13800000008');
    await ctx.step('A: onCalleeRinging', () => ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 }));
    const ch = await C.channelOf(a);
    const answeredAt = await ctx.step('advance 1 s: the phone answers (emulator: active)', async () => {
      await ctx.emu.admin.advanceClock(1000);
      const c = await C.waitCall(ctx, ch, 'active');
      return c.answeredMs;
    });
    const t = Date.now();
    await ctx.step('advance 3.2 s: onDtmfData "1","2","3","4","#", in order, with the press times', async () => {
      await ctx.emu.admin.advanceClock(3200);
      await ctx.waitFor(a, 'onDtmfData', { timeout: 5000, count: 5 });
      ctx.timing('advance → 5th onDtmfData', Date.now() - t);
      const evs = (await ctx.events(a)).filter((e) => e.name === 'onDtmfData');
      assert.deepEqual(evs.map((e) => e.args[0]), ['1', '2', '3', '4', '#']);
      const stamps = evs.map((e) => e.args[1]);
      ctx.note(`onDtmfData timestamps - answeredMs: ${stamps.map((x) => x - answeredAt).join(', ')}`);
      assert.deepEqual(stamps.map((x) => x - answeredAt), [1000, 1300, 1600, 1900, 2200]);
      const p = await C.phone(ctx, '13800000008');
      assert.equal(p.digitsSent, '1234#', JSON.stringify(p));
    });
    await ctx.step('A\'s call callbacks: connecting, ringing, 5× onDtmfData (media callbacks not asserted)', async () => {
      assert.deepEqual(await C.callCallbacks(ctx, a), [
        'onCalleeConnecting',
        'onCalleeRinging',
        'onDtmfData("1",' + (answeredAt + 1000) + ')',
        'onDtmfData("2",' + (answeredAt + 1300) + ')',
        'onDtmfData("3",' + (answeredAt + 1600) + ')',
        'onDtmfData("4",' + (answeredAt + 1900) + ')',
        'onDtmfData("#",' + (answeredAt + 2200) + ')',
      ]);
    });
    await a.page.evaluate(() => window.harness.hangup());
    await ctx.step('A stop() → the call ends, the phone is idle', async () => {
      await ctx.waitFor(a, 'onStopped', { timeout: 5000 });
      await C.waitCall(ctx, ch, 'ended');
      assert.equal((await C.phone(ctx, '13800000008')).state, 'idle');
    });
  },
);

/** PSTN→VoIP: an inbound callback that routes every call to `rtcId`. */
async function inboundTo(ctx, rtcId) {
  const cb = await C.callbackServer(() => ({ success: true, model: { mixedCalleeInfos: [{ type: 'voip', rtcId }] } }));
  await ctx.emu.admin.put('/admin/callbacks', { inbound: `${cb.url}/inbound` });
  return cb;
}

const CALLER = '13911112222';

async function dialIn(ctx) {
  const t0 = Date.now();
  const r = await ctx.emu.admin.post('/admin/pstn/calls', { from: CALLER, to: SHOW });
  assert.ok(r.channelId, JSON.stringify(r));
  return { t0, ch: r.channelId };
}

async function receives(ctx, b, ch, t0, cb) {
  return ctx.step('B: onReceivingAudioCall, peer = the phone (isPstn, 13911112222); the inbound callback was asked', async () => {
    const ev = await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
    ctx.timing('dial-in → B onReceivingAudioCall', ev.t - t0);
    const peer = ev.args[0].peer;
    ctx.note(`B's peer: ${JSON.stringify(peer)}`);
    assert.equal(peer.isPstn, true, JSON.stringify(peer));
    assert.equal(peer.phoneNumber, CALLER, JSON.stringify(peer));
    assert.equal(ev.args[0].isCallingParty, false);
    assert.equal(await C.channelOf(b), ch, 'B\'s call has the channelId of the dial-in');
    assert.equal(cb.requests.length, 1, JSON.stringify(cb.requests));
    assert.deepEqual(cb.requests[0].body, { phoneNumber: CALLER, platformNumber: SHOW, channelId: ch });
    const c = await C.waitCall(ctx, ch, 'ringing');
    assert.equal(c.caller.type, 'phone');
    assert.equal(c.caller.number, CALLER);
    assert.equal(c.legs[0].target.rtcId, b.rtcId);
    const p = await C.phone(ctx, CALLER);
    assert.equal(p.state, 'in_call', JSON.stringify(p));
    assert.equal(p.role, 'caller', JSON.stringify(p));
  });
}

s.scenario(
  'pstn→voip: a phone calls 02160000001, the inbound callback routes it to B; B rejects',
  {
    description:
      'A tiny HTTP server plays the inbound callback ({success:true, model:{mixedCalleeInfos:[{type:"voip", ' +
      'rtcId:B}]}}), set with PUT /admin/callbacks. POST /admin/pstn/calls {from:13911112222, to:02160000001}: B ' +
      'gets onReceivingAudioCall, its peer the phone. B stop() before start(): onStopping(0,"ok"), onStopped(0,' +
      '"ok"). Emulator: the call ended (the leg rejected), the phone idle with history end set and the ' +
      '"rejected" announcement; CDR pstn2voip.',
  },
  async (ctx) => {
    const [b] = await C.online(ctx, 'bob');
    C.wiresAtEnd(ctx, [b]);
    const cb = await inboundTo(ctx, b.rtcId);
    try {
      const { t0, ch } = await dialIn(ctx);
      await receives(ctx, b, ch, t0, cb);
      const tr = Date.now();
      await b.page.evaluate(() => window.harness.hangup());
      await ctx.step('B: onStopping(0,"ok"), onStopped(0,"ok")', async () => {
        const st = await ctx.waitFor(b, 'onStopped', { timeout: 5000 });
        ctx.timing('B stop() → onStopped', st.t - tr);
        assert.deepEqual(await C.callCallbacks(ctx, b), ['onStopping(0,"ok")', 'onStopped(0,"ok")']);
      });
      await ctx.step('emulator: ended, the leg rejected; the phone idle, heard "rejected"; CDR pstn2voip', async () => {
        const c = await C.waitCall(ctx, ch, 'ended');
        ctx.timing('B stop() → emulator ended (endedMs)', c.endedMs - tr);
        ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
        assert.equal(c.legs[0].outcome, 'rejected');
        const p = await C.phone(ctx, CALLER);
        ctx.note(`phone: ${JSON.stringify(p)}`);
        assert.equal(p.state, 'idle', JSON.stringify(p));
        assert.equal(p.history.length, 1, JSON.stringify(p));
        assert.equal(p.history[0].channelId, ch);
        assert.ok(p.history[0].endedAt, JSON.stringify(p));
        assert.deepEqual(p.history[0].announcements, ['rejected'], JSON.stringify(p));
        const cdr = await C.cdrOf(ctx, ch);
        ctx.note(`CDR: ${JSON.stringify(cdr)}`);
        assert.equal(cdr.alicomRtcType, 'pstn2voip');
        assert.equal(cdr.caller, CALLER);
        assert.equal(cdr.callOutInfo[0].callee, b.rtcId);
        assert.equal(cdr.callOutInfo[0].outcome, 'rejected');
      });
      await ctx.step('B stays available', () => C.serviceStayedUp(ctx, b));
    } finally {
      await cb.close();
    }
  },
);

s.scenario(
  'pstn→voip: B answers → active, phone connected; the phone hangs up → B onStopped(2000099)',
  {
    description:
      'Same routing as above. B answers with call.start(): answer(1) + joinChannel; the emulator shows the call ' +
      'active, the leg answered and joined, the phone in_call (connected). Then the phone hangs up (POST ' +
      '/admin/pstn/phones/13911112222/hangup): B gets peerLeftChannel → onStopped(2000099,"remote hangup"). ' +
      'Emulator: ended, 2000099 (hung up by the caller); the phone idle, history "hung_up"; CDR pstn2voip completed.',
  },
  async (ctx) => {
    const [b] = await C.online(ctx, 'bob');
    C.wiresAtEnd(ctx, [b]);
    const cb = await inboundTo(ctx, b.rtcId);
    try {
      const { t0, ch } = await dialIn(ctx);
      await receives(ctx, b, ch, t0, cb);
      const ta = Date.now();
      await b.page.evaluate(() => window.harness.answer());
      await ctx.step('B answers: emulator active, leg answered and joined; phone in_call', async () => {
        const c = await C.waitCall(ctx, ch, null, { pred: (x) => x.state === 'active' && x.legs[0].joined });
        ctx.timing('B start() → emulator active + joined', Date.now() - ta);
        assert.equal(c.alicomRtcType, 'pstn2voip');
        assert.equal(c.legs[0].state, 'answered');
        const p = await C.phone(ctx, CALLER);
        assert.equal(p.state, 'in_call', JSON.stringify(p));
        assert.ok(p.history.length === 0, JSON.stringify(p));
        assert.deepEqual(await C.callCallbacks(ctx, b), [], 'B: no signalling callback while connected');
      });
      await ctx.sleep(1000);
      const th = Date.now();
      await ctx.emu.admin.post(`/admin/pstn/phones/${CALLER}/hangup`);
      await ctx.step('the phone hangs up: B onStopped(2000099, "remote hangup")', async () => {
        const st = await ctx.waitFor(b, 'onStopped', { timeout: 5000 });
        ctx.timing('phone hangup → B onStopped', st.t - th);
        assert.deepEqual(st.args.slice(0, 2), [2000099, 'remote hangup']);
        assert.deepEqual(await C.callCallbacks(ctx, b), ['onStopped(2000099,"remote hangup")']);
      });
      await ctx.step('emulator: ended, causeCode 2000099; phone idle (history: hung_up); CDR pstn2voip completed', async () => {
        const c = await C.waitCall(ctx, ch, 'ended');
        ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
        assert.equal(c.causeCode, 2000099);
        assert.equal(c.legs[0].outcome, 'completed');
        const p = await C.phone(ctx, CALLER);
        assert.equal(p.state, 'idle');
        assert.equal(p.history[0].end, 'hung_up', JSON.stringify(p));
        const cdr = await C.cdrOf(ctx, ch);
        ctx.note(`CDR: ${JSON.stringify(cdr)}`);
        assert.equal(cdr.alicomRtcType, 'pstn2voip');
        assert.equal(cdr.caller, CALLER);
        assert.equal(cdr.callee, b.rtcId);
        assert.equal(cdr.callInInfo.callee, SHOW);
        assert.ok(cdr.startTime);
        assert.equal(cdr.callOutInfo[0].outcome, 'completed');
      });
      await ctx.step('B stays available', () => C.serviceStayedUp(ctx, b));
    } finally {
      await cb.close();
    }
  },
);
