//! The local log sink `cs_get_sls_sts` points the Web SDK at: it answers CORS preflights and
//! accepts the SDK's SLS uploads (docs/protocol.md#sls-log-upload), keeping the last ones for inspection.

use emu_core::retention::{Bounded, Limit, Retained, json_weight};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = SlsUpload)]
pub struct Upload {
    pub logstore: String,
    pub bytes: usize,
    #[serde(rename = "rawSize")]
    #[schema(required = true)]
    pub raw_size: Option<String>,
    #[serde(rename = "timeMs")]
    pub time_ms: u64,
}

pub struct SlsSink {
    endpoint: String,
    /// The newest uploads, within `retention.sls_uploads` / `sls_bytes`.
    uploads: Mutex<Bounded<Upload>>,
}

impl SlsSink {
    /// `endpoint` is `host:port` of the listener that serves [`routes`].
    pub fn new(endpoint: String, limit: Limit) -> Self {
        SlsSink { endpoint, uploads: Mutex::new(Bounded::new(limit)) }
    }

    /// The `cs_get_sls_sts` ACK body. The SDK posts to `//{project}.{endpoint}`; an empty project
    /// makes that this listener.
    pub fn credentials(&self, now_ms: u64) -> Value {
        let expiration = chrono::DateTime::from_timestamp_millis((now_ms + 24 * 3600 * 1000) as i64)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        json!({
            "accessKeyId": "alicom-emu-sls",
            "accessKeySecret": "alicom-emu-sls-secret",
            "securityToken": "alicom-emu-sls-token",
            "expiration": expiration,
            "endpoint": self.endpoint,
            "project": "",
            "logLogStore": "alicom-emu-log",
            "statsLogStore": "alicom-emu-stats",
            "partnerId": "",
        })
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.uploads.lock().clear();
    }

    pub(crate) fn push(&self, u: Upload) {
        let weight = json_weight(&u);
        self.uploads.lock().push(u, weight);
    }

    /// The uploads kept, for `/metrics`.
    pub fn retained(&self) -> Retained {
        self.uploads.lock().retained("sls_uploads")
    }
}
