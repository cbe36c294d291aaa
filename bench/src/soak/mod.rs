//! `alicom-bench soak`: mixed load for a configurable time against the release binary, sampling
//! the server's memory and CPU, with every receipt consumed and accounted for (issue 20).
//!
//! ```text
//! alicom-bench soak [--minutes 30] [--calls-per-sec 5] [--hold-secs 3] [--media-every 2]
//!     [--devices 200] [--pop-per-sec 10] [--sample-secs 10] [--warmup-pct 20] [--json]
//! ```
//!
//! The load ([`calls`], [`receipts`]):
//! * `--devices` idle SDK devices (the light [`emu_testkit::load_device::Conn`]), registered and
//!   heartbeating with `cs_register` every `--heartbeat-secs` (30, as the SDK does), plus the
//!   devices of the calls (testkit [`emu_testkit::Device`]s, heartbeating the same way).
//! * `--calls-per-sec` calls started at a steady pace, alternating VoIP→VoIP (a pair of devices;
//!   every other call the callee hangs up) and VoIP→PSTN (a phone per slot that rings
//!   `--ring-ms` and answers; recorded, as VoIP→PSTN calls are by default); every
//!   `--media-every`th call of each kind carries real media (str0m clients through the TURN relay
//!   sending a tone; each must receive audio). Each call is held `--hold-secs` and hung up.
//! * `--pop-per-sec` signed `GetRtcToken` requests, for accounts kept for that (a new token for a
//!   connected device's account would, after 16, retire the token it is using).
//! * An MNS consumer per receipt queue (`Alicom-Queue-<uid>-ArtcCdrReport` and
//!   `…-VoiceRecordReport`) with credentials from `QueryTokenForMnsQueue`, as the vendor's
//!   pullers: batch receive (long poll), batch delete of every message. Each call's CDR must
//!   arrive exactly once (by channelId), and each answered VoIP→PSTN call's recording report;
//!   the WAV file a report names is deleted from the run's recordings directory.
//!
//! Every `--sample-secs`: the server's RSS and CPU (`/proc`), the calls, receipts and errors so
//! far, and gauges from `/metrics` (devices online, calls active, media legs, TURN allocations,
//! retained bytes). The run fails (exit 2) unless: no errors, RSS after the warm-up (the first
//! `--warmup-pct` of the run) within 10 % (max / min), every call's CDR received exactly once,
//! every recording report exactly once, and nothing left behind (calls, legs, allocations).

mod calls;
mod receipts;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use crate::common::{Emulator, Target, client_runtime, report, round3, run_id};
use crate::procstat::{cpu_secs, machine_busy_secs, rss_mib};

#[derive(Debug, Args, Clone)]
pub struct SoakArgs {
    /// How long the load runs.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Calls started per second (half VoIP→VoIP, half VoIP→PSTN).
    #[arg(long, default_value_t = 5.0)]
    calls_per_sec: f64,
    /// How long each call stays up once answered.
    #[arg(long, default_value_t = 3.0)]
    hold_secs: f64,
    /// Every Nth call of each kind has media (1: every call, 0: none).
    #[arg(long, default_value_t = 2)]
    media_every: u64,
    /// How long the PSTN phones ring before they answer.
    #[arg(long, default_value_t = 500)]
    ring_ms: u64,
    /// Idle registered devices besides the calls' devices.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// cs_register heartbeat period of every device.
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u64,
    /// Signed GetRtcToken requests per second.
    #[arg(long, default_value_t = 10.0)]
    pop_per_sec: f64,
    /// How often the server's RSS and CPU are sampled.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// The share of the run (percent) before RSS must stay flat.
    #[arg(long, default_value_t = 20.0)]
    warmup_pct: f64,
    /// RSS after the warm-up may vary by this much (percent of its minimum).
    #[arg(long, default_value_t = 10.0)]
    max_rss_drift_pct: f64,
    /// Print one JSON object (samples and summary) instead of the summary.
    #[arg(long)]
    json: bool,
}

