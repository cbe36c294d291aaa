//! What the end-to-end benchmarks share: the emulator as a child process (the release binary,
//! on ephemeral ports), CPU readings, a signed POP client over hyper, and account provisioning.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use emu_pop::signature::{pct, rpc_v1};
use emu_testkit::load_device::Account;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper::{StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::procstat::{cpu_secs, machine_busy_secs, rss_mib};

/// Three decimals are plenty for milliseconds, MiB and seconds.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(crate) fn report(json: bool, summary: String, value: Value) {
    if json {
        eprintln!("{summary}");
        println!("{value}");
    } else {
        println!("{summary}");
    }
}

/// The emulator binary the end-to-end benchmarks start: `$ALICOM_EMU_BIN`, or `alicom-emu` in
/// this executable's directory (`target/release/` when both were built with `--release`).
pub(crate) fn emulator_exe() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ALICOM_EMU_BIN") {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().context("cannot locate this executable")?;
    let exe = me.with_file_name(format!("alicom-emu{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        bail!(
            "no emulator binary at {} (build it with `cargo build --release -p alicom-emu`, or set ALICOM_EMU_BIN)",
            exe.display()
        );
    }
    Ok(exe)
}

/// An emulator in a child process; killed on drop if still running.
pub(crate) struct Emulator {
    pub(crate) child: Child,
    pub(crate) ready_file: PathBuf,
    /// What it logged (at `warn` and above) on stderr.
    pub(crate) log: Arc<LogTally>,
    pub(crate) log_reader: Option<std::thread::JoinHandle<()>>,
}

/// The emulator's stderr, read by a thread: counted, and passed on (the first lines of each kind).
#[derive(Default)]
pub(crate) struct LogTally {
    /// Lines of the gateway saying the call engine's queue was full ("event dropped").
    pub(crate) engine_events_dropped: AtomicU64,
    pub(crate) lines: AtomicU64,
    /// Of those, the lines logged at ERROR.
    pub(crate) error_lines: AtomicU64,
}

/// Log lines passed on to this process's stderr before the rest are only counted.
pub(crate) const LOG_LINES_SHOWN: u64 = 5;

impl LogTally {
    pub(crate) fn read(self: Arc<Self>, stderr: impl std::io::Read) {
        use std::io::BufRead;
        let mut dropped_shown = false;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if line.contains("event dropped") {
                if !std::mem::replace(&mut dropped_shown, true) {
                    eprintln!("emulator: {line}");
                }
                self.engine_events_dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                if line.contains("ERROR") {
                    self.error_lines.fetch_add(1, Ordering::Relaxed);
                }
                if self.lines.fetch_add(1, Ordering::Relaxed) < LOG_LINES_SHOWN {
                    eprintln!("emulator: {line}");
                }
            }
        }
    }

    pub(crate) fn engine_events_dropped(&self) -> u64 {
        self.engine_events_dropped.load(Ordering::Relaxed)
    }

    /// Lines logged at ERROR (other than the dropped-event ones).
    pub(crate) fn error_lines(&self) -> u64 {
        self.error_lines.load(Ordering::Relaxed)
    }

    /// Lines other than the dropped-event ones.
    pub(crate) fn other_lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }
}

impl Emulator {
    /// Starts one and waits for its ready-file. Returns it, the spawn-to-ready time and the
    /// ready-file's content.
    pub(crate) fn spawn(tag: &str) -> anyhow::Result<(Emulator, Duration, Value)> {
        Emulator::spawn_with(tag, None)
    }

