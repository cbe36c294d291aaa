//! Admin routes of virtual VoIP devices (docs/voip-devices.md): each parses its input, sends a
//! typed request to the calls driver and shapes the reply.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emu_core::signalling::CalleeRequest;
use emu_http::ApiError;
use emu_voip::Behavior;
use serde::Deserialize;
use serde_json::{Value, json};

use emu_calls::driver::DriverHandle;
use emu_calls::requests::Request;
use emu_calls::virtual_devices::{DeviceAction, PlaceCall, PutDevice};

use super::calls::{calls_error, stopped};
use super::parse;

pub fn router(driver: DriverHandle) -> Router {
    Router::new()
        .route("/admin/voip/devices", get(list))
        .route("/admin/voip/devices/{rtc_id}", get(one).put(put).delete(delete))
        .route("/admin/voip/devices/{rtc_id}/{action}", post(action))
        .route("/admin/voip/calls", post(place_call))
        .with_state(driver)
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
}

type Reply = Result<Response, ApiError>;

fn json(status: StatusCode, v: impl serde::Serialize) -> Response {
    (status, Json(serde_json::to_value(v).unwrap_or(Value::Null))).into_response()
}

async fn list(State(d): State<DriverHandle>, Query(q): Query<TenantQuery>) -> Reply {
    let tenant = q.tenant;
    let list = d.ask(|reply| Request::VirtualDevices { tenant, reply }).await.map_err(stopped)?.map_err(calls_error)?;
    Ok(json(StatusCode::OK, json!({"devices": list})))
}

async fn one(State(d): State<DriverHandle>, Path(rtc_id): Path<String>, Query(q): Query<TenantQuery>) -> Reply {
    let tenant = q.tenant;
    let device =
        d.ask(|reply| Request::VirtualDevice { tenant, rtc_id, reply }).await.map_err(stopped)?.map_err(calls_error)?;
    Ok(json(StatusCode::OK, device))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PutBody {
    #[serde(default)]
    behavior: Option<Value>,
    #[serde(default)]
    device_id: Option<String>,
}

/// `PUT /admin/voip/devices/{rtcId}`: 201 when made, 200 when changed.
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

async fn delete(State(d): State<DriverHandle>, Path(rtc_id): Path<String>, Query(q): Query<TenantQuery>) -> Reply {
    let tenant = q.tenant;
    d.ask(|reply| Request::DeleteVirtualDevice { tenant, rtc_id, reply })
        .await
        .map_err(stopped)?
        .map_err(calls_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /admin/voip/devices/{rtcId}/{answer|reject|hangup}`.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CallBody {
    from: String,
    tenant: Option<String>,
    to: Option<Vec<String>>,
    phone: Option<String>,
    /// The display number (a bought number) for a PSTN callee.
    display: Option<String>,
    /// An own line's name, instead of a display number.
    line: Option<String>,
    channel_id: Option<String>,
    extend: Option<String>,
    #[serde(default)]
    need_record: bool,
    /// The native SDKs' cancel flag (docs/calls.md#several-callees-one-reject).
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

/// `POST /admin/voip/calls`: a virtual device calls accounts or a phone. 201 `{"channelId"}`.
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
    Ok(json(StatusCode::CREATED, json!({"channelId": channel_id})))
}
