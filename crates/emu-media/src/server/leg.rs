//! A call leg: its str0m `Rtc`, ICE credentials, send codec and outgoing RTP timeline,
//! statistics, and the RFC 4733 telephone-events it sends.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emu_core::Millis;
use rand::Rng;
use serde::Serialize;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Frequency, Mid, Pt, TelephoneEvent};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{IceCreds, Rtc};

use crate::CodecPreference;
use crate::audio::{self, FRAME};
use crate::codec::{AudioCodec, Decoder, Encoder};
use crate::udp::SendQueue;

use super::bridge::Route;
use super::direct::Direct;
use super::stats::LegStats;
use super::video::VideoLeg;
use super::{DTMF_DURATION, LegId, SYNTH_PERIOD};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum LegState {
    /// Joined; no offer yet (sigv 1 before `sdpCandidate`).
    New,
    /// Offer answered; ICE/DTLS under way.
    Connecting,
    Connected,
    Disconnected,
    /// The Rtc reported an error or closed.
    Closed,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LegCounters {
    pub(super) packets_in: u64,
    pub(super) bytes_in: u64,
    pub(super) packets_out: u64,
    pub(super) bytes_out: u64,
    pub(super) rtp_in: u64,
    pub(super) rtp_bytes_in: u64,
    pub(super) rtp_out: u64,
    pub(super) rtp_bytes_out: u64,
    /// RTP this server decrypted / encrypted itself (`Direct`), not str0m.
    pub(super) rtp_direct_in: u64,
    pub(super) rtp_direct_out: u64,
    pub(super) dtmf_in: u64,
    pub(super) dtmf_out: u64,
    pub(super) loss_in: Option<f32>,
    pub(super) loss_out: Option<f32>,
    pub(super) rtt: Option<Duration>,
    pub(super) last_packet: Option<Instant>,
    pub(super) last_rtp_in: Option<Instant>,
    pub(super) connected_at: Option<Instant>,
}

/// The codec a leg sends with: the first audio codec of its answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct SendCodec {
    pub(super) codec: AudioCodec,
    pub(super) pt: Pt,
    /// The telephone-event payload type at the same clock rate, if negotiated.
    pub(super) tele: Option<Pt>,
}

