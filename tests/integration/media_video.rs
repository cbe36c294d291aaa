//! Offers that carry video as well as audio (a client with a camera, every video-edition SDK):
//! the answer rejects the video m-line in a form browsers parse (port 0 with a format, its mid
//! kept, outside BUNDLE) and the audio flows both ways, to phones and into recordings. An offer
//! that cannot be answered gets errorCode 40001 with the reason, never an answer.

use std::sync::Arc;
use std::time::Duration;

use emu_core::Clock;
use emu_core::media_signal::MediaSignal;
use emu_testkit::media::emu_media::audio::{dominant_frequency, parse_wav};
use emu_testkit::media::emu_media::{Audio, CodecPreference, Endpoint, MediaConfig, MediaServer};
use emu_testkit::media::{ClientOptions, MediaClient, VideoLine};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

/// A directory removed when the test ends (kept when it failed, for a look).
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn server(name: &str) -> (Arc<MediaServer>, TempDir) {
    let dir = std::env::temp_dir().join(format!("alicom-emu-video-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg =
        MediaConfig { recordings_dir: dir.clone(), http_base: "http://emu.test".into(), ..MediaConfig::default() };
    let (server, _events) = MediaServer::start(cfg, Clock::manual_at(1_700_000_000_000)).await.expect("media server");
    (server, TempDir(dir))
}

/// A sigv 2 leg (the offer in joinChannel) whose client offers `video` as well; returns the
/// client (its answer applied) and the answer SDP.
async fn video_leg(m: &MediaServer, chan: &str, who: &str, hz: f64, video: VideoLine) -> (MediaClient, String) {
    let mut c = MediaClient::new(ClientOptions::direct().tone(hz).video(video)).await.expect("client");
    assert!(c.offer_sdp.contains("m=video 9 "), "the offer carries video: {}", c.offer_sdp);
    let join = m
        .join_with(chan, "default", who, "u", &MediaSignal::of(&c.join_signal_v2(chan)), CodecPreference::Opus)
        .to_json();
    assert_eq!(join["errorCode"], 0, "{join}");
    let answer = join["data"]["sdpInfo"]["sdp"].as_str().expect("an answer").to_string();
    c.accept(&join).expect("the answer parses and is accepted");
    (c, answer)
}

/// The mids of an SDP's m-lines, in order, with each line's `m=` text.
fn m_lines(sdp: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in sdp.lines() {
        if l.starts_with("m=") {
            out.push((l.to_string(), String::new()));
        } else if let (Some(mid), Some(last)) = (l.strip_prefix("a=mid:"), out.last_mut()) {
            last.1 = mid.to_string();
        }
    }
    out
}

fn assert_video_rejected(offer: &str, answer: &str) {
    let offered = m_lines(offer);
    let answered = m_lines(answer);
    assert_eq!(offered.len(), answered.len(), "one answer m-line per offer m-line:\n{answer}");
    let (video_line, video_mid) = answered.iter().find(|(l, _)| l.starts_with("m=video")).expect("a video m-line");
    let fields: Vec<&str> = video_line.split_whitespace().collect();
    assert_eq!(fields[1], "0", "video rejected with port 0: {video_line}");
    assert!(fields.len() >= 4, "a rejected line still lists a format (RFC 4566 §5.14): {video_line:?}");
    let section = answer.split("m=").find(|s| s.starts_with("video")).unwrap();
    assert!(section.contains("a=inactive\r\n"), "video is inactive: {section}");
    assert!(!section.contains("a=ssrc:") && !section.contains("a=msid:"), "no stream on a rejected line: {section}");
    let offered_video = offered.iter().find(|(l, _)| l.starts_with("m=video")).unwrap();
    assert_eq!(video_mid, &offered_video.1, "the video mid is kept");
    let bundle = answer.lines().find(|l| l.starts_with("a=group:BUNDLE")).expect("a BUNDLE group");
    let bundled: Vec<&str> = bundle.split_whitespace().skip(1).collect();
    assert!(!bundled.contains(&video_mid.as_str()), "video is not bundled: {bundle}");
    let (audio_line, audio_mid) = answered.iter().find(|(l, _)| l.starts_with("m=audio")).unwrap();
    assert!(!audio_line.starts_with("m=audio 0 "), "{audio_line}");
    assert!(bundled.contains(&audio_mid.as_str()), "audio is bundled: {bundle}");
    // The answer keeps the offer's m-line order.
    for ((o, _), (a, _)) in offered.iter().zip(&answered) {
        assert_eq!(o.split(' ').next(), a.split(' ').next());
    }
}

fn leg_stats(m: &MediaServer, chan: &str, who: &str) -> Value {
    let s = serde_json::to_value(m.stats(chan)).unwrap();
    s["legs"].as_array().unwrap().iter().find(|l| l["rtcId"] == who).cloned().unwrap_or_else(|| panic!("{s}"))
}

fn assert_tone(pcm: &[i16], hz: f64, who: &str) {
    let tail = &pcm[pcm.len().min(1600)..];
    assert!(tail.len() >= 2400, "{who}: only {} samples", pcm.len());
    let f = dominant_frequency(tail).unwrap_or_else(|| panic!("{who}: silence"));
    assert!((f - hz).abs() <= 15.0, "{who}: {f} Hz, want {hz} Hz");
}

#[tokio::test]
async fn two_legs_offering_video_get_a_valid_answer_and_audio_both_ways_recorded() {
    let (m, dir) = server("voip").await;
    let (mut alice, a_answer) = video_leg(&m, "v1", "alice", 440.0, VideoLine::AfterAudio).await;
    let (mut bob, b_answer) = video_leg(&m, "v1", "bob", 880.0, VideoLine::BeforeAudio).await;
    assert_video_rejected(&alice.offer_sdp, &a_answer);
    assert_video_rejected(&bob.offer_sdp, &b_answer);
    let device = |id: &str| Endpoint::Device { rtc_id: id.into() };
    m.bridge("v1", device("alice"), device("bob"), true);
    alice.wait_rtp(50, T).await.unwrap();
    bob.wait_rtp(50, T).await.unwrap();
    assert_tone(&bob.received_pcm(), 440.0, "bob hears alice");
    assert_tone(&alice.received_pcm(), 880.0, "alice hears bob");
    for who in ["alice", "bob"] {
        let l = leg_stats(&m, "v1", who);
        assert_eq!(l["codec"], "opus", "{l}");
        assert!(l["rtpPacketsOut"].as_u64().unwrap() >= 40, "{l}");
        assert!(l["rtpPacketsIn"].as_u64().unwrap() >= 40, "{l}");
    }
    let info = m.release("v1").expect("a recording");
    let wav = parse_wav(&std::fs::read(dir.join(&info.file)).unwrap()).unwrap();
    assert_tone(&wav.channel(0), 440.0, "recording: left = caller");
    assert_tone(&wav.channel(1), 880.0, "recording: right = callee");
    alice.close().await;
    bob.close().await;
    m.shutdown().await;
}

#[tokio::test]
async fn a_leg_offering_video_hears_a_phone_and_the_phone_hears_it() {
    let (m, _dir) = server("pstn").await;
    let mut c = MediaClient::new(ClientOptions::default().tone(440.0).video(VideoLine::AfterAudio)).await.unwrap();
    let join = m
        .join_with(
            "v2",
            "default",
            "alice",
            "u",
            &MediaSignal::of(&json!({"api": "joinChannel"})),
            CodecPreference::G711,
        )
        .to_json();
    assert_eq!(join["errorCode"], 0, "{join}");
    let result = m
        .signal("v2", "alice", "u", "sdpCandidate", &MediaSignal::of(&c.sdp_candidate_signal("v2")))
        .expect("a result")
        .to_json();
    assert_eq!(result["errorCode"], 0, "{result}");
    assert_video_rejected(&c.offer_sdp, result["data"]["sdpInfo"]["sdp"].as_str().unwrap());
    c.accept(&result).unwrap();
    m.bridge(
        "v2",
        Endpoint::Device { rtc_id: "alice".into() },
        Endpoint::Phone { number: "13800000001".into(), audio: Audio::Echo },
        false,
    );
    c.wait_rtp(50, T).await.unwrap();
    assert_eq!(leg_stats(&m, "v2", "alice")["codec"], "PCMU");
    // The echo phone returns what it hears: the device's audio reached the phone and back.
    assert_tone(&c.received_pcm(), 440.0, "the device hears itself through the phone");
    c.close().await;
    m.shutdown().await;
}

#[tokio::test]
async fn an_offer_that_cannot_be_answered_gets_40001_with_the_reason() {
    let (m, _dir) = server("refuse").await;
    let video_only = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        a=rtpmap:96 VP8/90000\r\n";
    let no_common = video_only
        .replace("m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 9 UDP/TLS/RTP/SAVPF 9")
        .replace("a=rtpmap:96 VP8/90000", "a=rtpmap:9 G722/8000");
    let cases = [
        (video_only.to_string(), "no audio m-line"),
        (no_common, "no audio codec in common"),
        ("m=audio garbage\r\n\u{0}\u{1}".to_string(), "unparseable SDP"),
    ];
    for (i, (sdp, reason)) in cases.iter().enumerate() {
        let signal = json!({"api": "joinChannel", "data": {"sdpInfo": {"sdp": sdp, "type": "offer"}}});
        let join = m.join("bad", "default", &format!("d{i}"), "u", &MediaSignal::of(&signal)).to_json();
        assert_eq!(join["errorCode"], 40001, "{join}");
        let msg = join["errorMsg"].as_str().unwrap();
        assert!(msg.contains(reason), "{reason}: {msg}");
        assert!(join["data"].get("sdpInfo").is_none(), "no answer with an error: {join}");
    }
    m.shutdown().await;
}
