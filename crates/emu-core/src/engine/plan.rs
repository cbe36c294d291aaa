//! Ringing plans: the inbound callback's `mixedCalleeInfos` (or the older `calleeInfos`) turned
//! into ordered sequences of callees, with the manual's rules and limits (docs/calls.md#ringing-plans).
//!
//! Decisions where the manual is silent or contradicts itself (docs/calls.md repeats them):
//! - Sequence numbers are sorted and gaps are skipped: `1-2-2-3-5` rings 1, then 2 (both at
//!   once), then 3, then 5 (the manual's own example "rings through to 5"). Each group keeps the
//!   number the customer declared, which is what the admin API and the events report.
//! - A missing `sequence` is 1; a sequence below 1 is refused.
//! - The manual's largest sequence value is 10: a callee declared above 10 is dropped with a
//!   warning (the rest of the plan still rings). More than 10 callees in one sequence: the extra
//!   ones are dropped and a warning explains it.
//! - Unsupported shapes (several VoIP callees in one list; VoIP and PSTN callees in the same
//!   sequence): the vendor "picks one at random"; the emulator keeps the first one listed, so
//!   tests are repeatable, and says so in a warning.

use serde_json::Value;

/// The largest `sequence` value the manual allows.
pub const MAX_SEQUENCE: i64 = 10;
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

    /// How the event log and the console name the callee: the rtcId, or `pstn:` and the number.
    pub fn label(&self) -> String {
        match self {
            Callee::Voip { rtc_id } => rtc_id.clone(),
            Callee::Pstn { phone_number, .. } => format!("pstn:{phone_number}"),
        }
    }
}

/// The callees that ring at the same time, under the sequence number the customer declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub sequence: i64,
    pub callees: Vec<Callee>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Sequences in ringing order; each rings all its callees at once.
    pub sequences: Vec<Group>,
    pub warnings: Vec<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Why a routing plan cannot be used (the phone caller then hears `not_connected`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("model has neither mixedCalleeInfos nor calleeInfos")]
    NoCalleeList,
    #[error("callee {0}: type voip needs rtcId")]
    VoipWithoutRtcId(usize),
    #[error("callee {0}: type pstn needs phoneNumber and platformNumber")]
    PstnWithoutNumbers(usize),
    #[error("callee {index}: unknown type {kind:?} (voip or pstn)")]
    UnknownType { index: usize, kind: String },
    #[error("callee {0}: sequence is not a number")]
    SequenceNotANumber(usize),
    #[error("callee {index}: sequence {sequence} is below 1")]
    SequenceBelowOne { index: usize, sequence: i64 },
    #[error("the callee list is empty")]
    Empty,
    #[error("no callee has a sequence from 1 to {}", MAX_SEQUENCE)]
    NoValidSequence,
}