/// What the load counts, shared by its tasks.
#[derive(Default)]
pub(crate) struct Tally {
    /// Calls completed by kind: VoIP, VoIP with media, PSTN, PSTN with media.
    pub(crate) calls_ok: [AtomicU64; 4],
    pub(crate) calls_failed: AtomicU64,
    /// Ticks of the pacer that found no free slot (the load fell behind).
    pub(crate) skipped: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) pop_ok: AtomicU64,
    pub(crate) mns_received: AtomicU64,
    pub(crate) mns_deleted: AtomicU64,
    /// Messages received with a DequeueCount above 1 (delivered again).
    pub(crate) redelivered: AtomicU64,
    pub(crate) recording_files_deleted: AtomicU64,
    pub(crate) recording_bytes_deleted: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) first_errors: Mutex<Vec<String>>,
    /// channelIds of the calls started (a CDR each), and of the answered VoIP→PSTN calls (a
    /// recording report each).
    pub(crate) expected_cdrs: Mutex<HashSet<String>>,
    pub(crate) expected_recordings: Mutex<HashSet<String>>,
    /// Receipts received, per channelId.
    pub(crate) cdrs: Mutex<HashMap<String, u32>>,
    pub(crate) recordings: Mutex<HashMap<String, u32>>,
}

/// Errors shown in full (the rest are counted).
const ERRORS_KEPT: usize = 10;

impl Tally {
    pub(crate) fn error(&self, what: String) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < ERRORS_KEPT as u64 {
            eprintln!("soak error: {what}");
            self.first_errors.lock().expect("tally").push(what);
        }
    }

    fn calls_ok(&self) -> u64 {
        self.calls_ok.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Every expected receipt arrived.
    fn receipts_complete(&self) -> bool {
        let cdrs = self.cdrs.lock().expect("tally");
        let recs = self.recordings.lock().expect("tally");
        self.expected_cdrs.lock().expect("tally").iter().all(|c| cdrs.contains_key(c))
            && self.expected_recordings.lock().expect("tally").iter().all(|c| recs.contains_key(c))
    }
}

/// Expected vs received receipts of one kind.
#[derive(Serialize, Default, Debug)]
struct Accounting {
    expected: usize,
    received: usize,
    missing: usize,
    duplicates: usize,
    unexpected: usize,
}

fn account(expected: &HashSet<String>, received: &HashMap<String, u32>) -> Accounting {
    Accounting {
        expected: expected.len(),
        received: received.values().map(|&n| n as usize).sum(),
        missing: expected.iter().filter(|c| !received.contains_key(*c)).count(),
        duplicates: received.values().filter(|&&n| n > 1).count(),
        unexpected: received.keys().filter(|c| !expected.contains(*c)).count(),
    }
}

#[derive(Serialize, Clone, Debug)]
struct Sample {
    secs: u64,
    rss_mib: f64,
    /// Server CPU over the interval, % of one core.
    server_cpu_pct: f64,
    client_cpu_pct: f64,
    other_cpu_pct: f64,
    calls_ok: u64,
    calls_failed: u64,
    errors: u64,
    cdrs: usize,
    recordings: usize,
    pop_ok: u64,
    devices_online: f64,
    calls_active: f64,
    media_legs: f64,
    turn_allocations: f64,
    retained_mib: f64,
    /// What each retained collection weighs (`alicom_retained_bytes`).
    retained_kib: BTreeMap<String, u64>,
    retained_items: BTreeMap<String, u64>,
}

/// The run's configuration of the emulator: a real clock, phones that answer, recordings into a
/// directory of this run (emptied as their reports are consumed); retention as shipped.
fn config(ring_ms: u64, recordings: &std::path::Path) -> String {
    format!(
        "[clock]\nmode = \"real\"\n\n[pstn]\ndefault_behavior = {{ ring_ms = {ring_ms}, then = \"answer\" }}\n\n\
         [media]\nrecordings_dir = {}\n",
        toml::Value::String(recordings.display().to_string())
    )
}