pub(super) struct Leg {
    pub(super) id: LegId,
    pub(super) channel_id: String,
    pub(super) rtc_id: String,
    pub(super) uuid: String,
    pub(super) tenant: String,
    pub(super) prefer: CodecPreference,
    pub(super) sigv: u8,
    pub(super) ice: IceCreds,
    /// Boxed: str0m's `Rtc` is ~10 KB, and most legs of a signalling-only call never get one;
    /// inline, it made every leg 11 KB to allocate, copy and free (docs/benchmarks.md#per-call-cpu).
    pub(super) rtc: Option<Box<Rtc>>,
    pub(super) mid: Option<Mid>,
    pub(super) send: Option<SendCodec>,
    pub(super) state: LegState,
    pub(super) turn_user: Option<String>,
    pub(super) addrs: Vec<SocketAddr>,
    /// Where the leg's DTLS/SRTP comes from: the nominated path (STUN checks also arrive on
    /// candidate pairs that are never used).
    pub(super) media_from: Option<SocketAddr>,
    /// When str0m last asked to be woken (the latest answer counts).
    pub(super) timeout: Option<Instant>,
    /// The leg's live entry in `State::timers` (no later than `timeout`; older entries are
    /// stale). A later `timeout` does not push a new entry: the live one re-arms when it fires.
    pub(super) scheduled: Option<Instant>,
    /// The leg's outgoing RTP timeline (str0m's RTP mode: this server numbers and stamps the
    /// packets): the next sequence number, and the RTP timestamp of the next 20 ms.
    pub(super) tx_seq: u64,
    pub(super) tx_time: u32,
    /// Forwarded audio keeps its sender's timestamp spacing: (sender leg, its SSRC, offset
    /// added to its timestamps). Reset by generated audio, so a new source starts a talkspurt.
    pub(super) fwd: Option<(LegId, Ssrc, u32)>,
    /// The telephone-event being sent, one packet per 20 ms tick.
    pub(super) dtmf_out: Option<DtmfOut>,
    pub(super) decoder: Option<Decoder>,
    pub(super) encoder: Option<Encoder>,
    /// RTP timestamp of the last telephone-event received (its packets repeat it).
    pub(super) last_dtmf: Option<u32>,
    /// Phone key presses waiting to go out as telephone-events, and when the next may start
    /// (events may not overlap: RFC 4733 §2.5.1.5, str0m's 50 ms pause).
    pub(super) dtmf_queue: VecDeque<char>,
    pub(super) dtmf_next: Option<Instant>,
    pub(super) stats: LegCounters,
    pub(super) created: Instant,
    /// In `State::dirty`.
    pub(super) dirty: bool,
    /// STUN from this leg is held until then (set by its first STUN packet; see `ICE_HOLD`).
    pub(super) ice_hold_until: Option<Instant>,
    /// Frames were written (str0m packetizes them in its timeout handling) or a timer is due:
    /// the next drain feeds the Rtc a timeout first, so written packets leave in that drain
    /// rather than after a trip through the timers.
    pub(super) wants_timeout: bool,
    /// Where this leg's audio goes, as of `State::topology` = the first field.
    pub(super) route: Option<(u64, Route)>,
    /// The local payload type that carries a sender's payload params (passthrough), cached.
    pub(super) passthrough: Option<(PayloadParams, Option<Pt>)>,
    /// The leg's SRTP done here rather than by str0m, once its handshake is over.
    pub(super) direct: Direct,
    /// Whether this leg's offers may be answered with video (a VoIP↔VoIP video call).
    pub(super) video_allowed: bool,
    /// The leg's `Rtc` was built for video: everything goes through str0m (see `video.rs`).
    pub(super) video_rtc: bool,
    /// The negotiated, active video line.
    pub(super) video: Option<VideoLeg>,
    /// The `a=fingerprint` of the offer answered last: an offer with the same one comes from
    /// the same peer connection (a renegotiation).
    pub(super) remote_fingerprint: Option<String>,
}

/// A telephone-event going out (RFC 4733 §2.5): every 20 ms a packet with the same RTP
/// timestamp and the duration so far, the first one marked; the last one (E bit) three times.
#[derive(Debug, Clone, Copy)]
pub(super) struct DtmfOut {
    pub(super) pt: Pt,
    pub(super) event: u8,
    pub(super) time: u32,
    pub(super) freq: Frequency,
    /// Duration reported by the next packet.
    pub(super) elapsed: Duration,
    /// End packets still to send after the first one.
    pub(super) repeats: u8,
}

impl DtmfOut {
    /// The next packet's payload and marker bit, or None when the event is over.
    pub(super) fn next(&mut self) -> Option<([u8; 4], bool)> {
        if self.elapsed > DTMF_DURATION {
            if self.repeats == 0 {
                return None;
            }
            self.repeats -= 1;
        }
        let end = self.elapsed >= DTMF_DURATION;
        let report = TelephoneEvent { event: self.event, end, volume: 10, duration: self.elapsed.min(DTMF_DURATION) };
        let marker = self.elapsed == SYNTH_PERIOD;
        self.elapsed += SYNTH_PERIOD;
        Some((report.to_bytes(self.freq)?, marker))
    }
}

impl Leg {
    /// The payload params of a payload type this leg negotiated (both directions use the
    /// offer's numbers).
    pub(super) fn params_of(&self, pt: Pt) -> Option<PayloadParams> {
        self.rtc.as_ref()?.codec_config().params().iter().find(|p| p.pt() == pt).copied()
    }

    /// The params the remote side accepts, in our preference order.
    fn send_params(&self) -> Vec<PayloadParams> {
        let (Some(mid), Some(rtc)) = (self.mid, self.rtc.as_ref()) else { return Vec::new() };
        let Some(media) = rtc.media(mid) else { return Vec::new() };
        rtc.codec_config().params().iter().filter(|p| media.remote_pts().contains(&p.pt())).copied().collect()
    }

