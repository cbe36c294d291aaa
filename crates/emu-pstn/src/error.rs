//! Errors, worded to be returned as-is in a 4xx response body.

use std::fmt;

use crate::state::PhoneState;

/// A behaviour that does not parse or does not make sense, with the field at fault
/// (`ring_ms`, `dtmf[1].digits`, …; empty when the whole value is wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BehaviorError {
    pub field: String,
    pub reason: String,
}

impl BehaviorError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        BehaviorError { field: field.into(), reason: reason.into() }
    }

    /// The same error seen from one level up: `digits` inside `dtmf[0]` becomes `dtmf[0].digits`.
    pub(crate) fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() { parent.to_owned() } else { format!("{parent}.{}", self.field) };
        self
    }
}

impl fmt::Display for BehaviorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.reason) } else { write!(f, "{}: {}", self.field, self.reason) }
    }
}

impl std::error::Error for BehaviorError {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PstnError {
    #[error("invalid phone number {number:?}: {reason}")]
    InvalidNumber { number: String, reason: &'static str },
    #[error("invalid DTMF digits {digits:?}: {reason}")]
    InvalidDigits { digits: String, reason: String },
    #[error("invalid behavior: {0}")]
    InvalidBehavior(#[from] BehaviorError),
    /// A bad `[pstn]` section; `field` is its path (`pstn.phones[1].behavior.ring_ms`), so the
    /// message needs no prefix of its own.
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },
    #[error("phone {0} is unknown: it has never been called and has no behavior set")]
    UnknownNumber(String),
    #[error("phone {number} is not ringing (it is {state})")]
    NotRinging { number: String, state: PhoneState },
    #[error("phone {number} is not in a call (it is {state})")]
    NotInCall { number: String, state: PhoneState },
    #[error("phone {number} is already in call {channel_id}")]
    PhoneBusy { number: String, channel_id: String },
}

impl PstnError {
    /// The HTTP status the admin API should answer with: 400 for bad input, 404 for a phone
    /// nobody has heard of, 409 for a phone in the wrong state.
    pub fn http_status(&self) -> u16 {
        match self {
            PstnError::InvalidNumber { .. }
            | PstnError::InvalidDigits { .. }
            | PstnError::InvalidBehavior(_)
            | PstnError::Config { .. } => 400,
            PstnError::UnknownNumber(_) => 404,
            PstnError::NotRinging { .. } | PstnError::NotInCall { .. } | PstnError::PhoneBusy { .. } => 409,
        }
    }
}