pub fn soak(args: SoakArgs) -> anyhow::Result<()> {
    if args.calls_per_sec <= 0.0 || args.minutes <= 0.0 || args.sample_secs == 0 || args.heartbeat_secs == 0 {
        bail!("--minutes, --calls-per-sec, --sample-secs and --heartbeat-secs must be positive");
    }
    crate::common::raise_nofile_limit()?;
    let dir = std::env::temp_dir().join(format!("alicom-soak-{}", std::process::id()));
    let recordings = dir.join("recordings");
    std::fs::create_dir_all(&recordings)?;
    let config_file = dir.join("soak.toml");
    std::fs::write(&config_file, config(args.ring_ms, &recordings))?;
    let spawned = Emulator::spawn_with("soak", Some(&config_file));
    let result = spawned.and_then(|(mut emulator, _, ready)| {
        let runtime = client_runtime(2)?;
        let r = runtime.block_on(run(&args, &emulator, &ready, recordings.clone()));
        emulator.stop_or_warn();
        runtime.shutdown_timeout(Duration::from_secs(2));
        r.map(|r| (r, emulator.log.error_lines(), emulator.log.other_lines()))
    });
    let left_on_disk = dir_bytes(&recordings);
    let _ = std::fs::remove_dir_all(&dir);
    let (r, log_errors, log_lines) = result?;
    finish(&args, r, log_errors, log_lines, left_on_disk)
}

fn dir_bytes(dir: &std::path::Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .map_or((0, 0), |d| d.flatten().fold((0, 0), |(n, b), e| (n + 1, b + e.metadata().map_or(0, |m| m.len()))))
}

/// What a run measured, before the verdict.
struct Outcome {
    samples: Vec<Sample>,
    tally: Arc<Tally>,
    seconds: f64,
    devices: usize,
    /// Devices online before the run's registered.
    baseline: f64,
    /// Gauges read once everything stopped: devices online, calls active, media legs, TURN.
    end: [f64; 4],
    pool_sizes: (usize, usize),
}

