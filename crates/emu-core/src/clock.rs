//! The one clock every server-side timer reads (docs/architecture.md#one-clock).
//!
//! Time is milliseconds since the Unix epoch, so it can be put in tokens, CDRs and MNS messages
//! directly. `real` follows the wall clock, `scaled` runs N times faster from the moment the clock
//! was made, and `manual` stands still until [`Clock::advance`] moves it.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::{ClockConfig, ClockMode};

/// Emulator time: milliseconds since the Unix epoch.
pub type Millis = u64;

#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    mode: ClockMode,
    scale: f64,
    /// Wall time and monotonic instant when the clock was made.
    start_epoch_ms: Millis,
    start_instant: Instant,
    /// Manual mode: how far time has been advanced by hand.
    manual_offset_ms: Mutex<Millis>,
    /// Bumped on every manual advance so timer drivers re-check their deadlines.
    advanced: watch::Sender<Millis>,
}

impl Clock {
    pub fn new(config: ClockConfig) -> Self {
        let start_epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0);
        Self::starting_at(config, start_epoch_ms)
    }

    /// A clock whose time starts at `start_epoch_ms` (tests use fixed dates).
    pub fn starting_at(config: ClockConfig, start_epoch_ms: Millis) -> Self {
        let (advanced, _) = watch::channel(0);
        Clock {
            inner: Arc::new(Inner {
                mode: config.mode,
                scale: if config.mode == ClockMode::Scaled { config.scale } else { 1.0 },
                start_epoch_ms,
                start_instant: Instant::now(),
                manual_offset_ms: Mutex::new(0),
                advanced,
            }),
        }
    }

    /// A manual clock at a fixed time, for tests.
    pub fn manual_at(start_epoch_ms: Millis) -> Self {
        Self::starting_at(ClockConfig { mode: ClockMode::Manual, scale: 1.0 }, start_epoch_ms)
    }

    pub fn mode(&self) -> ClockMode {
        self.inner.mode
    }

    pub fn scale(&self) -> f64 {
        self.inner.scale
    }

    pub fn now_ms(&self) -> Millis {
        let i = &self.inner;
        match i.mode {
            ClockMode::Manual => i.start_epoch_ms + *i.manual_offset_ms.lock(),
            ClockMode::Real | ClockMode::Scaled => {
                let real = i.start_instant.elapsed().as_secs_f64() * 1000.0;
                i.start_epoch_ms + (real * i.scale) as Millis
            }
        }
    }

    /// Moves a manual clock forward. Errors on the other modes: their time is not ours to move.
    pub fn advance(&self, ms: Millis) -> Result<Millis, ClockError> {
        if self.inner.mode != ClockMode::Manual {
            return Err(ClockError::NotManual);
        }
        let now = {
            let mut off = self.inner.manual_offset_ms.lock();
            let moved = off
                .checked_add(ms)
                .filter(|o| self.inner.start_epoch_ms.checked_add(*o).is_some_and(|t| t <= MAX_TIME_MS));
            *off = moved.ok_or(ClockError::TooFar)?;
            self.inner.start_epoch_ms + *off
        };
        self.inner.advanced.send_replace(now);
        Ok(now)
    }

    /// How much real time passes while emulator time moves `ms` (None: only an advance moves it).
    pub fn real_duration(&self, ms: Millis) -> Option<std::time::Duration> {
        match self.inner.mode {
            ClockMode::Manual => None,
            _ => Some(std::time::Duration::from_secs_f64(ms as f64 / 1000.0 / self.inner.scale)),
        }
    }

    /// Resolves whenever a manual advance happens.
    pub fn subscribe_advances(&self) -> watch::Receiver<Millis> {
        self.inner.advanced.subscribe()
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum ClockError {
    #[error("the clock is not in manual mode")]
    NotManual,
    /// The advance would take the clock past [`MAX_TIME_MS`].
    #[error("the clock cannot move past the end of the year 9999")]
    TooFar,
}

/// The latest time a manual clock can show (9999-12-31T23:59:59.999Z): times stay printable, and
/// deadlines (now plus a delay) stay far from overflowing.
pub const MAX_TIME_MS: Millis = 253_402_300_799_999;

/// Formats emulator time the way the vendor prints local times: `yyyy-MM-dd HH:mm:ss`, UTC+8.
pub fn format_shanghai(ms: Millis) -> String {
    use chrono::{Datelike, FixedOffset, TimeZone, Timelike};
    // Every CDR carries several times, mostly of the same second as the last CDR's: the last
    // second formatted is kept per thread (the calendar arithmetic was most of the cost).
    let second = ms / 1000;
    if let Some((last, text)) = LAST_SHANGHAI.get()
        && last == second
    {
        return ascii(&text);
    }
    let tz = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    match tz.timestamp_millis_opt(ms as i64).single() {
        // Written digit by digit: chrono's `format` parses its pattern on every call, `format!`
        // goes through the formatting machinery per field, and every CDR carries several.
        Some(t) if (0..=9999).contains(&t.year()) => {
            let mut text = *b"0000-00-00 00:00:00";
            let fields = [(0, 4, t.year() as u32), (5, 2, t.month()), (8, 2, t.day())];
            let clock = [(11, 2, t.hour()), (14, 2, t.minute()), (17, 2, t.second())];
            for (at, width, mut value) in fields.into_iter().chain(clock) {
                for digit in text[at..at + width].iter_mut().rev() {
                    *digit = b'0' + (value % 10) as u8;
                    value /= 10;
                }
            }
            LAST_SHANGHAI.set(Some((second, text)));
            ascii(&text)
        }
        // Past year 9999 (a manual clock's last hours, in UTC+8).
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => String::new(),
    }
}

thread_local! {
    /// [`format_shanghai`]'s last second and its text.
    static LAST_SHANGHAI: std::cell::Cell<Option<(Millis, [u8; 19])>> = const { std::cell::Cell::new(None) };
}

/// The digits and separators [`format_shanghai`] wrote (ASCII) as a `String`.
fn ascii(text: &[u8; 19]) -> String {
    String::from_utf8(text.to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_time_is_written_as_chrono_formats_it() {
        use chrono::{FixedOffset, TimeZone};
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        for ms in [0, 999, 1_700_000_000_000, 1_709_222_399_999, 951_782_400_000, MAX_TIME_MS - 8 * 3_600_000] {
            let expected = tz.timestamp_millis_opt(ms as i64).unwrap().format("%Y-%m-%d %H:%M:%S").to_string();
            assert_eq!(format_shanghai(ms), expected, "{ms}");
        }
        assert_eq!(format_shanghai(1_700_000_000_000), "2023-11-15 06:13:20");
        // The same second again (kept per thread), then the next one.
        assert_eq!(format_shanghai(1_700_000_000_999), "2023-11-15 06:13:20");
        assert_eq!(format_shanghai(1_700_000_001_000), "2023-11-15 06:13:21");
        assert_eq!(format_shanghai(1_700_000_000_001), "2023-11-15 06:13:20");
        assert_eq!(format_shanghai(MAX_TIME_MS), "10000-01-01 07:59:59", "as it always was");
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = Clock::manual_at(1_700_000_000_000);
        assert_eq!(c.now_ms(), 1_700_000_000_000);
        let rx = c.subscribe_advances();
        assert_eq!(c.advance(1500), Ok(1_700_000_001_500));
        assert_eq!(c.now_ms(), 1_700_000_001_500);
        assert!(rx.has_changed().unwrap());
    }

    /// Found by schemathesis: `{"ms": 9223372036854775807}` overflowed (a panic in debug builds,
    /// time going backwards in release ones).
    #[test]
    fn manual_clock_stops_at_the_year_9999() {
        let c = Clock::manual_at(1_700_000_000_000);
        assert_eq!(c.advance(u64::MAX), Err(ClockError::TooFar));
        assert_eq!(c.advance(MAX_TIME_MS), Err(ClockError::TooFar));
        assert_eq!(c.now_ms(), 1_700_000_000_000, "a refused advance moves nothing");
        assert_eq!(c.advance(MAX_TIME_MS - 1_700_000_000_000), Ok(MAX_TIME_MS));
        assert_eq!(c.advance(1), Err(ClockError::TooFar));
    }

    #[test]
    fn real_clock_refuses_advance() {
        let c = Clock::new(ClockConfig { mode: ClockMode::Real, scale: 1.0 });
        assert_eq!(c.advance(1), Err(ClockError::NotManual));
    }

    #[test]
    fn scaled_clock_runs_faster() {
        let c = Clock::starting_at(ClockConfig { mode: ClockMode::Scaled, scale: 1000.0 }, 0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(c.now_ms() >= 5000, "{}", c.now_ms());
        assert_eq!(c.real_duration(45_000), Some(std::time::Duration::from_millis(45)));
    }

    #[test]
    fn shanghai_format() {
        // 2024-01-01T00:00:00Z is 08:00 in Shanghai.
        assert_eq!(format_shanghai(1_704_067_200_000), "2024-01-01 08:00:00");
    }
}
