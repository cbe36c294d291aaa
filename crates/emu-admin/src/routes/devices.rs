//! Admin routes of the MQTT gateway: `GET /admin/devices[?tenant=NAME]` (every registered
//! device, SDK or virtual, and the count of network connections), `POST
//! /admin/devices/{rtcId}/kick[?tenant=NAME]`, `POST /admin/messages` (a custom message as if
//! from an account) and `GET /admin/sls`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emu_gateway::{CustomMessage, CustomMessageError, Hub, KickError};
use serde_json::{Value, json};

use super::{parse, tenant_or_first};
use crate::ApiError;

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/admin/devices", get(devices))
        .route("/admin/devices/{rtc_id}/kick", post(kick))
        .route("/admin/messages", post(custom_message))
        .route("/admin/sls", get(sls_uploads))
        .with_state(hub)
}

#[derive(serde::Deserialize)]
struct DeviceFilter {
    tenant: Option<String>,
}

async fn devices(State(hub): State<Arc<Hub>>, Query(q): Query<DeviceFilter>) -> Response {
    let tenant = q.tenant;
    let list: Vec<_> = hub.devices().into_iter().filter(|d| tenant.as_ref().is_none_or(|t| &d.tenant == t)).collect();
    Json(json!({"devices": list, "connections": hub.connection_count()})).into_response()
}

/// Logs the device out the way the platform does when its account logs in elsewhere: `cs_quit`
/// (the SDK reports 3110000), then the connection closes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SendMessage {
    tenant: Option<String>,
    from: String,
    to: String,
    content: String,
    #[serde(default)]
    sequence: Value,
}

/// `POST /admin/messages {"from","to","content"[,"sequence","tenant"]}`: pushes a custom message
/// to `to` as if the account `from` had sent it. 202 `{"requestId"}`: the push is out, and its
/// delivery (the target's ACK) shows as `message.delivered` or `message.failed` in the event log.
async fn custom_message(State(hub): State<Arc<Hub>>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let b: SendMessage = parse(&body)?;
    let tenant = tenant_or_first(&hub.shared.tenants, b.tenant.as_deref())?;
    let message = CustomMessage { tenant, source: b.from, target: b.to, content: b.content, sequence: b.sequence };
    match hub.send_custom_message(message) {
        Ok(request_id) => Ok((StatusCode::ACCEPTED, Json(json!({"requestId": request_id}))).into_response()),
        Err(e) => {
            let status = match e {
                CustomMessageError::UnknownTarget(_) => StatusCode::NOT_FOUND,
                CustomMessageError::Offline(_) => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            Err(ApiError(status, format!("{e} ({})", e.code())))
        }
    }
}

async fn kick(
    State(hub): State<Arc<Hub>>,
    Path(rtc_id): Path<String>,
    Query(q): Query<DeviceFilter>,
) -> Result<Response, ApiError> {
    let tenant = tenant_or_first(&hub.shared.tenants, q.tenant.as_deref())?;
    match hub.kick_device(tenant, &rtc_id) {
        Ok(()) => Ok(Json(json!({"kicked": rtc_id})).into_response()),
        Err(e @ KickError::NotRegistered) => Err(ApiError::not_found(e.to_string())),
        Err(e) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
    }
}

async fn sls_uploads(State(hub): State<Arc<Hub>>) -> Response {
    Json(json!({"uploads": hub.sls.uploads()})).into_response()
}
