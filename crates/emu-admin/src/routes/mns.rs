//! Admin routes of the MNS service (JSON, errors as `{"error": "…"}` like the rest of the
//! admin API):
//!
//! * `GET  /admin/mns/queues[?tenant=NAME]`: every queue with its counts
//! * `GET  /admin/mns/queues/{name}/messages[?tenant=NAME]`: the
//!   messages, peeked (nothing changes), base64-JSON bodies decoded
//! * `POST /admin/mns/queues/{name}/purge[?tenant=NAME]`
//! * `GET|PUT /admin/mns/push`: the HTTP push targets (`[{tenant, messageType, url}]`)
//! * `POST /admin/mns/deliver`: `{tenant, messageType, body}` puts a receipt like the call engine

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emu_core::TenantId;
use serde::Deserialize;
use serde_json::json;

use emu_http::ApiError;

use emu_mns::{Mns, PushTarget};

pub fn router(mns: Arc<Mns>) -> Router {
    Router::new()
        .route("/admin/mns/queues", get(queues))
        .route("/admin/mns/queues/{name}/messages", get(messages))
        .route("/admin/mns/queues/{name}/purge", post(purge))
        .route("/admin/mns/push", get(get_push).put(put_push))
        .route("/admin/mns/deliver", post(deliver))
        .with_state(mns)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError(status, message.into()).into_response()
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
}

fn tenant(mns: &Mns, q: &TenantQuery) -> Result<Option<TenantId>, ApiError> {
    match &q.tenant {
        None => Ok(None),
        Some(name) => mns
            .shared
            .tenants
            .by_name(name)
            .map(|t| Some(t.id))
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no tenant {name:?}"))),
    }
}

fn queue_of(mns: &Mns, q: &TenantQuery, name: &str) -> Result<TenantId, ApiError> {
    let t = tenant(mns, q)?;
    mns.find_queue(t, name).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no queue {name:?}")))
}

async fn queues(State(mns): State<Arc<Mns>>, Query(q): Query<TenantQuery>) -> Response {
    match tenant(&mns, &q) {
        Ok(t) => Json(json!({"queues": mns.queues(t)})).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn messages(State(mns): State<Arc<Mns>>, Path(name): Path<String>, Query(q): Query<TenantQuery>) -> Response {
    let t = match queue_of(&mns, &q, &name) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    match mns.messages(t, &name) {
        Ok(m) => Json(json!({"tenant": mns.shared.tenants.get(t).name, "queue": name, "messages": m})).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.message),
    }
}

async fn purge(State(mns): State<Arc<Mns>>, Path(name): Path<String>, Query(q): Query<TenantQuery>) -> Response {
    let t = match queue_of(&mns, &q, &name) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    match mns.purge(t, &name).await {
        Ok(n) => Json(json!({"queue": name, "purged": n})).into_response(),
        Err(e) => error(e.status, e.message),
    }
}

async fn get_push(State(mns): State<Arc<Mns>>) -> Response {
    Json(json!({"targets": mns.push_targets()})).into_response()
}

async fn put_push(State(mns): State<Arc<Mns>>, body: axum::body::Bytes) -> Response {
    #[derive(Deserialize)]
    struct Body {
        targets: Vec<PushTarget>,
    }
    let b: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    if let Some(t) = b.targets.iter().find(|t| mns.shared.tenants.by_name(&t.tenant).is_none()) {
        return error(StatusCode::NOT_FOUND, format!("no tenant {:?}", t.tenant));
    }
    mns.set_push_targets(b.targets);
    Json(json!({"targets": mns.push_targets()})).into_response()
}

async fn deliver(State(mns): State<Arc<Mns>>, body: axum::body::Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        tenant: Option<String>,
        message_type: String,
        body: serde_json::Value,
    }
    let b: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    let t = match tenant(&mns, &TenantQuery { tenant: b.tenant }) {
        Ok(t) => t.unwrap_or(TenantId(0)),
        Err(r) => return r.into_response(),
    };
    if b.message_type.is_empty() || !emu_mns::valid_queue_name(&format!("A{}", b.message_type)) {
        return error(StatusCode::BAD_REQUEST, "messageType must be letters, digits and '-'");
    }
    match mns.deliver(t, &b.message_type, &b.body).await {
        Ok(d) => Json(json!(d)).into_response(),
        Err(e) => error(e.status, e.message),
    }
}