    pub(super) fn send_codec(&mut self) -> Option<SendCodec> {
        if self.send.is_some() {
            return self.send;
        }
        let params = self.send_params();
        let first = params.iter().find(|p| AudioCodec::from_str0m(p.spec().codec).is_some())?;
        let clock = first.spec().clock_rate;
        let tele =
            params.iter().find(|p| p.spec().codec == Codec::Tele && p.spec().clock_rate == clock).map(|p| p.pt());
        self.send = Some(SendCodec { codec: AudioCodec::from_str0m(first.spec().codec)?, pt: first.pt(), tele });
        self.send
    }

    pub(super) fn decode(&mut self, codec: AudioCodec, payload: &[u8]) -> Vec<i16> {
        if self.decoder.as_ref().is_none_or(|d| d.codec() != codec) {
            self.decoder = Some(Decoder::new(codec));
        }
        self.decoder.as_mut().expect("set above").decode(payload)
    }

    /// The local payload type that carries `params` unchanged, if this leg negotiated it.
    pub(super) fn passthrough_pt(&mut self, params: PayloadParams) -> Option<Pt> {
        if let Some((p, pt)) = self.passthrough
            && p == params
        {
            return pt;
        }
        let pt = (|| {
            let pt = self.rtc.as_ref()?.codec_config().match_params(params)?.pt();
            self.send_params().iter().any(|p| p.pt() == pt).then_some(pt)
        })();
        if self.mid.is_some() && self.rtc.is_some() {
            self.passthrough = Some((params, pt));
        }
        pt
    }

    pub(super) fn is_connected(&self) -> bool {
        self.state == LegState::Connected
    }

    /// Sends one RTP packet on the leg's timeline: encrypted here and queued on `out` once the
    /// leg is ready for that (`Direct`), else queued on str0m's send stream (str0m encrypts and
    /// sends it at the leg's next timeout, see `wants_timeout`). True when str0m has it: the
    /// leg then needs a drain.
    pub(super) fn write_rtp(
        &mut self,
        out: &mut SendQueue,
        pt: Pt,
        time: u32,
        marker: bool,
        wallclock: Instant,
        payload: &[u8],
    ) -> bool {
        let len = payload.len() as u64;
        if self.is_connected()
            && let Some(size) = self.direct.send(out, pt, time, marker, self.tx_seq, payload)
        {
            self.tx_seq += 1;
            self.stats.rtp_out += 1;
            self.stats.rtp_bytes_out += len;
            self.stats.rtp_direct_out += 1;
            self.stats.packets_out += 1;
            self.stats.bytes_out += size as u64;
            return false;
        }
        let (Some(mid), Some(rtc)) = (self.mid, self.rtc.as_mut()) else { return false };
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else { return false };
        tx.write_rtp(
            RtpWrite::new(pt, SeqNo::from(self.tx_seq), time, wallclock, Arc::<[u8]>::from(payload)).marker(marker),
        );
        self.tx_seq += 1;
        self.stats.rtp_out += 1;
        self.stats.rtp_bytes_out += len;
        self.wants_timeout = true;
        true
    }

    /// Encodes 8 kHz PCM in this leg's codec, in 20 ms frames, on its own timeline. True when
    /// str0m has packets to send (see `write_rtp`).
    pub(super) fn write_pcm(&mut self, out: &mut SendQueue, pcm: &[i16], now: Instant) -> bool {
        if !self.is_connected() {
            return false;
        }
        let Some(send) = self.send_codec() else { return false };
        if self.encoder.as_ref().is_none_or(|e| e.codec() != send.codec) {
            self.encoder = Some(Encoder::new(send.codec));
        }
        // After forwarded audio, this is a new source: a new talkspurt.
        let mut marker = self.fwd.take().is_some();
        let mut wrote = false;
        for frame in pcm.chunks(FRAME) {
            let Some(enc) = self.encoder.as_mut() else { return wrote };
            let payload = enc.encode(frame);
            wrote |= self.write_rtp(out, send.pt, self.tx_time, marker, now, &payload);
            marker = false;
            self.tx_time = self
                .tx_time
                .wrapping_add((frame.len() as u64 * send.codec.clock_rate() as u64 / audio::RATE as u64) as u32);
        }
        wrote
    }

