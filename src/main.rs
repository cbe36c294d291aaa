//! `alicom-emu`: run the emulator (default), check a running one's health, print the config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use emu_core::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Every connection, call and media packet allocates; mimalloc's per-thread heaps keep the
/// runtime's worker threads from contending on glibc's arena locks.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "alicom-emu", version, about = "Local emulator of Alibaba Cloud's converged communication service")]
struct Cli {
    /// TOML file merged over the embedded defaults (fixtures/default.toml).
    #[arg(long, env = "ALICOM_EMU_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Once every listener accepts, write one JSON object with every endpoint URL and the
    /// default credentials to this path (atomically).
    #[arg(long, env = "ALICOM_EMU_READY_FILE")]
    ready_file: Option<PathBuf>,
    /// Listen on free ports chosen by the OS (every port 0); read them from --ready-file.
    #[arg(long, env = "ALICOM_EMU_EPHEMERAL_PORTS")]
    ephemeral_ports: bool,
    /// Keep durable state (MNS messages, recordings, TLS certificate) in this directory, so it
    /// survives restarts. Overrides `[server] data_dir`.
    #[arg(long, env = "ALICOM_EMU_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Exit 0 if the emulator at URL answers /health with 200 (for container healthchecks).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:18090/health")]
        url: String,
    },
    /// Print the effective configuration (defaults + --config + environment) as TOML.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Health { url }) => health(&url),
        Some(Command::Config) => match emu_server::config::load(cli.config.as_deref(), cli.ephemeral_ports) {
            Ok(c) => {
                print!("{}", toml::to_string(&c).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        None => serve(cli),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("alicom-emu: {e:#}");
    ExitCode::from(2)
}

fn serve(cli: Cli) -> ExitCode {
    let mut config = match emu_server::config::load(cli.config.as_deref(), cli.ephemeral_ports) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Some(dir) = &cli.data_dir {
        config.server.data_dir = dir.display().to_string();
    }
    init_logging(config.server.log_format, &config.server.log_level);
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(e.into()),
    };
    runtime.block_on(async move {
        let mut running = match emu_server::start(config).await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        if let Some(path) = &cli.ready_file
            && let Err(e) = write_ready_file(path, &running.endpoints)
        {
            running.shutdown().await;
            return fail(e);
        }
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutting down"),
            _ = running.wait() => tracing::error!("a listener stopped unexpectedly"),
        }
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn init_logging(format: LogFormat, level: &str) {
    let from_env = std::env::var("RUST_LOG").ok().filter(|f| !f.trim().is_empty() && EnvFilter::try_new(f).is_ok());
    let filter = EnvFilter::new(log_filter(from_env.as_deref().unwrap_or(level)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

/// The tracing filter from `RUST_LOG` (when set and valid) or `server.log_level`, with the
/// embedded TURN server's own log off unless the filter names it (`info,turn::server=debug`):
/// webrtc-rs's `turn` logs an ERROR for every datagram it cannot handle — the other party's
/// media still arriving for an allocation the hang-up closed, a closing client's refresh — which
/// is the clients' business, not the emulator's (the soak of issue 20 counted one per racing
/// packet). TURN requests with bad credentials are logged by `emu_media::turn` itself.
fn log_filter(filter: &str) -> String {
    if filter.contains("turn") { filter.to_string() } else { format!("{filter},turn::server=off") }
}

/// Raises the soft limit of open files to the hard limit: every connection is a descriptor, and
/// the usual soft limit of 1024 caps the emulator near a thousand clients. Logs both values.
#[cfg(unix)]
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!("cannot read the open-files limit: {}", std::io::Error::last_os_error());
        return;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            let e = std::io::Error::last_os_error();
            tracing::warn!(soft = before, hard = limit.rlim_max, "cannot raise the open-files limit: {e}");
            return;
        }
    }
    tracing::info!(soft = limit.rlim_cur, hard = limit.rlim_max, was = before, "open-files limit");
}

#[cfg(not(unix))]
fn raise_open_files_limit() {}

/// Written to a temporary file and renamed, so a reader never sees half a document.
fn write_ready_file(path: &std::path::Path, endpoints: &emu_server::Endpoints) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(endpoints)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A dependency-free HTTP/1.0 GET, enough for a healthcheck inside a minimal image.
fn health(url: &str) -> ExitCode {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/health".into()));
    let result = (|| -> std::io::Result<String> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })();
    match result {
        Ok(resp) if resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(resp) => {
            eprintln!("unhealthy: {}", resp.lines().next().unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_turn_servers_datagram_errors_stay_out_of_the_log_unless_asked_for() {
        assert_eq!(log_filter("warn"), "warn,turn::server=off");
        assert_eq!(log_filter("info,emu_pop=trace"), "info,emu_pop=trace,turn::server=off");
        assert_eq!(log_filter("info,turn::server=debug"), "info,turn::server=debug");
        assert!(EnvFilter::try_new(log_filter("warn")).is_ok());
    }
}
