//! The HTTP plumbing the emulator's HTTP listeners share: one serve loop with header-read and
//! idle timeouts, plain or TLS ([`listener`]), the self-signed or configured certificates
//! ([`tls`]), and small request helpers. No product logic lives here.

pub mod listener;
pub mod tls;

pub use listener::{ServeOptions, serve};

use axum::http::HeaderMap;

/// Marks a request that came in over TLS (set by [`listener::serve`]).
#[derive(Debug, Clone, Copy)]
pub struct ViaTls;

/// A header's value as text; absent or not visible ASCII is `None`.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
