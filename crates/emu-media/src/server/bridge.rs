//! Bridges: which leg's audio goes where, forwarding (passthrough or transcoded) between legs,
//! the recording tap, and releasing a channel.

use std::collections::VecDeque;
use std::time::Instant;

use emu_core::Millis;
use emu_core::retention::json_weight;
use rustc_hash::FxHashMap;
use str0m::format::{Codec, PayloadParams};
use str0m::media::TelephoneEvent;

use crate::audio;
use crate::codec::AudioCodec;
use crate::recorder::Recorder;
use crate::{Audio, Endpoint, MediaEvent};

use super::phone::Phone;
use super::state::{Heard, State};
use super::stats::RecordingStats;
use super::{LegId, MediaServer, RecordingInfo, SYNTH_PERIOD};

/// Where a device leg's audio goes (see `State::route`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Route {
    pub(super) side: usize,
    /// The device leg of the other side.
    peer: Option<LegId>,
    /// The other side is a phone that echoes.
    pub(super) echo: bool,
    /// The other side is a phone.
    pub(super) phone: bool,
}

pub(super) struct Bridge {
    pub(super) sides: [Endpoint; 2],
    pub(super) record: bool,
    pub(super) phone: Option<Phone>,
}

impl Bridge {
    fn side_of(&self, rtc_id: &str) -> Option<usize> {
        self.sides.iter().position(|e| matches!(e, Endpoint::Device { rtc_id: r } if r == rtc_id))
    }
}

pub(super) struct Channel {
    pub(super) tenant: String,
    pub(super) legs: FxHashMap<String, LegId>,
    pub(super) bridge: Option<Bridge>,
    pub(super) recorder: Option<Recorder>,
    pub(super) record_file: Option<String>,
    pub(super) created_ms: Millis,
}

impl Channel {
    /// A channel with no legs, bridge or recording yet.
    pub(super) fn new(tenant: &str, created_ms: Millis) -> Channel {
        Channel {
            tenant: tenant.to_string(),
            legs: FxHashMap::default(),
            bridge: None,
            recorder: None,
            record_file: None,
            created_ms,
        }
    }
}

fn safe_file_stem(s: &str) -> String {
    let stem: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(80).collect();
    if stem.is_empty() { "call".into() } else { stem }
}

impl MediaServer {
    /// Connects the two sides of a call (a = caller, left channel; b = callee, right channel).
    /// Device legs may join before or after. A phone side's audio is synthesized.
    pub fn bridge(&self, channel_id: &str, a: Endpoint, b: Endpoint, record: bool) {
        let now = Instant::now();
        self.worker(channel_id).with(|st| st.bridge(channel_id, a, b, record, now));
    }
}

impl State {
    /// [`MediaServer::bridge`]: the channel's bridge (and recorder) from now on.
    pub(super) fn bridge(&mut self, channel_id: &str, a: Endpoint, b: Endpoint, record: bool, now: Instant) {
        let phone_side = match (&a, &b) {
            (Endpoint::Device { .. }, Endpoint::Phone { .. }) => Some(1),
            (Endpoint::Phone { .. }, Endpoint::Device { .. }) => Some(0),
            _ => None,
        };
        let phone = phone_side.map(|side| {
            let Endpoint::Phone { audio, .. } = (if side == 0 { &a } else { &b }) else { unreachable!("a phone side") };
            let source = self.source_for(audio);
            Phone { side, source, inband: VecDeque::new(), playing: None, device: None }
        });
        let clock_ms = self.clock.now_ms();
        let cfg = self.cfg.clone();
        let chan = self.channels.entry(channel_id.to_string()).or_insert_with(|| Channel::new("", clock_ms));
        if record && chan.recorder.is_none() {
            let stem = safe_file_stem(channel_id);
            let mut file = format!("{stem}.wav");
            let mut n = 1;
            while cfg.recordings_dir.join(&file).exists() {
                n += 1;
                file = format!("{stem}-{n}.wav");
            }
            match Recorder::create(&cfg.recordings_dir.join(&file), now) {
                Ok(r) => {
                    chan.recorder = Some(r);
                    chan.record_file = Some(file);
                }
                Err(e) => tracing::warn!(channel_id, "cannot create the recording: {e}"),
            }
        }
        chan.bridge = Some(Bridge { sides: [a, b], record, phone });
        self.topology += 1;
        if phone_side.is_some() && self.next_synth.is_none() {
            self.next_synth = Some(now + SYNTH_PERIOD);
        }
    }
}

impl State {
    /// Where `from`'s audio goes, from the cache or worked out anew.
    fn route_of(&mut self, from: LegId) -> Option<Route> {
        let leg = self.legs.get(&from)?;
        if let Some((at, r)) = leg.route
            && at == self.topology
        {
            return Some(r);
        }
        let chan = self.channels.get(&leg.channel_id)?;
        let bridge = chan.bridge.as_ref()?;
        let side = bridge.side_of(&leg.rtc_id)?;
        let other = 1 - side;
        let echo = matches!(&bridge.sides[other], Endpoint::Phone { audio: Audio::Echo, .. });
        let peer = match &bridge.sides[other] {
            Endpoint::Device { rtc_id } => chan.legs.get(rtc_id).copied(),
            Endpoint::Phone { .. } => None,
        };
        let phone = matches!(&bridge.sides[other], Endpoint::Phone { .. });
        let r = Route { side, peer, echo, phone };
        let topology = self.topology;
        if let Some(leg) = self.legs.get_mut(&from) {
            leg.route = Some((topology, r));
        }
        Some(r)
    }

    /// The device leg on the other side of `from`'s bridge.
    pub(super) fn peer_of(&mut self, from: LegId) -> Option<LegId> {
        self.route_of(from)?.peer
    }

