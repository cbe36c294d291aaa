//! The media server: the public [`MediaServer`] handle, its API and its workers (one I/O task,
//! UDP port and `State` each). The rest, by concern:
//!
//! - `signal`: joinChannel / sdpCandidate results, answers, new legs and their `Rtc`s;
//! - `state`: a worker's channels and legs, routing datagrams to legs, draining, timers;
//! - `leg` / `direct`: a leg and its str0m `Rtc`; the SRTP fast path of connected legs;
//! - `bridge`: forwarding between legs, recording, releasing channels;
//! - `stats`: a channel's statistics, typed (the ones of released channels are kept);
//! - `phone`: the synthesized phone side (audio, DTMF) and its 20 ms tick;
//! - `worker`: a worker's socket, lock and the carrying out of what its state queued;
//! - `io`: the I/O loop (batched receive and send, sleeping until the next timer).
//!
//! `State` is sans-IO (datagrams and time in; datagrams, events and TURN releases queued out),
//! so `tests.rs` runs it in memory against a str0m client, the way str0m tests itself.

mod bridge;
mod direct;
#[doc(hidden)]
pub mod fuzzing;
mod io;
mod leg;
mod phone;
mod signal;
mod state;
mod stats;
#[cfg(test)]
mod tests;
mod video;
mod worker;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use emu_core::retention::Retained;
use emu_core::{Clock, Millis};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use str0m::config::{CryptoProvider, DtlsCert};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, watch};

use crate::srtp;
use crate::turn::TurnRelay;
use crate::udp;
use crate::{MediaConfig, MediaEvent};

use io::{SOCKET_RECV_BUFFER, SOCKET_SEND_BUFFER, io_loop};
use state::State;
pub use stats::ChannelStats;
use worker::Worker;

type LegId = u64;

const SYNTH_PERIOD: Duration = Duration::from_millis(20);
const DTMF_DURATION: Duration = Duration::from_millis(100);

/// A finished recording.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingInfo {
    pub file: String,
    pub channel_id: String,
    pub tenant: String,
    pub duration_ms: u64,
    pub bytes: u64,
    pub created_ms: Millis,
    /// Download URL (`http_base` + `/recordings/<file>`).
    pub url: String,
}

/// Global counters.
#[derive(Debug, Default, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
struct Counters {
    packets_in: u64,
    packets_out: u64,
    /// Datagrams that are not STUN, DTLS, RTP or RTCP.
    garbage: u64,
    /// STUN for no known ufrag, or DTLS/RTP from an address no leg has validated.
    unknown_source: u64,
    /// Datagrams str0m refused to parse.
    unparseable: u64,
    /// SRTP packets dropped as replays (a duplicate, or older than the replay window).
    rtp_replayed: u64,
    send_errors: u64,
    legs_created: u64,
    legs_released: u64,
    offers_rejected: u64,
    events_dropped: u64,
}

impl Counters {
    /// Adds another worker's counters.
    fn add(&mut self, o: &Counters) {
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.garbage += o.garbage;
        self.unknown_source += o.unknown_source;
        self.unparseable += o.unparseable;
        self.rtp_replayed += o.rtp_replayed;
        self.send_errors += o.send_errors;
        self.legs_created += o.legs_created;
        self.legs_released += o.legs_released;
        self.offers_rejected += o.offers_rejected;
        self.events_dropped += o.events_dropped;
    }
}

/// The server's DTLS certificate. Generating it is the first use of the crypto library's random
/// generator, whose entropy set-up takes ~30 ms of CPU: done on a thread of its own from start,
/// so the emulator is ready at once; the first leg waits for it only if it comes sooner.
struct DtlsIdentity {
    provider: Arc<CryptoProvider>,
    cert: OnceLock<DtlsCert>,
}

impl DtlsIdentity {
    fn start(provider: Arc<CryptoProvider>) -> Arc<Self> {
        let id = Arc::new(DtlsIdentity { provider, cert: OnceLock::new() });
        let bg = id.clone();
        std::thread::Builder::new()
            .name("dtls-cert".into())
            .spawn(move || {
                bg.get();
            })
            .map_err(|e| tracing::warn!("no thread for the DTLS certificate ({e}); made at the first call"))
            .ok();
        id
    }

