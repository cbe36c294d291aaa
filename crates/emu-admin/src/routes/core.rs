//! The admin API's own routes: health, reset, accounts, tenants, access-key faults, STS, the
//! POP request log, problems, the clock, the configuration and the event log.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use emu_core::clock::ClockError;
use emu_core::config::ClockMode;
use emu_core::events::Event;
use emu_core::lifecycle::AdvanceError;
use emu_core::tenants::AccountState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{parse, query};
use crate::openapi::ErrorBody;
use crate::{Admin, ApiError, SeesSecrets};

/// Health, reset, accounts, tenants, access-key faults, STS, the request log, problems, the
/// clock, the configuration and the event log.
pub fn routes() -> OpenApiRouter<Arc<Admin>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(reset))
        .routes(routes!(accounts))
        .routes(routes!(tenants))
        .routes(routes!(set_tenant_state))
        .routes(routes!(set_key_fault))
        .routes(routes!(issue_sts))
        .routes(routes!(requests))
        .routes(routes!(problems))
        .routes(routes!(clock))
        .routes(routes!(advance_clock))
        .routes(routes!(config))
        .routes(routes!(events))
        .routes(routes!(event_stream))
}

/// `/health` alone, for the public listeners (pop, mqtt_ws): never with secrets.
pub fn health_router(admin: Arc<Admin>) -> Router {
    Router::new().route("/health", get(public_health)).with_state(admin)
}

type Reply = Result<Response, ApiError>;

/// `GET /health`: `{"status":"ok",…}` once every listener accepts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`.
    status: &'static str,
    /// The emulator's version.
    version: &'static str,
    clock: HealthClock,
    uptime_ms: u64,
    /// The ready-file's content (docs/cli.md): every listener's address, the default tenant and
    /// its access key; `access_key_secret` only for callers that may see secrets.
    #[schema(value_type = Object)]
    endpoints: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthClock {
    mode: ClockMode,
    now_ms: u64,
}

/// `{"status":"starting"}` before every listener accepts.
#[derive(Serialize, ToSchema)]
pub struct Starting {
    /// `starting`.
    status: &'static str,
}

/// Readiness.
///
/// 200 once every listener accepts, with the version, the clock and the endpoints (the ready-file);
/// the default access key's secret only when no admin token is configured or the request carries
/// it. Also served on the pop and mqtt_ws listeners, never with a secret.
#[utoipa::path(get, path = "/health", tag = "core", responses(
    (status = 200, description = "ready", body = Health),
    (status = 503, description = "still starting", body = Starting),
))]
async fn health(State(a): State<Arc<Admin>>, sees: Option<axum::Extension<SeesSecrets>>) -> Response {
    health_reply(&a, sees.is_some())
}

async fn public_health(State(a): State<Arc<Admin>>) -> Response {
    health_reply(&a, false)
}

/// Readiness, version, clock and endpoints; `access_key_secret` only `with_secrets`.
fn health_reply(a: &Admin, with_secrets: bool) -> Response {
    if !a.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(Starting { status: "starting" })).into_response();
    }
    let now = a.shared.clock.now_ms();
    let mut endpoints = a.endpoints.read().clone();
    if !with_secrets && let Some(e) = endpoints.as_object_mut() {
        e.remove("access_key_secret");
    }
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        clock: HealthClock { mode: a.shared.clock.mode(), now_ms: now },
        uptime_ms: now.saturating_sub(a.started_ms),
        endpoints,
    })
    .into_response()
}

#[derive(Serialize, ToSchema)]
pub struct ResetDone {
    /// Always `true`.
    reset: bool,
}

/// Clears run-time state.
///
/// Closes every MQTT connection and forgets registrations, the event log, accounts, tokens,
/// number auth and bindings, problem reports, STS credentials, the request log, nonces, calls,
/// virtual devices, MNS queues; tenant states and key faults go back to the configuration.
#[utoipa::path(post, path = "/admin/reset", tag = "core", responses((status = 200, description = "cleared", body = ResetDone)))]
async fn reset(State(a): State<Arc<Admin>>) -> Response {
    a.reset();
    Json(ResetDone { reset: true }).into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TenantFilter {
    /// A tenant's name (all tenants without it).
    tenant: Option<String>,
}

/// Resolves `?tenant=name`; unknown names are an error, not an empty list.
fn tenant_filter(a: &Admin, f: &TenantFilter) -> Result<Option<emu_core::TenantId>, ApiError> {
    f.tenant.as_ref().map(|name| tenant_id(a, name)).transpose()
}

fn tenant_id(a: &Admin, name: &str) -> Result<emu_core::TenantId, ApiError> {
    super::tenant_named(&a.shared.tenants, name)
}

#[derive(Serialize, ToSchema)]
pub struct AccountList {
    accounts: Vec<AccountRow>,
}

/// An account (AddRtcAccount) and the device logged in to it now.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRow {
    tenant: String,
    rtc_id: String,
    device_id: String,
    created_ms: u64,
    /// The DeviceId of the device that holds the account's latest token, if any.
    #[schema(required = true)]
    current_device_id: Option<String>,
}

