//! Admin routes of the MQTT gateway: `GET /admin/devices[?tenant=NAME]` (every registered
//! device, SDK or virtual, and the count of network connections), `POST
//! /admin/devices/{rtcId}/kick[?tenant=NAME]` and `GET /admin/sls`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emu_gateway::{Hub, KickError};
use serde_json::json;

use crate::ApiError;

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/admin/devices", get(devices))
        .route("/admin/devices/{rtc_id}/kick", post(kick))
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
async fn kick(
    State(hub): State<Arc<Hub>>,
    Path(rtc_id): Path<String>,
    Query(q): Query<DeviceFilter>,
) -> Result<Response, ApiError> {
    let tenants = &hub.shared.tenants;
    let tenant = match q.tenant {
        Some(name) => tenants
            .by_name(&name)
            .map(|t| t.id)
            .ok_or_else(|| ApiError::not_found(format!("no tenant named {name:?}")))?,
        None => tenants.all()[0].id,
    };
    match hub.kick_device(tenant, &rtc_id) {
        Ok(()) => Ok(Json(json!({"kicked": rtc_id})).into_response()),
        Err(e @ KickError::NotRegistered) => Err(ApiError::not_found(e.to_string())),
        Err(e) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
    }
}

async fn sls_uploads(State(hub): State<Arc<Hub>>) -> Response {
    Json(json!({"uploads": hub.sls.uploads()})).into_response()
}
