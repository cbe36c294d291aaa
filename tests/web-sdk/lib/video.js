'use strict';
// Helpers for the video scenarios (test/video.test.js): pages running the project's own video
// client (video-client/, docs/video-client.md) instead of the vendor's audio-only SDK, their
// getStats() view, the messages they received, and the report notes.

const assert = require('node:assert/strict');
const { eventually } = require('./suite');
const { startVideoClientServer } = require('../video-client/server');

/** Starts the client's page server for the scenario (closed when it ends). */
async function clientServer(ctx) {
  const server = await startVideoClientServer(ctx.harness);
  ctx.atEnd(() => server.close());
  return server;
}

/**
 * A new account (AddRtcAccount) and a page of the video client in its own browser context,
 * logged in (GetRtcToken, MQTT, cs_register ACK 200).
 */
async function openClient(ctx, server, name) {
  const deviceId = ctx.newDeviceId(`video-${name}`);
  const rtcId = await ctx.harness.addAccount(deviceId);
  const dev = await ctx.page(name, `${server.url}/`, { width: 1060, height: 720 });
  Object.assign(dev, { rtcId, deviceId });
  await dev.page.waitForFunction(() => window.videoClient && window.mqtt && window.pako, { timeout: 10000 });
  await dev.page.evaluate((o) => window.videoClient.login(o), { rtcId, deviceId });
  return dev;
}

const state = (dev) => dev.page.evaluate(() => window.videoClient.state());
const stats = (dev) => dev.page.evaluate(() => window.videoClient.stats());

/** The next server request of `type` the page received after `afterSeq` ({seq, t, type, body, ms}). */
async function received(dev, type, { timeout = 10000, afterSeq = 0 } = {}) {
  try {
    return await dev.page.evaluate((t, o) => window.videoClient.waitFor(t, o), type, { timeout, afterSeq });
  } catch (e) {
    throw new Error(`${dev.name}: ${e.message}`);
  }
}

/** The page's received sequence number now (to wait for what comes after). */
const lastSeq = (dev) => dev.page.evaluate(() => window.videoClient.seq);

/**
 * Waits until `pick(stats)` has grown by `min` over its value when called and `extra(stats)` (if
 * given) holds. Returns {before, after, ms, stats}.
 */
async function grows(dev, what, pick, { min, timeout = 10000, extra } = {}) {
  const t0 = Date.now();
  const first = await stats(dev);
  const before = pick(first);
  let last = first;
  try {
    await eventually(
      async () => {
        last = await stats(dev);
        return pick(last) - before >= min && (!extra || extra(last));
      },
      { timeout, interval: 200, what: `${dev.name}: ${what}` },
    );
  } catch (e) {
    e.message += `\n${dev.name} stats before: ${JSON.stringify(first)}\nlast: ${JSON.stringify(last)}`;
    throw e;
  }
  return { before, after: pick(last), ms: Date.now() - t0, stats: last };
}

/** Inbound audio grows by `min` packets. */
const audioGrows = (dev, o = {}) => grows(dev, `inbound audio +${o.min || 50} packets`, (s) => s.audio.in.packetsReceived, { min: 50, ...o });

/** The other party's video is decoded: framesDecoded grows by `min` at `width`×`height`. */
const videoGrows = (dev, { width, height, ...o } = {}) =>
  grows(dev, `inbound video +${o.min || 30} frames decoded${width ? ` at ${width}×${height}` : ''}`, (s) => s.video.in.framesDecoded, {
    min: 30,
    ...o,
    extra: (s) => !width || (s.video.in.frameWidth === width && s.video.in.frameHeight === height),
  });

/** Waits until a counter stops growing: two samples `gap` ms apart are equal. */
async function stops(dev, what, pick, { timeout = 8000, gap = 600 } = {}) {
  let prev = pick(await stats(dev));
  let last = prev;
  const deadline = Date.now() + timeout;
  for (;;) {
    await new Promise((r) => setTimeout(r, gap));
    last = pick(await stats(dev));
    if (last === prev) return last;
    if (Date.now() > deadline) throw new Error(`${dev.name}: ${what} still growing after ${timeout} ms (${prev} → ${last})`);
    prev = last;
  }
}

function legOf(media, rtcId) {
  const l = media && media.legs && media.legs.find((x) => x.rtcId === rtcId);
  assert.ok(l, `no media leg for ${rtcId}: ${JSON.stringify(media)}`);
  return l;
}

/** The report: each page's state, stats and page errors; on failure also the channel's event log. */
function clientsAtEnd(ctx, devs) {
  ctx.atEnd(async () => {
    const channels = [];
    for (const d of devs) {
      const st = await state(d).catch((e) => ({ error: e.message }));
      const ch = st.call && st.call.channelId;
      if (ch && !channels.includes(ch)) channels.push(ch);
      const s = await stats(d).catch((e) => ({ error: e.message }));
      const { wire, ...brief } = st;
      if (brief.call) brief.call = { ...brief.call, lastOffer: undefined, lastAnswer: undefined };
      ctx.note(`${d.name} (${d.rtcId}): video client state:\n${JSON.stringify(brief)}`);
      if (s.pcState && s.pcState !== 'closed') ctx.note(`${d.name}: stats at the end: ${JSON.stringify(s)}`);
      if (d.pageErrors.length) ctx.note(`${d.name}: page errors: ${JSON.stringify(d.pageErrors)}`);
      if (ctx.failed()) {
        ctx.note(`${d.name}: wire (newest 300): ${JSON.stringify(wire)}`);
        ctx.note(`${d.name}: console: ${JSON.stringify(d.console.slice(-100))}`);
        if (st.call) ctx.note(`${d.name}: last offer:\n${st.call.lastOffer}\nlast answer:\n${st.call.lastAnswer}`);
      }
    }
    for (const ch of channels) {
      const c = await ctx.emu.admin.get(`/admin/calls/${encodeURIComponent(ch)}`).catch((e) => ({ error: e.message }));
      const { timeline, ...rest } = c;
      ctx.note(`emulator call ${ch} (/admin/calls/{id}, no timeline):\n${JSON.stringify(rest)}`);
      if (ctx.failed()) {
        const evs = (await ctx.emu.admin.get(`/admin/events?limit=5000&channelId=${encodeURIComponent(ch)}`).catch(() => ({ events: [] }))).events;
        const t0 = evs.length ? evs[0].timeMs : 0;
        ctx.note(`emulator event log of ${ch}:\n${evs.map((e) => `+${e.timeMs - t0}ms #${e.seq} ${e.kind} ${e.rtcId || ''} ${JSON.stringify(e.detail).slice(0, 400)}`).join('\n')}`);
      }
    }
  });
}

module.exports = { clientServer, openClient, state, stats, received, lastSeq, grows, audioGrows, videoGrows, stops, legOf, clientsAtEnd };
