//! Admin routes of the call engine and the simulated PSTN (docs/admin-api.md, docs/pstn.md): each
//! parses its input, sends a typed request to the calls driver ([`crate::requests`]) and shapes
//! the reply.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use emu_pstn::{Behavior, MagicNumber, PhoneView, PstnError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use emu_http::ApiError;

use emu_calls::driver::{DriverHandle, DriverStopped};
use emu_calls::requests::{CallbacksChange, CallsError, PhoneAction, Request};

use super::parse;
use crate::openapi::ErrorBody;
use crate::schemas::{CallSummary, CallView, Callbacks, PhoneBehaviorInput};

pub fn routes() -> OpenApiRouter<DriverHandle> {
    OpenApiRouter::new()
        .routes(routes!(calls))
        .routes(routes!(call))
        .routes(routes!(cdrs))
        .routes(routes!(get_callbacks, put_callbacks))
        .routes(routes!(phones))
        .routes(routes!(phone, set_phone, clear_phone))
        .routes(routes!(phone_action))
        .routes(routes!(dial_in))
        .routes(routes!(magic))
}

fn pstn_error(e: PstnError) -> ApiError {
    ApiError(StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST), e.to_string())
}

pub(super) fn calls_error(e: CallsError) -> ApiError {
    match e {
        CallsError::NotFound(why) => ApiError::not_found(why),
        CallsError::Pstn(e) => pstn_error(e),
        CallsError::Voip(e) => voip_error(e),
        CallsError::Conflict(why) => ApiError(StatusCode::CONFLICT, why),
        CallsError::Config(why) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, why),
    }
}

fn voip_error(e: emu_voip::VoipError) -> ApiError {
    use emu_voip::VoipError;
    let status = match &e {
        VoipError::InvalidBehavior(_) | VoipError::InvalidCall(_) => StatusCode::BAD_REQUEST,
        VoipError::NotFound(_) => StatusCode::NOT_FOUND,
        VoipError::WrongState { .. } | VoipError::Offline(_) => StatusCode::CONFLICT,
    };
    ApiError(status, e.to_string())
}

pub(super) fn stopped(e: DriverStopped) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

type Reply = Result<Json<Value>, ApiError>;

fn view(v: impl serde::Serialize) -> Json<Value> {
    Json(serde_json::to_value(v).unwrap_or(Value::Null))
}

#[derive(Serialize, ToSchema)]
pub struct CallList {
    calls: Vec<CallSummary>,
}

/// Calls.
///
/// Active calls first, then recent ones (the newest `calls.recent_calls` ended calls).
#[utoipa::path(get, path = "/admin/calls", tag = "calls", responses(
    (status = 200, description = "the calls", body = CallList),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn calls(State(d): State<DriverHandle>) -> Reply {
    let list = d.ask(Request::Calls).await.map_err(stopped)?;
    Ok(Json(json!({"calls": list})))
}

