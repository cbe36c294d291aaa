// Loaded before the SDK: every RTCPeerConnection the SDK creates is remembered in
// window.__pcs, so the driver can read getStats() (inbound-rtp packetsReceived) later.
//   window.__pcs          the PeerConnections, in creation order
//   window.__pcLog        per PC: its configuration (iceServers without credentials,
//                         iceTransportPolicy) and every state change / candidate, with times
//   window.__audioStats() audio counters per PC (below)
//   window.__rtcDump()    a chrome://webrtc-internals-like dump: every getStats() report of every
//                         PC, its descriptions and its log (for failure reports)
//   window.__pcView()     per PC: both descriptions, states and transceivers (mid, kind, directions)
// A camera, as a client with video has: localStorage.HARNESS_CAMERA (set before the page loads)
//   "after"  the first createOffer adds the fake camera's track (video after the SDK's audio)
//   "first"  the constructor adds a video transceiver, the camera's track replacing its empty
//            one when getUserMedia resolves (video is the first m-line)
(function () {
  'use strict';
  var Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.__pcLog = [];
  if (!Orig) return;
  var T0 = Date.now();
  class HarnessPeerConnection extends Orig {
    constructor(config) {
      super(...arguments);
      var index = window.__pcs.length;
      window.__pcs.push(this);
      var log = {
        index: index,
        createdAt: Date.now(),
        config: config
          ? {
              iceTransportPolicy: config.iceTransportPolicy || null,
              iceServers: (config.iceServers || []).map(function (s) {
                return { urls: s.urls, hasUsername: !!s.username, hasCredential: !!s.credential };
              }),
            }
          : null,
        events: [],
      };
      window.__pcLog.push(log);
      var pc = this;
      var note = function (name, value) {
        log.events.push({ dt: Date.now() - T0, name: name, value: value });
      };
      this.addEventListener('iceconnectionstatechange', function () {
        note('iceConnectionState', pc.iceConnectionState);
      });
      this.addEventListener('connectionstatechange', function () {
        note('connectionState', pc.connectionState);
      });
      this.addEventListener('icegatheringstatechange', function () {
        note('iceGatheringState', pc.iceGatheringState);
      });
      this.addEventListener('signalingstatechange', function () {
        note('signalingState', pc.signalingState);
      });
      this.addEventListener('icecandidate', function (e) {
        note('icecandidate', e.candidate ? e.candidate.candidate : null);
      });
      this.addEventListener('icecandidateerror', function (e) {
        note('icecandidateerror', { url: e.url, errorCode: e.errorCode, errorText: e.errorText, address: e.address, port: e.port });
      });
      this.addEventListener('track', function (e) {
        note('track', { kind: e.track.kind, streams: (e.streams || []).map(function (s) { return s.id; }) });
      });
      var addIce = this.addIceCandidate;
      this.addIceCandidate = function (c) {
        var p = addIce.apply(pc, arguments);
        var text = c && (c.candidate !== undefined ? c.candidate : String(c));
        if (p && typeof p.then === 'function') {
          p.then(
            function () {
              note('addIceCandidate.ok', text);
            },
            function (e) {
              note('addIceCandidate.error', { candidate: text, error: String(e) });
            },
          );
        }
        return p;
      };
      var setRemote = this.setRemoteDescription;
      this.setRemoteDescription = function (d) {
        var p = setRemote.apply(pc, arguments);
        var type = d && d.type;
        if (p && typeof p.then === 'function') {
          p.then(
            function () {
              note('setRemoteDescription.ok', type);
            },
            function (e) {
              note('setRemoteDescription.error', { type: type, error: String(e) });
            },
          );
        }
        return p;
      };
      addCamera(this, note);
      if (window.__record) window.__record('RTCPeerConnection', [index]);
    }
  }

  function cameraMode() {
    try {
      return window.localStorage.getItem('HARNESS_CAMERA');
    } catch (e) {
      return null;
    }
  }

  function addCamera(pc, note) {
    var mode = cameraMode();
    var camera = function () {
      return navigator.mediaDevices.getUserMedia({ video: true });
    };
    if (mode === 'first') {
      var t = pc.addTransceiver('video', { direction: 'sendrecv' });
      note('camera', 'video transceiver first');
      camera().then(
        function (stream) {
          t.sender.replaceTrack(stream.getVideoTracks()[0]);
          note('camera', 'track ' + stream.getVideoTracks()[0].label);
        },
        function (e) {
          note('camera.error', String(e));
        },
      );
    } else if (mode === 'after') {
      var createOffer = pc.createOffer;
      var added = false;
      pc.createOffer = function () {
        var args = arguments;
        var offer = function () {
          return createOffer.apply(pc, args);
        };
        if (added) return offer();
        added = true;
        return camera().then(function (stream) {
          var track = stream.getVideoTracks()[0];
          pc.addTrack(track, stream);
          note('camera', 'track ' + track.label + ' added before the offer');
        }, function (e) {
          note('camera.error', String(e));
        }).then(offer);
      };
    }
  }

  window.__pcView = function () {
    return window.__pcs.map(function (pc, i) {
      return {
        index: i,
        signalingState: pc.signalingState,
        iceConnectionState: pc.iceConnectionState,
        connectionState: pc.connectionState,
        local: pc.localDescription && pc.localDescription.sdp,
        remote: pc.remoteDescription && pc.remoteDescription.sdp,
        transceivers: pc.getTransceivers().map(function (t) {
          return { mid: t.mid, kind: t.receiver.track.kind, direction: t.direction, currentDirection: t.currentDirection, sending: !!t.sender.track };
        }),
        log: window.__pcLog[i].events.filter(function (e) {
          return /camera|error|setRemoteDescription/i.test(e.name);
        }),
      };
    });
  };
  window.RTCPeerConnection = HarnessPeerConnection;
  window.webkitRTCPeerConnection = HarnessPeerConnection;

  // [{index, connectionState, iceConnectionState, signalingState,
  //   inbound: [{kind, packetsReceived, bytesReceived, packetsLost, jitter, audioLevel,
  //              totalAudioEnergy, totalSamplesReceived, concealedSamples, codec}],
  //   outbound: [{kind, packetsSent, bytesSent, codec}],
  //   pair: {state, nominated, bytesSent, bytesReceived, requestsSent, responsesReceived,
  //          local: {candidateType, address, port,
  //          protocol, relayProtocol}, remote: {candidateType, address, port}} (the selected pair)}]
  window.__audioStats = async function () {
    var out = [];
    for (var i = 0; i < window.__pcs.length; i++) {
      var pc = window.__pcs[i];
      var row = {
        index: i,
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
        signalingState: pc.signalingState,
        inbound: [],
        outbound: [],
        pair: null,
      };
      try {
        var stats = await pc.getStats();
        var byId = {};
        stats.forEach(function (s) {
          byId[s.id] = s;
        });
        var codecOf = function (s) {
          var c = s.codecId && byId[s.codecId];
          return c ? c.mimeType + (c.clockRate ? '/' + c.clockRate : '') : null;
        };
        var cand = function (id) {
          var c = byId[id];
          return c ? { candidateType: c.candidateType, address: c.address || c.ip, port: c.port, protocol: c.protocol, relayProtocol: c.relayProtocol || null } : null;
        };
        var pairId = null;
        stats.forEach(function (s) {
          if (s.type === 'inbound-rtp') {
            row.inbound.push({
              kind: s.kind,
              ssrc: s.ssrc,
              packetsReceived: s.packetsReceived,
              bytesReceived: s.bytesReceived,
              packetsLost: s.packetsLost,
              jitter: s.jitter,
              audioLevel: s.audioLevel === undefined ? null : s.audioLevel,
              totalAudioEnergy: s.totalAudioEnergy === undefined ? null : s.totalAudioEnergy,
              totalSamplesReceived: s.totalSamplesReceived === undefined ? null : s.totalSamplesReceived,
              concealedSamples: s.concealedSamples === undefined ? null : s.concealedSamples,
              codec: codecOf(s),
            });
          }
          if (s.type === 'outbound-rtp') row.outbound.push({ kind: s.kind, ssrc: s.ssrc, packetsSent: s.packetsSent, bytesSent: s.bytesSent, codec: codecOf(s) });
          if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
        });
        var p = pairId && byId[pairId];
        if (p) {
          row.pair = {
            state: p.state,
            nominated: p.nominated,
            bytesSent: p.bytesSent,
            bytesReceived: p.bytesReceived,
            requestsSent: p.requestsSent,
            responsesReceived: p.responsesReceived,
            local: cand(p.localCandidateId),
            remote: cand(p.remoteCandidateId),
          };
        }
      } catch (e) {
        row.error = String(e);
      }
      out.push(row);
    }
    return out;
  };

  // Everything about every PC, for failure reports: its log, descriptions and all stats.
  window.__rtcDump = async function () {
    var out = [];
    for (var i = 0; i < window.__pcs.length; i++) {
      var pc = window.__pcs[i];
      var row = {
        index: i,
        log: window.__pcLog[i],
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
        iceGatheringState: pc.iceGatheringState,
        signalingState: pc.signalingState,
        localDescription: pc.localDescription && pc.localDescription.sdp,
        remoteDescription: pc.remoteDescription && pc.remoteDescription.sdp,
        stats: [],
      };
      try {
        (await pc.getStats()).forEach(function (s) {
          if (s.type === 'certificate') return;
          row.stats.push(JSON.parse(JSON.stringify(s)));
        });
      } catch (e) {
        row.error = String(e);
      }
      out.push(row);
    }
    return out;
  };
})();
