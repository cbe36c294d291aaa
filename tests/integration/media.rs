//! The media server (crate `emu-media`) driven directly, with the testkit's str0m client playing
//! the browser: joinChannel / sdpCandidate / candidate through the server's API, ICE through the
//! embedded TURN relay (sigv 1) or directly (sigv 2), DTLS-SRTP, audio both ways, a phone's
//! synthesized tone, DTMF both ways, recording, clean-up. No test sleeps to wait: each awaits
//! a condition with a deadline.

use std::sync::Arc;
use std::time::Duration;

use emu_core::Clock;
use emu_core::media_signal::MediaSignal;
use emu_testkit::media::emu_media::audio::{self, dominant_frequency, parse_wav, rms, tone_ratio};
use emu_testkit::media::emu_media::{
    Audio, AudioCodec, CodecPreference, Endpoint, MediaConfig, MediaEvent, MediaServer,
};
use emu_testkit::media::{ClientOptions, MediaClient, TurnCreds};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

struct Media {
    server: Arc<MediaServer>,
    events: mpsc::Receiver<MediaEvent>,
    dir: std::path::PathBuf,
}

/// The recordings directory goes with the test (kept when it failed, for a look).
impl Drop for Media {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn start(name: &str) -> Media {
    start_with(name, 1).await
}

async fn start_with(name: &str, workers: usize) -> Media {
    let dir = std::env::temp_dir().join(format!("alicom-emu-media-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = MediaConfig {
        recordings_dir: dir.clone(),
        http_base: "http://emu.test".into(),
        workers,
        ..MediaConfig::default()
    };
    let (server, events) = MediaServer::start(cfg, Clock::manual_at(1_700_000_000_000)).await.expect("media server");
    Media { server, events, dir }
}

impl Media {
    /// A device leg the sigv 1 way: joinChannel (TURN credentials), then sdpCandidate with the
    /// offer and the client's candidate (a relay candidate when `relay`).
    async fn leg(
        &self,
        chan: &str,
        rtc_id: &str,
        relay: bool,
        prefer: CodecPreference,
        opts: ClientOptions,
    ) -> MediaClient {
        self.leg_on_port(chan, rtc_id, relay, prefer, opts).await.0
    }

    /// [`Media::leg`], and the media port of the server's candidate.
    async fn leg_on_port(
        &self,
        chan: &str,
        rtc_id: &str,
        relay: bool,
        prefer: CodecPreference,
        opts: ClientOptions,
    ) -> (MediaClient, u16) {
        let uuid = format!("uuid-{rtc_id}");
        let join = self
            .server
            .join_with(
                chan,
                "default",
                rtc_id,
                &uuid,
                &MediaSignal::of(&json!({"api": "joinChannel", "data": {"channelId": chan}})),
                prefer,
            )
            .to_json();
        assert_eq!(join["errorCode"], 0, "{join}");
        let opts = if relay {
            ClientOptions { turn: Some(TurnCreds::from_join_result(&join).expect("turnServers")), ..opts }
        } else {
            opts
        };
        let mut c = MediaClient::new(opts).await.expect("client");
        let result = self
            .server
            .signal(chan, rtc_id, &uuid, "sdpCandidate", &MediaSignal::of(&c.sdp_candidate_signal(chan)))
            .expect("a result")
            .to_json();
        c.accept(&result).expect("answer accepted");
        let cand = result["data"]["candidateList"][0]["candidate"].as_str().expect("a candidate").to_string();
        let port = cand.split_whitespace().nth(5).and_then(|p| p.parse().ok()).expect("a port");
        (c, port)
    }

    async fn event(&mut self, what: &str, want: impl Fn(&MediaEvent) -> bool) -> MediaEvent {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if want(&e) => return e,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("event channel closed waiting for {what}"),
                Err(_) => panic!("no {what} within {T:?}"),
            }
        }
    }

