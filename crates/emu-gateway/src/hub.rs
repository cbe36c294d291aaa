//! The gateway's shared state: live connections, registrations (rtcId → connection), ACK
//! de-duplication, server requests awaiting their ACK, and the queue of device requests for the
//! call engine. Connections feed it what they parse; the sweeper drives its timeouts.
//!
//! Here: the types, connections and the admin views. `session`: token binding, envelopes from
//! devices, registration and kicks. `delivery`: requests to devices, retransmission and the
//! sweeper's timeouts. `virtual_conn`: registrations of virtual devices (no network).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use emu_core::config::GatewayConfig;
use emu_core::events::{Detail, EnvelopeDetail, NewEvent};
use emu_core::retention::{Bounded, Chunks, Limit, Retained};
use emu_core::{Shared, TenantId};
use parking_lot::RwLock;
use rustc_hash::{FxBuildHasher, FxHashMap};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::envelope::{Envelope, server_from_raw};
use crate::sls::SlsSink;
use account_key::{Account, AccountKey};
use emu_core::signalling::DeviceRequest;

mod account_key;
mod delivery;
mod messages;
mod session;
mod virtual_conn;
pub use messages::{CustomMessage, CustomMessageError};
pub use virtual_conn::VIRTUAL_TRANSPORT;

pub type ConnId = u64;

/// The parts of a bound connection an envelope needs.
struct Identity {
    tenant: TenantId,
    // Shared with the connection's binding: an envelope copies no names.
    rtc_id: Arc<str>,
    device_id: Arc<str>,
    client_id: Arc<str>,
    /// Where its messages go: `<conferenceTopic>/p2p/<clientId>`.
    topic: Arc<str>,
    /// Logged in with a custom-account (no-account) token.
    custom_account: bool,
}

/// What a connection task is told to do by others.
#[derive(Debug)]
pub enum Outbound {
    Packet(Bytes),
    /// An ACK the engine held back and the answer that follows it, written together.
    AckAndPacket(Bytes, Bytes),
    Close(&'static str),
}

/// The ACK of a device request the media server answers at once (`joinChannel`, `sdpCandidate`),
/// held back by the gateway so that the engine sends it in the same write as the answer
/// ([`Hub::send_message_after`]): one system call and one wake-up of the connection instead of
/// two each, on every call. The device sees the same bytes in the same order. Whoever takes a
/// request out of the engine's queue must send its ACK ([`Hub::release_ack`]).
#[derive(Debug)]
pub struct HeldAck {
    conn: ConnId,
    packet: Bytes,
}

/// A device's authenticated identity on one connection.
#[derive(Debug, Clone)]
pub struct Binding {
    pub tenant: TenantId,
    pub rtc_id: Arc<str>,
    pub device_id: Arc<str>,
    pub token_data: String,
    pub token_expires_ms: u64,
    /// The token was issued in custom-account (no-account) mode.
    pub custom_account: bool,
}

struct Conn {
    tx: mpsc::Sender<Outbound>,
    client_id: Arc<str>,
    /// `<conferenceTopic>/p2p/<clientId>`, written once: every message to the device goes there.
    topic: Arc<str>,
    peer: String,
    transport: &'static str,
    connected_ms: u64,
    binding: Option<Binding>,
    /// When `$SYS/tokenExpireNotice` went out for the current token.
    expiry_notice_at: Option<Instant>,
}

/// Why `POST /admin/devices/{rtcId}/kick` could not kick a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KickError {
    #[error("no device is registered for this account")]
    NotRegistered,
    #[error("the device is offline (its connection is gone; the registration waits out the grace period)")]
    Offline,
    #[error("a virtual device has no connection to kick; change it with /admin/voip/devices")]
    Virtual,
}

struct Registration {
    conn: Option<ConnId>,
    client_id: String,
    /// The client's topic (see `Conn::topic`).
    topic: Arc<str>,
    device_id: String,
    registered_ms: u64,
    last_heartbeat: Instant,
    last_heartbeat_ms: u64,
    heartbeats: u64,
    disconnected_at: Option<Instant>,
    /// A virtual device's (hub/virtual_conn.rs): it never misses a heartbeat.
    is_virtual: bool,
}

