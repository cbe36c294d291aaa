//! Connections of virtual VoIP devices (docs/voip-devices.md): registered exactly as a connected
//! SDK is (listed with transport `virtual`, kicked by a second login, its server requests kept
//! until ACKed and retransmitted), but with no socket. The calls driver hands the device each
//! server message itself; what the gateway "sends" the connection is dropped, and the device's
//! ACKs come back through [`Hub::virtual_ack`].

use std::sync::Arc;
use std::time::Instant;

use emu_core::TenantId;
use serde_json::json;
use tokio::sync::mpsc;

use super::{Account, AccountKey, Binding, Conn, ConnId, GatewayEvent, Hub, Outbound, Registration};

/// What `GET /admin/devices` shows as the connection's transport and peer.
pub const VIRTUAL_TRANSPORT: &str = "virtual";

impl Hub {
    /// Registers a virtual device for the account, kicking another login of it as `cs_register`
    /// does. Registering it again (a new behaviour) keeps its connection.
    pub fn register_virtual(self: &Arc<Self>, tenant: TenantId, rtc_id: &str, device_id: &str) {
        let key = Account::new(tenant, rtc_id);
        if self.virtual_conn(tenant, rtc_id).is_some() {
            return;
        }
        let id = self.next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client_id = format!("virtual-{}-{rtc_id}", tenant.0);
        let topic: Arc<str> = Self::client_topic(&client_id, &self.conference_topic).into();
        let (tx, mut rx) = mpsc::channel::<Outbound>(64);
        let now_ms = self.shared.clock.now_ms();
        self.conns.insert(
            id,
            Conn {
                tx,
                client_id: client_id.as_str().into(),
                topic: topic.clone(),
                peer: VIRTUAL_TRANSPORT.into(),
                transport: VIRTUAL_TRANSPORT,
                connected_ms: now_ms,
                binding: Some(Binding {
                    tenant,
                    rtc_id: rtc_id.into(),
                    device_id: device_id.into(),
                    token_data: String::new(),
                    token_expires_ms: u64::MAX,
                    custom_account: false,
                }),
                expiry_notice_at: None,
            },
        );
        // Packets for the device are dropped; a close (kick, reset) ends the connection.
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                if let Outbound::Close(_) = out {
                    break;
                }
            }
            if let Some(hub) = hub.upgrade() {
                hub.closed(id);
            }
        });
        let kicked = self
            .regs
            .insert(
                key,
                Registration {
                    conn: Some(id),
                    topic,
                    client_id,
                    device_id: device_id.to_string(),
                    registered_ms: now_ms,
                    last_heartbeat: Instant::now(),
                    last_heartbeat_ms: now_ms,
                    heartbeats: 0,
                    disconnected_at: None,
                    is_virtual: true,
                },
            )
            .and_then(|old| old.conn);
        if let Some(old) = kicked {
            self.kick(old, "logged in elsewhere");
        }
        tracing::info!(conn = id, rtc_id, device_id, "virtual device registered");
        self.log(
            "device.registered",
            Some(tenant),
            Some(rtc_id),
            None,
            json!({"conn": id, "deviceId": device_id, "kicked": kicked, "transport": VIRTUAL_TRANSPORT}),
        );
        self.to_engine(GatewayEvent::Registered {
            tenant,
            rtc_id: rtc_id.to_string(),
            device_id: device_id.to_string(),
        });
    }

    /// The virtual device goes offline: its registration and connection end at once.
    pub fn unregister_virtual(&self, tenant: TenantId, rtc_id: &str) {
        let Some(conn) = self.virtual_conn(tenant, rtc_id) else { return };
        self.regs.remove(&(tenant, rtc_id) as &dyn AccountKey);
        self.pending.retain(|_, p| !(p.tenant == tenant && &*p.rtc_id == rtc_id));
        self.close_conn(conn, "virtual device removed");
        self.log("device.offline", Some(tenant), Some(rtc_id), None, json!({"reason": "virtual device removed"}));
        self.to_engine(GatewayEvent::Offline { tenant, rtc_id: rtc_id.to_string(), reason: "virtual device removed" });
    }

    /// The account's registration is a virtual device's connection.
    pub fn virtual_conn(&self, tenant: TenantId, rtc_id: &str) -> Option<ConnId> {
        self.regs.get(&(tenant, rtc_id) as &dyn AccountKey).filter(|r| r.is_virtual).and_then(|r| r.conn)
    }

    /// A virtual device ACKed a server request: as an SDK's ACK (no retransmission, news for the
    /// call engine).
    pub fn virtual_ack(&self, tenant: TenantId, rtc_id: &str, request_id: &str) {
        let Some((_, mut p)) = self.pending.remove(request_id) else { return };
        self.log(
            "envelope.ack",
            Some(tenant),
            Some(rtc_id),
            p.channel_id,
            json!({"messageType": p.message_type, "requestId": request_id, "code": 200, "known": true, "transport": VIRTUAL_TRANSPORT}),
        );
        if let Some(awaiting) = p.awaiting.take() {
            self.custom_acked(&awaiting, request_id, 200);
        }
        self.to_engine(GatewayEvent::Ack {
            tenant,
            rtc_id: rtc_id.to_string(),
            message_type: p.message_type.into_owned(),
            request_id: request_id.to_string(),
            code: 200,
        });
    }
}
