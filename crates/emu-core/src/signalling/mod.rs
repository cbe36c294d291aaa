//! The typed vocabulary of device requests: what an SDK asks the platform to do, decoded once
//! from an envelope's body and its (already inflated) `mediaSignal` at the gateway's edge. The call
//! engine takes these types and never digs in JSON. docs/protocol.md describes the wire format.
//!
//! The messages the platform sends devices are typed here too (`ServerMessage`), with the body
//! each becomes; the gateway wraps it in an envelope and encodes its `mediaSignal`.
//!
//! The `mediaSignal` is read into the fields the platform uses ([`MediaSignal`]); values the
//! protocol echoes back unchanged (`extend`, the caller's `userInfo`) stay JSON: the platform
//! passes them through without reading them.

use std::borrow::Cow;

use crate::lenient::{Fields, Leaf, Object, Text, skip};
pub use crate::media_result::{MediaResult, MediaResultApi};
use crate::media_signal::{MediaSignal, RawJson, SignalData};
use serde::Deserialize;
use serde::Serialize;
use serde::de::{Deserializer, MapAccess};
use serde_json::Value;

use crate::tenants::TenantId;

/// `called`'s `callerInfo`: `{"isPstn": false, "rtcId", "uuid"}` for a device,
/// `{"isPstn": true, "phoneNumber", "uuid"}` for a phone (docs/protocol.md#server-messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerInfo {
    Device { rtc_id: String, uuid: String },
    Phone { number: String, uuid: String },
}

impl CallerInfo {
    /// Who calls: the device's rtcId or the phone's number.
    pub fn peer(&self) -> &str {
        match self {
            CallerInfo::Device { rtc_id, .. } => rtc_id,
            CallerInfo::Phone { number, .. } => number,
        }
    }
}

impl Serialize for CallerInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        match self {
            CallerInfo::Device { rtc_id, uuid } => {
                m.serialize_entry("isPstn", &false)?;
                m.serialize_entry("rtcId", rtc_id)?;
                m.serialize_entry("uuid", uuid)?;
            }
            CallerInfo::Phone { number, uuid } => {
                m.serialize_entry("isPstn", &true)?;
                m.serialize_entry("phoneNumber", number)?;
                m.serialize_entry("uuid", uuid)?;
            }
        }
        m.end()
    }
}

/// The call type (`alicomRtcType` in envelopes, CDRs and callbacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub enum RtcType {
    #[serde(rename = "voip2voip")]
    Voip2Voip,
    #[serde(rename = "voip2pstn")]
    Voip2Pstn,
    #[serde(rename = "pstn2voip")]
    Pstn2Voip,
    #[serde(rename = "pstn2pstn")]
    Pstn2Pstn,
}

impl RtcType {
    pub fn as_str(self) -> &'static str {
        match self {
            RtcType::Voip2Voip => "voip2voip",
            RtcType::Voip2Pstn => "voip2pstn",
            RtcType::Pstn2Voip => "pstn2voip",
            RtcType::Pstn2Pstn => "pstn2pstn",
        }
    }

    /// The wire name; anything unknown is `None`.
    pub fn parse(s: &str) -> Option<RtcType> {
        [RtcType::Voip2Voip, RtcType::Voip2Pstn, RtcType::Pstn2Voip, RtcType::Pstn2Pstn]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for RtcType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One device request for the call engine.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    pub tenant: TenantId,
    pub rtc_id: String,
    /// `body.channelId`, else `mediaSignal.data.channelId` (empty counts as absent).
    pub channel_id: Option<String>,
    /// The device's session id for this call (`body.uuid`).
    pub uuid: String,
    pub kind: RequestKind,
}

#[derive(Debug, Clone)]
pub enum RequestKind {
    /// `joinChannel`: the caller opening a channel, or an answering callee joining it.
    Join(Join),
    /// `call`: the caller names its callees.
    Call(CallRequest),
    /// `answer`: `callResult` 1 accepts, anything else rejects.
    Answer { accept: bool },
    /// `cancelCall`: the caller gives up before an answer.
    CancelCall,
    /// `leaveChannel`: hang up (or, for a ringing callee, reject).
    LeaveChannel,
    /// `sdpCandidate`, `candidate`, `reportStatus`, `stat`: for the media server.
    Media { api: MediaApi, signal: Box<MediaSignal> },
    /// Any other message type: acknowledged by the gateway, nothing for the engine.
    Other(String),
}

