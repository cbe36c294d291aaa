//! Where a phone is in a call, as the admin API and errors name it.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhoneState {
    Idle,
    Ringing,
    InCall,
}

impl fmt::Display for PhoneState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PhoneState::Idle => "idle",
            PhoneState::Ringing => "ringing",
            PhoneState::InCall => "in a call",
        })
    }
}
