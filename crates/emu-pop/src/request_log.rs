//! The last N POP requests, for `GET /admin/requests`: what a developer looks at first when an
//! SDK says "signature does not match".

use std::collections::VecDeque;

use emu_core::Millis;
use parking_lot::Mutex;
use serde::Serialize;

use crate::auth::Mismatch;

#[derive(Debug, Clone, Serialize)]
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

pub struct RequestLog {
    capacity: usize,
    entries: Mutex<VecDeque<LoggedRequest>>,
}

impl RequestLog {
    pub fn new(capacity: usize) -> Self {
        RequestLog { capacity, entries: Mutex::new(VecDeque::with_capacity(capacity.min(1024))) }
    }

    pub fn push(&self, entry: LoggedRequest) {
        if self.capacity == 0 {
            return;
        }
        let mut e = self.entries.lock();
        if e.len() == self.capacity {
            e.pop_front();
        }
        e.push_back(entry);
    }

    /// The newest `limit` entries, oldest first.
    pub fn last(&self, limit: usize) -> Vec<LoggedRequest> {
        let e = self.entries.lock();
        e.iter().skip(e.len().saturating_sub(limit)).cloned().collect()
    }

    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}
