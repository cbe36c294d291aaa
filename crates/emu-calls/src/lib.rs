//! Calls: the call engine and the simulated PSTN composed into one [`Switch`] (no I/O, time
//! passed in), the [`driver`] task that feeds it and carries out its effects (devices, HTTP
//! callbacks, media, receipts, events), and the admin routes that reach it ([`api`]).
//! See docs/architecture.md and docs/calls.md.

pub mod api;
mod api_voip;
pub mod driver;
pub mod requests;
pub mod switch;
pub mod virtual_devices;

pub use api::router;
pub use driver::{Driver, DriverHandle, DriverStopped, spawn};
pub use requests::Request;
pub use switch::{Effect, Switch};
