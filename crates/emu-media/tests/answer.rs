//! The media server's answers to the real Web SDK's offer (captured from Chrome 156,
//! tests/data/chrome-sdpCandidate.json), per docs/protocol.md#the-joinchannel-result.

use std::time::Duration;

use emu_core::Clock;
use emu_core::media_signal::MediaSignal;
use emu_media::{CodecPreference, MediaConfig, MediaServer};
use serde_json::{Value, json};

fn chrome_offer() -> Value {
    serde_json::from_str(include_str!("data/chrome-sdpCandidate.json")).unwrap()
}

async fn server() -> std::sync::Arc<MediaServer> {
    let dir = std::env::temp_dir().join(format!("emu-media-answer-{}", std::process::id()));
    let cfg = MediaConfig { recordings_dir: dir, ..MediaConfig::default() };
    MediaServer::start(cfg, Clock::manual_at(1_700_000_000_000)).await.unwrap().0
}

fn m_line(sdp: &str) -> &str {
    sdp.lines().find(|l| l.starts_with("m=audio")).unwrap()
}

#[tokio::test]
async fn sigv1_join_then_sdp_candidate() {
    let s = server().await;
    let join = s
        .join(
            "chan",
            "default",
            "alice",
            "uuid-a",
            &MediaSignal::of(&json!({"api": "joinChannel", "seqId": "42", "data": {"channelId": "chan"}})),
        )
        .to_json();
    assert_eq!(join["api"], "joinChannel");
    assert_eq!(join["errorCode"], 0);
    assert_eq!(join["errorMsg"], "SUCCESS");
    assert_eq!(join["seqId"], "42");
    assert_eq!(join["data"]["channelId"], "chan");
    assert_eq!(join["data"]["dynamicConfig"], json!({}));
    assert!(join["data"].get("sdpInfo").is_none(), "sigv 1: no answer in the join result");
    let turn = &join["data"]["turnServers"][0];
    assert_eq!(turn["address"], format!("turn:127.0.0.1:{}?transport=udp", s.turn_addr().unwrap().port()));
    assert!(turn["username"].as_str().unwrap().len() > 10);
    assert!(turn["password"].as_str().unwrap().len() >= 16);

    let result =
        s.signal("chan", "alice", "uuid-a", "sdpCandidate", &MediaSignal::of(&chrome_offer())).unwrap().to_json();
    assert_eq!(result["api"], "sdpCandidate");
    assert_eq!(result["errorCode"], 0, "{result}");
    assert_eq!(result["errorMsg"], "SUCCESS");
    assert_eq!(result["data"]["channelId"], "chan");
    let answer = result["data"]["sdpInfo"]["sdp"].as_str().unwrap();
    assert_eq!(result["data"]["sdpInfo"]["type"], "answer");
    assert!(!answer.contains("a=candidate"), "no candidates in the answer:\n{answer}");
    assert!(!answer.contains("end-of-candidates"));
    assert_eq!(answer.matches("m=").count(), 1, "one m-line:\n{answer}");
    for needle in ["a=mid:0", "a=sendrecv", "a=rtcp-mux", "opus/48000/2", "a=ice-lite", "a=fingerprint:sha-256"] {
        assert!(answer.contains(needle), "{needle} missing:\n{answer}");
    }
    assert!(answer.contains("a=setup:passive") || answer.contains("a=setup:active"));
    // Opus first (the PT the browser will send), telephone-event offered at both rates kept.
    assert!(m_line(answer).starts_with("m=audio 9 UDP/TLS/RTP/SAVPF 111 "), "{}", m_line(answer));
    assert!(answer.contains("telephone-event/48000") && answer.contains("telephone-event/8000"), "{answer}");
    // Header extensions: the mid (BUNDLE) and the audio level; no transport-wide CC or
    // abs-send-time (the vendor's answer in the captures has no extmap at all).
    assert!(answer.contains("urn:ietf:params:rtp-hdrext:sdes:mid"), "{answer}");
    assert!(!answer.contains("transport-wide-cc") && !answer.contains("abs-send-time"), "{answer}");
    let cands = result["data"]["candidateList"].as_array().unwrap();
    assert_eq!(cands.len(), 1);
    assert_eq!(cands[0]["id"], "0");
    assert_eq!(cands[0]["label"], 0);
    let c = cands[0]["candidate"].as_str().unwrap();
    assert!(c.starts_with("candidate:1 1 udp 2130706431 127.0.0.1 "), "{c}");
    assert!(c.contains(&format!(" {} typ host", s.udp_addr().port())), "{c}");
    // A trickled candidate is taken without a result; unknown apis are ignored.
    let cand = json!({"api": "candidate", "data": {"channelId": "chan", "candidateInfo": {"candidate": "candidate:2593642479 1 udp 58662911 127.0.0.1 49215 typ relay raddr 0.0.0.0 rport 0 generation 0 ufrag iTOD network-id 1 network-cost 50", "id": "0", "label": 0}}});
    assert!(s.signal("chan", "alice", "uuid-a", "candidate", &MediaSignal::of(&cand)).is_none());
    assert!(
        s.signal("chan", "alice", "uuid-a", "reportStatus", &MediaSignal::of(&json!({"data": {"userStatus": 20}})))
            .is_none()
    );
    let stats = serde_json::to_value(s.stats("chan")).unwrap();
    assert_eq!(stats["legs"][0]["state"], "connecting");
    assert_eq!(stats["legs"][0]["sigv"], 1);
    s.release("chan");
    assert_eq!((s.leg_count(), s.channel_count()), (0, 0));
    assert_eq!(serde_json::to_value(s.stats("chan")).unwrap()["released"], true, "final statistics stay");
    assert!(s.stats("never").is_none());
    s.shutdown().await;
}

