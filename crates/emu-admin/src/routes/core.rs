//! The admin API's own routes: health, reset, accounts, tenants, access-key faults, STS, the
//! POP request log, problems, the clock, the configuration and the event log.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use emu_core::lifecycle::AdvanceError;
use emu_core::tenants::AccountState;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{parse, query};
use crate::{Admin, ApiError, SeesSecrets};

/// Health, reset, accounts, tenants, access-key faults, STS, the request log, problems, the
/// clock, the configuration and the event log.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/admin/reset", post(reset))
        .route("/admin/accounts", get(accounts))
        .route("/admin/tenants", get(tenants))
        .route("/admin/tenants/{name}/state", put(set_tenant_state))
        .route("/admin/access-keys/{id}/fault", put(set_key_fault))
        .route("/admin/sts", post(issue_sts))
        .route("/admin/requests", get(requests))
        .route("/admin/problems", get(problems))
        .route("/admin/clock", get(clock))
        .route("/admin/clock/advance", post(advance_clock))
        .route("/admin/config", get(config))
        .route("/admin/events", get(events))
        .route("/admin/events/stream", get(event_stream))
        .with_state(admin)
}

/// `/health` alone, for the public listeners (pop, mqtt_ws): never with secrets.
pub fn health_router(admin: Arc<Admin>) -> Router {
    Router::new().route("/health", get(public_health)).with_state(admin)
}

type Reply = Result<Response, ApiError>;

/// The admin listener's `/health`: the secrets only for callers that may see them ([`crate::secure`]).
async fn health(State(a): State<Arc<Admin>>, sees: Option<axum::Extension<SeesSecrets>>) -> Response {
    health_reply(&a, sees.is_some())
}

async fn public_health(State(a): State<Arc<Admin>>) -> Response {
    health_reply(&a, false)
}

/// Readiness, version, clock and endpoints; `access_key_secret` only `with_secrets`.
fn health_reply(a: &Admin, with_secrets: bool) -> Response {
    if !a.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "starting"}))).into_response();
    }
    let now = a.shared.clock.now_ms();
    let mut endpoints = a.endpoints.read().clone();
    if !with_secrets && let Some(e) = endpoints.as_object_mut() {
        e.remove("access_key_secret");
    }
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "clock": {"mode": a.shared.clock.mode(), "nowMs": now},
        "uptimeMs": now.saturating_sub(a.started_ms),
        "endpoints": endpoints,
    }))
    .into_response()
}

async fn reset(State(a): State<Arc<Admin>>) -> Response {
    a.reset();
    Json(json!({"reset": true})).into_response()
}

#[derive(Deserialize)]
struct TenantFilter {
    tenant: Option<String>,
}

/// Resolves `?tenant=name`; unknown names are an error, not an empty list.
fn tenant_filter(a: &Admin, f: &TenantFilter) -> Result<Option<emu_core::TenantId>, ApiError> {
    f.tenant.as_ref().map(|name| tenant_id(a, name)).transpose()
}

fn tenant_id(a: &Admin, name: &str) -> Result<emu_core::TenantId, ApiError> {
    super::tenant_named(&a.shared.tenants, name)
}

async fn accounts(State(a): State<Arc<Admin>>, uri: Uri) -> Reply {
    let tenant = tenant_filter(&a, &query(&uri)?)?;
    let list: Vec<Value> = a
        .shared
        .directory
        .accounts(tenant)
        .into_iter()
        .map(|acc| {
            json!({
                "tenant": a.shared.tenants.get(acc.tenant).name,
                "rtcId": acc.rtc_id,
                "deviceId": acc.device_id,
                "createdMs": acc.created_ms,
                "currentDeviceId": a.shared.directory.current_device(acc.tenant, &acc.rtc_id),
            })
        })
        .collect();
    Ok(Json(json!({"accounts": list})).into_response())
}

async fn tenants(State(a): State<Arc<Admin>>) -> Response {
    let list: Vec<Value> = a
        .shared
        .tenants
        .all()
        .iter()
        .map(|t| {
            let keys: Vec<Value> = a
                .shared
                .tenants
                .keys_of(t.id)
                .into_iter()
                .map(|(id, secret, fault)| json!({"id": id, "secret": secret, "fault": fault}))
                .collect();
            // Bought numbers (callable with POST /admin/pstn/calls) and own lines, from the config.
            let conf = a.shared.config.tenants.iter().find(|c| c.name == t.name);
            let numbers: Vec<&str> =
                conf.map(|c| c.numbers.iter().map(|n| n.number.as_str()).collect()).unwrap_or_default();
            let self_lines: &[String] = conf.map(|c| c.self_lines.as_slice()).unwrap_or_default();
            json!({
                "name": t.name,
                "numbers": numbers,
                "selfLines": self_lines,
                "uid": t.uid,
                "state": t.state(),
                "accountLimit": t.account_limit,
                "accounts": a.shared.directory.accounts(Some(t.id)).len(),
                "accessKeys": keys,
            })
        })
        .collect();
    Json(json!({"tenants": list})).into_response()
}

#[derive(Deserialize)]
struct StateBody {
    state: AccountState,
}

async fn set_tenant_state(State(a): State<Arc<Admin>>, Path(name): Path<String>, body: Bytes) -> Reply {
    let body: StateBody = parse(&body)?;
    a.shared.tenants.set_state(tenant_id(&a, &name)?, body.state);
    tracing::info!(tenant = %name, state = %body.state, "tenant state set");
    Ok(Json(json!({"tenant": name, "state": body.state})).into_response())
}