    fn get(&self) -> DtlsCert {
        self.cert
            .get_or_init(|| {
                // The rust-crypto provider this crate is built with always generates certificates.
                self.provider.dtls_provider.generate_certificate().expect("the DTLS provider generates certificates")
            })
            .clone()
    }
}

/// The media server. See the crate docs.
pub struct MediaServer {
    /// `media.workers` I/O tasks, each with its own UDP port and its share of the channels
    /// (both legs of a call on one worker, so forwarding never crosses threads).
    workers: Vec<Worker>,
    stop: watch::Sender<bool>,
    cfg: Arc<MediaConfig>,
    turn: Option<Arc<TurnRelay>>,
    /// The TURN URL handed to clients in every joinChannel result, written once.
    turn_url: Option<String>,
    clock: Clock,
}

/// The IP the server's candidate and relay addresses carry.
fn public_ip(cfg: &MediaConfig) -> IpAddr {
    let host = cfg.public_host.trim();
    if host.is_empty() {
        return if cfg.bind.is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { cfg.bind };
    }
    if let Ok(ip) = host.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return ip;
    }
    match (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(|a| a.is_ipv4()).or_else(|| (host, 0).to_socket_addrs().ok()?.next()))
    {
        Some(a) => a.ip(),
        None => {
            tracing::warn!(host, "cannot resolve the media public host; using 127.0.0.1");
            IpAddr::from([127, 0, 0, 1])
        }
    }
}

impl MediaServer {
    /// Binds the media port and the TURN port and starts the I/O task.
    pub async fn start(
        cfg: MediaConfig,
        clock: Clock,
    ) -> anyhow::Result<(Arc<MediaServer>, mpsc::Receiver<MediaEvent>)> {
        let ip = public_ip(&cfg);
        let turn = if cfg.turn_enabled {
            Some(Arc::new(TurnRelay::start(cfg.bind, cfg.turn_port, ip, &cfg.turn_realm).await?))
        } else {
            None
        };
        std::fs::create_dir_all(&cfg.recordings_dir)
            .with_context(|| format!("cannot create the recordings directory {}", cfg.recordings_dir.display()))?;
        // Each leg's DTLS handshake also hands its SRTP keys to the leg (`Direct`).
        let provider = Arc::new(srtp::capturing(str0m::crypto::from_feature_flags()));
        let cert = DtlsIdentity::start(provider.clone());
        let cfg = Arc::new(cfg);
        let (events, events_rx) = mpsc::channel(16_384);
        let (stop, stop_rx) = watch::channel(false);
        let mut workers = Vec::new();
        for i in 0..cfg.workers.max(1) {
            // Consecutive ports from `udp_port`, or any free ones.
            let port = if cfg.udp_port == 0 { 0 } else { cfg.udp_port.saturating_add(i as u16) };
            let socket = UdpSocket::bind(SocketAddr::new(cfg.bind, port))
                .await
                .with_context(|| format!("cannot listen on {}:{port} (media)", cfg.bind))?;
            let local_addr = socket.local_addr()?;
            let (rcvbuf, sndbuf) = udp::set_buffer_sizes(&socket, SOCKET_RECV_BUFFER, SOCKET_SEND_BUFFER);
            tracing::debug!(rcvbuf, sndbuf, "media socket buffers");
            let cand_addr = SocketAddr::new(ip, local_addr.port());
            let socket = Arc::new(socket);
            let state = State::new(cfg.clone(), clock.clone(), cand_addr, provider.clone(), cert.clone());
            workers.push(Worker {
                state: Mutex::new(state),
                wake: Notify::new(),
                socket,
                events: events.clone(),
                turn: turn.clone(),
                local_addr,
                cand_addr,
            });
        }
        let turn_url = turn.as_ref().map(|t| {
            let host = match cfg.public_host.trim() {
                "" => workers[0].cand_addr.ip().to_string(),
                host => host.to_string(),
            };
            format!("turn:{host}:{}?transport=udp", t.addr().port())
        });
        let server = Arc::new(MediaServer { workers, stop, cfg, turn, turn_url, clock });
        for i in 0..server.workers.len() {
            tokio::spawn(io_loop(server.clone(), i, stop_rx.clone()));
        }
        let ports: Vec<u16> = server.workers.iter().map(|w| w.local_addr.port()).collect();
        tracing::info!(media = %server.udp_addr(), ?ports, candidate = %server.candidate_addr(), turn = ?server.turn_addr(), "media server ready");
        Ok((server, events_rx))
    }

