//! A virtual SDK device built for load (the `alicom-bench` crate's `gateway` and `calls`
//! benchmarks hold 10,000 of them): MQTT 3.1.1 over a plain tokio `TcpStream`, given an account
//! whose token came from GetRtcToken. No MQTT event loop and no task per device unless the caller
//! spawns one; reads and writes are batched (everything queued with `push_*` goes out in one
//! `write` at the next [`Conn::flush`]). CONNECT and SUBSCRIBE are encoded with rumqttc's
//! `mqttbytes::v4`; the QoS 0 PUBLISHes of the hot path are framed by hand (fixed header,
//! remaining length, topic, payload), and received frames are split without copying.
//!
//! [`crate::Device`] is the other virtual device: an ergonomic test client (rumqttc's
//! event loop in a task, typed [`Envelope`](emu_gateway::envelope::Envelope)s, automatic ACKs,
//! waiting for a message type). Both speak the same protocol; what they share (the topic of
//! each request type) is [`request_topic`]. This one exists because a rumqttc client per device
//! costs a task, channels and a JSON parse per message, which the load generator cannot afford
//! for 10,000 devices at 200k messages/s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Packet, Subscribe};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An RTC account with a token, as GetRtcToken returned it.
pub struct Account {
    pub rtc_id: String,
    pub client_id: String,
    /// `tokenData` as a JSON string literal (quoted and escaped), to paste into bodies.
    pub token_json: String,
    pub conference_topic: String,
    /// `<conferenceTopic>/p2p/<serverId>`: where devices publish.
    pub server_topic: String,
}

impl Account {
    /// The fields a device needs from GetRtcToken's token (the JSON inside `Module`).
    pub fn from_token(rtc_id: String, token: &Value) -> anyhow::Result<Account> {
        let field = |k: &str| token[k].as_str().map(str::to_string).with_context(|| format!("token without {k}"));
        let conference_topic = field("conferenceTopic")?;
        Ok(Account {
            client_id: field("clientId")?,
            token_json: serde_json::to_string(&field("tokenData")?)?,
            server_topic: format!("{conference_topic}/p2p/{}", field("serverId")?),
            conference_topic,
            rtc_id,
        })
    }
}

/// One MQTT packet from the emulator.
pub enum Frame {
    Publish {
        topic: Bytes,
        payload: Bytes,
    },
    /// Any other packet: its type (high nibble of the first byte) and variable part.
    Other {
        kind: u8,
        body: Bytes,
    },
}

/// How long setup steps wait for the emulator.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// One device's MQTT connection.
pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Free space kept in the read buffer before each read.
    read_chunk: usize,
    pub acct: Account,
    /// For request ids unique on this connection.
    pub seq: u64,
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

/// Appends a QoS 0 PUBLISH.
fn put_publish(buf: &mut BytesMut, topic: &str, payload: &[u8]) {
    let mut remaining = 2 + topic.len() + payload.len();
    buf.reserve(remaining + 5);
    buf.put_u8(0x30);
    loop {
        let mut byte = (remaining % 128) as u8;
        remaining /= 128;
        if remaining > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if remaining == 0 {
            break;
        }
    }
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    buf.put_slice(payload);
}

