//! The admin API's contract with the components that keep run-time state: `POST /admin/reset`
//! clears every [`Reset`] component, and `POST /admin/clock/advance` goes through the one
//! [`Advance`] component (the call driver), which moves the manual clock and fires every timer
//! that comes due before it answers.

use std::future::Future;
use std::pin::Pin;

use crate::clock::{ClockError, Millis};

/// A component with run-time state that `POST /admin/reset` clears.
pub trait Reset: Send + Sync {
    fn reset(&self);
}

/// Moves the manual clock by `ms` and fires what comes due; answers the new emulator time.
pub trait Advance: Send + Sync {
    fn advance(&self, ms: Millis) -> Pin<Box<dyn Future<Output = Result<Millis, AdvanceError>> + Send + '_>>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The component that fires timers has stopped (the emulator is shutting down).
    #[error("the call driver has stopped")]
    Stopped,
}
