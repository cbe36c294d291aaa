//! The admin API on its own port, every `/admin/*` route of the product in one place
//! (docs/admin-api.md): health, tenants, accounts, the POP request log, the clock and reset
//! ([`routes::core`]); devices ([`routes::devices`]); calls, callbacks and the simulated PSTN
//! ([`routes::calls`]); virtual VoIP devices ([`routes::voip`]); MNS queues and push
//! ([`routes::mns`]); media statistics and recordings ([`routes::media`]); and the console, a
//! web page that shows and drives all of it ([`routes::console`]); and `/metrics`, the Prometheus
//! view of it ([`routes::metrics`]). Each area's handlers
//! parse their input, call their component's typed API and shape the reply. JSON in, JSON out;
//! every 4xx/5xx is `{"error": "..."}` ([`ApiError`], and [`secure`]'s layer for axum's own
//! 404/405/413). Every route is declared with its OpenAPI description ([`openapi`]), served at
//! `GET /admin/openapi.json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use emu_core::Shared;
use emu_core::lifecycle::{Advance, Reset};
use emu_pop::Pop;
use parking_lot::RwLock;
use serde_json::{Value, json};

mod errors;
pub mod openapi;
pub mod routes;
pub mod schemas;
mod security;

pub use security::{Security, SeesSecrets, secure};

/// The admin API's own state: readiness, and the components it resets and advances.
pub struct Admin {
    pub shared: Shared,
    pub pop: Arc<Pop>,
    ready: AtomicBool,
    endpoints: RwLock<Value>,
    started_ms: u64,
    /// What `POST /admin/reset` clears besides the shared state and the POP API.
    resets: RwLock<Vec<Arc<dyn Reset>>>,
    /// Fires the timers that come due when the clock moves (without one only the clock moves).
    advance: RwLock<Option<Arc<dyn Advance>>>,
}

impl Admin {
    pub fn new(shared: Shared, pop: Arc<Pop>) -> Arc<Self> {
        let started_ms = shared.clock.now_ms();
        Arc::new(Admin {
            shared,
            pop,
            ready: AtomicBool::new(false),
            endpoints: RwLock::new(json!({})),
            started_ms,
            resets: RwLock::new(Vec::new()),
            advance: RwLock::new(None),
        })
    }

    /// Called once every listener accepts: `/health` turns 200.
    pub fn set_ready(&self, endpoints: Value) {
        *self.endpoints.write() = endpoints;
        self.ready.store(true, Ordering::Release);
    }

    /// A component whose run-time state `POST /admin/reset` clears.
    pub fn resets(&self, component: Arc<dyn Reset>) {
        self.resets.write().push(component);
    }

    /// The component that fires timers when `POST /admin/clock/advance` moves the clock.
    pub fn advances_with(&self, component: Arc<dyn Advance>) {
        *self.advance.write() = Some(component);
    }

    pub fn reset(&self) {
        self.shared.reset();
        self.pop.reset();
        for component in self.resets.read().iter() {
            component.reset();
        }
        tracing::info!("run-time state reset");
    }
}

/// The components whose routes the admin listener serves.
#[derive(Clone)]
pub struct Components {
    pub admin: Arc<Admin>,
    pub gateway: Arc<emu_gateway::Hub>,
    pub calls: emu_calls::DriverHandle,
    pub mns: Arc<emu_mns::Mns>,
    pub media: Arc<emu_media::MediaServer>,
}

/// Every admin route (and the recording downloads) on one router; anything else is a JSON 404.
pub fn router(c: Components) -> Router {
    let sources = routes::metrics::Sources {
        admin: c.admin.clone(),
        gateway: c.gateway.clone(),
        mns: c.mns.clone(),
        media: c.media.clone(),
        calls: c.calls.clone(),
    };
    let routes = utoipa_axum::router::OpenApiRouter::new()
        .merge(routes::core::routes().with_state(c.admin))
        .merge(routes::metrics::routes().with_state(sources))
        .merge(routes::devices::routes().with_state(c.gateway))
        .merge(routes::calls::routes().with_state(c.calls.clone()))
        .merge(routes::voip::routes().with_state(c.calls))
        .merge(routes::mns::routes().with_state(c.mns))
        .merge(routes::media::routes().with_state(c.media))
        .merge(routes::console::routes());
    openapi::serve(routes).fallback(|| async { ApiError::not_found("no such admin endpoint; see docs/admin-api.md") })
}

/// `/health` alone, for the public listeners (pop, mqtt_ws): never with secrets.
pub fn health_router(admin: Arc<Admin>) -> Router {
    routes::core::health_router(admin)
}

/// An admin error: `{"error": "..."}` with a status.
pub use emu_http::ApiError;
