//! The audio codecs a leg can negotiate, and PCM (8 kHz mono) encoders and decoders for them:
//! G.711 in a few lines, Opus through `opus-rs` (pure Rust, no C library).

use std::fmt;

use opus_rs::{Application, OpusDecoder, OpusEncoder};
use str0m::format::Codec;

use crate::audio::{self, FRAME, RATE};

/// An audio codec the media server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    Pcmu,
    Pcma,
    Opus,
}

impl AudioCodec {
    pub fn from_str0m(c: Codec) -> Option<Self> {
        match c {
            Codec::PCMU => Some(AudioCodec::Pcmu),
            Codec::PCMA => Some(AudioCodec::Pcma),
            Codec::Opus => Some(AudioCodec::Opus),
            _ => None,
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            AudioCodec::Pcmu | AudioCodec::Pcma => 8000,
            AudioCodec::Opus => 48000,
        }
    }

    /// RTP timestamp units in 20 ms.
    pub fn units_per_frame(self) -> u64 {
        self.clock_rate() as u64 / 50
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
            AudioCodec::Opus => "opus",
        })
    }
}

/// Payload → 8 kHz PCM.
pub struct Decoder {
    codec: AudioCodec,
    opus: Option<Box<OpusDecoder>>,
    buf: Vec<f32>,
}

impl Decoder {
    pub fn new(codec: AudioCodec) -> Self {
        Decoder { codec, opus: None, buf: Vec::new() }
    }

    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Decodes one RTP payload, appending to `out`. Undecodable Opus yields 20 ms of silence,
    /// so the timeline keeps its length.
    pub fn decode_into(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        match self.codec {
            AudioCodec::Pcmu => out.extend(payload.iter().map(|&b| audio::ulaw_to_linear(b))),
            AudioCodec::Pcma => out.extend(payload.iter().map(|&b| audio::alaw_to_linear(b))),
            AudioCodec::Opus => {
                if self.opus.is_none() {
                    match OpusDecoder::new(RATE as i32, 1) {
                        Ok(d) => self.opus = Some(Box::new(d)),
                        Err(e) => {
                            tracing::warn!("opus decoder: {e}");
                            out.extend(std::iter::repeat_n(0, FRAME));
                            return;
                        }
                    }
                }
                let dec = self.opus.as_mut().expect("set above");
                // Up to 120 ms per packet.
                self.buf.resize(RATE as usize * 120 / 1000, 0.0);
                match dec.decode(payload, self.buf.len(), &mut self.buf) {
                    Ok(n) => out.extend(
                        self.buf[..n.min(self.buf.len())]
                            .iter()
                            .map(|&s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16),
                    ),
                    Err(_) => out.extend(std::iter::repeat_n(0, FRAME)),
                }
            }
        }
    }

    pub fn decode(&mut self, payload: &[u8]) -> Vec<i16> {
        let mut v = Vec::with_capacity(FRAME);
        self.decode_into(payload, &mut v);
        v
    }
}

/// 8 kHz PCM (20 ms frames) → payload.
pub struct Encoder {
    codec: AudioCodec,
    opus: Option<Box<OpusEncoder>>,
}

impl Encoder {
    pub fn new(codec: AudioCodec) -> Self {
        Encoder { codec, opus: None }
    }

    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Encodes one 20 ms frame (160 samples; other lengths are padded or cut for Opus).
    pub fn encode(&mut self, pcm: &[i16]) -> Vec<u8> {
        match self.codec {
            AudioCodec::Pcmu => pcm.iter().map(|&s| audio::linear_to_ulaw(s)).collect(),
            AudioCodec::Pcma => pcm.iter().map(|&s| audio::linear_to_alaw(s)).collect(),
            AudioCodec::Opus => {
                if self.opus.is_none() {
                    match OpusEncoder::new(RATE as i32, 1, Application::Voip) {
                        Ok(mut e) => {
                            e.bitrate_bps = 16_000;
                            e.complexity = 1;
                            self.opus = Some(Box::new(e));
                        }
                        Err(e) => {
                            tracing::warn!("opus encoder: {e}");
                            return vec![0xF8]; // a 1-byte (DTX/lost) packet
                        }
                    }
                }
                let enc = self.opus.as_mut().expect("set above");
                let mut frame = [0i16; FRAME];
                let n = pcm.len().min(FRAME);
                frame[..n].copy_from_slice(&pcm[..n]);
                let mut out = [0u8; 400];
                match enc.encode_i16(&frame, FRAME, &mut out) {
                    Ok(n) => out[..n].to_vec(),
                    Err(e) => {
                        tracing::debug!("opus encode: {e}");
                        vec![0xF8]
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{Tone, dominant_frequency};

    #[test]
    fn every_codec_carries_a_tone() {
        for codec in [AudioCodec::Pcmu, AudioCodec::Pcma, AudioCodec::Opus] {
            let mut enc = Encoder::new(codec);
            let mut dec = Decoder::new(codec);
            let mut tone = Tone::new(1000.0);
            let mut pcm = Vec::new();
            for _ in 0..50 {
                let frame = tone.frame();
                let payload = enc.encode(&frame);
                assert!(!payload.is_empty());
                dec.decode_into(&payload, &mut pcm);
            }
            assert_eq!(pcm.len(), 8000, "{codec}");
            // Skip the codec's start-up.
            let f = dominant_frequency(&pcm[2000..]).unwrap();
            assert!((f - 1000.0).abs() <= 10.0, "{codec}: {f}");
        }
    }
}
