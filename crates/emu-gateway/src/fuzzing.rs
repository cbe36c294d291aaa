//! One MQTT connection without a socket, for the fuzz targets (fuzz/, docs/fuzzing.md): bytes go
//! through the same framer and the same packet handling (`connection::handle`) as a real
//! connection's, and what the hub writes back is collected. Not an API: nothing else uses it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::connection::handle;
use crate::hub::{ConnId, Hub, Outbound};
use crate::mqtt::Framer;

pub struct Session {
    hub: Arc<Hub>,
    framer: Framer,
    conn: Option<ConnId>,
    keepalive: Option<Duration>,
    tx: mpsc::Sender<Outbound>,
    rx: mpsc::Receiver<Outbound>,
    closed: Option<&'static str>,
}

impl Session {
    /// A fresh TCP connection to `hub`, with the hub's packet size limit.
    pub fn new(hub: Arc<Hub>) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let framer = Framer::new(hub.cfg.max_packet_bytes);
        Session { hub, framer, conn: None, keepalive: None, tx, rx, closed: None }
    }

    /// The bytes of one read. Returns every packet written back since the last call (replies
    /// and what the hub queued); after a protocol error or a close, `closed` says why and
    /// further bytes are ignored, as a real connection would be gone.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.closed.is_some() {
            return out;
        }
        self.framer.feed(bytes);
        loop {
            let packet = match self.framer.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(_) => {
                    self.closed = Some("protocol error");
                    break;
                }
            };
            match handle(&self.hub, &mut self.conn, &mut self.keepalive, packet, "fuzz", "tcp", &self.tx) {
                Ok(replies) => out.extend(replies),
                Err(why) => {
                    self.closed = Some(why);
                    break;
                }
            }
        }
        while let Ok(o) = self.rx.try_recv() {
            match o {
                Outbound::Packet(p) => out.push(p),
                Outbound::AckAndPacket(ack, p) => out.extend([ack, p]),
                Outbound::Close(why) => self.closed = self.closed.or(Some(why)),
            }
        }
        out
    }

    /// Why the connection closed, if it did.
    pub fn closed(&self) -> Option<&'static str> {
        self.closed
    }

    /// Whether the connection is bound to an account (a valid token was uploaded).
    pub fn is_bound(&self) -> bool {
        self.conn.is_some_and(|c| self.hub.is_bound(c))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(c) = self.conn {
            self.hub.closed(c);
        }
    }
}
