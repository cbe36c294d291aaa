//! `body.mediaSignal`: `base64(zlib(utf8 JSON))` (docs/protocol.md#mediasignal), with a hard cap on the
//! inflated size so a zip bomb costs nothing.

use std::cell::RefCell;
use std::io::Read;

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
use serde_json::Value;
use serde_json::value::RawValue;

thread_local! {
    // An inflate state is tens of KiB: one per thread, reset per message, instead of a fresh
    // allocation (and zeroing) for every few hundred bytes of signalling. The same goes for the
    // buffers: the base64-decoded bytes and the inflated JSON are only read, by the typed decode,
    // before the next signal on this thread, so they live in scratch space that is zeroed once
    // (`Decompress::decompress_vec` zeroes a fresh output's capacity every time).
    static INFLATE: RefCell<Scratch> = RefCell::new(Scratch {
        inflater: DecompressorOxide::new(),
        compressed: Vec::new(),
        inflated: vec![0; SCRATCH_START],
    });
}

thread_local! {
    // The zlib stream of a server message's signal, before it is base64-encoded.
    static ZLIB_OUT: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4 << 10));
}

struct Scratch {
    /// Inflates into `inflated` as one flat buffer (no window of its own to zero per signal,
    /// as a streaming inflater's reset does: 32 KiB), so a back-reference can only reach what
    /// this signal wrote.
    inflater: DecompressorOxide,
    compressed: Vec<u8>,
    /// Always initialised up to its length; inflating writes into it from the start.
    inflated: Vec<u8>,
}

/// Standard base64 with padding, strict (canonical padding, no stray bits), as the `base64`
/// crate's `STANDARD` engine decodes it; with SIMD, as base64 was a quarter of what decoding and
/// encoding signals cost (docs/benchmarks.md#per-call-cpu). A test holds the two crates to the
/// same answers.
const BASE64: base64_simd::Base64 = base64_simd::STANDARD;

/// The inflate buffer's first size: a signal with a whole SDP is a few KiB.
const SCRATCH_START: usize = 16 << 10;
/// A buffer that grew past this for one large signal is given back afterwards.
const SCRATCH_KEEP: usize = 256 << 10;

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

/// `base64(zlib(json))` with the deflate data in stored (uncompressed) blocks: a zlib stream like
/// any other to pako and every inflater. Compressing was the dearest step of a server message
/// (miniz_oxide zeroes about 200 KiB of window and hash state per stream, for a few hundred
/// bytes of signalling; docs/benchmarks.md), and on a local emulator the bytes saved buy nothing.
pub fn encode(value: &(impl serde::Serialize + ?Sized)) -> String {
    let mut z = Vec::with_capacity(512);
    zlib_json(value, &mut z);
    BASE64.encode_to_string(z)
}

/// [`encode`] as a JSON string (quotes included) to write into an envelope as it is: base64
/// needs no escapes, and serde_json's escaping looked at every byte of every signal.
pub fn encode_raw(value: &(impl serde::Serialize + ?Sized)) -> Box<RawValue> {
    let text = ZLIB_OUT.with_borrow_mut(|z| {
        zlib_json(value, z);
        // Exactly the length: the boxing below then keeps the allocation as it is.
        let mut text = String::with_capacity(BASE64.encoded_length(z.len()) + 2);
        text.push('"');
        BASE64.encode_append(&z[..], &mut text);
        text.push('"');
        if z.capacity() > SCRATCH_KEEP {
            *z = Vec::new();
        }
        text
    });
    // Base64 between quotes is always a JSON string.
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::from_string("\"\"".into()).expect("a JSON string"))
}

/// `zlib(json)` in stored blocks (see [`encode`]), in place of what `z` held.
fn zlib_json(value: &(impl serde::Serialize + ?Sized), z: &mut Vec<u8>) {
    // The JSON is written straight after the zlib header and a stored block's header, whose
    // length is filled in afterwards: no copy of a few hundred bytes per server message.
    const HEAD: usize = 7;
    z.clear();
    z.extend_from_slice(&[0x78, 0x01, 0x01, 0, 0, 0, 0]);
    if serde_json::to_writer(&mut *z, value).is_err() {
        z.truncate(HEAD);
    }
    match u16::try_from(z.len() - HEAD) {
        Ok(len) => {
            z[3..5].copy_from_slice(&len.to_le_bytes());
            z[5..HEAD].copy_from_slice(&(!len).to_le_bytes());
            let json: &[u8] = &z[HEAD..];
            let adler = simd_adler32::adler32(&json);
            z.extend_from_slice(&adler.to_be_bytes());
        }
        // Over 64 KiB: several blocks.
        Err(_) => *z = zlib_stored(&z[HEAD..]),
    }
}

