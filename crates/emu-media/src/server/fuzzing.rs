//! The media state without a socket or a task, for the fuzz targets (fuzz/, docs/fuzzing.md):
//! offers go through the same `join`/`signal` code as a device's, datagrams through the same
//! demultiplexing as the media port's. Not an API: nothing else uses it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use emu_core::Clock;
use emu_core::media_signal::MediaSignal;
use serde_json::Value;

use super::DtlsIdentity;
use super::signal::NewLeg;
use super::state::State;
use crate::{LegOptions, MediaConfig, srtp};

/// The address of the server's candidate in the harness.
pub const SERVER: &str = "10.0.0.1:40000";

/// One worker's state, with the time moved by hand.
pub struct MediaHarness {
    st: State,
    now: Instant,
}

impl Default for MediaHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl MediaHarness {
    /// No TURN relay, nothing recorded (no call asks for it).
    pub fn new() -> Self {
        let cfg = MediaConfig {
            turn_enabled: false,
            recordings_dir: std::env::temp_dir().join("alicom-emu-fuzz-recordings"),
            ..MediaConfig::default()
        };
        let provider = Arc::new(srtp::capturing(str0m::crypto::from_feature_flags()));
        let cert = Arc::new(DtlsIdentity { provider: provider.clone(), cert: OnceLock::new() });
        let addr: SocketAddr = SERVER.parse().expect("a socket address");
        let st = State::new(Arc::new(cfg), Clock::manual_at(1_700_000_000_000), addr, provider, cert);
        MediaHarness { st, now: Instant::now() }
    }

    /// A device's joinChannel media signal: the ARTC joinChannel result.
    pub fn join(&mut self, channel_id: &str, rtc_id: &str, signal: &Value, options: impl Into<LegOptions>) -> Value {
        let LegOptions { prefer, video } = options.into();
        let leg = NewLeg { channel_id, tenant: "default", rtc_id, uuid: rtc_id, prefer, video };
        let result = self.st.join(leg, &MediaSignal::of(signal), None, self.now);
        self.st.settle(self.now);
        result.to_json()
    }

    /// A device's `sdpCandidate` / `candidate` media signal: the result, if the api has one.
    pub fn signal(&mut self, channel_id: &str, rtc_id: &str, api: &str, signal: &Value) -> Option<Value> {
        let result = self.st.signal(channel_id, rtc_id, rtc_id, api, &MediaSignal::of(signal), self.now);
        self.st.settle(self.now);
        result.map(|r| r.to_json())
    }

    /// The server's ICE ufrag of a leg (the first part of a STUN request's USERNAME).
    pub fn ufrag(&self, channel_id: &str, rtc_id: &str) -> Option<String> {
        let id = self.st.leg_of(channel_id, rtc_id)?;
        self.st.legs.get(&id).map(|l| l.ice.ufrag.clone())
    }

    /// One datagram on the media port from `src`, then the timers that are due.
    pub fn datagram(&mut self, buf: &[u8], src: SocketAddr) {
        self.st.on_packet(buf, src, self.now);
        self.st.settle(self.now);
        self.st.run_due(self.now);
    }

    /// Moves the time on (past the ICE hold, for one) and runs what is due; what the server
    /// would send is dropped. Returns the number of datagrams it would have sent.
    pub fn advance(&mut self, by: Duration) -> usize {
        self.now += by;
        self.st.run_due(self.now);
        self.st.out.take().len()
    }

    /// Tears the channel down, as the call driver does when a call ends.
    pub fn release(&mut self, channel_id: &str) {
        self.st.release(channel_id, self.now);
        self.st.out.take();
        self.st.events.clear();
        self.st.turn_released.clear();
    }

    /// Legs and STUN-routing entries left: both 0 once every channel is released.
    pub fn live(&self) -> (usize, usize, usize) {
        (self.st.legs.len(), self.st.by_ufrag.len(), self.st.by_addr.len())
    }
}

/// The TURN relay's long-term credential check, with one user, for driving the `turn` crate's
/// request handling as the relay does.
pub fn turn_auth(
    username: &str,
    realm: &str,
    password: &str,
    ttl: Duration,
) -> Arc<dyn turn::auth::AuthHandler + Send + Sync> {
    let creds = crate::turn::Credentials::new(realm);
    creds.add(username, password, ttl);
    Arc::new(creds)
}
