//! The PSTN state machine: phones react to the engine's commands and to their own timers.
//!
//! Rule for drivers: a method returns what happens *at once*; anything scheduled, even for the
//! same millisecond (a 0 ms ring), comes out of [`PstnSim::handle_timeout`]. So after every call,
//! re-read [`PstnSim::poll_timeout`], and fire due timers before handing in a new command.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use emu_core::Millis;
use emu_core::config::PstnConfig;
use emu_core::pstn::{LegId, PstnCommand, PstnEvent};

use crate::behavior::{Behavior, BehaviorSource, Outcome};
use crate::config::CheckedConfig;
use crate::error::PstnError;
use crate::magic::magic_behavior;
use crate::number::validate_number;
use crate::phone::{Call, CallEnd, CallRecord, Phone, PhoneView, Role};
use crate::timers::Timers;

/// What a phone's timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Answer,
    Reject,
    Press(char),
    HangUp,
}

pub struct PstnSim {
    config: CheckedConfig,
    /// Behaviours set in the config or at run time, by number.
    configured: BTreeMap<String, Behavior>,
    pub(crate) phones: BTreeMap<String, Phone>,
    /// The phone of every live leg.
    pub(crate) legs: HashMap<LegId, String>,
    pub(crate) timers: Timers<Action>,
}

impl PstnSim {
    pub fn from_config(config: &PstnConfig) -> Result<Self, PstnError> {
        Ok(Self::with_config(CheckedConfig::from_config(config)?))
    }

    /// No configured phones; handy in tests.
    pub fn new(magic_numbers: bool, default_behavior: Behavior) -> Self {
        Self::with_config(CheckedConfig { magic_numbers, default_behavior, phones: BTreeMap::new() })
    }

    fn with_config(config: CheckedConfig) -> Self {
        PstnSim {
            configured: config.phones.clone(),
            config,
            phones: BTreeMap::new(),
            legs: HashMap::new(),
            timers: Timers::new(),
        }
    }

    /// Back to the configuration: run-time behaviours, calls, timers and history are dropped.
    pub fn reset(&mut self) {
        self.configured = self.config.phones.clone();
        self.phones.clear();
        self.legs.clear();
        self.timers.clear();
    }

    /// Sets a phone's behaviour from its next call on (a call in progress keeps its own).
    pub fn set_behavior(&mut self, number: &str, behavior: Behavior) -> Result<(), PstnError> {
        validate_number(number)?;
        behavior.validate()?;
        self.configured.insert(number.to_owned(), behavior);
        Ok(())
    }

    /// Drops a configured behaviour (the magic or default one applies again); whether there was one.
    pub fn clear_behavior(&mut self, number: &str) -> bool {
        self.configured.remove(number).is_some()
    }

    pub fn behavior_of(&self, number: &str) -> (Behavior, BehaviorSource) {
        if let Some(behavior) = self.configured.get(number) {
            return (behavior.clone(), BehaviorSource::Configured);
        }
        if self.config.magic_numbers
            && let Some(behavior) = magic_behavior(number)
        {
            return (behavior, BehaviorSource::Magic);
        }
        (self.config.default_behavior.clone(), BehaviorSource::Default)
    }

    /// A phone, whether or not it was ever called.
    pub fn phone(&self, number: &str) -> Result<PhoneView, PstnError> {
        validate_number(number)?;
        Ok(self.view(number))
    }

    /// Every phone that has been called or has a configured behaviour, by number.
    pub fn phones(&self) -> Vec<PhoneView> {
        let numbers: BTreeSet<&String> = self.phones.keys().chain(self.configured.keys()).collect();
        numbers.into_iter().map(|n| self.view(n)).collect()
    }

    fn view(&self, number: &str) -> PhoneView {
        let (behavior, source) = self.behavior_of(number);
        match self.phones.get(number) {
            Some(phone) => phone.view(number, behavior, source),
            None => Phone::default().view(number, behavior, source),
        }
    }