/// A server request waiting for the device's ACK.
struct Pending {
    tenant: TenantId,
    /// Shared with the registration's key and the request's log event.
    rtc_id: Arc<str>,
    message_type: Cow<'static, str>,
    channel_id: Option<String>,
    packet: Bytes,
    attempts: u32,
    next_at: Instant,
    /// When it was first sent (the ACK latency metric).
    sent_at: Instant,
    /// A custom message push: whose receipt its ACK (or its absence) decides.
    awaiting: Option<messages::AwaitingAck>,
}

/// One MQTT client's recent requestIds (oldest first, with when each was ACKed) and their ACKs,
/// within `retention.dedupe_window` and `retention.dedupe_client_bytes` (an entry weighs its id
/// and its ACK), each for at most [`Hub::dedupe_ttl`].
struct Dedupe {
    /// The id is shared with `acks` (one copy in `stored`).
    order: Bounded<(Bytes, Instant)>,
    acks: FxHashMap<Bytes, Bytes>,
    /// The requestIds and the ACKs' bytes: copies, one after another, so that the packet written
    /// to the connection is freed once written and an entry evicted frees nothing of its own.
    stored: Chunks,
}

impl Dedupe {
    /// Chunks from 512 bytes (about one ACK: a device that sends little holds little) up to 8 KiB
    /// (a dozen ACKs).
    fn new(limit: Limit) -> Dedupe {
        Dedupe { order: Bounded::new(limit), acks: FxHashMap::default(), stored: Chunks::new(512, 8 << 10) }
    }
}

/// What the gateway tells the call engine.
#[derive(Debug)]
pub enum GatewayEvent {
    /// A device's request, with its ACK when the gateway held it back for the engine to send
    /// with its answer ([`HeldAck`]).
    Request(DeviceRequest, Option<HeldAck>),
    /// A device ACKed one of our requests of a type the engine acts on
    /// (`emu_core::engine::acts_on_ack`: `called`, whose ACK triggers `ringing`).
    Ack {
        tenant: TenantId,
        rtc_id: String,
        message_type: String,
        request_id: String,
        code: i64,
    },
    Registered {
        tenant: TenantId,
        rtc_id: String,
        device_id: String,
    },
    /// The device is gone: kicked, heartbeat lost, or not back within the grace period.
    Offline {
        tenant: TenantId,
        rtc_id: String,
        reason: &'static str,
    },
    /// A request we sent was never ACKed after every retransmission.
    Undelivered {
        tenant: TenantId,
        rtc_id: String,
        message_type: String,
        request_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    NotRegistered,
}

/// One row of `GET /admin/devices`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceInfo {
    pub tenant: String,
    #[serde(rename = "rtcId")]
    pub rtc_id: String,
    #[serde(rename = "deviceId")]
    pub device_id: String,
    #[serde(rename = "clientId")]
    pub client_id: String,
    pub online: bool,
    #[schema(required = true)]
    pub connection: Option<ConnectionInfo>,
    #[serde(rename = "registeredMs")]
    pub registered_ms: u64,
    #[serde(rename = "lastHeartbeatMs")]
    pub last_heartbeat_ms: u64,
    pub heartbeats: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionInfo {
    pub id: ConnId,
    pub peer: String,
    /// `websocket`, `tcp` or `virtual`.
    pub transport: &'static str,
    #[serde(rename = "connectedMs")]
    pub connected_ms: u64,
    #[serde(rename = "tokenExpiresMs")]
    #[schema(required = true)]
    pub token_expires_ms: Option<u64>,
}

pub struct Hub {
    pub shared: Shared,
    pub cfg: GatewayConfig,
    pub server_id: String,
    pub conference_topic: String,
    /// The one topic devices publish to: `<conferenceTopic>/p2p/<serverId>`.
    pub server_topic: String,
    /// `from` of every server envelope, serialised once.
    server_from: Box<RawValue>,
    pub sls: SlsSink,
    next_conn: AtomicU64,
    conns: DashMap<ConnId, Conn, FxBuildHasher>,
    clients: DashMap<String, ConnId, FxBuildHasher>,
    regs: DashMap<Account, Registration, FxBuildHasher>,
    dedupe: DashMap<String, Dedupe, FxBuildHasher>,
    /// By requestId, the one its log event shares.
    pending: DashMap<Arc<str>, Pending, FxBuildHasher>,
    engine: RwLock<Option<mpsc::UnboundedSender<GatewayEvent>>>,
}

impl Hub {
    pub fn new(shared: Shared, sls_endpoint: String) -> Arc<Self> {
        let cfg = shared.config.gateway.clone();
        let server_id = shared.token_settings.server_id.clone();
        let conference_topic = shared.token_settings.conference_topic.clone();
        // The gateway records envelopes as bytes; it also knows how to make them readable.
        shared.events.set_wire_reader(crate::media_signal::readable_body);
        let retention = shared.config.retention;
        Arc::new(Hub {
            server_topic: format!("{conference_topic}/p2p/{server_id}"),
            server_from: server_from_raw(&server_id),
            sls: SlsSink::new(sls_endpoint, Limit::new(retention.sls_uploads, retention.sls_bytes)),
            shared,
            cfg,
            server_id,
            conference_topic,
            next_conn: AtomicU64::new(1),
            conns: DashMap::default(),
            clients: DashMap::default(),
            regs: DashMap::default(),
            dedupe: DashMap::default(),
            pending: DashMap::default(),
            engine: RwLock::new(None),
        })
    }

