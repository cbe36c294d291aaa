'use strict';
// VoIP→VoIP call signalling (docs/protocol.md#call-flows, docs/calls.md): two or three pages, each its
// own account, call each other through the unmodified SDK. Every check is a signalling outcome,
// its SDK callback and code on both pages, and the emulator's view of the call
// (/admin/calls/{channelId}, CDR). Media-dependent callbacks (onActive, onNetworkQuality,
// onMediaStatistics) are left out of the asserted callback lists (lib/calls.js); the calls with
// audio are test/calls-media.test.js.

const assert = require('node:assert/strict');
const { webSdkSuite } = require('../lib/suite');
const C = require('../lib/calls');

const s = webSdkSuite('calls-voip.test.js');

s.scenario(
  'voip→voip: callee rejects → caller onStopped(2000106)',
  {
    description:
      'A calls B. B gets onReceivingAudioCall (peer = A) and A onCalleeRinging; B calls stop() before start() ' +
      '(docs/protocol.md#failure-paths): B onStopping(0,"ok") → answer(callResult 2) → onStopped(0,"ok"); the emulator sends A ' +
      'answered{callResult:2} → A onStopped(2000106,"answer reject"). Emulator: call ended, causeCode 2000106, B\'s ' +
      'leg outcome rejected, a voip2voip CDR (in /admin/calls/{id} and /admin/cdrs), the row in /admin/calls.',
  },
  async (ctx) => {
    const [a, b] = await C.online(ctx, 'alice', 'bob');
    C.wiresAtEnd(ctx, [a, b]);
    const t0 = Date.now();
    await a.page.evaluate((id) => window.harness.call(id), b.rtcId);

    const recv = await ctx.step('B: onReceivingAudioCall with peer = A; A: onCalleeConnecting, onCalleeRinging', async () => {
      const ev = await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
      ctx.timing('call → B onReceivingAudioCall', ev.t - t0);
      assert.equal(ev.args[0].peer.rtcId, a.rtcId, JSON.stringify(ev.args));
      assert.equal(ev.args[0].isCallingParty, false, JSON.stringify(ev.args));
      const ring = await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
      ctx.timing('call → A onCalleeRinging', ring.t - t0);
      return ev;
    });
    const ch = await C.channelOf(a);
    assert.equal(await C.channelOf(b), ch, 'both pages hold the same channelId');
    await ctx.step('emulator: the call is ringing, one leg to B', async () => {
      const c = await C.waitCall(ctx, ch, 'ringing');
      assert.equal(c.caller.rtcId, a.rtcId);
      assert.equal(c.legs.length, 1, JSON.stringify(C.summaryOf(c)));
      assert.equal(c.legs[0].target.rtcId, b.rtcId);
      assert.equal(c.legs[0].state, 'ringing');
    });

    const tr = Date.now();
    await b.page.evaluate(() => window.harness.hangup());
    await ctx.step('A: onStopped(2000106, "answer reject") after B\'s onReceivingAudioCall', async () => {
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 10000 });
      ctx.timing('B stop() → A onStopped', st.t - tr);
      assert.deepEqual(st.args.slice(0, 2), [2000106, 'answer reject']);
      assert.ok(recv.t <= st.t, 'B was called before A stopped');
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onStopped(2000106,"answer reject")']);
    });
    await ctx.step('B: onStopping(0,"ok") then onStopped(0,"ok") (a local stop)', async () => {
      const st = await ctx.waitFor(b, 'onStopped', { timeout: 10000 });
      ctx.timing('B stop() → B onStopped', st.t - tr);
      assert.deepEqual(await C.callCallbacks(ctx, b), ['onStopping(0,"ok")', 'onStopped(0,"ok")']);
    });
    await ctx.step('emulator: ended, causeCode 2000106, leg rejected; CDR voip2voip', async () => {
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.causeCode, 2000106, JSON.stringify(C.summaryOf(c)));
      assert.equal(c.legs[0].state, 'ended');
      assert.equal(c.legs[0].outcome, 'rejected');
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.alicomRtcType, 'voip2voip');
      assert.equal(cdr.caller, a.rtcId);
      assert.equal(cdr.callee, b.rtcId);
      assert.equal(cdr.duration, '0');
      assert.equal(cdr.detail.causeCode, 2000106);
      assert.equal(cdr.callOutInfo.length, 1);
      assert.equal(cdr.callOutInfo[0].outcome, 'rejected');
      const row = (await ctx.emu.admin.get('/admin/calls')).calls.find((x) => x.channelId === ch);
      assert.ok(row, 'the call is listed in GET /admin/calls');
      assert.equal(row.state, 'ended');
      assert.equal(row.causeCode, 2000106);
      assert.equal(row.caller, a.rtcId);
      assert.deepEqual(row.callees, [b.rtcId]);
    });
    await ctx.step('both pages stay available', async () => {
      await C.serviceStayedUp(ctx, a);
      await C.serviceStayedUp(ctx, b);
    });
  },
);