    /// Bridges the channel's device legs `alice` (caller) and `bob` (callee), not recorded.
    fn bridge_alice_bob(&self, chan: &str) {
        let device = |id: &str| Endpoint::Device { rtc_id: id.into() };
        self.server.bridge(chan, device("alice"), device("bob"), false);
    }

    fn leg_stats(&self, chan: &str, rtc_id: &str) -> Value {
        let s = serde_json::to_value(self.server.stats(chan)).unwrap();
        s["legs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rtcId"] == rtc_id)
            .cloned()
            .unwrap_or_else(|| panic!("no leg {rtc_id} in {s}"))
    }
}

fn assert_tone(pcm: &[i16], hz: f64, who: &str) {
    // Skip the first 200 ms (codec start-up, jitter at the start).
    let tail = &pcm[pcm.len().min(1600)..];
    assert!(tail.len() >= 2400, "{who}: only {} samples received", pcm.len());
    let f = dominant_frequency(tail).unwrap_or_else(|| panic!("{who}: silence"));
    assert!((f - hz).abs() <= 15.0, "{who}: dominant frequency {f} Hz, want {hz} Hz");
    assert!(tone_ratio(tail, hz) > 0.5, "{who}: {hz} Hz is only {:.2} of the energy", tone_ratio(tail, hz));
}

async fn voip_call(relay: bool, name: &str) {
    let mut m = start(name).await;
    let mut alice = m.leg("c1", "alice", relay, CodecPreference::Opus, ClientOptions::default().tone(440.0)).await;
    let mut bob = m.leg("c1", "bob", relay, CodecPreference::Opus, ClientOptions::default().tone(880.0)).await;
    m.bridge_alice_bob("c1");
    alice.wait_connected(T).await.unwrap();
    bob.wait_connected(T).await.unwrap();
    for who in ["alice", "bob"] {
        m.event("LegConnected", |e| matches!(e, MediaEvent::LegConnected { rtc_id, .. } if rtc_id == who)).await;
    }
    let a = alice.wait_rtp(40, T).await.unwrap();
    let b = bob.wait_rtp(40, T).await.unwrap();
    // Opus end to end, forwarded without transcoding.
    assert_eq!((a.rx_codec, b.rx_codec), (Some(AudioCodec::Opus), Some(AudioCodec::Opus)));
    assert_eq!((a.tx_codec, b.tx_codec), (Some(AudioCodec::Opus), Some(AudioCodec::Opus)));
    assert_tone(&bob.received_pcm(), 440.0, "bob hears alice");
    assert_tone(&alice.received_pcm(), 880.0, "alice hears bob");
    for who in ["alice", "bob"] {
        let l = m.leg_stats("c1", who);
        assert_eq!(l["state"], "connected");
        assert_eq!(l["codec"], "opus");
        assert!(l["rtpPacketsIn"].as_u64().unwrap() >= 40, "{l}");
        assert!(l["rtpPacketsOut"].as_u64().unwrap() >= 40, "{l}");
        assert!(l["bytesIn"].as_u64().unwrap() > 0 && l["lastPacketMs"].as_u64().is_some(), "{l}");
        // After each stream's first packet the server does the SRTP itself (str0m keeps ICE,
        // DTLS and RTCP): the tones above came through that path, both ways.
        let (direct_in, direct_out) = (l["rtpDirectIn"].as_u64().unwrap(), l["rtpDirectOut"].as_u64().unwrap());
        assert!(direct_in >= 30 && direct_out >= 30, "{l}");
        if relay {
            assert!(l["remoteAddress"].as_str().unwrap().starts_with("127.0.0.1:"));
        }
    }
    if relay {
        assert!(m.server.turn_allocations().await >= 2);
    }
    assert!(m.server.release("c1").is_none(), "not recorded");
    assert_eq!((m.server.leg_count(), m.server.channel_count()), (0, 0));
    alice.close().await;
    bob.close().await;
    m.server.shutdown().await;
}