#[derive(Debug, Clone)]
pub struct Join {
    pub is_caller: bool,
    pub rtc_type: Option<RtcType>,
    pub need_record: bool,
    pub extend: Option<String>,
    /// `mediaSignal.data.userInfo` (the caller's, shown to callees).
    pub user_info: Option<RawJson>,
    /// `channelConfig.allowVideo` 1 (or `alicomRtcType` "video2video"): the device may send
    /// and receive video in this call (docs/calls.md#video-calls).
    pub allow_video: bool,
    /// The `mediaSignal` (offer, ICE settings), for the media server; boxed, as it is several
    /// times the size of the rest of a request.
    pub signal: Box<MediaSignal>,
}

#[derive(Debug, Clone)]
pub struct CallRequest {
    pub callee: CalleeRequest,
    pub extend: Option<String>,
    /// `mediaSignal.data.callerUserInfo`.
    pub caller_user_info: Option<RawJson>,
    /// One callee's reject ends the call (the default); see docs/calls.md.
    pub cancel_on_reject: bool,
    /// The caller asks for a video call (`channelConfig.allowVideo` 1).
    pub allow_video: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalleeRequest {
    /// `calleeDeviceInfo.deviceList[].deviceId`: VoIP accounts.
    Devices(Vec<String>),
    /// `calleePstnInfo`: a phone number, the display number, and an own line's name.
    Phone { number: String, show: String, line: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaApi {
    SdpCandidate,
    Candidate,
    ReportStatus,
    Stat,
}

impl MediaApi {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaApi::SdpCandidate => "sdpCandidate",
            MediaApi::Candidate => "candidate",
            MediaApi::ReportStatus => "reportStatus",
            MediaApi::Stat => "stat",
        }
    }
}

/// What the platform reads of a request's `body` (besides `mediaSignal`, which the gateway
/// decodes): read from the text as [`crate::lenient`] reads, the rest skipped unread. The strings
/// are borrowed from the envelope when they have no escapes: a request's decoding
/// ([`DeviceRequest::decode`]) copies only what the engine keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestBody<'a> {
    pub channel_id: Option<Cow<'a, str>>,
    pub uuid: Option<Cow<'a, str>>,
    pub is_caller: Option<bool>,
    pub alicom_rtc_type: Option<Cow<'a, str>>,
    pub need_record: Option<bool>,
    pub extend: Option<Cow<'a, str>>,
    pub cancel_flag: Option<Value>,
}

impl<'a> RequestBody<'a> {
    /// The fields of a body already held as JSON (a custom message, an unknown ACK, tests): the
    /// same as decoding its text (a unit test holds the two together).
    pub fn of(body: &'a Value) -> RequestBody<'a> {
        let text = |key| body.get(key).and_then(Value::as_str).map(Cow::Borrowed);
        let flag = |key| body.get(key).and_then(Value::as_bool);
        RequestBody {
            channel_id: text("channelId"),
            uuid: text("uuid"),
            is_caller: flag("isCaller"),
            alicom_rtc_type: text("alicomRtcType"),
            need_record: flag("needRecord"),
            extend: text("extend"),
            cancel_flag: body.get("cancelFlag").cloned(),
        }
    }
}

impl<'de: 'a, 'a> Fields<'de> for RequestBody<'a> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "channelId" => self.channel_id = map.next_value::<Text<'de>>()?.0,
            "uuid" => self.uuid = map.next_value::<Text<'de>>()?.0,
            "isCaller" => self.is_caller = map.next_value::<Leaf>()?.boolean(),
            "alicomRtcType" => self.alicom_rtc_type = map.next_value::<Text<'de>>()?.0,
            "needRecord" => self.need_record = map.next_value::<Leaf>()?.boolean(),
            "extend" => self.extend = map.next_value::<Text<'de>>()?.0,
            "cancelFlag" => self.cancel_flag = Some(map.next_value()?),
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RequestBody<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RequestBody<'a>, D::Error> {
        Object::<RequestBody<'a>>::deserialize(d).map(|o| o.0)
    }
}

