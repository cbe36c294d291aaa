//! Admin routes of the call engine and the simulated PSTN (docs/admin-api.md, docs/pstn.md): each
//! parses its input, sends a typed request to the calls driver ([`crate::requests`]) and shapes
//! the reply.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emu_pstn::{Behavior, PstnError};
use serde::Deserialize;
use serde_json::{Value, json};

use emu_http::ApiError;

use emu_calls::driver::{DriverHandle, DriverStopped};
use emu_calls::requests::{CallbacksChange, CallsError, PhoneAction, Request};

use super::parse;

pub fn router(driver: DriverHandle) -> Router {
    Router::new()
        .route("/admin/calls", get(calls))
        .route("/admin/calls/{channel_id}", get(call))
        .route("/admin/cdrs", get(cdrs))
        .route("/admin/callbacks", get(get_callbacks).put(put_callbacks))
        .route("/admin/pstn/phones", get(phones))
        .route("/admin/pstn/phones/{number}", get(phone).put(set_phone).delete(clear_phone))
        .route("/admin/pstn/phones/{number}/{action}", post(phone_action))
        .route("/admin/pstn/calls", post(dial_in))
        .route("/admin/pstn/magic-numbers", get(magic))
        .with_state(driver)
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

async fn calls(State(d): State<DriverHandle>) -> Reply {
    let list = d.ask(Request::Calls).await.map_err(stopped)?;
    Ok(Json(json!({"calls": list})))
}

/// A call with its legs, codes, CDR and the full timeline of its events.
async fn call(State(d): State<DriverHandle>, Path(channel_id): Path<String>) -> Reply {
    let id = channel_id.clone();
    let found = d.ask(|reply| Request::Call { channel_id: id, reply }).await.map_err(stopped)?;
    found.map(Json).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no call {channel_id} (active or recent)")))
}

async fn cdrs(State(d): State<DriverHandle>) -> Reply {
    let list = d.ask(Request::Cdrs).await.map_err(stopped)?;
    Ok(Json(json!({"cdrs": list})))
}

async fn get_callbacks(State(d): State<DriverHandle>) -> Reply {
    let v = d.ask(Request::Callbacks).await.map_err(stopped)?;
    Ok(Json(json!({"callbacks": v})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbacksBody {
    tenant: Option<String>,
    /// `null` or "" clears, absent leaves as is.
    #[serde(default, with = "double_option")]
    outbound: Option<Option<String>>,
    #[serde(default, with = "double_option")]
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

/// `PUT /admin/callbacks`: set a tenant's callback URLs at run time.
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

async fn phones(State(d): State<DriverHandle>) -> Reply {
    let list = d.ask(Request::Phones).await.map_err(stopped)?;
    Ok(Json(json!({"phones": list})))
}

async fn phone(State(d): State<DriverHandle>, Path(number): Path<String>) -> Reply {
    Ok(view(d.ask(|reply| Request::Phone { number, reply }).await.map_err(stopped)?.map_err(pstn_error)?))
}

/// `PUT /admin/pstn/phones/{number}` with a behaviour.
async fn set_phone(State(d): State<DriverHandle>, Path(number): Path<String>, body: Bytes) -> Reply {
    let behavior: Behavior = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid behavior: {e}")))?;
    Ok(view(d.ask(|reply| Request::SetPhone { number, behavior, reply }).await.map_err(stopped)?.map_err(pstn_error)?))
}

async fn clear_phone(State(d): State<DriverHandle>, Path(number): Path<String>) -> Reply {
    let cleared = d.ask(|reply| Request::ClearPhone { number, reply }).await.map_err(stopped)?;
    Ok(Json(json!({"cleared": cleared})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Digits {
    digits: String,
}

/// `POST /admin/pstn/phones/{number}/{answer|reject|hangup|dtmf}`.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialIn {
    from: String,
    to: String,
}

/// `POST /admin/pstn/calls {"from","to"}`: a phone calls a bought number.
async fn dial_in(State(d): State<DriverHandle>, body: Bytes) -> Result<Response, ApiError> {
    let DialIn { from, to } = parse(&body)?;
    let channel_id = d.ask(|reply| Request::DialIn { from, to, reply }).await.map_err(stopped)?.map_err(calls_error)?;
    Ok((StatusCode::CREATED, Json(json!({"channelId": channel_id}))).into_response())
}

async fn magic() -> Json<Value> {
    Json(json!({"magicNumbers": emu_pstn::magic_numbers()}))
}
