//! alicom-emu: the binary's library half (configuration loading and wiring), so integration
//! tests can run the whole emulator in-process on ephemeral ports.

pub mod app;
pub mod config;

pub use app::{Endpoints, Running, start};
