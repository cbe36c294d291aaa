//! The simulated PSTN (docs/pstn.md): phones with scriptable behaviours, magic numbers, and the
//! state machine that turns the engine's [`PstnCommand`]s into [`PstnEvent`]s.
//!
//! Sans-IO like the call engine (docs/architecture.md#sans-io-engine): every method takes the current emulator time in
//! milliseconds, nothing reads a clock or sleeps, and [`PstnSim::poll_timeout`] tells the driver
//! when to call [`PstnSim::handle_timeout`] next.
//!
//! [`PstnCommand`]: emu_core::pstn::PstnCommand
//! [`PstnEvent`]: emu_core::pstn::PstnEvent

mod behavior;
mod config;
mod control;
mod error;
mod magic;
mod number;
mod parse;
mod phone;
mod sim;
mod state;
mod timers;

pub use behavior::{Audio, Behavior, BehaviorSource, DtmfPress, Outcome};
pub use error::{BehaviorError, PstnError};
pub use magic::{MagicNumber, magic_behavior, magic_numbers};
pub use number::{validate_digits, validate_number};
pub use phone::{CallEnd, CallRecord, PhoneState, PhoneView, Role};
pub use sim::PstnSim;
