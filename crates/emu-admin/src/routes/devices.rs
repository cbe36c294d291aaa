//! Admin routes of the MQTT gateway: `GET /admin/devices[?tenant=NAME]` (every registered
//! device, SDK or virtual, and the count of network connections), `POST
//! /admin/devices/{rtcId}/kick[?tenant=NAME]`, `POST /admin/messages` (a custom message as if
//! from an account) and `GET /admin/sls`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use emu_gateway::hub::DeviceInfo;
use emu_gateway::{CustomMessage, CustomMessageError, Hub, KickError};
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{parse, tenant_or_first};
use crate::ApiError;
use crate::openapi::ErrorBody;

pub fn routes() -> OpenApiRouter<Arc<Hub>> {
    OpenApiRouter::new()
        .routes(routes!(devices))
        .routes(routes!(kick))
        .routes(routes!(custom_message))
        .routes(routes!(sls_uploads))
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeviceFilter {
    /// A tenant's name.
    tenant: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    devices: Vec<DeviceInfo>,
    /// Open network connections (virtual devices have none).
    connections: usize,
}

/// Registered devices.
///
/// Every device registered on the MQTT gateway, SDK or virtual, of one tenant or all, and the
/// count of open network connections.
#[utoipa::path(get, path = "/admin/devices", tag = "devices", params(DeviceFilter), responses(
    (status = 200, description = "the devices", body = DeviceList),
    (status = 400, description = "malformed query string", body = ErrorBody),
))]
async fn devices(State(hub): State<Arc<Hub>>, Query(q): Query<DeviceFilter>) -> Response {
    let tenant = q.tenant;
    let devices = hub.devices().into_iter().filter(|d| tenant.as_ref().is_none_or(|t| &d.tenant == t)).collect();
    Json(DeviceList { devices, connections: hub.connection_count() }).into_response()
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SendMessage {
    /// The tenant's name (default: the first tenant).
    tenant: Option<String>,
    /// The sending account's rtcId.
    #[schema(example = "9000000000000001")]
    from: String,
    /// The receiving account's rtcId.
    #[schema(example = "9000000000000002")]
    to: String,
    /// 1 to 1024 characters.
    #[schema(min_length = 1, max_length = 1024, example = "hello")]
    content: String,
    /// Passed through to the receiver.
    #[serde(default)]
    sequence: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageSent {
    request_id: String,
}

/// Sends a custom message.
///
/// Pushes a custom message to the account `to` as if the account `from` had sent it
/// (docs/protocol.md#custom-messages). 202: the push is out; its delivery (the target's ACK)
/// shows as `message.delivered` or `message.failed` in the event log.
#[utoipa::path(post, path = "/admin/messages", tag = "devices", request_body = SendMessage, responses(
    (status = 202, description = "pushed", body = MessageSent),
    (status = 400, description = "malformed body, or content empty or over 1024 characters (2000120)", body = ErrorBody),
    (status = 404, description = "`to` is not an account of the tenant, or no tenant of that name", body = ErrorBody),
    (status = 409, description = "`to` is offline", body = ErrorBody),
))]
async fn custom_message(State(hub): State<Arc<Hub>>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let b: SendMessage = parse(&body)?;
    let tenant = tenant_or_first(&hub.shared.tenants, b.tenant.as_deref())?;
    let message = CustomMessage { tenant, source: b.from, target: b.to, content: b.content, sequence: b.sequence };
    match hub.send_custom_message(message) {
        Ok(request_id) => Ok((StatusCode::ACCEPTED, Json(MessageSent { request_id })).into_response()),
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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Kicked {
    /// The rtcId whose device was logged out.
    kicked: String,
}

/// Logs an SDK device out.
///
/// The way the platform does when its account logs in elsewhere: `cs_quit` (the SDK reports
/// 3110000), then its connection closes.
#[utoipa::path(post, path = "/admin/devices/{rtcId}/kick", tag = "devices",
    params(("rtcId" = String, Path, description = "the account's rtcId", example = "9000000000000001"), DeviceFilter),
    responses(
        (status = 200, description = "logged out", body = Kicked),
        (status = 400, description = "malformed query string", body = ErrorBody),
        (status = 404, description = "not registered, or no tenant of that name", body = ErrorBody),
        (status = 409, description = "offline, or a virtual device (use /admin/voip/devices)", body = ErrorBody),
    ))]
async fn kick(
    State(hub): State<Arc<Hub>>,
    Path(rtc_id): Path<String>,
    Query(q): Query<DeviceFilter>,
) -> Result<Response, ApiError> {
    let tenant = tenant_or_first(&hub.shared.tenants, q.tenant.as_deref())?;
    match hub.kick_device(tenant, &rtc_id) {
        Ok(()) => Ok(Json(Kicked { kicked: rtc_id }).into_response()),
        Err(e @ KickError::NotRegistered) => Err(ApiError::not_found(e.to_string())),
        Err(e) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
    }
}

#[derive(Serialize, ToSchema)]
pub struct SlsUploads {
    uploads: Vec<emu_gateway::sls::Upload>,
}

/// SLS uploads.
///
/// The last 200 log uploads the Web SDK made to the local SLS sink.
#[utoipa::path(get, path = "/admin/sls", tag = "devices", responses((status = 200, description = "the uploads", body = SlsUploads)))]
async fn sls_uploads(State(hub): State<Arc<Hub>>) -> Response {
    Json(SlsUploads { uploads: hub.sls.uploads() }).into_response()
}
