//! Call recording: a stereo WAV (caller left, callee right), 8 kHz 16-bit PCM, streamed to disk.
//!
//! Each side's audio arrives as decoded 20 ms frames. A frame goes where its arrival time puts it
//! on the call's timeline when its side has fallen behind (silence, DTX, a late start), and right
//! after the previous frame otherwise, so jitter neither chops nor stretches the audio. Samples
//! are written as soon as both sides have them, or once one side lags too far (its gap becomes
//! silence), so memory stays bounded however long the call.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::audio::{RATE, wav_header};

/// Later than this behind its arrival time, a side's gap is filled with silence.
const RESYNC: u64 = RATE as u64 * 60 / 1000;
/// A side that has sent nothing for this long is treated as silent up to now - this.
const HOLD: u64 = RATE as u64 * 400 / 1000;

pub(crate) struct Recorder {
    path: PathBuf,
    file: BufWriter<File>,
    start: Instant,
    /// Samples (frames of two) written so far.
    flushed: u64,
    tracks: [VecDeque<i16>; 2],
    /// Interleaved bytes of the last write (reused).
    scratch: Vec<u8>,
    failed: bool,
}

/// A finished recording.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub duration_ms: u64,
    pub bytes: u64,
}

impl Recorder {
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Self> {
        let mut file = BufWriter::with_capacity(32 * 1024, File::create(path)?);
        file.write_all(&wav_header(2, RATE, 0))?;
        Ok(Recorder {
            path: path.to_path_buf(),
            file,
            start,
            flushed: 0,
            tracks: [VecDeque::new(), VecDeque::new()],
            scratch: Vec::new(),
            failed: false,
        })
    }

    fn pos(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.start).as_micros() as u64) * RATE as u64 / 1_000_000
    }

    /// Audio of `side` (0 = caller/left, 1 = callee/right) that ended arriving at `at`.
    pub fn push(&mut self, side: usize, pcm: &[i16], at: Instant) {
        let now = self.pos(at);
        let expected_start = now.saturating_sub(pcm.len() as u64);
        let end = self.flushed + self.tracks[side].len() as u64;
        if end + RESYNC < expected_start {
            let gap = (expected_start - end) as usize;
            self.tracks[side].extend(std::iter::repeat_n(0, gap));
        }
        self.tracks[side].extend(pcm.iter().copied());
        self.flush(now);
    }

    /// Writes what both sides have, filling a side silent for too long.
    fn flush(&mut self, now: u64) {
        let horizon = now.saturating_sub(HOLD);
        for t in &mut self.tracks {
            let end = self.flushed + t.len() as u64;
            if end < horizon {
                t.extend(std::iter::repeat_n(0, (horizon - end) as usize));
            }
        }
        let ready = self.tracks[0].len().min(self.tracks[1].len());
        self.write(ready);
    }

    fn write(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        // Interleave from contiguous slices (no per-sample iterator over two ring buffers).
        let [left, right] = &mut self.tracks;
        let (l, r) = (&left.make_contiguous()[..n], &right.make_contiguous()[..n]);
        self.scratch.clear();
        self.scratch.resize(4 * n, 0);
        for (out, (a, b)) in self.scratch.chunks_exact_mut(4).zip(l.iter().zip(r)) {
            out[..2].copy_from_slice(&a.to_le_bytes());
            out[2..].copy_from_slice(&b.to_le_bytes());
        }
        left.drain(..n);
        right.drain(..n);
        if !self.failed
            && let Err(e) = self.file.write_all(&self.scratch)
        {
            tracing::warn!(path = %self.path.display(), "recording write failed: {e}");
            self.failed = true;
        }
        self.flushed += n as u64;
    }

    /// Pads both sides to the end of the call, writes the header's sizes, closes the file.
    pub fn finish(mut self, at: Instant) -> std::io::Result<Finished> {
        let now = self.pos(at);
        let end = self.tracks.iter().map(|t| self.flushed + t.len() as u64).max().unwrap_or(0).max(now);
        for t in &mut self.tracks {
            let e = self.flushed + t.len() as u64;
            t.extend(std::iter::repeat_n(0, (end - e) as usize));
        }
        let n = self.tracks[0].len();
        self.write(n);
        let data_bytes = self.flushed * 4;
        self.file.flush()?;
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&wav_header(2, RATE, data_bytes.min(u32::MAX as u64 - 36) as u32))?;
        file.sync_data().ok();
        Ok(Finished { duration_ms: self.flushed * 1000 / RATE as u64, bytes: data_bytes + 44 })
    }

    pub fn elapsed(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{Tone, parse_wav, tone_ratio};

    #[test]
    fn two_sides_land_in_two_channels() {
        let dir = std::env::temp_dir().join(format!("emu-media-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let start = Instant::now();
        let mut rec = Recorder::create(&path, start).unwrap();
        let (mut a, mut b) = (Tone::new(440.0), Tone::new(1000.0));
        // 2 s of audio; the right side starts 500 ms late and has a 300 ms hole.
        for i in 1..=100u64 {
            let at = start + Duration::from_millis(20 * i);
            rec.push(0, &a.frame(), at);
            if i > 25 && !(60..75).contains(&i) {
                rec.push(1, &b.frame(), at);
            }
        }
        let done = rec.finish(start + Duration::from_millis(2000)).unwrap();
        assert_eq!(done.duration_ms, 2000);
        let wav = parse_wav(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!((wav.channels, wav.rate), (2, 8000));
        assert_eq!(wav.samples.len() as u64 * 2 + 44, done.bytes);
        let (l, r) = (wav.channel(0), wav.channel(1));
        assert!(tone_ratio(&l, 440.0) > 0.9);
        assert!(tone_ratio(&r[4000..4800], 1000.0) > 0.9);
        assert!(r[..3900].iter().all(|&s| s == 0), "right is silent before it starts");
        assert!(r[9600..10600].iter().all(|&s| s == 0), "the hole is silence");
        std::fs::remove_dir_all(&dir).ok();
    }
}
