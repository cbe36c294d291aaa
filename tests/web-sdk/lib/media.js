'use strict';
// Helpers for the scenarios with audio (test/calls-media.test.js): the browsers' own view of the
// media (getStats on the PeerConnections the SDK made, wrapped by harness/pc-wrap.js), the
// emulator's (/admin/calls/{channelId} → media, /admin/media, /admin/recordings), recordings
// (WAV parsing) and MNS receipts, plus the failure dumps (webrtc-internals-like getStats, ICE
// candidate pairs, the channel's event log).

const assert = require('node:assert/strict');
const { eventually, sleep } = require('./suite');
const C = require('./calls');

// Callbacks driven by the SDK's own getStats timer (docs/protocol.md#network-quality-and-statistics): not asserted.
const STATS_CALLBACKS = ['onNetworkQuality', 'onMediaStatistics'];

/** The call callbacks of a page, formatted, with onActive (media) but without the stats-driven ones. */
async function callbacks(ctx, dev, talk) {
  const evs = await ctx.events(dev);
  return evs
    .filter((e) => e.source === 'call' && !STATS_CALLBACKS.includes(e.name))
    .filter((e) => talk === undefined || e.args.some((a) => a && typeof a === 'object' && a.talk === talk))
    .map(C.fmt);
}

/** window.__audioStats() of a page: one row per PeerConnection. */
async function audioStats(dev) {
  return dev.page.evaluate(() => window.__audioStats());
}

/** The PeerConnections' configurations and state logs (window.__pcLog). */
async function pcLog(dev) {
  return dev.page.evaluate(() => window.__pcLog);
}

/** Audio totals over a page's PeerConnections (the SDK makes one per call). */
function totals(stats, pcIndex) {
  const rows = pcIndex === undefined ? stats : stats.filter((r) => r.index === pcIndex);
  const t = { packetsReceived: 0, bytesReceived: 0, packetsSent: 0, totalAudioEnergy: 0, audioLevel: 0, totalSamplesReceived: 0, codecIn: null, codecOut: null };
  for (const r of rows) {
    for (const i of r.inbound.filter((x) => x.kind === 'audio')) {
      t.packetsReceived += i.packetsReceived || 0;
      t.bytesReceived += i.bytesReceived || 0;
      t.totalAudioEnergy += i.totalAudioEnergy || 0;
      t.totalSamplesReceived += i.totalSamplesReceived || 0;
      t.audioLevel = Math.max(t.audioLevel, i.audioLevel || 0);
      t.codecIn = t.codecIn || i.codec;
    }
    for (const o of r.outbound.filter((x) => x.kind === 'audio')) {
      t.packetsSent += o.packetsSent || 0;
      t.codecOut = t.codecOut || o.codec;
    }
  }
  return t;
}

/**
 * Waits until a page's inbound audio has grown by `min` packets over what it had when called
 * (and, with `energy`, until totalAudioEnergy grew too). Returns {before, after, ms, stats}.
 */
async function inboundGrows(dev, { min = 50, timeout = 10000, energy = false, pcIndex } = {}) {
  const t0 = Date.now();
  const before = totals(await audioStats(dev), pcIndex);
  let stats;
  let after;
  try {
    await eventually(
      async () => {
        stats = await audioStats(dev);
        after = totals(stats, pcIndex);
        const grown = after.packetsReceived - before.packetsReceived >= min;
        return grown && (!energy || after.totalAudioEnergy > before.totalAudioEnergy);
      },
      { timeout, interval: 250, what: `${dev.name}: inbound audio +${min} packets${energy ? ' and energy' : ''}` },
    );
  } catch (e) {
    e.message += `\n${dev.name} before: ${JSON.stringify(before)}\nafter: ${JSON.stringify(after)}\nstats: ${JSON.stringify(stats)}`;
    throw e;
  }
  return { before, after, ms: Date.now() - t0, stats };
}

/** The media part of /admin/calls/{channelId} (null before any leg). */
async function mediaOf(ctx, channelId) {
  return (await C.adminCall(ctx, channelId)).media;
}

