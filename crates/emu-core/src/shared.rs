//! The state every listener shares: configuration, clock, tenants and the account directory.

use std::sync::Arc;

use crate::accounts::{Directory, TokenSettings};
use crate::clock::Clock;
use crate::config::Config;
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::retention::Limit;
use crate::tenants::Tenants;

#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub clock: Clock,
    pub tenants: Arc<Tenants>,
    pub directory: Arc<Directory>,
    pub events: Arc<EventLog>,
    /// Every Prometheus metric (`GET /metrics`); most are counted from the event log.
    pub metrics: Arc<Metrics>,
    /// Known once the listeners are bound (the token's `host` names the MQTT port).
    pub token_settings: Arc<TokenSettings>,
}

impl Shared {
    pub fn new(config: Config, token_settings: TokenSettings) -> Self {
        let clock = Clock::new(config.clock);
        Self::with_clock(config, token_settings, clock)
    }

    pub fn with_clock(config: Config, token_settings: TokenSettings, clock: Clock) -> Self {
        let tenants = Arc::new(Tenants::new(&config.tenants));
        let metrics = Arc::new(Metrics::new());
        let events = Arc::new(
            EventLog::new(clock.clone(), config.server.event_log_size, config.server.event_log_max_bytes)
                .with_metrics(metrics.clone()),
        );
        let r = &config.retention;
        let directory = Arc::new(Directory::with_problem_limit(Limit::new(r.problems, r.problem_bytes)));
        Shared {
            events,
            metrics,
            config: Arc::new(config),
            clock,
            tenants,
            directory,
            token_settings: Arc::new(token_settings),
        }
    }

    /// Clears run-time state so one emulator can serve many test cases.
    pub fn reset(&self) {
        self.directory.reset();
        self.events.clear();
        self.tenants.reset(&self.config.tenants);
    }
}
