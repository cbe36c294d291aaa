//! Ringing plans: the inbound callback's `mixedCalleeInfos` (or the older `calleeInfos`) turned
//! into ordered sequences of callees, with the manual's rules and limits (docs/calls.md#ringing-plans).
//!
//! Decisions where the manual is silent or contradicts itself (docs/calls.md repeats them):
//! - Sequence numbers are sorted and gaps are skipped: `1-2-2-3-5` rings 1, then 2 (both at
//!   once), then 3, then 5 (the manual's own example "rings through to 5").
//! - A missing `sequence` is 1; a sequence below 1 is refused.
//! - More than 10 sequences or more than 10 callees in one: the extra ones are dropped and a
//!   warning explains it.
//! - Unsupported shapes (several VoIP callees in one list; VoIP and PSTN callees in the same
//!   sequence): the vendor "picks one at random"; the emulator keeps the first one listed, so
//!   tests are repeatable, and says so in a warning.

use serde_json::Value;

pub const MAX_SEQUENCES: usize = 10;
pub const MAX_CALLEES_PER_SEQUENCE: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    Voip { rtc_id: String },
    Pstn { phone_number: String, platform_number: String, self_line: Option<String> },
}

impl Callee {
    pub fn is_voip(&self) -> bool {
        matches!(self, Callee::Voip { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Sequences in ringing order; each rings all its callees at once.
    pub sequences: Vec<Vec<Callee>>,
    pub warnings: Vec<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses the `model` of an inbound callback answer.
pub fn parse(model: &Value) -> Result<Plan, String> {
    let (entries, legacy) = match (model.get("mixedCalleeInfos"), model.get("calleeInfos")) {
        (Some(Value::Array(a)), _) => (a.clone(), false),
        (None, Some(Value::Array(a))) => (a.clone(), true),
        _ => return Err("model has neither mixedCalleeInfos nor calleeInfos".into()),
    };
    let mut plan = Plan::default();
    let mut numbered: Vec<(i64, usize, Callee)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let kind = if legacy { "voip".to_string() } else { text(e, "type").unwrap_or_default().to_ascii_lowercase() };
        let callee = match kind.as_str() {
            "voip" => match text(e, "rtcId").or_else(|| text(e, "voipId")) {
                Some(rtc_id) => Callee::Voip { rtc_id },
                None => return Err(format!("callee {i}: type voip needs rtcId")),
            },
            "pstn" => match (text(e, "phoneNumber"), text(e, "platformNumber")) {
                (Some(phone_number), Some(platform_number)) => {
                    Callee::Pstn { phone_number, platform_number, self_line: text(e, "selfLineName") }
                }
                (Some(phone_number), None) if text(e, "selfLineName").is_some() => {
                    Callee::Pstn { phone_number, platform_number: String::new(), self_line: text(e, "selfLineName") }
                }
                _ => return Err(format!("callee {i}: type pstn needs phoneNumber and platformNumber")),
            },
            other => return Err(format!("callee {i}: unknown type {other:?} (voip or pstn)")),
        };
        let sequence = match e.get("sequence") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or(format!("callee {i}: sequence is not a number"))?,
        };
        if sequence < 1 {
            return Err(format!("callee {i}: sequence {sequence} is below 1"));
        }
        numbered.push((sequence, i, callee));
    }
    if numbered.is_empty() {
        return Err("the callee list is empty".into());
    }
    // Several VoIP callees in one list: keep the first.
    let first_voip = numbered.iter().find(|(_, _, c)| c.is_voip()).map(|(_, i, _)| *i);
    if numbered.iter().filter(|(_, _, c)| c.is_voip()).count() > 1 {
        plan.warnings.push("several VoIP callees in one list are not supported; only the first is rung".into());
        numbered.retain(|(_, i, c)| !c.is_voip() || Some(*i) == first_voip);
    }
    numbered.sort_by_key(|(seq, i, _)| (*seq, *i));
    let mut current: Option<i64> = None;
    for (seq, _, callee) in numbered {
        if current != Some(seq) {
            if plan.sequences.len() == MAX_SEQUENCES {
                plan.warnings
                    .push(format!("more than {MAX_SEQUENCES} sequences; sequence {seq} and later are dropped"));
                break;
            }
            plan.sequences.push(Vec::new());
            current = Some(seq);
        }
        let group = plan.sequences.last_mut().expect("pushed above");
        if group.len() == MAX_CALLEES_PER_SEQUENCE {
            plan.warnings
                .push(format!("more than {MAX_CALLEES_PER_SEQUENCE} callees in sequence {seq}; the rest are dropped"));
            continue;
        }
        group.push(callee);
    }
    for group in &mut plan.sequences {
        if group.iter().any(Callee::is_voip) && group.iter().any(|c| !c.is_voip()) {
            plan.warnings
                .push("VoIP and PSTN callees in one sequence are not supported; only the first is rung".into());
            group.truncate(1);
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pstn(n: &str, seq: i64) -> Value {
        json!({"type": "pstn", "phoneNumber": n, "platformNumber": "02160000001", "sequence": seq})
    }

    #[test]
    fn sequences_sorted_gaps_skipped() {
        let m = json!({"mixedCalleeInfos": [pstn("5", 5), pstn("1", 1), pstn("2a", 2), pstn("2b", 2), pstn("3", 3)]});
        let p = parse(&m).unwrap();
        let names: Vec<Vec<String>> = p
            .sequences
            .iter()
            .map(|g| {
                g.iter()
                    .map(|c| match c {
                        Callee::Pstn { phone_number, .. } => phone_number.clone(),
                        _ => "?".into(),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(names, vec![vec!["1"], vec!["2a", "2b"], vec!["3"], vec!["5"]]);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn legacy_callee_infos_and_missing_sequence() {
        let p = parse(&json!({"calleeInfos": [{"rtcId": "2000000000000001"}]})).unwrap();
        assert_eq!(p.sequences, vec![vec![Callee::Voip { rtc_id: "2000000000000001".into() }]]);
        let p = parse(&json!({"mixedCalleeInfos": [{"type": "voip", "rtcId": 7}]})).unwrap();
        assert_eq!(p.sequences[0][0], Callee::Voip { rtc_id: "7".into() });
    }

    #[test]
    fn limits() {
        let many: Vec<Value> = (1..=12).map(|i| pstn(&i.to_string(), i)).collect();
        let p = parse(&json!({"mixedCalleeInfos": many})).unwrap();
        assert_eq!(p.sequences.len(), 10);
        assert_eq!(p.warnings.len(), 1);
        let wide: Vec<Value> = (1..=12).map(|i| pstn(&i.to_string(), 1)).collect();
        let p = parse(&json!({"mixedCalleeInfos": wide})).unwrap();
        assert_eq!(p.sequences[0].len(), 10);
    }

    #[test]
    fn unsupported_mixes_keep_the_first() {
        let m = json!({"mixedCalleeInfos": [
            {"type": "voip", "rtcId": "a", "sequence": 1},
            {"type": "voip", "rtcId": "b", "sequence": 2},
            pstn("p", 1),
        ]});
        let p = parse(&m).unwrap();
        assert_eq!(p.sequences, vec![vec![Callee::Voip { rtc_id: "a".into() }]]);
        assert_eq!(p.warnings.len(), 2);
    }

    #[test]
    fn errors() {
        assert!(parse(&json!({})).is_err());
        assert!(parse(&json!({"mixedCalleeInfos": []})).is_err());
        assert!(parse(&json!({"mixedCalleeInfos": [{"type": "fax"}]})).is_err());
        assert!(parse(&json!({"mixedCalleeInfos": [{"type": "pstn", "phoneNumber": "1"}]})).is_err());
        assert!(parse(&json!({"mixedCalleeInfos": [{"type": "voip", "rtcId": "a", "sequence": 0}]})).is_err());
    }
}
