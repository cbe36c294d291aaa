//! Video: a selective forwarding unit between the two device legs of a VoIP↔VoIP call
//! (docs/media.md#video). Each party's video goes to the other untouched (no transcoding), on
//! the receiving leg's own SSRC and sequence numbers; keyframe requests (PLI/FIR) go back to
//! the sender; NACKs are answered by str0m from the leg's send buffer (RTX where negotiated).
//!
//! A leg with video runs wholly through str0m (no `Direct` fast path): its receive side sends
//! transport-wide congestion feedback for every packet, audio included, which the browser's
//! bandwidth estimate needs, and str0m's pacer is polled without the audio path's deferral.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, Mid, Pt};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};

use crate::MediaEvent;

use super::LegId;
use super::state::{Heard, State};
use super::stats::VideoStats;

/// A leg's negotiated video line and what went through it.
pub(super) struct VideoLeg {
    pub(super) mid: Mid,
    /// The source forwarded to this leg: (sender leg, its SSRC, offset added to its sequence
    /// numbers). A new source continues this leg's numbering, so the browser sees one stream.
    fwd: Option<(LegId, Ssrc, i64)>,
    /// The sequence number after the last one sent.
    next_seq: u64,
    /// This leg's params → the local payload type carrying them unchanged (cached).
    pt_map: Option<(PayloadParams, Option<Pt>)>,
    /// `MediaEvent::VideoFlowing` sent for this leg's video.
    reported: bool,
    pub(super) stats: VideoCounters,
}

#[derive(Debug, Default, Clone)]
pub(super) struct VideoCounters {
    pub(super) codec: Option<Codec>,
    pub(super) packets_in: u64,
    pub(super) bytes_in: u64,
    /// Frames = packets with the marker bit (the last packet of a frame).
    pub(super) frames_in: u64,
    pub(super) packets_out: u64,
    pub(super) bytes_out: u64,
    pub(super) frames_out: u64,
    /// Keyframe requests this leg's browser sent (carried to the other party).
    pub(super) keyframe_requests_in: u64,
    /// Keyframe requests sent to this leg's browser (the other party's, or the server's own
    /// when a new source starts).
    pub(super) keyframe_requests_out: u64,
    /// Packets of the other party's that could not go out on this leg (no matching codec).
    pub(super) dropped: u64,
    rate_in: Rate,
    rate_out: Rate,
}

/// A bitrate over one-second windows: the last complete window's (during the first second,
/// the rate so far).
#[derive(Debug, Default, Clone, Copy)]
struct Rate {
    start: Option<Instant>,
    last: Option<Instant>,
    bytes: u64,
    bps: Option<u64>,
}

impl Rate {
    fn add(&mut self, now: Instant, bytes: usize) {
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_secs(1) {
            self.bps = Some(self.bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64);
            self.start = Some(now);
            self.bytes = 0;
        }
        self.bytes += bytes as u64;
        self.last = Some(now);
    }

    /// The rate, or 0 when nothing came for two seconds.
    fn bps(&self, now: Instant) -> u64 {
        let (Some(start), Some(last)) = (self.start, self.last) else { return 0 };
        if now.saturating_duration_since(last) >= Duration::from_secs(2) {
            return 0;
        }
        self.bps.unwrap_or_else(|| {
            let ms = last.saturating_duration_since(start).as_millis().max(100) as u64;
            self.bytes * 8 * 1000 / ms
        })
    }
}

impl VideoLeg {
    pub(super) fn new(mid: Mid, first_seq: u64) -> VideoLeg {
        VideoLeg { mid, fwd: None, next_seq: first_seq, pt_map: None, reported: false, stats: VideoCounters::default() }
    }

    /// The same line renegotiated: keeps the numbering and the statistics.
    pub(super) fn renegotiated(self, mid: Mid) -> VideoLeg {
        VideoLeg { mid, pt_map: None, ..self }
    }

    pub(super) fn stats_at(&self, now: Instant) -> VideoStats {
        let s = &self.stats;
        VideoStats {
            mid: self.mid,
            codec: s.codec,
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            frames_in: s.frames_in,
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            frames_out: s.frames_out,
            keyframe_requests_in: s.keyframe_requests_in,
            keyframe_requests_out: s.keyframe_requests_out,
            bitrate_in_bps: s.rate_in.bps(now),
            bitrate_out_bps: s.rate_out.bps(now),
            dropped: s.dropped,
        }
    }
}

