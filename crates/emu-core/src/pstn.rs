//! The interface between the call engine and the simulated PSTN (crate `emu-pstn`). Both are
//! sans-IO state machines; the driver passes commands one way and events the other.

use serde::{Deserialize, Serialize};

use crate::tenants::TenantId;

/// One phone's part in one call.
pub type LegId = u64;

/// Why the engine releases a phone's leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The caller gave up before the phone answered.
    Cancelled,
    /// Another leg of the same plan answered first.
    AnsweredElsewhere,
    /// The ring timeout of the leg ran out.
    NoAnswer,
    /// The call ended (the other side hung up, a time limit, …) after this phone answered.
    CallEnded,
}

/// Engine → PSTN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PstnCommand {
    /// Ring phone `to`, showing `from` (a platform number) as the calling number.
    Dial { leg: LegId, channel_id: String, tenant: TenantId, from: String, to: String },
    /// Phone `from` has called platform number `to` (inbound dialling from the admin API): the
    /// phone is now in call `channel_id` on `leg`, as the caller.
    Originated { leg: LegId, channel_id: String, tenant: TenantId, from: String, to: String },
    /// The call the phone is in is connected to its far end: "after answer" behaviours of a
    /// calling phone (hang up after N ms, press DTMF) start now.
    Connected { leg: LegId },
    /// Stop ringing, or hang up a phone in a call.
    Release { leg: LegId, reason: ReleaseReason },
    /// The phone hears an announcement (e.g. `not_connected` when no inbound route exists).
    Announce { leg: LegId, name: String },
    /// Digits the VoIP side sent (RFC 4733 from the media server).
    DeviceDtmf { leg: LegId, digits: String },
}

/// PSTN → engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PstnEvent {
    Ringing {
        leg: LegId,
    },
    Answered {
        leg: LegId,
    },
    Busy {
        leg: LegId,
    },
    Rejected {
        leg: LegId,
    },
    /// Switched off or out of coverage.
    Unreachable {
        leg: LegId,
    },
    /// The number does not exist.
    Invalid {
        leg: LegId,
    },
    /// The phone hung up (caller or answered callee).
    HungUp {
        leg: LegId,
    },
    /// A digit the phone pressed, in order.
    Dtmf {
        leg: LegId,
        digit: char,
    },
}

impl PstnEvent {
    pub fn leg(&self) -> LegId {
        match self {
            PstnEvent::Ringing { leg }
            | PstnEvent::Answered { leg }
            | PstnEvent::Busy { leg }
            | PstnEvent::Rejected { leg }
            | PstnEvent::Unreachable { leg }
            | PstnEvent::Invalid { leg }
            | PstnEvent::HungUp { leg }
            | PstnEvent::Dtmf { leg, .. } => *leg,
        }
    }
}
