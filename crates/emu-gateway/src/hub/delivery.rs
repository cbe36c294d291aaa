//! Requests from the server to devices: sending them with fresh ids, re-sending until the
//! device ACKs (or giving up: `Undelivered` for the engine), holding them for a device that is
//! reconnecting; and the sweeper's timeouts (token expiry notices, heartbeats, grace periods).

use std::time::{Duration, Instant};

use emu_core::signalling::{RequestBody, ServerMessage, SignalForm, message_type_name};
use serde::Serialize;
use serde_json::{Value, json};

use super::*;
use crate::envelope::{channel_id_of, write_server_request};
use crate::{media_signal, mqtt};

impl Hub {
    /// Sends a request envelope to a registered device, with fresh ids, and re-sends it until
    /// ACKed. Returns the requestId. A device reconnecting gets it when it is back.
    pub fn send_request(
        &self,
        tenant: TenantId,
        rtc_id: &str,
        message_type: &str,
        body: Value,
    ) -> Result<String, SendError> {
        self.send_request_awaiting(tenant, rtc_id, message_type, body, None)
    }

    /// Sends one of the engine's messages: its body and `mediaSignal` are serialised straight
    /// from the typed message. Returns the requestId.
    pub fn send_message(&self, tenant: TenantId, rtc_id: &str, message: &ServerMessage) -> Result<Arc<str>, SendError> {
        self.send_message_after(tenant, rtc_id, message, &mut None)
    }

    /// [`Hub::send_message`], written together with `held` when that ACK is for the same
    /// connection (it is then taken; otherwise left for [`Hub::release_ack`]).
    pub fn send_message_after(
        &self,
        tenant: TenantId,
        rtc_id: &str,
        message: &ServerMessage,
        held: &mut Option<HeldAck>,
    ) -> Result<Arc<str>, SendError> {
        let signal = message.media_signal().map(|s| media_signal::encode_raw(&s));
        let body = message.wire_body(signal.as_deref().map_or(SignalForm::Json, SignalForm::Encoded));
        let channel_id = Some(message.channel_id()).filter(|c| !c.is_empty()).map(str::to_string);
        self.send_body(tenant, rtc_id, Cow::Borrowed(message.message_type()), &body, channel_id, None, held)
    }

    /// [`Hub::send_request`], remembering a custom message's sender for its receipt.
    pub(super) fn send_request_awaiting(
        &self,
        tenant: TenantId,
        rtc_id: &str,
        message_type: &str,
        body: Value,
        awaiting: Option<messages::AwaitingAck>,
    ) -> Result<String, SendError> {
        let mut body = body;
        if let Some(ms) = body.get_mut("mediaSignal").filter(|m| m.is_object()) {
            *ms = media_signal::encode(ms).into();
        }
        let channel_id = channel_id_of(&RequestBody::of(&body), None);
        self.send_body(tenant, rtc_id, message_type_name(message_type), &body, channel_id, awaiting, &mut None)
            .map(|id| id.to_string())
    }

    /// Wraps `body` in a request envelope with fresh ids, logs it, remembers it until ACKed and
    /// writes it to the device's connection (if it has one now), after `held` if that is an ACK
    /// for the same connection.
    #[allow(clippy::too_many_arguments)]
    fn send_body(
        &self,
        tenant: TenantId,
        rtc_id: &str,
        message_type: Cow<'static, str>,
        body: &impl Serialize,
        channel_id: Option<String>,
        awaiting: Option<messages::AwaitingAck>,
        held: &mut Option<HeldAck>,
    ) -> Result<Arc<str>, SendError> {
        let (conn, topic, account) = match self.regs.get(&(tenant, rtc_id) as &dyn AccountKey) {
            Some(r) => (r.conn, r.topic.clone(), r.key().rtc_id.clone()),
            None => return Err(SendError::NotRegistered),
        };
        let now = self.shared.clock.now_ms();
        let (packet, wire, request_id) = mqtt::publish_written(&topic, |out| {
            write_server_request(out, &message_type, body, rtc_id, &self.server_from, now)
        });
        // The event log keeps the bytes; readers see the body with mediaSignal decoded.
        self.log_wire(
            "envelope.out",
            Some(tenant),
            Some(account.clone()),
            channel_id.clone(),
            EnvelopeDetail {
                message_type: message_type.clone(),
                request_id: request_id.clone(),
                code: None,
                known: None,
            },
            &wire,
        );
        let interval = Duration::from_millis(self.cfg.retransmit_interval_ms);
        let sent_at = Instant::now();
        self.pending.insert(
            request_id.clone(),
            Pending {
                tenant,
                rtc_id: account,
                message_type,
                channel_id,
                packet: packet.clone(),
                attempts: 0,
                next_at: sent_at + interval,
                sent_at,
                awaiting,
            },
        );
        if let Some(conn) = conn {
            match held.take_if(|ack| ack.conn == conn) {
                Some(ack) => self.send_outbound(conn, Outbound::AckAndPacket(ack.packet, packet)),
                None => self.send_packet(conn, packet),
            }
        }
        Ok(request_id)
    }

