//! One MQTT connection, over WebSocket or TCP: frame bytes into packets, apply the gateway's
//! rules (authenticate, subscribe, publish), and write what the hub sends it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::hub::{ConnId, Hub, Outbound};
use crate::mqtt::{self, Framer, Incoming};

/// A byte-stream transport.
pub enum Transport {
    Ws(Box<WebSocket>),
    Tcp(TcpStream),
}

impl Transport {
    fn kind(&self) -> &'static str {
        match self {
            Transport::Ws(_) => "websocket",
            Transport::Tcp(_) => "tcp",
        }
    }

    /// The next bytes from the client; None when it has gone. Cancel-safe.
    async fn recv(&mut self, buf: &mut Vec<u8>) -> Option<Bytes> {
        match self {
            Transport::Ws(ws) => loop {
                match ws.recv().await? {
                    Ok(Message::Binary(b)) => return Some(b),
                    Ok(Message::Text(t)) => return Some(Bytes::copy_from_slice(t.as_bytes())),
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => continue, // ping/pong are the WebSocket layer's business
                }
            },
            Transport::Tcp(s) => {
                buf.clear();
                match s.read_buf(buf).await {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(Bytes::copy_from_slice(buf)),
                }
            }
        }
    }

    async fn send(&mut self, data: Bytes) -> bool {
        match self {
            Transport::Ws(ws) => ws.send(Message::Binary(data)).await.is_ok(),
            Transport::Tcp(s) => s.write_all(&data).await.is_ok(),
        }
    }

    async fn close(&mut self) {
        match self {
            Transport::Ws(ws) => {
                let _ = ws.send(Message::Close(None)).await;
            }
            Transport::Tcp(s) => {
                let _ = s.shutdown().await;
            }
        }
    }
}

/// Serves one connection until it closes.
pub async fn serve(hub: Arc<Hub>, mut transport: Transport, peer: String) {
    let kind = transport.kind();
    let mut framer = Framer::new(hub.cfg.max_packet_bytes);
    let mut read_buf = Vec::with_capacity(8192);
    let auth_deadline = Instant::now() + Duration::from_millis(hub.cfg.auth_timeout_ms);
    let (tx, mut rx) = mpsc::channel::<Outbound>(1024);
    let mut conn: Option<ConnId> = None;
    let mut keepalive: Option<Duration> = None;
    let mut last_seen = Instant::now();

    let reason = 'conn: loop {
        let keepalive_deadline =
            keepalive.map(|k| last_seen + k).unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let bound = conn.is_some_and(|c| hub.is_bound(c));
        tokio::select! {
            data = transport.recv(&mut read_buf) => {
                let Some(data) = data else { break 'conn "closed by the client" };
                last_seen = Instant::now();
                framer.feed(&data);
                loop {
                    let packet = match framer.next_packet() {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(peer, "{e}; closing the connection");
                            break 'conn "protocol error";
                        }
                    };
                    match handle(&hub, &mut conn, &mut keepalive, packet, &peer, kind, &tx) {
                        Ok(replies) => {
                            for r in replies {
                                if !transport.send(r).await {
                                    break 'conn "write failed";
                                }
                            }
                        }
                        Err(why) => break 'conn why,
                    }
                }
            }
            Some(out) = rx.recv() => match out {
                Outbound::Packet(p) => if !transport.send(p).await { break 'conn "write failed" },
                Outbound::Close(why) => break 'conn why,
            },
            _ = sleep_until(auth_deadline), if !bound => break 'conn "no valid token in time",
            _ = sleep_until(keepalive_deadline), if keepalive.is_some() => break 'conn "keepalive timeout",
        }
    };
    tracing::info!(peer, transport = kind, conn, reason, "MQTT connection closed");
    transport.close().await;
    if let Some(c) = conn {
        hub.closed(c);
    }
}

/// Applies one packet; returns the packets to write back, or why the connection must close.
fn handle(
    hub: &Hub,
    conn: &mut Option<ConnId>,
    keepalive: &mut Option<Duration>,
    packet: Incoming,
    peer: &str,
    kind: &'static str,
    tx: &mpsc::Sender<Outbound>,
) -> Result<Vec<Bytes>, &'static str> {
    match packet {
        Incoming::Connect { client_id, keep_alive_secs } => {
            if client_id.is_empty() {
                return Err("empty clientId");
            }
            // MQTT 3.1.1 §3.1.2.10: the server allows 1.5 × the keepalive before giving up.
            *keepalive = (keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1500));
            *conn = Some(hub.open(&client_id, peer.to_string(), kind, tx.clone()));
            tracing::info!(peer, transport = kind, client_id, conn = conn.unwrap_or_default(), "MQTT connected");
            Ok(vec![mqtt::connack()])
        }
        Incoming::Publish { topic, payload, qos, pkid } => {
            let c = conn.ok_or("publish before connect")?;
            let mut replies = Vec::new();
            if qos == QoS::AtLeastOnce {
                replies.push(mqtt::puback(pkid));
            }
            if topic == "$SYS/uploadToken" {
                hub.upload_token(c, &payload);
            } else if topic == hub.server_topic {
                if !hub.is_bound(c) {
                    tracing::warn!(conn = c, "envelope before a valid token; dropped");
                } else if let Err(e) = hub.envelope(c, &payload) {
                    tracing::warn!(conn = c, "malformed envelope ({e}); closing the connection");
                    return Err("malformed envelope");
                }
            } else {
                tracing::warn!(conn = c, topic, "publish to a topic devices may not use; dropped");
            }
            Ok(replies)
        }
        Incoming::Subscribe { pkid, filters } => {
            let c = conn.ok_or("subscribe before connect")?;
            let granted: Vec<bool> = filters.iter().map(|f| hub.may_subscribe(c, f)).collect();
            for (f, ok) in filters.iter().zip(&granted) {
                if !ok {
                    tracing::warn!(conn = c, filter = f, "subscription refused");
                }
            }
            Ok(vec![mqtt::suback(pkid, &granted)])
        }
        Incoming::Unsubscribe { pkid } => Ok(vec![mqtt::unsuback(pkid)]),
        Incoming::PingReq => Ok(vec![mqtt::pingresp()]),
        Incoming::PubAck => Ok(vec![]),
        Incoming::Disconnect => Err("DISCONNECT"),
    }
}
