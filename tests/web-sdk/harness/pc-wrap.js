// Loaded before the SDK: every RTCPeerConnection the SDK creates is remembered in
// window.__pcs, so the driver can read getStats() (inbound-rtp packetsReceived) later.
(function () {
  'use strict';
  var Orig = window.RTCPeerConnection;
  window.__pcs = [];
  if (!Orig) return;
  class HarnessPeerConnection extends Orig {
    constructor() {
      super(...arguments);
      window.__pcs.push(this);
      if (window.__record) window.__record('RTCPeerConnection', [window.__pcs.length - 1]);
    }
  }
  window.RTCPeerConnection = HarnessPeerConnection;
  window.webkitRTCPeerConnection = HarnessPeerConnection;

  // [{index, connectionState, iceConnectionState, inbound: [{kind, packetsReceived, bytesReceived}],
  //   outbound: [{kind, packetsSent, bytesSent}]}]
  window.__audioStats = async function () {
    var out = [];
    for (var i = 0; i < window.__pcs.length; i++) {
      var pc = window.__pcs[i];
      var row = { index: i, connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState, inbound: [], outbound: [] };
      try {
        var stats = await pc.getStats();
        stats.forEach(function (s) {
          if (s.type === 'inbound-rtp') row.inbound.push({ kind: s.kind, packetsReceived: s.packetsReceived, bytesReceived: s.bytesReceived });
          if (s.type === 'outbound-rtp') row.outbound.push({ kind: s.kind, packetsSent: s.packetsSent, bytesSent: s.bytesSent });
        });
      } catch (e) {
        row.error = String(e);
      }
      out.push(row);
    }
    return out;
  };
})();
