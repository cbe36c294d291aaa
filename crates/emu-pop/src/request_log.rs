//! The last N POP requests, for `GET /admin/requests`: what a developer looks at first when an
//! SDK says "signature does not match".
//!
//! Bounded twice: each long string of an entry (a string to sign, an echoed parameter) is kept
//! as a [`MAX_FIELD_BYTES`] prefix marked with its original length, and the entries together
//! hold at most `max_bytes` of text (the oldest go first), so hostile requests cannot make the
//! log, or `GET /admin/requests`, large.

use emu_core::retention::{Bounded, Limit, Retained};

use emu_core::Millis;
use parking_lot::Mutex;
use serde::Serialize;

use crate::auth::Mismatch;

/// The longest string an entry keeps whole.
pub const MAX_FIELD_BYTES: usize = 4096;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoggedRequest {
    #[serde(rename = "timeMs")]
    pub time_ms: Millis,
    #[serde(rename = "requestId")]
    pub request_id: String,
    pub method: String,
    pub action: String,
    #[serde(rename = "accessKeyId")]
    pub access_key_id: String,
    pub tenant: String,
    /// "rpc-v1", "acs3" or "none".
    pub scheme: &'static str,
    pub status: u16,
    pub code: String,
    pub message: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
}

/// `s` itself when it is at most `max` bytes, else its longest prefix of at most `max` bytes on a
/// character boundary followed by `…[truncated: N bytes]` (N: the original length).
pub fn truncated(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated: {} bytes]", &s[..end], s.len()).into()
}

fn bound(s: &mut String) {
    if s.len() > MAX_FIELD_BYTES {
        *s = truncated(s, MAX_FIELD_BYTES).into_owned();
    }
}

impl LoggedRequest {
    /// Cuts every long string down to a marked prefix.
    fn bounded(mut self) -> Self {
        for s in [&mut self.request_id, &mut self.method, &mut self.action, &mut self.access_key_id] {
            bound(s);
        }
        for s in [&mut self.tenant, &mut self.code, &mut self.message] {
            bound(s);
        }
        if let Some(m) = &mut self.mismatch {
            bound(&mut m.server_string_to_sign);
            bound(&mut m.hint);
            for s in [&mut m.server_canonical_request, &mut m.client_string_to_sign].into_iter().flatten() {
                bound(s);
            }
        }
        self
    }

    /// The text it holds, roughly what it costs in memory and in JSON.
    fn bytes(&self) -> usize {
        let m = self.mismatch.as_ref().map_or(0, |m| {
            m.server_string_to_sign.len()
                + m.hint.len()
                + m.server_canonical_request.as_ref().map_or(0, String::len)
                + m.client_string_to_sign.as_ref().map_or(0, String::len)
        });
        let own = [&self.request_id, &self.method, &self.action, &self.access_key_id, &self.tenant, &self.code];
        128 + own.iter().map(|s| s.len()).sum::<usize>() + self.message.len() + m
    }
}

pub struct RequestLog {
    entries: Mutex<Bounded<LoggedRequest>>,
}

impl RequestLog {
    /// At most `capacity` entries holding at most `max_bytes` of text together.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        RequestLog { entries: Mutex::new(Bounded::new(Limit::new(capacity, max_bytes))) }
    }

    pub fn push(&self, entry: LoggedRequest) {
        let mut e = self.entries.lock();
        if e.limit().items == 0 {
            return;
        }
        let entry = entry.bounded();
        let size = entry.bytes();
        e.push(entry, size);
    }

    /// The newest `limit` entries, oldest first.
    pub fn last(&self, limit: usize) -> Vec<LoggedRequest> {
        let e = self.entries.lock();
        e.iter().skip(e.len().saturating_sub(limit)).cloned().collect()
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text the entries hold together.
    pub fn bytes(&self) -> usize {
        self.entries.lock().bytes()
    }

    /// Its size and caps, for `/metrics`.
    pub fn retained(&self) -> Retained {
        self.entries.lock().retained("pop_requests")
    }

    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(message: String, sts: Option<String>) -> LoggedRequest {
        LoggedRequest {
            time_ms: 0,
            request_id: "R".into(),
            method: "GET".into(),
            action: "A".repeat(10_000),
            access_key_id: "testAK".into(),
            tenant: "default".into(),
            scheme: "rpc-v1",
            status: 400,
            code: "SignatureDoesNotMatch".into(),
            message,
            mismatch: sts.map(|s| Mismatch { server_string_to_sign: s, ..Default::default() }),
        }
    }

    #[test]
    fn long_strings_keep_a_marked_prefix() {
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(truncated("ab中cd", 3), "ab…[truncated: 7 bytes]", "cut on a character boundary");
        let log = RequestLog::new(10, 1 << 20);
        log.push(entry("m".repeat(3_600_000), Some("s".repeat(3_600_000))));
        let e = &log.last(1)[0];
        assert!(e.message.starts_with(&"m".repeat(MAX_FIELD_BYTES)));
        assert!(e.message.ends_with("…[truncated: 3600000 bytes]"), "{}", &e.message[MAX_FIELD_BYTES..]);
        assert!(e.mismatch.as_ref().unwrap().server_string_to_sign.ends_with("…[truncated: 3600000 bytes]"));
        assert!(e.action.ends_with("…[truncated: 10000 bytes]"));
        assert!(serde_json::to_string(e).unwrap().len() < 4 * MAX_FIELD_BYTES);
    }

    #[test]
    fn total_bytes_are_capped_oldest_first() {
        let log = RequestLog::new(200, 64 * 1024);
        for i in 0..60 {
            log.push(entry(format!("{i}{}", "x".repeat(1 << 20)), Some("s".repeat(1 << 20))));
            assert!(log.bytes() <= 64 * 1024);
        }
        let kept = log.last(60);
        assert!(kept.len() < 60 && !kept.is_empty());
        assert!(kept.last().unwrap().message.starts_with("59x"), "the newest is kept");
        let json = serde_json::to_string(&kept).unwrap();
        assert!(json.len() < 128 * 1024, "{} bytes", json.len());
        log.clear();
        assert_eq!((log.bytes(), log.last(10).len()), (0, 0));
    }

    #[test]
    fn capacity_still_counts_entries() {
        let log = RequestLog::new(3, 1 << 20);
        for i in 0..5 {
            log.push(entry(i.to_string(), None));
        }
        let v: Vec<_> = log.last(10).into_iter().map(|e| e.message).collect();
        assert_eq!(v, ["2", "3", "4"]);
    }
}
