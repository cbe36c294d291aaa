//! Virtual VoIP devices (docs/voip-devices.md): server-side SDK devices that a test drives over
//! HTTP. Each plays the Web SDK's side of the call protocol by a behaviour (ring, then answer,
//! reject, …; hang up after a while; the audio it sends), the way emu-pstn plays phones.
//!
//! Sans-IO like the call engine: `VirtualDevices` is fed the server messages the platform sends
//! an account that has a virtual device, admin actions and the current emulator time, and
//! returns the device requests the SDK would send (for the engine, through the same path as a
//! real device's), presence changes and state changes to log. emu-calls' driver carries them out.

mod behavior;
mod device;
mod error;
mod view;

pub use behavior::{Behavior, Outcome};
pub use device::{Action, CallOrder, VirtualDevices};
pub use error::VoipError;
pub use view::{CallOutcome, CallRecord, DeviceState, DeviceView, Received, Role};

#[cfg(test)]
mod tests;