/// `base64(zlib(json))` compressed, as the SDKs send it (pako's deflate): for test clients, whose
/// documents (and zip bombs) must be as small on the wire as a real SDK's.
pub fn encode_compressed(value: &Value) -> String {
    use std::io::Write as _;
    let json = serde_json::to_vec(value).unwrap_or_default();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = z.write_all(&json);
    BASE64.encode_to_string(z.finish().unwrap_or_default())
}

/// RFC 1950 around RFC 1951 §3.2.4 stored blocks (at most 65,535 bytes each).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 65_535;
    let blocks = data.len().div_ceil(BLOCK).max(1);
    let mut out = Vec::with_capacity(2 + data.len() + 5 * blocks + 4);
    // CMF 0x78: deflate with a 32 KiB window; FLG 0x01: no dictionary, and CMF·256+FLG is a
    // multiple of 31 as the header check requires.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks: Vec<&[u8]> = data.chunks(BLOCK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (i, chunk) in chunks.iter().enumerate() {
        let len = chunk.len() as u16;
        out.push(u8::from(i + 1 == chunks.len())); // BFINAL on the last, BTYPE 00 (stored)
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&simd_adler32::adler32(&data).to_be_bytes());
    out
}

/// Inflates zlib data into `out` from its start, stopping as soon as the output passes `limit`
/// bytes; returns the inflated length. `out` grows (zeroed once) as needed.
fn inflate_zlib(
    inflater: &mut DecompressorOxide,
    raw: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, MediaSignalError> {
    let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    inflater.init();
    let (mut input, mut written) = (raw, 0usize);
    loop {
        let (status, used, wrote) = decompress(inflater, input, out, written, flags);
        written += wrote;
        match status {
            TINFLStatus::Done if written <= limit => return Ok(written),
            TINFLStatus::Done => return Err(MediaSignalError::TooLarge(limit)),
            TINFLStatus::HasMoreOutput => {
                if written > limit || out.len() > limit {
                    return Err(MediaSignalError::TooLarge(limit));
                }
                input = input.get(used..).ok_or(MediaSignalError::Zlib)?;
                let grown = (out.len() * 2).max(64).min(limit + 1);
                out.resize(grown, 0);
            }
            // Corrupt, or the data ends before the stream does.
            _ => return Err(MediaSignalError::Zlib),
        }
    }
}

/// Decodes a mediaSignal into `T`: the fields the platform reads
/// ([`emu_core::media_signal::MediaSignal`]), or the whole JSON (`Value`) for readers.
pub fn decode<T: serde::de::DeserializeOwned>(text: &str, max_inflated: usize) -> Result<T, MediaSignalError> {
    INFLATE.with_borrow_mut(|scratch| {
        let Scratch { inflater, compressed, inflated } = scratch;
        compressed.clear();
        BASE64.decode_append(text.trim(), compressed).map_err(|_| MediaSignalError::Base64)?;
        // pako auto-detects zlib and gzip; accept both like the SDK does.
        let result = if compressed.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            let limit = max_inflated as u64 + 1;
            flate2::read::GzDecoder::new(&compressed[..])
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|_| MediaSignalError::Zlib)
                .and_then(|_| parse(&out, max_inflated))
        } else {
            inflate_zlib(inflater, compressed, inflated, max_inflated).and_then(|n| parse(&inflated[..n], max_inflated))
        };
        if inflated.len() > SCRATCH_KEEP {
            *inflated = vec![0; SCRATCH_START];
        }
        if compressed.capacity() > SCRATCH_KEEP {
            *compressed = Vec::new();
        }
        result
    })
}

/// The inflated JSON of a signal into `T`.
fn parse<T: serde::de::DeserializeOwned>(json: &[u8], max_inflated: usize) -> Result<T, MediaSignalError> {
    if json.len() > max_inflated {
        return Err(MediaSignalError::TooLarge(max_inflated));
    }
    // A typed decode skips what it does not read without serde_json's nesting limit for a tree;
    // a signal nested deeper than a tree may be is refused the same way whatever `T` is.
    if nested_too_deep(json)
        && let Err(e) = serde_json::from_slice::<Value>(json)
    {
        return Err(MediaSignalError::Json(e.to_string()));
    }
    // Read as text, like the request bodies: one instance of each decoder in the binary.
    let text = std::str::from_utf8(json).map_err(|e| MediaSignalError::Json(e.to_string()))?;
    serde_json::from_str(text).map_err(|e| MediaSignalError::Json(e.to_string()))
}

