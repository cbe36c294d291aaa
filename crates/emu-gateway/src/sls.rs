//! The local log sink `cs_get_sls_sts` points the Web SDK at: it answers CORS preflights and
//! accepts the SDK's SLS uploads (docs/protocol.md#sls-log-upload), keeping the last ones for inspection.

use std::collections::VecDeque;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;

const KEPT: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub logstore: String,
    pub bytes: usize,
    #[serde(rename = "rawSize")]
    pub raw_size: Option<String>,
    #[serde(rename = "timeMs")]
    pub time_ms: u64,
}

pub struct SlsSink {
    endpoint: String,
    uploads: Mutex<VecDeque<Upload>>,
}

impl SlsSink {
    /// `endpoint` is `host:port` of the listener that serves [`routes`].
    pub fn new(endpoint: String) -> Self {
        SlsSink { endpoint, uploads: Mutex::new(VecDeque::new()) }
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

    fn push(&self, u: Upload) {
        let mut q = self.uploads.lock();
        if q.len() >= KEPT {
            q.pop_front();
        }
        q.push_back(u);
    }
}

fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    r
}

pub fn routes(hub: Arc<crate::hub::Hub>) -> Router {
    Router::new().route("/logstores/{store}/shards/lb", post(upload).options(preflight)).with_state(hub)
}

async fn preflight() -> Response {
    cors(StatusCode::OK.into_response())
}

async fn upload(
    State(hub): State<Arc<crate::hub::Hub>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    hub.sls.push(Upload {
        logstore: store,
        bytes: body.len(),
        raw_size: headers.get("x-log-bodyrawsize").and_then(|v| v.to_str().ok()).map(str::to_string),
        time_ms: hub.shared.clock.now_ms(),
    });
    cors(StatusCode::OK.into_response())
}