async fn run(args: &SoakArgs, emulator: &Emulator, ready: &Value, recordings: PathBuf) -> anyhow::Result<Outcome> {
    let field = |k: &str| ready[k].as_str().map(str::to_string).with_context(|| format!("no {k} in the ready-file"));
    let (admin, mqtt, mns, uid) = (field("admin")?, field("mqtt_tcp")?, field("mns")?, field("uid")?);
    let target = Target::from_ready(ready)?;
    let pop = emu_testkit::PopClient::new(&field("pop")?, &target.access_key_id, &target.access_key_secret);
    let tag = run_id();
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = Duration::from_secs(args.heartbeat_secs);

    let pid = emulator.pid();
    // Devices online before ours (the configured virtual devices).
    let baseline = Sampler::new(&pid, &admin, Instant::now()).gauges().await[0];
    // Devices: idle ones, the calls' ones, and accounts for the POP load.
    let idle = calls::idle_devices(&target, &mqtt, args.devices, &tag).await?;
    let per_kind = args.calls_per_sec / 2.0;
    let pool_size = (per_kind * (args.hold_secs + 5.0)).ceil() as usize + 2;
    let pools = Arc::new(calls::Pools::new(&pop, &mqtt, pool_size, &tag).await?);
    let devices = idle.len() + pool_size * 3;
    let pop_tag = format!("{tag}-pop");
    let pop_accounts = crate::common::provision(&target, 20, 4, &pop_tag).await?;
    eprintln!(
        "soak: {devices} devices registered ({} idle, {pool_size} VoIP pairs, {pool_size} PSTN callers); {} calls/s for {} min",
        idle.len(),
        args.calls_per_sec,
        args.minutes
    );

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(calls::heartbeat_idle(idle, heartbeat, tally.clone(), stop.clone())));
    tasks.push(tokio::spawn(pools.clone().heartbeat(heartbeat, tally.clone(), stop.clone())));
    tasks.push(tokio::spawn(calls::pop_load(
        target.clone(),
        pop_accounts,
        pop_tag,
        args.pop_per_sec,
        tally.clone(),
        stop.clone(),
    )));
    let consumers_stop = Arc::new(AtomicBool::new(false));
    for message_type in ["ArtcCdrReport", "VoiceRecordReport"] {
        let c = receipts::Consumer::new(&mns, target.clone(), &uid, message_type, recordings.clone(), tally.clone())?;
        tasks.push(tokio::spawn(c.run(consumers_stop.clone())));
    }

    let start = Instant::now();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let plan = calls::Plan {
        tag: tag.clone(),
        calls_per_sec: args.calls_per_sec,
        hold: Duration::from_secs_f64(args.hold_secs),
        media_every: args.media_every,
    };
    let pacer = tokio::spawn(pools.clone().pace(plan, start + duration, tally.clone()));

    let mut sampler = Sampler::new(&pid, &admin, start);
    let mut samples = Vec::new();
    let every = Duration::from_secs(args.sample_secs);
    let mut next = start + every;
    while next <= start + duration {
        tokio::time::sleep_until(next.into()).await;
        let s = sampler.sample(&tally).await;
        eprintln!("{}", line(&s));
        samples.push(s);
        next += every;
    }
    // Calls in progress finish, then the receipts of every call are waited for (60 s at most).
    pacer.await?;
    pools.wait_idle(Duration::from_secs(30)).await;
    let seconds = start.elapsed().as_secs_f64();
    let drain_until = Instant::now() + Duration::from_secs(60);
    while !tally.receipts_complete() && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A duplicate would come right after: give it a moment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    consumers_stop.store(true, Ordering::Relaxed);
    let s = sampler.sample(&tally).await;
    eprintln!("{} (end)", line(&s));
    samples.push(s);
    let end = sampler.gauges().await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    Ok(Outcome { samples, tally, seconds, devices, baseline, end, pool_sizes: (pool_size, pool_size) })
}

fn line(s: &Sample) -> String {
    format!(
        "[{:>5} s] RSS {:.1} MiB, server CPU {:.1} %, load generator {:.1} %, others {:.1} %; calls {} ok, {} failed, {} active; \
         CDRs {}, recordings {}, POP {}; devices online {}, media legs {}, TURN {}, retained {:.1} MiB; errors {}",
        s.secs,
        s.rss_mib,
        s.server_cpu_pct,
        s.client_cpu_pct,
        s.other_cpu_pct,
        s.calls_ok,
        s.calls_failed,
        s.calls_active,
        s.cdrs,
        s.recordings,
        s.pop_ok,
        s.devices_online,
        s.media_legs,
        s.turn_allocations,
        s.retained_mib,
        s.errors
    )
}

/// Reads `/proc` and `/metrics` of the emulator.
struct Sampler {
    pid: String,
    metrics_url: String,
    http: reqwest::Client,
    start: Instant,
    last: (Instant, Option<f64>, Option<f64>, Option<f64>),
}

impl Sampler {
    fn new(pid: &str, admin: &str, start: Instant) -> Sampler {
        let last = (start, cpu_secs(pid), cpu_secs("self"), machine_busy_secs());
        Sampler {
            pid: pid.to_string(),
            metrics_url: format!("{admin}/metrics"),
            http: reqwest::Client::new(),
            start,
            last,
        }
    }

