//! A call (channel) and its legs: the state the engine keeps per call, and its admin view.

use serde::Serialize;

use crate::cdr::CdrReport;
pub use crate::cdr::Outcome;
use crate::clock::Millis;
use crate::media_signal::RawJson;
use crate::pstn::LegId;
use crate::signalling::RtcType;
use crate::tenants::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// The VoIP caller joined the channel; its `call` has not come yet.
    Joining,
    /// Waiting for the outbound authorisation callback.
    Authorizing,
    /// Waiting for the inbound routing callback.
    Routing,
    Ringing,
    Active,
    Ended,
}

/// Who started the call.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = CallCaller)]
pub enum Caller {
    Device {
        #[serde(rename = "rtcId")]
        rtc_id: String,
        uuid: String,
        /// Shared with every `called` of the call (one per callee rung), not copied.
        #[serde(skip)]
        user_info: RawJson,
    },
    Phone {
        number: String,
        #[serde(skip)]
        leg: LegId,
        /// The session id the VoIP callee sees for this phone.
        #[serde(skip)]
        uuid: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = CallTarget)]
pub enum Target {
    Device {
        #[serde(rename = "rtcId")]
        rtc_id: String,
    },
    Phone {
        number: String,
        /// The number shown to the phone.
        display: String,
    },
}

impl Target {
    pub fn label(&self) -> &str {
        match self {
            Target::Device { rtc_id } => rtc_id,
            Target::Phone { number, .. } => number,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    Ringing,
    Answered,
    Ended,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Leg {
    pub id: LegId,
    pub target: Target,
    pub state: LegState,
    /// The ringing sequence the customer declared (1 for a VoIP caller's callees).
    pub sequence: i64,
    /// 1-based position of that sequence in ringing order (`1-2-2-3-5`: 5 is position 4).
    pub position: usize,
    #[serde(rename = "startMs")]
    pub start_ms: Millis,
    #[serde(rename = "answeredMs")]
    #[schema(required = true)]
    pub answered_ms: Option<Millis>,
    #[serde(rename = "endedMs")]
    #[schema(required = true)]
    pub ended_ms: Option<Millis>,
    #[schema(required = true)]
    pub outcome: Option<Outcome>,
    /// The callee's session uuid once it answered (VoIP).
    #[serde(skip)]
    pub uuid: Option<String>,
    /// The `callId` in `called` (VoIP).
    #[serde(skip)]
    pub call_id: String,
    pub joined: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Call {
    #[serde(rename = "channelId")]
    pub channel_id: String,
    #[serde(skip)]
    pub tenant: TenantId,
    #[serde(rename = "alicomRtcType")]
    pub rtc_type: RtcType,
    pub state: CallState,
    pub caller: Caller,
    pub legs: Vec<Leg>,
    #[serde(rename = "displayNumber", skip_serializing_if = "Option::is_none")]
    pub display_number: Option<String>,
    pub extend: String,
    #[serde(rename = "createdMs")]
    pub created_ms: Millis,
    #[serde(rename = "answeredMs")]
    #[schema(required = true)]
    pub answered_ms: Option<Millis>,
    #[serde(rename = "endedMs")]
    #[schema(required = true)]
    pub ended_ms: Option<Millis>,
    #[serde(rename = "timeLimitSecs")]
    #[schema(required = true)]
    pub time_limit_secs: Option<u64>,
    #[serde(rename = "needRecord")]
    pub need_record: bool,
    /// Why and with which code it ended.
    #[serde(rename = "endReason")]
    #[schema(required = true)]
    pub end_reason: Option<String>,
    #[serde(rename = "causeCode")]
    #[schema(required = true)]
    pub cause_code: Option<i64>,
    pub warnings: Vec<String>,
    /// Sequences not rung yet (inbound plans).
    #[serde(skip)]
    pub pending_sequences: Vec<super::plan::Group>,
    /// The declared sequence ringing now (0 before the first).
    #[serde(rename = "sequence")]
    pub current_sequence: i64,
    /// Its position in ringing order.
    #[serde(rename = "sequencePosition")]
    pub sequence_position: usize,
    /// Who the call asked for, whether or not they were ever rung: the CDR names them even
    /// when the call was refused before dialling.
    #[serde(skip)]
    pub requested: Vec<Target>,
    /// One callee's reject ends the whole call (the SDKs' default); false: the call fails only
    /// when every callee rejected or timed out.
    #[serde(rename = "cancelOnReject")]
    pub cancel_on_reject: bool,
    #[serde(skip)]
    pub ringing_sent: bool,
    // Shared with the CDR event, the CDR list and the receipt: one report per call, no copies.
    #[schema(value_type = Option<Value>, required = true)]
    pub cdr: Option<std::sync::Arc<CdrReport>>,
    pub video: super::video::Video,
}

impl Call {
    pub fn leg(&self, id: LegId) -> Option<&Leg> {
        self.legs.iter().find(|l| l.id == id)
    }

    pub fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.id == id)
    }

    pub fn answered_leg(&self) -> Option<&Leg> {
        self.legs.iter().find(|l| l.answered_ms.is_some())
    }

    pub fn device_leg(&self, rtc_id: &str) -> Option<&Leg> {
        self.legs
            .iter()
            .find(|l| matches!(&l.target, Target::Device { rtc_id: r } if r == rtc_id) && l.state != LegState::Ended)
    }

    pub fn is_caller_device(&self, rtc_id: &str) -> bool {
        matches!(&self.caller, Caller::Device { rtc_id: r, .. } if r == rtc_id)
    }

    pub fn caller_label(&self) -> &str {
        match &self.caller {
            Caller::Device { rtc_id, .. } => rtc_id,
            Caller::Phone { number, .. } => number,
        }
    }
}