/// The protocol's message types (docs/protocol.md#device-requests, #server-messages), so that
/// naming one allocates nothing: an envelope's type is one of these almost always.
const MESSAGE_TYPES: &[&str] = &[
    "cs_register",
    "cs_get_sls_sts",
    "joinChannel",
    "call",
    "answer",
    "cancelCall",
    "leaveChannel",
    "sdpCandidate",
    "candidate",
    "reportStatus",
    "stat",
    "called",
    "ringing",
    "answered",
    "peerJoinedChannel",
    "peerLeftChannel",
    "canceledCall",
    "cs_disconnect",
    "cs_dtmf",
    "cs_quit",
    "cs_media_mode",
    "cs_custom_message_send",
    "cs_custom_message_push",
    "cs_custom_message_receipt",
];

/// A message type's name: the protocol's own `&'static str` when it is one, else a copy.
pub fn message_type_name(message_type: &str) -> Cow<'static, str> {
    match MESSAGE_TYPES.iter().find(|t| **t == message_type) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(message_type.to_string()),
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

/// The channel a request is about: `body.channelId` if present and non-empty, else
/// `mediaSignal.data.channelId` (docs/protocol.md#the-channelid-rule).
pub fn channel_id_of(body: &RequestBody, media_signal: Option<&MediaSignal>) -> Option<String> {
    non_empty(body.channel_id.as_deref())
        .or_else(|| non_empty(media_signal.and_then(|m| m.data.channel_id.as_deref())))
        .map(str::to_string)
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

/// The call request's cancel flag (iOS `createVoipCall(calleeRtcIds, cancleFlag, extend)`):
/// `mediaSignal.data.cancelFlag` or `body.cancelFlag`; 0 or `CALL_CANCLE_FLAG_WHEN_ONE_CALLEE_REJECT`
/// (the default) ends the call on the first reject; 1, `true` or `CALL_CANCLE_FLAG_WHEN_ALL_…`
/// keeps ringing the others.
fn cancel_on_reject(data: &SignalData, body: &RequestBody) -> bool {
    let flag = data.cancel_flag.as_ref().or(body.cancel_flag.as_ref());
    match flag {
        Some(Value::Number(n)) => n.as_i64() != Some(1),
        Some(Value::String(s)) => !(s == "1" || s.contains("WHEN_ALL")),
        Some(Value::Bool(keep_ringing)) => !keep_ringing,
        _ => true,
    }
}

/// `mediaSignal.data.channelConfig.allowVideo` is 1 (a number, `true` or "1"), or the body's
/// `alicomRtcType` is "video2video".
fn allow_video(data: &SignalData, body: &RequestBody) -> bool {
    let flag = match &data.channel_config.allow_video {
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1",
        _ => false,
    };
    flag || body.alicom_rtc_type.as_deref() == Some("video2video")
}

/// A call's callees: `calleePstnInfo` (a phone) if present, else `calleeDeviceInfo.deviceList`.
fn callee(data: &SignalData) -> CalleeRequest {
    match &data.callee_pstn_info {
        Some(p) => CalleeRequest::Phone {
            number: text(p.get("phone")).unwrap_or_default(),
            show: text(p.get("mcuPhone")).unwrap_or_default(),
            line: text(p.get("selfLineName").or(p.get("customLineName")).or(p.get("lineName"))).unwrap_or_default(),
        },
        None => CalleeRequest::Devices(
            data.callee_device_info
                .as_ref()
                .and_then(|info| info.get("deviceList"))
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(|x| text(x.get("deviceId"))).collect())
                .unwrap_or_default(),
        ),
    }
}

