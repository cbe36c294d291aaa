// alicom-emu console (docs/console.md). No build step and no dependencies: plain DOM, the
// documented admin API, and its live event stream (Server-Sent Events read with fetch, so an
// admin token can ride in a header).
'use strict';

const MAX_EVENTS = 3000;
const S = {
  token: sessionStorage.getItem('alicomEmuToken') || '',
  events: [],          // the newest events, oldest first (seeded from /admin/events, then live)
  health: null,
  clock: null,         // {mode, scale, nowMs} and when we read it
  clockReadAt: 0,
  selected: null,      // index of the selected ladder row
  eventFilter: { kind: '', channelId: '', rtcId: '' },
  queue: null,         // selected queue {tenant, name}
  phone: null,         // selected phone number
  renderTimer: 0,
  view: 'overview',
  arg: null,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = {};
  const used = S.token;
  if (used) headers.Authorization = 'Bearer ' + used;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method: opts.method || 'GET', headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  // Ask once: requests that were already under way with the old token do not ask again.
  if (r.status === 401 && used === S.token) askToken();
  if (!r.ok) throw new ApiError(r.status, (data && data.error) || text || r.statusText);
  return data;
}

// An action from a button: errors become a visible message, success refreshes the view.
async function act(path, body, method = 'POST') {
  try {
    const out = await api(path, { method, body });
    toast(`${method} ${path}: done`);
    scheduleRender(50);
    return out;
  } catch (e) {
    toast(`${method} ${path}: ${e.message}`, true);
    return null;
  }
}

function toast(text, bad = false) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = 'toast' + (bad ? ' bad' : '');
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 2500);
}

function askToken() {
  if (askToken.open) return;
  askToken.open = true;
  const t = prompt('This emulator needs its admin token ([admin] token). Token:');
  askToken.open = false;
  if (t) { S.token = t; sessionStorage.setItem('alicomEmuToken', t); startStream(); scheduleRender(0); }
}

const fmtTime = ms => ms ? new Date(ms).toISOString().replace('T', ' ').replace('Z', '') : '';
const fmtOffset = ms => (ms >= 0 ? '+' : '') + (ms / 1000).toFixed(3) + ' s';
const short = (s, n = 10) => s && s.length > n ? s.slice(0, n) + '…' : (s || '');
const json = v => JSON.stringify(v, null, 2);

function copyButton(text, what) {
  return h('button', { class: 'copy', type: 'button', 'aria-label': 'Copy ' + what, onclick: async () => {
    try { await navigator.clipboard.writeText(text); toast('Copied ' + what); }
    catch { toast('Copy failed: select the text instead', true); }
  } }, 'copy');
}