    /// Media from a device leg: video to `route_video`; audio to DTMF detection, recording,
    /// forwarding to the other side.
    pub(super) fn route(&mut self, from: LegId, p: Heard, now: Instant) {
        let Some(leg) = self.legs.get_mut(&from) else { return };
        let Some(params) = leg.params_of(p.pt) else { return };
        if params.spec().codec.is_video() {
            return self.route_video(from, p, params, now);
        }
        leg.stats.rtp_in += 1;
        leg.stats.rtp_bytes_in += p.payload.len() as u64;
        leg.stats.last_rtp_in = Some(now);
        if params.spec().codec == Codec::Tele {
            // Every packet of an event repeats its timestamp: the first one reports the key.
            let t = p.time;
            if leg.last_dtmf != Some(t)
                && let Some(ev) = TelephoneEvent::parse(p.payload, params.spec().clock_rate)
            {
                leg.last_dtmf = Some(t);
                if let Some(digit) = audio::dtmf_digit(ev.event) {
                    leg.stats.dtmf_in += 1;
                    let e = MediaEvent::DeviceDtmf {
                        channel_id: leg.channel_id.clone(),
                        rtc_id: leg.rtc_id.clone(),
                        digit,
                    };
                    tracing::debug!(rtc_id = %leg.rtc_id, %digit, "device DTMF");
                    self.emit(e);
                }
            }
            return;
        }
        let Some(codec) = AudioCodec::from_str0m(params.spec().codec) else { return };
        let Some(Route { side, peer, echo, .. }) = self.route_of(from) else { return };
        // Recorded where it arrived (a leg's audio may wait for the phone's next frame).
        let at = p.at;
        let other = 1 - side;
        let mut pcm = None;
        let Some(leg) = self.legs.get_mut(&from) else { return };
        if let Some(rec) = self.channels.get_mut(&leg.channel_id).and_then(|c| c.recorder.as_mut()) {
            let pcm_in = leg.decode(codec, p.payload);
            rec.push(side, &pcm_in, at);
            if echo {
                rec.push(other, &pcm_in, at);
            }
            pcm = Some(pcm_in);
        }
        let target = if echo { Some(from) } else { peer };
        if let Some(to) = target {
            self.forward(from, to, p, params, codec, pcm, now);
        }
    }

    /// Sends a packet received on `from` out of `to`: the same payload when `to` negotiated
    /// the codec (renumbered and restamped onto `to`'s timeline), transcoded through PCM
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        from: LegId,
        to: LegId,
        p: Heard,
        params: PayloadParams,
        codec: AudioCodec,
        pcm: Option<Vec<i16>>,
        now: Instant,
    ) {
        let Some(to_leg) = self.legs.get_mut(&to) else { return };
        if !to_leg.is_connected() {
            return;
        }
        let str0m_has_it = if let Some(pt) = to_leg.passthrough_pt(params) {
            let source = (from, p.ssrc);
            let (offset, new_source) = match to_leg.fwd {
                Some((leg, ssrc, offset)) if (leg, ssrc) == source => (offset, false),
                _ => (to_leg.tx_time.wrapping_sub(p.time), true),
            };
            to_leg.fwd = Some((source.0, source.1, offset));
            let time = p.time.wrapping_add(offset);
            let wrote = to_leg.write_rtp(&mut self.out, pt, time, p.marker || new_source, p.at, p.payload);
            to_leg.tx_time = time.wrapping_add(codec.units_per_frame() as u32);
            wrote
        } else {
            let pcm = match pcm {
                Some(pcm) => pcm,
                None => match self.legs.get_mut(&from) {
                    Some(l) => l.decode(codec, p.payload),
                    None => return,
                },
            };
            let Some(to_leg) = self.legs.get_mut(&to) else { return };
            to_leg.write_pcm(&mut self.out, &pcm, now)
        };
        if str0m_has_it {
            self.touch(to);
        }
    }

    pub(super) fn release(&mut self, channel_id: &str, now: Instant) -> Option<RecordingInfo> {
        let mut last = self.channel_stats(channel_id, now)?;
        let chan = self.channels.remove(channel_id)?;
        last.released = true;
        if let Some(file) = &chan.record_file {
            let url = format!("{}/recordings/{file}", self.cfg.http_base.trim_end_matches('/'));
            last.recording = Some(RecordingStats::Done { file: file.clone(), in_progress: false, url });
        }
        let weight = channel_id.len() + json_weight(&last);
        self.recent.push((channel_id.to_string(), last), weight);
        for id in chan.legs.values().copied().collect::<Vec<_>>() {
            self.remove_leg(id);
        }
        let rec = chan.recorder?;
        let file = chan.record_file.unwrap_or_default();
        match rec.finish(now) {
            Ok(done) => {
                let info = RecordingInfo {
                    url: format!("{}/recordings/{file}", self.cfg.http_base.trim_end_matches('/')),
                    file: file.clone(),
                    channel_id: channel_id.to_string(),
                    tenant: chan.tenant.clone(),
                    duration_ms: done.duration_ms,
                    bytes: done.bytes,
                    created_ms: chan.created_ms,
                };
                tracing::info!(channel_id, file, duration_ms = done.duration_ms, "recording done");
                let weight = json_weight(&info);
                self.recordings.push(info.clone(), weight);
                self.emit(MediaEvent::RecordingDone {
                    channel_id: channel_id.to_string(),
                    file,
                    duration_ms: done.duration_ms,
                    bytes: done.bytes,
                });
                Some(info)
            }
            Err(e) => {
                tracing::warn!(channel_id, "recording failed: {e}");
                None
            }
        }
    }
}