/** Waits until the emulator's legs for `rtcIds` are connected and have sent and received RTP. */
async function legsFlowing(ctx, channelId, rtcIds, { timeout = 10000, min = 20 } = {}) {
  let last;
  try {
    return await eventually(
      async () => {
        last = await mediaOf(ctx, channelId);
        if (!last || !Array.isArray(last.legs)) return false;
        return rtcIds.every((id) => {
          const l = last.legs.find((x) => x.rtcId === id);
          return l && l.state === 'connected' && l.rtpPacketsIn >= min && l.rtpPacketsOut >= min;
        }) && last;
      },
      { timeout, interval: 200, what: `emulator legs ${rtcIds.join(', ')} connected with RTP both ways` },
    );
  } catch (e) {
    e.message += `\nlast media: ${JSON.stringify(last)}`;
    throw e;
  }
}

function legOf(media, rtcId) {
  const l = media && media.legs && media.legs.find((x) => x.rtcId === rtcId);
  assert.ok(l, `no media leg for ${rtcId}: ${JSON.stringify(media)}`);
  return l;
}

/** The channel's own event log (/admin/events?channelId=). */
async function channelEvents(ctx, channelId) {
  return (await ctx.emu.admin.get(`/admin/events?limit=5000&channelId=${encodeURIComponent(channelId)}`)).events;
}

/**
 * When the scenario ends: notes every call's wire (lib/calls.js), each page's audio stats and
 * PeerConnection log, and the emulator's media view of each channel. On failure (`failed()`
 * true) also a webrtc-internals-like dump of every PC, the channel's event log and
 * /admin/media.
 */
