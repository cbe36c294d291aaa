//! `alicom-emu bench`: the load and start-up benchmarks of docs/benchmarks.md. Every one runs the
//! emulator as a separate process (this same executable) on ephemeral ports, so the numbers are
//! those of the real binary.
//!
//! - `pop`, `startup` ([`pop`]): signed POP requests per second; spawn-to-ready time and idle RSS.
//! - `gateway` ([`gateway`]): thousands of registered MQTT devices, then request→ACK round trips.
//! - `calls` ([`calls`]): VoIP→VoIP and VoIP→PSTN call setups per second, signalling only.

mod calls;
mod device;
mod gateway;
mod pop;

use emu_procstat::{cpu_secs, machine_busy_secs, rss_mib};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use emu_pop::signature::{pct, rpc_v1};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper::{StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Signed POP requests per second over concurrent keep-alive HTTP/1.1 connections.
    Pop(pop::PopArgs),
    /// Spawn-to-ready time and idle memory of fresh emulator processes.
    Startup(pop::StartupArgs),
    /// Many registered MQTT devices (memory, idle CPU), then request→ACK round trips per second.
    Gateway(gateway::GatewayArgs),
    /// Call setups per second (VoIP→VoIP or VoIP→PSTN), signalling only.
    Calls(calls::CallsArgs),
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Pop(a) => pop::pop(a),
        BenchCommand::Startup(a) => pop::startup(a),
        BenchCommand::Gateway(a) => gateway::gateway(a),
        BenchCommand::Calls(a) => calls::calls(a),
    }
}

/// Three decimals are plenty for milliseconds, MiB and seconds.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn report(json: bool, summary: String, value: Value) {
    if json {
        eprintln!("{summary}");
        println!("{value}");
    } else {
        println!("{summary}");
    }
}

/// An emulator in a child process; killed on drop if still running.
struct Emulator {
    child: Child,
    ready_file: PathBuf,
    /// What it logged (at `warn` and above) on stderr.
    log: Arc<LogTally>,
    log_reader: Option<std::thread::JoinHandle<()>>,
}

/// The emulator's stderr, read by a thread: counted, and passed on (the first lines of each kind).
#[derive(Default)]
struct LogTally {
    /// Lines of the gateway saying the call engine's queue was full ("event dropped").
    engine_events_dropped: AtomicU64,
    lines: AtomicU64,
}

/// Log lines passed on to this process's stderr before the rest are only counted.
const LOG_LINES_SHOWN: u64 = 5;

impl LogTally {
    fn read(self: Arc<Self>, stderr: impl std::io::Read) {
        use std::io::BufRead;
        let mut dropped_shown = false;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if line.contains("event dropped") {
                if !std::mem::replace(&mut dropped_shown, true) {
                    eprintln!("emulator: {line}");
                }
                self.engine_events_dropped.fetch_add(1, Ordering::Relaxed);
            } else if self.lines.fetch_add(1, Ordering::Relaxed) < LOG_LINES_SHOWN {
                eprintln!("emulator: {line}");
            }
        }
    }

    fn engine_events_dropped(&self) -> u64 {
        self.engine_events_dropped.load(Ordering::Relaxed)
    }

    /// Lines other than the dropped-event ones.
    fn other_lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }
}

impl Emulator {
    /// Starts one and waits for its ready-file. Returns it, the spawn-to-ready time and the
    /// ready-file's content.
    fn spawn(tag: &str) -> anyhow::Result<(Emulator, Duration, Value)> {
        Emulator::spawn_with(tag, None)
    }

