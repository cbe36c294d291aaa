//! Admin routes of the call engine and the simulated PSTN (docs/admin-api.md, docs/pstn.md): each
//! runs as a job on the driver's task.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emu_core::TenantId;
use emu_core::events::EventFilter;
use emu_pstn::{Behavior, PstnError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::driver::{Driver, DriverHandle, DriverStopped};

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

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<PstnError> for ApiError {
    fn from(e: PstnError) -> Self {
        ApiError(StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST), e.to_string())
    }
}

fn stopped(e: DriverStopped) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

type Reply = Result<Json<Value>, ApiError>;

fn summary(c: &emu_core::engine::call::Call, d: &Driver) -> Value {
    json!({
        "channelId": c.channel_id,
        "tenant": d.switch.tenant_name(c.tenant),
        "alicomRtcType": c.rtc_type,
        "state": c.state,
        "caller": c.caller_label(),
        "callees": c.legs.iter().map(|l| l.target.label()).collect::<Vec<_>>(),
        "createdMs": c.created_ms,
        "answeredMs": c.answered_ms,
        "endedMs": c.ended_ms,
        "endReason": c.end_reason,
        "causeCode": c.cause_code,
    })
}

async fn calls(State(d): State<DriverHandle>) -> Reply {
    let list = d
        .with(|d| d.switch.engine.calls().into_iter().map(|c| summary(c, d)).collect::<Vec<_>>())
        .await
        .map_err(stopped)?;
    Ok(Json(json!({"calls": list})))
}

/// A call with its legs, codes, CDR and the full timeline of its events.
async fn call(State(d): State<DriverHandle>, Path(channel_id): Path<String>) -> Reply {
    let id = channel_id.clone();
    let found = d
        .with(move |d| {
            d.switch.engine.call(&id).map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                v["tenant"] = d.shared.tenants.get(c.tenant).name.clone().into();
                let timeline =
                    d.shared.events.query(&EventFilter { channel_id: Some(id.clone()), ..Default::default() });
                v["timeline"] = serde_json::to_value(timeline).unwrap_or(Value::Null);
                v["media"] = d.media.stats(&id);
                v
            })
        })
        .await
        .map_err(stopped)?;
    found.map(Json).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no call {channel_id} (active or recent)")))
}

async fn cdrs(State(d): State<DriverHandle>) -> Reply {
    let list = d.with(|d| d.switch.cdrs().cloned().collect::<Vec<_>>()).await.map_err(stopped)?;
    Ok(Json(json!({"cdrs": list})))
}

fn tenant_of(d: &Driver, name: Option<&str>) -> Result<TenantId, ApiError> {
    match name {
        None => Ok(TenantId(0)),
        Some(n) => d
            .shared
            .tenants
            .by_name(n)
            .map(|t| t.id)
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no tenant named {n:?}"))),
    }
}

fn callbacks_view(d: &Driver, t: TenantId) -> Value {
    let r = d.switch.engine.routing(t).cloned().unwrap_or_default();
    let numbers: serde_json::Map<String, Value> =
        r.numbers.iter().map(|(n, url)| (n.clone(), url.clone().map(Value::from).unwrap_or(Value::Null))).collect();
    json!({"tenant": r.name, "outbound": r.outbound_callback, "inbound": r.inbound_callback, "numbers": numbers})
}

async fn get_callbacks(State(d): State<DriverHandle>) -> Reply {
    let v = d
        .with(|d| d.shared.tenants.all().iter().map(|t| callbacks_view(d, t.id)).collect::<Vec<_>>())
        .await
        .map_err(stopped)?;
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
    d.with(move |d| {
        let t = tenant_of(d, b.tenant.as_deref())?;
        for number in b.numbers.keys() {
            if !d.switch.engine.routing(t).is_some_and(|r| r.numbers.contains_key(number)) {
                return Err(ApiError(StatusCode::NOT_FOUND, format!("{number} is not a number of this tenant")));
            }
        }
        d.switch.engine.set_callbacks(t, b.outbound, b.inbound);
        for (number, url) in b.numbers {
            d.switch.engine.set_number_callback(t, &number, url);
        }
        Ok(Json(callbacks_view(d, t)))
    })
    .await
    .map_err(stopped)?
}

async fn phones(State(d): State<DriverHandle>) -> Reply {
    let list = d.with(|d| d.switch.pstn.phones()).await.map_err(stopped)?;
    Ok(Json(json!({"phones": list})))
}

async fn phone(State(d): State<DriverHandle>, Path(number): Path<String>) -> Reply {
    let v = d.with(move |d| d.switch.pstn.phone(&number)).await.map_err(stopped)??;
    Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null)))
}

/// `PUT /admin/pstn/phones/{number}` with a behaviour.
async fn set_phone(State(d): State<DriverHandle>, Path(number): Path<String>, body: Bytes) -> Reply {
    let behavior: Behavior = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid behavior: {e}")))?;
    let v = d
        .with(move |d| {
            d.switch.pstn.set_behavior(&number, behavior)?;
            d.switch.pstn.phone(&number)
        })
        .await
        .map_err(stopped)??;
    Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null)))
}

async fn clear_phone(State(d): State<DriverHandle>, Path(number): Path<String>) -> Reply {
    let cleared = d.with(move |d| d.switch.pstn.clear_behavior(&number)).await.map_err(stopped)?;
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
    let digits = if action == "dtmf" { Some(parse::<Digits>(&body)?.digits) } else { None };
    if !matches!(action.as_str(), "answer" | "reject" | "hangup" | "dtmf") {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown phone action {action:?}: answer, reject, hangup or dtmf"),
        ));
    }
    let v = d
        .with(move |d| -> Result<Value, ApiError> {
            let now = d.now();
            let events = match action.as_str() {
                "answer" => d.switch.pstn.answer(&number, now)?,
                "reject" => d.switch.pstn.reject(&number, now)?,
                "hangup" => d.switch.pstn.hangup(&number, now)?,
                _ => d.switch.pstn.press(&number, digits.as_deref().unwrap_or_default(), now)?,
            };
            let effects = d.switch.phone_events(events, now);
            d.apply(effects);
            d.fire_due();
            Ok(serde_json::to_value(d.switch.pstn.phone(&number)?).unwrap_or(Value::Null))
        })
        .await
        .map_err(stopped)??;
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialIn {
    from: String,
    to: String,
}

/// `POST /admin/pstn/calls {"from","to"}`: a phone calls a bought number.
async fn dial_in(State(d): State<DriverHandle>, body: Bytes) -> Result<Response, ApiError> {
    let b: DialIn = parse(&body)?;
    let v = d
        .with(move |d| -> Result<Value, ApiError> {
            emu_pstn::validate_number(&b.from)?;
            d.switch.pstn.can_originate(&b.from)?;
            let now = d.now();
            let (channel_id, effects) =
                d.switch.dial_in(&b.from, &b.to, now).map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
            d.apply(effects);
            Ok(json!({"channelId": channel_id}))
        })
        .await
        .map_err(stopped)??;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn magic() -> Json<Value> {
    Json(json!({"magicNumbers": emu_pstn::magic_numbers()}))
}
