//! The whole emulator as a library: configuration loading (the embedded defaults, a file, the
//! environment) and the wiring that binds every listener and starts every component. The
//! `alicom-emu` binary is a command line around it; emu-testkit and the integration tests run it
//! in-process on ephemeral ports.

pub mod app;
pub mod config;

pub use app::{Endpoints, Running, start};
