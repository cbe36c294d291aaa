//! The Rust integration tests, as one test binary: each `tests/*.rs` file would be linked into its
//! own ~80 MB executable (CI once ran out of disk on exactly that). Run one area with
//! `cargo test --test integration calls::`.

// Helpers for the POP tests; not every helper is used by every build of the tests.
#[allow(dead_code)]
mod common;

mod admin_security;
mod calls;
mod cli;
mod custom_messages;
mod gateway;
mod limits;
mod media;
mod media_calls;
mod media_video;
mod metrics;
mod openapi;
mod pitfalls;
mod pop_api;
mod retention;
mod video_calls;
mod voip_devices;
