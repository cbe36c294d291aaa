//! Calls: the call engine and the simulated PSTN composed into one [`Switch`] (no I/O, time
//! passed in), the [`driver`] task that feeds it and carries out its effects (devices, HTTP
//! callbacks, media, receipts, events); the admin routes that reach it live in emu-admin.
//! See docs/architecture.md and docs/calls.md.

pub mod driver;
pub mod requests;
pub mod switch;
pub mod virtual_devices;

pub use driver::{Driver, DriverHandle, DriverStopped, spawn};
pub use requests::Request;
pub use switch::{Effect, Switch};