function mediaAtEnd(ctx, devs, extraNames = {}) {
  C.wiresAtEnd(ctx, devs, extraNames);
  ctx.atEnd(async () => {
    const channels = [];
    for (const d of devs) {
      for (const c of await C.pageCalls(d).catch(() => [])) {
        if (c.channelId && !channels.includes(c.channelId)) channels.push(c.channelId);
      }
    }
    for (const d of devs) {
      const st = await audioStats(d).catch((e) => `error: ${e.message}`);
      ctx.note(`${d.name}: audio stats at the end (window.__audioStats):\n${JSON.stringify(st)}`);
      const log = await pcLog(d).catch((e) => `error: ${e.message}`);
      ctx.note(`${d.name}: PeerConnections (config, states, candidates):\n${JSON.stringify(log)}`);
    }
    for (const ch of channels) {
      const m = await mediaOf(ctx, ch).catch((e) => `error: ${e.message}`);
      ctx.note(`emulator media of ${ch} (/admin/calls/{id} → media):\n${JSON.stringify(m)}`);
    }
    if (ctx.failed()) {
      for (const d of devs) {
        const dump = await d.page.evaluate(() => window.__rtcDump()).catch((e) => `error: ${e.message}`);
        ctx.note(`${d.name}: RTC dump (every getStats report, SDP):\n${JSON.stringify(dump, null, 1)}`);
      }
      for (const ch of channels) {
        const evs = await channelEvents(ctx, ch).catch((e) => [{ error: e.message }]);
        const t0 = evs.length ? evs[0].timeMs : 0;
        ctx.note(
          `emulator event log of ${ch} (/admin/events?channelId=):\n${evs
            .map((e) => `+${e.timeMs - t0}ms #${e.seq} ${e.kind} ${e.rtcId || ''} ${JSON.stringify(e.detail)}`)
            .join('\n')}`,
        );
      }
      const all = await ctx.emu.admin.get('/admin/media').catch((e) => `error: ${e.message}`);
      ctx.note(`/admin/media:\n${JSON.stringify(all, null, 1)}`);
    }
  });
}

// ---- recordings ----

/** Parses a RIFF/WAVE file: {format, channels, sampleRate, bitsPerSample, frames, samples: [Int16Array per channel]}. */
function parseWav(buf) {
  assert.ok(buf.length >= 44, `a WAV file has at least 44 bytes, got ${buf.length}`);
  assert.equal(buf.toString('ascii', 0, 4), 'RIFF', 'RIFF header');
  assert.equal(buf.toString('ascii', 8, 12), 'WAVE', 'WAVE form type');
  let off = 12;
  let fmt = null;
  let data = null;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      fmt = {
        format: buf.readUInt16LE(body),
        channels: buf.readUInt16LE(body + 2),
        sampleRate: buf.readUInt32LE(body + 4),
        byteRate: buf.readUInt32LE(body + 8),
        blockAlign: buf.readUInt16LE(body + 12),
        bitsPerSample: buf.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      data = { offset: body, size: Math.min(size, buf.length - body) };
      break;
    }
    off = body + size + (size & 1);
  }
  assert.ok(fmt, 'a fmt chunk');
  assert.ok(data, 'a data chunk');
  const riffSize = buf.readUInt32LE(4);
  const out = { ...fmt, riffSize, fileSize: buf.length, dataSize: data.size, frames: 0, samples: [] };
  if (fmt.format === 1 && fmt.bitsPerSample === 16) {
    const frames = Math.floor(data.size / fmt.blockAlign);
    out.frames = frames;
    for (let c = 0; c < fmt.channels; c++) out.samples.push(new Int16Array(frames));
    for (let i = 0; i < frames; i++) {
      for (let c = 0; c < fmt.channels; c++) out.samples[c][i] = buf.readInt16LE(data.offset + i * fmt.blockAlign + c * 2);
    }
  }
  return out;
}

/**
 * What one channel of a recording holds: RMS over the non-silent part, the share of non-silent
 * 20 ms frames, and the dominant frequency estimated from zero crossings in the loudest second.
 */
function channelSummary(samples, rate) {
  const frame = Math.round(rate / 50);
  let loud = 0;
  let frames = 0;
  let sumSq = 0;
  let n = 0;
  for (let i = 0; i + frame <= samples.length; i += frame) {
    frames++;
    let e = 0;
    for (let j = i; j < i + frame; j++) e += samples[j] * samples[j];
    const rms = Math.sqrt(e / frame);
    if (rms > 100) {
      loud++;
      sumSq += e;
      n += frame;
    }
  }
  // zero crossings of the loudest 1 s window (stepping 0.5 s)
  let best = { start: 0, energy: -1 };
  for (let s = 0; s + rate <= samples.length; s += rate / 2) {
    let e = 0;
    for (let j = s; j < s + rate; j++) e += samples[j] * samples[j];
    if (e > best.energy) best = { start: s, energy: e };
  }
  let crossings = 0;
  const end = Math.min(samples.length, best.start + rate);
  for (let j = best.start + 1; j < end; j++) {
    if ((samples[j - 1] < 0 && samples[j] >= 0) || (samples[j - 1] >= 0 && samples[j] < 0)) crossings++;
  }
  const secs = (end - best.start) / rate;
  let peak = 0;
  for (const v of samples) peak = Math.max(peak, Math.abs(v));
  return {
    seconds: +(samples.length / rate).toFixed(2),
    nonSilentFrames: loud,
    frames,
    nonSilentShare: frames ? +(loud / frames).toFixed(3) : 0,
    rms: n ? Math.round(Math.sqrt(sumSq / n)) : 0,
    peak,
    zeroCrossingHz: secs > 0 ? Math.round(crossings / 2 / secs) : 0,
  };
}

// ---- MNS ----

/** The messages of a queue (admin view, not consumed); [] when the queue does not exist (yet). */
async function queueMessages(ctx, queue) {
  try {
    const r = await ctx.emu.admin.get(`/admin/mns/queues/${encodeURIComponent(queue)}/messages`);
    return r.messages || [];
  } catch (e) {
    if (/HTTP 404/.test(e.message)) return [];
    throw e;
  }
}

module.exports = {
  STATS_CALLBACKS,
  callbacks,
  audioStats,
  pcLog,
  totals,
  inboundGrows,
  mediaOf,
  legsFlowing,
  legOf,
  channelEvents,
  mediaAtEnd,
  parseWav,
  channelSummary,
  queueMessages,
  sleep,
};
