//! The bodies of the server → device messages (docs/protocol.md#server-messages), as captured from the real SDK.
//! `mediaSignal` values are left as JSON here; the gateway side encodes them.

use serde_json::{Value, json};

/// A successful ARTC api message for `body.mediaSignal`.
pub fn artc(api: &str, data: Value) -> Value {
    json!({"api": api, "errorCode": 0, "errorMsg": "SUCCESS", "data": data})
}

pub fn channel_config() -> Value {
    json!({"allowVideo": 0, "callType": "chat", "outerBizId": "alicom"})
}

/// `called` to a callee. No `body.uuid`: its session id is unknown (docs/protocol.md#rules-for-server-messages).
pub fn called(rtc_type: &str, caller_info: Value, channel_id: &str, call_id: &str, caller_user_info: Value) -> Value {
    json!({
        "alicomRtcType": rtc_type,
        "callerInfo": caller_info,
        "channelId": channel_id,
        "mediaSignal": artc("called", json!({
            "callId": call_id,
            "channelId": channel_id,
            "callerUserInfo": caller_user_info,
            "channelConfig": channel_config(),
        })),
    })
}

pub fn ringing(uuid: &str, channel_id: &str) -> Value {
    json!({"uuid": uuid, "channelId": channel_id})
}

pub fn answered(uuid: &str, channel_id: &str, call_id: &str, call_result: i64) -> Value {
    json!({"uuid": uuid, "channelId": channel_id,
           "mediaSignal": artc("answered", json!({"channelId": channel_id, "callId": call_id, "callResult": call_result}))})
}

pub fn peer_joined(uuid: &str, channel_id: &str, peer_user_id: &str) -> Value {
    json!({"uuid": uuid, "channelId": channel_id,
           "mediaSignal": artc("peerJoinedChannel", json!({"channelId": channel_id, "userId": peer_user_id}))})
}

pub fn peer_left(uuid: &str, channel_id: &str) -> Value {
    json!({"uuid": uuid, "channelId": channel_id, "mediaSignal": artc("peerLeftChannel", json!({"channelId": channel_id}))})
}

/// `canceledCall` carries no uuid: it may reach a callee that never answered.
pub fn canceled(channel_id: &str) -> Value {
    json!({"channelId": channel_id, "mediaSignal": artc("canceledCall", json!({"channelId": channel_id}))})
}

/// `cs_disconnect`: the SDK ends the call with `onStopped(causeCode, cause)` verbatim.
pub fn disconnect(uuid: Option<&str>, channel_id: &str, cause_code: i64, cause: &str) -> Value {
    let mut b = json!({"channelId": channel_id, "causeCode": cause_code, "cause": cause});
    if let Some(u) = uuid {
        b["uuid"] = u.into();
    }
    b
}

pub fn dtmf(uuid: &str, channel_id: &str, digit: char, timestamp: u64) -> Value {
    json!({"uuid": uuid, "channelId": channel_id, "dtmf": digit.to_string(), "timestamp": timestamp})
}