#[tokio::test]
async fn voip_to_voip_audio_both_ways_through_the_turn_relay() {
    voip_call(true, "relay").await;
}

#[tokio::test]
async fn voip_to_voip_audio_both_ways_directly() {
    voip_call(false, "direct").await;
}

/// A second offer for a leg (an ICE restart: a new DTLS handshake, so new SRTP keys and a new
/// SSRC) starts its connection over; audio flows both ways again, encrypted with the new keys.
#[tokio::test]
async fn a_second_offer_starts_the_leg_over_with_new_keys() {
    let m = start("reoffer").await;
    let alice = m.leg("r1", "alice", false, CodecPreference::Opus, ClientOptions::default().tone(440.0)).await;
    let mut bob = m.leg("r1", "bob", false, CodecPreference::Opus, ClientOptions::default().tone(880.0)).await;
    m.bridge_alice_bob("r1");
    bob.wait_rtp(40, T).await.unwrap();
    let first = m.leg_stats("r1", "alice")["rtpDirectOut"].as_u64().unwrap();
    assert!(first >= 20, "the first connection's audio went the server's way: {first}");
    alice.close().await;
    // The same device offers again, from a new peer connection.
    let mut again = MediaClient::new(ClientOptions::default().tone(660.0)).await.expect("client");
    let result = m
        .server
        .signal("r1", "alice", "uuid-alice", "sdpCandidate", &MediaSignal::of(&again.sdp_candidate_signal("r1")))
        .expect("a result")
        .to_json();
    again.accept(&result).expect("answer accepted");
    again.wait_connected(T).await.unwrap();
    again.wait_rtp(60, T).await.unwrap();
    assert_tone(&again.received_pcm(), 880.0, "alice hears bob again");
    let before = bob.received_pcm().len();
    bob.wait_rtp(bob.stats().rtp_rx + 60, T).await.unwrap();
    assert_tone(&bob.received_pcm()[before..], 660.0, "bob hears alice's new connection");
    let leg = m.leg_stats("r1", "alice");
    assert!(leg["rtpDirectOut"].as_u64().unwrap() >= first + 40, "{leg}");
    m.server.shutdown().await;
}

/// A network that duplicates every packet: the server forwards each packet once and drops the
/// copies (str0m for a stream's first packet, the server's own replay window after it).
#[tokio::test]
async fn duplicated_srtp_is_forwarded_once_and_the_copies_counted() {
    let m = start("dup").await;
    let opts = ClientOptions { duplicate_rtp: true, ..ClientOptions::default().tone(440.0) };
    let mut alice = m.leg("u1", "alice", false, CodecPreference::Opus, opts).await;
    let mut bob = m.leg("u1", "bob", false, CodecPreference::Opus, ClientOptions::default().tone(880.0)).await;
    m.bridge_alice_bob("u1");
    alice.wait_connected(T).await.unwrap();
    bob.wait_connected(T).await.unwrap();
    bob.wait_rtp(60, T).await.unwrap();
    alice.wait_rtp(20, T).await.unwrap();
    assert_tone(&bob.received_pcm(), 440.0, "bob hears alice");
    // Read in this order, each count is at most the one after it.
    let bob_heard = bob.stats().rtp_rx;
    let leg = m.leg_stats("u1", "alice");
    let replayed = m.server.summary()["counters"]["rtpReplayed"].as_u64().unwrap();
    let sent = alice.stats().rtp_tx;
    let (server_heard, direct_in) = (leg["rtpPacketsIn"].as_u64().unwrap(), leg["rtpDirectIn"].as_u64().unwrap());
    assert!(bob_heard <= server_heard, "forwarded once: bob got {bob_heard}, the server took {server_heard}");
    assert!(server_heard <= sent, "each packet taken once: {server_heard} of {sent} sent ({leg})");
    assert!(direct_in >= 50 && replayed + 1 >= direct_in, "the copies of {direct_in} packets: {replayed} replays");
    m.server.shutdown().await;
}

