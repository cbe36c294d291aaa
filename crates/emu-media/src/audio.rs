//! Sample-level audio: G.711 (µ-law and A-law), tone and DTMF synthesis, Goertzel tone
//! detection, WAV reading and writing. Everything here is 8 kHz mono 16-bit PCM unless a function
//! says otherwise (the telephone band, and what the recorder writes).

use std::f64::consts::PI;

/// The sample rate of every PCM buffer in this crate.
pub const RATE: u32 = 8000;
/// Samples in one 20 ms frame at [`RATE`].
pub const FRAME: usize = 160;

// ---- G.711 -----------------------------------------------------------------------------------

/// Linear 16-bit PCM to µ-law (ITU-T G.711).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut pcm = sample as i32;
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(CLIP) + BIAS;
    let v = ((pcm >> 7) & 0xFF) as u8;
    let exponent = (8 - v.leading_zeros() as i32 - 1).max(0);
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// µ-law to linear 16-bit PCM.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let sample = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -sample } else { sample }) as i16
}

/// Linear 16-bit PCM to A-law (ITU-T G.711).
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut pcm = (sample as i32) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let Some(seg) = SEG_END.iter().position(|end| pcm <= *end) else {
        return 0x7F ^ mask;
    };
    let mut aval = (seg as u8) << 4;
    aval |= if seg < 2 { ((pcm >> 1) & 0x0F) as u8 } else { ((pcm >> seg) & 0x0F) as u8 };
    aval ^ mask
}

/// A-law to linear 16-bit PCM.
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// The µ-law byte for silence.
pub const ULAW_SILENCE: u8 = 0xFF;
/// The A-law byte for silence.
pub const ALAW_SILENCE: u8 = 0xD5;

// ---- synthesis ---------------------------------------------------------------------------------

/// A continuous sine generator (phase carried across frames, so frames join without clicks).
///
/// Tones of whole-hertz frequencies repeat after at most one second: their samples are
/// computed once, for one period, and then read from that table.
#[derive(Debug, Clone)]
pub struct Tone {
    freqs: Vec<f64>,
    amplitude: f64,
    n: u64,
    period: Option<std::sync::Arc<[i16]>>,
}

/// Longest period kept as a table (samples).
const TONE_TABLE_MAX: u64 = RATE as u64;

impl Tone {
    /// One sine of `hz` at about -10 dBFS.
    pub fn new(hz: f64) -> Self {
        Tone::with(vec![hz], 10_000.0)
    }

    /// The sum of several sines (DTMF: a row and a column frequency), `amplitude` each.
    pub fn dual(a: f64, b: f64, amplitude: f64) -> Self {
        Tone::with(vec![a, b], amplitude)
    }

    fn with(freqs: Vec<f64>, amplitude: f64) -> Self {
        let mut t = Tone { freqs, amplitude, n: 0, period: None };
        if let Some(p) = t.period_len() {
            let table: Vec<i16> = (0..p).map(|n| t.sample(n)).collect();
            t.period = Some(table.into());
        }
        t
    }

    /// Samples after which the tone repeats exactly, if whole-hertz and short enough.
    fn period_len(&self) -> Option<u64> {
        fn gcd(a: u64, b: u64) -> u64 {
            if b == 0 { a } else { gcd(b, a % b) }
        }
        let mut p = 1u64;
        for &f in &self.freqs {
            if f.fract() != 0.0 || !(0.0..=RATE as f64).contains(&f) {
                return None;
            }
            let own = RATE as u64 / gcd(f as u64, RATE as u64);
            p = p / gcd(p, own) * own;
            if p > TONE_TABLE_MAX {
                return None;
            }
        }
        Some(p)
    }

    fn sample(&self, n: u64) -> i16 {
        let t = n as f64 / RATE as f64;
        let v: f64 = self.freqs.iter().map(|f| (2.0 * PI * f * t).sin()).sum::<f64>() * self.amplitude;
        v.clamp(i16::MIN as f64, i16::MAX as f64) as i16
    }

    pub fn fill(&mut self, out: &mut [i16]) {
        match &self.period {
            Some(table) => {
                let len = table.len() as u64;
                let mut i = (self.n % len) as usize;
                for s in out.iter_mut() {
                    *s = table[i];
                    i += 1;
                    if i == table.len() {
                        i = 0;
                    }
                }
                self.n += out.len() as u64;
            }
            None => {
                for s in out.iter_mut() {
                    *s = self.sample(self.n);
                    self.n += 1;
                }
            }
        }
    }

    pub fn frame(&mut self) -> [i16; FRAME] {
        let mut f = [0i16; FRAME];
        self.fill(&mut f);
        f
    }
}

