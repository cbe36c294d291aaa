'use strict';
// Video calls in real Chromium (issue 19, "proof in a real browser"). The vendor's Web SDK 0.0.11
// is audio only, so these pages run the project's own video client (video-client/,
// docs/video-client.md): the same MQTT envelopes, ACKs and mediaSignal as the SDK, sigv 2, one
// RTCPeerConnection with an audio and a video m-line fed by Chromium's fake camera (640×480) and
// microphone, `allowVideo: 1`, and alicom-emu's `cs_media_mode`. Each scenario asserts
//   * what the pages decode: getStats() inbound-rtp video framesDecoded growing at the camera's
//     frame size, inbound audio packets growing;
//   * the signalling they receive: `called` with allowVideo 1, `cs_media_mode` on both pages;
//   * the emulator's view: /admin/calls/{channelId} (video mode, per-leg video counters, state,
//     CDR type).
// With UPDATE_SCREENSHOTS=1 the first scenario saves docs/video/call.png (a page showing both
// videos), else target/video-screenshots/call.png.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { webSdkSuite, eventually } = require('../lib/suite');
const { REPO } = require('../lib/emulator');
const C = require('../lib/calls');
const V = require('../lib/video');

const s = webSdkSuite('video.test.js');

const SHOTS = process.env.UPDATE_SCREENSHOTS ? path.join(REPO, 'docs', 'video') : path.join(REPO, 'target', 'video-screenshots');
// Chromium's fake camera (--use-fake-device-for-media-stream), asked for 640×480.
const CAM = { width: 640, height: 480 };
// 1.5 s of 20 ms audio frames; ~1 s of the fake camera's 30 fps.
const AUDIO = 75;
const FRAMES = 30;

/** A calls B with video; B gets `called` with allowVideo 1 and answers with `video`. */
async function videoCall(ctx, a, b, { answerVideo = true } = {}) {
  const seqB = await V.lastSeq(b);
  const ch = await a.page.evaluate((id) => window.videoClient.call(id, { video: true }), b.rtcId);
  await ctx.step('A calls B with video: B receives `called` with channelConfig.allowVideo 1 and A as the caller', async () => {
    const called = await V.received(b, 'called', { afterSeq: seqB });
    assert.equal(called.body.channelId, ch);
    assert.equal(called.body.callerInfo.rtcId, a.rtcId, JSON.stringify(called.body));
    assert.equal(called.ms.data.channelConfig.allowVideo, 1, JSON.stringify(called.ms));
    await V.received(a, 'ringing');
  });
  await b.page.evaluate((video) => window.videoClient.answer({ video }), answerVideo);
  await ctx.step(`B answers ${answerVideo ? 'with video' : 'audio-only'}: both joinChannel results applied, ICE connected, the call active`, async () => {
    for (const d of [a, b]) {
      await d.page.waitForFunction(() => {
        const c = window.videoClient.state().call;
        return c && c.joined && c.connectionState === 'connected';
      }, { timeout: 10000 });
    }
    await C.waitCall(ctx, ch, 'active');
  });
  return ch;
}

/** Each page decodes the other's video: framesDecoded +`frames` at the camera's size, VP8. */
async function videoBothWays(ctx, a, b, frames = FRAMES) {
  await ctx.step(`each page decodes the other's video: framesDecoded +${frames} at ${CAM.width}×${CAM.height}, VP8 both ways`, async () => {
    const [ra, rb] = await Promise.all([a, b].map((d) => V.videoGrows(d, { min: frames, ...CAM, timeout: 15000 })));
    for (const [d, r] of [[a, ra], [b, rb]]) {
      assert.equal(r.stats.video.in.codec, 'video/VP8', JSON.stringify(r.stats));
      assert.equal(r.stats.video.out.codec, 'video/VP8', JSON.stringify(r.stats));
      assert.deepEqual([r.stats.video.out.frameWidth, r.stats.video.out.frameHeight], [CAM.width, CAM.height], `${d.name} sends the camera's size: ${JSON.stringify(r.stats.video.out)}`);
      ctx.note(`${d.name}: video in ${r.before} → ${r.after} frames decoded in ${r.ms} ms at ${r.stats.video.in.frameWidth}×${r.stats.video.in.frameHeight}; out ${JSON.stringify(r.stats.video.out)}`);
    }
    for (const d of [a, b]) {
      const st = await V.state(d);
      assert.deepEqual([st.camera.width, st.camera.height], [CAM.width, CAM.height], `${d.name}: the fake camera: ${JSON.stringify(st.camera)}`);
    }
  });
}