#[tokio::test]
async fn sigv2_offer_in_join_and_peer_reflexive_candidates() {
    let m = start("sigv2").await;
    let mut clients = Vec::new();
    for (who, hz) in [("alice", 500.0), ("bob", 1500.0)] {
        let mut c = MediaClient::new(ClientOptions::direct().tone(hz)).await.unwrap();
        // sigv 2: the offer rides in joinChannel; the browser never sends its candidates, so the
        // server learns the client's address from its STUN checks (peer-reflexive).
        let join = m.server.join("c2", "default", who, "u", &MediaSignal::of(&c.join_signal_v2("c2"))).to_json();
        assert_eq!(join["errorCode"], 0, "{join}");
        assert!(join["data"]["candidateInfo"]["candidate"].as_str().unwrap().contains("typ host"));
        c.accept(&join).unwrap();
        clients.push(c);
    }
    m.bridge_alice_bob("c2");
    let (mut alice, mut bob) = (clients.remove(0), clients.remove(0));
    alice.wait_rtp(30, T).await.unwrap();
    bob.wait_rtp(30, T).await.unwrap();
    assert_tone(&bob.received_pcm(), 500.0, "bob");
    assert_tone(&alice.received_pcm(), 1500.0, "alice");
    assert_eq!(m.leg_stats("c2", "alice")["sigv"], 2);
    m.server.shutdown().await;
}

#[tokio::test]
async fn a_phones_1khz_tone_arrives_at_the_device_in_g711() {
    let m = start("tone").await;
    // Offered Opus first, but a PSTN leg answers PCMU first, as a gateway does.
    let mut alice = m.leg("p1", "alice", true, CodecPreference::G711, ClientOptions::default()).await;
    m.server.bridge(
        "p1",
        Endpoint::Device { rtc_id: "alice".into() },
        Endpoint::Phone { number: "13800000001".into(), audio: Audio::ToneHz(1000) },
        false,
    );
    let s = alice.wait_rtp(50, T).await.unwrap();
    assert_eq!(s.rx_codec, Some(AudioCodec::Pcmu));
    assert_eq!(s.tx_codec, Some(AudioCodec::Pcmu), "the browser sends the answer's first codec");
    assert_tone(&alice.received_pcm(), 1000.0, "the device hears the phone");
    assert_eq!(m.leg_stats("p1", "alice")["codec"], "PCMU");

    // A device that offers only Opus still hears the phone (encoded in Opus).
    let mut bob =
        m.leg("p2", "bob", false, CodecPreference::G711, ClientOptions::default().codecs(&[AudioCodec::Opus])).await;
    m.server.bridge(
        "p2",
        Endpoint::Phone { number: "13800000001".into(), audio: Audio::ToneHz(700) },
        Endpoint::Device { rtc_id: "bob".into() },
        false,
    );
    let s = bob.wait_rtp(50, T).await.unwrap();
    assert_eq!(s.rx_codec, Some(AudioCodec::Opus));
    assert_tone(&bob.received_pcm(), 700.0, "an Opus-only device hears the phone");

    // Silence is sent as packets (the browser's inbound stats move) of silence.
    let mut carol = m.leg("p3", "carol", false, CodecPreference::G711, ClientOptions::default()).await;
    m.server.bridge(
        "p3",
        Endpoint::Device { rtc_id: "carol".into() },
        Endpoint::Phone { number: "1".into(), audio: Audio::Silence },
        false,
    );
    carol.wait_rtp(25, T).await.unwrap();
    assert!(rms(&carol.received_pcm()) < 10.0);
    m.server.shutdown().await;
}