impl Conn {
    /// TCP connect, CONNECT with the token's clientId, `$SYS/uploadToken`, SUBSCRIBE to the
    /// conferenceTopic (all in one write, as the gateway handles them in order), then waits for
    /// the CONNACK and a granted SUBACK (which also says the token was accepted).
    pub async fn open(addr: &str, acct: Account, keep_alive_secs: u16) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            rbuf: BytesMut::with_capacity(1024),
            wbuf: BytesMut::with_capacity(1024),
            read_chunk: 1024,
            acct,
            seq: 0,
        };
        let mut connect = Connect::new(c.acct.client_id.clone());
        connect.keep_alive = keep_alive_secs;
        connect.clean_session = true;
        Packet::Connect(connect).write(&mut c.wbuf, usize::MAX).map_err(|e| anyhow::anyhow!("CONNECT: {e:?}"))?;
        let upload = format!(r#"{{"token":{},"type":"RW"}}"#, c.acct.token_json);
        put_publish(&mut c.wbuf, "$SYS/uploadToken", upload.as_bytes());
        let mut subscribe = Subscribe::new(c.acct.conference_topic.clone(), QoS::AtMostOnce);
        subscribe.pkid = 1;
        Packet::Subscribe(subscribe).write(&mut c.wbuf, usize::MAX).map_err(|e| anyhow::anyhow!("SUBSCRIBE: {e:?}"))?;
        c.flush().await?;
        let mut connack = false;
        loop {
            match c.next_frame()? {
                Some(Frame::Other { kind: 2, body }) => {
                    if body.get(1) != Some(&0) {
                        bail!("CONNACK refused: {body:?}");
                    }
                    connack = true;
                }
                Some(Frame::Other { kind: 9, body }) if connack => {
                    if body.len() < 3 || body[2..].contains(&0x80) {
                        bail!("SUBSCRIBE refused (token not accepted?)");
                    }
                    return Ok(c);
                }
                Some(Frame::Publish { topic, .. }) => {
                    bail!("{} while connecting", String::from_utf8_lossy(&topic))
                }
                Some(Frame::Other { kind, .. }) => bail!("unexpected MQTT packet type {kind} while connecting"),
                None => tokio::time::timeout(STEP_TIMEOUT, c.read_more()).await.context("no CONNACK/SUBACK")??,
            }
        }
    }

    /// `cs_register` (the registration, or a heartbeat) and its ACK 200.
    pub async fn register(&mut self) -> anyhow::Result<()> {
        self.seq += 1;
        let request_id = format!("reg-{}-{}", self.acct.rtc_id, self.seq);
        let body = self.register_body();
        self.push_request("cs_register", &request_id, &body);
        self.flush().await?;
        loop {
            while let Some(frame) = self.next_frame()? {
                if let Frame::Publish { payload, .. } = frame
                    && let Some((id, code)) = scan_ack(&payload)
                    && id == request_id.as_bytes()
                {
                    if code != 200 {
                        bail!("cs_register answered {code}");
                    }
                    return Ok(());
                }
            }
            tokio::time::timeout(STEP_TIMEOUT, self.read_more()).await.context("no cs_register ACK")??;
        }
    }

    /// The SDK's `cs_register` body.
    pub fn register_body(&self) -> String {
        let (rtc, token) = (&self.acct.rtc_id, &self.acct.token_json);
        format!(r#"{{"deviceId":"{rtc}","userId":"{rtc}","ip":"unknow","token":{token}}}"#)
    }

    /// Keeps at least `n` bytes free before each read (bigger batches for busy connections).
    pub fn set_read_chunk(&mut self, n: usize) {
        self.read_chunk = n;
    }

    /// Queues a request envelope as the SDK builds it; `body` is JSON. Ids must not need escaping.
    pub fn push_request(&mut self, message_type: &str, request_id: &str, body: &str) {
        let topic = request_topic(message_type);
        let (rtc, client_id, now) = (&self.acct.rtc_id, &self.acct.client_id, now_ms());
        let envelope = format!(
            concat!(
                r#"{{"topic":"{topic}","bornTime":{now},"to":{{"sessionId":"alicombiz"}},"#,
                r#""from":{{"sessionId":"{rtc}","clientType":"Web_artc","transportId":"{cid}","transportType":"mqtt"}},"#,
                r#""messageId":"m{rid}","messageType":"{mt}","body":{body},"response":false,"encryptedBody":false,"#,
                r#""requestId":"{rid}","arriveTime":0,"responseCode":0}}"#
            ),
            topic = topic,
            now = now,
            rtc = rtc,
            cid = client_id,
            rid = request_id,
            mt = message_type,
            body = body,
        );
        put_publish(&mut self.wbuf, &self.acct.server_topic, envelope.as_bytes());
    }

    /// Queues the ACK of a server request (responseCode 200), as the SDK sends it.
    pub fn push_ack(&mut self, message_type: &str, request_id: &str, body: &str) {
        let (rtc, now) = (&self.acct.rtc_id, now_ms());
        let envelope = format!(
            concat!(
                r#"{{"topic":"artc_media","bornTime":{now},"to":{{"sessionId":"alicombiz"}},"#,
                r#""from":{{"sessionId":"{rtc}","clientType":"Web_artc","transportType":"mqtt"}},"#,
                r#""messageId":"a{rid}","messageType":"{mt}","body":{body},"response":true,"encryptedBody":false,"#,
                r#""requestId":"{rid}","arriveTime":0,"responseCode":200}}"#
            ),
            now = now,
            rtc = rtc,
            rid = request_id,
            mt = message_type,
            body = body,
        );
        put_publish(&mut self.wbuf, &self.acct.server_topic, envelope.as_bytes());
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads what is there (at least one byte). Cancel-safe. The emulator closing is an error.
    pub async fn read_more(&mut self) -> std::io::Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < self.read_chunk / 4 {
            self.rbuf.reserve(self.read_chunk);
        }
        match self.stream.read_buf(&mut self.rbuf).await? {
            0 => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the emulator closed the connection")),
            _ => Ok(()),
        }
    }

    /// The next complete packet in the read buffer, if any.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        let buf = &self.rbuf[..];
        let (mut len, mut shift, mut at) = (0usize, 0, 1);
        loop {
            let Some(&b) = buf.get(at) else { return Ok(None) };
            len |= usize::from(b & 0x7f) << shift;
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 {
                bail!("malformed MQTT remaining length");
            }
        }
        if buf.len() < at + len {
            return Ok(None);
        }
        let header = buf[0];
        let mut frame = self.rbuf.split_to(at + len).freeze();
        frame.advance(at);
        let kind = header >> 4;
        if kind != 3 {
            return Ok(Some(Frame::Other { kind, body: frame }));
        }
        if frame.len() < 2 {
            bail!("malformed PUBLISH");
        }
        let topic_len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
        let mut start = 2 + topic_len;
        if (header >> 1) & 3 != 0 {
            start += 2; // packet id of QoS 1/2 (the emulator publishes at QoS 0)
        }
        if frame.len() < start {
            bail!("malformed PUBLISH");
        }
        Ok(Some(Frame::Publish { topic: frame.slice(2..2 + topic_len), payload: frame.slice(start..) }))
    }
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// For an ACK envelope (`"response":true`): its requestId and responseCode, found without a JSON
/// parse. The emulator serialises envelopes in field order (… `body`, `response`,
/// `encryptedBody`, `requestId`, `arriveTime`, `responseCode`), so the last `"requestId"` is the
/// envelope's, not something in the body.
pub fn scan_ack(payload: &[u8]) -> Option<(&[u8], i64)> {
    const RID: &[u8] = br#""requestId":""#;
    const CODE: &[u8] = br#""responseCode":"#;
    let at = rfind(payload, RID)? + RID.len();
    let end = at + payload[at..].iter().position(|&b| b == b'"')?;
    rfind(&payload[at.saturating_sub(64)..at], br#""response":true"#)?;
    let code_at = end + rfind(&payload[end..], CODE)? + CODE.len();
    let digits = payload[code_at..].iter().take_while(|b| b.is_ascii_digit() || **b == b'-').count();
    let code = std::str::from_utf8(&payload[code_at..code_at + digits]).ok()?.parse().ok()?;
    Some((&payload[at..end], code))
}

/// `base64(zlib(json))` for `body.mediaSignal`, with the zlib data as stored (uncompressed)
/// blocks: valid for any inflater, and nearly free to produce, so the load generator does not
/// spend its CPU on deflate.
pub fn media_signal(json: &str) -> String {
    let data = json.as_bytes();
    let mut z = Vec::with_capacity(data.len() + 16);
    z.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        z.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        z.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    base64::engine::general_purpose::STANDARD.encode(&z)
}

/// The `topic` field of a request envelope the SDK sends, by its `messageType`.
pub fn request_topic(message_type: &str) -> &'static str {
    match message_type {
        "cs_register" => "artc_biz",
        "cs_get_sls_sts" => "biz",
        _ => "artc_media",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_signal_is_what_the_gateway_decodes() {
        let v = serde_json::json!({"api": "joinChannel", "data": {"channelId": "c1", "pad": "é".repeat(40_000)}});
        let decoded: serde_json::Value =
            emu_gateway::media_signal::decode(&media_signal(&v.to_string()), 1 << 20).unwrap();
        assert_eq!(decoded, v);
        let empty = emu_gateway::media_signal::decode::<serde_json::Value>(&media_signal(""), 16);
        assert!(empty.is_err(), "an empty document is no JSON, but it inflates: {empty:?}");
    }

    #[test]
    fn scans_an_emulator_ack() {
        let e = emu_gateway::envelope::Envelope {
            message_type: "reportStatus".into(),
            request_id: "L1-42".into(),
            body: serde_json::json!({"requestId": "not this one"}),
            ..Default::default()
        };
        let ack = e.ack(200, serde_json::json!({}), "srv", 1).to_bytes();
        assert_eq!(scan_ack(&ack), Some((&b"L1-42"[..], 200)));
        assert_eq!(scan_ack(&e.to_bytes()), None, "a request is not an ACK");
    }
}