    pub(super) fn flush_pending_for(&self, tenant: TenantId, rtc_id: &str) {
        let Some(conn) = self.regs.get(&(tenant, rtc_id) as &dyn AccountKey).and_then(|r| r.conn) else { return };
        let packets: Vec<Bytes> = self
            .pending
            .iter()
            .filter(|p| p.tenant == tenant && &*p.rtc_id == rtc_id)
            .map(|p| p.packet.clone())
            .collect();
        for p in packets {
            self.send_packet(conn, p);
        }
    }

    /// Runs every `sweep_interval_ms`: registrations that stopped heartbeating or did not come
    /// back, tokens that expired, and retransmissions.
    pub fn sweep(&self) {
        let now = Instant::now();
        let grace = Duration::from_millis(self.cfg.disconnect_grace_ms);
        let heartbeat = Duration::from_millis(self.cfg.heartbeat_timeout_ms);
        let mut gone = Vec::new();
        self.regs.retain(|Account { tenant, rtc_id }, r| {
            if r.is_virtual {
                r.last_heartbeat = now;
                return true;
            }
            let reason = match (r.conn, r.disconnected_at) {
                (None, Some(at)) if now.duration_since(at) >= grace => "not back within the grace period",
                (Some(conn), _) if now.duration_since(r.last_heartbeat) >= heartbeat => {
                    gone.push((Some(conn), *tenant, rtc_id.to_string(), "heartbeat timeout"));
                    return false;
                }
                _ => return true,
            };
            gone.push((None, *tenant, rtc_id.to_string(), reason));
            false
        });
        for (conn, tenant, rtc_id, reason) in gone {
            if let Some(conn) = conn {
                self.close_conn(conn, "heartbeat timeout");
            }
            tracing::info!(rtc_id, reason, "registration expired");
            self.log("device.offline", Some(tenant), Some(rtc_id.as_str()), None, json!({"reason": reason}));
            self.to_engine(GatewayEvent::Offline { tenant, rtc_id, reason });
        }
        self.sweep_tokens(now);
        self.sweep_pending(now);
        self.expire_dedupe(now);
    }

    pub(super) fn sweep_tokens(&self, now: Instant) {
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
            tracing::info!(conn, rtc_id = %rtc_id, "token expired; $SYS/tokenExpireNotice sent");
            self.log("token.expired", None, Some(rtc_id.clone()), None, json!({"conn": conn}));
            self.send_packet(conn, mqtt::publish("$SYS/tokenExpireNotice", &b"{}"[..]));
        }
        for conn in close {
            self.close_conn(conn, "no fresh token after tokenExpireNotice");
        }
    }

    pub(super) fn sweep_pending(&self, now: Instant) {
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
                    p.rtc_id.to_string(),
                    p.message_type.clone(),
                    request_id.to_string(),
                    p.channel_id.clone(),
                    p.awaiting.take(),
                ));
                return false;
            }
            p.attempts += 1;
            p.next_at = now + interval;
            resend.push((
                p.tenant,
                p.rtc_id.to_string(),
                p.packet.clone(),
                p.message_type.clone(),
                request_id.to_string(),
                p.channel_id.clone(),
                p.attempts,
            ));
            true
        });
        for (tenant, rtc_id, packet, message_type, request_id, channel_id, attempt) in resend {
            let conn = self.regs.get(&(tenant, rtc_id.as_str()) as &dyn AccountKey).and_then(|r| r.conn);
            // Logged even when the device is offline: the console shows every attempt.
            self.log(
                "envelope.retransmit",
                Some(tenant),
                Some(rtc_id.as_str()),
                channel_id,
                json!({"messageType": message_type, "requestId": request_id, "attempt": attempt, "sent": conn.is_some()}),
            );
            if let Some(conn) = conn {
                self.send_packet(conn, packet);
            }
        }
        for (tenant, rtc_id, message_type, request_id, channel_id, awaiting) in undelivered {
            let message_type = message_type.into_owned();
            tracing::warn!(rtc_id, message_type, request_id, "server request never ACKed");
            self.log(
                "envelope.undelivered",
                Some(tenant),
                Some(rtc_id.as_str()),
                channel_id,
                json!({"messageType": message_type, "requestId": request_id}),
            );
            if let Some(awaiting) = awaiting {
                self.custom_failed(&awaiting, &CustomMessageError::NeverAcked(rtc_id.clone()));
            }
            self.to_engine(GatewayEvent::Undelivered { tenant, rtc_id, message_type, request_id });
        }
    }
}