/// Accounts.
///
/// Every account made with AddRtcAccount (and the ready-made virtual parties), of one tenant or
/// all.
#[utoipa::path(get, path = "/admin/accounts", tag = "core", params(TenantFilter), responses(
    (status = 200, description = "the accounts", body = AccountList),
    (status = 400, description = "malformed query string", body = ErrorBody),
    (status = 404, description = "no tenant of that name", body = ErrorBody),
))]
async fn accounts(State(a): State<Arc<Admin>>, uri: Uri) -> Reply {
    let tenant = tenant_filter(&a, &query(&uri)?)?;
    let accounts = a
        .shared
        .directory
        .accounts(tenant)
        .into_iter()
        .map(|acc| AccountRow {
            tenant: a.shared.tenants.get(acc.tenant).name.to_string(),
            current_device_id: a.shared.directory.current_device(acc.tenant, &acc.rtc_id),
            rtc_id: acc.rtc_id,
            device_id: acc.device_id,
            created_ms: acc.created_ms,
        })
        .collect();
    Ok(Json(AccountList { accounts }).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    tenants: Vec<TenantRow>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantRow {
    name: String,
    /// The bought numbers phones can call (`POST /admin/pstn/calls`).
    numbers: Vec<String>,
    /// Own lines.
    self_lines: Vec<String>,
    uid: String,
    state: AccountState,
    account_limit: u64,
    /// How many accounts it has.
    accounts: usize,
    access_keys: Vec<AccessKeyRow>,
}

#[derive(Serialize, ToSchema)]
pub struct AccessKeyRow {
    id: String,
    secret: String,
    fault: AccountState,
}

/// Tenants.
///
/// Every tenant with its numbers, own lines, state, account limit and count, and access keys
/// (with their secrets and faults).
#[utoipa::path(get, path = "/admin/tenants", tag = "core", responses((status = 200, description = "the tenants", body = TenantList)))]
async fn tenants(State(a): State<Arc<Admin>>) -> Response {
    let tenants = a
        .shared
        .tenants
        .all()
        .iter()
        .map(|t| {
            let access_keys = a
                .shared
                .tenants
                .keys_of(t.id)
                .into_iter()
                .map(|(id, secret, fault)| AccessKeyRow { id, secret, fault })
                .collect();
            // Bought numbers (callable with POST /admin/pstn/calls) and own lines, from the config.
            let conf = a.shared.config.tenants.iter().find(|c| *c.name == *t.name);
            TenantRow {
                name: t.name.to_string(),
                numbers: conf.map(|c| c.numbers.iter().map(|n| n.number.clone()).collect()).unwrap_or_default(),
                self_lines: conf.map(|c| c.self_lines.clone()).unwrap_or_default(),
                uid: t.uid.clone(),
                state: t.state(),
                account_limit: t.account_limit,
                accounts: a.shared.directory.accounts(Some(t.id)).len(),
                access_keys,
            }
        })
        .collect();
    Json(TenantList { tenants }).into_response()
}

#[derive(Deserialize, ToSchema)]
struct StateBody {
    /// `normal`, or the vendor code every Dyvmsapi call then answers with.
    state: AccountState,
}

#[derive(Serialize, ToSchema)]
pub struct TenantStateSet {
    tenant: String,
    state: AccountState,
}

/// Sets a tenant's business state.
///
/// Every Dyvmsapi call of the tenant then answers with this vendor code (`normal` again to stop).
#[utoipa::path(put, path = "/admin/tenants/{name}/state", tag = "core",
    params(("name" = String, Path, description = "the tenant's name", example = "default")),
    request_body = StateBody,
    responses(
        (status = 200, description = "set", body = TenantStateSet),
        (status = 400, description = "the body is not `{\"state\": …}` with a known state", body = ErrorBody),
        (status = 404, description = "no tenant of that name", body = ErrorBody),
    ))]
async fn set_tenant_state(State(a): State<Arc<Admin>>, Path(name): Path<String>, body: Bytes) -> Reply {
    let body: StateBody = parse(&body)?;
    a.shared.tenants.set_state(tenant_id(&a, &name)?, body.state);
    tracing::info!(tenant = %name, state = %body.state, "tenant state set");
    Ok(Json(TenantStateSet { tenant: name, state: body.state }).into_response())
}

