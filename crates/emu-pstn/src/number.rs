//! What a phone number and a DTMF digit string may look like.

use crate::error::PstnError;

const MIN_DIGITS: usize = 3;
const MAX_DIGITS: usize = 20;

/// A phone number: ASCII digits with an optional leading `+`, 3 to 20 digits. Numbers are
/// compared exactly as written (`+8613800000001` and `13800000001` are different phones).
pub fn validate_number(number: &str) -> Result<(), PstnError> {
    let invalid = |reason| Err(PstnError::InvalidNumber { number: number.to_owned(), reason });
    let digits = number.strip_prefix('+').unwrap_or(number);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("only digits and an optional leading + are allowed");
    }
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
        return invalid("a number has 3 to 20 digits");
    }
    Ok(())
}

/// A DTMF key a phone can press. A–D exist in RFC 4733 but not on phones or in the SDK's
/// `cs_dtmf`, so they are refused.
pub(crate) fn is_dtmf_digit(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

/// Digits to press or received: at least one, each one of `0-9*#`.
pub fn validate_digits(digits: &str) -> Result<(), PstnError> {
    digit_problem(digits).map_or(Ok(()), |reason| Err(PstnError::InvalidDigits { digits: digits.to_owned(), reason }))
}

/// Why `digits` cannot be pressed, if it cannot.
pub(crate) fn digit_problem(digits: &str) -> Option<String> {
    if digits.is_empty() {
        return Some("at least one digit is needed".into());
    }
    digits.chars().find(|c| !is_dtmf_digit(*c)).map(|c| format!("{c:?} is not a DTMF digit (allowed: 0-9, *, #)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for ok in ["123", "13800000001", "+8613800000001", "01234567890123456789"] {
            assert_eq!(validate_number(ok), Ok(()), "{ok}");
        }
        for bad in ["", "12", "+12", "1380000000a", "138 0000", "++123", "123+", "012345678901234567890"] {
            assert!(matches!(validate_number(bad), Err(PstnError::InvalidNumber { .. })), "{bad}");
        }
    }

    #[test]
    fn digits() {
        assert_eq!(validate_digits("0123456789*#"), Ok(()));
        for bad in ["", "A", "1 2", "12d", "٣"] {
            assert!(matches!(validate_digits(bad), Err(PstnError::InvalidDigits { .. })), "{bad}");
        }
        let message = validate_digits("1A").unwrap_err().to_string();
        assert!(message.contains("'A' is not a DTMF digit"), "{message}");
    }
}
