//! Admin routes of the MQTT gateway: `GET /admin/devices[?tenant=NAME]` (every registered
//! device, SDK or virtual, and the count of network connections) and `GET /admin/sls`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use emu_gateway::Hub;
use serde_json::json;

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new().route("/admin/devices", get(devices)).route("/admin/sls", get(sls_uploads)).with_state(hub)
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

async fn sls_uploads(State(hub): State<Arc<Hub>>) -> Response {
    Json(json!({"uploads": hub.sls.uploads()})).into_response()
}
