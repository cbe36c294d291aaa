//! The gateway's shared state: live connections, registrations (rtcId → connection), ACK
//! de-duplication, server requests awaiting their ACK, and the queue of device requests for the
//! call engine. Connections feed it what they parse; the sweeper drives its timeouts.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use emu_core::accounts::{DirectoryEvent, TokenError, TokenRecord};
use emu_core::config::GatewayConfig;
use emu_core::events::NewEvent;
use emu_core::{Shared, TenantId};
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::envelope::{Envelope, Inbound, channel_id_of, empty_body, server_from_raw};
use crate::media_signal;
use crate::mqtt;
use crate::sls::SlsSink;
use emu_core::signalling::DeviceRequest;

mod virtual_conn;
pub use virtual_conn::VIRTUAL_TRANSPORT;

pub type ConnId = u64;

/// The parts of a bound connection an envelope needs.
struct Identity {
    tenant: TenantId,
    rtc_id: String,
    device_id: String,
    client_id: String,
}

/// What a connection task is told to do by others.
#[derive(Debug)]
pub enum Outbound {
    Packet(Bytes),
    Close(&'static str),
}

/// A device's authenticated identity on one connection.
#[derive(Debug, Clone)]
pub struct Binding {
    pub tenant: TenantId,
    pub rtc_id: String,
    pub device_id: String,
    pub token_data: String,
    pub token_expires_ms: u64,
}

struct Conn {
    tx: mpsc::Sender<Outbound>,
    client_id: String,
    peer: String,
    transport: &'static str,
    connected_ms: u64,
    binding: Option<Binding>,
    /// When `$SYS/tokenExpireNotice` went out for the current token.
    expiry_notice_at: Option<Instant>,
}

struct Registration {
    conn: Option<ConnId>,
    client_id: String,
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
    rtc_id: String,
    message_type: String,
    channel_id: Option<String>,
    packet: Bytes,
    attempts: u32,
    next_at: Instant,
}

/// The last requestIds of one MQTT client and the ACKs we sent for them.
#[derive(Default)]
struct Dedupe {
    order: VecDeque<String>,
    acks: HashMap<String, Bytes>,
    last_used: Option<Instant>,
}

const DEDUPE_WINDOW: usize = 256;

/// What the gateway tells the call engine.
#[derive(Debug, Clone)]
pub enum GatewayEvent {
    Request(DeviceRequest),
    /// A device ACKed one of our requests (`called` ACKs trigger `ringing`).
    Ack {
        tenant: TenantId,
        rtc_id: String,
        message_type: String,
        request_id: String,
        code: i64,
        body: Value,
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
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    pub tenant: String,
    #[serde(rename = "rtcId")]
    pub rtc_id: String,
    #[serde(rename = "deviceId")]
    pub device_id: String,
    #[serde(rename = "clientId")]
    pub client_id: String,
    pub online: bool,
    pub connection: Option<ConnectionInfo>,
    #[serde(rename = "registeredMs")]
    pub registered_ms: u64,
    #[serde(rename = "lastHeartbeatMs")]
    pub last_heartbeat_ms: u64,
    pub heartbeats: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionInfo {
    pub id: ConnId,
    pub peer: String,
    pub transport: &'static str,
    #[serde(rename = "connectedMs")]
    pub connected_ms: u64,
    #[serde(rename = "tokenExpiresMs")]
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
    conns: DashMap<ConnId, Conn>,
    clients: DashMap<String, ConnId>,
    regs: DashMap<(TenantId, String), Registration>,
    dedupe: DashMap<String, Dedupe>,
    pending: DashMap<String, Pending>,
    engine: RwLock<Option<mpsc::UnboundedSender<GatewayEvent>>>,
}

impl Hub {
    pub fn new(shared: Shared, sls_endpoint: String) -> Arc<Self> {
        let cfg = shared.config.gateway.clone();
        let server_id = shared.token_settings.server_id.clone();
        let conference_topic = shared.token_settings.conference_topic.clone();
        Arc::new(Hub {
            server_topic: format!("{conference_topic}/p2p/{server_id}"),
            server_from: server_from_raw(&server_id),
            sls: SlsSink::new(sls_endpoint),
            shared,
            cfg,
            server_id,
            conference_topic,
            next_conn: AtomicU64::new(1),
            conns: DashMap::new(),
            clients: DashMap::new(),
            regs: DashMap::new(),
            dedupe: DashMap::new(),
            pending: DashMap::new(),
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
        if let Some(tx) = self.engine.read().as_ref()
            && tx.send(event).is_err()
        {
            tracing::error!("the call engine has stopped; device event not delivered");
        }
    }

    fn log(
        &self,
        kind: &'static str,
        tenant: Option<TenantId>,
        rtc_id: Option<&str>,
        channel_id: Option<String>,
        detail: Value,
    ) {
        self.shared.events.record(NewEvent {
            kind,
            channel_id,
            rtc_id: rtc_id.map(str::to_string),
            tenant: tenant.map(|t| self.shared.tenants.get(t).name.clone()),
            detail,
        });
    }

    // ---- connections -------------------------------------------------------------------------

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
        self.clients.remove_if(&c.client_id, |_, v| *v == conn);
        if let Some(b) = c.binding
            && let Some(mut reg) = self.regs.get_mut(&(b.tenant, b.rtc_id.clone()))
            && reg.conn == Some(conn)
        {
            reg.conn = None;
            reg.disconnected_at = Some(Instant::now());
            drop(reg);
            tracing::info!(rtc_id = %b.rtc_id, conn, "device disconnected; registration kept for the grace period");
            self.log("device.disconnected", Some(b.tenant), Some(&b.rtc_id), None, json!({"conn": conn}));
        }
    }

    fn close_conn(&self, conn: ConnId, reason: &'static str) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.tx.try_send(Outbound::Close(reason));
        }
    }

    fn send_packet(&self, conn: ConnId, packet: Bytes) {
        if let Some(c) = self.conns.get(&conn)
            && c.tx.try_send(Outbound::Packet(packet)).is_err()
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

    // ---- authentication ----------------------------------------------------------------------

    /// `$SYS/uploadToken`: bind the connection to the token's account, or tell the SDK why not.
    pub fn upload_token(&self, conn: ConnId, payload: &[u8]) {
        let token = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        let now = self.shared.clock.now_ms();
        let Some(client_id) = self.conns.get(&conn).map(|c| c.client_id.clone()) else { return };
        let notice = match self.shared.directory.validate_token(&token, now) {
            Ok(rec) => match self.check_binding(conn, &client_id, &rec) {
                Ok(()) => {
                    self.bind(conn, &client_id, rec);
                    return;
                }
                Err(why) => {
                    tracing::warn!(conn, client_id, "token refused: {why}");
                    "$SYS/tokenInvalidNotice"
                }
            },
            Err(TokenError::Expired) => "$SYS/tokenExpireNotice",
            Err(TokenError::Invalid) => "$SYS/tokenInvalidNotice",
        };
        tracing::info!(conn, client_id, notice, "token not accepted");
        self.log("token.refused", None, None, None, json!({"conn": conn, "clientId": client_id, "notice": notice}));
        self.send_packet(conn, mqtt::publish(notice, &b"{}"[..]));
    }

    /// A token binds a connection to its account only if the MQTT clientId is one the platform
    /// issued to that account, and a refreshed token must be for the account already bound.
    fn check_binding(&self, conn: ConnId, client_id: &str, rec: &TokenRecord) -> Result<(), String> {
        if let Some(b) = self.binding(conn)
            && (b.tenant != rec.tenant || b.rtc_id != rec.rtc_id)
        {
            return Err(format!("the connection belongs to {}, the token to {}", b.rtc_id, rec.rtc_id));
        }
        let prefix = format!("GID_VOIP@@@ClientId_{}_", rec.rtc_id);
        if client_id != rec.client_id && !client_id.starts_with(&prefix) {
            return Err(format!("clientId {client_id} was not issued to account {}", rec.rtc_id));
        }
        Ok(())
    }

    fn bind(&self, conn: ConnId, client_id: &str, rec: TokenRecord) {
        let binding = Binding {
            tenant: rec.tenant,
            rtc_id: rec.rtc_id.clone(),
            device_id: rec.device_id.clone(),
            token_data: rec.token_data.clone(),
            token_expires_ms: rec.expires_ms,
        };
        if let Some(mut c) = self.conns.get_mut(&conn) {
            c.binding = Some(binding);
            c.expiry_notice_at = None;
        }
        // A reconnect within the grace period resumes the registration on this connection.
        let mut resumed = false;
        if let Some(mut reg) = self.regs.get_mut(&(rec.tenant, rec.rtc_id.clone()))
            && reg.client_id == client_id
            && reg.conn != Some(conn)
        {
            reg.conn = Some(conn);
            reg.disconnected_at = None;
            resumed = true;
        }
        if resumed {
            self.flush_pending_for(rec.tenant, &rec.rtc_id);
        }
        tracing::info!(conn, rtc_id = %rec.rtc_id, resumed, "token accepted");
        self.log(
            "token.accepted",
            Some(rec.tenant),
            Some(&rec.rtc_id),
            None,
            json!({"conn": conn, "clientId": client_id, "resumed": resumed}),
        );
    }

    /// Whether this connection may subscribe to `filter`: only to its own conferenceTopic.
    pub fn may_subscribe(&self, conn: ConnId, filter: &str) -> bool {
        self.is_bound(conn) && filter == self.conference_topic
    }

    // ---- envelopes from devices ---------------------------------------------------------------

    /// An envelope a bound device published to the server topic. Err closes the connection.
    pub fn envelope(&self, conn: ConnId, payload: &[u8]) -> Result<(), String> {
        let Some(who) = self.identity(conn) else {
            return Ok(()); // not authenticated: dropped (the caller logs)
        };
        let env = Inbound::parse(payload)?;
        if env.response {
            return self.ack_received(&who, env);
        }
        if let Some(ack) = self.dedupe_lookup(&who.client_id, &env.request_id) {
            tracing::debug!(conn, request_id = %env.request_id, "retransmission; ACK re-sent, not processed again");
            self.send_packet(conn, ack);
            return Ok(());
        }
        let now = self.shared.clock.now_ms();
        // Heartbeats and STS requests are answered without reading their body.
        let (code, ack_body, request_body, media) = match &*env.message_type {
            "cs_register" => {
                self.register(conn, &who);
                (200, empty_body(), Value::Null, None)
            }
            "cs_get_sls_sts" => (200, self.sls.credentials(now), Value::Null, None),
            _ => {
                let body = env.body_value()?;
                match body.get("mediaSignal").and_then(Value::as_str) {
                    Some(m) => match media_signal::decode(m, self.cfg.max_media_signal_bytes) {
                        Err(e) => {
                            tracing::warn!(conn, rtc_id = %who.rtc_id, message_type = %env.message_type, "refused: {e}");
                            (400, json!({"error": e.to_string()}), body, None)
                        }
                        Ok(m) => (200, empty_body(), body, Some(m)),
                    },
                    None => (200, empty_body(), body, None),
                }
            }
        };
        let channel_id = channel_id_of(&request_body, media.as_ref());
        self.log(
            "envelope.in",
            Some(who.tenant),
            Some(&who.rtc_id),
            channel_id.clone(),
            json!({"messageType": env.message_type, "requestId": env.request_id, "code": code}),
        );
        let ack = env.ack_bytes(code, &ack_body, &self.server_from, now);
        let packet = mqtt::publish(&Self::client_topic(&who.client_id, &self.conference_topic), ack);
        self.dedupe_store(&who.client_id, &env.request_id, packet.clone());
        self.send_packet(conn, packet);
        // ACK-only messages (docs/protocol.md#ack-only: reportStatus, stat, client ACKs of notices) stop here.
        let for_engine = !matches!(&*env.message_type, "cs_register" | "cs_get_sls_sts" | "reportStatus" | "stat");
        if code == 200 && for_engine {
            // Decoded once, here: the engine takes typed requests.
            self.to_engine(GatewayEvent::Request(DeviceRequest::decode(
                who.tenant,
                &who.rtc_id,
                &env.message_type,
                &request_body,
                media.as_ref(),
            )));
        }
        Ok(())
    }

    /// Who a bound connection is, with the few fields an envelope needs (not the whole token).
    fn identity(&self, conn: ConnId) -> Option<Identity> {
        let c = self.conns.get(&conn)?;
        let b = c.binding.as_ref()?;
        Some(Identity {
            tenant: b.tenant,
            rtc_id: b.rtc_id.clone(),
            device_id: b.device_id.clone(),
            client_id: c.client_id.clone(),
        })
    }

    /// A device's ACK of one of our requests: no longer pending, and news for the call engine.
    fn ack_received(&self, who: &Identity, env: Inbound) -> Result<(), String> {
        let body = env.body_value()?;
        let pending = self.pending.remove(env.request_id.as_ref()).map(|(_, p)| p);
        let known = pending.is_some();
        let channel_id = pending.and_then(|p| p.channel_id).or_else(|| channel_id_of(&body, None));
        self.log(
            "envelope.ack",
            Some(who.tenant),
            Some(&who.rtc_id),
            channel_id,
            json!({"messageType": env.message_type, "requestId": env.request_id, "code": env.response_code, "known": known}),
        );
        self.to_engine(GatewayEvent::Ack {
            tenant: who.tenant,
            rtc_id: who.rtc_id.clone(),
            message_type: env.message_type.into_owned(),
            request_id: env.request_id.into_owned(),
            code: env.response_code,
            body,
        });
        Ok(())
    }

    fn dedupe_lookup(&self, client_id: &str, request_id: &str) -> Option<Bytes> {
        let mut d = self.dedupe.get_mut(client_id)?;
        d.last_used = Some(Instant::now());
        d.acks.get(request_id).cloned()
    }

    fn dedupe_store(&self, client_id: &str, request_id: &str, ack: Bytes) {
        let mut d = self.dedupe.entry(client_id.to_string()).or_default();
        d.last_used = Some(Instant::now());
        if d.acks.insert(request_id.to_string(), ack).is_none() {
            d.order.push_back(request_id.to_string());
            if d.order.len() > DEDUPE_WINDOW
                && let Some(old) = d.order.pop_front()
            {
                d.acks.remove(&old);
            }
        }
    }

    // ---- registration ------------------------------------------------------------------------

    /// `cs_register`: registers the device, or counts a heartbeat. Another connection registered
    /// for the same account is kicked (`cs_quit`).
    fn register(&self, conn: ConnId, b: &Identity) {
        let client_id = b.client_id.as_str();
        let now = Instant::now();
        let now_ms = self.shared.clock.now_ms();
        let fresh = Registration {
            conn: Some(conn),
            client_id: client_id.into(),
            device_id: b.device_id.clone(),
            registered_ms: now_ms,
            last_heartbeat: now,
            last_heartbeat_ms: now_ms,
            heartbeats: 0,
            disconnected_at: None,
            is_virtual: false,
        };
        let kicked = match self.regs.entry((b.tenant, b.rtc_id.clone())) {
            Entry::Occupied(mut e) if e.get().conn == Some(conn) => {
                let r = e.get_mut();
                r.last_heartbeat = now;
                r.last_heartbeat_ms = now_ms;
                r.heartbeats += 1;
                return;
            }
            Entry::Occupied(mut e) => {
                let old = e.get().conn;
                e.insert(fresh);
                old
            }
            Entry::Vacant(e) => {
                e.insert(fresh);
                None
            }
        };
        if let Some(old) = kicked {
            self.kick(old, "logged in elsewhere");
        }
        tracing::info!(conn, rtc_id = %b.rtc_id, device_id = %b.device_id, "device registered");
        self.log(
            "device.registered",
            Some(b.tenant),
            Some(&b.rtc_id),
            None,
            json!({"conn": conn, "deviceId": b.device_id, "kicked": kicked}),
        );
        self.to_engine(GatewayEvent::Registered {
            tenant: b.tenant,
            rtc_id: b.rtc_id.clone(),
            device_id: b.device_id.clone(),
        });
        self.flush_pending_for(b.tenant, &b.rtc_id);
    }

    /// Sends `cs_quit` (the SDK reports 3110000) and closes the connection shortly after, giving
    /// the SDK time to ACK and stop its call as it does against the cloud.
    fn kick(&self, conn: ConnId, reason: &'static str) {
        let Some((client_id, binding)) = self.conns.get_mut(&conn).map(|mut c| (c.client_id.clone(), c.binding.take()))
        else {
            return;
        };
        let rtc_id = binding.as_ref().map(|b| b.rtc_id.clone()).unwrap_or_default();
        let env =
            Envelope::server_request("cs_quit", empty_body(), &rtc_id, &self.server_id, self.shared.clock.now_ms());
        self.send_packet(conn, mqtt::publish(&Self::client_topic(&client_id, &self.conference_topic), env.to_bytes()));
        tracing::info!(conn, rtc_id, reason, "device kicked");
        self.log(
            "device.kicked",
            binding.as_ref().map(|b| b.tenant),
            Some(&rtc_id),
            None,
            json!({"conn": conn, "reason": reason}),
        );
        if let Some(b) = binding {
            self.to_engine(GatewayEvent::Offline { tenant: b.tenant, rtc_id: b.rtc_id, reason: "kicked" });
        }
        if let Some(tx) = self.conns.get(&conn).map(|c| c.tx.clone()) {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let _ = tx.send(Outbound::Close("kicked")).await;
            });
        }
    }

    /// The directory says an account fetched a token for another device: kick the old login.
    pub fn on_directory_event(&self, event: DirectoryEvent) {
        match event {
            DirectoryEvent::DeviceSuperseded { tenant, rtc_id, old_device, .. } => {
                let key = (tenant, rtc_id);
                let stale = self.regs.get(&key).and_then(|r| (r.device_id == old_device).then_some(r.conn)).flatten();
                if let Some(conn) = stale {
                    self.regs.remove(&key);
                    self.kick(conn, "a token was issued for another device");
                }
            }
            // The admin reset calls `Hub::reset` itself, before it answers.
            DirectoryEvent::Reset => {}
        }
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

    // ---- server → device ---------------------------------------------------------------------

    pub fn online(&self, tenant: TenantId, rtc_id: &str) -> bool {
        self.regs.get(&(tenant, rtc_id.to_string())).is_some_and(|r| r.conn.is_some())
    }

    /// Registered, possibly reconnecting within the grace period.
    pub fn registered(&self, tenant: TenantId, rtc_id: &str) -> bool {
        self.regs.contains_key(&(tenant, rtc_id.to_string()))
    }

    /// Sends a request envelope to a registered device, with fresh ids, and re-sends it until
    /// ACKed. Returns the requestId. A device reconnecting gets it when it is back.
    pub fn send_request(
        &self,
        tenant: TenantId,
        rtc_id: &str,
        message_type: &str,
        body: Value,
    ) -> Result<String, SendError> {
        let (conn, client_id) = match self.regs.get(&(tenant, rtc_id.to_string())) {
            Some(r) => (r.conn, r.client_id.clone()),
            None => return Err(SendError::NotRegistered),
        };
        let now = self.shared.clock.now_ms();
        let env = Envelope::server_request(message_type, body, rtc_id, &self.server_id, now);
        let channel_id = env.channel_id(None);
        let packet = mqtt::publish(&Self::client_topic(&client_id, &self.conference_topic), env.to_bytes());
        // The body without the (encoded) mediaSignal: codes, causes and digits, readable.
        let shown = match env.body.as_object() {
            Some(o) => o.iter().filter(|(k, _)| *k != "mediaSignal").map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => env.body.clone(),
        };
        self.log(
            "envelope.out",
            Some(tenant),
            Some(rtc_id),
            channel_id.clone(),
            json!({"messageType": message_type, "requestId": env.request_id, "body": shown}),
        );
        let interval = Duration::from_millis(self.cfg.retransmit_interval_ms);
        self.pending.insert(
            env.request_id.clone(),
            Pending {
                tenant,
                rtc_id: rtc_id.into(),
                message_type: message_type.into(),
                channel_id,
                packet: packet.clone(),
                attempts: 0,
                next_at: Instant::now() + interval,
            },
        );
        if let Some(conn) = conn {
            self.send_packet(conn, packet);
        }
        Ok(env.request_id)
    }

    fn flush_pending_for(&self, tenant: TenantId, rtc_id: &str) {
        let Some(conn) = self.regs.get(&(tenant, rtc_id.to_string())).and_then(|r| r.conn) else { return };
        let packets: Vec<Bytes> = self
            .pending
            .iter()
            .filter(|p| p.tenant == tenant && p.rtc_id == rtc_id)
            .map(|p| p.packet.clone())
            .collect();
        for p in packets {
            self.send_packet(conn, p);
        }
    }

    // ---- timeouts ----------------------------------------------------------------------------

    /// Runs every `sweep_interval_ms`: registrations that stopped heartbeating or did not come
    /// back, tokens that expired, and retransmissions.
    pub fn sweep(&self) {
        let now = Instant::now();
        let grace = Duration::from_millis(self.cfg.disconnect_grace_ms);
        let heartbeat = Duration::from_millis(self.cfg.heartbeat_timeout_ms);
        let mut gone = Vec::new();
        self.regs.retain(|(tenant, rtc_id), r| {
            if r.is_virtual {
                r.last_heartbeat = now;
                return true;
            }
            let reason = match (r.conn, r.disconnected_at) {
                (None, Some(at)) if now.duration_since(at) >= grace => "not back within the grace period",
                (Some(conn), _) if now.duration_since(r.last_heartbeat) >= heartbeat => {
                    gone.push((Some(conn), *tenant, rtc_id.clone(), "heartbeat timeout"));
                    return false;
                }
                _ => return true,
            };
            gone.push((None, *tenant, rtc_id.clone(), reason));
            false
        });
        for (conn, tenant, rtc_id, reason) in gone {
            if let Some(conn) = conn {
                self.close_conn(conn, "heartbeat timeout");
            }
            tracing::info!(rtc_id, reason, "registration expired");
            self.log("device.offline", Some(tenant), Some(&rtc_id), None, json!({"reason": reason}));
            self.to_engine(GatewayEvent::Offline { tenant, rtc_id, reason });
        }
        self.sweep_tokens(now);
        self.sweep_pending(now);
        self.dedupe.retain(|_, d| d.last_used.is_some_and(|t| now.duration_since(t) < grace + Duration::from_secs(60)));
    }

    fn sweep_tokens(&self, now: Instant) {
        let now_ms = self.shared.clock.now_ms();
        let refresh = Duration::from_millis(self.cfg.token_refresh_timeout_ms);
        let mut notify = Vec::new();
        let mut close = Vec::new();
        for mut c in self.conns.iter_mut() {
            let Some(rtc_id) = c.binding.as_ref().filter(|b| now_ms >= b.token_expires_ms).map(|b| b.rtc_id.clone())
            else {
                continue;
            };
            match c.expiry_notice_at {
                None => {
                    c.expiry_notice_at = Some(now);
                    notify.push((*c.key(), rtc_id));
                }
                Some(at) if now.duration_since(at) >= refresh => close.push(*c.key()),
                Some(_) => {}
            }
        }
        for (conn, rtc_id) in notify {
            tracing::info!(conn, rtc_id, "token expired; $SYS/tokenExpireNotice sent");
            self.log("token.expired", None, Some(&rtc_id), None, json!({"conn": conn}));
            self.send_packet(conn, mqtt::publish("$SYS/tokenExpireNotice", &b"{}"[..]));
        }
        for conn in close {
            self.close_conn(conn, "no fresh token after tokenExpireNotice");
        }
    }

    fn sweep_pending(&self, now: Instant) {
        let interval = Duration::from_millis(self.cfg.retransmit_interval_ms);
        let mut resend = Vec::new();
        let mut undelivered = Vec::new();
        self.pending.retain(|request_id, p| {
            if now < p.next_at {
                return true;
            }
            if p.attempts >= self.cfg.retransmit_attempts {
                undelivered.push((
                    p.tenant,
                    p.rtc_id.clone(),
                    p.message_type.clone(),
                    request_id.clone(),
                    p.channel_id.clone(),
                ));
                return false;
            }
            p.attempts += 1;
            p.next_at = now + interval;
            resend.push((p.tenant, p.rtc_id.clone(), p.packet.clone()));
            true
        });
        for (tenant, rtc_id, packet) in resend {
            if let Some(conn) = self.regs.get(&(tenant, rtc_id)).and_then(|r| r.conn) {
                self.send_packet(conn, packet);
            }
        }
        for (tenant, rtc_id, message_type, request_id, channel_id) in undelivered {
            tracing::warn!(rtc_id, message_type, request_id, "server request never ACKed");
            self.log(
                "envelope.undelivered",
                Some(tenant),
                Some(&rtc_id),
                channel_id,
                json!({"messageType": message_type, "requestId": request_id}),
            );
            self.to_engine(GatewayEvent::Undelivered { tenant, rtc_id, message_type, request_id });
        }
    }

    // ---- admin -------------------------------------------------------------------------------

    pub fn devices(&self) -> Vec<DeviceInfo> {
        let mut v: Vec<DeviceInfo> = self
            .regs
            .iter()
            .map(|r| {
                let (tenant, rtc_id) = r.key();
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
                    tenant: self.shared.tenants.get(*tenant).name.clone(),
                    rtc_id: rtc_id.clone(),
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
