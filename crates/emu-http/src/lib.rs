//! The HTTP plumbing the emulator's HTTP listeners share: one serve loop with header-read and
//! idle timeouts, plain or TLS ([`listener`]), the self-signed or configured certificates
//! ([`tls`]), and small request helpers. No product logic lives here.

pub mod accept;
pub mod listener;
pub mod tls;

pub use accept::Acceptor;
pub use listener::{ServeOptions, serve};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// Marks a request that came in over TLS (set by [`listener::serve`]).
#[derive(Debug, Clone, Copy)]
pub struct ViaTls;

/// The admin API's one error shape: `{"error": "…"}` with its status (docs/admin-api.md). Every
/// admin route answers its errors with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

/// A header's value as text; absent or not visible ASCII is `None`.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
