//! A device's session on the hub: `$SYS/uploadToken` binding a connection to its account,
//! envelopes from devices (ACKs, de-duplication, decoding into typed requests for the engine),
//! ACKs of our requests, registration and kicks.

use std::time::Instant;

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use emu_core::accounts::{DirectoryEvent, TokenError, TokenRecord};
use emu_core::signalling::{DeviceRequest, MediaApi, RequestBody, RequestKind, message_type_name};
use serde_json::{Value, json};

use super::*;
use crate::envelope::{EnvelopeError, Inbound, channel_id_of, empty_body};
use crate::media_signal;
use crate::mqtt;

/// Why a valid token does not bind this connection.
#[derive(Debug, thiserror::Error)]
enum BindingError {
    #[error("the connection belongs to {bound}, the token to {token}")]
    OtherAccount { bound: String, token: String },
    #[error("clientId {client_id} was not issued to account {rtc_id}")]
    ForeignClientId { client_id: String, rtc_id: String },
}

impl Hub {
    /// `$SYS/uploadToken`: bind the connection to the token's account, or tell the SDK why not.
    pub fn upload_token(&self, conn: ConnId, payload: &[u8]) {
        let token = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        let now = self.shared.clock.now_ms();
        let Some(client_id) = self.conns.get(&conn).map(|c| c.client_id.to_string()) else { return };
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
        self.log(
            "token.refused",
            None,
            None::<&str>,
            None,
            json!({"conn": conn, "clientId": client_id, "notice": notice}),
        );
        self.send_packet(conn, mqtt::publish(notice, &b"{}"[..]));
    }

    /// A token binds a connection to its account only if the MQTT clientId is one the platform
    /// issued to that account, and a refreshed token must be for the account already bound.
    fn check_binding(&self, conn: ConnId, client_id: &str, rec: &TokenRecord) -> Result<(), BindingError> {
        if let Some(b) = self.binding(conn)
            && (b.tenant != rec.tenant || *b.rtc_id != *rec.rtc_id)
        {
            return Err(BindingError::OtherAccount { bound: b.rtc_id.to_string(), token: rec.rtc_id.clone() });
        }
        let prefix = format!("GID_VOIP@@@ClientId_{}_", rec.rtc_id);
        if client_id != rec.client_id && !client_id.starts_with(&prefix) {
            return Err(BindingError::ForeignClientId { client_id: client_id.to_string(), rtc_id: rec.rtc_id.clone() });
        }
        Ok(())
    }