#[tokio::test]
async fn an_echo_phone_and_a_wav_phone() {
    let m = start("echo").await;
    let mut alice = m.leg("e1", "alice", true, CodecPreference::G711, ClientOptions::default().tone(660.0)).await;
    m.server.bridge(
        "e1",
        Endpoint::Device { rtc_id: "alice".into() },
        Endpoint::Phone { number: "2".into(), audio: Audio::Echo },
        false,
    );
    alice.wait_rtp(40, T).await.unwrap();
    assert_tone(&alice.received_pcm(), 660.0, "the device hears itself");

    // A WAV file (16 kHz, resampled) as the phone's audio, looped.
    let wav_path = m.dir.join("phone.wav");
    std::fs::create_dir_all(&m.dir).unwrap();
    let pcm16k: Vec<i16> =
        (0..8000).map(|i| ((2.0 * std::f64::consts::PI * 1200.0 * i as f64 / 16000.0).sin() * 9000.0) as i16).collect();
    std::fs::write(&wav_path, audio::write_wav(1, 16000, &pcm16k)).unwrap();
    let mut bob = m.leg("e2", "bob", false, CodecPreference::G711, ClientOptions::default()).await;
    m.server.bridge(
        "e2",
        Endpoint::Device { rtc_id: "bob".into() },
        Endpoint::Phone { number: "3".into(), audio: Audio::Wav(wav_path.to_string_lossy().into()) },
        false,
    );
    bob.wait_rtp(40, T).await.unwrap();
    assert_tone(&bob.received_pcm(), 1200.0, "the device hears the WAV");
    m.server.shutdown().await;
}

#[tokio::test]
async fn dtmf_both_ways() {
    let mut m = start("dtmf").await;
    let mut alice = m.leg("d1", "alice", true, CodecPreference::G711, ClientOptions::default()).await;
    m.server.bridge(
        "d1",
        Endpoint::Device { rtc_id: "alice".into() },
        Endpoint::Phone { number: "4".into(), audio: Audio::ToneHz(440) },
        false,
    );
    alice.wait_rtp(5, T).await.unwrap();
    // Device → phone: RFC 4733 events, reported once per key press.
    for d in ['5', '#'] {
        alice.send_dtmf(d);
        let e = m.event("DeviceDtmf", |e| matches!(e, MediaEvent::DeviceDtmf { .. })).await;
        assert_eq!(e, MediaEvent::DeviceDtmf { channel_id: "d1".into(), rtc_id: "alice".into(), digit: d });
    }
    assert_eq!(m.leg_stats("d1", "alice")["dtmfIn"], 2);
    // Phone → device: RFC 4733 events in the device's codec's clock (8 kHz for PCMU).
    assert!(m.server.phone_dtmf("d1", '7'));
    alice.wait_dtmf("7", T).await.unwrap();
    assert!(m.server.phone_dtmf("d1", '*'));
    alice.wait_dtmf("7*", T).await.unwrap();
    assert!(!m.server.phone_dtmf("d1", 'x'), "not a key");
    assert!(!m.server.phone_dtmf("nope", '1'), "no such call");

    // A device without telephone-event hears the key in-band (697 + 1209 Hz for '1').
    let mut bob = m
        .leg(
            "d2",
            "bob",
            false,
            CodecPreference::G711,
            ClientOptions { telephone_event: false, ..ClientOptions::default() },
        )
        .await;
    m.server.bridge(
        "d2",
        Endpoint::Device { rtc_id: "bob".into() },
        Endpoint::Phone { number: "5".into(), audio: Audio::Silence },
        false,
    );
    bob.wait_rtp(5, T).await.unwrap();
    let before = bob.received_pcm().len();
    assert!(m.server.phone_dtmf("d2", '1'));
    let s = bob.wait_rtp(bob.stats().rtp_rx + 15, T).await.unwrap();
    assert!(s.dtmf_rx.is_empty());
    let pcm = bob.received_pcm();
    let heard = &pcm[before..];
    // Both frequencies of the key, each about half of the tone's energy (which fills about
    // 100 of the ~300 ms analysed); nothing at another key's column.
    let (lo, hi, other) = (tone_ratio(heard, 697.0), tone_ratio(heard, 1209.0), tone_ratio(heard, 1336.0));
    assert!(lo > 0.1 && hi > 0.1 && other < 0.02, "in-band DTMF: {lo:.2} {hi:.2} {other:.3}");
    m.server.shutdown().await;
}

