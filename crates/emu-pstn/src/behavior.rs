//! What a phone does: when it is called (ring, then answer / busy / reject / …) and once it is in
//! a connected call, whichever side it is on (press digits, hang up, play audio).

use serde::{Deserialize, Serialize};

use crate::error::BehaviorError;
use crate::number::digit_problem;

pub(crate) const DEFAULT_RING_MS: u64 = 2000;
pub(crate) const DEFAULT_PRESS_AFTER_MS: u64 = 1000;
pub(crate) const DEFAULT_GAP_MS: u64 = 200;
pub(crate) const DEFAULT_TONE_HZ: u32 = 440;
pub(crate) const TONE_HZ_RANGE: std::ops::RangeInclusive<u32> = 50..=4000;
/// Enough for any IVR script; stops a behaviour from scheduling millions of timers.
pub(crate) const MAX_SCRIPT_DIGITS: usize = 256;

/// A phone's behaviour. JSON/TOML field names are snake_case; every field is optional. Parsing
/// (from JSON, TOML or any serde format) refuses unknown fields and names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "serde_json::Value")]
#[schema(as = PhoneBehavior)]
pub struct Behavior {
    /// How long the phone rings before `then` happens (answer, reject).
    pub ring_ms: u64,
    /// What happens when the phone is called.
    pub then: Outcome,
    /// Once answered (callee) or connected (caller): hang up after this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hangup_after_ms: Option<u64>,
    /// Once answered (callee) or connected (caller): keys to press.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dtmf: Vec<DtmfPress>,
    /// What the phone sends once answered; played by the media server.
    pub audio: Audio,
}

/// What a called phone does after ringing `ring_ms` (or at once, for the outcomes that do not
/// ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PhoneOutcome)]
pub enum Outcome {
    /// Rings `ring_ms`, then answers.
    #[default]
    Answer,
    /// Busy at once, without ringing.
    Busy,
    /// Rings `ring_ms`, then the user declines the call.
    Reject,
    /// Rings until the engine gives up.
    NoAnswer,
    /// Out of coverage: unreachable at once.
    Unreachable,
    /// Switched off: unreachable at once (the same event as `unreachable`).
    PoweredOff,
    /// The number does not exist.
    Invalid,
    /// Rings until the test answers, rejects or hangs up through the admin API.
    Manual,
}

impl Outcome {
    /// Whether the phone rings first; the others answer the dial at once.
    pub fn rings(self) -> bool {
        matches!(self, Outcome::Answer | Outcome::Reject | Outcome::NoAnswer | Outcome::Manual)
    }
}

/// Keys pressed in one go: the first `after_ms` after the call is answered/connected, the next
/// ones `gap_ms` apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DtmfPress {
    pub after_ms: u64,
    pub digits: String,
    pub gap_ms: u64,
}

impl DtmfPress {
    /// `digits` with the default timing: 1 s after answering, 200 ms apart.
    pub fn new(digits: impl Into<String>) -> Self {
        DtmfPress { after_ms: DEFAULT_PRESS_AFTER_MS, digits: digits.into(), gap_ms: DEFAULT_GAP_MS }
    }

    /// When each digit is pressed, relative to the answer/connect time.
    pub(crate) fn schedule(&self) -> impl Iterator<Item = (u64, char)> + '_ {
        let mut offset = self.after_ms;
        self.digits.chars().map(move |digit| {
            let at = offset;
            offset = offset.saturating_add(self.gap_ms);
            (at, digit)
        })
    }
}

/// The phone's side of the audio: `"silence"`, `"echo"`, `{"tone_hz": 440}` or
/// `{"wav": "fixtures/audio/x.wav"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Audio {
    Silence,
    /// Sends back what it hears.
    Echo,
    /// A continuous sine tone of this frequency.
    ToneHz(u32),
    /// A WAV file, by a relative path the media server resolves.
    Wav(String),
}

impl Default for Audio {
    fn default() -> Self {
        Audio::ToneHz(DEFAULT_TONE_HZ)
    }
}

/// Where a phone's behaviour comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BehaviorSource {
    /// Set in the config file's `phones` or at run time (it wins over a magic number).
    Configured,
    /// The number is in the magic-number table.
    Magic,
    /// `default_behavior`.
    Default,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior::new(Outcome::Answer)
    }
}

impl Behavior {
    /// `then` after the default ring time, nothing after answering, a 440 Hz tone.
    pub fn new(then: Outcome) -> Self {
        Behavior { ring_ms: DEFAULT_RING_MS, then, hangup_after_ms: None, dtmf: Vec::new(), audio: Audio::default() }
    }

    pub fn with_ring_ms(mut self, ring_ms: u64) -> Self {
        self.ring_ms = ring_ms;
        self
    }

    pub fn with_hangup_after_ms(mut self, ms: u64) -> Self {
        self.hangup_after_ms = Some(ms);
        self
    }

    pub fn with_press(mut self, press: DtmfPress) -> Self {
        self.dtmf.push(press);
        self
    }

    pub fn with_audio(mut self, audio: Audio) -> Self {
        self.audio = audio;
        self
    }