impl DeviceRequest {
    /// Decodes one request from its message type, body and decoded `mediaSignal` (taken: a
    /// join's or a media request's signal moves on to the media server without a copy).
    pub fn decode(
        tenant: TenantId,
        rtc_id: &str,
        message_type: &str,
        body: &RequestBody,
        media_signal: Option<MediaSignal>,
    ) -> DeviceRequest {
        let channel_id = channel_id_of(body, media_signal.as_ref());
        let mut signal = media_signal.unwrap_or_default();
        let data = &mut signal.data;
        let mut kind = match message_type {
            "joinChannel" => RequestKind::Join(Join {
                is_caller: body.is_caller.unwrap_or(false),
                rtc_type: body.alicom_rtc_type.as_deref().and_then(RtcType::parse),
                need_record: body.need_record.unwrap_or(false),
                extend: body.extend.as_deref().map(str::to_string),
                // Moved out, not copied: the media server never reads it.
                user_info: data.user_info.take(),
                allow_video: allow_video(data, body),
                signal: Box::default(),
            }),
            "call" => RequestKind::Call(CallRequest {
                callee: callee(data),
                extend: data.extend.take().or_else(|| body.extend.as_deref().map(str::to_string)),
                caller_user_info: data.caller_user_info.take(),
                cancel_on_reject: cancel_on_reject(data, body),
                allow_video: allow_video(data, body),
            }),
            "answer" => RequestKind::Answer { accept: data.call_result.unwrap_or(1) == 1 },
            "cancelCall" => RequestKind::CancelCall,
            "leaveChannel" => RequestKind::LeaveChannel,
            "sdpCandidate" | "candidate" | "reportStatus" | "stat" => RequestKind::Media {
                api: match message_type {
                    "sdpCandidate" => MediaApi::SdpCandidate,
                    "candidate" => MediaApi::Candidate,
                    "reportStatus" => MediaApi::ReportStatus,
                    _ => MediaApi::Stat,
                },
                signal: Box::default(),
            },
            other => RequestKind::Other(other.to_string()),
        };
        if let RequestKind::Join(Join { signal: slot, .. }) | RequestKind::Media { signal: slot, .. } = &mut kind {
            **slot = signal;
        }
        DeviceRequest {
            tenant,
            rtc_id: rtc_id.to_string(),
            channel_id,
            uuid: body.uuid.as_deref().unwrap_or_default().to_string(),
            kind,
        }
    }
}

/// A message the platform sends a device (a server request, ACKed by the device).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// To a callee: an incoming call. No `uuid`: the callee's session is not known yet.
    Called {
        rtc_type: RtcType,
        caller_info: CallerInfo,
        channel_id: String,
        call_id: String,
        caller_user_info: RawJson,
        /// A video call: `channelConfig.allowVideo` 1 (the SDK's `onReceivingVideoCall`).
        video: bool,
    },
    /// To the caller: a callee is ringing.
    Ringing { uuid: String, channel_id: String },
    /// To the caller: `accepted` is callResult 1; a reject (2) makes its SDK report 2000106.
    Answered { uuid: String, channel_id: String, call_id: String, accepted: bool },
    /// To the caller: the callee (`peer_user_id`, its session) joined the channel.
    PeerJoined { uuid: String, channel_id: String, peer_user_id: String },
    /// The other party left: the SDK reports 2000099.
    PeerLeft { uuid: String, channel_id: String },
    /// To a ringing callee: the caller gave up, or the ring timed out (SDK: 2000107). No uuid: it
    /// may reach a callee that never answered.
    CanceledCall { channel_id: String },
    /// `cs_disconnect`: the SDK ends the call with `onStopped(code, cause)` verbatim.
    Disconnect { uuid: Option<String>, channel_id: String, code: i64, cause: String },
    /// `cs_dtmf`: one key a phone pressed.
    Dtmf { uuid: String, channel_id: String, digit: char, timestamp: u64 },
    /// `cs_media_mode`: a video call became audio (docs/protocol.md#video-calls), because
    /// `rtc_id`'s offer had no active video. `mode` as the native SDKs' `onMediaModeChanged`.
    MediaMode { uuid: String, channel_id: String, mode: MediaMode, rtc_id: String, reason: String },
    /// The media server's answer to `joinChannel` or `sdpCandidate` (its api is the messageType).
    MediaResult { uuid: String, channel_id: String, media_signal: Box<MediaResult> },
}

/// A call's media: `onMediaModeChanged`'s mode 0 (video) or 1 (audio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    Video,
    #[default]
    Audio,
}

impl MediaMode {
    /// The number on the wire.
    pub fn code(self) -> u8 {
        match self {
            MediaMode::Video => 0,
            MediaMode::Audio => 1,
        }
    }
}