async fn fetch(base: &str, path: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn recording_is_a_stereo_wav_with_both_parties() {
    let mut m = start("rec").await;
    assert!(m.server.should_record("voip2pstn", false), "VoIP→PSTN recorded by default");
    assert!(!m.server.should_record("voip2voip", false) && m.server.should_record("voip2voip", true));
    // VoIP→PSTN: the caller's device (left) sends 440 Hz, the phone (right) 1 kHz.
    let mut alice = m.leg("r1", "alice", true, CodecPreference::G711, ClientOptions::default().tone(440.0)).await;
    m.server.bridge(
        "r1",
        Endpoint::Device { rtc_id: "alice".into() },
        Endpoint::Phone { number: "6".into(), audio: Audio::ToneHz(1000) },
        true,
    );
    alice.wait_rtp(75, T).await.unwrap();
    assert_eq!(serde_json::to_value(m.server.stats("r1")).unwrap()["recording"]["inProgress"], true);
    let info = m.server.release("r1").expect("a recording");
    let done = m.event("RecordingDone", |e| matches!(e, MediaEvent::RecordingDone { .. })).await;
    let MediaEvent::RecordingDone { channel_id, file, duration_ms, bytes } = done else { unreachable!() };
    assert_eq!((channel_id.as_str(), file.as_str()), ("r1", "r1.wav"));
    assert_eq!((info.file.as_str(), info.duration_ms, info.bytes), (file.as_str(), duration_ms, bytes));
    assert_eq!(info.url, "http://emu.test/recordings/r1.wav");
    assert!(duration_ms >= 1000, "{duration_ms} ms");
    let bytes_on_disk = std::fs::read(m.dir.join(&file)).unwrap();
    assert_eq!(bytes_on_disk.len() as u64, bytes);
    let wav = parse_wav(&bytes_on_disk).unwrap();
    assert_eq!((wav.channels, wav.rate), (2, 8000));
    assert_tone(&wav.channel(0), 440.0, "left = caller (device)");
    assert_tone(&wav.channel(1), 1000.0, "right = callee (phone)");

    // VoIP↔VoIP with Opus on both legs: decoded (pure-Rust Opus) into the recording.
    let mut a = m.leg("r2", "a", false, CodecPreference::Opus, ClientOptions::default().tone(500.0)).await;
    let mut b = m.leg("r2", "b", false, CodecPreference::Opus, ClientOptions::default().tone(1300.0)).await;
    m.server.bridge("r2", Endpoint::Device { rtc_id: "a".into() }, Endpoint::Device { rtc_id: "b".into() }, true);
    a.wait_rtp(60, T).await.unwrap();
    b.wait_rtp(60, T).await.unwrap();
    let info = m.server.release("r2").unwrap();
    let wav = parse_wav(&std::fs::read(m.dir.join(&info.file)).unwrap()).unwrap();
    assert_tone(&wav.channel(0), 500.0, "left = caller");
    assert_tone(&wav.channel(1), 1300.0, "right = callee");

    // Served over HTTP: the download and the list.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::from(emu_admin::routes::media::routes().with_state(m.server.clone())))
            .await
            .unwrap()
    });
    let (status, body) = fetch(&base, "/recordings/r1.wav").await;
    assert_eq!((status, body.len()), (200, bytes_on_disk.len()));
    assert_eq!(body, bytes_on_disk);
    for bad in ["/recordings/nope.wav", "/recordings/..%2Fetc%2Fpasswd", "/recordings/.hidden"] {
        assert_eq!(fetch(&base, bad).await.0, 404, "{bad}");
    }
    let (status, list) = fetch(&base, "/admin/recordings").await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_slice(&list).unwrap();
    let files: Vec<&str> = list["recordings"].as_array().unwrap().iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["r2.wav", "r1.wav"], "newest first");
    assert_eq!(list["recordings"][1]["channelId"], "r1");
    let (status, summary) = fetch(&base, "/admin/media").await;
    assert_eq!(status, 200);
    let summary: Value = serde_json::from_slice(&summary).unwrap();
    assert_eq!(summary["recordings"], 2);
}

