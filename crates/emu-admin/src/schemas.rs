//! Descriptions, for the OpenAPI document, of replies that other components build as JSON values
//! (the calls driver's views, the media server's statistics): each names the fields those
//! builders write (an optional field is always there, `null` when it has no value). They are
//! never constructed; schemathesis checks real replies against them (tests/openapi/run.sh).

use emu_core::engine::call::{Call, CallState};
use emu_core::events::Event;
use emu_core::signalling::RtcType;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A call in `GET /admin/calls`: active calls first, then recent ones.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallSummary {
    pub channel_id: String,
    pub tenant: String,
    pub alicom_rtc_type: RtcType,
    pub state: CallState,
    /// The caller's rtcId or number.
    pub caller: String,
    /// The callees' rtcIds or numbers.
    pub callees: Vec<String>,
    pub created_ms: u64,
    #[schema(required = true)]
    pub answered_ms: Option<u64>,
    #[schema(required = true)]
    pub ended_ms: Option<u64>,
    #[schema(required = true)]
    pub end_reason: Option<String>,
    #[schema(required = true)]
    pub cause_code: Option<i64>,
}

/// A call with its legs, codes, CDR, per-leg media statistics and every event of it.
#[derive(Serialize, ToSchema)]
pub struct CallView {
    #[serde(flatten)]
    pub call: Call,
    pub tenant: String,
    /// Every event of the call, oldest first.
    pub timeline: Vec<Event>,
    /// The media server's statistics of the channel (see `GET /admin/media/{channelId}`), or
    /// `null` when it has none.
    #[schema(value_type = Option<Object>, required = true)]
    pub media: Value,
}

/// A tenant's callback URLs (`null`: none).
#[derive(Serialize, ToSchema)]
pub struct Callbacks {
    pub tenant: String,
    /// The outbound authorisation callback.
    #[schema(required = true)]
    pub outbound: Option<String>,
    /// The inbound routing callback.
    #[schema(required = true)]
    pub inbound: Option<String>,
    /// Per bought number: its own inbound callback.
    pub numbers: std::collections::BTreeMap<String, Option<String>>,
}

/// Server-wide media counters and sizes (docs/media.md).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaSummary {
    /// The first worker's UDP address.
    pub udp: String,
    pub udp_ports: Vec<u16>,
    /// The address put into ICE candidates.
    pub candidate: String,
    /// The TURN listener's address, when TURN is on.
    #[schema(required = true)]
    pub turn: Option<String>,
    #[schema(required = true)]
    pub turn_url: Option<String>,
    pub channels: usize,
    pub legs: usize,
    pub connected_legs: usize,
    pub rtp_packets_in: u64,
    pub rtp_packets_out: u64,
    pub rtp_direct_in: u64,
    pub rtp_direct_out: u64,
    #[schema(required = true)]
    pub turn_users: Option<usize>,
    #[schema(required = true)]
    pub turn_rejected: Option<u64>,
    /// Recordings in progress.
    pub recordings: usize,
    /// Datagrams by kind: packets in/out, garbage, unknown sources, …
    #[schema(value_type = Object)]
    pub counters: Value,
    /// Open TURN allocations.
    pub turn_allocations: usize,
}

/// A phone's behaviour as `PUT /admin/pstn/phones/{number}` takes it: every field optional
/// (absent or `null`: the default), unknown fields refused (docs/pstn.md#behaviours).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneBehaviorInput {
    /// How long the phone rings before `then` happens (default 2000).
    pub ring_ms: Option<u64>,
    /// What happens when the phone is called (default `answer`).
    pub then: Option<emu_pstn::Outcome>,
    /// Once answered or connected: hang up after this long.
    pub hangup_after_ms: Option<u64>,
    /// Once answered or connected: keys to press.
    pub dtmf: Option<Vec<DtmfPressInput>>,
    /// What the phone sends once answered (default a 440 Hz tone).
    pub audio: Option<emu_pstn::Audio>,
}

/// Keys pressed in one go: the first `after_ms` after answering, the next `gap_ms` apart.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DtmfPressInput {
    /// Default 1000.
    pub after_ms: Option<u64>,
    /// 0-9, *, #.
    pub digits: String,
    /// Default 200.
    pub gap_ms: Option<u64>,
}
