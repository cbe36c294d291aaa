'use strict';
// The suite's report: every scenario writes <dir>/scenarios/<slug>.json when it ends, and the
// merged target/web-sdk-report/report.json + report.md are rewritten after each one (so the report
// is complete whichever way the tests were started). `node lib/report.js` re-merges by hand.
//   dir: $WEB_SDK_REPORT_DIR, default <repo>/target/web-sdk-report

const fs = require('node:fs');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const DIR = process.env.WEB_SDK_REPORT_DIR || path.join(REPO, 'target', 'web-sdk-report');
const SCEN_DIR = path.join(DIR, 'scenarios');

const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

function writeScenario(result) {
  fs.mkdirSync(SCEN_DIR, { recursive: true });
  fs.writeFileSync(path.join(SCEN_DIR, `${slug(result.file)}--${slug(result.scenario)}.json`), JSON.stringify(result, null, 2));
  merge();
}

function loadScenarios() {
  if (!fs.existsSync(SCEN_DIR)) return [];
  return fs
    .readdirSync(SCEN_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(SCEN_DIR, f), 'utf8')))
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

const fmtArgs = (args) => (args && args.length ? ` ${JSON.stringify(args)}` : '');

function eventLine(e) {
  return `+${String(e.dt).padStart(6)} ms  ${e.source}.${e.name}${fmtArgs(e.args)}`;
}

function emuEventLine(e, t0) {
  const rel = t0 ? `+${String(e.timeMs - t0).padStart(6)} ms` : String(e.timeMs);
  return `${rel}  #${e.seq} ${e.kind}${e.channelId ? ` ch=${e.channelId}` : ''} ${JSON.stringify(e.detail)}`;
}

function markdown(all) {
  const pass = all.filter((s) => s.status === 'pass').length;
  const fail = all.length - pass;
  const out = [];
  out.push('# Web SDK in headless Chromium against alicom-emu');
  out.push('');
  const env = all.find((s) => s.environment);
  if (env) {
    const e = env.environment;
    out.push(`SDK \`${e.sdk}\` (bundle sha256 \`${e.sdkSha256}\`), ${e.browser}, puppeteer-core ${e.puppeteer}, node ${e.node}.`);
    out.push(`Emulator: \`${e.emulatorBinary}\`.`);
    out.push('');
  }
  out.push(`**${pass} passed, ${fail} failed.**`);
  out.push('');
  out.push('| scenario | file | result | duration | timings |');
  out.push('|---|---|---|---|---|');
  for (const s of all) {
    const timings = Object.entries(s.timings || {})
      .map(([k, v]) => `${k}: ${v} ms`)
      .join('; ');
    out.push(`| ${s.scenario} | ${s.file} | ${s.status === 'pass' ? 'PASS' : '**FAIL**'} | ${(s.durationMs / 1000).toFixed(1)} s | ${timings} |`);
  }
  for (const s of all) {
    out.push('');
    out.push(`## ${s.scenario} — ${s.status === 'pass' ? 'PASS' : 'FAIL'}`);
    out.push('');
    if (s.description) out.push(s.description, '');
    out.push('Steps:');
    out.push('');
    for (const st of s.steps) {
      out.push(`- ${st.status === 'pass' ? '✔' : st.status === 'fail' ? '✘' : '·'} ${st.name} (${st.durationMs} ms)${st.error ? `\n\n  \`\`\`\n  ${st.error.split('\n').join('\n  ')}\n  \`\`\`` : ''}`);
    }
    if (s.error && !s.steps.some((st) => st.error)) out.push('', '```', s.error, '```');
    for (const n of s.notes || []) {
      // multi-line notes (a call's wire): first line as text, the rest as a code block
      const [head, ...rest] = String(n).split('\n');
      out.push('', `Note: ${head}`);
      if (rest.length) out.push('', '```', ...rest, '```');
    }
    for (const d of s.devices || []) {
      out.push('');
      out.push(`### Device \`${d.name}\` (rtcId ${d.rtcId}, DeviceId ${d.deviceId})`);
      out.push('');
      if (d.state) {
        out.push(`updateToken calls: ${d.state.updateTokenCalls}, setToken: ${d.state.setTokenCalls}, RTCPeerConnections: ${d.state.pcs}, ` +
          `offline requests (tracking beacons): ${d.offlineRequests}, page errors: ${d.pageErrors.length}`);
        out.push('');
      }
      out.push('SDK callbacks seen by the page:');
      out.push('');
      out.push('```');
      for (const e of d.events || []) out.push(eventLine(e));
      if (!d.events || !d.events.length) out.push('(none)');
      out.push('```');
      if (d.pageErrors && d.pageErrors.length) {
        out.push('', 'Page errors:', '', '```', ...d.pageErrors.map((e) => e.message), '```');
      }
      if (s.status !== 'pass' && d.console && d.console.length) {
        out.push('', 'Page console (last 40):', '', '```', ...d.console.slice(-40).map((c) => `${c.type}: ${c.text}`), '```');
      }
    }
    if (s.emulatorEvents) {
      for (const [rtcId, evs] of Object.entries(s.emulatorEvents)) {
        out.push('');
        out.push(`### Emulator event log for rtcId ${rtcId}`);
        out.push('');
        out.push('```');
        const t0 = evs.length ? evs[0].timeMs : 0;
        for (const e of evs) out.push(emuEventLine(e, t0));
        if (!evs.length) out.push('(none)');
        out.push('```');
      }
    }
    if (s.emulatorLogTail) {
      out.push('', '### Emulator log (tail)', '');
      if (s.emulatorLogFile) out.push(`Whole log: \`${s.emulatorLogFile}\``, '');
      out.push('```', s.emulatorLogTail, '```');
    }
  }
  out.push('');
  return out.join('\n');
}

function merge() {
  const all = loadScenarios();
  fs.mkdirSync(DIR, { recursive: true });
  const pass = all.filter((s) => s.status === 'pass').length;
  const summary = { generatedAt: new Date().toISOString(), passed: pass, failed: all.length - pass, scenarios: all };
  fs.writeFileSync(path.join(DIR, 'report.json'), JSON.stringify(summary, null, 2));
  fs.writeFileSync(path.join(DIR, 'report.md'), markdown(all));
  return summary;
}

/** Removes the scenario files of an earlier run (run.sh calls this first). */
function clean() {
  fs.rmSync(SCEN_DIR, { recursive: true, force: true });
  for (const f of ['report.json', 'report.md']) fs.rmSync(path.join(DIR, f), { force: true });
}

module.exports = { writeScenario, merge, clean, DIR };

if (require.main === module) {
  if (process.argv[2] === 'clean') {
    clean();
  } else {
    const s = merge();
    console.log(`web-sdk report: ${s.passed} passed, ${s.failed} failed -> ${path.join(DIR, 'report.md')}`);
  }
}
