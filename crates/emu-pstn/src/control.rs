//! A test acting on a phone through the admin API: answer, reject, hang up, press keys. Works on
//! any phone, not only `manual` ones; every action cancels what the phone's script had pending
//! for the step it replaces (answering early cancels the ring timer, hanging up the script).

use emu_core::Millis;
use emu_core::pstn::PstnEvent;

use crate::behavior::BehaviorSource;
use crate::error::PstnError;
use crate::number::{validate_digits, validate_number};
use crate::phone::{CallEnd, PhoneState};
use crate::sim::PstnSim;

impl PstnSim {
    /// Picks up a ringing phone.
    pub fn answer(&mut self, number: &str, now: Millis) -> Result<Vec<PstnEvent>, PstnError> {
        self.expect_ringing(number)?;
        Ok(self.answer_call(number, now))
    }

    /// Declines a ringing phone's call.
    pub fn reject(&mut self, number: &str, now: Millis) -> Result<Vec<PstnEvent>, PstnError> {
        self.expect_ringing(number)?;
        Ok(self.end_call(number, CallEnd::Rejected, now))
    }

    /// Hangs up a phone in a call; on a ringing phone (the red button) this is a reject.
    pub fn hangup(&mut self, number: &str, now: Millis) -> Result<Vec<PstnEvent>, PstnError> {
        match self.state_of(number)? {
            PhoneState::Ringing => Ok(self.end_call(number, CallEnd::Rejected, now)),
            PhoneState::InCall => Ok(self.end_call(number, CallEnd::HungUp, now)),
            state @ PhoneState::Idle => Err(PstnError::NotInCall { number: number.to_owned(), state }),
        }
    }

    /// Presses keys on a phone in a call, all at `now`, in order. (`now` is unused today; it keeps
    /// every action's signature alike.)
    pub fn press(&mut self, number: &str, digits: &str, _now: Millis) -> Result<Vec<PstnEvent>, PstnError> {
        validate_number(number)?;
        validate_digits(digits)?;
        match self.state_of(number)? {
            PhoneState::InCall => Ok(self.press_digits(number, digits)),
            state => Err(PstnError::NotInCall { number: number.to_owned(), state }),
        }
    }

    fn expect_ringing(&self, number: &str) -> Result<(), PstnError> {
        match self.state_of(number)? {
            PhoneState::Ringing => Ok(()),
            state => Err(PstnError::NotRinging { number: number.to_owned(), state }),
        }
    }

    /// The phone's state; a phone never called and never configured is unknown (likely a typo).
    fn state_of(&self, number: &str) -> Result<PhoneState, PstnError> {
        validate_number(number)?;
        match self.phones.get(number) {
            Some(phone) => Ok(phone.state()),
            None if self.behavior_of(number).1 != BehaviorSource::Default => Ok(PhoneState::Idle),
            None => Err(PstnError::UnknownNumber(number.to_owned())),
        }
    }
}