    /// [`Emulator::spawn`] with `--config <file>` merged over the embedded defaults.
    pub(crate) fn spawn_with(tag: &str, config: Option<&Path>) -> anyhow::Result<(Emulator, Duration, Value)> {
        let ready_file = std::env::temp_dir().join(format!("alicom-emu-bench-{}-{tag}.json", std::process::id()));
        let _ = std::fs::remove_file(&ready_file);
        let exe = emulator_exe()?;
        let started = Instant::now();
        let mut command = Command::new(&exe);
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
            .with_context(|| format!("cannot start the emulator {}", exe.display()))?;
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

    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Resident memory from /proc (Linux), MiB.
    pub(crate) fn rss_mib(&self) -> anyhow::Result<f64> {
        rss_mib(&self.pid()).context("cannot read the emulator's VmRSS from /proc")
    }

    /// [`Emulator::stop`] after a load run: a failed or unclean exit is a warning, since the
    /// measurements are already taken.
    pub(crate) fn stop_or_warn(&mut self) {
        match self.stop() {
            Ok(s) if !s.success() => eprintln!("warning: the emulator exited with {s} after SIGTERM"),
            Ok(_) => {}
            Err(e) => eprintln!("warning: {e:#}"),
        }
    }

    /// SIGTERM (through kill(1)), then up to 5 s for the exit status.
    pub(crate) fn stop(&mut self) -> anyhow::Result<ExitStatus> {
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
pub(crate) struct CpuReading {
    pub(crate) server: Option<f64>,
    pub(crate) client: Option<f64>,
    pub(crate) machine: Option<f64>,
}

/// CPU seconds used between two readings; `others` is what the rest of the machine used.
#[derive(Clone, Copy, Default)]
pub(crate) struct CpuUse {
    pub(crate) server: Option<f64>,
    pub(crate) client: Option<f64>,
    pub(crate) others: Option<f64>,
}

/// The load generator's own runtime, with `threads` workers.
pub(crate) fn client_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
}

pub(crate) fn cpu_pair(server_pid: Option<&str>) -> CpuReading {
    CpuReading { server: server_pid.and_then(cpu_secs), client: cpu_secs("self"), machine: machine_busy_secs() }
}

/// What was used between two [`cpu_pair`] readings.
pub(crate) fn cpu_delta(before: CpuReading, after: CpuReading) -> CpuUse {
    let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    let (server, client, machine) =
        (d(after.server, before.server), d(after.client, before.client), d(after.machine, before.machine));
    let others = machine.map(|m| (m - server.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0));
    CpuUse { server, client, others }
}

/// The `p`th percentile of sorted microsecond samples, in ms (0 when there are none).
pub(crate) fn percentile_ms(sorted_us: &[u32], p: usize) -> f64 {
    sorted_us
        .get((sorted_us.len() * p / 100).min(sorted_us.len().saturating_sub(1)))
        .map_or(0.0, |&us| f64::from(us) / 1000.0)
}

/// Microseconds since `t`, saturated to u32 (71 minutes).
pub(crate) fn micros_since(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// CPU microseconds per operation, when both are known.
pub(crate) fn per_op_us(cpu_secs: Option<f64>, ops: usize) -> Option<f64> {
    cpu_secs.filter(|_| ops > 0).map(|s| (s * 1e6 / ops as f64 * 10.0).round() / 10.0)
}

/// Raises the open-files soft limit to the hard limit (a spawned emulator inherits it).
/// Returns the new soft limit.
pub(crate) fn raise_nofile_limit() -> anyhow::Result<u64> {
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
pub(crate) fn run_id() -> String {
    format!("{:x}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos())
}

/// `host:port` of an `http://` / `mqtt://` URL.
pub(crate) fn authority_of(url: &str) -> anyhow::Result<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    if !authority.contains(':') {
        bail!("no port in {url:?}");
    }
    Ok(authority.to_string())
}

/// A plain HTTP GET returning JSON (admin API).
pub(crate) async fn get_json(url: &str) -> anyhow::Result<Value> {
    let resp = reqwest::get(url).await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {url}: HTTP {status}");
    }
    Ok(resp.json().await?)
}

/// Where the load goes.
#[derive(Clone)]
pub(crate) struct Target {
    /// `host:port`, to connect to and for the Host header.
    pub(crate) authority: String,
    pub(crate) access_key_id: String,
    pub(crate) access_key_secret: String,
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A signed RPC v1 GET: its origin-form URI (`/?...&Signature=...`).
pub(crate) fn signed(target: &Target, action_params: &[(&str, &str)], nonce: &str) -> anyhow::Result<Uri> {
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

pub(crate) async fn connect(authority: &str) -> anyhow::Result<Sender> {
    let stream =
        tokio::net::TcpStream::connect(authority).await.with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

pub(crate) async fn send(sender: &mut Sender, host: &HeaderValue, uri: Uri) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let request = hyper::Request::get(uri).header(HOST, host.clone()).body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

pub(crate) type Sender = SendRequest<Empty<Bytes>>;

impl Target {
    /// The POP endpoint and default AccessKey of a spawned emulator, from its ready-file.
    pub(crate) fn from_ready(ready: &Value) -> anyhow::Result<Target> {
        let field =
            |k: &str| ready[k].as_str().map(str::to_string).with_context(|| format!("no {k} in the ready-file"));
        Ok(Target {
            authority: authority_of(&field("pop")?)?,
            access_key_id: field("access_key_id")?,
            access_key_secret: field("access_key_secret")?,
        })
    }

    /// One signed POP call on `sender`; the reply's JSON when it says `"Code":"OK"`.
    pub(crate) async fn call(
        &self,
        sender: &mut Sender,
        params: &[(&str, &str)],
        nonce: &str,
    ) -> anyhow::Result<Value> {
        let host = HeaderValue::from_str(&self.authority)?;
        let (status, body) = send(sender, &host, signed(self, params, nonce)?).await?;
        let reply: Value = serde_json::from_slice(&body).unwrap_or_default();
        if status != StatusCode::OK || reply["Code"] != "OK" {
            bail!("{params:?} failed: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(reply)
    }
}

/// Creates `n` accounts with a token each (signed AddRtcAccount + GetRtcToken, `DeviceId`
/// `bench-<tag>-<i>`) over `parallel` keep-alive HTTP connections. In index order.
pub(crate) async fn provision(target: &Target, n: usize, parallel: usize, tag: &str) -> anyhow::Result<Vec<Account>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel.clamp(1, n.max(1)) {
        let (next, target, tag) = (next.clone(), target.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(&target.authority).await?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(out);
                }
                let device_id = format!("bench-{tag}-{i}");
                let add = [("Action", "AddRtcAccount"), ("DeviceId", device_id.as_str())];
                let reply = target.call(&mut sender, &add, &format!("{tag}-a{i}")).await?;
                let rtc_id = reply["Module"].as_str().context("AddRtcAccount without Module")?.to_string();
                let get = [
                    ("Action", "GetRtcToken"),
                    ("UserId", rtc_id.as_str()),
                    ("DeviceId", device_id.as_str()),
                    ("IsCustomAccount", "false"),
                ];
                let reply = target.call(&mut sender, &get, &format!("{tag}-t{i}")).await?;
                let token: Value =
                    serde_json::from_str(reply["Module"].as_str().context("GetRtcToken without Module")?)?;
                out.push((i, Account::from_token(rtc_id, &token)?));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, a)| a).collect())
}

/// What one load worker counts: the latency of every request that succeeded, the errors and the
/// first of them.
#[derive(Debug, Default)]
pub struct Samples {
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Samples { latencies_us: Vec::with_capacity(n), ..Samples::default() }
    }

    pub fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        self.first_error.get_or_insert_with(what);
    }

    /// Awaits every worker and adds up what they counted.
    pub async fn join(workers: Vec<tokio::task::JoinHandle<anyhow::Result<Samples>>>) -> anyhow::Result<Samples> {
        let mut total = Samples::default();
        for w in workers {
            let t = w.await??;
            total.latencies_us.extend(t.latencies_us);
            total.errors += t.errors;
            total.first_error = total.first_error.or(t.first_error);
        }
        Ok(total)
    }
}