    /// The call engine's end of the event queue. A second call replaces the first receiver.
    /// Unbounded on purpose: a device request the gateway has ACKed must reach the engine, even
    /// while another client floods the gateway (the ACK-only messages never enter this queue).
    pub fn attach_engine(&self) -> mpsc::UnboundedReceiver<GatewayEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.engine.write() = Some(tx);
        rx
    }

    fn to_engine(&self, event: GatewayEvent) {
        let undelivered = match self.engine.read().as_ref() {
            Some(tx) => {
                let failed = tx.send(event).err().map(|e| e.0);
                if failed.is_some() {
                    tracing::error!("the call engine has stopped; device event not delivered");
                }
                failed
            }
            None => Some(event),
        };
        // The device still hears that its request arrived.
        if let Some(GatewayEvent::Request(_, Some(ack))) = undelivered {
            self.release_ack(ack);
        }
    }

    /// Sends an ACK the gateway held back for the engine.
    pub fn release_ack(&self, ack: HeldAck) {
        self.send_packet(ack.conn, ack.packet);
    }

    fn log(
        &self,
        kind: &'static str,
        tenant: Option<TenantId>,
        rtc_id: Option<impl Into<Arc<str>>>,
        channel_id: Option<String>,
        detail: impl Into<Detail>,
    ) {
        self.record(kind, tenant, rtc_id.map(Into::into), channel_id, detail.into(), None);
    }

    /// An envelope event that keeps the envelope's bytes (see `EventLog::readable`).
    fn log_wire(
        &self,
        kind: &'static str,
        tenant: Option<TenantId>,
        rtc_id: Option<impl Into<Arc<str>>>,
        channel_id: Option<String>,
        detail: EnvelopeDetail,
        wire: &[u8],
    ) {
        self.record(kind, tenant, rtc_id.map(Into::into), channel_id, detail.into(), Some(wire));
    }

    /// `rtc_id` is shared when the caller holds it as `Arc<str>` (a connection's binding).
    fn record(
        &self,
        kind: &'static str,
        tenant: Option<TenantId>,
        rtc_id: Option<Arc<str>>,
        channel_id: Option<String>,
        detail: Detail,
        wire: Option<&[u8]>,
    ) {
        let event = NewEvent {
            kind,
            channel_id,
            rtc_id,
            tenant: tenant.map(|t| self.shared.tenants.get(t).name.clone()),
            detail,
            wire: None,
        };
        match wire {
            Some(wire) => self.shared.events.record_envelope(event, wire),
            None => self.shared.events.record(event),
        }
    }

    /// A new MQTT session (after CONNECT). A live connection with the same clientId is taken
    /// over, as MQTT requires.
    pub fn open(&self, client_id: &str, peer: String, transport: &'static str, tx: mpsc::Sender<Outbound>) -> ConnId {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let now = self.shared.clock.now_ms();
        self.conns.insert(
            id,
            Conn {
                tx,
                client_id: client_id.into(),
                topic: Self::client_topic(client_id, &self.conference_topic).into(),
                peer,
                transport,
                connected_ms: now,
                binding: None,
                expiry_notice_at: None,
            },
        );
        if let Some(old) = self.clients.insert(client_id.to_string(), id)
            && old != id
        {
            self.close_conn(old, "taken over by a new connection with the same clientId");
        }
        id
    }

