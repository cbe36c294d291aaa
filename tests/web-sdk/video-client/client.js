'use strict';
// alicom-emu's own browser test client for VIDEO calls (docs/video-client.md).
//
// The vendor's Web SDK (aliyun-voip-web-sdk 0.0.11) is audio only, so this page speaks the same
// protocol itself (docs/protocol.md): MQTT 3.1.1 over WebSocket with mqtt.js, JSON envelopes and
// ACKs, `mediaSignal` = base64(zlib(JSON)) with pako, sigv 2 (the offer inside `joinChannel`,
// the answer and the server's candidate in its result), one RTCPeerConnection per call with an
// audio and a video m-line, `allowVideo: 1` in `channelConfig`, and the emulator's own
// `cs_media_mode` message. Turning the camera off renegotiates the same peer connection and sends
// the new offer in an `sdpCandidate` request.
//
// Needs `window.mqtt` (mqtt.js's browser bundle) and `window.pako` loaded first. Exposes
// `window.VideoClient` (the class) and `window.videoClient` (the page's instance), whose methods
// the browser test drives with page.evaluate:
//
//   await videoClient.login({rtcId, deviceId})  GET /token (GetRtcToken on the emulator), then connect()
//   await videoClient.connect(token, rtcId)     MQTT CONNECT, $SYS/uploadToken, SUBSCRIBE, cs_register (ACK 200)
//   await videoClient.call(calleeRtcId, {video})  joinChannel (offer) + call; resolves with the channelId
//   await videoClient.answer({video})          answers the ringing `called`: answer(1) + joinChannel (offer)
//   await videoClient.reject()                 answer(2)
//   await videoClient.videoOff({how})          'inactive' (default) or 'stop': re-offer in sdpCandidate
//   await videoClient.hangup()                 leaveChannel
//   await videoClient.stats()                  getStats() summary: audio/video in/out, frame sizes, ICE pair
//   videoClient.state()                        what the page knows: call, mode, the messages in and out
//   videoClient.disconnect()                   closes the MQTT connection