    async fn metrics(&self) -> String {
        match self.http.get(&self.metrics_url).timeout(Duration::from_secs(5)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Devices online, calls active, media legs, TURN allocations.
    async fn gauges(&self) -> [f64; 4] {
        let m = self.metrics().await;
        [
            metric(&m, "alicom_devices", "state=\"online\""),
            metric(&m, "alicom_calls_active", ""),
            metric(&m, "alicom_media_legs", "state=\"all\""),
            metric(&m, "alicom_turn_allocations", ""),
        ]
    }

    async fn sample(&mut self, tally: &Tally) -> Sample {
        let now = (Instant::now(), cpu_secs(&self.pid), cpu_secs("self"), machine_busy_secs());
        let dt = now.0.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let pct = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or(f64::NAN, |(a, b)| (a - b) * 100.0 / dt);
        let (server, client) = (pct(now.1, self.last.1), pct(now.2, self.last.2));
        let others = (pct(now.3, self.last.3) - server - client).max(0.0);
        self.last = now;
        let m = self.metrics().await;
        let retained = metric(&m, "alicom_retained_bytes", "");
        let by_collection = |prefix: &str| {
            m.lines()
                .filter(|l| l.starts_with(prefix))
                .map(|l| {
                    let name = l.split('"').nth(1).unwrap_or_default().to_string();
                    (name, l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()).unwrap_or(0.0))
                })
                .collect::<BTreeMap<String, f64>>()
        };
        let kib = by_collection("alicom_retained_bytes{");
        let retained_kib = kib.into_iter().map(|(k, v)| (k, (v / 1024.0).round() as u64)).collect();
        let retained_items = by_collection("alicom_retained_items{").into_iter().map(|(k, v)| (k, v as u64)).collect();
        Sample {
            secs: self.start.elapsed().as_secs_f64().round() as u64,
            rss_mib: round3(rss_mib(&self.pid).unwrap_or(f64::NAN)),
            server_cpu_pct: round1(server),
            client_cpu_pct: round1(client),
            other_cpu_pct: round1(others),
            calls_ok: tally.calls_ok(),
            calls_failed: tally.calls_failed.load(Ordering::Relaxed),
            errors: tally.errors.load(Ordering::Relaxed),
            cdrs: tally.cdrs.lock().expect("tally").values().map(|&n| n as usize).sum(),
            recordings: tally.recordings.lock().expect("tally").values().map(|&n| n as usize).sum(),
            pop_ok: tally.pop_ok.load(Ordering::Relaxed),
            devices_online: metric(&m, "alicom_devices", "state=\"online\""),
            calls_active: metric(&m, "alicom_calls_active", ""),
            media_legs: metric(&m, "alicom_media_legs", "state=\"all\""),
            turn_allocations: metric(&m, "alicom_turn_allocations", ""),
            retained_mib: round3(retained / 1_048_576.0),
            retained_kib,
            retained_items,
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The sum of the samples of `name` whose labels contain `labels` (Prometheus text format).
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (n, rest) = key.split_once('{').map_or((key, ""), |(n, r)| (n, r));
            (n == name && rest.contains(labels)).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

fn finish(
    args: &SoakArgs,
    r: Outcome,
    log_errors: u64,
    log_lines: u64,
    left_on_disk: (usize, u64),
) -> anyhow::Result<()> {
    let t = &r.tally;
    let warmup_secs = args.minutes * 60.0 * args.warmup_pct / 100.0;
    let after: Vec<&Sample> = r.samples.iter().filter(|s| s.secs as f64 >= warmup_secs).collect();
    let rss = |f: fn(f64, f64) -> f64| after.iter().map(|s| s.rss_mib).reduce(f).unwrap_or(f64::NAN);
    let (rss_min, rss_max) = (rss(f64::min), rss(f64::max));
    let drift_pct = round1((rss_max - rss_min) * 100.0 / rss_min);
    let cpu_after = after.iter().map(|s| s.server_cpu_pct).sum::<f64>() / after.len().max(1) as f64;
    let cdrs = account(&t.expected_cdrs.lock().expect("tally"), &t.cdrs.lock().expect("tally"));
    let recs = account(&t.expected_recordings.lock().expect("tally"), &t.recordings.lock().expect("tally"));
    let ok: Vec<u64> = t.calls_ok.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let errors = t.errors.load(Ordering::Relaxed) + log_errors;
    let [online, active, legs, turn] = r.end;
    let mut missed = Vec::new();
    if errors > 0 {
        missed.push(format!("{errors} errors"));
    }
    if after.is_empty() || drift_pct.is_nan() || drift_pct > args.max_rss_drift_pct {
        missed.push(format!("RSS after warm-up varied {drift_pct} % (limit {} %)", args.max_rss_drift_pct));
    }
    for (what, a) in [("CDRs", &cdrs), ("recording reports", &recs)] {
        if a.missing + a.duplicates + a.unexpected > 0 || a.expected == 0 {
            missed.push(format!("{what}: {a:?}"));
        }
    }
    let online = online - r.baseline;
    let min_online = r.samples.iter().map(|s| s.devices_online).fold(f64::INFINITY, f64::min) - r.baseline;
    if min_online < r.devices as f64 {
        missed.push(format!("only {min_online} of {} devices online at one sample", r.devices));
    }
    if active + legs + turn > 0.0 || online != r.devices as f64 {
        missed.push(format!(
            "at the end {online} of {} devices online, {active} calls active, {legs} media legs, {turn} TURN allocations",
            r.devices
        ));
    }
    let mut summary = format!(
        "soak: {:.0} s, {} calls completed (VoIP {} + {} with media, PSTN {} + {} with media), {} failed, {} not started (no free slot); \
         {} heartbeats, {} POP GetRtcToken OK, MNS {} received / {} deleted ({} redelivered)",
        r.seconds,
        t.calls_ok(),
        ok[0],
        ok[1],
        ok[2],
        ok[3],
        t.calls_failed.load(Ordering::Relaxed),
        t.skipped.load(Ordering::Relaxed),
        t.heartbeats.load(Ordering::Relaxed),
        t.pop_ok.load(Ordering::Relaxed),
        t.mns_received.load(Ordering::Relaxed),
        t.mns_deleted.load(Ordering::Relaxed),
        t.redelivered.load(Ordering::Relaxed),
    );
    let _ = write!(
        summary,
        "\n  RSS after the first {:.0} s: min {rss_min:.1} MiB, max {rss_max:.1} MiB, drift {drift_pct} %; server CPU {cpu_after:.1} % of a core on average",
        warmup_secs
    );
    let _ = write!(
        summary,
        "\n  CDRs: {} expected, {} received, {} missing, {} duplicated, {} unexpected; recording reports: {} expected, {} received, {} missing, {} duplicated, {} unexpected; {} WAV files ({:.1} MiB) deleted, {} left",
        cdrs.expected,
        cdrs.received,
        cdrs.missing,
        cdrs.duplicates,
        cdrs.unexpected,
        recs.expected,
        recs.received,
        recs.missing,
        recs.duplicates,
        recs.unexpected,
        t.recording_files_deleted.load(Ordering::Relaxed),
        t.recording_bytes_deleted.load(Ordering::Relaxed) as f64 / 1_048_576.0,
        left_on_disk.0,
    );
    let _ = write!(
        summary,
        "\n  errors: {} (load) + {log_errors} emulator ERROR lines; {log_lines} emulator warnings; at the end: {online} of {} devices online, {active} calls active, {legs} media legs, {turn} TURN allocations",
        t.errors.load(Ordering::Relaxed),
        r.devices
    );
    if let Some(last) = r.samples.last() {
        let parts: Vec<String> = last
            .retained_kib
            .iter()
            .map(|(k, v)| format!("{k} {} / {v} KiB", last.retained_items.get(k).copied().unwrap_or_default()))
            .collect();
        let _ = write!(summary, "\n  retained at the end (items / KiB): {}", parts.join(", "));
    }
    let verdict =
        if missed.is_empty() { "goal met".to_string() } else { format!("goal MISSED: {}", missed.join("; ")) };
    let _ = write!(summary, "\n  {verdict}");
    let value = json!({
        "args": {"minutes": args.minutes, "calls_per_sec": args.calls_per_sec, "hold_secs": args.hold_secs,
                 "media_every": args.media_every, "ring_ms": args.ring_ms, "devices": args.devices,
                 "heartbeat_secs": args.heartbeat_secs, "pop_per_sec": args.pop_per_sec,
                 "sample_secs": args.sample_secs, "warmup_pct": args.warmup_pct},
        "seconds": round3(r.seconds), "devices": r.devices, "slots": {"voip_pairs": r.pool_sizes.0, "pstn": r.pool_sizes.1},
        "calls_ok": {"voip": ok[0], "voip_media": ok[1], "pstn": ok[2], "pstn_media": ok[3]},
        "calls_failed": t.calls_failed.load(Ordering::Relaxed), "calls_skipped": t.skipped.load(Ordering::Relaxed),
        "heartbeats": t.heartbeats.load(Ordering::Relaxed), "pop_ok": t.pop_ok.load(Ordering::Relaxed),
        "mns": {"received": t.mns_received.load(Ordering::Relaxed), "deleted": t.mns_deleted.load(Ordering::Relaxed),
                "redelivered": t.redelivered.load(Ordering::Relaxed)},
        "cdrs": cdrs, "recording_reports": recs,
        "recording_files": {"deleted": t.recording_files_deleted.load(Ordering::Relaxed),
                            "bytes_deleted": t.recording_bytes_deleted.load(Ordering::Relaxed),
                            "left": left_on_disk.0, "bytes_left": left_on_disk.1},
        "errors": t.errors.load(Ordering::Relaxed), "first_errors": t.first_errors.lock().expect("tally").clone(),
        "emulator_error_lines": log_errors, "emulator_warning_lines": log_lines,
        "rss_after_warmup": {"from_secs": warmup_secs, "min_mib": rss_min, "max_mib": rss_max, "drift_pct": drift_pct},
        "server_cpu_pct_after_warmup": round1(cpu_after),
        "end": {"devices_online": online, "calls_active": active, "media_legs": legs, "turn_allocations": turn},
        "goal_met": missed.is_empty(), "missed": missed, "samples": r.samples,
    });
    report(args.json, summary, value);
    if !missed.is_empty() {
        bail!("the soak goal was missed: {}", missed.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_samples() {
        let text = "# HELP x\nalicom_devices{state=\"online\"} 12\nalicom_devices{state=\"offline\"} 1\n\
                    alicom_calls_active 3\nalicom_calls_active_x 9\n";
        assert_eq!(metric(text, "alicom_devices", "state=\"online\""), 12.0);
        assert_eq!(metric(text, "alicom_devices", ""), 13.0);
        assert_eq!(metric(text, "alicom_calls_active", ""), 3.0);
        assert_eq!(metric(text, "nothing", ""), 0.0);
    }

    #[test]
    fn accounts_for_receipts() {
        let expected: HashSet<String> = ["a", "b", "c"].map(String::from).into();
        let received: HashMap<String, u32> = [("a".into(), 1), ("b".into(), 2), ("x".into(), 1)].into();
        let a = account(&expected, &received);
        assert_eq!((a.expected, a.received, a.missing, a.duplicates, a.unexpected), (3, 4, 1, 1, 1));
    }

    #[test]
    fn the_config_is_valid_toml() {
        let v: toml::Value = toml::from_str(&config(500, std::path::Path::new("/tmp/x \"y\""))).unwrap();
        assert_eq!(v["media"]["recordings_dir"].as_str(), Some("/tmp/x \"y\""));
        assert_eq!(v["pstn"]["default_behavior"]["ring_ms"].as_integer(), Some(500));
    }
}
