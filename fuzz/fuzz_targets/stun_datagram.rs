//! Datagrams on the media port (crates/emu-media/src/stun.rs and the state's demultiplexing):
//! the first-byte classification and the USERNAME walk agree with each other, and any datagram,
//! from a known or an unknown source, is handled (STUN, DTLS, RTP/RTCP, garbage) without a panic.
//!
//! Input: datagrams separated by the 4 bytes `DGM|`; `UFRAGUFR` in a datagram is replaced by the
//! leg's real ICE ufrag, so STUN requests reach the leg (the seeds are binding requests).
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use emu_media::fuzzing::MediaHarness;
use emu_media::stun::{self, Kind};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const OFFER: &str = include_str!("../corpus/sdp_answer/chrome-audio.sdp");
const PLACEHOLDER: &[u8] = b"UFRAGUFR";

thread_local! {
    static MEDIA: RefCell<MediaHarness> = RefCell::new({
        alicom_emu_fuzz::let_contained_media_panics_unwind();
        MediaHarness::new()
    });
}

fuzz_target!(|data: &[u8]| {
    let src: SocketAddr = "10.0.0.2:5000".parse().expect("an address");
    let stranger: SocketAddr = "10.0.0.9:9".parse().expect("an address");
    MEDIA.with_borrow_mut(|m| {
        let signal = json!({"data": {"channelId": "ch", "sdpInfo": {"sdp": OFFER, "type": "offer"}}});
        let joined = m.join("ch", "alice", &signal, emu_media::CodecPreference::Opus);
        assert_eq!(joined["errorCode"], 0, "the seed offer is answered: {joined}");
        let ufrag = m.ufrag("ch", "alice").expect("a leg");
        for d in alicom_emu_fuzz::datagrams(data) {
            let mut d = d.to_vec();
            if let Some(i) = d.windows(PLACEHOLDER.len()).position(|w| w == PLACEHOLDER) {
                d[i..i + PLACEHOLDER.len()].copy_from_slice(&ufrag.as_bytes()[..PLACEHOLDER.len()]);
            }
            let kind = stun::classify(&d);
            if let Some(u) = stun::local_ufrag(&d) {
                assert_eq!(kind, Kind::Stun);
                assert!(!u.is_empty() && !u.contains(':'));
            }
            if stun::is_rtp(&d) {
                assert_eq!(kind, Kind::Rtp);
            }
            m.datagram(&d, stranger);
            m.datagram(&d, src);
            // Past the ICE hold: held STUN requests are answered.
            m.advance(Duration::from_millis(40));
        }
        m.release("ch");
        assert_eq!(m.live(), (0, 0, 0), "legs left after the release");
    });
});