#[tokio::test]
async fn release_cleans_up_and_the_ports_serve_the_next_call() {
    let m = start("release").await;
    let port = m.server.udp_addr().port();
    for round in 0..2 {
        let chan = format!("x{round}");
        let mut a = m.leg(&chan, "alice", true, CodecPreference::Opus, ClientOptions::default()).await;
        let mut b = m.leg(&chan, "bob", true, CodecPreference::Opus, ClientOptions::default()).await;
        m.bridge_alice_bob(&chan);
        a.wait_rtp(10, T).await.unwrap();
        b.wait_rtp(10, T).await.unwrap();
        assert_eq!(m.server.summary()["turnUsers"], 2);
        let live = m.server.summary();
        for key in ["rtpPacketsIn", "rtpPacketsOut"] {
            assert!(live[key].as_u64().unwrap() >= 20, "two legs' audio in {key}: {live}");
        }
        m.server.release(&chan);
        assert_eq!((m.server.leg_count(), m.server.channel_count()), (0, 0));
        assert_eq!(m.server.summary()["rtpPacketsIn"], 0, "only the legs open now count");
        assert_eq!(m.server.summary()["turnUsers"], 0, "credentials revoked");
        let last = serde_json::to_value(m.server.stats(&chan)).unwrap();
        assert_eq!(last["released"], true, "the final statistics stay: {last}");
        assert!(last["legs"][1]["rtpPacketsIn"].as_u64().unwrap() >= 10, "{last}");
        assert_eq!(m.server.udp_addr().port(), port, "same media port for every call");
        // The relays go away with their credentials (deleted asynchronously by the TURN task).
        let deadline = tokio::time::Instant::now() + T;
        while m.server.turn_allocations().await > 0 {
            assert!(tokio::time::Instant::now() < deadline, "allocations left after release");
            tokio::task::yield_now().await;
        }
        a.close().await;
        b.close().await;
    }
    let c = m.server.summary()["counters"].clone();
    assert_eq!(c["legsCreated"], c["legsReleased"], "{c}");
    m.server.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_garbage_and_stale_signals_leave_live_calls_alone() {
    let m = start("bad").await;
    let mut a = m.leg("g1", "alice", true, CodecPreference::Opus, ClientOptions::default().tone(440.0)).await;
    let mut b = m.leg("g1", "bob", true, CodecPreference::Opus, ClientOptions::default().tone(880.0)).await;
    m.bridge_alice_bob("g1");
    a.wait_rtp(10, T).await.unwrap();

    // TURN with a wrong password or an unknown user: no allocation.
    let join = m.server.join("g2", "default", "mallory", "u", &MediaSignal::of(&json!({}))).to_json();
    let mut creds = TurnCreds::from_join_result(&join).unwrap();
    creds.password = "wrong".into();
    assert!(MediaClient::new(ClientOptions::relay(creds.clone())).await.is_err());
    creds.username = "1:nobody".into();
    assert!(MediaClient::new(ClientOptions::relay(creds)).await.is_err());
    // (A wrong password fails the crate's MESSAGE-INTEGRITY check; an unknown user is refused
    // by the credential store, which counts it.)
    assert!(m.server.summary()["turnRejected"].as_u64().unwrap() >= 1);

    // Garbage, unknown STUN, DTLS and RTP from unknown addresses: dropped and counted.
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"zzzz:yyy");
    for p in [&b"\xff\xfe garbage"[..], b"\x16\xfe\xfd\x00\x00 not dtls", b"\x80\x6f\x00\x01 not srtp", &stun] {
        for _ in 0..20 {
            junk.send_to(p, m.server.udp_addr()).await.unwrap();
        }
    }
    // Stale or bogus signals.
    assert!(
        m.server
            .signal(
                "nope",
                "x",
                "u",
                "candidate",
                &MediaSignal::of(&json!({"data": {"candidateInfo": {"candidate": "garbage"}}}))
            )
            .is_none()
    );
    assert!(
        m.server
            .signal(
                "g1",
                "alice",
                "u",
                "candidate",
                &MediaSignal::of(
                    &json!({"data": {"candidateInfo": {"candidate": "candidate:1 1 udp 1 not-an-ip 9 typ host"}}})
                )
            )
            .is_none()
    );
    let r =
        m.server.signal("nope", "x", "u", "sdpCandidate", &MediaSignal::of(&json!({"data": {}}))).unwrap().to_json();
    assert_ne!(r["errorCode"], 0);

    // The call goes on: more audio both ways, same tones.
    let (na, nb) = (a.stats().rtp_rx, b.stats().rtp_rx);
    a.wait_rtp(na + 25, T).await.unwrap();
    b.wait_rtp(nb + 25, T).await.unwrap();
    assert_tone(&b.received_pcm(), 440.0, "bob");
    let c = m.server.summary()["counters"].clone();
    assert!(c["garbage"].as_u64().unwrap() + c["unknownSource"].as_u64().unwrap() >= 60, "{c}");
    m.server.shutdown().await;
}

