//! Admin routes of virtual VoIP devices (docs/voip-devices.md): each parses its input, sends a
//! typed request to the calls driver and shapes the reply.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use emu_core::signalling::CalleeRequest;
use emu_http::ApiError;
use emu_voip::Behavior;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use emu_calls::driver::DriverHandle;
use emu_calls::requests::Request;
use emu_calls::virtual_devices::{DeviceAction, PlaceCall, PutDevice, VirtualDeviceInfo};

use super::calls::{calls_error, stopped};
use super::parse;
use crate::openapi::ErrorBody;

pub fn routes() -> OpenApiRouter<DriverHandle> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one, put, delete))
        .routes(routes!(action))
        .routes(routes!(place_call))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TenantQuery {
    /// A tenant's name (default: the first tenant; for the list, all tenants).
    #[param(example = "default")]
    tenant: Option<String>,
}

type Reply = Result<Response, ApiError>;

fn json(status: StatusCode, v: impl serde::Serialize) -> Response {
    (status, Json(serde_json::to_value(v).unwrap_or(Value::Null))).into_response()
}

#[derive(Serialize, ToSchema)]
pub struct VirtualDeviceList {
    devices: Vec<VirtualDeviceInfo>,
}

/// Virtual devices.
///
/// Every virtual VoIP device of one tenant, or of all.
#[utoipa::path(get, path = "/admin/voip/devices", tag = "voip", params(TenantQuery), responses(
    (status = 200, description = "the devices", body = VirtualDeviceList),
    (status = 400, description = "malformed query string", body = ErrorBody),
    (status = 404, description = "no tenant of that name", body = ErrorBody),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn list(State(d): State<DriverHandle>, Query(q): Query<TenantQuery>) -> Reply {
    let tenant = q.tenant;
    let list = d.ask(|reply| Request::VirtualDevices { tenant, reply }).await.map_err(stopped)?.map_err(calls_error)?;
    Ok(json(StatusCode::OK, json!({"devices": list})))
}

