//! `body.mediaSignal` decoding (crates/emu-gateway/src/media_signal.rs): base64, then zlib or
//! gzip inflated under a cap, then JSON. What decodes inflates (by an independent inflater) to at
//! most the cap; what inflates past the cap never decodes; encoding what decoded reads back.
//!
//! Input: a mode byte, the cap (2 bytes, big-endian), then the signal: as base64 text when the
//! mode is odd, else as the raw compressed bytes (base64-encoded here, so the fuzzer reaches the
//! inflater without having to learn base64).
#![no_main]

use std::io::Read;

use alicom_emu_fuzz::has_float;
use base64::Engine as _;
use emu_core::media_signal::MediaSignal;
use emu_gateway::media_signal::{self, MediaSignalError};
use libfuzzer_sys::fuzz_target;

/// What `raw` inflates to, up to `limit + 1` bytes (None: not zlib or gzip data).
fn reference_inflate(raw: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let take = limit as u64 + 1;
    let ok = if raw.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(raw).take(take).read_to_end(&mut out).is_ok()
    } else {
        flate2::read::ZlibDecoder::new(raw).take(take).read_to_end(&mut out).is_ok()
    };
    ok.then_some(out)
}

fuzz_target!(|data: &[u8]| {
    let [mode, c1, c2, rest @ ..] = data else { return };
    let cap = usize::from(u16::from_be_bytes([*c1, *c2]));
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = if mode & 1 == 1 { String::from_utf8_lossy(rest).into_owned() } else { b64.encode(rest) };
    let decoded = media_signal::decode::<serde_json::Value>(&text, cap);
    // The fields the platform reads decode whenever the JSON does (and more leniently: a
    // skipped number out of range is no error), and agree with it.
    match (media_signal::decode::<MediaSignal>(&text, cap), &decoded) {
        (Ok(typed), Ok(v)) => assert_eq!(typed, MediaSignal::of(v), "typed fields differ from the JSON's"),
        (Err(e), Ok(v)) => panic!("the JSON decodes but its fields do not ({e}): {v}"),
        _ => {}
    }
    if let Ok(raw) = b64.decode(text.trim()) {
        let reference = reference_inflate(&raw, cap);
        match (&decoded, &reference) {
            (Ok(v), Some(bytes)) => {
                assert!(bytes.len() <= cap, "decoded a signal that inflates past the cap ({} > {cap})", bytes.len());
                let json: serde_json::Value = serde_json::from_slice(bytes).expect("the reference reads JSON too");
                assert_eq!(&json, v, "the two inflaters disagree");
            }
            (Ok(_), None) => panic!("decoded what the reference inflater refuses"),
            (Err(MediaSignalError::TooLarge(_)), Some(bytes)) => {
                assert!(bytes.len() > cap, "refused as too large at {} of {cap} bytes", bytes.len())
            }
            _ => {}
        }
        if reference.as_ref().is_some_and(|b| b.len() > cap) {
            assert!(decoded.is_err(), "a signal over the cap decoded");
        }
    }
    if let Ok(v) = &decoded
        && !has_float(v)
    {
        let big = 1 << 24;
        assert_eq!(media_signal::decode(&media_signal::encode(v), big).as_ref(), Ok(v), "stored round trip");
        assert_eq!(
            media_signal::decode(&media_signal::encode_compressed(v), big).as_ref(),
            Ok(v),
            "deflate round trip"
        );
    }
    // The event log's readable view of an envelope carrying it.
    let wire = serde_json::json!({"messageType": "joinChannel", "body": {"mediaSignal": text}});
    let body = media_signal::readable_body(&serde_json::to_vec(&wire).unwrap_or_default()).expect("an envelope");
    assert!(body.get("mediaSignal").is_some());
});
