//! `body.mediaSignal`: `base64(zlib(utf8 JSON))` (docs/protocol.md#mediasignal), with a hard cap on the
//! inflated size so a zip bomb costs nothing.

use std::cell::RefCell;
use std::io::Read;

use base64::Engine as _;
use flate2::{Decompress, FlushDecompress, Status};
use miniz_oxide::deflate::core::{
    CompressionStrategy, CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
};
use serde_json::Value;

thread_local! {
    // A deflate or inflate state is tens of KiB: one per thread, reset per message, instead of a
    // fresh allocation (and zeroing) for every few hundred bytes of signalling. Fast level with
    // the fixed Huffman codes: building dynamic tables cost more than the rest of a message.
    static DEFLATE: RefCell<CompressorOxide> = RefCell::new(CompressorOxide::new(
        create_comp_flags_from_zip_params(1, 15, CompressionStrategy::Fixed as i32),
    ));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

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
    let json = serde_json::to_vec(value).unwrap_or_default();
    // Fixed codes expand incompressible bytes by at most 9/8, plus the zlib header and trailer.
    let mut out = vec![0u8; json.len() + json.len() / 8 + 64];
    let (mut read, mut written) = (0, 0);
    DEFLATE.with_borrow_mut(|z| {
        z.reset();
        loop {
            let (status, r, w) = compress(z, &json[read..], &mut out[written..], TDEFLFlush::Finish);
            read += r;
            written += w;
            match status {
                TDEFLStatus::Okay if written == out.len() => out.resize(out.len() * 2, 0),
                TDEFLStatus::Okay => {}
                _ => break, // Done (or a parameter error, which fixed arguments cannot cause)
            }
        }
    });
    out.truncate(written);
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Inflates zlib data, stopping as soon as the output passes `limit` bytes.
fn inflate_zlib(raw: &[u8], limit: usize) -> Result<Vec<u8>, MediaSignalError> {
    let mut out = Vec::with_capacity((raw.len() * 4).min(limit) + 64);
    INFLATE.with_borrow_mut(|z| {
        z.reset(true);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().clamp(64, limit + 1));
            }
            let (before_in, before_out) = (z.total_in(), z.total_out());
            let rest = &raw[before_in as usize..];
            match z.decompress_vec(rest, &mut out, FlushDecompress::None) {
                Ok(Status::StreamEnd) => return Ok(out),
                Err(_) => return Err(MediaSignalError::Zlib),
                Ok(_) if out.len() > limit => return Err(MediaSignalError::TooLarge(limit)),
                // Room to write and nothing moved: the data ends before the stream does.
                Ok(_) if z.total_in() == before_in && z.total_out() == before_out && out.len() < out.capacity() => {
                    return Err(MediaSignalError::Zlib);
                }
                Ok(_) => {}
            }
        }
    })
}

pub fn decode(text: &str, max_inflated: usize) -> Result<Value, MediaSignalError> {
    let raw = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| MediaSignalError::Base64)?;
    // pako auto-detects zlib and gzip; accept both like the SDK does.
    let out = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let limit = max_inflated as u64 + 1;
        flate2::read::GzDecoder::new(&raw[..]).take(limit).read_to_end(&mut out).map_err(|_| MediaSignalError::Zlib)?;
        out
    } else {
        inflate_zlib(&raw, max_inflated)?
    };
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
        // canceledCall as the real SDK sent it in a recorded run (pako output).
        let s = "eJwNyjsOgCAMANC7dHYBSvmsTh6jlhJNGuLgRri7vvlN4OeGCsJD1LTtbAYbNH4Z6gS5eAy1o/0lK3qi7IIWwq54RhVKPgWkWKQ7WOsDx4gXcA==";
        let v = decode(s, 1 << 20).unwrap();
        assert_eq!(v["api"], "canceledCall");
    }

    #[test]
    fn zip_bomb_is_refused() {
        // Built the way an attacker would: best compression.
        let big = serde_json::to_vec(&json!({"pad": "a".repeat(10 << 20)})).unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &big).unwrap();
        let bomb = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        assert!(bomb.len() < 100_000, "compresses well: {}", bomb.len());
        assert_eq!(decode(&bomb, 1 << 20), Err(MediaSignalError::TooLarge(1 << 20)));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode("%%%", 100), Err(MediaSignalError::Base64));
        assert_eq!(decode("aGVsbG8=", 100), Err(MediaSignalError::Zlib));
        // A valid stream cut short, and one with trailing garbage after a cut.
        let whole = base64::engine::general_purpose::STANDARD.decode(encode(&json!({"a": "b".repeat(500)}))).unwrap();
        for cut in [3, whole.len() / 2, whole.len() - 1] {
            let t = base64::engine::general_purpose::STANDARD.encode(&whole[..cut]);
            assert_eq!(decode(&t, 1 << 20), Err(MediaSignalError::Zlib), "cut at {cut}");
        }
    }

    #[test]
    fn the_reused_state_starts_fresh_each_time() {
        let a = json!({"api": "joinChannel", "data": {"sdp": "v=0 ".repeat(300)}});
        let b = json!({"api": "sdpCandidate", "data": {"channelId": "x"}});
        for _ in 0..3 {
            assert_eq!(decode(&encode(&a), 1 << 20).unwrap(), a);
            assert_eq!(decode(&encode(&b), 1 << 20).unwrap(), b);
        }
        // A failed inflate leaves nothing behind for the next one.
        assert!(decode("aGVsbG8=", 100).is_err());
        assert_eq!(decode(&encode(&b), 1 << 20).unwrap(), b);
        // Exactly at the limit passes, one byte over does not.
        let exact = serde_json::to_vec(&a).unwrap().len();
        assert!(decode(&encode(&a), exact).is_ok());
        assert_eq!(decode(&encode(&a), exact - 1), Err(MediaSignalError::TooLarge(exact - 1)));
    }
}
