//! The media state in memory, the way str0m tests itself: str0m clients and one [`State`]
//! exchange datagrams through plain vectors, with the time passed in and moved by hand. No
//! socket, no task, no waiting: ICE, DTLS, forwarding and release run in microseconds.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use emu_core::Clock;
use emu_core::media_signal::MediaSignal;
use serde_json::{Value, json};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::signal::NewLeg;
use super::state::State;
use super::{DtlsIdentity, LegId};
use crate::{CodecPreference, Endpoint, MediaConfig, MediaEvent, sdp, srtp};

const SERVER: &str = "10.0.0.1:40000";

/// A browser stand-in: one str0m `Rtc` offering Opus audio from `addr`.
struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    mid: Mid,
    offer: String,
    pending: Option<str0m::change::SdpPendingOffer>,
    connected: bool,
    /// Payloads of the audio received, in order.
    heard: Vec<Vec<u8>>,
    /// The video line, when the client has a camera (VP8).
    video: Option<Mid>,
    /// Video frames received, in order.
    frames: Vec<Vec<u8>>,
    /// Keyframe requests received (PLI/FIR).
    keyframe_requests: usize,
}

impl Client {
    fn new(addr: &str, now: Instant) -> Client {
        Client::with(addr, false, now)
    }

    /// A client offering audio and, with `camera`, a VP8 video line.
    fn with(addr: &str, camera: bool, now: Instant) -> Client {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).enable_vp8(camera).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let video = camera.then(|| api.add_media(MediaKind::Video, Direction::SendRecv, None, None, None));
        let (offer, pending) = api.apply().unwrap();
        let offer = sdp::strip_candidates(&offer.to_sdp_string());
        Client {
            rtc,
            addr,
            mid,
            offer,
            pending: Some(pending),
            connected: false,
            heard: Vec::new(),
            video,
            frames: Vec::new(),
            keyframe_requests: 0,
        }
    }

    /// The sigv 2 joinChannel media signal: the offer rides in the join.
    fn join_signal(&self, channel_id: &str) -> MediaSignal {
        json!({"api": "joinChannel", "seqId": 7, "data": {
            "channelId": channel_id,
            "channelConfig": {"sigVersion": 2},
            "sdpInfo": {"sdp": self.offer, "type": "offer"},
        }})
        .into()
    }

    fn accept(&mut self, result: &Value) {
        let answer = result.pointer("/data/sdpInfo/sdp").and_then(Value::as_str).expect("an answer");
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        self.rtc.sdp_api().accept_answer(self.pending.take().unwrap(), answer).unwrap();
        for c in sdp::candidate_strings(&result["data"]["candidateInfo"]) {
            self.rtc.add_remote_candidate(Candidate::from_sdp_string(&c).unwrap());
        }
    }

    /// Runs the client to its next timeout: its datagrams go to the server's state.
    fn drain(&mut self, st: &mut State, now: Instant) -> Instant {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => st.on_packet(&t.contents, self.addr, now),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(d)) if Some(d.mid) == self.video => self.frames.push(d.data.to_vec()),
                Output::Event(Event::MediaData(d)) => self.heard.push(d.data.to_vec()),
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_requests += 1,
                Output::Event(_) => {}
            }
        }
    }

    fn receive(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) {
        let r = Receive::new(Protocol::Udp, from, self.addr, datagram).unwrap();
        self.rtc.handle_input(Input::Receive(now, r)).unwrap();
    }

    fn send_audio(&mut self, payload: &[u8], rtp_time: u64, now: Instant) {
        let pt = self.rtc.media(self.mid).unwrap().remote_pts()[0];
        let writer = self.rtc.writer(self.mid).unwrap();
        writer
            .write(pt, now, MediaTime::new(rtp_time, str0m::media::Frequency::FORTY_EIGHT_KHZ), payload.to_vec())
            .unwrap();
    }

    /// One VP8 frame (str0m packetizes it: large frames span several packets).
    fn send_video(&mut self, frame: &[u8], rtp_time: u64, now: Instant) {
        let mid = self.video.expect("a camera");
        let pt = self.rtc.media(mid).unwrap().remote_pts()[0];
        let writer = self.rtc.writer(mid).unwrap();
        writer.write(pt, now, MediaTime::new(rtp_time, str0m::media::Frequency::NINETY_KHZ), frame.to_vec()).unwrap();
    }
}

