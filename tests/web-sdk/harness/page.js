// The test page's own code: drives the unmodified SDK the way a customer's web app does and
// records every SDK callback into window.__events as {seq, t, dt, source, name, args}:
//   t  = Date.now() in the page, dt = ms since harness.init()
//   source = 'service' (ServiceListener), 'token' (TokenUpdater), 'call' (CallListener),
//            'harness' (the page's own notes), 'page' (uncaught errors)
//
// window.harness (for the test driver, via page.evaluate):
//   init({rtcId, deviceId})   new AlicomRTC(), setServiceListener(recorder), initWithRtcId(rtcId,
//                             {updateToken}) where updateToken fetches /token?rtcId&deviceId and
//                             calls handler.setToken(token)
//   destroy()                 rtc.destroy()
//   events(), count(name), state()
//   call(calleeRtcId), callPstn(show, phone)   create + setCallListener + start(); returns the call's index
//   answer(i), hangup(i)      start() / stop() on call i (default: the newest, made or received)
//   setDefaultCallTimeout(s), calls()   (calls(): channelId, state, isCallingParty, peer, self)
(function () {
  'use strict';
  var SERVICE_CALLBACKS = ['onServiceAvailable', 'onServiceUnavailable', 'onServiceIdle', 'onReceivingAudioCall'];
  // TalkListener + CallListener of types/index.d.ts
  var CALL_CALLBACKS = ['onConnected', 'onStopping', 'onStopped', 'onNetworkQuality', 'onMediaStatistics',
    'onCalleeRinging', 'onCalleeConnecting', 'onActive', 'onDtmfData'];

  var events = (window.__events = []);
  var seq = 0;
  var t0 = Date.now();
  var st = {
    rtcId: null,
    deviceId: null,
    updateTokenCalls: 0,
    setTokenCalls: 0,
    tokens: [], // {clientId, tokenData} in setToken order
    tokenErrors: [],
    calls: [],
  };

  function talkRef(talk) {
    var i = st.calls.indexOf(talk);
    if (i < 0) {
      st.calls.push(talk);
      i = st.calls.length - 1;
    }
    var ref = { talk: i };
    try {
      if (typeof talk.getPeer === 'function') ref.peer = talk.getPeer();
      if ('isCallingParty' in talk) ref.isCallingParty = talk.isCallingParty;
    } catch (_) {
      // not a Call
    }
    return ref;
  }

  function plain(v) {
    if (v === null || v === undefined) return v === undefined ? null : v;
    var ty = typeof v;
    if (ty === 'string' || ty === 'number' || ty === 'boolean') return v;
    if (ty === 'function') return '<function>';
    if (ty === 'object' && (typeof v.start === 'function' || typeof v.setCallListener === 'function')) return talkRef(v);
    try {
      return JSON.parse(JSON.stringify(v));
    } catch (_) {
      return String(v);
    }
  }

  function record(source, name, args) {
    var now = Date.now();
    var ev = { seq: ++seq, t: now, dt: now - t0, source: source, name: name, args: Array.prototype.map.call(args || [], plain) };
    events.push(ev);
    var log = document.getElementById('log');
    if (log) log.textContent += '+' + ev.dt + 'ms ' + source + '.' + name + ' ' + JSON.stringify(ev.args) + '\n';
    var state = document.getElementById('state');
    if (state && source === 'service') state.textContent = name;
    return ev;
  }
  window.__record = function (name, args) {
    return record('harness', name, args);
  };
  window.addEventListener('error', function (e) {
    record('page', 'error', [String(e.message), String(e.filename) + ':' + e.lineno]);
  });
  window.addEventListener('unhandledrejection', function (e) {
    record('page', 'unhandledrejection', [String(e.reason && (e.reason.stack || e.reason))]);
  });

  function callListener() {
    var l = {};
    CALL_CALLBACKS.forEach(function (name) {
      l[name] = function () {
        record('call', name, arguments);
      };
    });
    return l;
  }

  var serviceListener = {};
  SERVICE_CALLBACKS.forEach(function (name) {
    serviceListener[name] = function () {
      record('service', name, arguments);
      if (name === 'onReceivingAudioCall' && arguments[0]) {
        arguments[0].setCallListener(callListener());
      }
    };
  });

  var tokenUpdater = {
    updateToken: function (handler) {
      var n = ++st.updateTokenCalls;
      record('token', 'updateToken', [n]);
      var url = '/token?rtcId=' + encodeURIComponent(st.rtcId) + '&deviceId=' + encodeURIComponent(st.deviceId);
      return fetch(url, { cache: 'no-store' })
        .then(function (r) {
          return r.json().then(function (body) {
            if (!r.ok) throw new Error('/token HTTP ' + r.status + ': ' + JSON.stringify(body));
            return body;
          });
        })
        .then(function (token) {
          st.setTokenCalls++;
          st.tokens.push({ clientId: token.clientId, tokenData: token.tokenData, host: token.host });
          record('token', 'setToken', [{ n: n, clientId: token.clientId, host: token.host }]);
          handler.setToken(token);
        })
        .catch(function (e) {
          st.tokenErrors.push(String(e && e.message));
          record('token', 'updateTokenFailed', [n, String(e && e.message)]);
          throw e;
        });
    },
  };

  var rtc = null;
  window.harness = {
    init: function (opts) {
      if (rtc) throw new Error('harness.init called twice');
      if (typeof window.AlicomRTC !== 'function') throw new Error('the SDK bundle did not define window.AlicomRTC');
      st.rtcId = String(opts.rtcId);
      st.deviceId = String(opts.deviceId || opts.rtcId);
      t0 = Date.now();
      var el = document.getElementById('rtcId');
      if (el) el.textContent = st.rtcId;
      record('harness', 'init', [{ rtcId: st.rtcId, deviceId: st.deviceId }]);
      rtc = window.__rtc = new window.AlicomRTC();
      rtc.setServiceListener(serviceListener);
      rtc.initWithRtcId(st.rtcId, tokenUpdater);
      return true;
    },
    destroy: function () {
      record('harness', 'destroy', []);
      rtc.destroy();
      return true;
    },
    events: function () {
      return events;
    },
    count: function (name) {
      return events.filter(function (e) {
        return e.name === name;
      }).length;
    },
    state: function () {
      return {
        rtcId: st.rtcId,
        deviceId: st.deviceId,
        updateTokenCalls: st.updateTokenCalls,
        setTokenCalls: st.setTokenCalls,
        tokens: st.tokens,
        tokenErrors: st.tokenErrors,
        calls: st.calls.length,
        pcs: (window.__pcs || []).length,
        sigv: (function () {
          try {
            return localStorage.getItem('ARTC_SIGV');
          } catch (_) {
            return null;
          }
        })(),
      };
    },
    // ---- calls ----
    // setDefaultCallTimeout(s): the caller's no-answer timer (the SDK clamps it to 30..90 s)
    setDefaultCallTimeout: function (seconds) {
      record('harness', 'setDefaultCallTimeout', [seconds]);
      rtc.setDefaultCallTimeout(seconds);
      return true;
    },
    // What the page knows about its calls (made or received), read from the SDK's Call objects:
    // [{index, channelId, state, isCallingParty, peer, self}]
    calls: function () {
      return st.calls.map(function (c, i) {
        var row = { index: i, channelId: null, state: null, isCallingParty: null, peer: null, self: null };
        try {
          row.channelId = c.channelId === undefined ? null : c.channelId;
          row.state = c.state === undefined ? null : c.state;
          row.isCallingParty = c.isCallingParty === undefined ? null : c.isCallingParty;
          row.peer = plain(c.getPeer());
          row.self = plain(c.getSelf());
        } catch (e) {
          row.error = String(e && e.message);
        }
        return row;
      });
    },
    call: function (calleeRtcId) {
      var c = rtc.createVoIP2VoIPCall(String(calleeRtcId));
      c.setCallListener(callListener());
      talkRef(c);
      record('harness', 'call', [String(calleeRtcId)]);
      c.start();
      return st.calls.indexOf(c);
    },
    callPstn: function (showNumber, phoneNumber) {
      var c = rtc.createVoIP2PstnCall(String(showNumber), String(phoneNumber));
      c.setCallListener(callListener());
      talkRef(c);
      record('harness', 'callPstn', [String(showNumber), String(phoneNumber)]);
      c.start();
      return st.calls.indexOf(c);
    },
    answer: function (i) {
      var c = st.calls[i === undefined ? st.calls.length - 1 : i];
      record('harness', 'answer', [st.calls.indexOf(c)]);
      c.start();
      return true;
    },
    hangup: function (i) {
      var c = st.calls[i === undefined ? st.calls.length - 1 : i];
      record('harness', 'hangup', [st.calls.indexOf(c)]);
      c.stop();
      return true;
    },
  };

  // By hand: /?rtcId=...&deviceId=...&autostart=1
  var q = new URLSearchParams(window.location.search);
  if (q.get('autostart') && q.get('rtcId')) {
    window.addEventListener('load', function () {
      window.harness.init({ rtcId: q.get('rtcId'), deviceId: q.get('deviceId') || q.get('rtcId') });
    });
  }
})();
