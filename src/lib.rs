//! alicom-emu: the binary's library half (configuration loading and wiring), so integration
//! tests can run the whole emulator in-process on ephemeral ports.

pub mod app;
pub mod calls_api;
pub mod config;
pub mod driver;

pub use app::{Endpoints, Running, start};
