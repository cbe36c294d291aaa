//! alicom-emu core: the configuration model, the clock, tenants, and the account/token directory.
//! Nothing here does I/O; the listeners live in the other crates.

pub mod account_state;
pub mod accounts;
pub mod cdr;
pub mod clock;
pub mod config;
pub mod tenants;

pub use accounts::Directory;
pub use clock::{Clock, Millis};
pub use config::Config;
pub use tenants::{TenantId, Tenants};
pub mod shared;
pub use shared::Shared;
pub mod events;
pub mod ids;
pub mod json_path;
pub mod lenient;
pub mod lifecycle;
pub mod media_result;
pub mod media_signal;
pub mod metrics;
pub mod retention;
pub use events::EventLog;
pub mod engine;
pub mod pstn;
pub mod signalling;