    /// Sends the next packet of the telephone-event in progress, if any: Some(true when str0m
    /// has it), None when the event is over.
    pub(super) fn dtmf_tick(&mut self, out: &mut SendQueue, now: Instant) -> Option<bool> {
        let mut event = self.dtmf_out?;
        let Some((payload, marker)) = event.next() else {
            self.dtmf_out = None;
            return None;
        };
        self.dtmf_out = Some(event);
        Some(self.write_rtp(out, event.pt, event.time, marker, now, &payload))
    }

    /// The leg's statistics at `now`, when the emulator clock reads `clock_now`.
    pub(super) fn stats_at(&self, clock_now: Millis, now: Instant) -> LegStats {
        let s = &self.stats;
        let ms_at = |t: Option<Instant>| {
            t.map(|t| clock_now.saturating_sub(now.saturating_duration_since(t).as_millis() as Millis))
        };
        LegStats {
            rtc_id: self.rtc_id.clone(),
            uuid: self.uuid.clone(),
            tenant: self.tenant.clone(),
            sigv: self.sigv,
            state: self.state,
            codec: self.send.map(|c| c.codec),
            telephone_event: self.send.map(|c| c.tele.is_some()),
            remote_address: self.media_from.or(self.addrs.last().copied()),
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            rtp_packets_in: s.rtp_in,
            rtp_bytes_in: s.rtp_bytes_in,
            rtp_packets_out: s.rtp_out,
            rtp_bytes_out: s.rtp_bytes_out,
            rtp_direct_in: s.rtp_direct_in,
            rtp_direct_out: s.rtp_direct_out,
            dtmf_in: s.dtmf_in,
            dtmf_out: s.dtmf_out,
            loss_in: s.loss_in.map(f64::from),
            loss_out: s.loss_out.map(f64::from),
            rtt_ms: s.rtt.map(|d| d.as_secs_f64() * 1000.0),
            last_packet_ms: ms_at(s.last_packet),
            last_rtp_in_ms: ms_at(s.last_rtp_in),
            connected_ms: ms_at(s.connected_at),
            age_ms: now.saturating_duration_since(self.created).as_millis() as u64,
            video: self.video.as_ref().map(|v| v.stats_at(now)),
        }
    }
}

pub(super) fn freq_of(codec: AudioCodec) -> Frequency {
    match codec.clock_rate() {
        48000 => Frequency::FORTY_EIGHT_KHZ,
        _ => Frequency::EIGHT_KHZ,
    }
}

/// A leg's first RTP sequence number: random, and low enough that the SRTP rollover counter
/// stays 0 for the first 32,768 packets (RFC 3550 §5.1 wants it random).
pub(super) fn first_seq() -> u64 {
    rand::rng().random_range(0..1u64 << 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_telephone_event_is_five_updates_and_three_end_packets() {
        let mut out = DtmfOut {
            pt: Pt::from(101),
            event: 5,
            time: 1234,
            freq: Frequency::EIGHT_KHZ,
            elapsed: SYNTH_PERIOD,
            repeats: 2,
        };
        let mut packets = Vec::new();
        while let Some(p) = out.next() {
            packets.push(p);
        }
        assert_eq!(packets.len(), 7, "{packets:?}");
        let reports: Vec<TelephoneEvent> =
            packets.iter().map(|(b, _)| TelephoneEvent::parse(b, Frequency::EIGHT_KHZ).unwrap()).collect();
        // Only the first is marked; durations grow by 20 ms to 100 ms; the last three end it.
        assert_eq!(
            packets.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
            [true, false, false, false, false, false, false]
        );
        let ms: Vec<u128> = reports.iter().map(|r| r.duration.as_millis()).collect();
        assert_eq!(ms, [20, 40, 60, 80, 100, 100, 100]);
        let ends: Vec<bool> = reports.iter().map(|r| r.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert!(reports.iter().all(|r| r.event == 5 && r.volume == 10));
        assert!(out.next().is_none(), "stays over");
    }
}
