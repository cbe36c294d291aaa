//! Behaviours from JSON, field by field, so every error names its field (serde's own messages
//! say "invalid type: string, expected u64" without saying where).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::behavior::{Behavior, DtmfPress};
use crate::error::BehaviorError;

const BEHAVIOR_FIELDS: &str = "ring_ms, then, hangup_after_ms, dtmf, audio";
const PRESS_FIELDS: &str = "after_ms, digits, gap_ms";

/// Parses and validates a behaviour. `null` in an optional field means "the default".
pub(crate) fn behavior_from_json(value: &Value) -> Result<Behavior, BehaviorError> {
    let fields = object(value, r#"a behavior is an object, e.g. {"ring_ms": 2000, "then": "answer"}"#)?;
    let mut behavior = Behavior::default();
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "ring_ms" => behavior.ring_ms = field(key, value)?,
            "then" => behavior.then = field(key, value)?,
            "hangup_after_ms" => behavior.hangup_after_ms = Some(field(key, value)?),
            "dtmf" => behavior.dtmf = presses(value)?,
            "audio" => behavior.audio = field(key, value)?,
            _ => return Err(unknown(key, BEHAVIOR_FIELDS)),
        }
    }
    behavior.validate()?;
    Ok(behavior)
}

fn presses(value: &Value) -> Result<Vec<DtmfPress>, BehaviorError> {
    let Value::Array(items) = value else {
        return Err(BehaviorError::new("dtmf", r#"a list of presses, e.g. [{"digits": "1#"}]"#));
    };
    items.iter().enumerate().map(|(i, item)| press(item).map_err(|e| e.within(&format!("dtmf[{i}]")))).collect()
}

fn press(value: &Value) -> Result<DtmfPress, BehaviorError> {
    let fields = object(value, r#"a press is an object, e.g. {"after_ms": 1000, "digits": "1#", "gap_ms": 200}"#)?;
    let mut press = DtmfPress::new("");
    let mut has_digits = false;
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "after_ms" => press.after_ms = field(key, value)?,
            "gap_ms" => press.gap_ms = field(key, value)?,
            "digits" => {
                press.digits = field(key, value)?;
                has_digits = true;
            }
            _ => return Err(unknown(key, PRESS_FIELDS)),
        }
    }
    if !has_digits {
        return Err(BehaviorError::new("digits", "missing: the keys to press, e.g. \"1#\""));
    }
    Ok(press)
}

fn object<'a>(value: &'a Value, expected: &str) -> Result<&'a Map<String, Value>, BehaviorError> {
    value.as_object().ok_or_else(|| BehaviorError::new("", expected))
}

fn field<T: DeserializeOwned>(key: &str, value: &Value) -> Result<T, BehaviorError> {
    T::deserialize(value).map_err(|e| BehaviorError::new(key, e.to_string()))
}

fn unknown(key: &str, expected: &str) -> BehaviorError {
    BehaviorError::new(key, format!("unknown field (expected one of: {expected})"))
}

