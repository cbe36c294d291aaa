//! `alicom-emu bench`: the load and start-up benchmarks of docs/benchmarks.md. Both run the
//! emulator as a separate process (this same executable) on ephemeral ports, so the numbers are
//! those of the real binary.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Signed POP requests per second over concurrent keep-alive HTTP/1.1 connections.
    Pop(PopArgs),
    /// Spawn-to-ready time and idle memory of fresh emulator processes.
    Startup(StartupArgs),
}

#[derive(Debug, Args)]
struct PopArgs {
    /// How long to send requests, after the connections are open and the requests signed.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Concurrent keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// GetRtcToken, VoipGetToken or AddRtcAccount.
    #[arg(long, default_value = "GetRtcToken")]
    action: String,
    /// POP origin of an already running emulator (default: start one on ephemeral ports).
    #[arg(long)]
    target: Option<String>,
    /// AccessKey for --target (a spawned emulator's comes from its ready-file).
    #[arg(long, default_value = "testAK", requires = "target")]
    access_key_id: String,
    #[arg(long, default_value = "testSecret", requires = "target")]
    access_key_secret: String,
    /// Distinct requests signed before the clock starts; the load cycles through them.
    #[arg(long, default_value_t = 100_000)]
    pool: usize,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Print one JSON object instead of the summary line (which then goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StartupArgs {
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Print one JSON object instead of the summary line (which then goes to stderr).
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Pop(a) => pop(a),
        BenchCommand::Startup(a) => startup(a),
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
}

impl Emulator {
    /// Starts one and waits for its ready-file. Returns it, the spawn-to-ready time and the
    /// ready-file's content.
    fn spawn(tag: &str) -> anyhow::Result<(Emulator, Duration, Value)> {
        let ready_file = std::env::temp_dir().join(format!("alicom-emu-bench-{}-{tag}.json", std::process::id()));
        let _ = std::fs::remove_file(&ready_file);
        let exe = std::env::current_exe().context("cannot locate the alicom-emu executable")?;
        let started = Instant::now();
        let child = Command::new(exe)
            .arg("--ephemeral-ports")
            .arg("--ready-file")
            .arg(&ready_file)
            .env("ALICOM_EMU_SERVER__LOG_LEVEL", "warn")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the emulator")?;
        let mut emulator = Emulator { child, ready_file };
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

    /// Resident memory from /proc (Linux), MiB.
    fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")?;
        Ok(kib / 1024.0)
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

/// User + system CPU time of a process (`self` or a pid) from /proc/<pid>/stat (Linux), seconds.
fn cpu_secs(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime
    // are fields 14 and 15, in USER_HZ ticks (100 per second on Linux).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).context("malformed /proc/<pid>/stat");
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn startup(args: StartupArgs) -> anyhow::Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (mut ready_ms, mut rss) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        let (mut emulator, took, _) = Emulator::spawn(&run.to_string())?;
        std::thread::sleep(Duration::from_secs(1));
        rss.push(emulator.rss_mib()?);
        let status = emulator.stop()?;
        if !status.success() {
            bail!("run {run}: the emulator exited with {status} after SIGTERM");
        }
        ready_ms.push(took.as_secs_f64() * 1000.0);
    }
    ready_ms.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    let (min, median, max) = (ready_ms[0], ready_ms[ready_ms.len() / 2], ready_ms[ready_ms.len() - 1]);
    let rss_median = rss[rss.len() / 2];
    let summary = format!(
        "startup: {} runs, spawn to ready min {min:.1} ms, median {median:.1} ms, max {max:.1} ms; idle RSS median {rss_median:.1} MiB",
        args.runs
    );
    let value = json!({
        "runs": args.runs, "ready_ms_min": round3(min), "ready_ms_median": round3(median),
        "ready_ms_max": round3(max), "idle_rss_mib_median": round3(rss_median),
    });
    report(args.json, summary, value);
    Ok(())
}

/// Where the load goes.
struct Target {
    /// `host:port`, to connect to and for the Host header.
    authority: String,
    access_key_id: String,
    access_key_secret: String,
}

fn pop(args: PopArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.pool == 0 || args.client_threads == 0 {
        bail!("--connections, --pool and --client-threads must be at least 1");
    }
    id_param(&args.action)?;
    let (mut emulator, origin, access_key_id, access_key_secret) = match &args.target {
        Some(url) => (None, url.clone(), args.access_key_id.clone(), args.access_key_secret.clone()),
        None => {
            let (emulator, _, ready) = Emulator::spawn("pop")?;
            let field =
                |k: &str| ready[k].as_str().map(str::to_string).with_context(|| format!("no {k} in the ready-file"));
            (Some(emulator), field("pop")?, field("access_key_id")?, field("access_key_secret")?)
        }
    };
    let uri: Uri = origin.parse().with_context(|| format!("invalid --target {origin:?}"))?;
    let authority = match (uri.host(), uri.port_u16()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => format!("{host}:80"),
        _ => bail!("--target needs a host: {origin:?}"),
    };
    let target = Target { authority, access_key_id, access_key_secret };

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.client_threads).enable_all().build()?;
    let server_pid = emulator.as_ref().map(|e| e.child.id().to_string());
    let result = runtime.block_on(load(&args, &target, server_pid.as_deref()))?;
    let server_rss = emulator.as_ref().and_then(|e| e.rss_mib().ok());
    if let Some(e) = &mut emulator {
        let status = e.stop()?;
        if !status.success() {
            eprintln!("warning: the emulator exited with {status} after SIGTERM");
        }
    }

    let mut latencies = result.latencies_us;
    latencies.sort_unstable();
    let pct_ms = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    let (requests, seconds) = (latencies.len(), result.seconds);
    let rps = requests as f64 / seconds;
    let (p50, p99) = (pct_ms(50), pct_ms(99));
    let mut summary = format!(
        "pop {}: {requests} ok, {} errors in {seconds:.2} s over {} connections ({} client threads): {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
        args.action, result.errors, args.connections, args.client_threads
    );
    // CPU time per request tells how much of the machine each side needed, whatever else ran.
    let per_request_us = |cpu: Option<f64>| cpu.filter(|_| requests > 0).map(|s| (s * 1e6 / requests as f64).round());
    let (server_us, client_us) = (per_request_us(result.server_cpu), per_request_us(result.client_cpu));
    if let Some(us) = server_us {
        summary.push_str(&format!(", server CPU {us} µs/request"));
    }
    if let Some(us) = client_us {
        summary.push_str(&format!(", load generator CPU {us} µs/request"));
    }
    if let Some(mib) = server_rss {
        summary.push_str(&format!(", server RSS {mib:.1} MiB"));
    }
    let value = json!({
        "action": args.action, "requests": requests, "errors": result.errors, "seconds": round3(seconds),
        "rps": rps.round(), "p50_ms": p50, "p99_ms": p99, "connections": args.connections,
        "client_threads": args.client_threads, "server_rss_mib": server_rss.map(round3),
        "server_cpu_us_per_request": server_us, "client_cpu_us_per_request": client_us,
    });
    report(args.json, summary, value);
    if let Some(e) = result.first_error {
        eprintln!("first error: {e}");
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    /// CPU seconds the server process and this one used while the clock ran.
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

type Sender = SendRequest<Empty<Bytes>>;

/// The parameter naming the RTC account for a benchmarked action (None: it needs no account).
fn id_param(action: &str) -> anyhow::Result<Option<&'static str>> {
    match action {
        "GetRtcToken" => Ok(Some("UserId")),
        "VoipGetToken" => Ok(Some("VoipId")),
        "AddRtcAccount" => Ok(None),
        _ => bail!("--action must be GetRtcToken, VoipGetToken or AddRtcAccount, not {action:?}"),
    }
}

async fn load(args: &PopArgs, target: &Target, server_pid: Option<&str>) -> anyhow::Result<Tally> {
    let host = HeaderValue::from_str(&target.authority)?;
    let mut setup = connect(&target.authority).await?;
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let action_params = match id_param(&args.action)? {
        None => vec![("DeviceId", "bench-dev".to_string())],
        Some(id_param) => {
            let add = signed(
                target,
                &[("Action", "AddRtcAccount"), ("DeviceId", "bench-dev")],
                &format!("bench-{run_id:x}-setup"),
            )?;
            let (status, body) = send(&mut setup, &host, add).await?;
            let reply: Value = serde_json::from_slice(&body).unwrap_or_default();
            let Some(rtc_id) = reply["Module"].as_str().filter(|_| status == StatusCode::OK && reply["Code"] == "OK")
            else {
                bail!("AddRtcAccount failed: HTTP {status}: {}", String::from_utf8_lossy(&body));
            };
            vec![(id_param, rtc_id.to_string()), ("DeviceId", "bench-dev".into()), ("IsCustomAccount", "false".into())]
        }
    };
    drop(setup);

    let mut params: Vec<(&str, &str)> = vec![("Action", args.action.as_str())];
    params.extend(action_params.iter().map(|(k, v)| (*k, v.as_str())));
    let pool = (0..args.pool)
        .map(|i| signed(target, &params, &format!("bench-{run_id:x}-{i}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pool = Arc::new(pool);

    let mut senders = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        senders.push(connect(&target.authority).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = || (server_pid.and_then(|pid| cpu_secs(pid).ok()), cpu_secs("self").ok());
    let cpu_before = cpu();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration_secs);
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let (host, pool, next, authority) = (host.clone(), pool.clone(), next.clone(), target.authority.clone());
            tokio::spawn(worker(sender, host, authority, pool, next, deadline))
        })
        .collect();
    let mut total = Tally::default();
    for w in workers {
        let t = w.await??;
        total.latencies_us.extend(t.latencies_us);
        total.errors += t.errors;
        total.first_error = total.first_error.or(t.first_error);
    }
    total.seconds = start.elapsed().as_secs_f64();
    let cpu_after = cpu();
    total.server_cpu = cpu_after.0.zip(cpu_before.0).map(|(after, before)| after - before);
    total.client_cpu = cpu_after.1.zip(cpu_before.1).map(|(after, before)| after - before);
    Ok(total)
}

/// Sends requests on one connection until the deadline, one at a time.
async fn worker(
    mut sender: Sender,
    host: HeaderValue,
    authority: String,
    pool: Arc<Vec<Uri>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally { latencies_us: Vec::with_capacity(1 << 16), ..Tally::default() };
    loop {
        let sent = Instant::now();
        if sent >= deadline {
            return Ok(tally);
        }
        let uri = pool[next.fetch_add(1, Ordering::Relaxed) % pool.len()].clone();
        match send(&mut sender, &host, uri).await {
            Ok((StatusCode::OK, body)) if contains(&body, br#""Code":"OK""#) => {
                tally.latencies_us.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            Ok((status, body)) => tally.error(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))),
            Err(e) => {
                tally.error(format!("{e:#}"));
                sender = connect(&authority).await?;
            }
        }
    }
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