    /// Checks what the types cannot: digits, tone range, WAV path.
    pub fn validate(&self) -> Result<(), BehaviorError> {
        for (i, press) in self.dtmf.iter().enumerate() {
            if let Some(reason) = digit_problem(&press.digits) {
                return Err(BehaviorError::new(format!("dtmf[{i}].digits"), reason));
            }
        }
        let total: usize = self.dtmf.iter().map(|p| p.digits.chars().count()).sum();
        if total > MAX_SCRIPT_DIGITS {
            return Err(BehaviorError::new("dtmf", format!("at most {MAX_SCRIPT_DIGITS} digits in all")));
        }
        match &self.audio {
            Audio::ToneHz(hz) if !TONE_HZ_RANGE.contains(hz) => Err(BehaviorError::new(
                "audio.tone_hz",
                format!("{hz} Hz is outside {}..={} Hz", TONE_HZ_RANGE.start(), TONE_HZ_RANGE.end()),
            )),
            Audio::Wav(path) => wav_path_problem(path).map_or(Ok(()), |r| Err(BehaviorError::new("audio.wav", r))),
            _ => Ok(()),
        }
    }
}

/// The file is read by the media server, so keep it inside the emulator's tree.
fn wav_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("the path is empty")
    } else if path.starts_with(['/', '\\']) || path.contains(':') {
        Some("the path must be relative, e.g. fixtures/audio/hello.wav")
    } else if path.split(['/', '\\']).any(|part| part == "..") {
        Some("the path must not contain ..")
    } else if !path.to_ascii_lowercase().ends_with(".wav") {
        Some("the file must be a .wav file")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let b = Behavior::default();
        assert_eq!(b.ring_ms, 2000);
        assert_eq!(b.then, Outcome::Answer);
        assert_eq!(b.hangup_after_ms, None);
        assert!(b.dtmf.is_empty());
        assert_eq!(b.audio, Audio::ToneHz(440));
        let press = DtmfPress::new("1#");
        assert_eq!((press.after_ms, press.gap_ms), (1000, 200));
    }

    #[test]
    fn press_schedule_spaces_digits_by_the_gap() {
        let press = DtmfPress { after_ms: 500, digits: "12#".into(), gap_ms: 300 };
        assert_eq!(press.schedule().collect::<Vec<_>>(), vec![(500, '1'), (800, '2'), (1100, '#')]);
    }

    #[test]
    fn only_some_outcomes_ring() {
        let ringing: Vec<_> = [
            Outcome::Answer,
            Outcome::Busy,
            Outcome::Reject,
            Outcome::NoAnswer,
            Outcome::Unreachable,
            Outcome::PoweredOff,
            Outcome::Invalid,
            Outcome::Manual,
        ]
        .into_iter()
        .filter(|o| o.rings())
        .collect();
        assert_eq!(ringing, vec![Outcome::Answer, Outcome::Reject, Outcome::NoAnswer, Outcome::Manual]);
    }

    #[test]
    fn validation() {
        let field = |b: Behavior| b.validate().unwrap_err().field;
        let base = Behavior::default;
        assert_eq!(field(base().with_press(DtmfPress::new("12A"))), "dtmf[0].digits");
        assert_eq!(field(base().with_press(DtmfPress::new("1")).with_press(DtmfPress::new(""))), "dtmf[1].digits");
        assert_eq!(field(base().with_press(DtmfPress::new("1".repeat(257)))), "dtmf");
        assert_eq!(field(base().with_audio(Audio::ToneHz(49))), "audio.tone_hz");
        assert_eq!(field(base().with_audio(Audio::ToneHz(4001))), "audio.tone_hz");
        for bad in ["", "/etc/x.wav", "\\x.wav", "C:/x.wav", "fixtures/../x.wav", "..\\x.wav", "x.mp3"] {
            assert_eq!(field(base().with_audio(Audio::Wav(bad.into()))), "audio.wav", "{bad}");
        }
        for ok in [Audio::ToneHz(50), Audio::ToneHz(4000), Audio::Wav("fixtures/audio/x.WAV".into()), Audio::Echo] {
            assert_eq!(base().with_audio(ok.clone()).validate(), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn serializes_snake_case_and_round_trips() {
        let b = Behavior::new(Outcome::NoAnswer)
            .with_ring_ms(3000)
            .with_hangup_after_ms(10_000)
            .with_press(DtmfPress::new("1#"))
            .with_audio(Audio::Wav("fixtures/audio/x.wav".into()));
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ring_ms": 3000, "then": "no_answer", "hangup_after_ms": 10000,
                "dtmf": [{"after_ms": 1000, "digits": "1#", "gap_ms": 200}],
                "audio": {"wav": "fixtures/audio/x.wav"}
            })
        );
        assert_eq!(serde_json::from_value::<Behavior>(json).unwrap(), b);
        let plain = serde_json::to_value(Behavior::default()).unwrap();
        assert_eq!(plain, serde_json::json!({"ring_ms": 2000, "then": "answer", "audio": {"tone_hz": 440}}));
        assert_eq!(serde_json::to_value(Audio::Silence).unwrap(), "silence");
    }
}