    /// The worker that serves a channel.
    fn worker(&self, channel_id: &str) -> &Worker {
        if self.workers.len() == 1 {
            return &self.workers[0];
        }
        use std::hash::BuildHasher;
        let h = rustc_hash::FxBuildHasher.hash_one(channel_id);
        &self.workers[(h % self.workers.len() as u64) as usize]
    }

    /// The bound media socket (the first worker's).
    pub fn udp_addr(&self) -> SocketAddr {
        self.workers[0].local_addr
    }

    /// The address in the server's ICE candidate (the first worker's).
    pub fn candidate_addr(&self) -> SocketAddr {
        self.workers[0].cand_addr
    }

    /// The TURN server's bound address.
    pub fn turn_addr(&self) -> Option<SocketAddr> {
        self.turn.as_ref().map(|t| t.addr())
    }

    /// The TURN URL handed to clients.
    pub fn turn_url(&self) -> Option<String> {
        self.turn_url.clone()
    }

    pub fn config(&self) -> &MediaConfig {
        &self.cfg
    }

    /// Whether a call is recorded: asked for (`needRecord`), or recorded by default for its type.
    pub fn should_record(&self, rtc_type: &str, requested: bool) -> bool {
        requested || self.cfg.record_by_default.for_type(rtc_type)
    }

    /// The phone in a bridged call pressed `digit`: RFC 4733 telephone-events to the device
    /// leg, or the DTMF tone in-band when the leg negotiated no telephone-event. Presses queue
    /// and go out one at a time (events never overlap) once the leg is connected. False when
    /// the channel has no device leg bridged with a phone, or `digit` is not a DTMF key.
    pub fn phone_dtmf(&self, channel_id: &str, digit: char) -> bool {
        self.worker(channel_id).with(|st| st.phone_dtmf(channel_id, digit))
    }

    /// Tears down every leg of the channel (TURN credentials and allocations included) and
    /// finishes its recording (→ [`MediaEvent::RecordingDone`]).
    pub fn release(&self, channel_id: &str) -> Option<RecordingInfo> {
        let now = Instant::now();
        self.worker(channel_id).with(|st| st.release(channel_id, now))
    }

    /// Per-leg media statistics of a channel; for a released channel, its final statistics
    /// (`"released": true`, the last 1000 channels kept); None when the channel is unknown.
    pub fn stats(&self, channel_id: &str) -> Option<ChannelStats> {
        let st = self.worker(channel_id).state.lock();
        st.channel_stats(channel_id, Instant::now())
            .or_else(|| st.recent.iter().rev().find(|(id, _)| id == channel_id).map(|(_, s)| s.clone()))
    }

