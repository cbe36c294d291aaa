//! Short constructors for the messages the engine sends devices (`ServerMessage`), in the
//! argument order the engine has at hand. Their bodies are in `crate::signalling`.

use crate::media_signal::RawJson;
use crate::signalling::{CallerInfo, MediaMode, RtcType, ServerMessage};

pub fn called(
    rtc_type: RtcType,
    caller_info: CallerInfo,
    channel_id: &str,
    call_id: &str,
    caller_user_info: RawJson,
    video: bool,
) -> ServerMessage {
    ServerMessage::Called {
        rtc_type,
        caller_info,
        channel_id: channel_id.into(),
        call_id: call_id.into(),
        caller_user_info,
        video,
    }
}

pub fn media_mode(uuid: &str, channel_id: &str, mode: MediaMode, rtc_id: &str, reason: &str) -> ServerMessage {
    ServerMessage::MediaMode {
        uuid: uuid.into(),
        channel_id: channel_id.into(),
        mode,
        rtc_id: rtc_id.into(),
        reason: reason.into(),
    }
}

pub fn ringing(uuid: &str, channel_id: &str) -> ServerMessage {
    ServerMessage::Ringing { uuid: uuid.into(), channel_id: channel_id.into() }
}

pub fn answered(uuid: &str, channel_id: &str, call_id: &str, accepted: bool) -> ServerMessage {
    ServerMessage::Answered { uuid: uuid.into(), channel_id: channel_id.into(), call_id: call_id.into(), accepted }
}

pub fn peer_joined(uuid: &str, channel_id: &str, peer_user_id: &str) -> ServerMessage {
    ServerMessage::PeerJoined { uuid: uuid.into(), channel_id: channel_id.into(), peer_user_id: peer_user_id.into() }
}

pub fn peer_left(uuid: &str, channel_id: &str) -> ServerMessage {
    ServerMessage::PeerLeft { uuid: uuid.into(), channel_id: channel_id.into() }
}

pub fn canceled(channel_id: &str) -> ServerMessage {
    ServerMessage::CanceledCall { channel_id: channel_id.into() }
}

pub fn disconnect(uuid: Option<&str>, channel_id: &str, code: i64, cause: &str) -> ServerMessage {
    ServerMessage::Disconnect {
        uuid: uuid.map(str::to_string),
        channel_id: channel_id.into(),
        code,
        cause: cause.into(),
    }
}

pub fn dtmf(uuid: &str, channel_id: &str, digit: char, timestamp: u64) -> ServerMessage {
    ServerMessage::Dtmf { uuid: uuid.into(), channel_id: channel_id.into(), digit, timestamp }
}
