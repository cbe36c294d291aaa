//! One error shape on the admin listener: every 4xx/5xx that is not JSON already (axum's own
//! 404/405/413 and extractor rejections are empty or plain text) becomes `{"error": "..."}`,
//! keeping its status and headers (`Allow`, `WWW-Authenticate`).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// Longest plain-text error body carried over into the JSON message.
const MAX_MESSAGE_BYTES: usize = 4096;

pub async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(res.headers()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await.ok();
    let text = text.map(|b| String::from_utf8_lossy(&b).trim().to_string()).filter(|t| !t.is_empty());
    let message = text.unwrap_or_else(|| default_message(status, &parts.headers));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::json!({ "error": message }).to_string();
    Response::from_parts(parts, Body::from(body))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

fn default_message(status: StatusCode, headers: &HeaderMap) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or_default();
            format!("method not allowed here (allowed: {allow})")
        }
        StatusCode::NOT_FOUND => "no such admin endpoint; see docs/admin-api.md".into(),
        _ => status.canonical_reason().unwrap_or("error").to_ascii_lowercase(),
    }
}
