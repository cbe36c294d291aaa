//! An envelope's JSON object written member by member: the fixed frame of every ACK and server
//! request (docs/protocol.md#envelopes) around bodies that serde writes.
//!
//! Why not serde for the frame too: serde_json escapes every key and string it writes, a
//! byte-by-byte table walk, and the frame is twelve keys and a handful of ids per envelope, a
//! few hundred walks per call (docs/benchmarks.md#per-call-cpu). Keys here are the protocol's
//! own ASCII names, written as they are; a string value is copied as it is unless it holds
//! something JSON must escape, and then serde_json writes it. The bytes are the same as
//! serde's (unit tests hold them together).

use serde::Serialize;
use serde_json::value::RawValue;

/// A JSON object being written into `out`: members in the order they are written, closed by
/// [`ObjectWriter::end`].
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }

    /// A key that needs no escaping (the protocol's field names).
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(!needs_escape(key), "{key}");
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub(crate) fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        write_str(self.key(key), value);
        self
    }

    pub(crate) fn u64(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.key(key).extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    pub(crate) fn i64(&mut self, key: &'static str, value: i64) -> &mut Self {
        self.key(key).extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    pub(crate) fn bool(&mut self, key: &'static str, value: bool) -> &mut Self {
        self.key(key).extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// JSON that is already JSON (a raw value), `null` for none.
    pub(crate) fn raw(&mut self, key: &'static str, value: Option<&RawValue>) -> &mut Self {
        self.key(key).extend_from_slice(value.map_or("null", RawValue::get).as_bytes());
        self
    }

    /// A member written by serde. Writing into a `Vec` fails only for a map with keys that are
    /// not strings, which no body has; `null` is written then, so the object stays JSON.
    pub(crate) fn serialize(&mut self, key: &'static str, value: &(impl Serialize + ?Sized)) -> &mut Self {
        let out = self.key(key);
        let at = out.len();
        if serde_json::to_writer(&mut *out, value).is_err() {
            out.truncate(at);
            out.extend_from_slice(b"null");
        }
        self
    }

    /// A member whose value is an object of its own, written by `members`.
    pub(crate) fn object(&mut self, key: &'static str, members: impl FnOnce(&mut ObjectWriter)) -> &mut Self {
        let mut inner = ObjectWriter::begin(self.key(key));
        members(&mut inner);
        inner.end();
        self
    }

    pub(crate) fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// Whether JSON must escape something in `s`: a quote, a backslash or a control character.
/// (Everything else, UTF-8 included, goes in as it is; serde_json escapes nothing more.)
fn needs_escape(s: &str) -> bool {
    // A fold without an early exit: the compiler turns it into vector compares.
    s.bytes().fold(false, |found, b| found | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// `s` as a JSON string.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s) {
        let _ = serde_json::to_writer(out, s);
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_what_serde_writes_escaped_or_not() {
        for s in ["", "plain", "ünïcode ✓", "quote \" here", "back\\slash", "tab\tnew\nline", "\u{1}", "\u{7f}"] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn an_object_is_what_serde_writes() {
        #[derive(Serialize)]
        struct Inner<'a> {
            id: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Outer<'a> {
            topic: &'a str,
            born_time: u64,
            code: i64,
            to: Option<&'a RawValue>,
            from: &'a RawValue,
            inner: Inner<'a>,
            body: serde_json::Value,
            response: bool,
        }
        let from = RawValue::from_string(r#"{"sessionId":"x"}"#.into()).unwrap();
        let body = serde_json::json!({"a": [1, "b\"c"], "d": null});
        let expected = serde_json::to_vec(&Outer {
            topic: "t\"1",
            born_time: u64::MAX,
            code: -7,
            to: None,
            from: &from,
            inner: Inner { id: "i" },
            body: body.clone(),
            response: true,
        })
        .unwrap();
        let mut out = Vec::new();
        ObjectWriter::begin(&mut out)
            .str("topic", "t\"1")
            .u64("bornTime", u64::MAX)
            .i64("code", -7)
            .raw("to", None)
            .raw("from", Some(&from))
            .object("inner", |o| {
                o.str("id", "i");
            })
            .serialize("body", &body)
            .bool("response", true)
            .end();
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
    }
}