    /// Whether `number` may call the platform now (before sending `Originated` to the engine).
    pub fn can_originate(&self, number: &str) -> Result<(), PstnError> {
        validate_number(number)?;
        match self.phones.get(number).and_then(|p| p.call.as_ref()) {
            Some(call) => {
                Err(PstnError::PhoneBusy { number: number.to_owned(), channel_id: call.record.channel_id.clone() })
            }
            None => Ok(()),
        }
    }

    pub fn handle(&mut self, command: PstnCommand, now: Millis) -> Vec<PstnEvent> {
        match command {
            PstnCommand::Dial { leg, channel_id, from, to, .. } => self.dial(leg, channel_id, from, to, now),
            PstnCommand::Originated { leg, channel_id, from, to, .. } => {
                self.originated(leg, channel_id, from, to, now)
            }
            PstnCommand::Connected { leg } => {
                self.connected(leg, now);
                Vec::new()
            }
            PstnCommand::Release { leg, reason } => {
                if let Some(number) = self.legs.get(&leg).cloned() {
                    self.end_call(&number, reason.into(), now);
                }
                Vec::new()
            }
            PstnCommand::Announce { leg, name } => {
                if let Some(call) = self.call_of_leg(leg) {
                    call.record.announcements.push(name);
                }
                Vec::new()
            }
            PstnCommand::DeviceDtmf { leg, digits } => {
                if let Some(call) = self.call_of_leg(leg) {
                    call.record.digits_received.push_str(&digits);
                }
                Vec::new()
            }
        }
    }