/// Parses the `model` of an inbound callback answer.
pub fn parse(model: &Value) -> Result<Plan, PlanError> {
    let (entries, legacy) = match (model.get("mixedCalleeInfos"), model.get("calleeInfos")) {
        (Some(Value::Array(a)), _) => (a.clone(), false),
        (None, Some(Value::Array(a))) => (a.clone(), true),
        _ => return Err(PlanError::NoCalleeList),
    };
    let mut plan = Plan::default();
    let mut numbered: Vec<(i64, usize, Callee)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let kind = if legacy { "voip".to_string() } else { text(e, "type").unwrap_or_default().to_ascii_lowercase() };
        let callee = match kind.as_str() {
            "voip" => match text(e, "rtcId").or_else(|| text(e, "voipId")) {
                Some(rtc_id) => Callee::Voip { rtc_id },
                None => return Err(PlanError::VoipWithoutRtcId(i)),
            },
            "pstn" => match (text(e, "phoneNumber"), text(e, "platformNumber")) {
                (Some(phone_number), Some(platform_number)) => {
                    Callee::Pstn { phone_number, platform_number, self_line: text(e, "selfLineName") }
                }
                (Some(phone_number), None) if text(e, "selfLineName").is_some() => {
                    Callee::Pstn { phone_number, platform_number: String::new(), self_line: text(e, "selfLineName") }
                }
                _ => return Err(PlanError::PstnWithoutNumbers(i)),
            },
            other => return Err(PlanError::UnknownType { index: i, kind: other.to_string() }),
        };
        let sequence = match e.get("sequence") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or(PlanError::SequenceNotANumber(i))?,
        };
        if sequence < 1 {
            return Err(PlanError::SequenceBelowOne { index: i, sequence });
        }
        if sequence > MAX_SEQUENCE {
            plan.warnings.push(format!(
                "callee {i}: sequence {sequence} is above the largest allowed value {MAX_SEQUENCE}; dropped"
            ));
            continue;
        }
        numbered.push((sequence, i, callee));
    }
    if numbered.is_empty() {
        return Err(if entries.is_empty() { PlanError::Empty } else { PlanError::NoValidSequence });
    }
    // Several VoIP callees in one list: keep the first.
    let first_voip = numbered.iter().find(|(_, _, c)| c.is_voip()).map(|(_, i, _)| *i);
    if numbered.iter().filter(|(_, _, c)| c.is_voip()).count() > 1 {
        plan.warnings.push("several VoIP callees in one list are not supported; only the first is rung".into());
        numbered.retain(|(_, i, c)| !c.is_voip() || Some(*i) == first_voip);
    }
    numbered.sort_by_key(|(seq, i, _)| (*seq, *i));
    for (seq, _, callee) in numbered {
        if plan.sequences.last().is_none_or(|g| g.sequence != seq) {
            plan.sequences.push(Group { sequence: seq, callees: Vec::new() });
        }
        let group = &mut plan.sequences.last_mut().expect("pushed above").callees;
        if group.len() == MAX_CALLEES_PER_SEQUENCE {
            plan.warnings
                .push(format!("more than {MAX_CALLEES_PER_SEQUENCE} callees in sequence {seq}; the rest are dropped"));
            continue;
        }
        group.push(callee);
    }
    for group in &mut plan.sequences {
        let callees = &mut group.callees;
        if callees.iter().any(Callee::is_voip) && callees.iter().any(|c| !c.is_voip()) {
            plan.warnings
                .push("VoIP and PSTN callees in one sequence are not supported; only the first is rung".into());
            callees.truncate(1);
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
                g.callees
                    .iter()
                    .map(|c| match c {
                        Callee::Pstn { phone_number, .. } => phone_number.clone(),
                        _ => "?".into(),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(names, vec![vec!["1"], vec!["2a", "2b"], vec!["3"], vec!["5"]]);
        let declared: Vec<i64> = p.sequences.iter().map(|g| g.sequence).collect();
        assert_eq!(declared, vec![1, 2, 3, 5], "each group keeps the sequence the customer declared");
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn legacy_callee_infos_and_missing_sequence() {
        let p = parse(&json!({"calleeInfos": [{"rtcId": "2000000000000001"}]})).unwrap();
        assert_eq!(
            p.sequences,
            vec![Group { sequence: 1, callees: vec![Callee::Voip { rtc_id: "2000000000000001".into() }] }]
        );
        let p = parse(&json!({"mixedCalleeInfos": [{"type": "voip", "rtcId": 7}]})).unwrap();
        assert_eq!(p.sequences[0].callees[0], Callee::Voip { rtc_id: "7".into() });
    }

    #[test]
    fn limits() {
        // Sequence values above 10 are dropped (the manual's largest is 10), each with a warning.
        let many: Vec<Value> = (1..=12).map(|i| pstn(&i.to_string(), i)).collect();
        let p = parse(&json!({"mixedCalleeInfos": many})).unwrap();
        assert_eq!(p.sequences.len(), 10);
        assert_eq!(p.sequences.last().unwrap().sequence, 10);
        assert_eq!(p.warnings.len(), 2);
        assert!(p.warnings[0].contains("sequence 11"), "{:?}", p.warnings);
        let eleven = json!({"mixedCalleeInfos": [pstn("a", 1), pstn("b", 11)]});
        let p = parse(&eleven).unwrap();
        assert_eq!(p.sequences.len(), 1, "the callee declared 11 does not ring");
        assert!(parse(&json!({"mixedCalleeInfos": [pstn("b", 11)]})).is_err(), "nothing usable is left");
        let wide: Vec<Value> = (1..=12).map(|i| pstn(&i.to_string(), 1)).collect();
        let p = parse(&json!({"mixedCalleeInfos": wide})).unwrap();
        assert_eq!(p.sequences[0].callees.len(), 10);
    }

    #[test]
    fn unsupported_mixes_keep_the_first() {
        let m = json!({"mixedCalleeInfos": [
            {"type": "voip", "rtcId": "a", "sequence": 1},
            {"type": "voip", "rtcId": "b", "sequence": 2},
            pstn("p", 1),
        ]});
        let p = parse(&m).unwrap();
        assert_eq!(p.sequences, vec![Group { sequence: 1, callees: vec![Callee::Voip { rtc_id: "a".into() }] }]);
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
