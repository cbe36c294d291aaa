//! What the admin API shows of a virtual device: its state, its call history and the server
//! messages it received (docs/voip-devices.md).

use emu_core::Millis;
use emu_core::signalling::RtcType;
use emu_core::tenants::TenantId;
use serde::Serialize;

use crate::behavior::Behavior;

/// What a device is doing, as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = VoipDeviceState)]
pub enum DeviceState {
    /// Its behaviour is `offline`: registered, not online.
    Offline,
    Idle,
    /// Called, not answered yet.
    Ringing,
    /// Its own call, not answered yet.
    Calling,
    InCall,
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceState::Offline => "offline",
            DeviceState::Idle => "idle",
            DeviceState::Ringing => "ringing",
            DeviceState::Calling => "calling",
            DeviceState::InCall => "in_call",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = VoipRole)]
pub enum Role {
    Caller,
    Callee,
}

/// How a call ended for this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = VoipCallOutcome)]
pub enum CallOutcome {
    /// Connected, then ended (by either side).
    Completed,
    /// Declined: by this device (callee) or by the callee (caller, 2000106).
    Rejected,
    /// Stopped before it connected while this device rang (2000107, 2000132, 2000133), or this
    /// caller gave up.
    Canceled,
    /// This device's own call ended before connecting (no answer, busy, offline, refused…).
    Failed,
}

/// One call in a device's history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = VoipCallRecord)]
pub struct CallRecord {
    pub channel_id: String,
    pub role: Role,
    pub rtc_type: RtcType,
    /// The caller (for a callee), or the callees (for a caller), as the device knows them.
    pub peer: String,
    pub outcome: CallOutcome,
    /// The code its SDK would report (`None` when this device ended the call itself).
    #[schema(required = true)]
    pub code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub started_ms: Millis,
    #[schema(required = true)]
    pub answered_ms: Option<Millis>,
    pub ended_ms: Millis,
}

/// A server message the device received.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = VoipReceived)]
pub struct Received {
    pub at_ms: Millis,
    pub message_type: &'static str,
    pub channel_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digit: Option<char>,
    pub acked: bool,
}

/// One virtual device, as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = VoipDeviceView)]
pub struct DeviceView {
    /// Shown by name by the admin API.
    #[serde(skip)]
    pub tenant: TenantId,
    pub rtc_id: String,
    pub device_id: String,
    pub behavior: Behavior,
    pub state: DeviceState,
    /// A real SDK logged in to the account and the platform kicked the virtual device.
    pub kicked: bool,
    #[schema(required = true)]
    pub channel_id: Option<String>,
    pub created_ms: Millis,
    pub calls: Vec<CallRecord>,
    pub received: Vec<Received>,
}
