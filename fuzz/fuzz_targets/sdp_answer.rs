//! SDP offers into the media server's answer path (crates/emu-media/src/server/signal.rs and
//! sdp.rs): an offer in a sigv 2 joinChannel and in a sigv 1 sdpCandidate (with the offer's
//! candidates as the candidate list). A success carries an answer str0m can read back, without
//! candidates, with a format on every m-line, and the server's candidate for the offer's audio
//! mid; a failure carries an error code. Releasing the channel leaves no leg behind.
#![no_main]

use std::cell::RefCell;

use emu_media::fuzzing::MediaHarness;
use emu_media::{CodecPreference, sdp};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

thread_local! {
    static MEDIA: RefCell<MediaHarness> = RefCell::new({
        alicom_emu_fuzz::let_contained_media_panics_unwind();
        MediaHarness::new()
    });
}

fn check_answer(result: &Value, offer: &str, candidate: &Value) {
    if result["errorCode"] != 0 {
        assert!(result["errorMsg"].as_str().is_some_and(|m| !m.is_empty()), "{result}");
        return;
    }
    let answer = result.pointer("/data/sdpInfo/sdp").and_then(Value::as_str).expect("an answer");
    assert!(!answer.lines().any(|l| l.starts_with("a=candidate")), "a candidate in the answer");
    for m in answer.lines().filter(|l| l.starts_with("m=")) {
        assert!(m.split_whitespace().count() >= 4, "an m-line without a format: {m:?}");
    }
    if let Err(e) = str0m::change::SdpAnswer::from_sdp_string(answer) {
        panic!("our answer does not parse ({e}):\n{answer}");
    }
    let (mid, label) = sdp::audio_mid(offer).expect("an answered offer has audio");
    assert_eq!(candidate["id"], mid.as_str());
    assert_eq!(candidate["label"], label);
}

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = std::str::from_utf8(data) else { return };
    MEDIA.with_borrow_mut(|m| {
        let prefer = if data.len().is_multiple_of(2) { CodecPreference::Opus } else { CodecPreference::G711 };
        // Both answer paths: audio only, and a video call's leg (VP8/H.264 answered).
        let prefer = emu_media::LegOptions { prefer, video: data.len().is_multiple_of(3) };
        // sigv 2: the offer rides in joinChannel.
        let signal = json!({"seqId": 1, "data": {"channelId": "ch", "sdpInfo": {"sdp": offer, "type": "offer"}}});
        let joined = m.join("ch", "alice", &signal, prefer);
        check_answer(&joined, offer, &joined["data"]["candidateInfo"]);
        // sigv 1: joinChannel without it, then sdpCandidate with the offer and its candidates.
        m.join("ch", "bob", &json!({"data": {"channelId": "ch"}}), prefer);
        let candidates: Vec<&str> = offer.lines().filter(|l| l.starts_with("a=candidate:")).collect();
        let signal = json!({"data": {"sdpInfo": {"sdp": offer, "type": "offer"}, "candidateList": candidates}});
        let result = m.signal("ch", "bob", "sdpCandidate", &signal).expect("sdpCandidate has a result");
        check_answer(&result, offer, &result["data"]["candidateList"][0]);
        m.signal("ch", "bob", "candidate", &json!({"data": {"candidateInfo": candidates}}));
        m.advance(std::time::Duration::from_millis(50));
        m.release("ch");
        assert_eq!(m.live(), (0, 0, 0), "legs left after the release");
    });
});
