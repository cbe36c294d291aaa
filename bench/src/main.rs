//! `alicom-bench`: the benchmarks of docs/benchmarks.md, kept out of the product binary.
//!
//! - `startup`, `pop` ([`pop`]): spawn-to-ready time and idle RSS; signed POP requests per second.
//! - `gateway` ([`gateway`]): thousands of registered MQTT devices, then request→ACK round trips.
//! - `calls` ([`calls`]): VoIP→VoIP and VoIP→PSTN call setups per second, signalling only.
//! - `media` ([`media`]): the media server's SRTP forwarding, added latency, G.711 calls and
//!   video forwarding (VP8-sized RTP through the SFU).
//! - `mns` ([`mns`]): the MNS HTTP API's send/receive/delete cycles.
//! - `soak` ([`soak`]): mixed load for a configurable time (heartbeating devices, VoIP and PSTN
//!   calls with media and recordings, POP token requests, every receipt consumed from MNS),
//!   sampling the server's RSS and CPU; fails unless there were no errors, RSS stayed flat after
//!   the warm-up and every call's CDR arrived exactly once. `alicom-bench soak --minutes 30`.
//!
//! The first four and `soak` run the release `alicom-emu` binary as a child process on ephemeral ports
//! ([`common::emulator_exe`] finds it); `media` and `mns` run the service's library in a child
//! process of this executable (`media --server`, `mns --server`), so that `/proc` tells the
//! server's CPU time apart from the load generator's.

mod calls;
mod common;
mod gateway;
mod media;
mod mns;
mod pop;
mod procstat;
mod soak;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The allocator of `alicom-emu`, so that the server processes this executable runs (`media`,
/// `mns`) allocate as the product does.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "alicom-bench", version, about = "Benchmarks of alicom-emu (docs/benchmarks.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Spawn-to-ready time and idle memory of fresh emulator processes.
    Startup(pop::StartupArgs),
    /// Signed POP requests per second over concurrent keep-alive HTTP/1.1 connections.
    Pop(pop::PopArgs),
    /// Many registered MQTT devices (memory, idle CPU), then request→ACK round trips per second.
    Gateway(gateway::GatewayArgs),
    /// Call setups per second (VoIP→VoIP or VoIP→PSTN), signalling only.
    Calls(calls::CallsArgs),
    /// Mixed load for --minutes, sampling the server's RSS and CPU (docs/benchmarks.md, "Soak").
    Soak(soak::SoakArgs),
    /// Media server: `forward`, `latency` or `g711` and their options (docs/benchmarks.md).
    #[command(disable_help_flag = true)]
    Media {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// MNS HTTP API: SendMessage → ReceiveMessage → DeleteMessage cycles (docs/benchmarks.md).
    #[command(disable_help_flag = true)]
    Mns {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Startup(a) => pop::startup(a),
        Command::Pop(a) => pop::pop(a),
        Command::Gateway(a) => gateway::gateway(a),
        Command::Calls(a) => calls::calls(a),
        Command::Soak(a) => soak::soak(a),
        Command::Media { args } => media::run(args),
        Command::Mns { args } => mns::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alicom-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn media_and_mns_take_their_own_options() {
        let cli = Cli::try_parse_from(["alicom-bench", "media", "forward", "--calls", "2", "--prebuilt"]).unwrap();
        assert!(matches!(cli.command, Command::Media { args } if args == ["forward", "--calls", "2", "--prebuilt"]));
        let cli = Cli::try_parse_from(["alicom-bench", "mns", "--seconds", "1", "--batch", "16"]).unwrap();
        assert!(matches!(cli.command, Command::Mns { args } if args == ["--seconds", "1", "--batch", "16"]));
    }
}
