//! The synthesized phone side of a bridge: its audio (silence, echo, tone, WAV), its key
//! presses (RFC 4733 events or in-band tones), and the 20 ms tick that sends them.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::{self, FRAME, Tone};
use crate::{Audio, Endpoint};

use super::leg::{DtmfOut, freq_of};
use super::state::State;
use super::{DTMF_DURATION, LegId, SYNTH_PERIOD};

const INBAND_DTMF_SAMPLES: usize = 800; // 100 ms
const INBAND_GAP_SAMPLES: usize = 480; // 60 ms

/// What a phone sends.
pub(super) enum Source {
    Silence,
    Echo,
    Tone(Tone),
    Wav { pcm: Arc<Vec<i16>>, pos: usize },
}

/// The phone side of a bridge.
pub(super) struct Phone {
    /// 0 = caller side, 1 = callee side.
    pub(super) side: usize,
    pub(super) source: Source,
    /// In-band DTMF waiting (for legs without telephone-event).
    pub(super) inband: VecDeque<char>,
    /// (tone, samples left of it, silence after it).
    pub(super) playing: Option<(Tone, usize, usize)>,
    /// The device leg it talks to, as of `State::topology` = the first field.
    pub(super) device: Option<(u64, Option<LegId>)>,
}

impl Phone {
    /// The phone's next 20 ms, or None when it only echoes.
    fn next_frame(&mut self) -> Option<[i16; FRAME]> {
        let mut f = [0i16; FRAME];
        let mut have = false;
        match &mut self.source {
            Source::Silence => have = true,
            Source::Echo => {}
            Source::Tone(t) => {
                t.fill(&mut f);
                have = true;
            }
            Source::Wav { pcm, pos } => {
                if !pcm.is_empty() {
                    for s in f.iter_mut() {
                        *s = pcm[*pos];
                        *pos = (*pos + 1) % pcm.len();
                    }
                }
                have = true;
            }
        }
        if !have {
            return None;
        }
        // In-band DTMF replaces the audio while it plays.
        if self.playing.is_none()
            && let Some(d) = self.inband.pop_front()
            && let Some((lo, hi, _)) = audio::dtmf_key(d)
        {
            self.playing = Some((Tone::dual(lo, hi, 7000.0), INBAND_DTMF_SAMPLES, INBAND_GAP_SAMPLES));
        }
        if let Some((tone, left, gap)) = &mut self.playing {
            for s in f.iter_mut() {
                if *left > 0 {
                    let mut one = [0i16; 1];
                    tone.fill(&mut one);
                    *s = one[0];
                    *left -= 1;
                } else if *gap > 0 {
                    *s = 0;
                    *gap -= 1;
                }
            }
            if *left == 0 && *gap == 0 {
                self.playing = None;
            }
        }
        Some(f)
    }
}

impl State {
    pub(super) fn source_for(&mut self, audio: &Audio) -> Source {
        match audio {
            Audio::Silence => Source::Silence,
            Audio::Echo => Source::Echo,
            Audio::ToneHz(hz) => Source::Tone(Tone::new(*hz as f64)),
            Audio::Wav(path) => {
                let p = Path::new(path);
                let full = if p.is_absolute() { p.to_path_buf() } else { self.cfg.audio_dir.join(p) };
                if let Some(pcm) = self.wav_cache.get(&full) {
                    return Source::Wav { pcm: pcm.clone(), pos: 0 };
                }
                let wav = std::fs::read(&full).map_err(|e| e.to_string());
                match wav.and_then(|b| audio::parse_wav(&b).map_err(|e| e.to_string())) {
                    Ok(w) => {
                        let pcm = Arc::new(w.to_mono_8k());
                        self.wav_cache.insert(full, pcm.clone());
                        Source::Wav { pcm, pos: 0 }
                    }
                    Err(e) => {
                        tracing::warn!(path = %full.display(), "phone audio file unusable ({e}); sending silence");
                        Source::Silence
                    }
                }
            }
        }
    }

    pub(super) fn phone_dtmf(&mut self, channel_id: &str, digit: char) -> bool {
        if audio::dtmf_event_code(digit).is_none() {
            return false;
        }
        let Some(chan) = self.channels.get(channel_id) else { return false };
        let Some(bridge) = chan.bridge.as_ref() else { return false };
        let Some(phone) = bridge.phone.as_ref() else { return false };
        let Endpoint::Device { rtc_id } = &bridge.sides[1 - phone.side] else { return false };
        let Some(&id) = chan.legs.get(rtc_id) else { return false };
        let Some(leg) = self.legs.get_mut(&id) else { return false };
        leg.dtmf_queue.push_back(digit);
        self.phone_dtmf_pending.push((channel_id.to_string(), id));
        true
    }

