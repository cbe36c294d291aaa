//! The HTTP face of the SLS log sink on the mqtt_ws listener: CORS preflights and the SDK's
//! uploads, recorded in the hub's [`SlsSink`](crate::sls::SlsSink).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::hub::Hub;
use crate::sls::Upload;

fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    r
}

pub fn routes(hub: Arc<Hub>) -> Router {
    Router::new().route("/logstores/{store}/shards/lb", post(upload).options(preflight)).with_state(hub)
}

async fn preflight() -> Response {
    cors(StatusCode::OK.into_response())
}

async fn upload(State(hub): State<Arc<Hub>>, Path(store): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    hub.sls.push(Upload {
        logstore: store,
        bytes: body.len(),
        raw_size: headers.get("x-log-bodyrawsize").and_then(|v| v.to_str().ok()).map(str::to_string),
        time_ms: hub.shared.clock.now_ms(),
    });
    cors(StatusCode::OK.into_response())
}
