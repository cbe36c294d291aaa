//! `GET /metrics`: every metric in the Prometheus text format (docs/metrics.md). Counters are
//! kept as things happen (`emu_core::metrics`); the sizes of things are read here, at scrape
//! time, from the components that hold them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use emu_calls::Request;
use emu_core::metrics::{Op, QueueState, State as Labelled};
use emu_core::retention::Retained;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Admin;

/// What a scrape reads besides the counters.
#[derive(Clone)]
pub struct Sources {
    pub admin: Arc<Admin>,
    pub gateway: Arc<emu_gateway::Hub>,
    pub mns: Arc<emu_mns::Mns>,
    pub media: Arc<emu_media::MediaServer>,
    pub calls: emu_calls::DriverHandle,
}

pub fn routes() -> OpenApiRouter<Sources> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Every capped collection's size and caps (docs/admin-api.md#what-is-retained-and-how-much).
async fn retained(s: &Sources) -> Vec<Retained> {
    let shared = &s.admin.shared;
    let mut all = vec![
        shared.events.retained(),
        s.admin.pop.requests.retained(),
        shared.directory.problems_retained(),
        s.gateway.sls.retained(),
        s.gateway.dedupe_retained(),
    ];
    all.extend(s.media.retained());
    // The driver holds the CDRs and the ended calls; a stopped driver (shutting down) has none.
    if let Ok(calls) = s.calls.ask(Request::Retained).await {
        all.extend(calls);
    }
    all
}

/// Prometheus metrics.
///
/// Every metric in the Prometheus text format (docs/metrics.md); no admin token needed.
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses(
    (status = 200, description = "the metrics", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
))]
async fn metrics(State(s): State<Sources>) -> impl IntoResponse {
    let m = &s.admin.shared.metrics;
    m.mqtt_connections.set(s.gateway.connection_count() as i64);
    let devices = s.gateway.devices();
    let online = devices.iter().filter(|d| d.online).count();
    m.devices.get_or_create(&Labelled { state: "online".into() }).set(online as i64);
    m.devices.get_or_create(&Labelled { state: "offline".into() }).set((devices.len() - online) as i64);
    // Queues that were deleted since the last scrape drop out.
    m.mns_queue_messages.clear();
    for q in s.mns.queues(None) {
        for (state, n) in
            [("active", q.active_messages), ("inactive", q.inactive_messages), ("delayed", q.delay_messages)]
        {
            let labels = QueueState { tenant: q.tenant.clone(), queue: q.name.clone(), state: state.into() };
            m.mns_queue_messages.get_or_create(&labels).set(n as i64);
        }
    }
    let media = s.media.summary();
    let num = |k: &str| media.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    m.media_channels.set(num("channels"));
    m.media_legs.get_or_create(&Labelled { state: "all".into() }).set(num("legs"));
    m.media_legs.get_or_create(&Labelled { state: "connected".into() }).set(num("connectedLegs"));
    m.media_rtp_packets.get_or_create(&Op { op: "in".into() }).set(num("rtpPacketsIn"));
    m.media_rtp_packets.get_or_create(&Op { op: "out".into() }).set(num("rtpPacketsOut"));
    m.turn_users.set(num("turnUsers"));
    m.event_log_events.set(s.admin.shared.events.len() as i64);
    m.event_log_bytes.set(s.admin.shared.events.bytes() as i64);
    m.pop_request_log_entries.set(s.admin.pop.requests.len() as i64);
    for r in retained(&s).await {
        m.set_retained(&r);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.encode())
}
