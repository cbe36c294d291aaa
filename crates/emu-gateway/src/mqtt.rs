//! MQTT 3.1.1 framing for one connection, sans-IO: bytes in, packets out, with rumqttc's
//! `mqttbytes::v4` codec doing the byte work. The transport is a byte stream: one packet may span
//! many WebSocket frames (mqtt.js writes each field separately) and one frame may hold several.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};

/// What a client sent, reduced to what the gateway acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Connect {
        client_id: String,
        keep_alive_secs: u16,
    },
    Publish {
        topic: String,
        payload: Bytes,
        qos: QoS,
        pkid: u16,
    },
    Subscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    Unsubscribe {
        pkid: u16,
    },
    PingReq,
    Disconnect,
    /// PUBACK of one of our QoS 1 publishes (we publish at QoS 0, so only for completeness).
    PubAck,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct Framer {
    buf: BytesMut,
    max_packet: usize,
    connected: bool,
}

impl Framer {
    pub fn new(max_packet: usize) -> Self {
        Framer { buf: BytesMut::new(), max_packet, connected: false }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read the next bytes into directly, with room for at least `room` bytes.
    pub fn read_buffer(&mut self, room: usize) -> &mut BytesMut {
        self.buf.reserve(room);
        &mut self.buf
    }

    /// The next complete packet, `Ok(None)` when more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let packet = match Packet::read(&mut self.buf, self.max_packet) {
            Ok(p) => p,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => return Ok(None),
            Err(e) => return Err(ProtocolError(format!("malformed MQTT: {e}"))),
        };
        let incoming = match packet {
            Packet::Connect(c) if !self.connected => {
                self.connected = true;
                Incoming::Connect { client_id: c.client_id, keep_alive_secs: c.keep_alive }
            }
            Packet::Connect(_) => return Err(ProtocolError("a second CONNECT on one connection".into())),
            _ if !self.connected => return Err(ProtocolError("the first packet must be CONNECT".into())),
            Packet::Publish(p) if p.qos == QoS::ExactlyOnce => {
                return Err(ProtocolError("QoS 2 is not supported by this endpoint".into()));
            }
            Packet::Publish(p) => Incoming::Publish { topic: p.topic, payload: p.payload, qos: p.qos, pkid: p.pkid },
            Packet::Subscribe(s) => {
                Incoming::Subscribe { pkid: s.pkid, filters: s.filters.into_iter().map(|f| f.path).collect() }
            }
            Packet::Unsubscribe(u) => Incoming::Unsubscribe { pkid: u.pkid },
            Packet::PingReq => Incoming::PingReq,
            Packet::Disconnect => Incoming::Disconnect,
            Packet::PubAck(_) => Incoming::PubAck,
            other => return Err(ProtocolError(format!("unexpected packet from a client: {other:?}"))),
        };
        Ok(Some(incoming))
    }
}

fn encode(packet: Packet) -> Bytes {
    let mut out = BytesMut::with_capacity(packet.size() + 4);
    // Only our own well-formed packets are written; the size limit is the protocol's.
    let _ = packet.write(&mut out, usize::MAX);
    out.freeze()
}

pub fn connack() -> Bytes {
    encode(Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)))
}

pub fn suback(pkid: u16, granted: &[bool]) -> Bytes {
    let codes = granted
        .iter()
        .map(|ok| if *ok { SubscribeReasonCode::Success(QoS::AtMostOnce) } else { SubscribeReasonCode::Failure })
        .collect();
    encode(Packet::SubAck(SubAck::new(pkid, codes)))
}

pub fn unsuback(pkid: u16) -> Bytes {
    encode(Packet::UnsubAck(UnsubAck::new(pkid)))
}

pub fn puback(pkid: u16) -> Bytes {
    encode(Packet::PubAck(PubAck::new(pkid)))
}

pub fn pingresp() -> Bytes {
    encode(Packet::PingResp)
}

/// A QoS 0 publish (what the SDK expects from the server).
pub fn publish(topic: &str, payload: impl Into<Bytes>) -> Bytes {
    encode(Packet::Publish(Publish::from_bytes(topic, QoS::AtMostOnce, payload.into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The captured CONNECT of the Web SDK, one WebSocket frame per field.
    const CONNECT_FRAMES: &[&str] =
        &["10", "22", "0004", "4d515454", "04", "02", "001e", "0016", "4749445f656d75404040353834383137373166396162"];

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn captured_connect_split_over_frames() {
        let mut f = Framer::new(1 << 16);
        for (i, frame) in CONNECT_FRAMES.iter().enumerate() {
            f.feed(&hex(frame));
            let got = f.next_packet().unwrap();
            if i + 1 < CONNECT_FRAMES.len() {
                assert_eq!(got, None, "frame {i} alone is not a packet");
            } else {
                assert_eq!(
                    got,
                    Some(Incoming::Connect { client_id: "GID_emu@@@58481771f9ab".into(), keep_alive_secs: 30 })
                );
            }
        }
        assert_eq!(&connack()[..], &[0x20, 0x02, 0x00, 0x00]);
    }

    #[test]
    fn several_packets_in_one_frame() {
        let mut f = Framer::new(1 << 16);
        let mut bytes = CONNECT_FRAMES.iter().flat_map(|h| hex(h)).collect::<Vec<u8>>();
        bytes.extend_from_slice(&publish("$SYS/uploadToken", &b"{\"token\":\"t\"}"[..]));
        bytes.extend_from_slice(&[0xc0, 0x00]); // PINGREQ
        f.feed(&bytes);
        assert!(matches!(f.next_packet().unwrap(), Some(Incoming::Connect { .. })));
        assert!(
            matches!(f.next_packet().unwrap(), Some(Incoming::Publish { ref topic, .. }) if topic == "$SYS/uploadToken")
        );
        assert_eq!(f.next_packet().unwrap(), Some(Incoming::PingReq));
        assert_eq!(f.next_packet().unwrap(), None);
    }

    #[test]
    fn protocol_errors() {
        let mut f = Framer::new(1 << 16);
        f.feed(&[0xc0, 0x00]);
        assert!(f.next_packet().is_err(), "PINGREQ before CONNECT");
        let mut f = Framer::new(1 << 16);
        f.feed(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(f.next_packet().is_err(), "garbage");
        let mut f = Framer::new(64);
        for h in CONNECT_FRAMES {
            f.feed(&hex(h));
        }
        f.next_packet().unwrap();
        f.feed(&publish("t", vec![b'x'; 200]));
        assert!(f.next_packet().is_err(), "over the packet limit");
    }
}
