'use strict';
// The test page's web server, playing the customer's web app + app server:
//   GET /                     the test page (page.html)
//   GET /harness/*.js         the page's scripts (pc-wrap.js, page.js)
//   GET /sdk/voip-web-sdk.js  the unmodified SDK bundle from node_modules
//   GET /token?rtcId=&deviceId=
//                             GetRtcToken on the emulator with @alicloud/pop-core, signed with the
//                             tenant AccessKey; answers the token object (JSON.parse(Module))
//   GET /account?deviceId=    AddRtcAccount the same way; answers {"rtcId": Module}
// Listens on 127.0.0.1:<free port>. Every /token and /account call is remembered in `calls`.
//
// Standalone (for poking at it by hand):
//   node harness/server.js <ready.json of a running alicom-emu>

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const RPCClient = require('@alicloud/pop-core').RPCClient;
const { listenLocal } = require('../lib/listen');

const HERE = __dirname;
const SDK_FILE = require.resolve('aliyun-voip-web-sdk/build/voip-web-sdk.js');
const API_VERSION = '2017-05-25';

const STATIC = {
  '/': { file: path.join(HERE, 'page.html'), type: 'text/html; charset=utf-8' },
  '/index.html': { file: path.join(HERE, 'page.html'), type: 'text/html; charset=utf-8' },
  '/harness/page.js': { file: path.join(HERE, 'page.js'), type: 'text/javascript; charset=utf-8' },
  '/harness/pc-wrap.js': { file: path.join(HERE, 'pc-wrap.js'), type: 'text/javascript; charset=utf-8' },
  '/sdk/voip-web-sdk.js': { file: SDK_FILE, type: 'text/javascript; charset=utf-8' },
};

/**
 * @param {{popEndpoint: string, accessKeyId: string, accessKeySecret: string}} emu
 */
async function startHarness(emu) {
  const pop = new RPCClient({
    accessKeyId: emu.accessKeyId,
    accessKeySecret: emu.accessKeySecret,
    endpoint: emu.popEndpoint,
    apiVersion: API_VERSION,
    opts: { timeout: 10000 },
  });
  const calls = [];

  async function popCall(action, params) {
    const json = await pop.request(action, params, { method: 'POST' });
    if (json.Code !== 'OK') throw new Error(`${action}: ${JSON.stringify(json)}`);
    return json;
  }

  async function addAccount(deviceId) {
    const json = await popCall('AddRtcAccount', { DeviceId: deviceId });
    calls.push({ t: Date.now(), action: 'AddRtcAccount', deviceId, rtcId: json.Module });
    return json.Module;
  }

  async function getToken(rtcId, deviceId) {
    const json = await popCall('GetRtcToken', { UserId: rtcId, DeviceId: deviceId, IsCustomAccount: 'false' });
    const token = JSON.parse(json.Module);
    calls.push({ t: Date.now(), action: 'GetRtcToken', rtcId, deviceId, clientId: token.clientId, tokenData: token.tokenData });
    return token;
  }

  function send(res, status, type, body) {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    try {
      const st = STATIC[url.pathname];
      if (st && req.method === 'GET') return send(res, 200, st.type, fs.readFileSync(st.file));
      if (url.pathname === '/token') {
        const rtcId = url.searchParams.get('rtcId');
        const deviceId = url.searchParams.get('deviceId');
        if (!rtcId || !deviceId) return send(res, 400, 'application/json', JSON.stringify({ error: 'rtcId and deviceId are required' }));
        return send(res, 200, 'application/json', JSON.stringify(await getToken(rtcId, deviceId)));
      }
      if (url.pathname === '/account') {
        const deviceId = url.searchParams.get('deviceId');
        if (!deviceId) return send(res, 400, 'application/json', JSON.stringify({ error: 'deviceId is required' }));
        return send(res, 200, 'application/json', JSON.stringify({ rtcId: await addAccount(deviceId) }));
      }
      if (url.pathname === '/favicon.ico') return send(res, 204, 'text/plain', '');
      return send(res, 404, 'text/plain', 'not found');
    } catch (e) {
      calls.push({ t: Date.now(), action: url.pathname, error: String(e && e.message) });
      return send(res, 502, 'application/json', JSON.stringify({ error: String(e && e.message), code: e && e.code }));
    }
  });
  const listening = await listenLocal(server);
  return {
    url: listening.url,
    port: listening.port,
    calls,
    addAccount,
    getToken,
    tokenCalls: (rtcId) => calls.filter((c) => c.action === 'GetRtcToken' && (!rtcId || c.rtcId === rtcId)),
    async close() {
      pop.keepAliveAgent && pop.keepAliveAgent.destroy();
      await listening.close();
    },
  };
}

// A harness for a running emulator, from the command line: `node <script> <ready.json>`.
function startHarnessFromArgv(script) {
  const ready = process.argv[2];
  if (!ready) {
    console.error(`usage: node ${script} <ready.json of a running alicom-emu>`);
    process.exit(2);
  }
  const info = JSON.parse(fs.readFileSync(ready, 'utf8'));
  return startHarness({
    popEndpoint: `http://${new URL(info.pop).host}`,
    accessKeyId: info.access_key_id,
    accessKeySecret: info.access_key_secret,
  });
}

module.exports = { startHarness, startHarnessFromArgv };

if (require.main === module) {
  startHarnessFromArgv('harness/server.js').then((h) =>
    console.log(`harness at ${h.url}/  (open ${h.url}/?rtcId=<id>&deviceId=<dev>&autostart=1)`),
  );
}
