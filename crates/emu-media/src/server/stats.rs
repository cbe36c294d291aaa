//! A channel's media statistics (docs/media.md#statistics), as `MediaServer::stats` and
//! `GET /admin/media/{channelId}` show them. Typed rather than JSON trees: every release builds
//! them and keeps them (`State::recent`), on the hot path of every call. Field order is the
//! JSON's key order; `None` is `null`, as the API has always shown it.

use std::fmt::Display;
use std::net::SocketAddr;

use emu_core::Millis;
use serde::{Serialize, Serializer};
use str0m::format::Codec;
use str0m::media::Mid;

use crate::codec::AudioCodec;
use crate::{Audio, Endpoint};

use super::leg::LegState;

/// A channel's statistics: per leg, its bridge and its recording. Once the channel is released,
/// its final ones (`released: true`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStats {
    pub(super) channel_id: String,
    pub(super) released: bool,
    pub(super) legs: Vec<LegStats>,
    pub(super) bridge: Option<BridgeStats>,
    pub(super) recording: Option<RecordingStats>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LegStats {
    pub(super) rtc_id: String,
    pub(super) uuid: String,
    pub(super) tenant: String,
    pub(super) sigv: u8,
    pub(super) state: LegState,
    #[serde(serialize_with = "display_opt")]
    pub(super) codec: Option<AudioCodec>,
    pub(super) telephone_event: Option<bool>,
    #[serde(serialize_with = "display_opt")]
    pub(super) remote_address: Option<SocketAddr>,
    pub(super) packets_in: u64,
    pub(super) bytes_in: u64,
    pub(super) packets_out: u64,
    pub(super) bytes_out: u64,
    pub(super) rtp_packets_in: u64,
    pub(super) rtp_bytes_in: u64,
    pub(super) rtp_packets_out: u64,
    pub(super) rtp_bytes_out: u64,
    pub(super) rtp_direct_in: u64,
    pub(super) rtp_direct_out: u64,
    pub(super) dtmf_in: u64,
    pub(super) dtmf_out: u64,
    /// str0m's f32 widened: the JSON has always shown it so (0.1 as 0.10000000149011612).
    pub(super) loss_in: Option<f64>,
    pub(super) loss_out: Option<f64>,
    pub(super) rtt_ms: Option<f64>,
    pub(super) last_packet_ms: Option<Millis>,
    pub(super) last_rtp_in_ms: Option<Millis>,
    pub(super) connected_ms: Option<Millis>,
    pub(super) age_ms: u64,
    pub(super) video: Option<VideoStats>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VideoStats {
    #[serde(serialize_with = "display")]
    pub(super) mid: Mid,
    #[serde(serialize_with = "display_opt")]
    pub(super) codec: Option<Codec>,
    pub(super) packets_in: u64,
    pub(super) bytes_in: u64,
    pub(super) frames_in: u64,
    pub(super) packets_out: u64,
    pub(super) bytes_out: u64,
    pub(super) frames_out: u64,
    pub(super) keyframe_requests_in: u64,
    pub(super) keyframe_requests_out: u64,
    pub(super) bitrate_in_bps: u64,
    pub(super) bitrate_out_bps: u64,
    pub(super) dropped: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct BridgeStats {
    pub(super) caller: EndpointStats,
    pub(super) callee: EndpointStats,
    pub(super) record: bool,
}

/// `{"device": rtcId}` or `{"phone": number, "audio": ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(super) enum EndpointStats {
    Device { device: String },
    Phone { phone: String, audio: Audio },
}

impl From<&Endpoint> for EndpointStats {
    fn from(e: &Endpoint) -> Self {
        match e {
            Endpoint::Device { rtc_id } => EndpointStats::Device { device: rtc_id.clone() },
            Endpoint::Phone { number, audio } => EndpointStats::Phone { phone: number.clone(), audio: audio.clone() },
        }
    }
}

/// The recording while the call goes on, and once it is finished (with its download URL).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(super) enum RecordingStats {
    #[serde(rename_all = "camelCase")]
    Live { file: String, in_progress: bool, elapsed_ms: Option<u64> },
    #[serde(rename_all = "camelCase")]
    Done { file: String, in_progress: bool, url: String },
}

/// As `to_string()` would write it, without the String.
fn display<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_opt<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
