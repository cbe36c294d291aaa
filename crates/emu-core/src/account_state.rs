//! A tenant's business state: the vendor code every Dyvmsapi call answers with while the
//! account is suspended, unsubscribed or faulty. Set in the configuration and at run time.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The business state of a tenant (or a faulty AccessKey): every Dyvmsapi call answers with
/// this vendor code unless it is `normal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AccountState {
    #[default]
    #[serde(rename = "normal")]
    Normal,
    #[serde(rename = "isv.OUT_OF_SERVICE")]
    OutOfService,
    #[serde(rename = "isv.PRODUCT_UNSUBSCRIBE")]
    ProductUnsubscribe,
    #[serde(rename = "isv.ACCOUNT_ABNORMAL")]
    AccountAbnormal,
    #[serde(rename = "isp.RAM_PERMISSION_DENY")]
    RamPermissionDeny,
    #[serde(rename = "isp.SYSTEM_ERROR")]
    SystemError,
}

impl AccountState {
    /// The vendor code and message a call answers with in this state (None when normal).
    pub fn error(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            AccountState::Normal => return None,
            AccountState::OutOfService => ("isv.OUT_OF_SERVICE", "The business is suspended."),
            AccountState::ProductUnsubscribe => ("isv.PRODUCT_UNSUBSCRIBE", "The product is not subscribed."),
            AccountState::AccountAbnormal => ("isv.ACCOUNT_ABNORMAL", "The account is abnormal."),
            AccountState::RamPermissionDeny => ("isp.RAM_PERMISSION_DENY", "RAM permission denied."),
            AccountState::SystemError => ("isp.SYSTEM_ERROR", "System error."),
        })
    }
}

impl fmt::Display for AccountState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error().map(|e| e.0).unwrap_or("normal"))
    }
}
