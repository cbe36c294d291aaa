//! What a virtual device does when it is called and once it is in a call (docs/voip-devices.md).
//! The same shape and rules as a phone's behaviour (docs/pstn.md) where the two overlap.

use emu_pstn::Audio;
use serde::{Deserialize, Serialize};

use crate::error::VoipError;

pub(crate) const DEFAULT_RING_MS: u64 = 2000;

/// A virtual device's behaviour. Every field is optional; unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(as = VoipBehavior)]
pub struct Behavior {
    /// How long the device rings before `then` happens (the outcomes that ring).
    pub ring_ms: u64,
    /// What the device does when it is called.
    pub then: Outcome,
    /// Once in a call (answered, or its own call answered): leave after this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hangup_after_ms: Option<u64>,
    /// What the device sends once in a call; played by the media server.
    pub audio: Audio,
    /// `false`: the device ACKs no server message (the platform retransmits, then gives up),
    /// while still following `then`.
    pub ack: bool,
}

/// What a called virtual device does after ringing `ring_ms` (or at once, for those that do
/// not ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = VoipOutcome)]
pub enum Outcome {
    /// Rings `ring_ms`, then answers and joins the channel.
    #[default]
    Answer,
    /// Rings `ring_ms`, then declines (`answer` with callResult 2).
    Reject,
    /// Always in another call: the platform ends calls to it with "callee busy".
    Busy,
    /// Rings until the platform or the caller gives up.
    NoAnswer,
    /// Rings until the test answers, rejects or hangs up through the admin API.
    Manual,
    /// Registered but not online: calls to it fail as to an offline account.
    Offline,
    /// Rings `ring_ms`, answers, then leaves without ever joining the channel (after
    /// `hangup_after_ms`, default at once): a client that crashes while answering.
    AnswerThenLeave,
}

impl Outcome {
    /// Whether `called` makes the device ring.
    pub fn rings(self) -> bool {
        !matches!(self, Outcome::Busy | Outcome::Offline)
    }
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior::new(Outcome::Answer)
    }
}

impl Behavior {
    /// `then` after the default ring time, a 440 Hz tone once in a call, ACKing everything.
    pub fn new(then: Outcome) -> Self {
        Behavior { ring_ms: DEFAULT_RING_MS, then, hangup_after_ms: None, audio: Audio::default(), ack: true }
    }

    pub fn with_ring_ms(mut self, ring_ms: u64) -> Self {
        self.ring_ms = ring_ms;
        self
    }

    pub fn with_audio(mut self, audio: Audio) -> Self {
        self.audio = audio;
        self
    }

    pub fn with_hangup_after_ms(mut self, ms: u64) -> Self {
        self.hangup_after_ms = Some(ms);
        self
    }

    /// Parses a behaviour from JSON and checks it (the tone range and WAV path rules of phones).
    pub fn from_json(value: serde_json::Value) -> Result<Behavior, VoipError> {
        if !value.is_object() {
            return Err(VoipError::InvalidBehavior("a behavior is a JSON object".into()));
        }
        let b: Behavior = serde_json::from_value(value).map_err(|e| VoipError::InvalidBehavior(e.to_string()))?;
        b.validate()?;
        Ok(b)
    }

    pub fn validate(&self) -> Result<(), VoipError> {
        emu_pstn::Behavior::default()
            .with_audio(self.audio.clone())
            .validate()
            .map_err(|e| VoipError::InvalidBehavior(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_field_is_optional_and_defaults_like_a_phone() {
        let b = Behavior::from_json(json!({})).unwrap();
        assert_eq!(b, Behavior::default());
        assert_eq!((b.ring_ms, b.then, b.hangup_after_ms, b.ack), (2000, Outcome::Answer, None, true));
        assert_eq!(b.audio, Audio::ToneHz(440));
    }

    #[test]
    fn parses_every_outcome_and_audio() {
        let b = Behavior::from_json(
            json!({"ring_ms": 0, "then": "answer_then_leave", "hangup_after_ms": 5, "audio": "echo", "ack": false}),
        )
        .unwrap();
        assert_eq!(b.then, Outcome::AnswerThenLeave);
        assert_eq!((b.ring_ms, b.hangup_after_ms, b.ack), (0, Some(5), false));
        assert_eq!(b.audio, Audio::Echo);
        for (name, outcome) in [
            ("reject", Outcome::Reject),
            ("busy", Outcome::Busy),
            ("no_answer", Outcome::NoAnswer),
            ("manual", Outcome::Manual),
            ("offline", Outcome::Offline),
        ] {
            assert_eq!(Behavior::from_json(json!({ "then": name })).unwrap().then, outcome);
        }
        let wav = Behavior::from_json(json!({"audio": {"wav": "fixtures/audio/hello.wav"}})).unwrap();
        assert_eq!(wav.audio, Audio::Wav("fixtures/audio/hello.wav".into()));
    }

    #[test]
    fn refuses_what_a_phone_refuses_and_unknown_fields() {
        for bad in [
            json!({"then": "explode"}),
            json!({"ring_ms": "3s"}),
            json!({"audio": {"tone_hz": 10}}),
            json!({"audio": {"wav": "/etc/passwd.wav"}}),
            json!({"rign_ms": 1}),
            json!([]),
        ] {
            let e = Behavior::from_json(bad.clone()).unwrap_err();
            assert!(matches!(e, VoipError::InvalidBehavior(_)), "{bad}: {e}");
        }
        let e = Behavior::from_json(json!({"audio": {"tone_hz": 10}})).unwrap_err();
        assert!(e.to_string().contains("audio.tone_hz"), "{e}");
    }

    #[test]
    fn reads_from_toml() {
        let b: Behavior = toml::from_str("then = \"reject\"\nring_ms = 500").unwrap();
        assert_eq!((b.then, b.ring_ms), (Outcome::Reject, 500));
    }
}