function table(headers, rows, opts = {}) {
  return h('table', { 'aria-label': opts.label },
    h('thead', {}, h('tr', {}, headers.map(x => h('th', { class: /^(#|ms|count|depth)/i.test(x) ? 'num' : null }, x)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, opts.empty || 'nothing yet'))));
}

function codeBadge(code) {
  if (code === null || code === undefined || code === '') return '';
  const ok = code === 2000099 || code === 200 || code === '200';
  return h('span', { class: 'badge ' + (ok ? 'good' : 'bad') }, (ok ? '' : '⚠ ') + code);
}

// ---------------------------------------------------------------------------------------------
// Live events

async function loadEvents() {
  try {
    const d = await api('/admin/events?limit=1000');
    S.events = d.events || [];
  } catch (e) { /* shown by the view */ }
}

let streamAbort = null;
async function startStream() {
  if (streamAbort) streamAbort.abort();
  const ctl = new AbortController();
  streamAbort = ctl;
  const live = document.getElementById('live');
  const used = S.token;
  const headers = used ? { Authorization: 'Bearer ' + used } : {};
  try {
    const r = await fetch('/admin/events/stream', { headers, signal: ctl.signal });
    if (r.status === 401) { if (used === S.token) askToken(); return; }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    live.textContent = '● live';
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).trimStart()).join('\n');
        const kind = (block.split('\n').find(l => l.startsWith('event:')) || '').slice(6).trim();
        if (!data) continue;
        if (kind === 'lagged') { await loadEvents(); scheduleRender(0); continue; }
        try { onEvent(JSON.parse(data)); } catch { /* not JSON: ignore */ }
      }
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
  }
  live.textContent = '○ reconnecting';
  setTimeout(() => { if (streamAbort === ctl) { loadEvents().then(startStream); } }, 1000);
}

function onEvent(e) {
  const last = S.events[S.events.length - 1];
  if (last && e.seq <= last.seq) return; // already seeded
  S.events.push(e);
  if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
  scheduleRender(150);
}

function scheduleRender(delay) {
  clearTimeout(S.renderTimer);
  S.renderTimer = setTimeout(render, delay);
}

// ---------------------------------------------------------------------------------------------
// The clock in the header

async function readClock() {
  try { S.clock = await api('/admin/clock'); S.clockReadAt = Date.now(); } catch { S.clock = null; }
  tickClock();
}

function clockNow() {
  if (!S.clock) return null;
  if (S.clock.mode === 'manual') return S.clock.nowMs;
  return S.clock.nowMs + (Date.now() - S.clockReadAt) * (S.clock.scale || 1);
}

function tickClock() {
  const el = document.getElementById('clock');
  if (!S.clock) { el.textContent = ''; return; }
  el.textContent = `${S.clock.mode} clock · ${fmtTime(clockNow())}`;
}
setInterval(tickClock, 250);
// A manual clock only moves when someone advances it (a test, another tab): look now and then.
setInterval(() => { if (S.clock && S.clock.mode === 'manual') readClock(); }, 2000);

async function advance(ms) {
  const r = await act('/admin/clock/advance', { ms });
  if (r) { S.clock = { ...S.clock, nowMs: r.nowMs }; S.clockReadAt = Date.now(); tickClock(); }
}

// ---------------------------------------------------------------------------------------------
// Routing and rendering

const VIEWS = { overview, calls, call, devices, phones, queues, requests, events };

function route() {
  const parts = (location.hash || '#/overview').slice(2).split('/');
  S.view = VIEWS[parts[0]] ? parts[0] : 'overview';
  S.arg = parts[1] ? decodeURIComponent(parts[1]) : null;
  if (S.view === 'calls' && S.arg) S.view = 'call';
  for (const a of document.querySelectorAll('header nav a')) {
    const on = a.dataset.view === S.view || (S.view === 'call' && a.dataset.view === 'calls');
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  S.selected = null;
  render(true);
}

let rendering = false;
async function render(moveFocus = false) {
  if (rendering) { scheduleRender(100); return; }
  rendering = true;
  const main = document.getElementById('main');
  // Keep focus and scroll where the user left them across live re-renders.
  const active = document.activeElement;
  const focusId = active && active.id;
  const caret = active && typeof active.selectionStart === 'number' ? [active.selectionStart, active.selectionEnd] : null;
  const scrolls = [...main.querySelectorAll('[data-keep-scroll]')].map(el => [el.dataset.keepScroll, el.scrollTop]);
  let content;
  try { content = await VIEWS[S.view](S.arg); }
  catch (e) { content = h('div', { class: 'card err' }, 'Could not load this view: ' + e.message); }
  // Unchanged views are left alone, so a live event does not swap a button from under the pointer.
  const html = content.outerHTML;
  if (html === render.last && main.firstChild && moveFocus !== true) { rendering = false; return; }
  render.last = html;
  main.replaceChildren(content);
  for (const [k, top] of scrolls) { const el = main.querySelector(`[data-keep-scroll="${k}"]`); if (el) el.scrollTop = top; }
  if (focusId) {
    const el = document.getElementById(focusId);
    if (el) { el.focus({ preventScroll: true }); if (caret && el.setSelectionRange) el.setSelectionRange(caret[0], caret[1]); }
  }
  if (moveFocus === true) main.focus({ preventScroll: true });
  rendering = false;
}

// ---------------------------------------------------------------------------------------------
// Overview

async function overview() {
  const [health, devs, callList, queueList, reqs] = await Promise.all([
    api('/health'), api('/admin/devices'), api('/admin/calls'), api('/admin/mns/queues'), api('/admin/requests?limit=200'),
  ]);
  S.health = health;
  const eps = health.endpoints || {};
  const active = callList.calls.filter(c => c.state !== 'ended');
  const online = devs.devices.filter(d => d.online);
  const depth = queueList.queues.reduce((n, q) => n + q.activeMessages + q.inactiveMessages + q.delayMessages, 0);
  const manual = S.clock && S.clock.mode === 'manual';
  const errors = recentErrors(reqs.requests || []);
  return h('div', {},
    h('h1', {}, 'Overview'),
    h('div', { class: 'grid' },
      h('section', { class: 'card', 'aria-labelledby': 'h-counts' }, h('h2', { id: 'h-counts' }, 'Now'),
        h('div', { class: 'stats' },
          h('div', {}, h('div', { class: 'stat', id: 'count-devices' }, online.length), h('div', { class: 'muted' }, `devices online (of ${devs.devices.length})`)),
          h('div', {}, h('div', { class: 'stat', id: 'count-calls' }, active.length), h('div', { class: 'muted' }, 'calls active')),
          h('div', {}, h('div', { class: 'stat' }, devs.connections), h('div', { class: 'muted' }, 'MQTT connections')),
          h('div', {}, h('div', { class: 'stat' }, depth), h('div', { class: 'muted' }, `messages in ${queueList.queues.length} queues`))),
        h('p', { class: 'muted' }, `version ${health.version} · up ${Math.round(health.uptimeMs / 1000)} s`)),
      h('section', { class: 'card', 'aria-labelledby': 'h-clock' }, h('h2', { id: 'h-clock' }, 'Clock'),
        S.clock ? h('p', {}, h('b', {}, S.clock.mode), ` (scale ${S.clock.scale}) · now `, h('span', { class: 'mono', id: 'clock-now' }, fmtTime(clockNow())), ` · ${Math.round(clockNow())} ms`) : '',
        manual ? h('div', { class: 'row' }, 'Advance:',
          [1000, 5000, 10000, 30000, 60000].map(ms => h('button', { type: 'button', id: `advance-${ms}`, onclick: () => advance(ms) }, `+${ms / 1000} s`)),
          h('form', { class: 'row', onsubmit: ev => { ev.preventDefault(); const v = Number(ev.target.ms.value); if (v > 0) advance(v); } },
            h('label', {}, 'ms', h('input', { name: 'ms', type: 'number', min: 1, size: 7, 'aria-label': 'milliseconds to advance' })),
            h('button', { type: 'submit' }, 'Advance')))
          : h('p', { class: 'muted' }, 'Start with [clock] mode = "manual" to step time from here.')),
      h('section', { class: 'card', 'aria-labelledby': 'h-eps', style: 'grid-column: 1 / -1' }, h('h2', { id: 'h-eps' }, 'Endpoints and credentials'),
        table(['name', 'value', ''], Object.entries(eps).map(([k, v]) =>
          h('tr', {}, h('td', {}, k), h('td', { class: 'mono wrap' }, String(v)), h('td', {}, copyButton(String(v), k)))))),
      h('section', { class: 'card', 'aria-labelledby': 'h-errors', style: 'grid-column: 1 / -1' }, h('h2', { id: 'h-errors' }, 'Recent errors'),
        table(['time', 'where', 'what'], errors.slice(-15).reverse().map(x =>
          h('tr', {}, h('td', { class: 'mono' }, fmtTime(x.timeMs)), h('td', {}, x.where), h('td', {}, x.link ? h('a', { href: x.link }, x.what) : x.what))),
        { empty: 'no errors' })),
      h('section', { class: 'card' }, h('h2', {}, 'Reset'),
        h('p', { class: 'muted' }, 'Closes every connection and clears accounts, tokens, calls and logs.'),
        h('button', { type: 'button', class: 'danger', onclick: () => { if (confirm('Reset all run-time state?')) act('/admin/reset'); } }, 'Reset emulator'))));
}

// Errors worth a look: refused POP requests, messages nobody ACKed, refused tokens, failed callbacks and pushes.
function recentErrors(requests) {
  const out = requests.filter(r => r.status >= 400).map(r => ({
    timeMs: r.timeMs, where: 'POP ' + (r.action || r.method), what: `${r.status} ${r.code}: ${r.message || ''}`, link: '#/requests',
  }));
  for (const e of S.events) {
    const d = e.detail || {};
    let what = null;
    if (e.kind === 'envelope.undelivered') what = `${d.messageType} to ${e.rtcId} never ACKed`;
    else if (e.kind === 'token.refused') what = `token refused for ${e.rtcId || '?'}: ${d.reason || d.error || ''}`;
    else if (e.kind === 'callback.answer' && d.result && d.result.error) what = `${d.kind} callback failed: ${d.result.error}`;
    else if (e.kind === 'receipt.push' && !d.ok) what = `push of ${d.messageType} to ${d.url} failed (attempt ${d.attempt}): ${d.error || d.status}`;
    if (what) out.push({ timeMs: e.timeMs, where: e.kind, what, link: e.channelId ? '#/calls/' + e.channelId : null });
  }
  return out.sort((a, b) => a.timeMs - b.timeMs);
}

// ---------------------------------------------------------------------------------------------
// Calls

async function calls() {
  const [list, virt] = await Promise.all([api('/admin/calls'), api('/admin/voip/devices').catch(() => ({ devices: [] }))]);
  const rows = list.calls.map(c => h('tr', { class: c.state === 'ended' ? 'ended' : null },
    h('td', {}, h('a', { href: '#/calls/' + c.channelId, class: 'mono', 'data-channel': c.channelId }, short(c.channelId, 12))),
    h('td', {}, c.alicomRtcType), h('td', {}, h('b', {}, c.state)),
    h('td', {}, c.caller), h('td', {}, (c.callees || []).join(', ')),
    h('td', { class: 'mono' }, fmtTime(c.createdMs)),
    h('td', { class: 'num' }, c.answeredMs ? (((c.endedMs || clockNow()) - c.answeredMs) / 1000).toFixed(1) + ' s' : ''),
    h('td', {}, codeBadge(c.causeCode), ' ', h('span', { class: 'muted' }, c.endReason || ''))));
  const idle = virt.devices.filter(d => d.state === 'idle' && d.online);
  return h('div', {},
    h('h1', {}, 'Calls'),
    h('section', { class: 'card' },
      h('div', { class: 'scroll', 'data-keep-scroll': 'calls' },
        table(['channelId', 'type', 'state', 'caller', 'callees', 'created', 'talk', 'ending'], rows, { label: 'calls', empty: 'no calls yet' }))),
    h('section', { class: 'card', style: 'margin-top:12px' }, h('h2', {}, 'Place a call from a virtual device'),
      h('form', { class: 'row', onsubmit: placeCall },
        h('label', {}, 'from', h('select', { name: 'from' }, idle.map(d => h('option', { value: d.rtcId }, `${d.rtcId} (${d.deviceId})`)))),
        h('label', {}, 'to rtcIds', h('input', { name: 'to', placeholder: '9000000000000001, …', size: 28 })),
        h('label', {}, 'or phone', h('input', { name: 'phone', placeholder: '13800000001', size: 12 })),
        h('label', {}, 'display', h('input', { name: 'display', placeholder: 'bought number', size: 12 })),
        h('button', { type: 'submit', class: 'primary' }, 'Call'))));
}

async function placeCall(ev) {
  ev.preventDefault();
  const f = ev.target;
  const body = { from: f.from.value };
  if (f.phone.value.trim()) { body.phone = f.phone.value.trim(); if (f.display.value.trim()) body.display = f.display.value.trim(); }
  else body.to = f.to.value.split(/[\s,]+/).filter(Boolean);
  const r = await act('/admin/voip/calls', body);
  if (r && r.channelId) location.hash = '#/calls/' + r.channelId;
}

// One call: header, ladder, payload, legs and plan, CDR, media and recording.
async function call(channelId) {
  const c = await api('/admin/calls/' + encodeURIComponent(channelId));
  const timeline = c.timeline || [];
  const ladder = buildLadder(c, timeline);
  const sel = S.selected !== null && ladder.rows[S.selected] ? ladder.rows[S.selected] : null;
  const recording = timeline.find(e => e.kind === 'media.recording');
  const seqs = {};
  for (const l of c.legs || []) (seqs[l.sequence] = seqs[l.sequence] || []).push(l);
  return h('div', {},
    h('h1', {}, h('a', { href: '#/calls' }, 'Calls'), ' / ', h('span', { class: 'mono' }, c.channelId)),
    h('p', { class: 'row', id: 'call-summary' },
      h('span', { class: 'badge' }, c.alicomRtcType), 'state ', h('b', { id: 'call-state' }, c.state),
      c.causeCode ? ['· ending ', codeBadge(c.causeCode), ' ', c.endReason] : '',
      c.warnings && c.warnings.length ? h('span', { class: 'badge warn' }, `${c.warnings.length} warning(s)`) : ''),
    h('div', { class: 'ladder-wrap' },
      h('section', { 'aria-label': 'call ladder' },
        h('div', { class: 'legend' }, 'solid → request · dashed ⇢ ACK / answer · dotted ⟳ retransmission · boxed = note · bold red = the ending. Click or press Enter on a row for its payload; ↑/↓ move.'),
        renderLadder(ladder)),
      h('aside', { class: 'card payload', 'aria-label': 'payload', id: 'payload' },
        sel ? payloadView(sel.event, ladder.t0) : h('p', { class: 'muted' }, 'Select a message to see its payload.'))),
    h('div', { class: 'grid', style: 'margin-top:12px' },
      h('section', { class: 'card' }, h('h2', {}, 'Legs and ringing plan'),
        table(['seq', 'pos', 'target', 'state', 'outcome', 'answered'], (c.legs || []).map(l => h('tr', {},
          h('td', { class: 'num' }, l.sequence), h('td', { class: 'num' }, l.position),
          h('td', {}, l.target.rtcId || ('☎ ' + l.target.number)), h('td', {}, l.state), h('td', {}, l.outcome || ''),
          h('td', { class: 'mono' }, fmtTime(l.answeredMs)))), { empty: 'no legs (the call never rang)' }),
        h('p', { class: 'muted' }, `ringing now: sequence ${c.sequence ?? '–'} (position ${c.sequencePosition ?? '–'}) · ${Object.keys(seqs).length} sequence(s) · cancelOnReject ${c.cancelOnReject}`),
        c.warnings && c.warnings.length ? h('ul', {}, c.warnings.map(w => h('li', { class: 'err' }, w))) : ''),
      h('section', { class: 'card' }, h('h2', {}, 'CDR'),
        c.cdr ? cdrTable(c.cdr) : h('p', { class: 'muted' }, 'written when the call ends')),
      h('section', { class: 'card' }, h('h2', {}, 'Media'),
        recording ? h('div', {}, h('audio', { controls: true, src: recording.detail.url, preload: 'none' }),
          h('p', { class: 'muted' }, `${recording.detail.file} · ${(recording.detail.durationMs / 1000).toFixed(1)} s`)) : '',
        c.media ? h('details', {}, h('summary', {}, 'media statistics'), h('pre', {}, json(c.media))) : h('p', { class: 'muted' }, 'no media'))));
}

function cdrTable(cdr) {
  const rows = [];
  const walk = (prefix, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(prefix ? prefix + '.' + k : k, x);
    else if (Array.isArray(v)) v.forEach((x, i) => walk(`${prefix}[${i}]`, x));
    else rows.push(h('tr', {}, h('td', { class: 'mono' }, prefix), h('td', { class: 'wrap' }, String(v))));
  };
  walk('', cdr);
  return h('div', { class: 'scroll', style: 'max-height:40vh' }, table(['field', 'value'], rows));
}

// The ladder: lanes (the caller, the platform, each callee device and phone, the customer's
// server, MNS) and one row per event, as an arrow between two lanes or a note on one.
function buildLadder(c, timeline) {
  const lanes = [];
  const index = new Map();
  const lane = (key, name, sub) => { if (!index.has(key)) { index.set(key, lanes.length); lanes.push({ key, name, sub }); } return index.get(key); };
  const caller = c.caller || {};
  if (caller.type === 'phone') lane('phone:' + caller.number, '☎ ' + caller.number, 'caller phone');
  else if (caller.rtcId) lane('dev:' + caller.rtcId, caller.rtcId, 'caller');
  lane('platform', 'Platform', 'alicom-emu');
  for (const l of c.legs || []) {
    if (l.target.rtcId) lane('dev:' + l.target.rtcId, l.target.rtcId, 'callee');
    else lane('phone:' + l.target.number, '☎ ' + l.target.number, 'callee phone');
  }
  const dev = id => lane('dev:' + id, id, 'device');
  const phone = n => lane('phone:' + n, '☎ ' + n, 'phone');
  const P = index.get('platform');
  const rows = [];
  const t0 = timeline.length ? timeline[0].timeMs : 0;
  const endCode = c.causeCode;
  const customer = () => lane('customer', 'Customer server', 'callbacks, push');
  const mns = () => lane('mns', 'MNS', 'receipts');
  for (const e of timeline) {
    const d = e.detail || {};
    const k = e.kind;
    const body = d.body || {};
    let r = null;
    if (k === 'envelope.in') r = { from: dev(e.rtcId), to: P, label: d.messageType + (d.code && d.code !== 200 ? ` (ACK ${d.code})` : '') };
    else if (k === 'envelope.out') {
      const code = body.causeCode ?? body.code;
      r = { from: P, to: dev(e.rtcId), label: d.messageType + (code ? ` ${code}` : '') + (body.dtmf ? ` “${body.dtmf}”` : ''), ending: code && code === endCode };
    } else if (k === 'envelope.ack') r = { from: dev(e.rtcId), to: P, label: `ACK ${d.messageType}${d.code !== undefined ? ' ' + d.code : ''}`, style: 'ack' };
    else if (k === 'envelope.retransmit') r = { from: P, to: dev(e.rtcId), label: `⟳ ${d.messageType} (retransmission ${d.attempt}${d.sent ? '' : ', device offline'})`, style: 'retx' };
    else if (k === 'envelope.undelivered') r = { note: dev(e.rtcId), label: `✖ ${d.messageType} never ACKed`, ending: true };
    else if (k.startsWith('voip.')) r = { note: dev(e.rtcId), label: `${d.from} → ${d.to}` };
    else if (k.startsWith('device.') || k.startsWith('token.')) r = { note: e.rtcId ? dev(e.rtcId) : P, label: k };
    else if (k === 'pstn.call_in') r = { from: phone(d.number), to: P, label: `call in → ${d.to || ''}` };
    else if (k === 'pstn.dial') r = { from: P, to: phone(d.number), label: `dial (shows ${d.from})` };
    else if (k === 'pstn.release') r = { from: P, to: phone(d.number), label: `release (${d.reason})` };
    else if (k === 'pstn.connected') r = { from: P, to: phone(d.number), label: 'connected' };
    else if (k === 'pstn.announcement') r = { from: P, to: phone(d.number), label: `announcement ${d.name}` };
    else if (k === 'pstn.dtmf_in') r = { from: P, to: phone(d.number), label: `DTMF “${d.digits}”` };
    else if (k === 'pstn.dtmf') r = { from: phone(d.number), to: P, label: `DTMF “${d.digit}”` };
    else if (k.startsWith('pstn.')) r = { from: phone(d.number), to: P, label: k.slice(5).replace('_', ' '), style: k === 'pstn.ringing' || k === 'pstn.answered' ? null : 'ack' };
    else if (k === 'callback.request') r = { from: P, to: customer(), label: `POST ${d.kind} callback` };
    else if (k === 'callback.answer') {
      const err = d.result && d.result.error;
      r = { from: customer(), to: P, label: err ? `✖ ${err}` : `answer ${summarizeAnswer(d.result)}`, style: 'ack', ending: !!err };
    } else if (k === 'cdr') r = { from: P, to: mns(), label: 'CDR written' };
    else if (k === 'receipt.queued') r = { from: P, to: mns(), label: `${d.messageType} queued` };
    else if (k === 'receipt.push') r = { from: mns(), to: customer(), label: `push ${d.messageType} → ${d.ok ? d.status : '✖ ' + (d.error || d.status)} (attempt ${d.attempt})`, ending: !d.ok };
    else if (k === 'call.state') {
      const dd = d.detail || {};
      const ended = d.state === 'ended';
      let label = 'call ' + d.state;
      if (ended) label = `ENDED ${dd.causeCode ?? ''} ${dd.reason || ''}`;
      else if (d.state === 'ringing') label = `ringing sequence ${dd.sequence}: ${(dd.callees || []).join(', ')}`;
      else if (dd.answeredBy) label += ' (answered by ' + dd.answeredBy + ')';
      r = { note: P, label, ending: ended && dd.causeCode !== 2000099 && dd.causeCode !== undefined, endingBold: ended };
    } else if (k === 'leg.ended') r = { note: P, label: `leg ${d.leg} ${d.callee}: ${d.outcome}` };
    else r = { note: P, label: k.replace(/^media\./, 'media ') + (d.file ? ' ' + d.file : '') };
    if (r) { r.event = e; r.offset = e.timeMs - t0; rows.push(r); }
  }
  return { lanes, rows, t0 };
}

function summarizeAnswer(result) {
  if (!result || typeof result !== 'object') return '';
  if ('success' in result) return result.success ? '(success)' : '(success=false)';
  return '(' + Object.keys(result).slice(0, 3).join(', ') + ')';
}

function renderLadder({ lanes, rows, t0 }) {
  const n = lanes.length;
  const pct = i => ((i + 0.5) / n * 100).toFixed(3) + '%';
  const cols = `repeat(${n}, minmax(0, 1fr))`;
  const lifelines = () => lanes.map((_, i) => h('span', { class: 'life', style: `left:${pct(i)}` }));
  const header = h('div', { class: 'lanes', role: 'row' }, h('div', { class: 'muted', style: 'padding:6px;font-size:11px' }, 'time'),
    h('div', { class: 'names', style: `grid-template-columns:${cols}` }, lanes.map(l => h('div', { title: l.name, role: 'columnheader' }, l.name, h('small', {}, l.sub)))));
  const body = rows.map((r, i) => {
    let shape;
    const spoken = r.note !== undefined ? `${lanes[r.note].name}: ${r.label}` : `${lanes[r.from].name} to ${lanes[r.to].name}: ${r.label}`;
    if (r.note !== undefined) {
      shape = h('span', { class: 'note', style: `left:${pct(r.note)}` }, r.label);
    } else {
      const a = Math.min(r.from, r.to), b = Math.max(r.from, r.to);
      const left = `calc(${pct(a)} + 2px)`, width = `calc(${((b - a) / n * 100).toFixed(3)}% - 4px)`;
      shape = [
        h('span', { class: `arrow ${r.from < r.to ? 'right' : 'left'} ${r.style || ''}`, style: `left:${left};width:${width}` }),
        h('span', { class: 'label', style: `left:${left};width:${width}` }, r.label),
      ];
    }
    const cls = ['msg', r.style || '', r.ending || r.endingBold ? 'ending' : '', S.selected === i ? 'selected' : ''].join(' ');
    return h('button', { type: 'button', class: cls, id: 'row-' + i, 'data-kind': r.event.kind, 'data-label': r.label, 'aria-label': spoken,
      onclick: () => { S.selected = i; scheduleRender(0); },
      onkeydown: ev => {
        if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
          ev.preventDefault();
          const j = Math.max(0, Math.min(rows.length - 1, i + (ev.key === 'ArrowDown' ? 1 : -1)));
          S.selected = j; render().then(() => { const el = document.getElementById('row-' + j); if (el) el.focus(); });
        }
      } },
      h('span', { class: 't' }, fmtOffset(r.offset)),
      h('span', { class: 'stage' }, lifelines(), shape));
  });
  return h('div', { class: 'ladder', 'data-keep-scroll': 'ladder', id: 'ladder' }, header, body.length ? body : h('p', { class: 'muted', style: 'padding:8px' }, 'no events yet'));
}

function payloadView(e, t0) {
  const sdps = [];
  const findSdp = (v, path) => {
    if (typeof v === 'string' && v.startsWith('v=0')) sdps.push([path, v]);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) findSdp(x, path ? path + '.' + k : k);
  };
  findSdp(e.detail, '');
  return h('div', {},
    h('h2', {}, e.kind, e.detail && e.detail.messageType ? ' · ' + e.detail.messageType : ''),
    h('p', { class: 'muted mono' }, `#${e.seq} · ${fmtTime(e.timeMs)} (${fmtOffset(e.timeMs - t0)})`, e.rtcId ? ` · rtcId ${e.rtcId}` : ''),
    h('pre', { id: 'payload-json' }, json(e.detail)),
    sdps.map(([p, sdp]) => h('details', { open: true }, h('summary', {}, 'SDP in ' + p), h('pre', {}, sdp))));
}

// ---------------------------------------------------------------------------------------------
// Devices

async function devices() {
  const [devs, virt] = await Promise.all([api('/admin/devices'), api('/admin/voip/devices').catch(() => ({ devices: [] }))]);
  const sdk = devs.devices.filter(d => !d.connection || d.connection.transport !== 'virtual');
  const virtualIds = new Set(virt.devices.map(d => d.rtcId));
  return h('div', {},
    h('h1', {}, 'Devices'),
    h('section', { class: 'card' }, h('h2', {}, `SDK devices (${devs.connections} MQTT connections)`),
      table(['tenant', 'rtcId', 'deviceId', 'online', 'transport', 'peer', 'last heartbeat', 'heartbeats', ''],
        sdk.filter(d => !virtualIds.has(d.rtcId)).map(d => h('tr', {},
          h('td', {}, d.tenant), h('td', { class: 'mono' }, d.rtcId), h('td', {}, d.deviceId),
          h('td', {}, d.online ? h('span', { class: 'badge good' }, 'online') : h('span', { class: 'badge' }, 'offline')),
          h('td', {}, d.connection ? d.connection.transport : ''), h('td', { class: 'mono' }, d.connection ? d.connection.peer : ''),
          h('td', { class: 'mono' }, fmtTime(d.lastHeartbeatMs)), h('td', { class: 'num' }, d.heartbeats),
          h('td', {}, d.online ? h('button', { type: 'button', class: 'danger', onclick: () => act(`/admin/devices/${d.rtcId}/kick?tenant=${encodeURIComponent(d.tenant)}`) }, 'kick') : ''))),
        { empty: 'no SDK device registered' })),
    h('section', { class: 'card', style: 'margin-top:12px' }, h('h2', {}, 'Virtual devices'),
      table(['rtcId', 'deviceId', 'state', 'behaviour', 'call', 'last calls', ''], virt.devices.map(d => h('tr', {},
        h('td', { class: 'mono' }, d.rtcId), h('td', {}, d.deviceId), h('td', {}, h('b', {}, d.state)),
        h('td', { class: 'mono wrap' }, JSON.stringify(d.behavior)),
        h('td', {}, d.channelId ? h('a', { href: '#/calls/' + d.channelId, class: 'mono' }, short(d.channelId, 10)) : ''),
        h('td', {}, d.calls.slice(-3).map(x => h('div', {}, `${x.role} ${x.outcome || ''} `, codeBadge(x.code)))),
        h('td', {}, ['answer', 'reject', 'hangup'].map(a => h('button', { type: 'button', onclick: () => act(`/admin/voip/devices/${d.rtcId}/${a}?tenant=${encodeURIComponent(d.tenant)}`) }, a))))),
      { empty: 'no virtual devices' })));
}

// ---------------------------------------------------------------------------------------------
// Phones

async function phones() {
  const [list, magic, tenants] = await Promise.all([api('/admin/pstn/phones'), api('/admin/pstn/magic-numbers'), api('/admin/tenants')]);
  const numbers = tenants.tenants.flatMap(t => (t.numbers || []).map(n => [n, t.name]));
  const sel = S.phone && list.phones.find(p => p.number === S.phone);
  const actions = p => ['answer', 'reject', 'hangup'].map(a =>
    h('button', { type: 'button', id: `phone-${p.number}-${a}`, onclick: () => act(`/admin/pstn/phones/${p.number}/${a}`) }, a));
  return h('div', {},
    h('h1', {}, 'Phones'),
    h('section', { class: 'card' }, h('h2', {}, 'Phones in use'),
      table(['number', 'state', 'call', 'peer', 'behaviour', 'digits in / out', ''], list.phones.map(p => h('tr', {},
        h('td', { class: 'mono' }, h('button', { type: 'button', class: 'copy', onclick: () => { S.phone = p.number; scheduleRender(0); } }, p.number)),
        h('td', {}, h('b', { id: `phone-${p.number}-state` }, p.state)),
        h('td', {}, p.channelId ? h('a', { href: '#/calls/' + p.channelId, class: 'mono' }, short(p.channelId, 10)) : ''),
        h('td', {}, p.peer || ''), h('td', { class: 'mono wrap' }, `${p.behaviorSource}: ${JSON.stringify(p.behavior)}`),
        h('td', { class: 'mono' }, `${p.digitsReceived || '–'} / ${p.digitsSent || '–'}`),
        h('td', {}, actions(p), h('button', { type: 'button', onclick: () => { S.phone = p.number; scheduleRender(0); } }, 'keypad…')))),
      { empty: 'no phone has been called or configured yet' })),
    h('div', { class: 'grid', style: 'margin-top:12px' },
      h('section', { class: 'card', 'aria-labelledby': 'h-keypad' }, h('h2', { id: 'h-keypad' }, sel ? `Phone ${sel.number}` : 'Phone'),
        sel ? h('div', {},
          h('p', {}, 'state ', h('b', {}, sel.state), ' · ', actions(sel)),
          h('div', { class: 'keypad', role: 'group', 'aria-label': 'DTMF keypad' },
            [...'123456789*0#'].map(k => h('button', { type: 'button', id: 'key-' + (k === '*' ? 'star' : k === '#' ? 'hash' : k),
              onclick: () => act(`/admin/pstn/phones/${sel.number}/dtmf`, { digits: k }) }, k))),
          h('form', { onsubmit: ev => { ev.preventDefault(); let b; try { b = JSON.parse(ev.target.b.value); } catch (e) { toast('not JSON: ' + e.message, true); return; } act(`/admin/pstn/phones/${sel.number}`, b, 'PUT'); } },
            h('p', {}, h('label', { for: 'behaviour' }, 'Behaviour (from its next call):')),
            h('textarea', { id: 'behaviour', name: 'b', rows: 4, cols: 48 }, JSON.stringify(sel.behavior)),
            h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Set behaviour'),
              h('button', { type: 'button', onclick: () => act(`/admin/pstn/phones/${sel.number}`, undefined, 'DELETE') }, 'Clear'))),
          h('details', {}, h('summary', {}, `history (${sel.history.length})`), h('pre', {}, json(sel.history))))
          : h('p', { class: 'muted' }, 'Choose a phone above for its keypad, behaviour and history.')),
      h('section', { class: 'card', 'aria-labelledby': 'h-dialin' }, h('h2', { id: 'h-dialin' }, 'A phone calls a bought number'),
        h('form', { class: 'row', onsubmit: async ev => { ev.preventDefault(); const r = await act('/admin/pstn/calls', { from: ev.target.from.value.trim(), to: ev.target.to.value }); if (r) location.hash = '#/calls/' + r.channelId; } },
          h('label', {}, 'from', h('input', { name: 'from', id: 'dialin-from', value: '13912345678', size: 12 })),
          h('label', {}, 'to', h('select', { name: 'to', id: 'dialin-to' }, numbers.map(([n, t]) => h('option', { value: n }, `${n} (${t})`)))),
          h('button', { type: 'submit', class: 'primary' }, 'Call in'))),
      h('section', { class: 'card' }, h('h2', {}, 'Magic numbers'),
        table(['number', 'what'], magic.magicNumbers.map(m => h('tr', {}, h('td', { class: 'mono' }, m.number, ' ', copyButton(m.number, m.number)), h('td', {}, m.description)))))));
}

// ---------------------------------------------------------------------------------------------
// Queues and receipts

async function queues() {
  const [list, push, attempts] = await Promise.all([api('/admin/mns/queues'), api('/admin/mns/push'), api('/admin/events?kind=receipt.push&limit=100')]);
  let messages = null;
  if (S.queue) {
    try { messages = await api(`/admin/mns/queues/${encodeURIComponent(S.queue.name)}/messages?tenant=${encodeURIComponent(S.queue.tenant)}`); }
    catch { S.queue = null; }
  }
  return h('div', {},
    h('h1', {}, 'Queues and receipts'),
    h('section', { class: 'card' }, h('h2', {}, 'MNS queues'),
      table(['tenant', 'queue', 'active', 'inactive', 'delayed', ''], list.queues.map(q => h('tr', {},
        h('td', {}, q.tenant), h('td', { class: 'mono' }, q.name),
        h('td', { class: 'num' }, q.activeMessages), h('td', { class: 'num' }, q.inactiveMessages), h('td', { class: 'num' }, q.delayMessages),
        h('td', {}, h('button', { type: 'button', onclick: () => { S.queue = { tenant: q.tenant, name: q.name }; scheduleRender(0); } }, 'messages'),
          h('button', { type: 'button', class: 'danger', onclick: () => act(`/admin/mns/queues/${encodeURIComponent(q.name)}/purge?tenant=${encodeURIComponent(q.tenant)}`) }, 'purge')))),
      { empty: 'no queues' })),
    messages ? h('section', { class: 'card', style: 'margin-top:12px' }, h('h2', {}, `${messages.queue} (${messages.messages.length} messages)`),
      receiptTable(messages.messages)) : '',
    h('div', { class: 'grid', style: 'margin-top:12px' },
      h('section', { class: 'card' }, h('h2', {}, 'Push targets'),
        table(['tenant', 'messageType', 'url'], (push.targets || []).map(t => h('tr', {}, h('td', {}, t.tenant), h('td', {}, t.messageType || t.message_type || '*'), h('td', { class: 'mono wrap' }, t.url))),
          { empty: 'none (receipts wait in the queues)' })),
      h('section', { class: 'card' }, h('h2', {}, 'Push attempts'),
        table(['time', 'messageType', 'attempt', 'result'], attempts.events.slice().reverse().map(e => h('tr', {},
          h('td', { class: 'mono' }, fmtTime(e.timeMs)), h('td', {}, e.detail.messageType), h('td', { class: 'num' }, e.detail.attempt),
          h('td', {}, e.detail.ok ? h('span', { class: 'badge good' }, e.detail.status) : h('span', { class: 'badge bad' }, '✖ ' + (e.detail.error || e.detail.status))))),
        { empty: 'no push attempts' }))));
}

// Receipts (CDRs, recording reports) as a table: one row per message, the decoded body's fields as columns.
function receiptTable(msgs) {
  const cols = [];
  for (const m of msgs) for (const [k, v] of Object.entries(m.decoded || {})) if (typeof v !== 'object' && !cols.includes(k)) cols.push(k);
  const shown = cols.slice(0, 9);
  return h('div', { class: 'scroll', 'data-keep-scroll': 'messages' },
    table(['messageId', 'state', 'dequeued', ...shown], msgs.map(m => h('tr', {},
      h('td', { class: 'mono' }, short(m.messageId, 10)), h('td', {}, m.state), h('td', { class: 'num' }, m.dequeueCount),
      shown.map(k => { const v = (m.decoded || {})[k]; return h('td', { class: 'mono' }, k === 'channelId' && v ? h('a', { href: '#/calls/' + v }, short(v, 10)) : (v ?? '')); }),
      m.decoded ? '' : h('td', { class: 'mono wrap' }, short(m.body, 60)))), { empty: 'empty queue' }));
}

// ---------------------------------------------------------------------------------------------
// POP requests, with signature failures diffed

async function requests() {
  const d = await api('/admin/requests?limit=200');
  const list = d.requests.slice().reverse();
  return h('div', {},
    h('h1', {}, 'POP requests'),
    h('section', { class: 'card' }, h('div', { class: 'scroll', 'data-keep-scroll': 'requests' },
      table(['time', 'action', 'AccessKeyId', 'tenant', 'status', 'code', 'message'], list.map((r, i) => [
        h('tr', {}, h('td', { class: 'mono' }, fmtTime(r.timeMs)), h('td', {}, r.action || r.method), h('td', { class: 'mono' }, r.accessKeyId || ''),
          h('td', {}, r.tenant || ''), h('td', { class: 'num' }, r.status), h('td', {}, r.status >= 400 ? h('b', { class: 'err' }, r.code) : r.code), h('td', { class: 'wrap' }, r.message || '')),
        r.serverStringToSign ? h('tr', {}, h('td', { colspan: 7 }, signatureDiff(r, i))) : null,
      ]), { empty: 'no POP requests yet' }))));
}

function signatureDiff(r, i) {
  const server = r.serverStringToSign || '';
  const client = r.clientStringToSign;
  let at = -1;
  if (client !== undefined && client !== null) {
    const n = Math.max(client.length, server.length);
    for (let k = 0; k < n; k++) if (client[k] !== server[k]) { at = k; break; }
  }
  const marked = s => at < 0 ? s : [s.slice(0, at), h('mark', {}, s.slice(at, at + 1) || '␀'), s.slice(at + 1)];
  return h('div', { class: 'sigdiff', id: 'sigdiff-' + i },
    r.hint ? h('p', {}, h('b', {}, 'Hint: '), r.hint) : '',
    client != null ? h('p', {}, at >= 0 ? h('b', {}, `First difference at character ${at} (marked ▮).`) : 'The strings are equal: the secret differs.') : h('p', { class: 'muted' }, 'The client’s string-to-sign could not be reconstructed.'),
    h('div', { class: 'diff' },
      h('div', {}, h('b', {}, 'client string-to-sign'), h('pre', { class: 'client' }, client != null ? marked(client) : '—')),
      h('div', {}, h('b', {}, 'server string-to-sign'), h('pre', { class: 'server' }, marked(server)))),
    r.serverCanonicalRequest ? h('details', {}, h('summary', {}, 'server canonical request (ACS3)'), h('pre', {}, r.serverCanonicalRequest)) : '');
}

// ---------------------------------------------------------------------------------------------
// Events

async function events() {
  const f = S.eventFilter;
  const match = e => (!f.kind || e.kind.startsWith(f.kind)) && (!f.channelId || (e.channelId || '').includes(f.channelId)) && (!f.rtcId || (e.rtcId || '') === f.rtcId);
  const list = S.events.filter(match).slice(-500).reverse();
  const input = (name, label, ph) => h('label', {}, label, h('input', { id: 'filter-' + name, value: f[name], placeholder: ph, size: 16,
    oninput: ev => { f[name] = ev.target.value.trim(); scheduleRender(200); } }));
  return h('div', {},
    h('h1', {}, 'Events'),
    h('div', { class: 'row card', role: 'search' }, input('kind', 'kind prefix', 'envelope.'), input('channelId', 'channelId', ''), input('rtcId', 'rtcId', ''),
      h('span', { class: 'muted' }, `${list.length} shown of ${S.events.length} (newest first, live)`)),
    h('section', { class: 'card', style: 'margin-top:12px' }, h('div', { class: 'scroll', 'data-keep-scroll': 'events' },
      table(['#', 'time', 'kind', 'channelId', 'rtcId', 'detail'], list.map(e => h('tr', {},
        h('td', { class: 'num' }, e.seq), h('td', { class: 'mono' }, fmtTime(e.timeMs)), h('td', {}, e.kind),
        h('td', {}, e.channelId ? h('a', { href: '#/calls/' + e.channelId, class: 'mono' }, short(e.channelId, 10)) : ''),
        h('td', { class: 'mono' }, e.rtcId || ''), h('td', { class: 'mono wrap' }, short(JSON.stringify(e.detail), 160)))), { empty: 'no events match' }))));
}

// ---------------------------------------------------------------------------------------------

document.addEventListener('keydown', ev => {
  if (ev.target.closest('input, textarea, select') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const keys = { 1: 'overview', 2: 'calls', 3: 'devices', 4: 'phones', 5: 'queues', 6: 'requests', 7: 'events' };
  if (keys[ev.key]) location.hash = '#/' + keys[ev.key];
});
window.addEventListener('hashchange', route);
readClock().then(loadEvents).then(() => { route(); startStream(); });
