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

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use emu_core::TenantId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use emu_http::ApiError;

use crate::openapi::ErrorBody;
use emu_mns::{Delivered, MessageView, Mns, PushTarget, QueueView};

pub fn routes() -> OpenApiRouter<Arc<Mns>> {
    OpenApiRouter::new()
        .routes(routes!(queues))
        .routes(routes!(messages))
        .routes(routes!(purge))
        .routes(routes!(get_push, put_push))
        .routes(routes!(deliver))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError(status, message.into()).into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TenantQuery {
    /// A tenant's name (without it: every tenant's queues; for one queue, the first tenant that
    /// has it).
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

#[derive(Serialize, ToSchema)]
pub struct QueueList {
    queues: Vec<QueueView>,
}

/// MNS queues.
///
/// Every queue with its attributes, times and active / inactive / delayed counts.
#[utoipa::path(get, path = "/admin/mns/queues", tag = "mns", params(TenantQuery), responses(
    (status = 200, description = "the queues", body = QueueList),
    (status = 400, description = "malformed query string", body = ErrorBody),
    (status = 404, description = "no tenant of that name", body = ErrorBody),
))]
async fn queues(State(mns): State<Arc<Mns>>, Query(q): Query<TenantQuery>) -> Response {
    match tenant(&mns, &q) {
        Ok(t) => Json(QueueList { queues: mns.queues(t) }).into_response(),
        Err(r) => r.into_response(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct QueueMessages {
    tenant: String,
    queue: String,
    messages: Vec<MessageView>,
}

/// A queue's messages.
///
/// Without consuming them (nothing changes): state, body, `decoded` (base64 JSON bodies parsed),
/// MD5, priority, times, dequeue count; active ones in delivery order first.
#[utoipa::path(get, path = "/admin/mns/queues/{name}/messages", tag = "mns",
    params(("name" = String, Path, description = "the queue's name", example = "Alicom-Queue-1234567890123456-ArtcCdrReport"), TenantQuery),
    responses(
        (status = 200, description = "the messages", body = QueueMessages),
        (status = 400, description = "malformed query string", body = ErrorBody),
        (status = 404, description = "no such queue, or no tenant of that name", body = ErrorBody),
    ))]
async fn messages(State(mns): State<Arc<Mns>>, Path(name): Path<String>, Query(q): Query<TenantQuery>) -> Response {
    let t = match queue_of(&mns, &q, &name) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    match mns.messages(t, &name) {
        Ok(messages) => {
            Json(QueueMessages { tenant: mns.shared.tenants.get(t).name.to_string(), queue: name, messages })
                .into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, e.message),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Purged {
    queue: String,
    /// How many messages were deleted.
    purged: usize,
}

/// Empties a queue.
///
/// Deletes every message of the queue.
#[utoipa::path(post, path = "/admin/mns/queues/{name}/purge", tag = "mns",
    params(("name" = String, Path, description = "the queue's name", example = "Alicom-Queue-1234567890123456-ArtcCdrReport"), TenantQuery),
    responses(
        (status = 200, description = "purged", body = Purged),
        (status = 400, description = "malformed query string", body = ErrorBody),
        (status = 404, description = "no such queue, or no tenant of that name", body = ErrorBody),
    ))]
async fn purge(State(mns): State<Arc<Mns>>, Path(name): Path<String>, Query(q): Query<TenantQuery>) -> Response {
    let t = match queue_of(&mns, &q, &name) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    match mns.purge(t, &name).await {
        Ok(purged) => Json(Purged { queue: name, purged }).into_response(),
        Err(e) => error(e.status, e.message),
    }
}

/// HTTP push targets, in and out.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PushTargets {
    /// Where each tenant's receipts of a type are pushed; in a `PUT`, `message_type` may also be
    /// spelt `messageType`.
    targets: Vec<PushTarget>,
}

/// HTTP push targets.
///
/// Where receipts are pushed besides their queue (`[[mns.push]]`, or the last `PUT`).
#[utoipa::path(get, path = "/admin/mns/push", tag = "mns", responses((status = 200, description = "the targets", body = PushTargets)))]
async fn get_push(State(mns): State<Arc<Mns>>) -> Response {
    Json(PushTargets { targets: mns.push_targets() }).into_response()
}

/// Sets the HTTP push targets.
///
/// Replaces them until the next reset.
#[utoipa::path(put, path = "/admin/mns/push", tag = "mns", request_body = PushTargets, responses(
    (status = 200, description = "the targets now", body = PushTargets),
    (status = 400, description = "malformed body", body = ErrorBody),
    (status = 404, description = "a target names no tenant", body = ErrorBody),
))]
async fn put_push(State(mns): State<Arc<Mns>>, body: axum::body::Bytes) -> Response {
    let b: PushTargets = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    if let Some(t) = b.targets.iter().find(|t| mns.shared.tenants.by_name(&t.tenant).is_none()) {
        return error(StatusCode::NOT_FOUND, format!("no tenant {:?}", t.tenant));
    }
    mns.set_push_targets(b.targets);
    Json(PushTargets { targets: mns.push_targets() }).into_response()
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DeliverBody {
    /// The tenant's name (default: the first tenant).
    tenant: Option<String>,
    /// `ArtcCdrReport`, `VoiceRecordReport`, …: letters, digits and '-'.
    #[schema(pattern = "^[A-Za-z0-9-]+$", example = "ArtcCdrReport")]
    message_type: String,
    /// The receipt, put into the queue as base64 JSON.
    body: serde_json::Value,
}

/// Puts a receipt.
///
/// Into the tenant's `Alicom-Queue-<uid>-<messageType>` queue (made on demand), as the call
/// engine does, and starts the configured pushes of it.
#[utoipa::path(post, path = "/admin/mns/deliver", tag = "mns", request_body = DeliverBody, responses(
    (status = 200, description = "queued", body = Delivered),
    (status = 400, description = "malformed body, or a bad messageType", body = ErrorBody),
    (status = 404, description = "no tenant of that name", body = ErrorBody),
))]
async fn deliver(State(mns): State<Arc<Mns>>, body: axum::body::Bytes) -> Response {
    let b: DeliverBody = match serde_json::from_slice(&body) {
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
        Ok(d) => Json(d).into_response(),
        Err(e) => error(e.status, e.message),
    }
}