s.scenario(
  'voip→voip: caller cancels while ringing → callee onStopped(2000107)',
  {
    description:
      'A calls B; after A\'s onCalleeRinging (and B\'s onReceivingAudioCall) A calls stop() (docs/protocol.md#failure-paths): A ' +
      'onStopping(0,"ok"), leaveChannel + cancelCall, onStopped(0,"ok"); the emulator sends B canceledCall → B ' +
      'onStopped(2000107,"remote cancel"). Emulator: call ended "cancelled by the caller", B\'s leg cancelled, CDR.',
  },
  async (ctx) => {
    const [a, b] = await C.online(ctx, 'alice', 'bob');
    C.wiresAtEnd(ctx, [a, b]);
    const t0 = Date.now();
    await a.page.evaluate((id) => window.harness.call(id), b.rtcId);
    const ring = await ctx.step('A: onCalleeRinging; B: onReceivingAudioCall (peer = A)', async () => {
      const r = await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
      ctx.timing('call → A onCalleeRinging', r.t - t0);
      const ev = await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
      assert.equal(ev.args[0].peer.rtcId, a.rtcId);
      return r;
    });
    const ch = await C.channelOf(a);
    await C.waitCall(ctx, ch, 'ringing');

    const tc = Date.now();
    await a.page.evaluate(() => window.harness.hangup());
    await ctx.step('B: onStopped(2000107, "remote cancel")', async () => {
      const st = await ctx.waitFor(b, 'onStopped', { timeout: 10000 });
      ctx.timing('A stop() → B onStopped', st.t - tc);
      assert.deepEqual(st.args.slice(0, 2), [2000107, 'remote cancel']);
      assert.deepEqual(await C.callCallbacks(ctx, b), ['onStopped(2000107,"remote cancel")']);
    });
    await ctx.step('A: onCalleeConnecting, onCalleeRinging, onStopping(0,"ok"), onStopped(0,"ok")', async () => {
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 10000 });
      ctx.timing('A stop() → A onStopped', st.t - tc);
      assert.ok(ring.seq < st.seq);
      assert.deepEqual(await C.callCallbacks(ctx, a), [
        'onCalleeConnecting',
        'onCalleeRinging',
        'onStopping(0,"ok")',
        'onStopped(0,"ok")',
      ]);
    });
    await ctx.step('emulator: A sent leaveChannel and cancelCall; the call ended, cancelled by the caller; CDR', async () => {
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.legs.length, 1);
      assert.equal(c.legs[0].outcome, 'cancelled', JSON.stringify(C.summaryOf(c)));
      assert.match(c.endReason, /cancel/, JSON.stringify(C.summaryOf(c)));
      const ins = c.timeline
        .filter((e) => e.kind === 'envelope.in' && e.rtcId === a.rtcId)
        .map((e) => e.detail && e.detail.messageType);
      ctx.note(`A's requests for the channel: ${ins.join(', ')}`);
      assert.ok(ins.includes('cancelCall'), ins.join(','));
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.alicomRtcType, 'voip2voip');
      assert.equal(cdr.callOutInfo[0].outcome, 'cancelled');
      assert.equal(cdr.duration, '0');
    });
    await ctx.step('both pages stay available', async () => {
      await C.serviceStayedUp(ctx, a);
      await C.serviceStayedUp(ctx, b);
    });
  },
);

