//! One MQTT connection, over WebSocket or TCP: frame bytes into packets, apply the gateway's
//! rules (authenticate, subscribe, publish), and write what the hub sends it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
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

/// What a TCP read reserves: most reads carry a few packets, a burst fills it.
const READ_CHUNK: usize = 8192;

impl Transport {
    fn kind(&self) -> &'static str {
        match self {
            Transport::Ws(_) => "websocket",
            Transport::Tcp(_) => "tcp",
        }
    }

    /// Feeds the client's next bytes to the framer; false when the client has gone. Cancel-safe.
    async fn recv_into(&mut self, framer: &mut Framer) -> bool {
        match self {
            Transport::Ws(ws) => loop {
                match ws.recv().await {
                    Some(Ok(Message::Binary(b))) => {
                        framer.feed(&b);
                        return true;
                    }
                    Some(Ok(Message::Text(t))) => {
                        framer.feed(t.as_bytes());
                        return true;
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
                    Some(Ok(_)) => continue, // ping/pong are the WebSocket layer's business
                }
            },
            // Straight into the framer's buffer: no copy per read.
            Transport::Tcp(s) => matches!(s.read_buf(framer.read_buffer(READ_CHUNK)).await, Ok(n) if n > 0),
        }
    }

    /// Writes every queued packet with as few system calls as possible: one `write` for all of
    /// them over TCP, one flush over WebSocket (each packet stays its own binary message there).
    async fn send_all(&mut self, queued: &mut Vec<Bytes>, scratch: &mut BytesMut) -> bool {
        let ok = match self {
            Transport::Ws(ws) => {
                let mut ok = true;
                for p in queued.drain(..) {
                    if ws.feed(Message::Binary(p)).await.is_err() {
                        ok = false;
                        break;
                    }
                }
                ok && ws.flush().await.is_ok()
            }
            Transport::Tcp(s) => match queued.as_slice() {
                [] => true,
                [one] => s.write_all(one).await.is_ok(),
                many => {
                    scratch.clear();
                    for p in many {
                        scratch.extend_from_slice(p);
                    }
                    s.write_all(scratch).await.is_ok()
                }
            },
        };
        queued.clear();
        ok
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

/// Moves what the hub queued for this connection (ACKs, server requests) into `queued` without
/// waiting; `Err` when the hub asked to close.
fn take_queued(rx: &mut mpsc::Receiver<Outbound>, queued: &mut Vec<Bytes>) -> Result<(), &'static str> {
    while let Ok(out) = rx.try_recv() {
        match out {
            Outbound::Packet(p) => queued.push(p),
            Outbound::AckAndPacket(ack, p) => queued.extend([ack, p]),
            Outbound::Close(why) => return Err(why),
        }
    }
    Ok(())
}

/// Serves one connection until it closes.
pub async fn serve(hub: Arc<Hub>, mut transport: Transport, peer: String) {
    let kind = transport.kind();
    let mut framer = Framer::new(hub.cfg.max_packet_bytes);
    let auth_deadline = Instant::now() + Duration::from_millis(hub.cfg.auth_timeout_ms);
    let (tx, mut rx) = mpsc::channel::<Outbound>(1024);
    let mut conn: Option<ConnId> = None;
    let mut keepalive: Option<Duration> = None;
    let mut last_seen = Instant::now();
    // Packets to write, gathered over one wake-up so a burst of requests costs one write.
    let mut queued: Vec<Bytes> = Vec::new();
    let mut scratch = BytesMut::new();

    // One timer for both deadlines (a valid token in time, the keepalive), armed at the earlier
    // one and looked at only when it fires: re-arming a timer for every packet cost more than
    // reading the packet.
    let far = || Instant::now() + Duration::from_secs(3600);
    let mut timer = Box::pin(sleep_until(auth_deadline));
    let mut armed_at = auth_deadline;
    // Until the timer has seen the connection bound, the auth deadline counts.
    let mut auth_pending = true;

    let reason = 'conn: loop {
        let mut closing = None;
        tokio::select! {
            alive = transport.recv_into(&mut framer) => {
                if !alive {
                    break 'conn "closed by the client";
                }
                last_seen = Instant::now();
                loop {
                    let packet = match framer.next_packet() {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(peer, "{e}; closing the connection");
                            closing = Some("protocol error");
                            break;
                        }
                    };
                    match handle(&hub, &mut conn, &mut keepalive, packet, &peer, kind, &tx) {
                        Ok(replies) => queued.extend(replies),
                        Err(why) => {
                            closing = Some(why);
                            break;
                        }
                    }
                }
            }
            Some(out) = rx.recv() => match out {
                Outbound::Packet(p) => queued.push(p),
                Outbound::AckAndPacket(ack, p) => queued.extend([ack, p]),
                Outbound::Close(why) => closing = Some(why),
            },
            () = &mut timer => {
                let now = Instant::now();
                let bound = conn.is_some_and(|c| hub.is_bound(c));
                if !bound && now >= auth_deadline {
                    break 'conn "no valid token in time";
                }
                auth_pending = !bound;
                if keepalive.is_some_and(|k| now >= last_seen + k) {
                    break 'conn "keepalive timeout";
                }
                armed_at = far();
            }
        }
        // The earliest deadline still ahead; the timer is moved only when that is sooner than
        // where it is set (a CONNECT's keepalive, or the timer having fired).
        let due = [auth_pending.then_some(auth_deadline), keepalive.map(|k| last_seen + k)].into_iter().flatten().min();
        if let Some(due) = due
            && due < armed_at
        {
            armed_at = due;
            timer.as_mut().reset(due);
        }
        if closing.is_none()
            && let Err(why) = take_queued(&mut rx, &mut queued)
        {
            closing = Some(why);
        }
        // What was answered before a close still goes out (a refused token's notice, a PUBACK).
        if !transport.send_all(&mut queued, &mut scratch).await {
            break 'conn "write failed";
        }
        if let Some(why) = closing {
            break 'conn why;
        }
    };
    tracing::info!(peer, transport = kind, conn, reason, "MQTT connection closed");
    transport.close().await;
    if let Some(c) = conn {
        hub.closed(c);
    }
}

/// Applies one packet; returns the packets to write back, or why the connection must close.
pub(crate) fn handle(
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
                } else {
                    match hub.envelope(c, &payload) {
                        Ok(ack) => replies.extend(ack),
                        Err(e) => {
                            tracing::warn!(conn = c, "malformed envelope ({e}); closing the connection");
                            return Err("malformed envelope");
                        }
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_ack_is_written_before_the_answer_it_travels_with() {
        let (tx, mut rx) = mpsc::channel(8);
        let (ack, answer, later) =
            (Bytes::from_static(b"ack"), Bytes::from_static(b"answer"), Bytes::from_static(b"later"));
        tx.send(Outbound::AckAndPacket(ack.clone(), answer.clone())).await.unwrap();
        tx.send(Outbound::Packet(later.clone())).await.unwrap();
        let mut queued = Vec::new();
        take_queued(&mut rx, &mut queued).unwrap();
        assert_eq!(queued, vec![ack, answer, later]);
    }
}
