//! The Alicom envelope (PROTOCOL.md §3): the JSON every SDK message travels in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// An envelope as it is on the wire. Unknown fields are ignored; missing ones default.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Envelope {
    pub topic: String,
    pub born_time: u64,
    pub to: Value,
    pub from: Value,
    pub message_id: String,
    pub message_type: String,
    pub body: Value,
    pub response: bool,
    pub encrypted_body: bool,
    pub request_id: String,
    pub arrive_time: u64,
    pub response_code: i64,
}

/// Who the server says it is in `from`.
pub const SERVER_SESSION: &str = "alicombiz";

/// A fresh v4 UUID from the thread-local generator: `Uuid::new_v4` asks the OS for entropy on
/// every call, a system call per ACK on the gateway's hottest path.
pub fn new_id() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

impl Envelope {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let e: Envelope = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if e.message_type.is_empty() {
            return Err("the envelope has no messageType".into());
        }
        if e.request_id.is_empty() {
            return Err("the envelope has no requestId".into());
        }
        Ok(e)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn body_str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    /// The ACK of a client request: same messageType and requestId, a fresh messageId.
    pub fn ack(&self, code: i64, body: Value, server_id: &str, now_ms: u64) -> Envelope {
        Envelope {
            topic: self.topic.clone(),
            born_time: now_ms,
            to: self.from.clone(),
            from: server_from(server_id),
            message_id: new_id(),
            message_type: self.message_type.clone(),
            body,
            response: true,
            encrypted_body: false,
            request_id: self.request_id.clone(),
            arrive_time: 0,
            response_code: code,
        }
    }

    /// A server request with fresh ids (the SDK drops repeated requestIds and messageIds).
    pub fn server_request(message_type: &str, body: Value, to_session: &str, server_id: &str, now_ms: u64) -> Envelope {
        Envelope {
            topic: "artc_media".into(),
            born_time: now_ms,
            to: json!({"sessionId": to_session}),
            from: server_from(server_id),
            message_id: new_id(),
            message_type: message_type.into(),
            body,
            response: false,
            encrypted_body: false,
            request_id: new_id(),
            arrive_time: 0,
            response_code: 0,
        }
    }

    /// The call this envelope belongs to, if it says.
    pub fn channel_id(&self, media_signal: Option<&Value>) -> Option<String> {
        self.body_str("channelId").map(str::to_string).or_else(|| {
            media_signal.and_then(|m| m.pointer("/data/channelId")).and_then(Value::as_str).map(str::to_string)
        })
    }
}

fn server_from(server_id: &str) -> Value {
    json!({"sessionId": SERVER_SESSION, "clientType": "server", "transportId": server_id, "transportType": "mqtt"})
}

/// An empty JSON object body.
pub fn empty_body() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = r#"{"topic":"artc_biz","bornTime":1795666769629,"to":{"sessionId":"alicombiz"},
 "from":{"sessionId":"alice","clientType":"Web_artc","transportId":"GID_emu@@@58481771f9ab","transportType":"mqtt"},
 "messageId":"aa4bb01b","messageType":"cs_register",
 "body":{"deviceId":"alice","userId":"alice","ip":"unknow","token":"emu-token"},
 "response":false,"encryptedBody":false,"requestId":"8a9","arriveTime":0,"responseCode":0}"#;

    #[test]
    fn parses_a_captured_register_and_acks_it() {
        let e = Envelope::parse(REGISTER.as_bytes()).unwrap();
        assert_eq!(e.message_type, "cs_register");
        assert_eq!(e.body_str("token"), Some("emu-token"));
        let ack = e.ack(200, empty_body(), "GID_VOIP@@@x", 5);
        assert!(ack.response);
        assert_eq!((ack.request_id.as_str(), ack.response_code), ("8a9", 200));
        assert_ne!(ack.message_id, e.message_id);
        assert_eq!(ack.to["sessionId"], "alice");
        let wire: Value = serde_json::from_slice(&ack.to_bytes()).unwrap();
        assert_eq!(wire["messageType"], "cs_register");
        assert_eq!(wire["responseCode"], 200);
    }

    #[test]
    fn server_requests_get_fresh_ids() {
        let a = Envelope::server_request("ringing", json!({"channelId": "c"}), "alice", "s", 1);
        let b = Envelope::server_request("ringing", json!({"channelId": "c"}), "alice", "s", 1);
        assert_ne!(a.request_id, b.request_id);
        assert_ne!(a.message_id, b.message_id);
        assert_eq!(a.channel_id(None).as_deref(), Some("c"));
    }

    #[test]
    fn rejects_non_envelopes() {
        assert!(Envelope::parse(b"{\"a\":1}").is_err());
        assert!(Envelope::parse(b"not json").is_err());
    }
}
