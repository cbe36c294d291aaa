//! `emu-testkit`: start alicom-emu in-process on free ports and drive it with virtual SDK devices
//! that speak the Web SDK's protocol over MQTT (register, heartbeat, requests, automatic ACKs).
//! [`load_device`] is the same device cut down for load generators (the `alicom-bench` crate).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let emu = emu_testkit::Emulator::start("").await?;
//! let mut alice = emu.device("alice-phone").await?;
//! alice.register().await?;
//! # Ok(()) }
//! ```

mod callback_server;
mod calls;
mod device;
pub mod load_device;
pub mod media;
mod pop;
pub mod signal;

use std::time::Duration;

pub use callback_server::{CallbackServer, Reply};
pub use device::{Device, Inbound, media};
pub use emu_gateway::envelope::Envelope;
pub use pop::PopClient;
use serde_json::Value;

/// How long the helpers wait for anything before failing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// An emulator running inside the test process.
pub struct Emulator {
    pub running: emu_server::Running,
    pub endpoints: emu_server::Endpoints,
    http: reqwest::Client,
}

impl Emulator {
    /// Starts on the embedded defaults with `overrides` (TOML) merged in, every port ephemeral.
    pub async fn start(overrides: &str) -> anyhow::Result<Self> {
        let config = emu_server::config::for_tests(overrides)?;
        // Admin calls carry `[admin] token` when the overrides set one.
        let mut headers = reqwest::header::HeaderMap::new();
        if !config.admin.token.is_empty() {
            headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", config.admin.token).parse()?);
        }
        let http = reqwest::Client::builder().default_headers(headers).build()?;
        let running = emu_server::start(config).await?;
        Ok(Emulator { endpoints: running.endpoints.clone(), running, http })
    }

    /// A POP client signed with the default AccessKey.
    pub fn pop(&self) -> PopClient {
        PopClient::new(&self.endpoints.pop, &self.endpoints.access_key_id, &self.endpoints.access_key_secret)
    }

    /// A new account for `device_id`, a token for it, and a connected (not yet registered) device.
    pub async fn device(&self, device_id: &str) -> anyhow::Result<Device> {
        let pop = self.pop();
        let rtc_id = pop.add_rtc_account(device_id).await?;
        let token = pop.get_rtc_token(&rtc_id, device_id).await?;
        Device::connect(&self.endpoints.mqtt_tcp, &rtc_id, token).await
    }

    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}{path}", self.endpoints.admin)).send().await?.json().await?)
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self.http.post(format!("{}{path}", self.endpoints.admin)).json(&body).send().await?.json().await?)
    }

    pub async fn admin_put(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let resp = self.http.put(format!("{}{path}", self.endpoints.admin)).json(&body).send().await?;
        Ok((resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null)))
    }

    /// DELETE, returning the status and the JSON body (if any).
    pub async fn admin_delete(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let resp = self.http.delete(format!("{}{path}", self.endpoints.admin)).send().await?;
        Ok((resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null)))
    }

    /// POST returning the status too (for the error cases of the admin API).
    pub async fn admin_post_status(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let resp = self.http.post(format!("{}{path}", self.endpoints.admin)).json(&body).send().await?;
        Ok((resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null)))
    }

    /// Moves a manual clock; every timer due fires before this returns.
    pub async fn advance(&self, ms: u64) -> anyhow::Result<()> {
        let (status, body) = self.admin_post_status("/admin/clock/advance", serde_json::json!({"ms": ms})).await?;
        anyhow::ensure!(status == 200, "advance failed: {status} {body}");
        Ok(())
    }

    /// A registered device for a new account.
    pub async fn registered(&self, device_id: &str) -> anyhow::Result<Device> {
        let mut d = self.device(device_id).await?;
        d.register().await?;
        Ok(d)
    }

    /// The first event of `kind` (a prefix, e.g. `media.recording`) for `channel_id`, whether it
    /// already happened or happens within `within`: awaited on the event log, not polled.
    pub async fn event(
        &self,
        kind: &str,
        channel_id: &str,
        within: std::time::Duration,
    ) -> anyhow::Result<emu_core::events::Event> {
        self.event_where(kind, channel_id, within, |_| true).await
    }

    /// Like [`Emulator::event`], for the first such event that `want` accepts.
    pub async fn event_where(
        &self,
        kind: &str,
        channel_id: &str,
        within: std::time::Duration,
        want: impl Fn(&emu_core::events::Event) -> bool,
    ) -> anyhow::Result<emu_core::events::Event> {
        let events = &self.running.shared.events;
        let mut live = events.subscribe();
        let filter = emu_core::events::EventFilter {
            channel_id: Some(channel_id.to_string()),
            kind_prefix: Some(kind.to_string()),
            ..Default::default()
        };
        if let Some(e) = events.query(&filter).into_iter().find(|e| want(e)) {
            return Ok(e);
        }
        tokio::time::timeout(within, async {
            loop {
                match live.recv().await {
                    Ok(e) if filter.matches(&e) && want(&e) => return Ok(e),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(e) => return Err(anyhow::anyhow!("event log closed: {e}")),
                }
            }
        })
        .await
        .map_err(|_| anyhow::anyhow!("no {kind} event for {channel_id} within {within:?}"))?
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}