    /// Sends the next queued key press of a device leg bridged with `phone`: RFC 4733 events
    /// when negotiated, else the DTMF tone in-band (not into an echo).
    fn send_queued_dtmf(&mut self, id: LegId, phone: &mut Phone, now: Instant) -> bool {
        let Some(leg) = self.legs.get_mut(&id) else { return false };
        if leg.dtmf_next.is_some_and(|t| now < t) || !leg.is_connected() {
            return false;
        }
        let Some(digit) = leg.dtmf_queue.pop_front() else { return false };
        let code = audio::dtmf_event_code(digit).unwrap_or(0);
        leg.stats.dtmf_out += 1;
        if let Some(send) = leg.send_codec()
            && let Some(pt) = send.tele
        {
            let (freq, time) = (freq_of(send.codec), leg.tx_time);
            leg.dtmf_out = Some(DtmfOut { pt, event: code, time, freq, elapsed: SYNTH_PERIOD, repeats: 2 });
            self.dtmf_active.push(id);
            // The event, its three end packets (40 ms), and a pause.
            leg.dtmf_next = Some(now + DTMF_DURATION + Duration::from_millis(100));
            return leg.dtmf_tick(&mut self.out, now).unwrap_or(false);
        }
        leg.dtmf_next = Some(now + Duration::from_millis((INBAND_DTMF_SAMPLES + INBAND_GAP_SAMPLES) as u64 / 8));
        if !matches!(phone.source, Source::Echo) {
            phone.inband.push_back(digit);
        }
        false
    }

    /// Every 20 ms: the synthesized phones' audio, to their device legs and recordings.
    pub(super) fn synth_tick(&mut self, now: Instant) -> bool {
        let mut out: Vec<(LegId, [i16; FRAME])> = Vec::new();
        let mut any = false;
        // Telephone-events in progress: their next packet.
        for id in std::mem::take(&mut self.dtmf_active) {
            let Some(str0m_has_it) = self.legs.get_mut(&id).and_then(|l| l.dtmf_tick(&mut self.out, now)) else {
                continue;
            };
            self.dtmf_active.push(id);
            if str0m_has_it {
                self.touch(id);
            }
        }
        // Key presses first (an in-band one starts in this very frame).
        let mut dtmf = std::mem::take(&mut self.phone_dtmf_pending);
        dtmf.sort();
        dtmf.dedup();
        for (cid, id) in dtmf {
            if self.legs.get(&id).is_none_or(|l| l.dtmf_queue.is_empty()) {
                continue;
            }
            let Some(mut phone) =
                self.channels.get_mut(&cid).and_then(|c| c.bridge.as_mut()).and_then(|b| b.phone.take())
            else {
                continue;
            };
            if self.send_queued_dtmf(id, &mut phone, now) {
                if let Some(leg) = self.legs.get_mut(&id) {
                    leg.wants_timeout = true;
                }
                self.touch(id);
            }
            if let Some(b) = self.channels.get_mut(&cid).and_then(|c| c.bridge.as_mut()) {
                b.phone = Some(phone);
            }
            if self.legs.get(&id).is_some_and(|l| !l.dtmf_queue.is_empty()) {
                self.phone_dtmf_pending.push((cid, id));
            }
        }
        let topology = self.topology;
        for chan in self.channels.values_mut() {
            let Some(bridge) = chan.bridge.as_mut() else { continue };
            let Some(phone) = bridge.phone.as_mut() else { continue };
            any = true;
            let Some(frame) = phone.next_frame() else { continue };
            if let Some(rec) = chan.recorder.as_mut() {
                rec.push(phone.side, &frame, now);
            }
            let device = match phone.device {
                Some((at, id)) if at == topology => id,
                _ => {
                    let id = match &bridge.sides[1 - phone.side] {
                        Endpoint::Device { rtc_id } => chan.legs.get(rtc_id).copied(),
                        Endpoint::Phone { .. } => None,
                    };
                    phone.device = Some((topology, id));
                    id
                }
            };
            if let Some(id) = device {
                out.push((id, frame));
            }
        }
        for (id, frame) in out {
            if let Some(leg) = self.legs.get_mut(&id)
                && leg.write_pcm(&mut self.out, &frame, now)
            {
                self.touch(id);
            }
        }
        // After the frames, so that each leg's datagram and frame share one timeout.
        self.receive_deferred(now);
        any
    }
}