#[derive(Deserialize)]
struct FaultBody {
    fault: AccountState,
}

async fn set_key_fault(State(a): State<Arc<Admin>>, Path(id): Path<String>, body: Bytes) -> Reply {
    let body: FaultBody = parse(&body)?;
    if !a.shared.tenants.set_key_fault(&id, body.fault) {
        return Err(ApiError::not_found(format!("no access key {id:?}")));
    }
    tracing::info!(access_key_id = %id, fault = %body.fault, "access key fault set");
    Ok(Json(json!({"accessKeyId": id, "fault": body.fault})).into_response())
}

#[derive(Deserialize)]
struct StsBody {
    tenant: Option<String>,
    #[serde(rename = "lifetimeSecs", alias = "lifetime_secs")]
    lifetime_secs: Option<u64>,
}

/// Mints temporary credentials, as QueryTokenForMnsQueue does, for tests of STS handling.
async fn issue_sts(State(a): State<Arc<Admin>>, body: Bytes) -> Reply {
    let body: StsBody = if body.is_empty() { StsBody { tenant: None, lifetime_secs: None } } else { parse(&body)? };
    let tenant = super::tenant_or_first(&a.shared.tenants, body.tenant.as_deref())?;
    let now = a.shared.clock.now_ms();
    let lifetime = body.lifetime_secs.unwrap_or(3600).saturating_mul(1000);
    let c = a.shared.tenants.issue_sts(tenant, now, lifetime, vec![]);
    Ok(Json(json!({
        "accessKeyId": c.access_key_id,
        "accessKeySecret": c.access_key_secret,
        "securityToken": c.security_token,
        "expiresMs": c.expires_ms,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn requests(State(a): State<Arc<Admin>>, uri: Uri) -> Reply {
    let l: Limit = query(&uri)?;
    Ok(Json(json!({"requests": a.pop.requests.last(l.limit.unwrap_or(50))})).into_response())
}

async fn problems(State(a): State<Arc<Admin>>, uri: Uri) -> Reply {
    let tenant = tenant_filter(&a, &query(&uri)?)?;
    Ok(Json(json!({"problems": a.shared.directory.problems(tenant)})).into_response())
}

async fn clock(State(a): State<Arc<Admin>>) -> Response {
    Json(json!({"mode": a.shared.clock.mode(), "scale": a.shared.clock.scale(), "nowMs": a.shared.clock.now_ms()}))
        .into_response()
}

#[derive(Deserialize)]
struct AdvanceBody {
    ms: u64,
}

async fn advance_clock(State(a): State<Arc<Admin>>, body: Bytes) -> Reply {
    let body: AdvanceBody = parse(&body)?;
    let advance = a.advance.read().clone();
    let result = match advance {
        Some(component) => component.advance(body.ms).await,
        None => a.shared.clock.advance(body.ms).map_err(AdvanceError::from),
    };
    match result {
        Ok(now) => Ok(Json(json!({"nowMs": now})).into_response()),
        Err(e @ AdvanceError::Clock(_)) => {
            Err(ApiError(StatusCode::CONFLICT, format!("{e}: set [clock] mode = \"manual\" to move time by hand")))
        }
        Err(e @ AdvanceError::Stopped) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

async fn config(State(a): State<Arc<Admin>>) -> Response {
    Json(serde_json::to_value(&*a.shared.config).unwrap_or(Value::Null)).into_response()
}

#[derive(Deserialize)]
struct EventQuery {
    #[serde(rename = "channelId")]
    channel_id: Option<String>,
    #[serde(rename = "rtcId")]
    rtc_id: Option<String>,
    kind: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /admin/events?channelId=&rtcId=&kind=&after=&limit=`: the event log, oldest first.
async fn events(State(a): State<Arc<Admin>>, uri: Uri) -> Reply {
    let q: EventQuery = query(&uri)?;
    let filter = emu_core::events::EventFilter {
        channel_id: q.channel_id,
        rtc_id: q.rtc_id,
        kind_prefix: q.kind,
        after: q.after,
        limit: Some(q.limit.unwrap_or(500)),
    };
    Ok(Json(json!({"events": a.shared.events.query(&filter)})).into_response())
}

/// `GET /admin/events/stream`: the event log live, as Server-Sent Events (one `data:` JSON event
/// each), with the same filters as `/admin/events` (`channelId`, `rtcId`, `kind`).
async fn event_stream(State(a): State<Arc<Admin>>, uri: Uri) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let q: EventQuery = query(&uri)?;
    let filter = emu_core::events::EventFilter {
        channel_id: q.channel_id,
        rtc_id: q.rtc_id,
        kind_prefix: q.kind,
        ..Default::default()
    };
    let rx = a.shared.events.subscribe();
    let admin = a.clone();
    let stream = futures_util::stream::unfold((rx, filter), move |(mut rx, filter)| {
        let admin = admin.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(e) if filter.matches(&e) => {
                        let e = admin.shared.events.readable(e);
                        let data = serde_json::to_string(&e).unwrap_or_default();
                        return Some((
                            Ok::<_, std::convert::Infallible>(Event::default().event(e.kind.clone()).data(data)),
                            (rx, filter),
                        ));
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let ev = Event::default().event("lagged").data(format!("{{\"missed\":{n}}}"));
                        return Some((Ok(ev), (rx, filter)));
                    }
                    Err(_) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