(function () {
  const SERVICE_PEER = 'alicombiz';
  const ACK_TIMEOUT_MS = 2000; // the SDK's: a request unACKed after 2 s is sent again...
  const RETRIES = 3; // ...up to 3 more times
  const HEARTBEAT_MS = 30000; // cs_register every 30 s, as the SDK
  const APPKEY = '__alicom_appkey';

  const uuid = () => crypto.randomUUID();
  const now = () => Date.now();

  // ---- mediaSignal: base64(zlib(UTF-8 JSON)) ----
  function encodeSignal(doc) {
    const bytes = pako.deflate(new TextEncoder().encode(JSON.stringify(doc)));
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  }
  function decodeSignal(text) {
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return JSON.parse(new TextDecoder().decode(pako.inflate(bytes)));
  }

  /** An SDP's m-lines: [{kind, port, direction, mid}] (for the page's state and the test's asserts). */
  function mLines(sdp) {
    if (!sdp) return [];
    const out = [];
    let cur = null;
    for (const line of sdp.split(/\r?\n/)) {
      const m = /^m=(\w+) (\d+) /.exec(line);
      if (m) {
        cur = { kind: m[1], port: Number(m[2]), direction: 'sendrecv', mid: null };
        out.push(cur);
      } else if (cur) {
        const d = /^a=(sendrecv|sendonly|recvonly|inactive)$/.exec(line);
        if (d) cur.direction = d[1];
        const mid = /^a=mid:(.*)$/.exec(line);
        if (mid) cur.mid = mid[1];
      }
    }
    return out;
  }

  class VideoClient {
    constructor({ ui } = {}) {
      this.ui = ui || null;
      this.mqtt = null;
      this.token = null;
      this.rtcId = null;
      this.connected = false;
      this.registered = false;
      this.pending = new Map(); // requestId -> {resolve, reject, timer, attempts, payload, type}
      this.seenRequests = new Map(); // server requestIds -> the ACK sent (retransmissions get it again)
      this.wire = []; // every envelope in and out, summarised
      this.received = []; // every server request: {seq, t, type, body, ms}
      this.errors = [];
      this.call_ = null; // the current call
      this.incoming = null; // a `called` not yet answered
      this.mediaModes = []; // cs_media_mode bodies received
      this.seq = 0;
      this.seqId = 0;
      this.heartbeat = null;
      this.localStream = null;
      this.remoteStream = null;
      this.waiters = [];
    }

    // ---- logging and UI ----
    log(text) {
      if (this.ui) this.ui.log(text);
    }
    error(where, e) {
      const msg = `${where}: ${(e && (e.stack || e.message)) || e}`;
      this.errors.push({ t: now(), message: msg });
      this.log(`ERROR ${msg}`);
    }
    render() {
      if (this.ui) this.ui.render(this);
    }

    // ---- connection ----
    async login({ rtcId, deviceId }) {
      const res = await fetch(`/token?rtcId=${encodeURIComponent(rtcId)}&deviceId=${encodeURIComponent(deviceId)}`);
      if (!res.ok) throw new Error(`/token: HTTP ${res.status} ${await res.text()}`);
      return this.connect(await res.json(), rtcId);
    }

    /** CONNECT, $SYS/uploadToken, SUBSCRIBE conferenceTopic, cs_register (docs/protocol.md#handshake). */
    async connect(token, rtcId) {
      for (const f of ['tokenData', 'clientId', 'conferenceTopic', 'host', 'serverId']) {
        if (!token || !token[f]) throw new Error(`the token has no ${f}`);
      }
      this.token = token;
      this.rtcId = rtcId;
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const url = `${scheme}://${token.host}`;
      this.log(`connecting to ${url} as ${token.clientId}`);
      const client = mqtt.connect(url, {
        clientId: token.clientId,
        protocolVersion: 4,
        clean: true,
        keepalive: 30,
        reconnectPeriod: 0,
        connectTimeout: 10000,
      });
      this.mqtt = client;
      client.on('message', (topic, payload) => this.onPublish(topic, payload));
      client.on('close', () => {
        this.connected = false;
        this.log('MQTT connection closed');
        this.render();
      });
      client.on('error', (e) => this.error('mqtt', e));
      await new Promise((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
      });
      this.connected = true;
      client.publish('$SYS/uploadToken', JSON.stringify({ token: token.tokenData, type: 'RW' }), { qos: 0 });
      await new Promise((resolve, reject) => {
        client.subscribe(token.conferenceTopic, { qos: 0 }, (err) => (err ? reject(err) : resolve()));
      });
      const ack = await this.request('cs_register', {});
      if (ack.responseCode !== 200) throw new Error(`cs_register answered ${ack.responseCode}`);
      this.registered = true;
      this.heartbeat = setInterval(() => {
        this.request('cs_register', {}).catch((e) => this.error('heartbeat', e));
      }, HEARTBEAT_MS);
      this.log(`registered as ${rtcId}`);
      this.render();
      return { rtcId, clientId: token.clientId };
    }

    disconnect() {
      clearInterval(this.heartbeat);
      this.heartbeat = null;
      for (const p of this.pending.values()) clearTimeout(p.timer);
      this.pending.clear();
      this.closeMedia();
      if (this.mqtt) this.mqtt.end(true);
      this.connected = false;
      this.registered = false;
      this.render();
    }

    // ---- envelopes ----
    serverTopic() {
      return `${this.token.conferenceTopic}/p2p/${this.token.serverId}`;
    }

    userInfo() {
      return {
        platform: 'web', os: navigator.platform || 'unknown', osVersion: '', model: 'alicom-emu video client',
        appkey: APPKEY, deviceId: this.rtcId, userId: this.call_ ? this.call_.uuid : uuid(),
      };
    }

    mediaSignal(api, data) {
      this.seqId = (this.seqId + 1) % 100;
      return { api, serviceName: 'alicom', sdkVersion: '1.2.0', seqId: `${now()}${String(this.seqId).padStart(2, '0')}`, data };
    }

    /** A request envelope as the SDK builds it (docs/protocol.md#envelopes). */
    envelope(type, body, ms) {
      const b = {
        deviceId: this.rtcId, userId: this.rtcId, ip: 'unknow', token: this.token.tokenData,
        alicomRtcType: 'voip2voip', uuid: this.call_ ? this.call_.uuid : uuid(), ...body,
      };
      if (ms) b.mediaSignal = encodeSignal(ms);
      return {
        topic: type === 'cs_register' ? 'artc_biz' : 'artc_media',
        bornTime: now(),
        from: { sessionId: this.rtcId, clientType: 'Web_artc', transportId: this.token.clientId, transportType: 'mqtt' },
        to: { sessionId: SERVICE_PEER },
        messageId: uuid(),
        messageType: type,
        requestId: uuid(),
        response: false,
        responseCode: 0,
        encryptedBody: false,
        arriveTime: 0,
        body: b,
      };
    }

    note(dir, env, ms) {
      const row = { t: now(), dir, type: env.messageType, requestId: env.requestId, response: env.response, code: env.responseCode };
      if (ms) row.api = ms.api;
      this.wire.push(row);
      if (this.wire.length > 2000) this.wire.splice(0, 500);
      if (env.messageType !== 'cs_register') {
        this.log(`${dir === 'out' ? '→' : '←'} ${env.response ? 'ACK ' : ''}${env.messageType}${env.response ? ` ${env.responseCode}` : ''}`);
      }
    }

    /** Sends a request, re-sending the identical bytes every 2 s up to 3 times; resolves with its ACK. */
    request(type, body, ms) {
      if (!this.mqtt || !this.connected) return Promise.reject(new Error(`${type}: not connected`));
      const env = this.envelope(type, body, ms);
      const payload = JSON.stringify(env);
      this.note('out', env, ms);
      return new Promise((resolve, reject) => {
        const p = { type, resolve, reject, attempts: 0, payload, timer: null };
        const send = () => {
          if (p.attempts > RETRIES) {
            this.pending.delete(env.requestId);
            reject(new Error(`${type}: no ACK after ${RETRIES + 1} attempts`));
            return;
          }
          p.attempts += 1;
          this.mqtt.publish(this.serverTopic(), payload, { qos: 0 });
          p.timer = setTimeout(send, ACK_TIMEOUT_MS);
        };
        this.pending.set(env.requestId, p);
        send();
      });
    }

    /** The ACK the SDK sends for a server request (docs/protocol.md#acks-and-retransmissions). */
    ackFor(env) {
      const body = env.messageType === 'called'
        ? { alicomRtcType: env.body.alicomRtcType, relativeUuid: env.body.callerInfo && env.body.callerInfo.uuid, deviceId: this.rtcId, userId: this.rtcId, ip: 'unknow' }
        : { alicomRtcType: 'voip2voip', uuid: env.body.uuid, deviceId: this.rtcId, userId: this.rtcId, ip: 'unknow', token: this.token.tokenData };
      return {
        topic: env.topic, bornTime: now(),
        from: { sessionId: this.rtcId, clientType: 'Web_artc', transportId: this.token.clientId, transportType: 'mqtt' },
        to: { sessionId: SERVICE_PEER },
        messageId: uuid(), messageType: env.messageType, requestId: env.requestId,
        response: true, responseCode: 200, encryptedBody: false, arriveTime: 0, body,
      };
    }

    onPublish(topic, payload) {
      if (topic.startsWith('$SYS/')) {
        this.log(`notice ${topic}`);
        this.received.push({ seq: ++this.seq, t: now(), type: topic, body: null, ms: null });
        this.wake();
        return;
      }
      let env;
      try {
        env = JSON.parse(new TextDecoder().decode(payload));
      } catch (e) {
        this.error('unparseable message', e);
        return;
      }
      if (env.response) {
        this.note('in', env);
        const p = this.pending.get(env.requestId);
        if (p) {
          clearTimeout(p.timer);
          this.pending.delete(env.requestId);
          p.resolve(env);
        }
        return;
      }
      // A server request: ACK it (again, for a retransmission), handle it once.
      const seen = this.seenRequests.get(env.requestId);
      const ack = seen || JSON.stringify(this.ackFor(env));
      this.mqtt.publish(this.serverTopic(), ack, { qos: 0 });
      if (seen) return;
      this.seenRequests.set(env.requestId, ack);
      if (this.seenRequests.size > 256) this.seenRequests.delete(this.seenRequests.keys().next().value);
      let ms = null;
      if (typeof env.body.mediaSignal === 'string') {
        try {
          ms = decodeSignal(env.body.mediaSignal);
        } catch (e) {
          this.error(`${env.messageType}: mediaSignal`, e);
        }
      }
      this.note('in', env, ms);
      const row = { seq: ++this.seq, t: now(), type: env.messageType, body: { ...env.body, mediaSignal: undefined }, ms };
      this.received.push(row);
      if (this.received.length > 1000) this.received.splice(0, 200);
      Promise.resolve()
        .then(() => this.handle(env, ms))
        .catch((e) => this.error(`handling ${env.messageType}`, e))
        .finally(() => {
          this.wake();
          this.render();
        });
    }

    /** Resolves when a server request of `type` matching `pred` arrives after `afterSeq`. */
    waitFor(type, { timeout = 10000, afterSeq = 0, pred } = {}) {
      const find = () => this.received.find((r) => r.seq > afterSeq && r.type === type && (!pred || pred(r)));
      const hit = find();
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { find, resolve };
        w.timer = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`no ${type} within ${timeout} ms; received: ${this.received.map((r) => r.type).join(', ')}`));
        }, timeout);
        this.waiters.push(w);
      });
    }
    wake() {
      for (const w of this.waiters.slice()) {
        const hit = w.find();
        if (hit) {
          clearTimeout(w.timer);
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(hit);
        }
      }
    }

    // ---- server requests ----
    async handle(env, ms) {
      const data = (ms && ms.data) || {};
      const call = this.call_;
      const ours = call && (env.body.channelId || data.channelId) === call.channelId;
      switch (env.messageType) {
        case 'called': {
          const cfg = data.channelConfig || {};
          this.incoming = {
            channelId: env.body.channelId || data.channelId,
            callId: data.callId,
            callerInfo: env.body.callerInfo,
            callerUserInfo: data.callerUserInfo,
            alicomRtcType: env.body.alicomRtcType || 'voip2voip',
            video: Number(cfg.allowVideo) === 1,
          };
          this.log(`incoming ${this.incoming.video ? 'VIDEO' : 'audio'} call from ${env.body.callerInfo && env.body.callerInfo.rtcId}`);
          break;
        }
        case 'joinChannel': // the joinChannel result: the answer and the server's candidate (sigv 2)
        case 'sdpCandidate': { // the sdpCandidate result: the answer to a re-offer
          if (!ours) break;
          if (ms && ms.errorCode && ms.errorCode !== 0) {
            call.failures.push({ api: ms.api, errorCode: ms.errorCode, errorMsg: ms.errorMsg });
            throw new Error(`${ms.api} result ${ms.errorCode}: ${ms.errorMsg}`);
          }
          const answer = data.sdpInfo && data.sdpInfo.sdp;
          if (!answer) throw new Error(`${env.messageType} result without sdpInfo`);
          await call.pc.setRemoteDescription({ type: 'answer', sdp: answer });
          call.answers.push(answer);
          if (env.messageType === 'joinChannel') {
            const cands = [].concat(data.candidateInfo || [], data.candidateList || []);
            for (const c of cands) {
              const init = typeof c === 'string' ? { candidate: c, sdpMid: '0', sdpMLineIndex: 0 } : { candidate: c.candidate, sdpMid: String(c.id), sdpMLineIndex: Number(c.label) };
              await call.pc.addIceCandidate(init);
              call.candidates.push(init.candidate);
            }
            call.joined = true;
          }
          if (call.onAnswer) {
            const f = call.onAnswer;
            call.onAnswer = null;
            f(answer);
          }
          break;
        }
        case 'ringing':
          if (ours) call.ringing = true;
          break;
        case 'answered':
          if (ours) {
            call.answered = data.callResult !== undefined ? Number(data.callResult) : 1;
            if (call.answered === 2) this.endCall('rejected (answered 2)');
          }
          break;
        case 'peerJoinedChannel':
          if (ours) call.peerJoined = true;
          break;
        case 'cs_media_mode': {
          this.mediaModes.push({ ...env.body, token: undefined });
          if (ours || !call) {
            if (call) call.mode = Number(env.body.mode);
            this.log(`media mode ${env.body.mode === 1 ? 'AUDIO' : 'VIDEO'}: ${env.body.reason}`);
          }
          break;
        }
        case 'peerLeftChannel':
          if (ours) this.endCall('remote hangup (peerLeftChannel)');
          break;
        case 'canceledCall':
          if (this.incoming && this.incoming.channelId === (env.body.channelId || data.channelId)) this.incoming = null;
          if (ours) this.endCall('remote cancel (canceledCall)');
          break;
        case 'cs_disconnect':
          if (ours || (call && !env.body.channelId)) this.endCall(`cs_disconnect ${env.body.causeCode} ${env.body.cause}`);
          if (this.incoming && this.incoming.channelId === env.body.channelId) this.incoming = null;
          break;
        default:
          break;
      }
    }

    // ---- calls ----
    async openMedia(video) {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: video ? { width: 640, height: 480 } : false });
      this.localStream = stream;
      const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
      for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
      for (const track of stream.getVideoTracks()) {
        // Keep the camera's resolution whatever the bandwidth estimate says at the start.
        track.contentHint = 'detail';
        const sender = pc.addTrack(track, stream);
        try {
          const p = sender.getParameters();
          p.degradationPreference = 'maintain-resolution';
          await sender.setParameters(p);
        } catch (e) {
          this.log(`degradationPreference not set: ${e.message}`);
        }
      }
      this.remoteStream = new MediaStream();
      pc.ontrack = (ev) => {
        this.remoteStream.addTrack(ev.track);
        this.render();
      };
      pc.oniceconnectionstatechange = () => {
        if (this.call_ && this.call_.pc === pc) this.call_.iceStates.push(pc.iceConnectionState);
        this.render();
      };
      pc.onconnectionstatechange = () => this.render();
      return { stream, pc };
    }

    newCall(role, channelId, peer, video) {
      this.call_ = {
        role, channelId, peer, uuid: uuid(), video, mode: video ? 0 : 1, pc: null, offers: [], answers: [],
        candidates: [], iceStates: [], failures: [], joined: false, ringing: false, answered: null, peerJoined: false,
        ended: null, onAnswer: null, startedAt: now(),
      };
      return this.call_;
    }

    async offer(call) {
      const offer = await call.pc.createOffer();
      await call.pc.setLocalDescription(offer);
      call.offers.push(offer.sdp);
      return offer.sdp;
    }

    /** A VoIP→VoIP call to `callee`; `video` asks for video (allowVideo 1, a video m-line). */
    async call(callee, { video = true } = {}) {
      if (this.call_ && !this.call_.ended) throw new Error('already in a call');
      const call = this.newCall('caller', uuid(), callee, video);
      const { pc } = await this.openMedia(video);
      call.pc = pc;
      const sdp = await this.offer(call);
      const allowVideo = video ? 1 : 0;
      const join = this.mediaSignal('joinChannel', {
        channelConfig: { callType: 'chat', outerBizId: 'alicom', allowVideo, creator: 1, sigVersion: 2 },
        userInfo: this.userInfo(), channelId: call.channelId, sdpInfo: { sdp, type: 'offer' },
      });
      const body = {
        channelId: call.channelId, isCaller: true, needRecord: false,
        calleeInfo: { isPstn: false, rtcId: callee, uuid: uuid() }, alicomRtcType: 'voip2voip',
      };
      this.render();
      const ack = await this.request('joinChannel', body, join);
      if (ack.responseCode !== 200) throw new Error(`joinChannel ACK ${ack.responseCode}`);
      const ms = this.mediaSignal('call', {
        channelId: call.channelId, callerUserInfo: { ...this.userInfo(), role: 1 },
        calleeDeviceInfo: { deviceList: [{ deviceId: callee, appkey: APPKEY }] },
        channelConfig: { allowVideo, callType: 'chat', outerBizId: 'alicom' },
      });
      await this.request('call', { channelId: call.channelId, alicomRtcType: 'voip2voip' }, ms);
      this.log(`calling ${callee} (${video ? 'video' : 'audio'}), channel ${call.channelId}`);
      return call.channelId;
    }

    /** Answers the ringing call: `answer` (callResult 1), then `joinChannel` with the offer. */
    async answer({ video = true } = {}) {
      const inc = this.incoming;
      if (!inc) throw new Error('no incoming call');
      this.incoming = null;
      const peer = inc.callerInfo && (inc.callerInfo.rtcId || inc.callerInfo.phoneNumber);
      const call = this.newCall('callee', inc.channelId, peer, video && inc.video);
      call.offeredVideo = inc.video;
      const a = this.mediaSignal('answer', {
        callId: inc.callId, channelId: inc.channelId, callResult: 1, callerUserInfo: inc.callerUserInfo,
        calleeUserInfo: this.userInfo(), ext: JSON.stringify({ rtcId: this.rtcId }),
      });
      await this.request('answer', { channelId: inc.channelId, alicomRtcType: inc.alicomRtcType }, a);
      const { pc } = await this.openMedia(call.video);
      call.pc = pc;
      const sdp = await this.offer(call);
      const join = this.mediaSignal('joinChannel', {
        channelConfig: { callType: 'chat', outerBizId: inc.channelId, allowVideo: call.video ? 1 : 0, creator: 0, queryUser: 1, sigVersion: 2 },
        userInfo: this.userInfo(), channelId: inc.channelId, sdpInfo: { sdp, type: 'offer' },
      });
      const body = { channelId: inc.channelId, isCaller: false, callerInfo: inc.callerInfo, alicomRtcType: inc.alicomRtcType };
      this.render();
      const ack = await this.request('joinChannel', body, join);
      if (ack.responseCode !== 200) throw new Error(`joinChannel ACK ${ack.responseCode}`);
      this.log(`answered ${peer} (${call.video ? 'video' : 'audio-only'})`);
      return inc.channelId;
    }

    async reject() {
      const inc = this.incoming;
      if (!inc) throw new Error('no incoming call');
      this.incoming = null;
      const a = this.mediaSignal('answer', {
        callId: inc.callId, channelId: inc.channelId, callResult: 2, callerUserInfo: inc.callerUserInfo, calleeUserInfo: this.userInfo(),
      });
      await this.request('answer', { channelId: inc.channelId, alicomRtcType: inc.alicomRtcType }, a);
    }

    /**
     * Turns the camera off by renegotiating the same peer connection: the video transceiver
     * becomes 'inactive' (or is stopped: port 0 in the offer), and the new offer goes out in an
     * `sdpCandidate` request; resolves once the result's answer is applied.
     */
    async videoOff({ how = 'inactive' } = {}) {
      const call = this.call_;
      if (!call || call.ended || !call.pc) throw new Error('no call');
      const t = call.pc.getTransceivers().find((x) => x.receiver.track && x.receiver.track.kind === 'video' && !x.stopped);
      if (!t) throw new Error('no video transceiver');
      if (how === 'stop') t.stop();
      else t.direction = 'inactive';
      for (const tr of this.localStream.getVideoTracks()) tr.enabled = false;
      const answered = new Promise((resolve) => {
        call.onAnswer = resolve;
      });
      const sdp = await this.offer(call);
      const ms = this.mediaSignal('sdpCandidate', { channelId: call.channelId, sdpInfo: { sdp, type: 'offer' }, candidateList: [] });
      await this.request('sdpCandidate', { channelId: call.channelId }, ms);
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('no sdpCandidate result within 10 s')), 10000));
      await Promise.race([answered, timeout]);
      call.video = false;
      this.render();
      return { offer: mLines(sdp), answer: mLines(call.answers[call.answers.length - 1]) };
    }

    async hangup() {
      const call = this.call_;
      if (!call || call.ended) throw new Error('no call');
      const ms = this.mediaSignal('leaveChannel', { channelId: call.channelId, userInfo: this.userInfo() });
      await this.request('leaveChannel', { channelId: call.channelId }, ms);
      this.endCall('local hangup');
    }

    endCall(why) {
      const call = this.call_;
      if (!call || call.ended) return;
      call.ended = { t: now(), why };
      this.log(`call ended: ${why}`);
      this.closeMedia();
      this.render();
    }

    closeMedia() {
      const call = this.call_;
      if (call && call.pc) {
        try {
          call.pc.close();
        } catch (_) {
          // closed already
        }
      }
      if (this.localStream) for (const t of this.localStream.getTracks()) t.stop();
      this.localStream = null;
    }

    // ---- statistics ----
    /** getStats() of the call's peer connection, summed per kind and direction. */
    async stats() {
      const call = this.call_;
      const out = {
        audio: { in: { packetsReceived: 0, bytesReceived: 0, codec: null }, out: { packetsSent: 0, codec: null } },
        video: {
          in: { packetsReceived: 0, bytesReceived: 0, framesDecoded: 0, keyFramesDecoded: 0, frameWidth: 0, frameHeight: 0, pliCount: 0, nackCount: 0, codec: null },
          out: { packetsSent: 0, framesEncoded: 0, frameWidth: 0, frameHeight: 0, pliCount: 0, codec: null },
        },
        pair: null,
        pcState: call && call.pc ? call.pc.connectionState : null,
      };
      if (!call || !call.pc || call.pc.connectionState === 'closed') return out;
      const report = await call.pc.getStats();
      const byId = new Map();
      report.forEach((r) => byId.set(r.id, r));
      const codec = (r) => {
        const c = r.codecId && byId.get(r.codecId);
        return c ? c.mimeType : null;
      };
      report.forEach((r) => {
        if (r.type === 'inbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) {
          const o = out[r.kind].in;
          o.packetsReceived += r.packetsReceived || 0;
          o.bytesReceived += r.bytesReceived || 0;
          o.codec = o.codec || codec(r);
          if (r.kind === 'video') {
            o.framesDecoded += r.framesDecoded || 0;
            o.keyFramesDecoded += r.keyFramesDecoded || 0;
            o.pliCount += r.pliCount || 0;
            o.nackCount += r.nackCount || 0;
            if (r.frameWidth) {
              o.frameWidth = r.frameWidth;
              o.frameHeight = r.frameHeight;
            }
          }
        } else if (r.type === 'outbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) {
          const o = out[r.kind].out;
          o.packetsSent += r.packetsSent || 0;
          o.codec = o.codec || codec(r);
          if (r.kind === 'video') {
            o.framesEncoded += r.framesEncoded || 0;
            o.pliCount += r.pliCount || 0;
            if (r.frameWidth) {
              o.frameWidth = r.frameWidth;
              o.frameHeight = r.frameHeight;
            }
          }
        } else if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
          const l = byId.get(r.localCandidateId);
          const rm = byId.get(r.remoteCandidateId);
          out.pair = {
            local: l && `${l.candidateType} ${l.address}:${l.port}`,
            remote: rm && `${rm.candidateType} ${rm.address}:${rm.port}`,
          };
        }
      });
      return out;
    }

    /** Everything the page knows, JSON-safe. */
    state() {
      const c = this.call_;
      const track = this.localStream && this.localStream.getVideoTracks()[0];
      return {
        rtcId: this.rtcId,
        clientId: this.token && this.token.clientId,
        connected: this.connected,
        registered: this.registered,
        incoming: this.incoming,
        call: c && {
          role: c.role, channelId: c.channelId, peer: c.peer, uuid: c.uuid, video: c.video, mode: c.mode,
          joined: c.joined, ringing: c.ringing, answered: c.answered, peerJoined: c.peerJoined, ended: c.ended,
          failures: c.failures, candidates: c.candidates, iceStates: c.iceStates,
          iceConnectionState: c.pc ? c.pc.iceConnectionState : null,
          connectionState: c.pc ? c.pc.connectionState : null,
          offers: c.offers.map(mLines), answers: c.answers.map(mLines),
          lastOffer: c.offers[c.offers.length - 1] || null, lastAnswer: c.answers[c.answers.length - 1] || null,
          transceivers: c.pc && c.pc.signalingState !== 'closed'
            ? c.pc.getTransceivers().map((t) => ({ mid: t.mid, kind: t.receiver.track && t.receiver.track.kind, direction: t.direction, currentDirection: t.currentDirection }))
            : [],
        },
        camera: track ? track.getSettings() : null,
        mediaModes: this.mediaModes,
        received: this.received.map((r) => ({ seq: r.seq, t: r.t, type: r.type })),
        wire: this.wire.slice(-300),
        errors: this.errors,
      };
    }
  }

  window.VideoClient = VideoClient;
  window.VideoClient.mLines = mLines;
  window.VideoClient.encodeSignal = encodeSignal;
  window.VideoClient.decodeSignal = decodeSignal;
})();
