'use strict';
// The video client's web server (docs/video-client.md), on 127.0.0.1:<free port>:
//   GET /                   the page (index.html)
//   GET /client.js          the client
//   GET /lib/mqtt.min.js    mqtt.js's browser bundle, from node_modules
//   GET /lib/pako.min.js    pako's browser bundle, from node_modules
//   GET /token?rtcId=&deviceId=   GetRtcToken on the emulator (the harness's pop-core client)
//   GET /account?deviceId=        AddRtcAccount
// `pop` is anything with getToken(rtcId, deviceId) and addAccount(deviceId): the suite's harness
// server (harness/server.js) in the tests.
//
// Standalone, by hand:
//   node video-client/server.js <ready.json of a running alicom-emu>
//   then open http://127.0.0.1:PORT/?rtcId=<id>&deviceId=<dev>&autostart=1 in two browser windows

const fs = require('node:fs');
const http = require('node:http');
const { listenLocal } = require('../lib/listen');
const path = require('node:path');

const HERE = __dirname;
const JS = 'text/javascript; charset=utf-8';
// Resolved through each package's directory: their "exports" maps differ.
const inPackage = (pkg, file) => path.join(path.dirname(require.resolve(`${pkg}/package.json`)), file);
const STATIC = {
  '/': { file: path.join(HERE, 'index.html'), type: 'text/html; charset=utf-8' },
  '/index.html': { file: path.join(HERE, 'index.html'), type: 'text/html; charset=utf-8' },
  '/client.js': { file: path.join(HERE, 'client.js'), type: JS },
  '/lib/mqtt.min.js': { file: inPackage('mqtt', 'dist/mqtt.min.js'), type: JS },
  '/lib/pako.min.js': { file: inPackage('pako', 'dist/pako.min.js'), type: JS },
};

async function startVideoClientServer(pop) {
  const send = (res, status, type, body) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    try {
      const st = STATIC[url.pathname];
      if (st && req.method === 'GET') return send(res, 200, st.type, fs.readFileSync(st.file));
      if (url.pathname === '/token') {
        const rtcId = url.searchParams.get('rtcId');
        const deviceId = url.searchParams.get('deviceId');
        if (!rtcId || !deviceId) return send(res, 400, 'application/json', JSON.stringify({ error: 'rtcId and deviceId are required' }));
        return send(res, 200, 'application/json', JSON.stringify(await pop.getToken(rtcId, deviceId)));
      }
      if (url.pathname === '/account') {
        const deviceId = url.searchParams.get('deviceId');
        if (!deviceId) return send(res, 400, 'application/json', JSON.stringify({ error: 'deviceId is required' }));
        return send(res, 200, 'application/json', JSON.stringify({ rtcId: await pop.addAccount(deviceId) }));
      }
      if (url.pathname === '/favicon.ico') return send(res, 204, 'text/plain', '');
      return send(res, 404, 'text/plain', 'not found');
    } catch (e) {
      return send(res, 502, 'application/json', JSON.stringify({ error: String(e && e.message) }));
    }
  });
  return listenLocal(server);
}

module.exports = { startVideoClientServer };

if (require.main === module) {
  require('../harness/server')
    .startHarnessFromArgv('video-client/server.js')
    .then((harness) => startVideoClientServer(harness))
    .then((s) => console.log(`video client at ${s.url}/  (open ${s.url}/?rtcId=<id>&deviceId=<dev>&autostart=1; accounts: ${s.url}/account?deviceId=<dev>)`));
}