fn state(dir: &std::path::Path) -> State {
    let cfg = MediaConfig { turn_enabled: false, recordings_dir: dir.to_path_buf(), ..MediaConfig::default() };
    let provider = Arc::new(srtp::capturing(str0m::crypto::from_feature_flags()));
    let cert = Arc::new(DtlsIdentity { provider: provider.clone(), cert: OnceLock::new() });
    State::new(Arc::new(cfg), Clock::manual_at(1_700_000_000_000), SERVER.parse().unwrap(), provider, cert)
}

/// The network between the clients and the state: delivers what the state queued, runs every
/// party to its next timer, and moves the time there. Returns the new time.
fn step(st: &mut State, clients: &mut [&mut Client], now: Instant) -> Instant {
    step_lossy(st, clients, now, &mut |_, _| true)
}

/// [`step`] over a network that delivers the server's datagrams only when `deliver(dest, datagram)`.
fn step_lossy(
    st: &mut State,
    clients: &mut [&mut Client],
    now: Instant,
    deliver: &mut dyn FnMut(SocketAddr, &[u8]) -> bool,
) -> Instant {
    let mut next = now + Duration::from_secs(1);
    for c in clients.iter_mut() {
        next = next.min(c.drain(st, now));
    }
    st.settle(now);
    st.run_due(now);
    let server: SocketAddr = SERVER.parse().unwrap();
    for (dest, datagram) in st.out.take() {
        if let Some(c) = clients.iter_mut().find(|c| c.addr == dest)
            && deliver(dest, &datagram)
        {
            c.receive(server, &datagram, now);
        }
    }
    for c in clients.iter_mut() {
        c.rtc.handle_input(Input::Timeout(now)).unwrap();
    }
    next = next.min(st.next_deadline(now));
    // Never stand still: at least a millisecond per step.
    next.max(now + Duration::from_millis(1))
}

fn join(st: &mut State, c: &mut Client, channel_id: &str, rtc_id: &str, now: Instant) -> LegId {
    join_with(st, c, channel_id, rtc_id, false, now)
}

fn join_with(st: &mut State, c: &mut Client, channel_id: &str, rtc_id: &str, video: bool, now: Instant) -> LegId {
    let leg = NewLeg { channel_id, tenant: "default", rtc_id, uuid: rtc_id, prefer: CodecPreference::Opus, video };
    let result = st.join(leg, &c.join_signal(channel_id), None, now).to_json();
    assert_eq!(result["errorCode"], 0, "{result}");
    assert_eq!(result["seqId"], 7, "the seqId is echoed");
    assert!(result["data"]["turnServers"].as_array().unwrap().is_empty(), "no TURN, no servers: {result}");
    c.accept(&result);
    st.leg_of(channel_id, rtc_id).expect("a leg")
}

fn connected_events(st: &mut State) -> Vec<String> {
    st.events
        .drain(..)
        .filter_map(|e| match e {
            MediaEvent::LegConnected { rtc_id, .. } => Some(rtc_id),
            _ => None,
        })
        .collect()
}

