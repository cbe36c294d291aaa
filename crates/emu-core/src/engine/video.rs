//! Video calls (docs/calls.md#video-calls): a VoIP↔VoIP call whose caller asked for video. The
//! media server reports each leg's negotiated video and when its video first reached the other
//! party; a party without active video (a callee answering audio-only, a re-offer turning the
//! camera off) turns the call into audio for both, who are told with `cs_media_mode`. The CDR
//! says `video2video` when video went both ways.

use serde::Serialize;
use serde_json::json;

use super::Engine;
use super::call::{Call, Caller, Target};
use super::messages;
use crate::signalling::{MediaMode, RtcType};

/// A call's video, in its admin view.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CallVideo)]
pub struct Video {
    /// The caller joined allowing video (`channelConfig.allowVideo` in its joinChannel).
    pub caller_allowed: bool,
    /// The caller's `call` asked for video to VoIP callees: `called` says so.
    pub requested: bool,
    /// Video until a party has none, then audio for good.
    pub mode: MediaMode,
    /// Why the mode became audio.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// Whose video reached the other party (rtcIds).
    pub flowed: Vec<String>,
    /// Who negotiated active video at least once (rtcIds).
    pub negotiated: Vec<String>,
}

impl Video {
    /// A video call still in video mode.
    pub fn is_on(&self) -> bool {
        self.requested && self.mode == MediaMode::Video
    }
}

impl Call {
    /// The CDR's `alicomRtcType`: "video2video" for a VoIP↔VoIP call whose video went both ways.
    pub fn reported_type(&self) -> &'static str {
        let flowed = |rtc_id: &str| self.video.flowed.iter().any(|r| r == rtc_id);
        let both = match (&self.caller, self.answered_leg().map(|l| &l.target)) {
            (Caller::Device { rtc_id: a, .. }, Some(Target::Device { rtc_id: b })) => flowed(a) && flowed(b),
            _ => false,
        };
        if self.rtc_type == RtcType::Voip2Voip && both { "video2video" } else { self.rtc_type.as_str() }
    }

    /// Whether a device joining now may negotiate video: the caller while its call allows it,
    /// a callee while the call is still in video mode.
    pub fn video_for(&self, rtc_id: &str) -> bool {
        if self.rtc_type != RtcType::Voip2Voip {
            return false;
        }
        if self.is_caller_device(rtc_id) {
            self.video.caller_allowed && (!self.video.requested || self.video.is_on())
        } else {
            self.video.is_on()
        }
    }
}

impl Engine {
    /// The media server answered `rtc_id`'s offer with (`video`) or without active video.
    pub(super) fn on_video_negotiated(&mut self, channel_id: &str, rtc_id: &str, video: bool) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        let had_video = call.video.negotiated.iter().any(|r| r == rtc_id);
        if video {
            if !had_video {
                call.video.negotiated.push(rtc_id.to_string());
            }
            return;
        }
        if !call.video.requested {
            // The caller's own offer had no video before its `call`: the call will be audio.
            if call.is_caller_device(rtc_id) {
                call.video.caller_allowed = false;
            }
            return;
        }
        if call.video.mode == MediaMode::Audio {
            return;
        }
        let reason =
            if had_video { format!("{rtc_id} turned video off") } else { format!("{rtc_id} answered audio-only") };
        self.switch_to_audio(channel_id, rtc_id, &reason);
    }

    /// The call becomes audio: both parties are told.
    pub(super) fn switch_to_audio(&mut self, channel_id: &str, rtc_id: &str, reason: &str) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        call.video.mode = MediaMode::Audio;
        call.video.reason = Some(reason.to_string());
        let tenant = call.tenant;
        let mut parties: Vec<(String, String)> = Vec::new();
        if let Caller::Device { rtc_id, uuid, .. } = &call.caller {
            parties.push((rtc_id.clone(), uuid.clone()));
        }
        if let Some(leg) = call.answered_leg()
            && let (Target::Device { rtc_id }, Some(uuid)) = (&leg.target, &leg.uuid)
        {
            parties.push((rtc_id.clone(), uuid.clone()));
        }
        self.log_state(channel_id, "media_mode", json!({"mode": "audio", "rtcId": rtc_id, "reason": reason}));
        for (to, uuid) in parties {
            self.send_to(tenant, &to, messages::media_mode(&uuid, channel_id, MediaMode::Audio, rtc_id, reason));
        }
    }

    /// `rtc_id`'s video reached the other party.
    pub(super) fn on_video_flowing(&mut self, channel_id: &str, rtc_id: &str) {
        if let Some(call) = self.calls.get_mut(channel_id)
            && !call.video.flowed.iter().any(|r| r == rtc_id)
        {
            call.video.flowed.push(rtc_id.to_string());
        }
    }
}