/** Inbound audio grows by AUDIO packets on both pages. */
async function audioBothWays(ctx, a, b, label = 'audio flows both ways') {
  await ctx.step(`${label}: inbound audio +${AUDIO} packets on each page`, async () => {
    const rs = await Promise.all([a, b].map((d) => V.audioGrows(d, { min: AUDIO })));
    rs.forEach((r, i) => ctx.note(`${[a, b][i].name}: ${label}: audio in ${r.before} → ${r.after} (${r.ms} ms), ${r.stats.audio.in.codec}`));
  });
}

/** Both pages got `cs_media_mode` {mode 1, rtcId `who`, reason ~ `reason`} with their own call uuid. */
async function bothToldAudio(ctx, ch, devs, who, reason) {
  await ctx.step(`both pages receive cs_media_mode {mode 1, rtcId ${who.name}, "… ${reason.source}"}; the emulator's call is audio`, async () => {
    for (const [d, after] of devs) {
      const m = await V.received(d, 'cs_media_mode', { afterSeq: after });
      assert.equal(m.body.mode, 1, JSON.stringify(m.body));
      assert.equal(m.body.rtcId, who.rtcId, JSON.stringify(m.body));
      assert.equal(m.body.channelId, ch, JSON.stringify(m.body));
      assert.match(m.body.reason, reason, JSON.stringify(m.body));
      const st = await V.state(d);
      assert.equal(m.body.uuid, st.call.uuid, `${d.name}: cs_media_mode carries its own call uuid`);
      assert.equal(st.mediaModes.length, 1, `${d.name}: exactly one cs_media_mode: ${JSON.stringify(st.mediaModes)}`);
    }
    const c = await C.adminCall(ctx, ch);
    assert.equal(c.video.mode, 'audio', JSON.stringify(c.video));
    assert.equal(c.video.reason, `${who.rtcId} ${reason.source}`, JSON.stringify(c.video));
  });
}

/** `who` hangs up (leaveChannel): the other gets peerLeftChannel; ended 2000099; the CDR's type. */
async function hangUp(ctx, ch, who, other, rtcType) {
  const seq = await V.lastSeq(other);
  await ctx.step(`${who.name} hangs up (leaveChannel): ${other.name} gets peerLeftChannel; the call ends 2000099, CDR ${rtcType}`, async () => {
    await who.page.evaluate(() => window.videoClient.hangup());
    await V.received(other, 'peerLeftChannel', { afterSeq: seq });
    const c = await C.waitCall(ctx, ch, 'ended');
    assert.equal(c.causeCode, 2000099, JSON.stringify(C.summaryOf(c)));
    const cdr = await C.cdrOf(ctx, ch);
    assert.equal(cdr.alicomRtcType, rtcType, JSON.stringify(cdr));
    const media = (await C.adminCall(ctx, ch)).media;
    assert.ok(!media || media.released !== false, `the channel's media is released: ${JSON.stringify(media)}`);
  });
  for (const d of [who, other]) assert.deepEqual(d.pageErrors, [], `${d.name}: page errors`);
}