#[tokio::test]
async fn two_workers_share_out_the_calls_and_keep_each_call_on_one_port() {
    let mut m = start_with("workers", 2).await;
    let summary = m.server.summary();
    let ports: Vec<u16> = summary["udpPorts"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u16).collect();
    assert_eq!(ports.len(), 2, "{summary}");
    assert_ne!(ports[0], ports[1]);
    // Calls until both workers have one: each call's two legs share a port.
    let mut calls = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in 0..32 {
        let chan = format!("w{i}");
        let opts = |hz| ClientOptions::default().tone(hz);
        let (alice, pa) = m.leg_on_port(&chan, "alice", false, CodecPreference::Opus, opts(440.0)).await;
        let (bob, pb) = m.leg_on_port(&chan, "bob", false, CodecPreference::Opus, opts(880.0)).await;
        assert_eq!(pa, pb, "both legs of {chan} on one worker");
        assert!(ports.contains(&pa), "{pa} is one of {ports:?}");
        if !seen.insert(pa) {
            m.server.release(&chan);
            alice.close().await;
            bob.close().await;
            continue;
        }
        m.bridge_alice_bob(&chan);
        calls.push((chan, alice, bob));
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(calls.len(), 2, "32 channels all hashed to one worker");
    for (chan, alice, bob) in &mut calls {
        alice.wait_rtp(40, T).await.unwrap();
        bob.wait_rtp(40, T).await.unwrap();
        assert_tone(&bob.received_pcm(), 440.0, &format!("{chan}: bob hears alice"));
        assert_tone(&alice.received_pcm(), 880.0, &format!("{chan}: alice hears bob"));
        assert!(m.leg_stats(chan, "alice")["rtpPacketsOut"].as_u64().unwrap() >= 40);
    }
    let summary = m.server.summary();
    assert_eq!((summary["legs"].as_u64(), summary["connectedLegs"].as_u64()), (Some(4), Some(4)), "{summary}");
    for (chan, alice, bob) in calls {
        m.server.release(&chan);
        alice.close().await;
        bob.close().await;
    }
    assert_eq!(m.server.leg_count(), 0);
    m.server.shutdown().await;
    let _ = m.events.try_recv();
}
