//! One phone's state: the call it is in, and a record of its recent calls.

use std::collections::VecDeque;

use emu_core::Millis;
use emu_core::pstn::{LegId, ReleaseReason};
use serde::{Deserialize, Serialize};

use crate::behavior::{Behavior, BehaviorSource};
pub use crate::state::PhoneState;

/// Calls kept per phone; older ones are dropped.
pub(crate) const HISTORY_LEN: usize = 20;

/// The phone's side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PhoneRole)]
pub enum Role {
    /// The platform dialled it (`Dial`).
    Callee,
    /// It dialled a platform number (`Originated`).
    Caller,
}

/// How a call ended for the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PhoneCallEnd)]
pub enum CallEnd {
    /// Its behaviour was `busy`, or it was already in a call.
    Busy,
    Rejected,
    Unreachable,
    PoweredOff,
    Invalid,
    /// Released by the engine: the caller gave up while it rang.
    Cancelled,
    /// Released by the engine: another leg answered first.
    AnsweredElsewhere,
    /// Released by the engine: the ring timeout ran out.
    NoAnswer,
    /// The phone hung up (its script or the test).
    HungUp,
    /// Released by the engine after answering: the other side hung up, a time limit, …
    Ended,
}

impl From<ReleaseReason> for CallEnd {
    fn from(reason: ReleaseReason) -> Self {
        match reason {
            ReleaseReason::Cancelled => CallEnd::Cancelled,
            ReleaseReason::AnsweredElsewhere => CallEnd::AnsweredElsewhere,
            ReleaseReason::NoAnswer => CallEnd::NoAnswer,
            ReleaseReason::CallEnded => CallEnd::Ended,
        }
    }
}

/// One call of a phone, live or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PhoneCallRecord)]
pub struct CallRecord {
    pub channel_id: String,
    pub leg: LegId,
    pub role: Role,
    /// The platform number on the other end (shown to the callee, or dialled by the caller).
    pub peer: String,
    pub started_at: Millis,
    /// Answered (callee) or connected (caller).
    #[schema(required = true)]
    pub answered_at: Option<Millis>,
    #[schema(required = true)]
    pub ended_at: Option<Millis>,
    #[schema(required = true)]
    pub end: Option<CallEnd>,
    /// Digits the VoIP side sent to the phone.
    pub digits_received: String,
    /// Digits the phone pressed.
    pub digits_sent: String,
    /// Announcements the phone heard, by name.
    pub announcements: Vec<String>,
}

impl CallRecord {
    pub(crate) fn new(channel_id: String, leg: LegId, role: Role, peer: String, now: Millis) -> Self {
        CallRecord {
            channel_id,
            leg,
            role,
            peer,
            started_at: now,
            answered_at: None,
            ended_at: None,
            end: None,
            digits_received: String::new(),
            digits_sent: String::new(),
            announcements: Vec::new(),
        }
    }

    fn ended(mut self, end: CallEnd, at: Millis) -> Self {
        self.end = Some(end);
        self.ended_at = Some(at);
        self
    }
}

/// What the admin API shows of a phone (`GET /admin/pstn/phones/{number}`). `digitsReceived`,
/// `digitsSent` and `announcements` are those of the current call, or of the last one when idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneView {
    pub number: String,
    pub state: PhoneState,
    #[schema(required = true)]
    pub channel_id: Option<String>,
    #[schema(required = true)]
    pub leg: Option<LegId>,
    #[schema(required = true)]
    pub role: Option<Role>,
    #[schema(required = true)]
    pub peer: Option<String>,
    pub behavior: Behavior,
    pub behavior_source: BehaviorSource,
    pub digits_received: String,
    pub digits_sent: String,
    pub announcements: Vec<String>,
    /// Finished calls, oldest first (at most 20).
    pub history: Vec<CallRecord>,
}

/// A call the phone is in.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub ringing: bool,
    /// The behaviour when the call started: changing it mid-call affects the next call.
    pub behavior: Behavior,
    pub script_started: bool,
    pub record: CallRecord,
}

impl Call {
    pub fn new(record: CallRecord, behavior: Behavior, ringing: bool) -> Self {
        Call { ringing, behavior, script_started: false, record }
    }