s.scenario(
  'video call: each page decodes the other\'s camera at 640×480 (VP8), audio both ways, video on both legs in the emulator; A hangs up, CDR video2video',
  {
    timeout: 60000,
    description:
      'Two pages of the video client (own accounts, GetRtcToken, MQTT over WebSocket, sigv 2). A calls B with ' +
      'allowVideo 1 and an audio+video offer; B gets `called` with allowVideo 1 and answers with its own video offer. ' +
      'Each page: inbound video framesDecoded grows at 640×480 (the fake camera), VP8 both ways; inbound audio ' +
      'grows. The emulator: the call active in video mode, both legs sigv 2, VP8, with video packets and frames in ' +
      'and out. A screenshot of A\'s page with both videos. A hangs up (leaveChannel): B gets peerLeftChannel; the ' +
      'call ends 2000099 and its CDR says video2video.',
  },
  async (ctx) => {
    const server = await V.clientServer(ctx);
    const a = await V.openClient(ctx, server, 'A');
    const b = await V.openClient(ctx, server, 'B');
    V.clientsAtEnd(ctx, [a, b]);
    const ch = await videoCall(ctx, a, b);
    await videoBothWays(ctx, a, b);
    await audioBothWays(ctx, a, b);
    await ctx.step('emulator: the call is video, both legs sigv 2 with VP8 video packets and frames both ways', async () => {
      const c = await C.waitCall(ctx, ch, 'active', {
        pred: (x) => x.state === 'active' && x.media && [a, b].every((d) => {
          const l = x.media.legs.find((y) => y.rtcId === d.rtcId);
          return l && l.video && l.video.packetsIn > 50 && l.video.packetsOut > 50 && l.video.framesIn > 10 && l.video.framesOut > 10;
        }),
      });
      assert.equal(c.video.mode, 'video', JSON.stringify(c.video));
      assert.equal(c.video.callerAllowed, true, JSON.stringify(c.video));
      assert.equal(c.video.requested, true, JSON.stringify(c.video));
      assert.deepEqual([...c.video.negotiated].sort(), [a.rtcId, b.rtcId].sort(), JSON.stringify(c.video));
      assert.deepEqual([...c.video.flowed].sort(), [a.rtcId, b.rtcId].sort(), JSON.stringify(c.video));
      for (const d of [a, b]) {
        const l = V.legOf(c.media, d.rtcId);
        assert.equal(l.state, 'connected');
        assert.equal(l.sigv, 2);
        assert.equal(l.video.codec, 'VP8', JSON.stringify(l.video));
        assert.equal(l.video.dropped, 0, JSON.stringify(l.video));
        assert.ok(l.rtpPacketsIn > 50 && l.rtpPacketsOut > 50, `audio on ${d.name}'s leg: ${JSON.stringify(l)}`);
        ctx.note(`emulator leg ${d.name}: audio rtp in/out ${l.rtpPacketsIn}/${l.rtpPacketsOut}; video ${JSON.stringify(l.video)}`);
      }
    });
    await ctx.step(`screenshot of A's page with both videos playing (${path.relative(REPO, SHOTS)}/call.png)`, async () => {
      await a.page.waitForFunction(() => {
        const v = (id) => document.getElementById(id);
        return v('localVideo').videoWidth > 0 && v('remoteVideo').videoWidth > 0 && !v('remoteVideo').paused && v('remoteVideo').currentTime > 0.5;
      }, { timeout: 10000 });
      fs.mkdirSync(SHOTS, { recursive: true });
      await a.page.screenshot({ path: path.join(SHOTS, 'call.png') });
    });
    await hangUp(ctx, ch, a, b, 'video2video');
  },
);

// Turning the camera off, both ways of doing it: the caller sets its video transceiver
// 'inactive' (the re-offer's video line is `a=inactive`), the callee stops it (port 0).
for (const { who, how, offered } of [
  { who: 'A', how: 'inactive', offered: (m) => m.direction === 'inactive' && m.port !== 0 },
  { who: 'B', how: 'stop', offered: (m) => m.port === 0 },
]) {
  const other = who === 'A' ? 'B' : 'A';
  const what = how === 'stop' ? 'the video transceiver stopped: port 0' : 'the video transceiver inactive: a=inactive';
  s.scenario(
    `video call, ${who} turns its camera off (re-offer with ${what}): both get cs_media_mode 1, ${other} stops decoding video, audio goes on`,
    {
      timeout: 60000,
      description:
        `A video call as above, video decoded both ways. ${who} renegotiates on the same RTCPeerConnection with ${what}; ` +
        'the re-offer goes in an `sdpCandidate` request, whose result\'s answer it applies (audio sendrecv, video ' +
        `inactive or rejected); the peer connection stays connected. Both pages receive cs_media_mode {mode 1, rtcId ${who}, ` +
        `"<${who}> turned video off"} with their own call uuid; the emulator's call is audio. ${other}'s inbound video ` +
        `stops; inbound audio keeps growing on both pages. ${who} hangs up: ${other} gets peerLeftChannel, ended ` +
        '2000099, CDR video2video (video went both ways before).',
    },
    async (ctx) => {
      const server = await V.clientServer(ctx);
      const a = await V.openClient(ctx, server, 'A');
      const b = await V.openClient(ctx, server, 'B');
      V.clientsAtEnd(ctx, [a, b]);
      const [off, on] = who === 'A' ? [a, b] : [b, a];
      const ch = await videoCall(ctx, a, b);
      await videoBothWays(ctx, a, b, 15);
      const seqA = await V.lastSeq(a);
      const seqB = await V.lastSeq(b);
      await ctx.step(`${who} turns its camera off (${how}): the sdpCandidate result's answer keeps audio sendrecv, video off; still connected`, async () => {
        const r = await off.page.evaluate((h) => window.videoClient.videoOff({ how: h }), how);
        ctx.note(`${who}'s re-offer m-lines: ${JSON.stringify(r.offer)}; the answer's: ${JSON.stringify(r.answer)}`);
        assert.ok(offered(r.offer.find((m) => m.kind === 'video')), `the re-offer's video line: ${JSON.stringify(r.offer)}`);
        assert.equal(r.answer.find((m) => m.kind === 'audio').direction, 'sendrecv', JSON.stringify(r));
        const v = r.answer.find((m) => m.kind === 'video');
        assert.ok(v && (v.port === 0 || v.direction === 'inactive'), JSON.stringify(r));
        const st = await V.state(off);
        assert.equal(st.call.connectionState, 'connected', 'the same peer connection goes on');
        assert.equal(st.call.offers.length, 2, JSON.stringify(st.call.offers));
      });
      await bothToldAudio(ctx, ch, [[a, seqA], [b, seqB]], off, /turned video off/);
      await ctx.step(`after the mode change ${other} stops decoding video`, async () => {
        await V.stops(on, 'inbound video framesDecoded', (x) => x.video.in.framesDecoded);
      });
      await audioBothWays(ctx, a, b, 'audio goes on after the mode change');
      await hangUp(ctx, ch, off, on, 'video2video');
    },
  );
}

