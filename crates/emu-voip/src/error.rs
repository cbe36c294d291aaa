//! Errors, worded to be returned as-is in a 4xx response body.

use crate::view::DeviceState;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoipError {
    #[error("invalid behavior: {0}")]
    InvalidBehavior(String),
    #[error("no virtual device {0}")]
    NotFound(String),
    /// The manual action does not fit the device's state (answering a device that is not ringing).
    #[error("virtual device {rtc_id} is {state}, not {wanted}")]
    WrongState { rtc_id: String, state: DeviceState, wanted: &'static str },
    #[error("virtual device {0} is offline")]
    Offline(String),
    #[error("invalid call: {0}")]
    InvalidCall(String),
}