    /// Server-wide counters and sizes.
    pub fn summary(&self) -> Value {
        let (mut channels, mut legs, mut connected, mut recordings) = (0, 0, 0, 0);
        let (mut rtp_in, mut rtp_out, mut direct_in, mut direct_out) = (0u64, 0u64, 0u64, 0u64);
        let mut counters = Counters::default();
        for w in &self.workers {
            let st = w.state.lock();
            channels += st.channels.len();
            legs += st.legs.len();
            // Summed here, not per channel: one short lock per worker, so a caller watching a
            // thousand calls does not hold up their audio.
            for l in st.legs.values() {
                connected += usize::from(l.is_connected());
                rtp_in += l.stats.rtp_in;
                rtp_out += l.stats.rtp_out;
                direct_in += l.stats.rtp_direct_in;
                direct_out += l.stats.rtp_direct_out;
            }
            recordings += st.recordings.len();
            counters.add(&st.counters());
        }
        json!({
            "udp": self.udp_addr().to_string(),
            "udpPorts": self.workers.iter().map(|w| w.local_addr.port()).collect::<Vec<_>>(),
            "candidate": self.candidate_addr().to_string(),
            "turn": self.turn_addr().map(|a| a.to_string()),
            "turnUrl": self.turn_url(),
            "channels": channels,
            "legs": legs,
            "connectedLegs": connected,
            "rtpPacketsIn": rtp_in,
            "rtpPacketsOut": rtp_out,
            "rtpDirectIn": direct_in,
            "rtpDirectOut": direct_out,
            "turnUsers": self.turn.as_ref().map(|t| t.users()),
            "turnRejected": self.turn.as_ref().map(|t| t.rejected()),
            "recordings": recordings,
            "counters": counters,
        })
    }

    /// The finished channels' statistics and the recordings index kept (all workers together;
    /// the caps are per worker), for `/metrics`.
    pub fn retained(&self) -> Vec<Retained> {
        let mut finished =
            Retained { collection: "finished_channels", items: 0, bytes: 0, limit: self.cfg.finished_channels };
        let mut recordings = Retained { collection: "recordings", items: 0, bytes: 0, limit: self.cfg.recordings };
        for w in &self.workers {
            let st = w.state.lock();
            finished.items += st.recent.len();
            finished.bytes += st.recent.bytes();
            recordings.items += st.recordings.len();
            recordings.bytes += st.recordings.bytes();
        }
        vec![finished, recordings]
    }

    /// Channels with at least one leg or a bridge.
    pub fn channel_count(&self) -> usize {
        self.workers.iter().map(|w| w.state.lock().channels.len()).sum()
    }

    pub fn leg_count(&self) -> usize {
        self.workers.iter().map(|w| w.state.lock().legs.len()).sum()
    }

    /// Whether `rtc_id`'s leg in the channel has ICE and DTLS up.
    pub fn is_connected(&self, channel_id: &str, rtc_id: &str) -> bool {
        let st = self.worker(channel_id).state.lock();
        st.leg_of(channel_id, rtc_id).and_then(|id| st.legs.get(&id)).is_some_and(|l| l.is_connected())
    }

    /// Open TURN allocations (relay ports).
    pub async fn turn_allocations(&self) -> usize {
        match &self.turn {
            Some(t) => t.allocations().await,
            None => 0,
        }
    }

    /// Finished recordings, oldest first.
    pub fn recordings(&self) -> Vec<RecordingInfo> {
        let mut all: Vec<RecordingInfo> =
            self.workers.iter().flat_map(|w| w.state.lock().recordings.iter().cloned().collect::<Vec<_>>()).collect();
        all.sort_by_key(|r| r.created_ms);
        all
    }

    /// The path of a recording file, if it is one of ours.
    pub fn recording_path(&self, file: &str) -> Option<PathBuf> {
        let ok = !file.is_empty()
            && file.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !file.starts_with('.');
        if !ok {
            return None;
        }
        let path = self.cfg.recordings_dir.join(file);
        path.is_file().then_some(path)
    }

    /// The download URL of a recording file.
    pub fn recording_url(&self, file: &str) -> String {
        format!("{}/recordings/{file}", self.cfg.http_base.trim_end_matches('/'))
    }

    /// Drops every channel (recordings in progress are finished), as an emulator reset does.
    pub fn reset(&self) {
        let now = Instant::now();
        for w in &self.workers {
            w.with(|st| {
                let ids: Vec<String> = st.channels.keys().cloned().collect();
                for id in ids {
                    st.release(&id, now);
                }
                st.recent.clear();
            });
        }
    }

    /// Stops the I/O task and the TURN server.
    pub async fn shutdown(&self) {
        self.reset();
        let _ = self.stop.send(true);
        if let Some(t) = &self.turn {
            t.close().await;
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    #[doc(hidden)]
    pub fn socket(&self) -> &UdpSocket {
        &self.workers[0].socket
    }
}