/// A virtual device.
///
/// Its behaviour, state, the call it is in, its recent calls and the server messages it received.
#[utoipa::path(get, path = "/admin/voip/devices/{rtcId}", tag = "voip",
    params(("rtcId" = String, Path, description = "the account's rtcId", example = "9000000000000001"), TenantQuery),
    responses(
        (status = 200, description = "the device", body = VirtualDeviceInfo),
        (status = 400, description = "malformed query string", body = ErrorBody),
        (status = 404, description = "no such virtual device, or no tenant of that name", body = ErrorBody),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn one(State(d): State<DriverHandle>, Path(rtc_id): Path<String>, Query(q): Query<TenantQuery>) -> Reply {
    let tenant = q.tenant;
    let device =
        d.ask(|reply| Request::VirtualDevice { tenant, rtc_id, reply }).await.map_err(stopped)?.map_err(calls_error)?;
    Ok(json(StatusCode::OK, device))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PutBody {
    /// Every field optional (docs/voip-devices.md#behaviours).
    #[serde(default)]
    #[schema(value_type = Option<Behavior>)]
    behavior: Option<Value>,
    /// Makes the account with this DeviceId when it does not exist.
    #[serde(default)]
    device_id: Option<String>,
}

/// Creates or changes a virtual device.
///
/// 201 when made, 200 when its behaviour changed. The account must exist, unless `deviceId` is
/// given: then an account with this rtcId and DeviceId is made. A real SDK device logged in to
/// the account is kicked, as a second login is. The body is optional.
#[utoipa::path(put, path = "/admin/voip/devices/{rtcId}", tag = "voip",
    params(("rtcId" = String, Path, description = "the account's rtcId", example = "9000000000000001"), TenantQuery),
    request_body(content = Option<PutBody>, description = "both fields optional; an empty body is the defaults"),
    responses(
        (status = 200, description = "changed", body = VirtualDeviceInfo),
        (status = 201, description = "made", body = VirtualDeviceInfo),
        (status = 400, description = "malformed body or query string, or a bad behaviour", body = ErrorBody),
        (status = 404, description = "no such account (and no deviceId), or no tenant of that name", body = ErrorBody),
        (status = 409, description = "the account has another DeviceId", body = ErrorBody),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn put(
    State(d): State<DriverHandle>,
    Path(rtc_id): Path<String>,
    Query(q): Query<TenantQuery>,
    body: Bytes,
) -> Reply {
    let b: PutBody = if body.iter().all(u8::is_ascii_whitespace) {
        PutBody { behavior: None, device_id: None }
    } else {
        parse(&body)?
    };
    let behavior = match b.behavior {
        Some(v) => Behavior::from_json(v).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?,
        None => Behavior::default(),
    };
    let put = PutDevice { tenant: q.tenant, rtc_id, device_id: b.device_id.filter(|d| !d.is_empty()), behavior };
    let (created, device) =
        d.ask(|reply| Request::PutVirtualDevice { put, reply }).await.map_err(stopped)?.map_err(calls_error)?;
    Ok(json(if created { StatusCode::CREATED } else { StatusCode::OK }, device))
}

/// Removes a virtual device.
///
/// It goes offline and is forgotten; a call it is in ends as for a device that went offline.
#[utoipa::path(delete, path = "/admin/voip/devices/{rtcId}", tag = "voip",
    params(("rtcId" = String, Path, description = "the account's rtcId", example = "9000000000000001"), TenantQuery),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "malformed query string", body = ErrorBody),
        (status = 404, description = "no such virtual device, or no tenant of that name", body = ErrorBody),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn delete(State(d): State<DriverHandle>, Path(rtc_id): Path<String>, Query(q): Query<TenantQuery>) -> Reply {
    let tenant = q.tenant;
    d.ask(|reply| Request::DeleteVirtualDevice { tenant, rtc_id, reply })
        .await
        .map_err(stopped)?
        .map_err(calls_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What a test can make a virtual device do.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Only described: the handler matches the path segment itself.
enum DeviceActionName {
    Answer,
    Reject,
    Hangup,
}

/// Makes a virtual device act.
///
/// `answer` answers a ringing device, `reject` declines its call, `hangup` leaves the call (for
/// its own unanswered call: `leaveChannel` + `cancelCall`; for a ringing device: declines).
/// Answers the device.
#[utoipa::path(post, path = "/admin/voip/devices/{rtcId}/{action}", tag = "voip",
    params(("rtcId" = String, Path, description = "the account's rtcId", example = "9000000000000001"), ("action" = inline(DeviceActionName), Path), TenantQuery),
    responses(
        (status = 200, description = "the device", body = VirtualDeviceInfo),
        (status = 400, description = "malformed query string", body = ErrorBody),
        (status = 404, description = "an unknown action, no such virtual device, or no tenant of that name", body = ErrorBody),
        (status = 409, description = "the device is not in a state for it (answer: not ringing)", body = ErrorBody),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn action(
    State(d): State<DriverHandle>,
    Path((rtc_id, action)): Path<(String, String)>,
    Query(q): Query<TenantQuery>,
) -> Reply {
    let action = match action.as_str() {
        "answer" => DeviceAction::Answer,
        "reject" => DeviceAction::Reject,
        "hangup" => DeviceAction::HangUp,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown virtual device action {other:?}: answer, reject or hangup"),
            ));
        }
    };
    let tenant = q.tenant;
    let device = d
        .ask(|reply| Request::VirtualDeviceAction { tenant, rtc_id, action, reply })
        .await
        .map_err(stopped)?
        .map_err(calls_error)?;
    Ok(json(StatusCode::OK, device))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CallBody {
    /// The calling virtual device's rtcId.
    #[schema(example = "9000000000000004")]
    from: String,
    /// The tenant's name (default: the first tenant).
    tenant: Option<String>,
    /// Callee rtcIds (or `phone`).
    #[schema(example = json!(["9000000000000001"]))]
    to: Option<Vec<String>>,
    /// A callee phone number (or `to`).
    phone: Option<String>,
    /// The display number (a bought number) for a PSTN callee.
    display: Option<String>,
    /// An own line's name, instead of a display number.
    line: Option<String>,
    channel_id: Option<String>,
    extend: Option<String>,
    #[serde(default)]
    need_record: bool,
    /// The native SDKs' cancel flag (docs/calls.md#several-callees-one-reject): 1, "1" or a
    /// `…WHEN_ALL…` name keep the others ringing after a reject.
    cancel_flag: Option<Value>,
}

/// Whether one reject ends the call, from a cancel flag as the SDKs send it.
fn cancel_on_reject(flag: Option<&Value>) -> bool {
    match flag {
        Some(Value::Number(n)) => n.as_i64() != Some(1),
        Some(Value::String(s)) => !(s == "1" || s.contains("WHEN_ALL")),
        Some(Value::Bool(keep_ringing)) => !keep_ringing,
        _ => true,
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualCallPlaced {
    /// The call's channelId.
    channel_id: String,
}

/// A virtual device places a call.
///
/// To accounts (`to`) or a phone (`phone`, with a `display` number or an own `line`).
#[utoipa::path(post, path = "/admin/voip/calls", tag = "voip", request_body = CallBody, responses(
    (status = 201, description = "placed", body = VirtualCallPlaced),
    (status = 400, description = "malformed body, neither or both of `to` and `phone`, or a call the device cannot place", body = ErrorBody),
    (status = 404, description = "no such virtual device, or no tenant of that name", body = ErrorBody),
    (status = 409, description = "the device is busy or offline, or the channelId is in use", body = ErrorBody),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn place_call(State(d): State<DriverHandle>, body: Bytes) -> Reply {
    let b: CallBody = parse(&body)?;
    let callee = match (b.to, b.phone) {
        (Some(to), None) => CalleeRequest::Devices(to),
        (None, Some(number)) => {
            CalleeRequest::Phone { number, show: b.display.unwrap_or_default(), line: b.line.unwrap_or_default() }
        }
        _ => return Err(ApiError(StatusCode::BAD_REQUEST, "give either \"to\" (rtcIds) or \"phone\"".into())),
    };
    let call = PlaceCall {
        tenant: b.tenant,
        from: b.from,
        callee,
        channel_id: b.channel_id,
        extend: b.extend,
        need_record: b.need_record,
        cancel_on_reject: cancel_on_reject(b.cancel_flag.as_ref()),
    };
    let channel_id =
        d.ask(|reply| Request::VirtualCall { call, reply }).await.map_err(stopped)?.map_err(calls_error)?;
    Ok(json(StatusCode::CREATED, VirtualCallPlaced { channel_id }))
}