/// Whether JSON text nests arrays and objects deeper than serde_json builds a tree (127 levels).
fn nested_too_deep(json: &[u8]) -> bool {
    const MAX_DEPTH: usize = 127;
    // Nesting that deep needs that many opening brackets; counting them is one quick pass
    // (vectorised), where following strings and escapes is a branch per byte.
    if json.iter().filter(|&&b| b == b'[' || b == b'{').count() <= MAX_DEPTH {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The largest mediaSignal the event log inflates for a reader (the gateway refuses larger ones
/// from devices anyway, at `gateway.max_media_signal_bytes`).
const READABLE_MAX: usize = 1 << 20;

/// An envelope's `body` as the event log shows it: `mediaSignal` decoded into its JSON (an
/// undecodable one stays as it was). `None` when the bytes are not an envelope.
pub fn readable_body(wire: &[u8]) -> Option<Value> {
    let mut envelope: Value = serde_json::from_slice(wire).ok()?;
    let mut body = envelope.get_mut("body")?.take();
    // Some clients send the body as a JSON string.
    if let Value::String(text) = &body {
        body = serde_json::from_str(text).unwrap_or(body);
    }
    if let Some(signal) = body.get_mut("mediaSignal")
        && let Some(decoded) = signal.as_str().and_then(|m| decode::<Value>(m, READABLE_MAX).ok())
    {
        *signal = decoded;
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    #[test]
    fn readable_body_decodes_the_signal() {
        let signal = json!({"api": "joinChannel", "data": {"sdpInfo": {"sdp": "v=0"}}});
        let wire = serde_json::to_vec(
            &json!({"messageType": "joinChannel", "body": {"channelId": "c", "mediaSignal": encode(&signal)}}),
        )
        .unwrap();
        assert_eq!(readable_body(&wire), Some(json!({"channelId": "c", "mediaSignal": signal})));
        let as_string = serde_json::to_vec(&json!({"body": "{\"a\":1}"})).unwrap();
        assert_eq!(readable_body(&as_string), Some(json!({"a": 1})));
        assert_eq!(
            readable_body(&serde_json::to_vec(&json!({"body": {"mediaSignal": "%%"}})).unwrap()),
            Some(json!({"mediaSignal": "%%"}))
        );
        assert_eq!(readable_body(b"not json"), None);
    }

    #[test]
    fn stored_streams_inflate_with_flate2_at_every_size() {
        for n in [0usize, 1, 300, 65_534, 65_535, 65_536, 140_000] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let z = zlib_stored(&data);
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(&z[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{n} bytes");
        }
    }

    #[test]
    fn encoding_writes_the_stored_stream_of_the_json_at_every_size() {
        // JSON texts of 2 … 140,002 bytes: one stored block up to 65,535 bytes, several beyond.
        for n in [0usize, 300, 65_532, 65_533, 65_534, 140_000] {
            let v = Value::String("x".repeat(n));
            let json = serde_json::to_vec(&v).unwrap();
            let expected = base64::engine::general_purpose::STANDARD.encode(zlib_stored(&json));
            assert_eq!(encode(&v), expected, "{} bytes of JSON", json.len());
            assert_eq!(decode::<Value>(&encode(&v), 1 << 20).unwrap(), v);
        }
    }

    #[test]
    fn the_raw_form_is_the_encoded_text_as_a_json_string() {
        for n in [0usize, 1, 2, 3, 300, 70_000] {
            let v = json!({"api": "joinChannel", "pad": "z".repeat(n)});
            let raw = encode_raw(&v);
            assert_eq!(serde_json::from_str::<String>(raw.get()).unwrap(), encode(&v), "{n}");
            assert_eq!(raw.get().len(), encode(&v).len() + 2);
        }
    }

    #[test]
    fn round_trip() {
        let v = json!({"api": "joinChannel", "data": {"channelId": "c1"}});
        assert_eq!(decode::<Value>(&encode(&v), 1 << 20).unwrap(), v);
        assert_eq!(decode::<Value>(&encode_compressed(&v), 1 << 20).unwrap(), v);
    }

    #[test]
    fn decodes_a_captured_signal() {
        // canceledCall as the real SDK sent it in a recorded run (pako output).
        let s = "eJwNyjsOgCAMANC7dHYBSvmsTh6jlhJNGuLgRri7vvlN4OeGCsJD1LTtbAYbNH4Z6gS5eAy1o/0lK3qi7IIWwq54RhVKPgWkWKQ7WOsDx4gXcA==";
        let v: Value = decode(s, 1 << 20).unwrap();
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
        assert_eq!(decode::<Value>(&bomb, 1 << 20), Err(MediaSignalError::TooLarge(1 << 20)));
    }

    #[test]
    fn nesting_deeper_than_a_tree_is_refused_for_every_type() {
        let nest = |n: usize| format!(r#"{{"x":"[{{\\\"","y":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        // serde_json builds trees 127 containers deep: the object and 126 arrays.
        for (arrays, ok) in [(126, true), (127, false), (3000, false)] {
            let text = stored_text(&nest(arrays));
            let value = decode::<Value>(&text, 1 << 20);
            let typed = decode::<emu_core::media_signal::MediaSignal>(&text, 1 << 20);
            assert_eq!((value.is_ok(), typed.is_ok()), (ok, ok), "{arrays} arrays: {value:?}");
            if let Err(MediaSignalError::Json(e)) = typed {
                assert!(e.contains("recursion limit"), "{e}");
            }
        }
    }

    /// `base64(zlib(text))` of text that need not be JSON a tree can hold.
    fn stored_text(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(zlib_stored(text.as_bytes()))
    }

    #[test]
    fn base64_is_read_as_the_base64_crate_reads_it() {
        use rand::{Rng, SeedableRng};
        let reference = |t: &[u8]| base64::engine::general_purpose::STANDARD.decode(t).ok();
        let ours = |t: &[u8]| BASE64.decode_to_vec(t).ok();
        // Every string of up to 4 characters from letters whose last bits matter, the padding
        // and characters outside the alphabet.
        let letters = b"ABQgw/+=-_ \n";
        let mut short = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> =
                short.iter().flat_map(|s| letters.iter().map(move |&c| [&s[..], &[c]].concat())).collect();
            for t in &longer {
                assert_eq!(ours(t), reference(t), "{:?}", String::from_utf8_lossy(t));
            }
            short = longer;
        }
        // Long enough for the SIMD loops, with one character changed, cut or added anywhere.
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        for _ in 0..3000 {
            let data: Vec<u8> = (0..rng.random_range(0..200)).map(|_| rng.random()).collect();
            let mut text = base64::engine::general_purpose::STANDARD.encode(&data).into_bytes();
            assert_eq!(ours(&text), Some(data.clone()));
            assert_eq!(BASE64.encode_to_string(&data).as_bytes(), &text[..]);
            if text.is_empty() {
                continue;
            }
            let at = rng.random_range(0..text.len());
            match rng.random_range(0..3) {
                0 => text[at] = letters[rng.random_range(0..letters.len())],
                1 => text.truncate(at),
                _ => text.insert(at, letters[rng.random_range(0..letters.len())]),
            }
            assert_eq!(ours(&text), reference(&text), "{:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode::<Value>("%%%", 100), Err(MediaSignalError::Base64));
        assert_eq!(decode::<Value>("aGVsbG8=", 100), Err(MediaSignalError::Zlib));
        // A valid stream cut short, and one with trailing garbage after a cut.
        let whole = base64::engine::general_purpose::STANDARD.decode(encode(&json!({"a": "b".repeat(500)}))).unwrap();
        for cut in [3, whole.len() / 2, whole.len() - 1] {
            let t = base64::engine::general_purpose::STANDARD.encode(&whole[..cut]);
            assert_eq!(decode::<Value>(&t, 1 << 20), Err(MediaSignalError::Zlib), "cut at {cut}");
        }
    }

    #[test]
    fn the_limit_is_exact_at_every_buffer_size() {
        // Around the scratch buffer's first size and its doublings, and past the size it keeps.
        for n in [100usize, 16_382, 16_383, 16_384, 32_767, 32_768, 300_000] {
            let v = Value::String("y".repeat(n - 2)); // n bytes of JSON
            for signal in [encode(&v), encode_compressed(&v)] {
                assert_eq!(decode::<Value>(&signal, n).unwrap(), v, "{n} bytes, limit {n}");
                assert_eq!(decode::<Value>(&signal, n - 1), Err(MediaSignalError::TooLarge(n - 1)), "{n} bytes");
            }
        }
        // A small signal after a large one decodes as ever.
        let small = json!({"api": "leaveChannel"});
        assert_eq!(decode::<Value>(&encode(&small), 1 << 20).unwrap(), small);
    }

    #[test]
    fn the_reused_state_starts_fresh_each_time() {
        let a = json!({"api": "joinChannel", "data": {"sdp": "v=0 ".repeat(300)}});
        let b = json!({"api": "sdpCandidate", "data": {"channelId": "x"}});
        for _ in 0..3 {
            assert_eq!(decode::<Value>(&encode(&a), 1 << 20).unwrap(), a);
            assert_eq!(decode::<Value>(&encode(&b), 1 << 20).unwrap(), b);
        }
        // A failed inflate leaves nothing behind for the next one.
        assert!(decode::<Value>("aGVsbG8=", 100).is_err());
        assert_eq!(decode::<Value>(&encode(&b), 1 << 20).unwrap(), b);
        // Exactly at the limit passes, one byte over does not.
        let exact = serde_json::to_vec(&a).unwrap().len();
        assert!(decode::<Value>(&encode(&a), exact).is_ok());
        assert_eq!(decode::<Value>(&encode(&a), exact - 1), Err(MediaSignalError::TooLarge(exact - 1)));
    }
}