/// A call.
///
/// With its legs (target, declared sequence and ringing position, state, times, outcome), codes,
/// warnings, CDR, per-leg media statistics and the timeline of its events.
#[utoipa::path(get, path = "/admin/calls/{channelId}", tag = "calls",
    params(("channelId" = String, Path, description = "the call's channelId", example = "m-1")),
    responses(
        (status = 200, description = "the call", body = CallView),
        (status = 404, description = "no such call, active or recent", body = ErrorBody),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn call(State(d): State<DriverHandle>, Path(channel_id): Path<String>) -> Reply {
    let id = channel_id.clone();
    let found = d.ask(|reply| Request::Call { channel_id: id, reply }).await.map_err(stopped)?;
    found.map(Json).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no call {channel_id} (active or recent)")))
}

#[derive(Serialize, ToSchema)]
pub struct CdrList {
    /// Each CDR as put into the tenant's ArtcCdrReport queue (docs/calls.md#cdrs).
    #[schema(value_type = Vec<Object>)]
    cdrs: Vec<Value>,
}

/// CDRs.
///
/// The last 1000 call detail records.
#[utoipa::path(get, path = "/admin/cdrs", tag = "calls", responses(
    (status = 200, description = "the CDRs", body = CdrList),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn cdrs(State(d): State<DriverHandle>) -> Reply {
    let list = d.ask(Request::Cdrs).await.map_err(stopped)?;
    Ok(Json(json!({"cdrs": list})))
}

#[derive(Serialize, ToSchema)]
pub struct CallbackList {
    callbacks: Vec<Callbacks>,
}

/// Callback URLs.
///
/// Every tenant's outbound and inbound callback URLs, and per bought number its own.
#[utoipa::path(get, path = "/admin/callbacks", tag = "calls", responses(
    (status = 200, description = "the URLs", body = CallbackList),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn get_callbacks(State(d): State<DriverHandle>) -> Reply {
    let v = d.ask(Request::Callbacks).await.map_err(stopped)?;
    Ok(Json(json!({"callbacks": v})))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CallbacksBody {
    /// The tenant's name (default: the first tenant).
    tenant: Option<String>,
    /// An `http://` or `https://` URL; `null` or "" clears, absent leaves as is.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    outbound: Option<Option<String>>,
    /// As `outbound`.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    inbound: Option<Option<String>>,
    /// Per bought number: its own inbound callback (`null` clears).
    #[serde(default)]
    numbers: std::collections::HashMap<String, Option<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

fn check_url(u: &Option<Option<String>>) -> Result<(), ApiError> {
    match u {
        Some(Some(url)) if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) => {
            Err(ApiError(StatusCode::BAD_REQUEST, format!("callback URL {url:?} must start with http:// or https://")))
        }
        _ => Ok(()),
    }
}

/// Sets callback URLs.
///
/// A tenant's callback URLs at run time, all or nothing: an unknown tenant or number changes
/// none. Answers the tenant's URLs now.
#[utoipa::path(put, path = "/admin/callbacks", tag = "calls", request_body = CallbacksBody, responses(
    (status = 200, description = "the tenant's URLs now", body = Callbacks),
    (status = 400, description = "malformed body, or a URL not starting with http:// or https://", body = ErrorBody),
    (status = 404, description = "no tenant of that name, or a number the tenant did not buy", body = ErrorBody),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn put_callbacks(State(d): State<DriverHandle>, body: Bytes) -> Reply {
    let b: CallbacksBody = parse(&body)?;
    check_url(&b.outbound)?;
    check_url(&b.inbound)?;
    for url in b.numbers.values() {
        check_url(&Some(url.clone()))?;
    }
    let change = CallbacksChange {
        tenant: b.tenant,
        outbound: b.outbound,
        inbound: b.inbound,
        numbers: b.numbers.into_iter().collect(),
    };
    Ok(Json(d.ask(|reply| Request::SetCallbacks { change, reply }).await.map_err(stopped)?.map_err(calls_error)?))
}

#[derive(Serialize, ToSchema)]
pub struct PhoneList {
    phones: Vec<PhoneView>,
}

/// Phones.
///
/// Every phone called or configured, by number.
#[utoipa::path(get, path = "/admin/pstn/phones", tag = "pstn", responses(
    (status = 200, description = "the phones", body = PhoneList),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn phones(State(d): State<DriverHandle>) -> Reply {
    let list = d.ask(Request::Phones).await.map_err(stopped)?;
    Ok(Json(json!({"phones": list})))
}

/// A phone.
///
/// Its state, behaviour (and where it comes from), the call it is in and its recent calls; any
/// well-formed number, called or not.
#[utoipa::path(get, path = "/admin/pstn/phones/{number}", tag = "pstn",
    params(("number" = String, Path, description = "the phone number: 3 to 20 digits, an optional leading +", pattern = r"^\+?[0-9]{3,20}$", example = "13800000001")),
    responses(
        (status = 200, description = "the phone", body = PhoneView),
        (status = 400, description = "not a valid number", body = ErrorBody),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn phone(State(d): State<DriverHandle>, Path(number): Path<String>) -> Reply {
    Ok(view(d.ask(|reply| Request::Phone { number, reply }).await.map_err(stopped)?.map_err(pstn_error)?))
}

/// Sets a phone's behaviour.
///
/// From its next call; every field is optional (docs/pstn.md#behaviours).
#[utoipa::path(put, path = "/admin/pstn/phones/{number}", tag = "pstn",
    params(("number" = String, Path, description = "the phone number: 3 to 20 digits, an optional leading +", pattern = r"^\+?[0-9]{3,20}$", example = "13800000001")),
    request_body = PhoneBehaviorInput,
    responses(
        (status = 200, description = "the phone", body = PhoneView),
        (status = 400, description = "not a valid number, or a bad behaviour", body = ErrorBody),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn set_phone(State(d): State<DriverHandle>, Path(number): Path<String>, body: Bytes) -> Reply {
    let behavior: Behavior = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid behavior: {e}")))?;
    Ok(view(d.ask(|reply| Request::SetPhone { number, behavior, reply }).await.map_err(stopped)?.map_err(pstn_error)?))
}

#[derive(Serialize, ToSchema)]
pub struct Cleared {
    /// Whether a behaviour had been set.
    cleared: bool,
}

/// Drops a phone's behaviour.
///
/// The magic number's or the default behaviour applies again.
#[utoipa::path(delete, path = "/admin/pstn/phones/{number}", tag = "pstn",
    params(("number" = String, Path, description = "the phone number: 3 to 20 digits, an optional leading +", pattern = r"^\+?[0-9]{3,20}$", example = "13800000001")),
    responses(
        (status = 200, description = "dropped", body = Cleared),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn clear_phone(State(d): State<DriverHandle>, Path(number): Path<String>) -> Reply {
    let cleared = d.ask(|reply| Request::ClearPhone { number, reply }).await.map_err(stopped)?;
    Ok(view(Cleared { cleared }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Digits {
    /// Keys to press: 0-9, *, #.
    #[schema(pattern = r"^[0-9*#]+$", example = "12#")]
    digits: String,
}

/// What a test can make a phone do.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Only described: the handler matches the path segment itself.
enum PhoneActionName {
    Answer,
    Reject,
    Hangup,
    Dtmf,
}

/// Makes a phone act.
///
/// `answer` picks up a ringing phone, `reject` declines it, `hangup` hangs up (rejects while
/// ringing), `dtmf` presses `{"digits"}` now, in order. Answers the phone.
#[utoipa::path(post, path = "/admin/pstn/phones/{number}/{action}", tag = "pstn",
    params(("number" = String, Path, description = "the phone number: 3 to 20 digits, an optional leading +", pattern = r"^\+?[0-9]{3,20}$", example = "13800000001"), ("action" = inline(PhoneActionName), Path)),
    request_body(content = Option<Digits>, description = "for `dtmf` only"),
    responses(
        (status = 200, description = "the phone", body = PhoneView),
        (status = 400, description = "not a valid number, bad digits or a malformed body", body = ErrorBody),
        (status = 404, description = "an unknown action", body = ErrorBody),
        (status = 409, description = "not ringing (answer, reject), idle (hangup), not in a call (dtmf)", body = ErrorBody),
        (status = 503, description = "the emulator is shutting down", body = ErrorBody),
    ))]
async fn phone_action(
    State(d): State<DriverHandle>,
    Path((number, action)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let action = match action.as_str() {
        "answer" => PhoneAction::Answer,
        "reject" => PhoneAction::Reject,
        "hangup" => PhoneAction::HangUp,
        "dtmf" => PhoneAction::Press(parse::<Digits>(&body)?.digits),
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown phone action {other:?}: answer, reject, hangup or dtmf"),
            ));
        }
    };
    Ok(view(d.ask(|reply| Request::PhoneAction { number, action, reply }).await.map_err(stopped)?.map_err(pstn_error)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DialIn {
    /// The calling phone's number.
    #[schema(pattern = r"^\+?[0-9]{3,20}$", example = "13800000001")]
    from: String,
    /// A number a tenant bought.
    #[schema(example = "02160000001")]
    to: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    /// The new call's channelId.
    channel_id: String,
}

/// A phone calls the platform.
///
/// The phone `from` calls the bought number `to`; the call is routed by the tenant's inbound
/// callback (docs/calls.md).
#[utoipa::path(post, path = "/admin/pstn/calls", tag = "pstn", request_body = DialIn, responses(
    (status = 201, description = "the call is placed", body = Placed),
    (status = 400, description = "the body is not `{\"from\",\"to\"}`, or `from` is not a valid number", body = ErrorBody),
    (status = 404, description = "`to` is not a number any tenant bought", body = ErrorBody),
    (status = 409, description = "the phone is in a call", body = ErrorBody),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn dial_in(State(d): State<DriverHandle>, body: Bytes) -> Result<Response, ApiError> {
    let DialIn { from, to } = parse(&body)?;
    let channel_id = d.ask(|reply| Request::DialIn { from, to, reply }).await.map_err(stopped)?.map_err(calls_error)?;
    Ok((StatusCode::CREATED, Json(Placed { channel_id })).into_response())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MagicNumbers {
    magic_numbers: Vec<MagicNumber>,
}

/// Magic numbers.
///
/// Numbers whose phones behave in a fixed way without any configuration.
#[utoipa::path(get, path = "/admin/pstn/magic-numbers", tag = "pstn", responses((status = 200, description = "the table", body = MagicNumbers)))]
async fn magic() -> Json<MagicNumbers> {
    Json(MagicNumbers { magic_numbers: emu_pstn::magic_numbers() })
}