/// A successful ARTC api message (`body.mediaSignal`): `{api, errorCode: 0, errorMsg, data}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artc<D> {
    api: &'static str,
    error_code: u8,
    error_msg: &'static str,
    data: D,
}

fn artc<D>(api: &'static str, data: D) -> Artc<D> {
    Artc { api, error_code: 0, error_msg: "SUCCESS", data }
}

/// The `channelConfig` of a `called`: as the Web SDK sends in its `call`, with `allowVideo` 1
/// for a video call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelConfig {
    allow_video: u8,
    call_type: &'static str,
    outer_biz_id: &'static str,
}

pub fn channel_config(video: bool) -> ChannelConfig {
    ChannelConfig { allow_video: u8::from(video), call_type: "chat", outer_biz_id: "alicom" }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CalledData<'a> {
    call_id: &'a str,
    channel_id: &'a str,
    caller_user_info: &'a RawJson,
    channel_config: ChannelConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnsweredData<'a> {
    channel_id: &'a str,
    call_id: &'a str,
    call_result: u8,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerJoinedData<'a> {
    channel_id: &'a str,
    user_id: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelData<'a> {
    channel_id: &'a str,
}

/// A server message's `mediaSignal`, typed: serialised straight to the JSON the gateway
/// compresses, with no JSON tree in between.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Signal<'a> {
    Called(Artc<CalledData<'a>>),
    Answered(Artc<AnsweredData<'a>>),
    PeerJoined(Artc<PeerJoinedData<'a>>),
    Channel(Artc<ChannelData<'a>>),
    /// The media server's answer.
    MediaResult(&'a MediaResult),
}

/// How [`Body`] writes `mediaSignal`.
#[derive(Debug, Clone, Copy)]
pub enum SignalForm<'a> {
    /// As JSON (the body as tests and readers see it).
    Json,
    /// Already encoded for the wire (`base64(zlib(json))`, the gateway's job), as a JSON string
    /// written as it is.
    Encoded(&'a serde_json::value::RawValue),
}

/// A server message's envelope body, serialised without building a `Value`.
pub struct Body<'a> {
    message: &'a ServerMessage,
    signal: SignalForm<'a>,
}

impl ServerMessage {
    pub fn message_type(&self) -> &'static str {
        match self {
            ServerMessage::Called { .. } => "called",
            ServerMessage::Ringing { .. } => "ringing",
            ServerMessage::Answered { .. } => "answered",
            ServerMessage::PeerJoined { .. } => "peerJoinedChannel",
            ServerMessage::PeerLeft { .. } => "peerLeftChannel",
            ServerMessage::CanceledCall { .. } => "canceledCall",
            ServerMessage::Disconnect { .. } => "cs_disconnect",
            ServerMessage::Dtmf { .. } => "cs_dtmf",
            ServerMessage::MediaMode { .. } => "cs_media_mode",
            ServerMessage::MediaResult { media_signal, .. } => media_signal.api.as_str(),
        }
    }

    /// The call the message is about (`body.channelId`).
    pub fn channel_id(&self) -> &str {
        match self {
            ServerMessage::Called { channel_id, .. }
            | ServerMessage::Ringing { channel_id, .. }
            | ServerMessage::Answered { channel_id, .. }
            | ServerMessage::PeerJoined { channel_id, .. }
            | ServerMessage::PeerLeft { channel_id, .. }
            | ServerMessage::CanceledCall { channel_id }
            | ServerMessage::Disconnect { channel_id, .. }
            | ServerMessage::Dtmf { channel_id, .. }
            | ServerMessage::MediaMode { channel_id, .. }
            | ServerMessage::MediaResult { channel_id, .. } => channel_id,
        }
    }

    /// The body's `mediaSignal`, for the gateway to encode; `None` for messages without one.
    pub fn media_signal(&self) -> Option<Signal<'_>> {
        Some(match self {
            ServerMessage::Called { channel_id, call_id, caller_user_info, video, .. } => Signal::Called(artc(
                "called",
                CalledData { call_id, channel_id, caller_user_info, channel_config: channel_config(*video) },
            )),
            ServerMessage::Answered { channel_id, call_id, accepted, .. } => Signal::Answered(artc(
                "answered",
                AnsweredData { channel_id, call_id, call_result: if *accepted { 1 } else { 2 } },
            )),
            ServerMessage::PeerJoined { channel_id, peer_user_id, .. } => {
                Signal::PeerJoined(artc("peerJoinedChannel", PeerJoinedData { channel_id, user_id: peer_user_id }))
            }
            ServerMessage::PeerLeft { channel_id, .. } => {
                Signal::Channel(artc("peerLeftChannel", ChannelData { channel_id }))
            }
            ServerMessage::CanceledCall { channel_id } => {
                Signal::Channel(artc("canceledCall", ChannelData { channel_id }))
            }
            ServerMessage::MediaResult { media_signal, .. } => Signal::MediaResult(media_signal),
            ServerMessage::Ringing { .. }
            | ServerMessage::Disconnect { .. }
            | ServerMessage::Dtmf { .. }
            | ServerMessage::MediaMode { .. } => return None,
        })
    }

    /// The envelope body, `mediaSignal` written as `signal` says.
    pub fn wire_body<'a>(&'a self, signal: SignalForm<'a>) -> Body<'a> {
        Body { message: self, signal }
    }

    /// The envelope body as a JSON tree, with `mediaSignal` still as JSON (tests and readers).
    pub fn body(&self) -> Value {
        serde_json::to_value(self.wire_body(SignalForm::Json)).unwrap_or_default()
    }
}

impl Serialize for Body<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = serializer.serialize_map(None)?;
        let signal = |m: &mut S::SerializeMap| -> Result<(), S::Error> {
            match (self.signal, self.message.media_signal()) {
                (SignalForm::Encoded(text), Some(_)) => m.serialize_entry("mediaSignal", text),
                (SignalForm::Json, Some(signal)) => m.serialize_entry("mediaSignal", &signal),
                (_, None) => Ok(()),
            }
        };
        // Keys in the order of the captured messages (docs/protocol.md#server-messages).
        match self.message {
            ServerMessage::Called { rtc_type, caller_info, channel_id, .. } => {
                m.serialize_entry("alicomRtcType", rtc_type)?;
                m.serialize_entry("callerInfo", caller_info)?;
                m.serialize_entry("channelId", channel_id)?;
                signal(&mut m)?;
            }
            ServerMessage::Ringing { uuid, channel_id } => {
                m.serialize_entry("uuid", uuid)?;
                m.serialize_entry("channelId", channel_id)?;
            }
            ServerMessage::Answered { uuid, channel_id, .. }
            | ServerMessage::PeerJoined { uuid, channel_id, .. }
            | ServerMessage::PeerLeft { uuid, channel_id }
            | ServerMessage::MediaResult { uuid, channel_id, .. } => {
                m.serialize_entry("uuid", uuid)?;
                m.serialize_entry("channelId", channel_id)?;
                signal(&mut m)?;
            }
            ServerMessage::CanceledCall { channel_id } => {
                m.serialize_entry("channelId", channel_id)?;
                signal(&mut m)?;
            }
            ServerMessage::Disconnect { uuid, channel_id, code, cause } => {
                m.serialize_entry("channelId", channel_id)?;
                m.serialize_entry("causeCode", code)?;
                m.serialize_entry("cause", cause)?;
                if let Some(u) = uuid {
                    m.serialize_entry("uuid", u)?;
                }
            }
            ServerMessage::Dtmf { uuid, channel_id, digit, timestamp } => {
                m.serialize_entry("uuid", uuid)?;
                m.serialize_entry("channelId", channel_id)?;
                m.serialize_entry("dtmf", &digit.encode_utf8(&mut [0; 4]))?;
                m.serialize_entry("timestamp", timestamp)?;
            }
            ServerMessage::MediaMode { uuid, channel_id, mode, rtc_id, reason } => {
                m.serialize_entry("uuid", uuid)?;
                m.serialize_entry("channelId", channel_id)?;
                m.serialize_entry("mode", &mode.code())?;
                m.serialize_entry("rtcId", rtc_id)?;
                m.serialize_entry("reason", reason)?;
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests;