    pub fn leg(&self) -> LegId {
        self.record.leg
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Phone {
    pub call: Option<Call>,
    pub history: VecDeque<CallRecord>,
}

impl Phone {
    pub fn state(&self) -> PhoneState {
        match &self.call {
            None => PhoneState::Idle,
            Some(call) if call.ringing => PhoneState::Ringing,
            Some(_) => PhoneState::InCall,
        }
    }

    /// Ends the current call, if any, and files it.
    pub fn finish(&mut self, end: CallEnd, at: Millis) -> Option<LegId> {
        let call = self.call.take()?;
        let leg = call.leg();
        self.file(call.record.ended(end, at));
        Some(leg)
    }

    /// Files a call attempt that ended as soon as it started (busy, unreachable, …).
    pub fn refuse(&mut self, record: CallRecord, end: CallEnd) {
        let at = record.started_at;
        self.file(record.ended(end, at));
    }

    fn file(&mut self, record: CallRecord) {
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(record);
    }

    pub fn view(&self, number: &str, behavior: Behavior, behavior_source: BehaviorSource) -> PhoneView {
        let call = self.call.as_ref();
        let latest = call.map(|c| &c.record).or(self.history.back());
        PhoneView {
            number: number.to_owned(),
            state: self.state(),
            channel_id: call.map(|c| c.record.channel_id.clone()),
            leg: call.map(Call::leg),
            role: call.map(|c| c.record.role),
            peer: call.map(|c| c.record.peer.clone()),
            behavior,
            behavior_source,
            digits_received: latest.map(|r| r.digits_received.clone()).unwrap_or_default(),
            digits_sent: latest.map(|r| r.digits_sent.clone()).unwrap_or_default(),
            announcements: latest.map(|r| r.announcements.clone()).unwrap_or_default(),
            history: self.history.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(leg: LegId) -> CallRecord {
        CallRecord::new(format!("ch{leg}"), leg, Role::Callee, "0571".into(), 100)
    }

    #[test]
    fn history_keeps_the_last_calls() {
        let mut phone = Phone::default();
        for leg in 0..25 {
            phone.refuse(record(leg), CallEnd::Busy);
        }
        assert_eq!(phone.history.len(), HISTORY_LEN);
        assert_eq!(phone.history.front().unwrap().leg, 5);
        assert_eq!(phone.history.back().unwrap().leg, 24);
    }

    #[test]
    fn view_shows_the_current_call_then_the_last_one() {
        let mut phone = Phone::default();
        let mut first = record(1);
        first.digits_received = "12".into();
        phone.call = Some(Call::new(first, Behavior::default(), true));
        let view = phone.view("139", Behavior::default(), BehaviorSource::Default);
        assert_eq!((view.state, view.leg, view.digits_received.as_str()), (PhoneState::Ringing, Some(1), "12"));
        assert_eq!(phone.finish(CallEnd::Cancelled, 300), Some(1));
        assert_eq!(phone.finish(CallEnd::Cancelled, 300), None);
        let view = phone.view("139", Behavior::default(), BehaviorSource::Default);
        assert_eq!((view.state, view.leg, view.digits_received.as_str()), (PhoneState::Idle, None, "12"));
        assert_eq!(view.history[0].end, Some(CallEnd::Cancelled));
        assert_eq!(view.history[0].ended_at, Some(300));
    }

    #[test]
    fn view_json_is_camel_case() {
        let phone = Phone { call: Some(Call::new(record(7), Behavior::default(), false)), history: VecDeque::new() };
        let json = serde_json::to_value(phone.view("139", Behavior::default(), BehaviorSource::Magic)).unwrap();
        assert_eq!(json["state"], "in_call");
        assert_eq!(json["channelId"], "ch7");
        assert_eq!(json["role"], "callee");
        assert_eq!(json["behaviorSource"], "magic");
        assert_eq!(json["behavior"]["ring_ms"], 2000);
        assert_eq!(json["digitsReceived"], "");
        let back: PhoneView = serde_json::from_value(json).unwrap();
        assert_eq!(back.leg, Some(7));
    }
}