    /// The connection is gone (socket closed, with or without DISCONNECT).
    pub fn closed(&self, conn: ConnId) {
        let Some((_, c)) = self.conns.remove(&conn) else { return };
        self.clients.remove_if(&*c.client_id, |_, v| *v == conn);
        if let Some(b) = c.binding
            && let Some(mut reg) = self.regs.get_mut(&(b.tenant, &*b.rtc_id) as &dyn AccountKey)
            && reg.conn == Some(conn)
        {
            reg.conn = None;
            reg.disconnected_at = Some(Instant::now());
            drop(reg);
            tracing::info!(rtc_id = %b.rtc_id, conn, "device disconnected; registration kept for the grace period");
            self.log("device.disconnected", Some(b.tenant), Some(b.rtc_id.clone()), None, json!({"conn": conn}));
        }
    }

    fn close_conn(&self, conn: ConnId, reason: &'static str) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.tx.try_send(Outbound::Close(reason));
        }
    }

    fn send_packet(&self, conn: ConnId, packet: Bytes) {
        self.send_outbound(conn, Outbound::Packet(packet));
    }

    fn send_outbound(&self, conn: ConnId, out: Outbound) {
        if let Some(c) = self.conns.get(&conn)
            && c.tx.try_send(out).is_err()
        {
            // A client that does not read its messages is cut off rather than buffered forever.
            tracing::warn!(conn, "connection not reading; closing it");
            let _ = c.tx.try_send(Outbound::Close("outbound queue full"));
        }
    }

    fn client_topic(client_id: &str, conference_topic: &str) -> String {
        format!("{conference_topic}/p2p/{client_id}")
    }

    fn binding(&self, conn: ConnId) -> Option<Binding> {
        self.conns.get(&conn).and_then(|c| c.binding.clone())
    }

    pub fn is_bound(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.binding.is_some())
    }

    /// Closes every connection and forgets every registration (`POST /admin/reset`).
    pub fn reset(&self) {
        let conns: Vec<ConnId> = self.conns.iter().map(|c| *c.key()).collect();
        for c in conns {
            self.close_conn(c, "emulator reset");
        }
        self.regs.clear();
        self.pending.clear();
        self.dedupe.clear();
        self.sls.clear();
    }

    pub fn online(&self, tenant: TenantId, rtc_id: &str) -> bool {
        self.regs.get(&(tenant, rtc_id) as &dyn AccountKey).is_some_and(|r| r.conn.is_some())
    }

    /// Registered, possibly reconnecting within the grace period.
    pub fn registered(&self, tenant: TenantId, rtc_id: &str) -> bool {
        self.regs.contains_key(&(tenant, rtc_id) as &dyn AccountKey)
    }

    pub fn devices(&self) -> Vec<DeviceInfo> {
        let mut v: Vec<DeviceInfo> = self
            .regs
            .iter()
            .map(|r| {
                let Account { tenant, rtc_id } = r.key();
                let connection = r.conn.and_then(|id| {
                    self.conns.get(&id).map(|c| ConnectionInfo {
                        id,
                        peer: c.peer.clone(),
                        transport: c.transport,
                        connected_ms: c.connected_ms,
                        token_expires_ms: c.binding.as_ref().map(|b| b.token_expires_ms),
                    })
                });
                DeviceInfo {
                    tenant: self.shared.tenants.get(*tenant).name.to_string(),
                    rtc_id: rtc_id.to_string(),
                    device_id: r.device_id.clone(),
                    client_id: r.client_id.clone(),
                    online: r.conn.is_some(),
                    connection,
                    registered_ms: r.registered_ms,
                    last_heartbeat_ms: r.last_heartbeat_ms,
                    heartbeats: r.heartbeats,
                }
            })
            .collect();
        v.sort_by(|a, b| (&a.tenant, &a.rtc_id).cmp(&(&b.tenant, &b.rtc_id)));
        v
    }

    /// Open MQTT connections (virtual devices' have no socket and are not counted).
    pub fn connection_count(&self) -> usize {
        self.conns.iter().filter(|c| c.transport != VIRTUAL_TRANSPORT).count()
    }
}
impl emu_core::lifecycle::Reset for Hub {
    fn reset(&self) {
        Hub::reset(self);
    }
}
