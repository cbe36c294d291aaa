//! The admin routes by area, and the input parsing they share: a malformed body or query string
//! is a JSON 400 (axum's own rejections are plain text).

use axum::http::StatusCode;

use crate::ApiError;

pub mod calls;
pub mod console;
pub mod core;
pub mod devices;
pub mod media;
pub mod metrics;
pub mod mns;
pub mod voip;

/// Parses a JSON body.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// The tenant called `name`; an unknown name is a 404, not an empty answer.
pub(crate) fn tenant_named(tenants: &emu_core::tenants::Tenants, name: &str) -> Result<emu_core::TenantId, ApiError> {
    tenants.by_name(name).map(|t| t.id).ok_or_else(|| ApiError::not_found(format!("no tenant named {name:?}")))
}

/// `?tenant=NAME`, or the first tenant when it is not given.
pub(crate) fn tenant_or_first(
    tenants: &emu_core::tenants::Tenants,
    name: Option<&str>,
) -> Result<emu_core::TenantId, ApiError> {
    name.map_or(Ok(tenants.all()[0].id), |n| tenant_named(tenants, n))
}

/// Parses the query string.
pub(crate) fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    let q = uri.query().unwrap_or_default();
    serde_urlencoded::from_str(q).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid query string: {e}")))
}