impl TryFrom<serde_json::Value> for Behavior {
    type Error = BehaviorError;

    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        crate::parse::behavior_from_json(&value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::behavior::{Audio, Outcome};

    fn error(value: Value) -> String {
        behavior_from_json(&value).unwrap_err().to_string()
    }

    #[test]
    fn empty_object_is_the_default() {
        assert_eq!(behavior_from_json(&json!({})).unwrap(), Behavior::default());
    }

    #[test]
    fn every_field() {
        let b = behavior_from_json(&json!({
            "ring_ms": 3000, "then": "reject", "hangup_after_ms": 10000,
            "dtmf": [{"digits": "1#"}, {"after_ms": 5000, "digits": "*9", "gap_ms": 50}],
            "audio": "echo"
        }))
        .unwrap();
        assert_eq!(b.ring_ms, 3000);
        assert_eq!(b.then, Outcome::Reject);
        assert_eq!(b.hangup_after_ms, Some(10_000));
        assert_eq!(b.dtmf, vec![DtmfPress::new("1#"), DtmfPress { after_ms: 5000, digits: "*9".into(), gap_ms: 50 }]);
        assert_eq!(b.audio, Audio::Echo);
    }

    #[test]
    fn every_outcome_and_audio_parses() {
        for (name, outcome) in [
            ("answer", Outcome::Answer),
            ("busy", Outcome::Busy),
            ("reject", Outcome::Reject),
            ("no_answer", Outcome::NoAnswer),
            ("unreachable", Outcome::Unreachable),
            ("powered_off", Outcome::PoweredOff),
            ("invalid", Outcome::Invalid),
            ("manual", Outcome::Manual),
        ] {
            assert_eq!(behavior_from_json(&json!({"then": name})).unwrap().then, outcome);
        }
        for (value, audio) in [
            (json!("silence"), Audio::Silence),
            (json!("echo"), Audio::Echo),
            (json!({"tone_hz": 1000}), Audio::ToneHz(1000)),
            (json!({"wav": "fixtures/audio/x.wav"}), Audio::Wav("fixtures/audio/x.wav".into())),
        ] {
            assert_eq!(behavior_from_json(&json!({"audio": value})).unwrap().audio, audio);
        }
    }

    #[test]
    fn nulls_mean_default() {
        let b = behavior_from_json(
            &json!({"ring_ms": null, "hangup_after_ms": null, "dtmf": [{"digits": "1", "gap_ms": null}]}),
        );
        assert_eq!(b.unwrap(), Behavior::default().with_press(DtmfPress::new("1")));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(error(json!("answer")), r#"a behavior is an object, e.g. {"ring_ms": 2000, "then": "answer"}"#);
        assert_eq!(
            error(json!({"rng_ms": 1})),
            "rng_ms: unknown field (expected one of: ring_ms, then, hangup_after_ms, dtmf, audio)"
        );
        assert_eq!(error(json!({"ring_ms": "3s"})), r#"ring_ms: invalid type: string "3s", expected u64"#);
        assert_eq!(error(json!({"ring_ms": -1})), "ring_ms: invalid value: integer `-1`, expected u64");
        assert!(
            error(json!({"then": "anwser"})).starts_with("then: unknown variant `anwser`, expected one of `answer`")
        );
        assert!(error(json!({"audio": "tone"})).starts_with("audio: unknown variant `tone`"));
        assert!(error(json!({"audio": {"tone_hz": "x"}})).starts_with("audio: invalid type"));
        assert_eq!(error(json!({"audio": {"tone_hz": 20}})), "audio.tone_hz: 20 Hz is outside 50..=4000 Hz");
        assert_eq!(error(json!({"audio": {"wav": "../x.wav"}})), "audio.wav: the path must not contain ..");
        assert_eq!(error(json!({"dtmf": "1#"})), r#"dtmf: a list of presses, e.g. [{"digits": "1#"}]"#);
        assert!(error(json!({"dtmf": [1]})).starts_with("dtmf[0]: a press is an object"));
        assert_eq!(
            error(json!({"dtmf": [{"after_ms": 1}]})),
            r#"dtmf[0].digits: missing: the keys to press, e.g. "1#""#
        );
        assert_eq!(
            error(json!({"dtmf": [{"digits": "1"}, {"digits": "1", "gap": 5}]})),
            "dtmf[1].gap: unknown field (expected one of: after_ms, digits, gap_ms)"
        );
        assert_eq!(
            error(json!({"dtmf": [{"digits": "12D"}]})),
            "dtmf[0].digits: 'D' is not a DTMF digit (allowed: 0-9, *, #)"
        );
        assert!(error(json!({"dtmf": [{"digits": "1", "gap_ms": 1.5}]})).starts_with("dtmf[0].gap_ms: invalid type"));
    }

    #[test]
    fn any_serde_format_goes_through_the_same_checks() {
        let b: Behavior = toml::from_str("ring_ms = 3000\nthen = \"answer\"\naudio = { tone_hz = 600 }").unwrap();
        assert_eq!(b, Behavior::default().with_ring_ms(3000).with_audio(Audio::ToneHz(600)));
        let e = toml::from_str::<Behavior>("ring = 3000").unwrap_err().to_string();
        assert!(e.contains("ring: unknown field"), "{e}");
    }
}