s.scenario(
  'voip→voip: callee offline (never logged in) → caller onStopped(3100000)',
  {
    description:
      'B is an account (AddRtcAccount) that never logged in. A calls B: onCalleeConnecting, then the emulator ' +
      'sends cs_disconnect{3100000} → A onStopped(3100000, cause) verbatim, no onCalleeRinging (docs/protocol.md#failure-paths, ' +
      'docs/calls.md). Emulator: call ended, causeCode 3100000, the leg offline; CDR.',
  },
  async (ctx) => {
    const [a] = await C.online(ctx, 'alice');
    C.wiresAtEnd(ctx, [a]);
    const offline = await ctx.harness.addAccount(ctx.newDeviceId('web-offline'));
    const t0 = Date.now();
    await a.page.evaluate((id) => window.harness.call(id), offline);
    await ctx.step('A: onCalleeConnecting, then onStopped(3100000, …); no onCalleeRinging', async () => {
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 10000 });
      ctx.timing('call → A onStopped', st.t - t0);
      assert.equal(st.args[0], 3100000, JSON.stringify(st.args));
      ctx.note(`A onStopped args: ${JSON.stringify(st.args.slice(0, 2))}`);
      const cbs = await C.callCallbacks(ctx, a);
      assert.deepEqual(cbs, ['onCalleeConnecting', `onStopped(3100000,${JSON.stringify(st.args[1])})`]);
    });
    const ch = await C.channelOf(a);
    await ctx.step('emulator: ended, causeCode 3100000, the leg offline; CDR', async () => {
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.causeCode, 3100000);
      assert.equal(c.legs.length, 1);
      assert.equal(c.legs[0].target.rtcId, offline);
      assert.equal(c.legs[0].outcome, 'offline');
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.detail.causeCode, 3100000);
      assert.equal(cdr.callee, offline);
      assert.equal(cdr.callOutInfo[0].outcome, 'offline');
    });
    await ctx.step('A stays available', () => C.serviceStayedUp(ctx, a));
  },
);

s.scenario(
  'voip→voip: callee busy in another call → caller onStopped(2000109)',
  {
    description:
      'C calls B and B answers with call.start() (the emulator marks the call active on answer). Then A ' +
      'calls B: the emulator sends A cs_disconnect{2000109,"callee busy"} → A onStopped(2000109,"callee busy"), and ' +
      'B gets no second onReceivingAudioCall. The C–B call stays active. Then C hangs up: C onStopped(0,"ok"), ' +
      'B onStopped(2000099,"remote hangup") (peerLeftChannel), the C–B CDR is voip2voip, completed. Last, B is ' +
      'callable again (the busy mark is gone): A calls B, B rings, A cancels.',
  },
  async (ctx) => {
    const [a, b, c] = await C.online(ctx, 'alice', 'bob', 'carol');
    C.wiresAtEnd(ctx, [a, b, c]);
    await c.page.evaluate((id) => window.harness.call(id), b.rtcId);
    await ctx.step('C calls B: B onReceivingAudioCall, C onCalleeRinging', async () => {
      await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
      await ctx.waitFor(c, 'onCalleeRinging', { timeout: 10000 });
    });
    const chCB = await C.channelOf(c);
    const ta = Date.now();
    await b.page.evaluate(() => window.harness.answer());
    await ctx.step('B answers (start()): the emulator shows the C–B call active, B\'s leg answered', async () => {
      const call = await C.waitCall(ctx, chCB, 'active');
      ctx.timing('B start() → emulator active', Date.now() - ta);
      assert.equal(call.legs[0].state, 'answered', JSON.stringify(C.summaryOf(call)));
      assert.ok(call.answeredMs, JSON.stringify(C.summaryOf(call)));
    });
    await ctx.step('the emulator: B joined the channel (joinChannel after answer)', async () => {
      await C.waitCall(ctx, chCB, null, { pred: (x) => x.legs[0].joined === true });
    });

    const t0 = Date.now();
    await a.page.evaluate((id) => window.harness.call(id), b.rtcId);
    await ctx.step('A calls B: A onStopped(2000109, "callee busy"), no onCalleeRinging', async () => {
      const st = await ctx.waitFor(a, 'onStopped', { timeout: 10000 });
      ctx.timing('A call → A onStopped', st.t - t0);
      assert.deepEqual(st.args.slice(0, 2), [2000109, 'callee busy']);
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onStopped(2000109,"callee busy")']);
    });
    const chAB = await C.channelOf(a);
    await ctx.step('emulator: A→B ended, causeCode 2000109, leg busy; C–B still active; B got one call only', async () => {
      const ab = await C.waitCall(ctx, chAB, 'ended');
      ctx.note(`A→B call: ${JSON.stringify(C.summaryOf(ab))}`);
      assert.equal(ab.causeCode, 2000109);
      assert.equal(ab.legs[0].outcome, 'busy');
      const cdr = await C.cdrOf(ctx, chAB);
      assert.equal(cdr.detail.causeCode, 2000109);
      assert.equal((await C.adminCall(ctx, chCB)).state, 'active');
      const evs = await ctx.events(b);
      assert.equal(evs.filter((e) => e.name === 'onReceivingAudioCall').length, 1);
      assert.deepEqual(await C.callCallbacks(ctx, b), [], 'B: no signalling callback while connected');
    });

    const th = Date.now();
    await c.page.evaluate(() => window.harness.hangup());
    await ctx.step('C hangs up: C onStopping/onStopped(0,"ok"); B onStopped(2000099, "remote hangup")', async () => {
      const sb = await ctx.waitFor(b, 'onStopped', { timeout: 10000 });
      ctx.timing('C stop() → B onStopped', sb.t - th);
      assert.deepEqual(sb.args.slice(0, 2), [2000099, 'remote hangup']);
      await ctx.waitFor(c, 'onStopped', { timeout: 10000 });
      assert.deepEqual(await C.callCallbacks(ctx, c), [
        'onCalleeConnecting',
        'onCalleeRinging',
        'onStopping(0,"ok")',
        'onStopped(0,"ok")',
      ]);
    });
    await ctx.step('emulator: C–B ended, causeCode 2000099, hung up by the caller; CDR voip2voip with the leg completed', async () => {
      const cb = await C.waitCall(ctx, chCB, 'ended');
      ctx.note(`C–B call: ${JSON.stringify(C.summaryOf(cb))}`);
      assert.equal(cb.causeCode, 2000099);
      assert.equal(cb.legs[0].outcome, 'completed');
      const cdr = await C.cdrOf(ctx, chCB);
      assert.equal(cdr.alicomRtcType, 'voip2voip');
      assert.equal(cdr.caller, c.rtcId);
      assert.equal(cdr.callee, b.rtcId);
      assert.ok(cdr.startTime, 'an answered call has a startTime');
      assert.equal(cdr.callOutInfo[0].outcome, 'completed');
      assert.ok(cdr.callOutInfo[0].startTime, JSON.stringify(cdr));
    });
    await ctx.step('nothing left behind: B is callable again (A calls B: B onReceivingAudioCall; A cancels)', async () => {
      const before = (await ctx.events(b)).filter((e) => e.name === 'onReceivingAudioCall').length;
      await a.page.evaluate((id) => window.harness.call(id), b.rtcId);
      await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000, count: before + 1 });
      await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
      await a.page.evaluate(() => window.harness.hangup());
      const st = await ctx.waitFor(b, 'onStopped', { timeout: 10000, count: 2 });
      assert.deepEqual(st.args.slice(0, 2), [2000107, 'remote cancel']);
    });
    await ctx.step('all pages stay available', async () => {
      for (const d of [a, b, c]) await C.serviceStayedUp(ctx, d);
    });
  },
);

