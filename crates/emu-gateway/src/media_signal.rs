//! `body.mediaSignal`: `base64(zlib(utf8 JSON))` (PROTOCOL.md §5.1), with a hard cap on the
//! inflated size so a zip bomb costs nothing.

use std::io::{Read, Write};

use base64::Engine as _;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde_json::Value;

#[derive(Debug, PartialEq, Eq)]
pub enum MediaSignalError {
    Base64,
    Zlib,
    TooLarge(usize),
    Json(String),
}

impl std::fmt::Display for MediaSignalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaSignalError::Base64 => f.write_str("mediaSignal is not base64"),
            MediaSignalError::Zlib => f.write_str("mediaSignal is not zlib data"),
            MediaSignalError::TooLarge(max) => write!(f, "mediaSignal inflates to more than {max} bytes"),
            MediaSignalError::Json(e) => write!(f, "mediaSignal is not JSON: {e}"),
        }
    }
}

pub fn encode(value: &Value) -> String {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(value.to_string().as_bytes());
    let compressed = z.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(compressed)
}

pub fn decode(text: &str, max_inflated: usize) -> Result<Value, MediaSignalError> {
    let raw = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| MediaSignalError::Base64)?;
    // pako auto-detects zlib and gzip; accept both like the SDK does.
    let mut out = Vec::new();
    let limit = max_inflated as u64 + 1;
    let read = if raw.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(&raw[..]).take(limit).read_to_end(&mut out)
    } else {
        ZlibDecoder::new(&raw[..]).take(limit).read_to_end(&mut out)
    };
    read.map_err(|_| MediaSignalError::Zlib)?;
    if out.len() > max_inflated {
        return Err(MediaSignalError::TooLarge(max_inflated));
    }
    serde_json::from_slice(&out).map_err(|e| MediaSignalError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let v = json!({"api": "joinChannel", "data": {"channelId": "c1"}});
        assert_eq!(decode(&encode(&v), 1 << 20).unwrap(), v);
    }

    #[test]
    fn decodes_a_captured_signal() {
        // canceledCall from captures/examples.json (pako output).
        let s = "eJwNyjsOgCAMANC7dHYBSvmsTh6jlhJNGuLgRri7vvlN4OeGCsJD1LTtbAYbNH4Z6gS5eAy1o/0lK3qi7IIWwq54RhVKPgWkWKQ7WOsDx4gXcA==";
        let v = decode(s, 1 << 20).unwrap();
        assert_eq!(v["api"], "canceledCall");
    }

    #[test]
    fn zip_bomb_is_refused() {
        let big = json!({"pad": "a".repeat(10 << 20)});
        let bomb = encode(&big);
        assert!(bomb.len() < 100_000, "compresses well: {}", bomb.len());
        assert_eq!(decode(&bomb, 1 << 20), Err(MediaSignalError::TooLarge(1 << 20)));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode("%%%", 100), Err(MediaSignalError::Base64));
        assert_eq!(decode("aGVsbG8=", 100), Err(MediaSignalError::Zlib));
    }
}