#[test]
fn two_legs_connect_and_the_bridge_forwards_one_partys_audio_to_the_other_untouched() {
    let dir = std::env::temp_dir().join(format!("emu-media-state-test-{}", std::process::id()));
    let mut st = state(&dir);
    let t0 = Instant::now();
    let mut now = t0;
    let mut a = Client::new("10.0.0.2:5000", now);
    let mut b = Client::new("10.0.0.3:5000", now);
    join(&mut st, &mut a, "ch1", "alice", now);
    join(&mut st, &mut b, "ch1", "bob", now);

    // ICE (answered after the ICE hold) and DTLS, on virtual time.
    let mut connected = Vec::new();
    while !(a.connected && b.connected && connected.len() == 2) {
        assert!(now - t0 < Duration::from_secs(10), "not connected by 10 s of virtual time");
        now = step(&mut st, &mut [&mut a, &mut b], now);
        connected.extend(connected_events(&mut st));
    }
    connected.sort();
    assert_eq!(connected, ["alice", "bob"], "one LegConnected per leg");
    assert!(now - t0 >= super::state::ICE_HOLD, "the first ICE checks are held");

    // Bridged, Opus on both legs: payloads pass untouched, in order.
    st.bridge(
        "ch1",
        Endpoint::Device { rtc_id: "alice".into() },
        Endpoint::Device { rtc_id: "bob".into() },
        false,
        now,
    );
    for i in 0..50u64 {
        let frame = [i as u8; 40];
        a.send_audio(&frame, i * 960, now);
        now = step(&mut st, &mut [&mut a, &mut b], now + Duration::from_millis(20));
    }
    for _ in 0..5 {
        now = step(&mut st, &mut [&mut a, &mut b], now);
    }
    assert!(b.heard.len() >= 45, "bob heard {} of 50 frames", b.heard.len());
    assert!(b.heard.windows(2).all(|w| w[0][0] < w[1][0]), "in order");
    assert!(b.heard.iter().all(|p| p.len() == 40 && p.iter().all(|x| *x == p[0])), "untouched payloads");
    assert!(a.heard.is_empty(), "alice hears nothing: bob sent nothing");

    // Released: no legs, no routes, the final statistics kept.
    assert!(st.release("ch1", now).is_none(), "nothing was recorded");
    assert!(st.legs.is_empty() && st.by_ufrag.is_empty() && st.by_addr.is_empty());
    assert_eq!(st.recent.back().map(|(id, s)| (id.as_str(), s.released)), Some(("ch1", true)));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn datagrams_from_unknown_sources_are_counted_and_dropped() {
    let mut st = state(&std::env::temp_dir());
    let now = Instant::now();
    let from: SocketAddr = "10.9.9.9:9".parse().unwrap();
    // An RTP-looking datagram from nobody, and plain garbage.
    let mut rtp = vec![0x80, 0x6f, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    rtp.extend_from_slice(&[0; 20]);
    st.on_packet(&rtp, from, now);
    st.on_packet(b"hello", from, now);
    st.settle(now);
    assert!(st.out.is_empty(), "no answer to strangers");
    assert_eq!(st.counters.unknown_source, 1);
    assert_eq!(st.counters.garbage, 1);
    assert!(st.events.is_empty());
}

#[test]
fn a_device_joining_again_replaces_its_leg_and_its_turn_user_is_released() {
    let mut st = state(&std::env::temp_dir());
    let now = Instant::now();
    let c = Client::new("10.0.0.2:5000", now);
    let leg = |rtc_id| NewLeg {
        channel_id: "ch2",
        tenant: "default",
        rtc_id,
        uuid: "u",
        prefer: CodecPreference::Opus,
        video: false,
    };
    let turn = |name: &str| {
        Some(super::signal::TurnUser { url: "turn:x:1".into(), username: name.into(), password: "p".into() })
    };
    let first = st.join(leg("alice"), &c.join_signal("ch2"), turn("user-1"), now).to_json();
    assert_eq!(first["data"]["turnServers"][0]["username"], "user-1");
    let old = st.leg_of("ch2", "alice").unwrap();
    st.join(leg("alice"), &c.join_signal("ch2"), turn("user-2"), now);
    let new = st.leg_of("ch2", "alice").unwrap();
    assert_ne!(old, new);
    assert_eq!(st.legs.len(), 1);
    assert_eq!(st.turn_released, ["user-1"], "the replaced leg's TURN user goes");
    st.release("ch2", now);
    assert_eq!(st.turn_released, ["user-1", "user-2"]);
}

#[test]
fn a_video_call_forwards_each_partys_frames_and_keyframe_requests_to_the_other() {
    let dir = std::env::temp_dir().join(format!("emu-media-video-test-{}", std::process::id()));
    let mut st = state(&dir);
    let t0 = Instant::now();
    let mut now = t0;
    let mut a = Client::with("10.0.0.2:5000", true, now);
    let mut b = Client::with("10.0.0.3:5000", true, now);
    join_with(&mut st, &mut a, "v1", "alice", true, now);
    join_with(&mut st, &mut b, "v1", "bob", true, now);
    let negotiated: Vec<(String, bool)> = st
        .events
        .drain(..)
        .filter_map(|e| match e {
            MediaEvent::VideoNegotiated { rtc_id, video, .. } => Some((rtc_id, video)),
            _ => None,
        })
        .collect();
    assert_eq!(negotiated, [("alice".to_string(), true), ("bob".to_string(), true)]);
    while !(a.connected && b.connected) {
        assert!(now - t0 < Duration::from_secs(10), "not connected by 10 s of virtual time");
        now = step(&mut st, &mut [&mut a, &mut b], now);
    }
    st.bridge("v1", Endpoint::Device { rtc_id: "alice".into() }, Endpoint::Device { rtc_id: "bob".into() }, false, now);
    // 30 frames each way, 3,000 bytes each (three packets or more), 30 fps.
    for i in 0..30u64 {
        let frame = |who: u8| -> Vec<u8> { (0..3000).map(|j| (j as u8) ^ who ^ i as u8).collect() };
        a.send_video(&frame(0xa0), i * 3000, now);
        b.send_video(&frame(0xb0), i * 3000, now);
        now = step(&mut st, &mut [&mut a, &mut b], now + Duration::from_millis(33));
    }
    for _ in 0..10 {
        now = step(&mut st, &mut [&mut a, &mut b], now + Duration::from_millis(5));
    }
    assert!(b.frames.len() >= 28, "bob got {} of alice's 30 frames", b.frames.len());
    assert!(a.frames.len() >= 28, "alice got {} of bob's 30 frames", a.frames.len());
    assert!(b.frames.iter().all(|f| f.len() == 3000 && (f[0] ^ f[1]) == 1), "whole frames, untouched");
    assert!(b.frames.iter().all(|f| f[0] & 0xf0 == 0xa0 || f[0] & 0xf0 == 0xb0));
    // The server asked each sender for a keyframe when its video first went to the other.
    assert!(a.keyframe_requests >= 1 && b.keyframe_requests >= 1, "{} {}", a.keyframe_requests, b.keyframe_requests);
    let flowing: Vec<String> = st
        .events
        .drain(..)
        .filter_map(|e| match e {
            MediaEvent::VideoFlowing { rtc_id, .. } => Some(rtc_id),
            _ => None,
        })
        .collect();
    assert_eq!(flowing.len(), 2, "one VideoFlowing per party: {flowing:?}");

    // Bob's browser asks for a keyframe: alice's browser is asked.
    let before = a.keyframe_requests;
    let bob_video = b.video.unwrap();
    b.rtc.writer(bob_video).unwrap().request_keyframe(None, str0m::media::KeyframeRequestKind::Pli).unwrap();
    for _ in 0..10 {
        now = step(&mut st, &mut [&mut a, &mut b], now + Duration::from_millis(5));
    }
    assert!(a.keyframe_requests > before, "the request reached alice");

    let stats = serde_json::to_value(st.channel_stats("v1", now)).unwrap();
    let alice = &stats["legs"][0]["video"];
    let bob = &stats["legs"][1]["video"];
    assert!(alice["packetsIn"].as_u64().unwrap() >= 90, "{alice}");
    assert!(alice["framesIn"].as_u64().unwrap() >= 30, "{alice}");
    assert_eq!(alice["codec"], "VP8");
    assert!(bob["packetsOut"].as_u64().unwrap() >= 90, "{bob}");
    assert!(bob["keyframeRequestsIn"].as_u64().unwrap() >= 1, "{bob}");
    assert!(alice["bitrateInBps"].as_u64().unwrap() > 100_000, "{alice}");

    // Alice turns her camera off: a re-offer on the same peer connection with the video line
    // inactive. The leg's Rtc renegotiates (no new handshake), the leg has no video any more,
    // and audio goes on.
    let mut api = a.rtc.sdp_api();
    api.set_direction(a.video.unwrap(), Direction::Inactive);
    let (offer, pending) = api.apply().expect("a change to offer");
    a.pending = Some(pending);
    let signal = json!({"api": "sdpCandidate", "data": {"channelId": "v1",
        "sdpInfo": {"sdp": sdp::strip_candidates(&offer.to_sdp_string()), "type": "offer"}, "candidateList": []}});
    let result = st.signal("v1", "alice", "alice", "sdpCandidate", &signal.into(), now).expect("a result").to_json();
    assert_eq!(result["errorCode"], 0, "{result}");
    a.accept(&result);
    assert!(
        st.events
            .iter()
            .any(|e| matches!(e, MediaEvent::VideoNegotiated { rtc_id, video: false, .. } if rtc_id == "alice"))
    );
    let heard = b.heard.len();
    for i in 0..20u64 {
        a.send_audio(&[i as u8; 40], i * 960, now);
        now = step(&mut st, &mut [&mut a, &mut b], now + Duration::from_millis(20));
    }
    assert!(b.heard.len() >= heard + 15, "audio goes on after the renegotiation: {} new", b.heard.len() - heard);
    assert!(a.connected, "no new handshake");
    let frames = a.frames.len();
    b.send_video(&[1; 500], 99_000, now);
    for _ in 0..5 {
        now = step(&mut st, &mut [&mut a, &mut b], now + Duration::from_millis(5));
    }
    assert_eq!(a.frames.len(), frames, "bob's video no longer goes to alice");
    let alice_video = &serde_json::to_value(st.channel_stats("v1", now)).unwrap()["legs"][0]["video"];
    assert!(alice_video.is_null(), "alice's leg has no video now: {alice_video}");
    st.release("v1", now);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_leg_not_allowed_video_answers_audio_only() {
    let mut st = state(&std::env::temp_dir());
    let now = Instant::now();
    let mut a = Client::with("10.0.0.2:5000", true, now);
    join_with(&mut st, &mut a, "v2", "alice", false, now);
    let leg = st.leg_of("v2", "alice").unwrap();
    assert!(st.legs[&leg].video.is_none() && !st.legs[&leg].video_rtc);
    assert!(st.events.iter().all(|e| !matches!(e, MediaEvent::VideoNegotiated { .. })), "not a video leg");
}

#[test]
fn finished_channels_and_the_recordings_index_stay_within_their_caps() {
    use emu_core::retention::Limit;
    let dir = std::env::temp_dir().join(format!("emu-media-retention-test-{}", std::process::id()));
    let cfg = MediaConfig {
        turn_enabled: false,
        recordings_dir: dir.clone(),
        finished_channels: Limit::new(2, 1 << 20),
        recordings: Limit::new(2, 1 << 20),
        ..MediaConfig::default()
    };
    std::fs::create_dir_all(&dir).unwrap();
    let provider = Arc::new(srtp::capturing(str0m::crypto::from_feature_flags()));
    let cert = Arc::new(DtlsIdentity { provider: provider.clone(), cert: OnceLock::new() });
    let mut st =
        State::new(Arc::new(cfg), Clock::manual_at(1_700_000_000_000), SERVER.parse().unwrap(), provider, cert);
    let now = Instant::now();
    for i in 0..5 {
        let ch = format!("rec-{i}");
        let phone = Endpoint::Phone { number: "13800000000".into(), audio: crate::Audio::Silence };
        st.bridge(&ch, Endpoint::Device { rtc_id: "alice".into() }, phone, true, now);
        assert!(st.release(&ch, now + Duration::from_millis(100)).is_some(), "recorded");
    }
    let kept: Vec<&str> = st.recordings.iter().map(|r| r.channel_id.as_str()).collect();
    assert_eq!(kept, ["rec-3", "rec-4"], "the newest two recordings are listed");
    let finished: Vec<&str> = st.recent.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(finished, ["rec-3", "rec-4"]);
    assert!(st.recent.bytes() > 0 && st.recordings.bytes() > 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn video_lost_on_the_way_to_a_receiver_is_resent_when_it_nacks() {
    let mut st = state(&std::env::temp_dir());
    let t0 = Instant::now();
    let mut now = t0;
    let mut a = Client::with("10.0.0.2:5000", true, now);
    let mut b = Client::with("10.0.0.3:5000", true, now);
    join_with(&mut st, &mut a, "v3", "alice", true, now);
    join_with(&mut st, &mut b, "v3", "bob", true, now);
    while !(a.connected && b.connected) {
        assert!(now - t0 < Duration::from_secs(10), "not connected by 10 s of virtual time");
        now = step(&mut st, &mut [&mut a, &mut b], now);
    }
    st.bridge("v3", Endpoint::Device { rtc_id: "alice".into() }, Endpoint::Device { rtc_id: "bob".into() }, false, now);
    // Every 10th large datagram (video) from the server to bob is lost, but for the last frames'
    // (a lost tail has no later packet to show the gap).
    let bob = b.addr;
    let (large, lost, lossy) = (Cell::new(0u32), Cell::new(0u32), Cell::new(true));
    let mut network = |dest: SocketAddr, d: &[u8]| {
        if dest != bob || d.len() < 500 || !lossy.get() {
            return true;
        }
        large.set(large.get() + 1);
        let keep = large.get() % 10 != 0;
        lost.set(lost.get() + u32::from(!keep));
        keep
    };
    for i in 0..30u64 {
        lossy.set(i < 25);
        let frame: Vec<u8> = (0..3000).map(|j| (j as u8) ^ i as u8).collect();
        a.send_video(&frame, i * 3000, now);
        now = step_lossy(&mut st, &mut [&mut a, &mut b], now + Duration::from_millis(33), &mut network);
    }
    let lost = lost.get();
    for _ in 0..40 {
        now = step_lossy(&mut st, &mut [&mut a, &mut b], now + Duration::from_millis(10), &mut network);
    }
    assert!(lost >= 5, "the network lost {lost} video datagrams");
    assert_eq!(b.frames.len(), 30, "every frame completed: bob NACKed and the server resent ({lost} lost)");
}

/// Found by fuzzing (fuzz/ stun_datagram): after a STUN request naming the leg, these DTLS
/// records from the same address made the DTLS library's `assert_eq!(epoch, 0)` panic inside
/// `Rtc::handle_input`, which took the whole media worker down. Now only the leg loses its Rtc.
#[test]
fn a_datagram_that_panics_the_webrtc_stack_resets_only_its_leg() {
    let mut st = state(&std::env::temp_dir());
    let mut now = Instant::now();
    // The Web SDK's offer, as Chrome made it.
    let chrome: Value = serde_json::from_str(include_str!("../../tests/data/chrome-sdpCandidate.json")).unwrap();
    let signal = json!({"data": {"channelId": "ch", "sdpInfo": chrome["data"]["sdpInfo"]}});
    let result = st.join(
        NewLeg {
            channel_id: "ch",
            tenant: "default",
            rtc_id: "alice",
            uuid: "u",
            prefer: CodecPreference::Opus,
            video: false,
        },
        &signal.into(),
        None,
        now,
    );
    assert_eq!(result.error_code, 0);
    let other = Client::new("10.0.0.3:5000", now);
    let leg = |rtc_id| NewLeg {
        channel_id: "ch2",
        tenant: "default",
        rtc_id,
        uuid: "u",
        prefer: CodecPreference::Opus,
        video: false,
    };
    assert_eq!(st.join(leg("bob"), &other.join_signal("ch2"), None, now).error_code, 0);
    let id = st.leg_of("ch", "alice").unwrap();
    let ufrag = st.legs[&id].ice.ufrag.clone();
    let hex =
        |s: &str| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<u8>>();
    let mut stun = hex("0001004c2112a44207070707070707070707fff80006000d55465241475546523a72626755ff00000024\
                        00047e7f1eff80ff802a0008010203042a0008010203040506070800250000000000000800140000003b13b13b\
                        13b93b00000000000000000000802800045a79ef78");
    stun[24..32].copy_from_slice(&ufrag.as_bytes()[..8]);
    let from: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    for d in [
        stun,
        hex("16fefd4600000000000000000000000000100000000000000000"),
        hex("b3"),
        hex("81c80006dead523a72626755000000002400047e7f1e04812a00b13b000000045a79ef78"),
        hex("16fefd0000000000000000000000"),
    ] {
        for src in ["10.0.0.9:9".parse().unwrap(), from] {
            st.on_packet(&d, src, now);
            st.settle(now);
            st.run_due(now);
        }
        now += Duration::from_millis(40);
        st.run_due(now);
    }
    assert!(st.legs[&id].rtc.is_none(), "the leg whose stack panicked has no Rtc left");
    let bob = st.leg_of("ch2", "bob").unwrap();
    assert!(st.legs[&bob].rtc.is_some(), "the other call is untouched");
}

/// A leg's statistics as the API has always shown them: built with `json!` before they were
/// typed (the video line's are pinned in `video.rs`).
fn old_leg_json(l: &super::leg::Leg, clock_now: emu_core::Millis, now: Instant) -> Value {
    let s = &l.stats;
    let ms_at = |t: Option<Instant>| {
        t.map(|t| clock_now.saturating_sub(now.saturating_duration_since(t).as_millis() as emu_core::Millis))
    };
    json!({
        "rtcId": l.rtc_id,
        "uuid": l.uuid,
        "tenant": l.tenant,
        "sigv": l.sigv,
        "state": l.state,
        "codec": l.send.map(|c| c.codec.to_string()),
        "telephoneEvent": l.send.map(|c| c.tele.is_some()),
        "remoteAddress": l.media_from.or(l.addrs.last().copied()).map(|a| a.to_string()),
        "packetsIn": s.packets_in,
        "bytesIn": s.bytes_in,
        "packetsOut": s.packets_out,
        "bytesOut": s.bytes_out,
        "rtpPacketsIn": s.rtp_in,
        "rtpBytesIn": s.rtp_bytes_in,
        "rtpPacketsOut": s.rtp_out,
        "rtpBytesOut": s.rtp_bytes_out,
        "rtpDirectIn": s.rtp_direct_in,
        "rtpDirectOut": s.rtp_direct_out,
        "dtmfIn": s.dtmf_in,
        "dtmfOut": s.dtmf_out,
        "lossIn": s.loss_in,
        "lossOut": s.loss_out,
        "rttMs": s.rtt.map(|d| d.as_secs_f64() * 1000.0),
        "lastPacketMs": ms_at(s.last_packet),
        "lastRtpInMs": ms_at(s.last_rtp_in),
        "connectedMs": ms_at(s.connected_at),
        "ageMs": now.saturating_duration_since(l.created).as_millis() as u64,
        "video": l.video.as_ref().map(|v| serde_json::to_value(v.stats_at(now)).unwrap()),
    })
}

/// A live channel's statistics, the old way.
fn old_channel_json(st: &State, channel_id: &str, now: Instant) -> Value {
    let endpoint_json = |e: &Endpoint| match e {
        Endpoint::Device { rtc_id } => json!({"device": rtc_id}),
        Endpoint::Phone { number, audio } => json!({"phone": number, "audio": audio}),
    };
    let chan = &st.channels[channel_id];
    let mut legs: Vec<&super::leg::Leg> = chan.legs.values().map(|id| &*st.legs[id]).collect();
    legs.sort_by_key(|l| l.id);
    json!({
        "channelId": channel_id,
        "released": false,
        "legs": legs.iter().map(|l| old_leg_json(l, st.clock.now_ms(), now)).collect::<Vec<_>>(),
        "bridge": chan.bridge.as_ref().map(|b| json!({"caller": endpoint_json(&b.sides[0]), "callee": endpoint_json(&b.sides[1]), "record": b.record})),
        "recording": chan.record_file.as_ref().map(|f| json!({"file": f, "inProgress": true, "elapsedMs": chan.recorder.as_ref().map(|r| r.elapsed(now).as_millis() as u64)})),
    })
}

#[test]
fn channel_statistics_keep_their_json_shape_and_key_order_live_and_released() {
    let dir = std::env::temp_dir().join(format!("emu-media-stats-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut st = state(&dir);
    let t0 = Instant::now();
    let mut a = Client::with("10.0.0.2:5000", true, t0);
    let mut b = Client::new("10.0.0.3:5000", t0);
    let alice = join_with(&mut st, &mut a, "pin", "alice", true, t0);
    join(&mut st, &mut b, "pin", "bob", t0);
    let phone = Endpoint::Phone { number: "13800000000".into(), audio: crate::Audio::ToneHz(440) };
    st.bridge("pin", Endpoint::Device { rtc_id: "alice".into() }, phone, true, t0);
    // Every kind of value: counters, floats (an f32 loss), clock times, an address, a codec.
    let leg = st.legs.get_mut(&alice).unwrap();
    let s = &mut leg.stats;
    (s.packets_in, s.bytes_in, s.rtp_in, s.rtp_direct_in, s.dtmf_in) = (120, 24_000, 100, 90, 2);
    (s.loss_in, s.loss_out, s.rtt) = (Some(0.1), Some(1.0 / 3.0), Some(Duration::from_micros(12_345)));
    (s.connected_at, s.last_packet) = (Some(t0 + Duration::from_millis(40)), Some(t0 + Duration::from_millis(900)));
    leg.media_from = Some(a.addr);
    leg.send = Some(super::leg::SendCodec {
        codec: crate::AudioCodec::Opus,
        pt: str0m::media::Pt::from(111),
        tele: Some(str0m::media::Pt::from(126)),
    });
    assert!(leg.video.is_some(), "alice's leg has video");
    let now = t0 + Duration::from_secs(1);

    let old = old_channel_json(&st, "pin", now);
    let live = st.channel_stats("pin", now).unwrap();
    assert_eq!(serde_json::to_string(&live).unwrap(), old.to_string(), "live");

    // Released: the old way set `released` and replaced the recording in the live tree.
    let mut old = old;
    old["released"] = true.into();
    let file = old["recording"]["file"].as_str().unwrap().to_string();
    old["recording"] = json!({"file": file, "inProgress": false, "url": format!("/recordings/{file}")});
    assert!(st.release("pin", now).is_some(), "recorded");
    let (id, kept) = st.recent.back().unwrap();
    assert_eq!(id, "pin");
    let kept_json = serde_json::to_string(kept).unwrap();
    assert_eq!(kept_json, old.to_string(), "released");
    assert_eq!(st.recent.bytes(), "pin".len() + kept_json.len(), "weighed as before");
    let v: Value = serde_json::from_str(&kept_json).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&v), ["channelId", "released", "legs", "bridge", "recording"]);
    assert_eq!(keys(&v["bridge"]), ["caller", "callee", "record"]);
    assert_eq!(v["bridge"]["callee"], json!({"phone": "13800000000", "audio": {"tone_hz": 440}}));
    assert_eq!(v["legs"][0]["lossIn"], json!(0.10000000149011612), "the f32 widened, as json! did");
    assert_eq!(v["legs"][1]["video"], Value::Null, "bob has no camera");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_leg_without_an_rtc_is_small() {
    // A signalling-only leg (most legs of a load test) is allocated, copied into the map and
    // freed once per join: str0m's ~10 KB `Rtc` is boxed so that it costs only when it exists.
    assert!(std::mem::size_of::<str0m::Rtc>() > 4096);
    assert!(std::mem::size_of::<super::leg::Leg>() < 2048, "{} bytes", std::mem::size_of::<super::leg::Leg>());
}