    pub(super) fn bind(&self, conn: ConnId, client_id: &str, rec: TokenRecord) {
        let binding = Binding {
            tenant: rec.tenant,
            rtc_id: rec.rtc_id.as_str().into(),
            device_id: rec.device_id.as_str().into(),
            token_data: rec.token_data.clone(),
            token_expires_ms: rec.expires_ms,
            custom_account: rec.custom,
        };
        if let Some(mut c) = self.conns.get_mut(&conn) {
            c.binding = Some(binding);
            c.expiry_notice_at = None;
        }
        // A reconnect within the grace period resumes the registration on this connection.
        let mut resumed = false;
        if let Some(mut reg) = self.regs.get_mut(&(rec.tenant, rec.rtc_id.as_str()) as &dyn AccountKey)
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
            Some(rec.rtc_id.as_str()),
            None,
            json!({"conn": conn, "clientId": client_id, "resumed": resumed}),
        );
    }

    /// Whether this connection may subscribe to `filter`: only to its own conferenceTopic.
    pub fn may_subscribe(&self, conn: ConnId, filter: &str) -> bool {
        self.is_bound(conn) && filter == self.conference_topic
    }

    /// An envelope a bound device published to the server topic. Returns the ACK packet for the
    /// connection to write with its other replies (not queued to itself: a task waking itself
    /// is polled again for nothing), or `None` when the ACK went to the engine with the request
    /// ([`HeldAck`]). Err closes the connection.
    pub fn envelope(&self, conn: ConnId, payload: &[u8]) -> Result<Option<Bytes>, EnvelopeError> {
        let Some(who) = self.identity(conn) else {
            return Ok(None); // not authenticated: dropped (the caller logs)
        };
        let mut env = Inbound::parse(payload)?;
        if env.response {
            self.ack_received(&who, env)?;
            return Ok(None);
        }
        if let Some(ack) = self.dedupe_lookup(&who.client_id, &env.request_id) {
            tracing::debug!(conn, request_id = %env.request_id, "retransmission; ACK re-sent, not processed again");
            self.shared.metrics.dedupe_hits.inc();
            return Ok(Some(ack));
        }
        let now = self.shared.clock.now_ms();
        // A custom message travels whole; the call engine needs only a few fields.
        let custom = match &*env.message_type {
            "cs_custom_message_send" => Some(env.body_value()?),
            _ => None,
        };
        // Heartbeats and STS requests are answered without reading their body.
        let (code, ack_body, request_body, media) = match &*env.message_type {
            "cs_register" => {
                self.register(conn, &who);
                (200, empty_body(), RequestBody::default(), None)
            }
            "cs_get_sls_sts" => (200, self.sls.credentials(now), RequestBody::default(), None),
            _ => {
                let (body, signal) = match &custom {
                    Some(body) => {
                        let signal = body.get("mediaSignal").and_then(Value::as_str).map(|m| Cow::Owned(m.to_string()));
                        (RequestBody::of(body), signal)
                    }
                    None => env.request_fields(),
                };
                match signal {
                    Some(m) => match media_signal::decode(&m, self.cfg.max_media_signal_bytes) {
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
        let request_id: Arc<str> = Arc::from(&*env.request_id);
        self.log_wire(
            "envelope.in",
            Some(who.tenant),
            Some(who.rtc_id.clone()),
            channel_id.clone(),
            EnvelopeDetail {
                message_type: message_type_name(&env.message_type),
                request_id,
                code: Some(code),
                known: None,
            },
            // Copied by the log: a reference would keep the connection's whole read buffer
            // alive for as long as the event is retained.
            payload,
        );
        let (packet, _, ()) = mqtt::publish_written(&who.topic, |out| {
            env.write_ack(out, code, &ack_body, &self.server_from, now);
        });
        self.dedupe_store(&who.client_id, &env.request_id, &packet);
        // Custom messages go from device to device through the gateway alone (hub/messages.rs).
        if code == 200
            && let Some(body) = &custom
        {
            self.custom_message_from_device(&who, body);
            return Ok(Some(packet));
        }
        // ACK-only messages (docs/protocol.md#ack-only: reportStatus, stat, client ACKs of notices) stop here.
        let for_engine = !matches!(&*env.message_type, "cs_register" | "cs_get_sls_sts" | "reportStatus" | "stat");
        if code == 200 && for_engine {
            // Decoded once, here: the engine takes typed requests.
            let request = DeviceRequest::decode(who.tenant, &who.rtc_id, &env.message_type, &request_body, media);
            // The media server answers these at once: the ACK goes out with the answer.
            let answered_at_once =
                matches!(request.kind, RequestKind::Join(_) | RequestKind::Media { api: MediaApi::SdpCandidate, .. });
            if answered_at_once && self.engine.read().is_some() {
                self.to_engine(GatewayEvent::Request(request, Some(HeldAck { conn, packet })));
                return Ok(None);
            }
            self.to_engine(GatewayEvent::Request(request, None));
        }
        Ok(Some(packet))
    }

    /// Who a bound connection is, with the few fields an envelope needs (not the whole token).
    pub(super) fn identity(&self, conn: ConnId) -> Option<Identity> {
        let c = self.conns.get(&conn)?;
        let b = c.binding.as_ref()?;
        Some(Identity {
            tenant: b.tenant,
            rtc_id: b.rtc_id.clone(),
            device_id: b.device_id.clone(),
            client_id: c.client_id.clone(),
            topic: c.topic.clone(),
            custom_account: b.custom_account,
        })
    }

    /// A device's ACK of one of our requests: no longer pending, and news for the call engine.
    pub(super) fn ack_received(&self, who: &Identity, env: Inbound) -> Result<(), EnvelopeError> {
        let mut pending = self.pending.remove(env.request_id.as_ref()).map(|(_, p)| p);
        let known = pending.is_some();
        let awaiting = pending.as_mut().and_then(|p| p.awaiting.take());
        if let Some(p) = &pending {
            self.shared.metrics.ack_latency.observe(p.sent_at.elapsed().as_secs_f64());
        }
        // The body is read only for an ACK of a request we do not know (its channelId, if any).
        let channel_id = match pending {
            Some(p) => p.channel_id,
            None => channel_id_of(&RequestBody::of(&env.body_value()?), None),
        };
        self.log(
            "envelope.ack",
            Some(who.tenant),
            Some(who.rtc_id.clone()),
            channel_id,
            EnvelopeDetail {
                message_type: message_type_name(&env.message_type),
                request_id: Arc::from(&*env.request_id),
                code: Some(env.response_code),
                known: Some(known),
            },
        );
        if let Some(awaiting) = awaiting {
            self.custom_acked(&awaiting, &env.request_id, env.response_code);
        }
        // Most ACKs (of `ringing`, `answered`, a media result, ...) change nothing in a call.
        if !emu_core::engine::acts_on_ack(&env.message_type) {
            return Ok(());
        }
        self.to_engine(GatewayEvent::Ack {
            tenant: who.tenant,
            rtc_id: who.rtc_id.to_string(),
            message_type: env.message_type.into_owned(),
            request_id: env.request_id.into_owned(),
            code: env.response_code,
        });
        Ok(())
    }

    pub(super) fn dedupe_lookup(&self, client_id: &str, request_id: &str) -> Option<Bytes> {
        self.dedupe.get(client_id)?.acks.get(request_id.as_bytes()).cloned()
    }

    pub(super) fn dedupe_store(&self, client_id: &str, request_id: &str, ack: &[u8]) {
        let r = &self.shared.config.retention;
        let limit = Limit::new(r.dedupe_window, r.dedupe_client_bytes);
        // Looked up before inserting: a client's entry almost always exists, and `entry` would
        // allocate its key for every request.
        let mut d = match self.dedupe.get_mut(client_id) {
            Some(d) => d,
            None => self.dedupe.entry(client_id.to_string()).or_insert_with(|| Dedupe::new(limit)),
        };
        let weight = request_id.len() + ack.len();
        let Dedupe { order, acks, stored } = &mut *d;
        if let Some(known) = acks.get_mut(request_id.as_bytes()) {
            *known = stored.copy(ack);
        } else {
            let id = stored.copy(request_id.as_bytes());
            acks.insert(id.clone(), stored.copy(ack));
            order.push_evicting((id, Instant::now()), weight, |(old, _)| {
                acks.remove(&old);
            });
        }
    }

    /// How long a requestId's ACK is remembered: the SDK re-sends an unACKed request for 6 s
    /// (3 × 2 s, docs/protocol.md#acks-and-retransmissions), and mqtt.js publishes what it
    /// queued while offline once it is back, within `gateway.disconnect_grace_ms`; a requestId
    /// older than that plus a minute never comes again. Without this age limit a device that only
    /// heartbeats filled its 256 entries over two hours (~160 KB each, the soak of issue 20).
    pub fn dedupe_ttl(&self) -> Duration {
        Duration::from_millis(self.cfg.disconnect_grace_ms) + Duration::from_secs(60)
    }

    /// Forgets the requestIds older than [`Hub::dedupe_ttl`] at `now`, and the clients left with
    /// none (the periodic sweep calls this; public for tests, which pass a later `now`).
    pub fn expire_dedupe(&self, now: Instant) {
        let ttl = self.dedupe_ttl();
        self.dedupe.retain(|_, d| {
            let Dedupe { order, acks, .. } = d;
            order.drop_oldest_while(
                |(_, at)| now.saturating_duration_since(*at) >= ttl,
                |(id, _)| {
                    acks.remove(&id);
                },
            );
            !order.is_empty()
        });
    }

    /// The duplicate-suppression caches of every client together, for `/metrics`.
    pub fn dedupe_retained(&self) -> Retained {
        let r = &self.shared.config.retention;
        let (mut items, mut bytes) = (0, 0);
        for d in self.dedupe.iter() {
            items += d.order.len();
            bytes += d.order.bytes();
        }
        Retained { collection: "dedupe", items, bytes, limit: Limit::new(r.dedupe_window, r.dedupe_client_bytes) }
    }

    /// `cs_register`: registers the device, or counts a heartbeat. Another connection registered
    /// for the same account is kicked (`cs_quit`).
    pub(super) fn register(&self, conn: ConnId, b: &Identity) {
        let client_id: &str = &b.client_id;
        let now = Instant::now();
        let now_ms = self.shared.clock.now_ms();
        let fresh = Registration {
            conn: Some(conn),
            client_id: client_id.into(),
            topic: b.topic.clone(),
            device_id: b.device_id.to_string(),
            registered_ms: now_ms,
            last_heartbeat: now,
            last_heartbeat_ms: now_ms,
            heartbeats: 0,
            disconnected_at: None,
            is_virtual: false,
        };
        let kicked = match self.regs.entry(Account::new(b.tenant, &b.rtc_id)) {
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
            Some(b.rtc_id.clone()),
            None,
            json!({"conn": conn, "deviceId": b.device_id, "kicked": kicked}),
        );
        self.to_engine(GatewayEvent::Registered {
            tenant: b.tenant,
            rtc_id: b.rtc_id.to_string(),
            device_id: b.device_id.to_string(),
        });
        self.flush_pending_for(b.tenant, &b.rtc_id);
    }

    /// `POST /admin/devices/{rtcId}/kick`: the platform logs an SDK device out as if the account
    /// had logged in elsewhere (`cs_quit`, then the connection closes).
    pub fn kick_device(&self, tenant: TenantId, rtc_id: &str) -> Result<(), KickError> {
        let reg = self.regs.get(&(tenant, rtc_id) as &dyn AccountKey).ok_or(KickError::NotRegistered)?;
        if reg.is_virtual {
            return Err(KickError::Virtual);
        }
        let conn = reg.conn.ok_or(KickError::Offline)?;
        drop(reg);
        self.kick(conn, "kicked from the admin API");
        Ok(())
    }

    /// Sends `cs_quit` (the SDK reports 3110000) and closes the connection shortly after, giving
    /// the SDK time to ACK and stop its call as it does against the cloud.
    pub(super) fn kick(&self, conn: ConnId, reason: &'static str) {
        let Some((topic, binding)) = self.conns.get_mut(&conn).map(|mut c| (c.topic.clone(), c.binding.take())) else {
            return;
        };
        let rtc_id = binding.as_ref().map(|b| b.rtc_id.clone()).unwrap_or_default();
        let env =
            Envelope::server_request("cs_quit", empty_body(), &rtc_id, &self.server_id, self.shared.clock.now_ms());
        self.send_packet(conn, mqtt::publish(&topic, env.to_bytes()));
        tracing::info!(conn, rtc_id = %rtc_id, reason, "device kicked");
        self.log(
            "device.kicked",
            binding.as_ref().map(|b| b.tenant),
            Some(rtc_id.clone()),
            None,
            json!({"conn": conn, "reason": reason}),
        );
        if let Some(b) = binding {
            self.to_engine(GatewayEvent::Offline { tenant: b.tenant, rtc_id: b.rtc_id.to_string(), reason: "kicked" });
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
                let key = Account { tenant, rtc_id: rtc_id.into() };
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
}