/// DTMF (row, column) frequencies of a key, and its RFC 4733 event code.
pub fn dtmf_key(digit: char) -> Option<(f64, f64, u8)> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    let d = digit.to_ascii_uppercase();
    let (row, keys) = KEYS.iter().enumerate().find(|(_, k)| k.contains(d))?;
    let col = keys.find(d)?;
    Some((ROWS[row], COLS[col], dtmf_event_code(d)?))
}

/// The RFC 4733 event code of a DTMF key: `0`–`9` are 0–9, `*` 10, `#` 11, `A`–`D` 12–15.
pub fn dtmf_event_code(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(12 + (d as u8 - b'A')),
        _ => None,
    }
}

/// The key of an RFC 4733 event code (DTMF events only).
pub fn dtmf_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

// ---- analysis ----------------------------------------------------------------------------------

/// Goertzel power of `freq` in `samples` taken at `rate`.
pub fn goertzel(samples: &[i16], freq: f64, rate: f64) -> f64 {
    let k = 2.0 * (2.0 * PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = x as f64 + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - k * s1 * s2
}

/// Sum of squares.
pub fn energy(samples: &[i16]) -> f64 {
    samples.iter().map(|&x| (x as f64) * (x as f64)).sum()
}

/// Root mean square level.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (energy(samples) / samples.len() as f64).sqrt()
}

/// The share (0..=1) of the signal's energy at `freq` (8 kHz PCM): about 1 for a pure tone of
/// that frequency, about 0 for anything else.
pub fn tone_ratio(samples: &[i16], freq: f64) -> f64 {
    let e = energy(samples);
    if e == 0.0 || samples.is_empty() {
        return 0.0;
    }
    goertzel(samples, freq, RATE as f64) / (e * samples.len() as f64 / 2.0)
}

/// The strongest frequency between 50 and 3950 Hz in 8 kHz PCM, to the nearest 5 Hz.
pub fn dominant_frequency(samples: &[i16]) -> Option<f64> {
    if rms(samples) < 1.0 {
        return None;
    }
    // Analyse at most one second: enough resolution, bounded cost.
    let s = &samples[..samples.len().min(RATE as usize)];
    let mut best = (0.0, 0.0);
    let mut f = 50.0;
    while f < 3950.0 {
        let p = goertzel(s, f, RATE as f64);
        if p > best.1 {
            best = (f, p);
        }
        f += 5.0;
    }
    Some(best.0)
}

// ---- WAV ---------------------------------------------------------------------------------------

/// A 44-byte RIFF/WAVE header for 16-bit PCM.
pub fn wav_header(channels: u16, rate: u32, data_bytes: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let block_align = channels * 2;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.wrapping_add(data_bytes)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * block_align as u32).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// A decoded WAV file: interleaved 16-bit samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    pub channels: u16,
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Wav {
    /// The samples of one channel.
    pub fn channel(&self, index: usize) -> Vec<i16> {
        let n = self.channels.max(1) as usize;
        self.samples.iter().skip(index).step_by(n).copied().collect()
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        let frames = self.samples.len() as u64 / self.channels.max(1) as u64;
        frames * 1000 / self.rate.max(1) as u64
    }

    /// Mono (channels averaged) at 8 kHz (linear interpolation).
    pub fn to_mono_8k(&self) -> Vec<i16> {
        let n = self.channels.max(1) as usize;
        let mono: Vec<f64> =
            self.samples.chunks(n).map(|c| c.iter().map(|&s| s as f64).sum::<f64>() / c.len() as f64).collect();
        if self.rate == RATE || mono.is_empty() {
            return mono.into_iter().map(|s| s as i16).collect();
        }
        let step = self.rate as f64 / RATE as f64;
        let out_len = (mono.len() as f64 / step).floor() as usize;
        (0..out_len)
            .map(|i| {
                let pos = i as f64 * step;
                let j = pos.floor() as usize;
                let frac = pos - j as f64;
                let a = mono[j];
                let b = *mono.get(j + 1).unwrap_or(&a);
                (a + (b - a) * frac) as i16
            })
            .collect()
    }
}

/// Why bytes are not a WAV file this server can play.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("short fmt chunk")]
    ShortFmt,
    #[error("data before fmt")]
    DataBeforeFmt,
    #[error("zero channels or sample rate")]
    Empty,
    #[error("unsupported WAV encoding (format {format}, {bits} bits)")]
    Unsupported { format: u16, bits: u16 },
    #[error("no data chunk")]
    NoData,
}