s.scenario(
  'video call answered audio-only (no video m-line, allowVideo 0): both get cs_media_mode 1, the call goes on as audio, CDR voip2voip',
  {
    timeout: 60000,
    description:
      'A calls B with video; B gets `called` with allowVideo 1 but answers as an audio edition would: joinChannel ' +
      'allowVideo 0 with an audio-only offer. Both pages receive cs_media_mode {mode 1, rtcId B, "<B> answered ' +
      'audio-only"}; the emulator\'s call is audio with only A\'s video negotiated. Audio flows both ways; B ' +
      'decodes no video and A receives none. A hangs up: ended 2000099, CDR voip2voip.',
  },
  async (ctx) => {
    const server = await V.clientServer(ctx);
    const a = await V.openClient(ctx, server, 'A');
    const b = await V.openClient(ctx, server, 'B');
    V.clientsAtEnd(ctx, [a, b]);
    const seqA = await V.lastSeq(a);
    const ch = await videoCall(ctx, a, b, { answerVideo: false });
    await ctx.step('B\'s offer has no video m-line; A\'s has one, answered', async () => {
      const sb = await V.state(b);
      assert.deepEqual(sb.call.offers[0].map((m) => m.kind), ['audio'], JSON.stringify(sb.call.offers));
      const sa = await V.state(a);
      assert.deepEqual(sa.call.offers[0].map((m) => m.kind), ['audio', 'video'], JSON.stringify(sa.call.offers));
      assert.equal(sa.call.answers[0].find((m) => m.kind === 'video').direction, 'sendrecv', JSON.stringify(sa.call.answers));
    });
    await bothToldAudio(ctx, ch, [[a, seqA], [b, 0]], b, /answered audio-only/);
    await audioBothWays(ctx, a, b);
    await ctx.step('no video decoded on either page; the emulator: only A negotiated video, none flowed', async () => {
      const [sa, sb] = await Promise.all([V.stats(a), V.stats(b)]);
      assert.equal(sa.video.in.framesDecoded, 0, JSON.stringify(sa.video));
      assert.equal(sb.video.in.framesDecoded, 0, JSON.stringify(sb.video));
      assert.equal(sb.video.out.packetsSent, 0, JSON.stringify(sb.video));
      const c = await C.adminCall(ctx, ch);
      assert.deepEqual(c.video.negotiated, [a.rtcId], JSON.stringify(c.video));
      assert.deepEqual(c.video.flowed, [], JSON.stringify(c.video));
      assert.ok(!V.legOf(c.media, b.rtcId).video, JSON.stringify(V.legOf(c.media, b.rtcId)));
    });
    await hangUp(ctx, ch, a, b, 'voip2voip');
  },
);