s.scenario(
  'voip→voip: no answer, server ring timeout (manual clock) → caller 2000108, callee 2000107',
  {
    config: '[clock]\nmode = "manual"\n\n[calls]\nring_timeout_ms = 20000\n',
    description:
      'Manual emulator clock, [calls] ring_timeout_ms = 20000. A calls B, B does nothing. Advancing the clock by ' +
      '20 s ends the leg: B gets canceledCall → onStopped(2000107,"remote cancel"), A gets cs_disconnect{2000108,' +
      '"no answer"} → onStopped(2000108,"no answer") (docs/calls.md). Emulator: ended, causeCode 2000108, leg ' +
      'no_answer; CDR.',
  },
  async (ctx) => {
    const [a, b] = await C.online(ctx, 'alice', 'bob');
    C.wiresAtEnd(ctx, [a, b]);
    await a.page.evaluate((id) => window.harness.call(id), b.rtcId);
    await ctx.step('ringing: A onCalleeRinging, B onReceivingAudioCall', async () => {
      await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
      await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
    });
    const ch = await C.channelOf(a);
    await C.waitCall(ctx, ch, 'ringing');
    await ctx.step('advance 19.9 s: still ringing', async () => {
      await ctx.emu.admin.advanceClock(19900);
      await ctx.sleep(300);
      assert.equal((await C.adminCall(ctx, ch)).state, 'ringing');
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging']);
    });
    const t = Date.now();
    await ctx.step('advance 0.1 s more: A onStopped(2000108, "no answer"), B onStopped(2000107, "remote cancel")', async () => {
      await ctx.emu.admin.advanceClock(100);
      const sa = await ctx.waitFor(a, 'onStopped', { timeout: 5000 });
      const sb = await ctx.waitFor(b, 'onStopped', { timeout: 5000 });
      ctx.timing('advance → A onStopped', sa.t - t);
      ctx.timing('advance → B onStopped', sb.t - t);
      assert.deepEqual(sa.args.slice(0, 2), [2000108, 'no answer']);
      assert.deepEqual(sb.args.slice(0, 2), [2000107, 'remote cancel']);
      assert.deepEqual(await C.callCallbacks(ctx, a), ['onCalleeConnecting', 'onCalleeRinging', 'onStopped(2000108,"no answer")']);
      assert.deepEqual(await C.callCallbacks(ctx, b), ['onStopped(2000107,"remote cancel")']);
    });
    await ctx.step('emulator: ended, causeCode 2000108, leg no_answer; CDR', async () => {
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.causeCode, 2000108);
      assert.equal(c.legs[0].outcome, 'no_answer');
      assert.equal(c.endedMs - c.legs[0].startMs, 20000, 'the leg rang exactly ring_timeout_ms of emulator time');
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.detail.causeCode, 2000108);
      assert.equal(cdr.callOutInfo[0].outcome, 'no_answer');
    });
    await ctx.step('both pages stay available', async () => {
      await C.serviceStayedUp(ctx, a);
      await C.serviceStayedUp(ctx, b);
    });
  },
);

