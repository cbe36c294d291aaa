//! The `[pstn]` configuration section, checked: emu-core keeps behaviours as raw JSON so it need
//! not know their shape.

use std::collections::BTreeMap;

use emu_core::config::PstnConfig;
use serde_json::Value;

use crate::behavior::Behavior;
use crate::error::{BehaviorError, PstnError};
use crate::number::validate_number;
use crate::parse::behavior_from_json;

/// A `[pstn]` section that makes sense.
#[derive(Debug, Clone)]
pub(crate) struct CheckedConfig {
    pub magic_numbers: bool,
    pub default_behavior: Behavior,
    pub phones: BTreeMap<String, Behavior>,
}

impl CheckedConfig {
    pub fn from_config(config: &PstnConfig) -> Result<Self, PstnError> {
        let default_behavior = behavior_from_json(&config.default_behavior)
            .map_err(|e| config_error(e.within("pstn.default_behavior")))?;
        let mut phones = BTreeMap::new();
        for (i, entry) in config.phones.iter().enumerate() {
            let (number, behavior) = phone(entry).map_err(|e| config_error(e.within(&format!("pstn.phones[{i}]"))))?;
            if phones.insert(number.clone(), behavior).is_some() {
                return Err(PstnError::Config {
                    field: format!("pstn.phones[{i}].number"),
                    reason: format!("{number} is configured twice"),
                });
            }
        }
        Ok(CheckedConfig { magic_numbers: config.magic_numbers, default_behavior, phones })
    }
}

/// One `{ number = "...", behavior = { ... } }` entry.
fn phone(entry: &Value) -> Result<(String, Behavior), BehaviorError> {
    let fields = entry
        .as_object()
        .ok_or_else(|| BehaviorError::new("", r#"a phone is { number = "...", behavior = { ... } }"#))?;
    if let Some(key) = fields.keys().find(|k| !matches!(k.as_str(), "number" | "behavior")) {
        return Err(BehaviorError::new(key.as_str(), "unknown field (expected one of: number, behavior)"));
    }
    let number = match fields.get("number") {
        Some(Value::String(number)) => number.clone(),
        Some(_) => {
            return Err(BehaviorError::new("number", "must be a string, e.g. \"13912345678\""));
        }
        None => return Err(BehaviorError::new("number", "missing")),
    };
    validate_number(&number).map_err(|e| BehaviorError::new("number", e.to_string()))?;
    let behavior = fields
        .get("behavior")
        .ok_or_else(|| BehaviorError::new("behavior", "missing"))
        .and_then(|b| behavior_from_json(b).map_err(|e| e.within("behavior")))?;
    Ok((number, behavior))
}

fn config_error(e: BehaviorError) -> PstnError {
    PstnError::Config { field: e.field, reason: e.reason }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::behavior::Outcome;

    fn config(default_behavior: Value, phones: Vec<Value>) -> PstnConfig {
        PstnConfig { magic_numbers: true, default_behavior, phones }
    }

    fn error(default_behavior: Value, phones: Vec<Value>) -> String {
        CheckedConfig::from_config(&config(default_behavior, phones)).unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_defaults_parse() {
        let text = include_str!("../../../fixtures/default.toml");
        let section = text.parse::<toml::Table>().unwrap()["pstn"].clone();
        let pstn: PstnConfig = section.try_into().unwrap();
        let checked = CheckedConfig::from_config(&pstn).unwrap();
        assert!(checked.magic_numbers);
        assert_eq!(checked.default_behavior, Behavior::new(Outcome::Answer).with_ring_ms(2000));
        assert!(checked.phones.is_empty());
    }

    #[test]
    fn phones_from_toml() {
        let pstn: PstnConfig = toml::from_str(
            r#"
            magic_numbers = false
            default_behavior = { then = "no_answer" }
            phones = [ { number = "13912345678", behavior = { ring_ms = 5000, then = "reject" } } ]
            "#,
        )
        .unwrap();
        let checked = CheckedConfig::from_config(&pstn).unwrap();
        assert!(!checked.magic_numbers);
        assert_eq!(checked.default_behavior.then, Outcome::NoAnswer);
        assert_eq!(checked.phones["13912345678"], Behavior::new(Outcome::Reject).with_ring_ms(5000));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            error(json!({"then": "answr"}), vec![]),
            "pstn.default_behavior.then: unknown variant `answr`, expected one of \
             `answer`, `busy`, `reject`, `no_answer`, `unreachable`, `powered_off`, `invalid`, `manual`"
        );
        assert_eq!(
            error(json!("answer"), vec![]),
            r#"pstn.default_behavior: a behavior is an object, e.g. {"ring_ms": 2000, "then": "answer"}"#
        );
        let ok = json!({});
        assert_eq!(
            error(ok.clone(), vec![json!({"number": "139", "behavior": {}}), json!({"number": "12", "behavior": {}})]),
            r#"pstn.phones[1].number: invalid phone number "12": a number has 3 to 20 digits"#
        );
        assert_eq!(
            error(ok.clone(), vec![json!({"number": "139", "behavior": {"dtmf": [{"digits": "x"}]}})]),
            "pstn.phones[0].behavior.dtmf[0].digits: 'x' is not a DTMF digit (allowed: 0-9, *, #)"
        );
        assert_eq!(
            error(ok.clone(), vec![json!({"number": 139, "behavior": {}})]),
            r#"pstn.phones[0].number: must be a string, e.g. "13912345678""#
        );
        assert_eq!(error(ok.clone(), vec![json!({"number": "139"})]), "pstn.phones[0].behavior: missing");
        assert_eq!(
            error(ok.clone(), vec![json!({"number": "139", "behavior": {}, "ring_ms": 1})]),
            "pstn.phones[0].ring_ms: unknown field (expected one of: number, behavior)"
        );
        assert_eq!(
            error(ok.clone(), vec![json!("139")]),
            r#"pstn.phones[0]: a phone is { number = "...", behavior = { ... } }"#
        );
        assert_eq!(
            error(ok, vec![json!({"number": "139", "behavior": {}}), json!({"number": "139", "behavior": {}})]),
            "pstn.phones[1].number: 139 is configured twice"
        );
    }
}