#[derive(Deserialize, ToSchema)]
struct FaultBody {
    /// `normal`, or the vendor code every call signed with the key then answers with.
    fault: AccountState,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyFaultSet {
    access_key_id: String,
    fault: AccountState,
}

/// Makes an access key faulty.
///
/// Every call signed with the key then answers with this vendor code (`normal` again to stop).
#[utoipa::path(put, path = "/admin/access-keys/{id}/fault", tag = "core",
    params(("id" = String, Path, description = "an AccessKeyId", example = "testAK")),
    request_body = FaultBody,
    responses(
        (status = 200, description = "set", body = KeyFaultSet),
        (status = 400, description = "the body is not `{\"fault\": …}` with a known state", body = ErrorBody),
        (status = 404, description = "no such access key", body = ErrorBody),
    ))]
async fn set_key_fault(State(a): State<Arc<Admin>>, Path(id): Path<String>, body: Bytes) -> Reply {
    let body: FaultBody = parse(&body)?;
    if !a.shared.tenants.set_key_fault(&id, body.fault) {
        return Err(ApiError::not_found(format!("no access key {id:?}")));
    }
    tracing::info!(access_key_id = %id, fault = %body.fault, "access key fault set");
    Ok(Json(KeyFaultSet { access_key_id: id, fault: body.fault }).into_response())
}

#[derive(Deserialize, ToSchema)]
struct StsBody {
    /// The tenant's name (default: the first tenant).
    tenant: Option<String>,
    /// How long the credentials last (default 3600).
    #[serde(rename = "lifetimeSecs", alias = "lifetime_secs")]
    lifetime_secs: Option<u64>,
}

/// Temporary (STS) credentials.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StsCredentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: String,
    expires_ms: u64,
}

/// Mints temporary credentials.
///
/// As QueryTokenForMnsQueue does, for tests of STS handling. The body is optional.
#[utoipa::path(post, path = "/admin/sts", tag = "core",
    request_body(content = Option<StsBody>, description = "both fields optional; an empty body is the defaults"),
    responses(
        (status = 200, description = "the credentials", body = StsCredentials),
        (status = 400, description = "malformed JSON body", body = ErrorBody),
        (status = 404, description = "no tenant of that name", body = ErrorBody),
    ))]