    /// [`Emulator::spawn`] with `--config <file>` merged over the embedded defaults.
    fn spawn_with(tag: &str, config: Option<&Path>) -> anyhow::Result<(Emulator, Duration, Value)> {
        let ready_file = std::env::temp_dir().join(format!("alicom-emu-bench-{}-{tag}.json", std::process::id()));
        let _ = std::fs::remove_file(&ready_file);
        let exe = std::env::current_exe().context("cannot locate the alicom-emu executable")?;
        let started = Instant::now();
        let mut command = Command::new(exe);
        if let Some(path) = config {
            command.arg("--config").arg(path);
        }
        let child = command
            .arg("--ephemeral-ports")
            .arg("--ready-file")
            .arg(&ready_file)
            .env("ALICOM_EMU_SERVER__LOG_LEVEL", "warn")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the emulator")?;
        let mut emulator = Emulator { child, ready_file, log: Arc::default(), log_reader: None };
        if let Some(stderr) = emulator.child.stderr.take() {
            let log = emulator.log.clone();
            emulator.log_reader = Some(std::thread::spawn(move || log.read(stderr)));
        }
        // Polling every 0.5 ms costs the measurement at most that much.
        while !emulator.ready_file.exists() {
            if let Some(status) = emulator.child.try_wait()? {
                bail!("the emulator exited before it was ready ({status})");
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the emulator was not ready after 10 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let took = started.elapsed();
        let ready = serde_json::from_slice(&std::fs::read(&emulator.ready_file)?).context("unreadable ready-file")?;
        Ok((emulator, took, ready))
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Resident memory from /proc (Linux), MiB.
    fn rss_mib(&self) -> anyhow::Result<f64> {
        rss_mib(&self.pid()).context("cannot read the emulator's VmRSS from /proc")
    }

    /// [`Emulator::stop`] after a load run: a failed or unclean exit is a warning, since the
    /// measurements are already taken.
    fn stop_or_warn(&mut self) {
        match self.stop() {
            Ok(s) if !s.success() => eprintln!("warning: the emulator exited with {s} after SIGTERM"),
            Ok(_) => {}
            Err(e) => eprintln!("warning: {e:#}"),
        }
    }

    /// SIGTERM (through kill(1)), then up to 5 s for the exit status.
    fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let sent = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        if !sent.is_ok_and(|s| s.success()) {
            self.child.kill()?;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Everything it logged has been counted once its stderr is closed.
                if let Some(reader) = self.log_reader.take() {
                    let _ = reader.join();
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("the emulator did not exit within 5 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.ready_file);
    }
}

/// CPU seconds used so far by the server (when known), by this process, and by the machine.
#[derive(Clone, Copy)]
struct CpuReading {
    server: Option<f64>,
    client: Option<f64>,
    machine: Option<f64>,
}

/// CPU seconds used between two readings; `others` is what the rest of the machine used.
#[derive(Clone, Copy, Default)]
struct CpuUse {
    server: Option<f64>,
    client: Option<f64>,
    others: Option<f64>,
}

/// The load generator's own runtime, with `threads` workers.
fn client_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
}

fn cpu_pair(server_pid: Option<&str>) -> CpuReading {
    CpuReading { server: server_pid.and_then(cpu_secs), client: cpu_secs("self"), machine: machine_busy_secs() }
}

/// What was used between two [`cpu_pair`] readings.
fn cpu_delta(before: CpuReading, after: CpuReading) -> CpuUse {
    let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    let (server, client, machine) =
        (d(after.server, before.server), d(after.client, before.client), d(after.machine, before.machine));
    let others = machine.map(|m| (m - server.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0));
    CpuUse { server, client, others }
}

/// The `p`th percentile of sorted microsecond samples, in ms (0 when there are none).
fn percentile_ms(sorted_us: &[u32], p: usize) -> f64 {
    sorted_us
        .get((sorted_us.len() * p / 100).min(sorted_us.len().saturating_sub(1)))
        .map_or(0.0, |&us| f64::from(us) / 1000.0)
}

/// Microseconds since `t`, saturated to u32 (71 minutes).
fn micros_since(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// CPU microseconds per operation, when both are known.
fn per_op_us(cpu_secs: Option<f64>, ops: usize) -> Option<f64> {
    cpu_secs.filter(|_| ops > 0).map(|s| (s * 1e6 / ops as f64 * 10.0).round() / 10.0)
}

/// Raises the open-files soft limit to the hard limit (a spawned emulator inherits it).
/// Returns the new soft limit.
fn raise_nofile_limit() -> anyhow::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            bail!("setrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// A unique tag for ids and nonces of one run.
fn run_id() -> String {
    format!("{:x}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos())
}

/// `host:port` of an `http://` / `mqtt://` URL.
fn authority_of(url: &str) -> anyhow::Result<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    if !authority.contains(':') {
        bail!("no port in {url:?}");
    }
    Ok(authority.to_string())
}

/// A plain HTTP GET returning JSON (admin API).
async fn get_json(url: &str) -> anyhow::Result<Value> {
    let resp = reqwest::get(url).await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {url}: HTTP {status}");
    }
    Ok(resp.json().await?)
}

/// Where the load goes.
#[derive(Clone)]
struct Target {
    /// `host:port`, to connect to and for the Host header.
    authority: String,
    access_key_id: String,
    access_key_secret: String,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A signed RPC v1 GET: its origin-form URI (`/?...&Signature=...`).
fn signed(target: &Target, action_params: &[(&str, &str)], nonce: &str) -> anyhow::Result<Uri> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let timestamp = emu_pop::auth::iso8601(u64::try_from(now_ms).unwrap_or_default());
    let mut params: Vec<(&str, &str)> = vec![
        ("Format", "JSON"),
        ("Version", "2017-05-25"),
        ("AccessKeyId", &target.access_key_id),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("Timestamp", &timestamp),
    ];
    params.extend_from_slice(action_params);
    let signature = rpc_v1::sign(&target.access_key_secret, &rpc_v1::string_to_sign("GET", params.iter().copied()));
    params.push(("Signature", &signature));
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect();
    Ok(Uri::from_maybe_shared(Bytes::from(format!("/?{}", query.join("&"))))?)
}

async fn connect(authority: &str) -> anyhow::Result<Sender> {
    let stream =
        tokio::net::TcpStream::connect(authority).await.with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(sender: &mut Sender, host: &HeaderValue, uri: Uri) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let request = hyper::Request::get(uri).header(HOST, host.clone()).body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

type Sender = SendRequest<Empty<Bytes>>;

impl Target {
    /// The POP endpoint and default AccessKey of a spawned emulator, from its ready-file.
    fn from_ready(ready: &Value) -> anyhow::Result<Target> {
        let field =
            |k: &str| ready[k].as_str().map(str::to_string).with_context(|| format!("no {k} in the ready-file"));
        Ok(Target {
            authority: authority_of(&field("pop")?)?,
            access_key_id: field("access_key_id")?,
            access_key_secret: field("access_key_secret")?,
        })
    }

    /// One signed POP call on `sender`; the reply's JSON when it says `"Code":"OK"`.
    async fn call(&self, sender: &mut Sender, params: &[(&str, &str)], nonce: &str) -> anyhow::Result<Value> {
        let host = HeaderValue::from_str(&self.authority)?;
        let (status, body) = send(sender, &host, signed(self, params, nonce)?).await?;
        let reply: Value = serde_json::from_slice(&body).unwrap_or_default();
        if status != StatusCode::OK || reply["Code"] != "OK" {
            bail!("{params:?} failed: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(reply)
    }
}