s.scenario(
  'voip→voip: no answer, the SDK\'s own caller timeout setDefaultCallTimeout(30) → 2000108 / 2000107',
  {
    timeout: 90000,
    description:
      'Real clock, server ring timeout left at 60 s. A calls setDefaultCallTimeout(30) (the SDK clamps to 30..90 s), ' +
      'then calls B, who does nothing. At ~30 s A\'s own timer fires (docs/protocol.md#failure-paths): A onStopping(0,"ok"), ' +
      'onStopped(2000108,"no answer") and sends leaveChannel + cancelCall; the emulator sends B canceledCall → B onStopped(2000107,"remote ' +
      'cancel"). Emulator: ended "cancelled by the caller", leg cancelled. Takes ~32 s.',
  },
  async (ctx) => {
    const [a, b] = await C.online(ctx, 'alice', 'bob');
    C.wiresAtEnd(ctx, [a, b]);
    await a.page.evaluate(() => window.harness.setDefaultCallTimeout(30));
    const t0 = Date.now();
    await a.page.evaluate((id) => window.harness.call(id), b.rtcId);
    await ctx.step('ringing: A onCalleeRinging, B onReceivingAudioCall', async () => {
      await ctx.waitFor(a, 'onCalleeRinging', { timeout: 10000 });
      await ctx.waitFor(b, 'onReceivingAudioCall', { timeout: 10000 });
    });
    const ch = await C.channelOf(a);
    await ctx.step('A: onStopped(2000108, "no answer") at ~30 s; B: onStopped(2000107, "remote cancel")', async () => {
      const sa = await ctx.waitFor(a, 'onStopped', { timeout: 40000 });
      const sb = await ctx.waitFor(b, 'onStopped', { timeout: 5000 });
      ctx.timing('A call → A onStopped', sa.t - t0);
      ctx.timing('A onStopped → B onStopped', sb.t - sa.t);
      assert.ok(sa.t - t0 >= 29000 && sa.t - t0 <= 32000, `A stopped after ${sa.t - t0} ms`);
      assert.deepEqual(sa.args.slice(0, 2), [2000108, 'no answer']);
      assert.deepEqual(sb.args.slice(0, 2), [2000107, 'remote cancel']);
      const cbs = await C.callCallbacks(ctx, a);
      ctx.note(`A call callbacks: ${cbs.join(', ')}`);
      // the SDK's timer path stops the call like a local stop (onStopping(0,"ok")) but reports
      // its lastError in onStopped
      assert.deepEqual(cbs, ['onCalleeConnecting', 'onCalleeRinging', 'onStopping(0,"ok")', 'onStopped(2000108,"no answer")']);
      assert.deepEqual(await C.callCallbacks(ctx, b), ['onStopped(2000107,"remote cancel")']);
    });
    await ctx.step('emulator: ended, cancelled by the caller, leg cancelled; CDR', async () => {
      const c = await C.waitCall(ctx, ch, 'ended');
      ctx.note(`call: ${JSON.stringify(C.summaryOf(c))}`);
      assert.equal(c.legs[0].outcome, 'cancelled');
      const ins = c.timeline
        .filter((e) => e.kind === 'envelope.in' && e.rtcId === a.rtcId)
        .map((e) => e.detail && e.detail.messageType);
      ctx.note(`A's requests for the channel: ${ins.join(', ')}`);
      assert.ok(ins.includes('cancelCall'), ins.join(','));
      const cdr = await C.cdrOf(ctx, ch);
      assert.equal(cdr.callOutInfo[0].outcome, 'cancelled');
    });
    await ctx.step('both pages stay available', async () => {
      await C.serviceStayedUp(ctx, a);
      await C.serviceStayedUp(ctx, b);
    });
  },
);