    /// The earliest pending deadline.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.next_deadline()
    }

    /// Fires every timer due at `now`, earliest first, each event stamped with its own deadline
    /// (so a late driver still sees exact times). Timers that fire schedule others from their own
    /// deadline, which fire here too when due.
    pub fn handle_timeout(&mut self, now: Millis) -> Vec<(Millis, PstnEvent)> {
        let mut fired = Vec::new();
        while let Some((at, leg, action)) = self.timers.pop_due(now) {
            fired.extend(self.fire(leg, action, at).into_iter().map(|event| (at, event)));
        }
        fired
    }

    fn dial(&mut self, leg: LegId, channel_id: String, from: String, to: String, now: Millis) -> Vec<PstnEvent> {
        if self.legs.contains_key(&leg) {
            return Vec::new();
        }
        if validate_number(&to).is_err() {
            return vec![PstnEvent::Invalid { leg }];
        }
        let (behavior, _) = self.behavior_of(&to);
        let record = CallRecord::new(channel_id, leg, Role::Callee, from, now);
        let phone = self.phones.entry(to.clone()).or_default();
        if phone.call.is_some() {
            phone.refuse(record, CallEnd::Busy);
            return vec![PstnEvent::Busy { leg }];
        }
        let refused = match behavior.then {
            Outcome::Busy => Some((CallEnd::Busy, PstnEvent::Busy { leg })),
            Outcome::Unreachable => Some((CallEnd::Unreachable, PstnEvent::Unreachable { leg })),
            Outcome::PoweredOff => Some((CallEnd::PoweredOff, PstnEvent::Unreachable { leg })),
            Outcome::Invalid => Some((CallEnd::Invalid, PstnEvent::Invalid { leg })),
            Outcome::Answer | Outcome::Reject | Outcome::NoAnswer | Outcome::Manual => None,
        };
        if let Some((end, event)) = refused {
            phone.refuse(record, end);
            return vec![event];
        }
        let ring_end = now.saturating_add(behavior.ring_ms);
        match behavior.then {
            Outcome::Answer => self.timers.schedule(ring_end, leg, Action::Answer),
            Outcome::Reject => self.timers.schedule(ring_end, leg, Action::Reject),
            _ => {}
        }
        phone.call = Some(Call::new(record, behavior, true));
        self.legs.insert(leg, to);
        vec![PstnEvent::Ringing { leg }]
    }

    /// A phone that cannot be calling (bad number, already in a call) hangs up at once; the
    /// admin API should ask [`PstnSim::can_originate`] first to answer with a clear error.
    fn originated(&mut self, leg: LegId, channel_id: String, from: String, to: String, now: Millis) -> Vec<PstnEvent> {
        if self.legs.contains_key(&leg) {
            return Vec::new();
        }
        if self.can_originate(&from).is_err() {
            return vec![PstnEvent::HungUp { leg }];
        }
        let (behavior, _) = self.behavior_of(&from);
        let record = CallRecord::new(channel_id, leg, Role::Caller, to, now);
        self.phones.entry(from.clone()).or_default().call = Some(Call::new(record, behavior, false));
        self.legs.insert(leg, from);
        Vec::new()
    }

    /// A callee's script started when it answered; a caller's starts now.
    fn connected(&mut self, leg: LegId, now: Millis) {
        let Some(number) = self.legs.get(&leg) else {
            return;
        };
        let Some(call) = self.phones.get_mut(number).and_then(|p| p.call.as_mut()) else {
            return;
        };
        if call.record.role == Role::Caller && !call.script_started {
            call.record.answered_at = Some(now);
            start_script(&mut self.timers, call, now);
        }
    }

    fn fire(&mut self, leg: LegId, action: Action, at: Millis) -> Vec<PstnEvent> {
        let Some(number) = self.legs.get(&leg).cloned() else {
            return Vec::new();
        };
        match action {
            Action::Answer => self.answer_call(&number, at),
            Action::Reject => self.end_call(&number, CallEnd::Rejected, at),
            Action::HangUp => self.end_call(&number, CallEnd::HungUp, at),
            Action::Press(digit) => self.press_digits(&number, &digit.to_string()),
        }
    }

    /// The ringing phone picks up: its ring timer is moot and its script starts.
    pub(crate) fn answer_call(&mut self, number: &str, at: Millis) -> Vec<PstnEvent> {
        let Some(call) = self.phones.get_mut(number).and_then(|p| p.call.as_mut()) else {
            return Vec::new();
        };
        let leg = call.leg();
        self.timers.cancel_leg(leg);
        call.ringing = false;
        call.record.answered_at = Some(at);
        start_script(&mut self.timers, call, at);
        vec![PstnEvent::Answered { leg }]
    }

    /// Ends the phone's call, cancelling its timers; the event it sends, if it ended it itself.
    pub(crate) fn end_call(&mut self, number: &str, end: CallEnd, at: Millis) -> Vec<PstnEvent> {
        let Some(leg) = self.phones.get_mut(number).and_then(|p| p.finish(end, at)) else {
            return Vec::new();
        };
        self.legs.remove(&leg);
        self.timers.cancel_leg(leg);
        match end {
            CallEnd::Rejected => vec![PstnEvent::Rejected { leg }],
            CallEnd::HungUp => vec![PstnEvent::HungUp { leg }],
            _ => Vec::new(),
        }
    }

    pub(crate) fn press_digits(&mut self, number: &str, digits: &str) -> Vec<PstnEvent> {
        let Some(call) = self.phones.get_mut(number).and_then(|p| p.call.as_mut()) else {
            return Vec::new();
        };
        call.record.digits_sent.push_str(digits);
        let leg = call.leg();
        digits.chars().map(|digit| PstnEvent::Dtmf { leg, digit }).collect()
    }

    fn call_of_leg(&mut self, leg: LegId) -> Option<&mut Call> {
        let number = self.legs.get(&leg)?;
        self.phones.get_mut(number)?.call.as_mut()
    }
}

/// Schedules what the phone does once answered/connected: presses first, then the hang-up, so a
/// press due at the hang-up instant still goes out.
fn start_script(timers: &mut Timers<Action>, call: &mut Call, at: Millis) {
    call.script_started = true;
    let leg = call.leg();
    for press in &call.behavior.dtmf {
        for (offset, digit) in press.schedule() {
            timers.schedule(at.saturating_add(offset), leg, Action::Press(digit));
        }
    }
    if let Some(after) = call.behavior.hangup_after_ms {
        timers.schedule(at.saturating_add(after), leg, Action::HangUp);
    }
}

#[cfg(test)]
mod tests;