async fn issue_sts(State(a): State<Arc<Admin>>, body: Bytes) -> Reply {
    let body: StsBody = if body.is_empty() { StsBody { tenant: None, lifetime_secs: None } } else { parse(&body)? };
    let tenant = super::tenant_or_first(&a.shared.tenants, body.tenant.as_deref())?;
    let now = a.shared.clock.now_ms();
    let lifetime = body.lifetime_secs.unwrap_or(3600).saturating_mul(1000);
    let c = a.shared.tenants.issue_sts(tenant, now, lifetime, vec![]);
    Ok(Json(StsCredentials {
        access_key_id: c.access_key_id,
        access_key_secret: c.access_key_secret,
        security_token: c.security_token,
        expires_ms: c.expires_ms,
    })
    .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// How many of the newest (default 50).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct RequestLog {
    requests: Vec<emu_pop::request_log::LoggedRequest>,
}

/// The POP request log.
///
/// The newest N POP requests, oldest first, with the server's strings to sign for signature
/// failures; long strings are cut to 4 KiB prefixes.
#[utoipa::path(get, path = "/admin/requests", tag = "core", params(Limit), responses(
    (status = 200, description = "the requests", body = RequestLog),
    (status = 400, description = "malformed query string", body = ErrorBody),
))]
async fn requests(State(a): State<Arc<Admin>>, uri: Uri) -> Reply {
    let l: Limit = query(&uri)?;
    Ok(Json(RequestLog { requests: a.pop.requests.last(l.limit.unwrap_or(50)) }).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct Problems {
    problems: Vec<emu_core::accounts::ProblemReport>,
}

/// Problem reports.
///
/// Reports sent with ReportVoipProblems (the newest 1000, oldest first).
#[utoipa::path(get, path = "/admin/problems", tag = "core", params(TenantFilter), responses(
    (status = 200, description = "the reports", body = Problems),
    (status = 400, description = "malformed query string", body = ErrorBody),
    (status = 404, description = "no tenant of that name", body = ErrorBody),
))]
async fn problems(State(a): State<Arc<Admin>>, uri: Uri) -> Reply {
    let tenant = tenant_filter(&a, &query(&uri)?)?;
    Ok(Json(Problems { problems: a.shared.directory.problems(tenant) }).into_response())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Clock {
    mode: ClockMode,
    /// How much faster than real time a `scaled` clock runs.
    scale: f64,
    now_ms: u64,
}

/// The clock.
#[utoipa::path(get, path = "/admin/clock", tag = "core", responses((status = 200, description = "mode, scale and now", body = Clock)))]
async fn clock(State(a): State<Arc<Admin>>) -> Response {
    let c = &a.shared.clock;
    Json(Clock { mode: c.mode(), scale: c.scale(), now_ms: c.now_ms() }).into_response()
}

#[derive(Deserialize, ToSchema)]
struct AdvanceBody {
    /// Milliseconds to move the clock forward.
    ms: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClockAdvanced {
    now_ms: u64,
}

/// Moves a manual clock.
///
/// Fires every timer that comes due, in deadline order, before it answers.
#[utoipa::path(post, path = "/admin/clock/advance", tag = "core", request_body = AdvanceBody, responses(
    (status = 200, description = "moved", body = ClockAdvanced),
    (status = 400, description = "the body is not `{\"ms\": N}`, or N would take the clock past the year 9999", body = ErrorBody),
    (status = 409, description = "the clock is not manual", body = ErrorBody),
    (status = 503, description = "the emulator is shutting down", body = ErrorBody),
))]
async fn advance_clock(State(a): State<Arc<Admin>>, body: Bytes) -> Reply {
    let body: AdvanceBody = parse(&body)?;
    let advance = a.advance.read().clone();
    let result = match advance {
        Some(component) => component.advance(body.ms).await,
        None => a.shared.clock.advance(body.ms).map_err(AdvanceError::from),
    };
    match result {
        Ok(now) => Ok(Json(ClockAdvanced { now_ms: now }).into_response()),
        Err(e @ AdvanceError::Clock(ClockError::TooFar)) => Err(ApiError(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e @ AdvanceError::Clock(_)) => {
            Err(ApiError(StatusCode::CONFLICT, format!("{e}: set [clock] mode = \"manual\" to move time by hand")))
        }
        Err(e @ AdvanceError::Stopped) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// The effective configuration.
///
/// As JSON: the embedded defaults, the config file and the environment merged
/// (docs/configuration.md); the admin token shows as `<redacted>`.
#[utoipa::path(get, path = "/admin/config", tag = "core", responses((status = 200, description = "the configuration", body = Object)))]
async fn config(State(a): State<Arc<Admin>>) -> Response {
    Json(serde_json::to_value(&*a.shared.config).unwrap_or(Value::Null)).into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventQuery {
    /// Only this call's events.
    #[serde(rename = "channelId")]
    channel_id: Option<String>,
    /// Only this account's events.
    #[serde(rename = "rtcId")]
    rtc_id: Option<String>,
    /// A prefix of the kind (`envelope.`, `device.`, `token.`, …).
    kind: Option<String>,
    /// Only events after this sequence number (for polling); not for the stream.
    after: Option<u64>,
    /// How many of the newest (default 500); not for the stream.
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct Events {
    events: Vec<Event>,
}

/// The event log.
///
/// Oldest first (default the newest 500), filtered by call, account, kind prefix and sequence.
#[utoipa::path(get, path = "/admin/events", tag = "core", params(EventQuery), responses(
    (status = 200, description = "the events", body = Events),
    (status = 400, description = "malformed query string", body = ErrorBody),
))]
async fn events(State(a): State<Arc<Admin>>, uri: Uri) -> Reply {
    let q: EventQuery = query(&uri)?;
    let filter = emu_core::events::EventFilter {
        channel_id: q.channel_id,
        rtc_id: q.rtc_id,
        kind_prefix: q.kind,
        after: q.after,
        limit: Some(q.limit.unwrap_or(500)),
    };
    Ok(Json(Events { events: a.shared.events.query(&filter) }).into_response())
}

/// The event log, live.
///
/// As Server-Sent Events: each event's `data:` is one event of the log as JSON (its `event:` the
/// kind), `lagged` with `{"missed": N}` when the reader fell behind. Filters as
/// `/admin/events` (`channelId`, `rtcId`, `kind`). The stream does not end.
#[utoipa::path(get, path = "/admin/events/stream", tag = "core", params(EventQuery), responses(
    (status = 200, description = "the stream", content_type = "text/event-stream", body = String),
    (status = 400, description = "malformed query string", body = ErrorBody),
))]
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
                            Ok::<_, std::convert::Infallible>(Event::default().event(e.kind).data(data)),
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