impl State {
    /// A video packet from `from`: counted, and forwarded to the other party's video line.
    pub(super) fn route_video(&mut self, from: LegId, p: Heard, params: PayloadParams, now: Instant) {
        let Some(leg) = self.legs.get_mut(&from) else { return };
        let Some(video) = leg.video.as_mut() else { return };
        let s = &mut video.stats;
        s.codec = Some(params.spec().codec);
        s.packets_in += 1;
        s.bytes_in += p.payload.len() as u64;
        s.frames_in += u64::from(p.marker);
        s.rate_in.add(now, p.payload.len());
        let Some(to) = self.peer_of(from) else { return };
        let Some(to_leg) = self.legs.get_mut(&to) else { return };
        if !to_leg.is_connected() {
            return;
        }
        let (Some(video), Some(rtc)) = (to_leg.video.as_mut(), to_leg.rtc.as_mut()) else { return };
        let pt = match video.pt_map {
            Some((cached, pt)) if cached == params => pt,
            _ => {
                let pt = rtc.codec_config().match_params(params).map(|p| p.pt()).filter(|pt| {
                    rtc.media(video.mid).is_some_and(|m| m.remote_pts().contains(pt) && m.direction().is_sending())
                });
                video.pt_map = Some((params, pt));
                pt
            }
        };
        let Some(pt) = pt else {
            video.stats.dropped += 1;
            return;
        };
        let source = (from, p.ssrc);
        let new_source = !matches!(video.fwd, Some((leg, ssrc, _)) if (leg, ssrc) == source);
        if new_source {
            video.fwd = Some((from, p.ssrc, video.next_seq as i64 - p.seq as i64));
        }
        let offset = video.fwd.map_or(0, |(_, _, o)| o);
        let seq = (p.seq as i64 + offset).max(0) as u64;
        video.next_seq = video.next_seq.max(seq + 1);
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(video.mid, None) else { return };
        tx.write_rtp(
            RtpWrite::new(pt, SeqNo::from(seq), p.time, p.at, Arc::<[u8]>::from(p.payload))
                .marker(p.marker)
                .nackable(true),
        );
        let s = &mut video.stats;
        s.packets_out += 1;
        s.bytes_out += p.payload.len() as u64;
        s.frames_out += u64::from(p.marker);
        s.rate_out.add(now, p.payload.len());
        to_leg.wants_timeout = true;
        self.touch(to);
        if new_source {
            // The receiver cannot decode until a keyframe of the new source arrives.
            self.request_keyframe(from, KeyframeRequestKind::Pli);
        }
        if let Some(leg) = self.legs.get_mut(&from)
            && let Some(v) = leg.video.as_mut()
            && !v.reported
        {
            v.reported = true;
            let e = MediaEvent::VideoFlowing { channel_id: leg.channel_id.clone(), rtc_id: leg.rtc_id.clone() };
            tracing::info!(channel_id = %leg.channel_id, rtc_id = %leg.rtc_id, "video flowing");
            self.emit(e);
        }
    }

    /// A keyframe request from `from`'s browser: asked of the other party's browser.
    pub(super) fn keyframe_requested(&mut self, from: LegId, kind: KeyframeRequestKind) {
        if let Some(v) = self.legs.get_mut(&from).and_then(|l| l.video.as_mut()) {
            v.stats.keyframe_requests_in += 1;
        }
        if let Some(to) = self.peer_of(from) {
            self.request_keyframe(to, kind);
        }
    }

    /// Asks `leg`'s browser for a keyframe of the video it sends.
    fn request_keyframe(&mut self, leg: LegId, kind: KeyframeRequestKind) {
        let Some(l) = self.legs.get_mut(&leg) else { return };
        let (Some(video), Some(rtc)) = (l.video.as_mut(), l.rtc.as_mut()) else { return };
        let mut api = rtc.direct_api();
        let Some(rx) = api.stream_rx_by_mid(video.mid, None) else { return };
        rx.request_keyframe(kind);
        video.stats.keyframe_requests_out += 1;
        l.wants_timeout = true;
        self.touch(leg);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use str0m::format::Codec;

    use super::*;

    #[test]
    fn video_statistics_keep_their_json_shape() {
        let t0 = Instant::now();
        let mut v = VideoLeg::new(Mid::from("1"), 100);
        let s = &mut v.stats;
        (s.codec, s.packets_in, s.bytes_in, s.frames_in) = (Some(Codec::Vp8), 30, 30_000, 10);
        (s.packets_out, s.bytes_out, s.frames_out, s.dropped) = (29, 29_000, 9, 1);
        (s.keyframe_requests_in, s.keyframe_requests_out) = (2, 3);
        s.rate_in.add(t0, 1000);
        s.rate_in.add(t0 + Duration::from_millis(1200), 500);
        let now = t0 + Duration::from_millis(1300);
        // As the API has always shown them (built with `json!` before they were typed).
        let s = &v.stats;
        let old = json!({
            "mid": v.mid.to_string(),
            "codec": s.codec.map(|c| c.to_string()),
            "packetsIn": s.packets_in,
            "bytesIn": s.bytes_in,
            "framesIn": s.frames_in,
            "packetsOut": s.packets_out,
            "bytesOut": s.bytes_out,
            "framesOut": s.frames_out,
            "keyframeRequestsIn": s.keyframe_requests_in,
            "keyframeRequestsOut": s.keyframe_requests_out,
            "bitrateInBps": s.rate_in.bps(now),
            "bitrateOutBps": s.rate_out.bps(now),
            "dropped": s.dropped,
        });
        assert_eq!(serde_json::to_string(&v.stats_at(now)).unwrap(), old.to_string());
        assert_eq!(old["bitrateInBps"], 6666, "1000 bytes over the first 1.2 s");
    }
}
