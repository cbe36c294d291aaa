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
        check_reserved_bits(&self.buf)?;
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

/// The reserved bits rumqttc's codec does not check, from the raw bytes of the next packet:
/// the fixed-header flags of each packet type [MQTT-2.2.2-2] (PUBLISH: dup/qos/retain with QoS 3
/// invalid [MQTT-3.3.1-4]) and the reserved bit 0 of the CONNECT flags [MQTT-3.1.2-3]. A client
/// breaking them gets its connection closed.
fn check_reserved_bits(buf: &[u8]) -> Result<(), ProtocolError> {
    let Some(&byte1) = buf.first() else { return Ok(()) };
    let (kind, flags) = (byte1 >> 4, byte1 & 0x0f);
    let expected = match kind {
        3 if (flags >> 1) & 0b11 == 0b11 => return Err(ProtocolError("PUBLISH with QoS 3".into())),
        3 => flags,
        6 | 8 | 10 => 0b0010, // PUBREL, SUBSCRIBE, UNSUBSCRIBE
        _ => 0,
    };
    if flags != expected {
        return Err(ProtocolError(format!(
            "packet type {kind} with fixed-header flags {flags:#06b} (must be {expected:#06b})"
        )));
    }
    if kind == 1 {
        // Remaining length (1–4 bytes), then protocol name "MQTT" (2 + 4), level (1), flags.
        let Some(len_len) = buf.iter().skip(1).take(4).position(|b| b & 0x80 == 0).map(|i| i + 1) else {
            return Ok(()); // incomplete (or malformed, which the codec reports)
        };
        if let Some(connect_flags) = buf.get(1 + len_len + 7)
            && connect_flags & 1 != 0
        {
            return Err(ProtocolError("CONNECT with the reserved flag bit set".into()));
        }
    }
    Ok(())
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

/// [`publish`] with the payload written by `write` into this thread's scratch buffer, then
/// copied once at its exact size. Returns the packet, its payload (a slice of the same bytes,
/// for the event log) and what `write` returned. The same bytes as [`publish`] (a unit test
/// holds them together).
///
/// Why a copy: the event log and the duplicate window keep packets for minutes. Written straight
/// into a buffer sized by a guess, a packet either outgrew the guess (a reallocation) or kept the
/// guess's slack alive with it; an ACK of ~600 bytes held a 1 KiB allocation in the duplicate
/// window (docs/benchmarks.md#per-call-cpu).
pub fn publish_written<R>(topic: &str, write: impl FnOnce(&mut Vec<u8>) -> R) -> (Bytes, Bytes, R) {
    // The fixed header (the packet type and 1–4 bytes of remaining length) is written last,
    // right-aligned in this room, once the length is known.
    const ROOM: usize = 5;
    const MAX_REMAINING: usize = 268_435_455;
    let Ok(topic_len) = u16::try_from(topic.len()) else {
        let mut payload = Vec::new();
        let written = write(&mut payload);
        let payload = Bytes::from(payload);
        return (publish(topic, payload.clone()), payload, written);
    };
    let mut spare = Vec::new();
    SCRATCH.with(|scratch| {
        // Taken by an outer call only if `write` itself published (it does not): then a fresh one.
        let mut taken = scratch.try_borrow_mut();
        let buf = match &mut taken {
            Ok(buf) => &mut **buf,
            Err(_) => &mut spare,
        };
        buf.clear();
        buf.resize(ROOM, 0);
        buf.extend_from_slice(&topic_len.to_be_bytes());
        buf.extend_from_slice(topic.as_bytes());
        let payload_at = buf.len();
        let written = write(buf);
        let remaining = buf.len() - ROOM;
        let out = if remaining > MAX_REMAINING {
            let payload = Bytes::copy_from_slice(&buf[payload_at..]);
            (publish(topic, payload.clone()), payload, written)
        } else {
            let (mut length, mut n, mut x) = ([0u8; 4], 0, remaining);
            loop {
                length[n] = (x % 128) as u8 | if x >= 128 { 0x80 } else { 0 };
                n += 1;
                x /= 128;
                if x == 0 {
                    break;
                }
            }
            let start = ROOM - 1 - n;
            buf[start] = 0x30; // PUBLISH, QoS 0, neither DUP nor RETAIN
            buf[start + 1..ROOM].copy_from_slice(&length[..n]);
            let bytes = Bytes::copy_from_slice(&buf[start..]);
            let payload = bytes.slice(payload_at - start..);
            (bytes, payload, written)
        };
        // A rare large packet does not stay with the thread.
        if buf.capacity() > SCRATCH_KEPT {
            *buf = Vec::new();
        }
        out
    })
}

/// The most [`publish_written`]'s scratch buffer keeps between packets.
const SCRATCH_KEPT: usize = 64 << 10;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
    fn a_publish_written_in_place_is_the_codecs_publish() {
        // Around each step of the remaining length's encoding (1, 2, 3 and 4 bytes).
        let topic = "GID_VOIP@@@x/p2p/GID_VOIP@@@ClientId_alice_1";
        let overhead = 2 + topic.len();
        for remaining in [0usize, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            let n = remaining.saturating_sub(overhead);
            let payload: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let (packet, written, ()) = publish_written(topic, |b| b.extend_from_slice(&payload));
            assert_eq!(packet, publish(topic, payload.clone()), "{n} bytes of payload");
            assert_eq!(written, payload);
        }
    }

    #[test]
    fn a_publish_written_while_writing_another_gets_its_own_buffer() {
        let (outer, _, inner) = publish_written("a", |b| {
            b.extend_from_slice(b"outer");
            let (inner, _, ()) = publish_written("b", |b| b.extend_from_slice(b"inner"));
            b.extend_from_slice(b"!");
            inner
        });
        assert_eq!(outer, publish("a", &b"outer!"[..]));
        assert_eq!(inner, publish("b", &b"inner"[..]));
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

    fn connected() -> Framer {
        let mut f = Framer::new(1 << 16);
        for h in CONNECT_FRAMES {
            f.feed(&hex(h));
        }
        f.next_packet().unwrap().unwrap();
        f
    }

    #[test]
    fn reserved_bits_are_protocol_errors() {
        let connect = CONNECT_FRAMES.iter().flat_map(|h| hex(h)).collect::<Vec<u8>>();
        let mut reserved = connect.clone();
        reserved[9] |= 1; // the CONNECT flags' reserved bit
        let mut flagged = connect.clone();
        flagged[0] |= 0b0100;
        for bad in [reserved, flagged] {
            let mut f = Framer::new(1 << 16);
            f.feed(&bad);
            assert!(f.next_packet().is_err(), "{bad:02x?}");
        }
        for bad in [
            &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00][..], // SUBSCRIBE with flags 0000
            &[0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, b't'],           // UNSUBSCRIBE with flags 0000
            &[0xc1, 0x00],                                         // PINGREQ with flags 0001
            &[0xe8, 0x00],                                         // DISCONNECT with flags 1000
            &[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01],           // PUBLISH with QoS 3
        ] {
            let mut f = connected();
            f.feed(bad);
            assert!(f.next_packet().is_err(), "{bad:02x?}");
        }
        let mut f = connected();
        f.feed(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00]); // a correct SUBSCRIBE
        f.feed(&[0x3b, 0x05, 0x00, 0x01, b't', 0x00, 0x01]); // PUBLISH dup, QoS 1, retain
        assert!(matches!(f.next_packet(), Ok(Some(Incoming::Subscribe { .. }))));
        assert!(matches!(f.next_packet(), Ok(Some(Incoming::Publish { .. }))));
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