/// Parses a WAV file: PCM 8/16/24/32-bit, IEEE float 32-bit, µ-law and A-law.
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            if body.len() < 16 {
                return Err(WavError::ShortFmt);
            }
            let mut format = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if format == 0xFFFE && body.len() >= 26 {
                format = u16::from_le_bytes([body[24], body[25]]); // WAVE_FORMAT_EXTENSIBLE sub-format
            }
            fmt = Some((format, channels, rate, bits));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or(WavError::DataBeforeFmt)?;
            if channels == 0 || rate == 0 {
                return Err(WavError::Empty);
            }
            let samples: Vec<i16> = match (format, bits) {
                (1, 16) => body.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect(),
                (1, 8) => body.iter().map(|&b| ((b as i16) - 128) << 8).collect(),
                (1, 24) => body.chunks_exact(3).map(|c| i16::from_le_bytes([c[1], c[2]])).collect(),
                (1, 32) => body.chunks_exact(4).map(|c| i16::from_le_bytes([c[2], c[3]])).collect(),
                (3, 32) => body
                    .chunks_exact(4)
                    .map(|c| (f32::from_le_bytes(c.try_into().unwrap()).clamp(-1.0, 1.0) * 32767.0) as i16)
                    .collect(),
                (7, 8) => body.iter().map(|&b| ulaw_to_linear(b)).collect(),
                (6, 8) => body.iter().map(|&b| alaw_to_linear(b)).collect(),
                _ => return Err(WavError::Unsupported { format, bits }),
            };
            return Ok(Wav { channels, rate, samples });
        }
        pos += 8 + len + (len & 1);
    }
    Err(WavError::NoData)
}

/// Encodes interleaved 16-bit samples as a WAV file.
pub fn write_wav(channels: u16, rate: u32, samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(&wav_header(channels, rate, (samples.len() * 2) as u32));
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_quantisation() {
        for x in (-32768i32..=32767).step_by(7) {
            let x = x as i16;
            let u = ulaw_to_linear(linear_to_ulaw(x)) as i32;
            let a = alaw_to_linear(linear_to_alaw(x)) as i32;
            let tol = (x as i32).abs() / 16 + 16;
            assert!((u - x as i32).abs() <= tol.max(40), "ulaw {x} -> {u}");
            assert!((a - x as i32).abs() <= tol.max(40), "alaw {x} -> {a}");
        }
        assert_eq!(ulaw_to_linear(ULAW_SILENCE), 0);
        assert!(alaw_to_linear(ALAW_SILENCE).abs() <= 8);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        // Every code decodes and re-encodes to itself (except µ-law's negative zero).
        for b in 0..=255u8 {
            if b != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(b)), b, "ulaw code {b:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw code {b:#x}");
        }
    }

    #[test]
    fn tone_is_detected_at_its_frequency() {
        let mut t = Tone::new(1000.0);
        let mut pcm = vec![0i16; 4000];
        t.fill(&mut pcm);
        assert!(tone_ratio(&pcm, 1000.0) > 0.9, "{}", tone_ratio(&pcm, 1000.0));
        assert!(tone_ratio(&pcm, 440.0) < 0.01);
        assert_eq!(dominant_frequency(&pcm), Some(1000.0));
        // Through µ-law and back, still the same tone.
        let coded: Vec<i16> = pcm.iter().map(|&s| ulaw_to_linear(linear_to_ulaw(s))).collect();
        assert!(tone_ratio(&coded, 1000.0) > 0.9);
        assert_eq!(dominant_frequency(&[0; 100]), None);
    }

    #[test]
    fn dtmf_keys() {
        assert_eq!(dtmf_key('5'), Some((770.0, 1336.0, 5)));
        assert_eq!(dtmf_key('#'), Some((941.0, 1477.0, 11)));
        assert_eq!(dtmf_key('d'), Some((941.0, 1633.0, 15)));
        assert_eq!(dtmf_key('x'), None);
        for d in "0123456789*#ABCD".chars() {
            assert_eq!(dtmf_digit(dtmf_event_code(d).unwrap()), Some(d));
        }
        assert_eq!(dtmf_digit(16), None);
    }

    #[test]
    fn wav_write_parse_resample() {
        let samples: Vec<i16> = (0..1600).map(|i| (i as i16) * 3).collect();
        let bytes = write_wav(2, 8000, &samples);
        let w = parse_wav(&bytes).unwrap();
        assert_eq!((w.channels, w.rate, w.samples.len()), (2, 8000, 1600));
        assert_eq!(w.duration_ms(), 100);
        assert_eq!(w.channel(1)[..2], [3, 9]);
        let mut t = Tone::new(500.0);
        let mut hi = vec![0i16; 16000];
        // A 16 kHz file: generate by sampling at double rate.
        for (i, s) in hi.iter_mut().enumerate() {
            *s = ((2.0 * PI * 500.0 * i as f64 / 16000.0).sin() * 8000.0) as i16;
        }
        let w = parse_wav(&write_wav(1, 16000, &hi)).unwrap();
        let mono = w.to_mono_8k();
        assert_eq!(mono.len(), 8000);
        assert!(tone_ratio(&mono, 500.0) > 0.9);
        let _ = t.frame();
        assert!(parse_wav(b"RIFF....WAVEjunk").is_err());
        assert!(parse_wav(b"nope").is_err());
    }
}
