//! Numbers that behave a fixed, documented way with no configuration (docs/pstn.md), in the
//! spirit of Twilio's test numbers. A behaviour set for one of them explicitly wins.

use serde::Serialize;

use crate::behavior::{Audio, Behavior, DtmfPress, Outcome};

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MagicNumber {
    pub number: &'static str,
    pub description: &'static str,
    pub behavior: Behavior,
}

type Row = (&'static str, &'static str, fn() -> Behavior);

const TABLE: &[Row] = &[
    ("13800000001", "rings 1 s, answers", answers),
    ("13800000002", "busy", || Behavior::new(Outcome::Busy)),
    ("13800000003", "rings forever (no answer)", || Behavior::new(Outcome::NoAnswer)),
    ("13800000004", "rings 2 s, rejects", || Behavior::new(Outcome::Reject).with_ring_ms(2000)),
    ("13800000005", "unreachable (out of coverage)", || Behavior::new(Outcome::Unreachable)),
    ("13800000006", "invalid number (does not exist)", || Behavior::new(Outcome::Invalid)),
    ("13800000007", "rings 1 s, answers, hangs up 5 s later", || answers().with_hangup_after_ms(5000)),
    ("13800000008", "rings 1 s, answers, presses 1234# (first 1 s after answering, 300 ms apart)", || {
        answers().with_press(DtmfPress { after_ms: 1000, digits: "1234#".into(), gap_ms: 300 })
    }),
    ("13800000009", "rings 1 s, answers, echoes what it hears", || answers().with_audio(Audio::Echo)),
    ("13800000010", "powered off", || Behavior::new(Outcome::PoweredOff)),
    ("13800000011", "manual: rings until the test answers, rejects or hangs up", || Behavior::new(Outcome::Manual)),
];

fn answers() -> Behavior {
    Behavior::new(Outcome::Answer).with_ring_ms(1000)
}

/// The fixed behaviour of a magic number.
pub fn magic_behavior(number: &str) -> Option<Behavior> {
    TABLE.iter().find(|(n, ..)| *n == number).map(|(_, _, behavior)| behavior())
}

/// The whole table, in number order.
pub fn magic_numbers() -> Vec<MagicNumber> {
    TABLE
        .iter()
        .map(|&(number, description, behavior)| MagicNumber { number, description, behavior: behavior() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::validate_number;

    #[test]
    fn table_is_sound() {
        let numbers = magic_numbers();
        assert_eq!(numbers.len(), 11);
        for (i, row) in numbers.iter().enumerate() {
            assert_eq!(row.number, format!("138{:08}", i + 1), "numbers are consecutive");
            assert_eq!(validate_number(row.number), Ok(()));
            assert_eq!(row.behavior.validate(), Ok(()), "{}", row.number);
            assert_eq!(magic_behavior(row.number).as_ref(), Some(&row.behavior));
        }
        assert_eq!(magic_behavior("13800000012"), None);
        assert_eq!(magic_behavior("+8613800000001"), None);
    }

    #[test]
    fn documented_in_docs_pstn_md() {
        let docs = include_str!("../../../docs/pstn.md");
        for row in magic_numbers() {
            let line = format!("| `{}` | {} |", row.number, row.description);
            assert!(docs.contains(&line), "docs/pstn.md lacks the row: {line}");
        }
    }
}