#[tokio::test]
async fn g711_preference_puts_pcmu_first() {
    let s = server().await;
    s.join_with("c2", "default", "alice", "u", &MediaSignal::of(&json!({})), CodecPreference::G711);
    let result = s.signal("c2", "alice", "u", "sdpCandidate", &MediaSignal::of(&chrome_offer())).unwrap().to_json();
    let answer = result["data"]["sdpInfo"]["sdp"].as_str().unwrap();
    assert!(m_line(answer).starts_with("m=audio 9 UDP/TLS/RTP/SAVPF 0 8 111"), "{}", m_line(answer));
    assert_eq!(CodecPreference::for_call_type("voip2pstn"), CodecPreference::G711);
    assert_eq!(CodecPreference::for_call_type("voip2voip"), CodecPreference::Opus);
    s.shutdown().await;
}

#[tokio::test]
async fn sigv2_join_carries_answer_and_one_candidate() {
    let s = server().await;
    let offer = chrome_offer()["data"]["sdpInfo"]["sdp"].clone();
    let signal = json!({"api": "joinChannel", "seqId": "7", "data": {"channelId": "c3", "sdpInfo": {"sdp": offer, "type": "offer"},
        "channelConfig": {"sigVersion": 2}}});
    let join = s.join("c3", "default", "bob", "u", &MediaSignal::of(&signal)).to_json();
    assert_eq!(join["errorCode"], 0, "{join}");
    let answer = join["data"]["sdpInfo"]["sdp"].as_str().unwrap();
    assert!(!answer.contains("a=candidate"));
    assert!(answer.contains("a=mid:0"));
    let info = &join["data"]["candidateInfo"];
    assert_eq!((info["id"].as_str(), info["label"].as_i64()), (Some("0"), Some(0)));
    assert!(info["candidate"].as_str().unwrap().contains("typ host"));
    assert_eq!(serde_json::to_value(s.stats("c3")).unwrap()["legs"][0]["sigv"], 2);
    s.shutdown().await;
}

#[tokio::test]
async fn unanswerable_offers_fail_without_harming_other_legs() {
    let s = server().await;
    s.join("c4", "default", "alice", "u", &MediaSignal::of(&json!({})));
    let good = s.signal("c4", "alice", "u", "sdpCandidate", &MediaSignal::of(&chrome_offer())).unwrap().to_json();
    assert_eq!(good["errorCode"], 0);
    s.join("c4", "default", "bob", "u2", &MediaSignal::of(&json!({})));
    for bad in [
        json!({"data": {"sdpInfo": {"sdp": "garbage"}}}),
        json!({"data": {"sdpInfo": {"sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}}}),
        // Video only: nothing to answer with.
        json!({"data": {"sdpInfo": {"sdp": chrome_offer()["data"]["sdpInfo"]["sdp"].as_str().unwrap().replace("m=audio", "m=video").replace("opus/48000/2", "VP8/90000")}}}),
        // Audio without a codec we speak.
        json!({"data": {"sdpInfo": {"sdp": chrome_offer()["data"]["sdpInfo"]["sdp"].as_str().unwrap()
            .replace(" 111 63 9 0 8 13 110 126", " 9 13").replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:99 foo/8000")
            .replace("a=rtpmap:0 PCMU/8000\r\n", "").replace("a=rtpmap:8 PCMA/8000\r\n", "")}}}),
        json!({"data": {}}),
    ] {
        let r = s.signal("c4", "bob", "u2", "sdpCandidate", &MediaSignal::of(&bad)).unwrap().to_json();
        assert_ne!(r["errorCode"], 0, "{bad} → {r}");
        assert_ne!(r["errorMsg"], "SUCCESS");
    }
    // Garbage on the media port is counted and dropped.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [
        &b"\xff\xff"[..],
        b"\x16\xfe\xfd garbage dtls",
        b"\x80\x00 not rtp",
        b"\x00\x01\x00\x00\x21\x12\xa4\x42aaaaaaaaaaaa",
    ] {
        sock.send_to(junk, s.udp_addr()).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let c = s.summary()["counters"].clone();
        if c["garbage"].as_u64().unwrap() + c["unknownSource"].as_u64().unwrap() >= 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{c}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(serde_json::to_value(s.stats("c4")).unwrap()["legs"][0]["state"], "connecting");
    s.shutdown().await;
}
