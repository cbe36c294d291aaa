//! `bench gateway`: many registered MQTT devices at once (set-up time, memory, idle CPU), then
//! request→ACK round trips per second over a few of them.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::watch;

use emu_testkit::load_device::{Account, Conn, Frame, scan_ack};

use crate::common::{
    CpuUse, Emulator, Samples, Target, authority_of, client_runtime, cpu_delta, cpu_pair, get_json, micros_since,
    per_op_us, percentile_ms, provision, raise_nofile_limit, report, round3, run_id,
};

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Devices to create, connect (MQTT over TCP) and register.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// How long the request→ACK load runs.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// How long every device only heartbeats before the load (CPU is measured over it).
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// `cs_register` heartbeat interval of every device (the SDK's is 30 s); staggered.
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u64,
    /// Registered devices (one connection each) that carry the request→ACK load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// The request of the load: cs_register (a heartbeat: the gateway alone) or reportStatus
    /// (ACKed by the gateway, then queued for the call engine, which ignores it outside a call).
    #[arg(long, default_value = "cs_register")]
    message: String,
    /// Devices set up concurrently (POP connections for the accounts; MQTT connects in flight).
    #[arg(long, default_value_t = 64)]
    setup_parallel: usize,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Print one JSON object instead of the summary (which then goes to stderr).
    #[arg(long)]
    json: bool,
}

pub fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    if args.devices == 0 || args.connections == 0 || args.window == 0 || args.setup_parallel == 0 {
        bail!("--devices, --connections, --window and --setup-parallel must be at least 1");
    }
    if args.connections > args.devices {
        bail!("--connections ({}) cannot exceed --devices ({})", args.connections, args.devices);
    }
    if !matches!(args.message.as_str(), "reportStatus" | "cs_register") {
        bail!("--message must be reportStatus or cs_register");
    }
    if args.client_threads == 0 || args.heartbeat_secs == 0 {
        bail!("--client-threads and --heartbeat-secs must be at least 1");
    }
    // Each side holds one socket per device; the emulator inherits the raised limit.
    let nofile = raise_nofile_limit()?;
    if args.devices as u64 + 256 > nofile {
        bail!("{} devices need more open files than the limit allows ({nofile}); raise `ulimit -Hn`", args.devices);
    }
    let (mut emulator, _, ready) = Emulator::spawn("gateway")?;
    let runtime = client_runtime(args.client_threads)?;
    let result = runtime.block_on(run(&args, &emulator, &ready));
    emulator.stop_or_warn();
    runtime.shutdown_timeout(Duration::from_secs(1));
    let r = result?;
    let (dropped, log_lines) = (emulator.log.engine_events_dropped(), emulator.log.other_lines());

    let n = args.devices;
    let per_device_kib = |from: f64, to: f64| (to - from) * 1024.0 / n as f64;
    let mut summary = format!(
        "gateway: {n} devices: accounts+tokens (signed AddRtcAccount+GetRtcToken) in {:.2} s, connect+register in {:.2} s ({:.0}/s, per device p50 {:.2} ms, p99 {:.2} ms); /admin/devices: {} registered, {} online, {} connections",
        r.provision_secs,
        r.connect_secs,
        n as f64 / r.connect_secs,
        r.connect_p50_ms,
        r.connect_p99_ms,
        r.admin_devices,
        r.admin_online,
        r.admin_connections,
    );
    let _ = write!(
        summary,
        "\n  emulator RSS: idle {:.1} MiB, with {n} accounts {:.1} MiB, {n} registered {:.1} MiB ({:.1} KiB per connected device, {:.1} KiB per device in all), after the load {:.1} MiB",
        r.rss_idle,
        r.rss_accounts,
        r.rss_registered,
        per_device_kib(r.rss_accounts, r.rss_registered),
        per_device_kib(r.rss_idle, r.rss_registered),
        r.rss_end,
    );
    let _ = write!(
        summary,
        "\n  idle heartbeats ({:.0} s, every device every {} s): {} cs_register ACKed ({:.0}/s), {} errors; emulator CPU {:.2} % of one core, load generator {:.2} %",
        r.idle_secs,
        args.heartbeat_secs,
        r.heartbeat_acks,
        r.heartbeat_acks as f64 / r.idle_secs,
        r.heartbeat_errors,
        r.idle_cpu.server.map_or(f64::NAN, |c| c / r.idle_secs * 100.0),
        r.idle_cpu.client.map_or(f64::NAN, |c| c / r.idle_secs * 100.0),
    );
    let mut lat = r.load.samples.latencies_us;
    lat.sort_unstable();
    let ok = lat.len();
    let rps = ok as f64 / r.load.seconds;
    let (p50, p99) = (percentile_ms(&lat, 50), percentile_ms(&lat, 99));
    let (server_us, client_us) = (per_op_us(r.load.cpu.server, ok), per_op_us(r.load.cpu.client, ok));
    let _ = write!(
        summary,
        "\n  {} → ACK over {} connections × {} in flight ({} client threads): {ok} round trips, {} errors in {:.2} s: {rps:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms, server CPU {} µs/round trip, load generator {} µs/round trip; the rest of the machine used {:.1} CPU-s",
        args.message,
        args.connections,
        args.window,
        args.client_threads,
        r.load.samples.errors,
        r.load.seconds,
        server_us.map_or("?".into(), |v| v.to_string()),
        client_us.map_or("?".into(), |v| v.to_string()),
        r.load.cpu.others.unwrap_or(f64::NAN),
    );
    let _ = write!(
        summary,
        "\n  emulator log: {dropped} \"call engine queue full … event dropped\" errors, {log_lines} other warnings/errors"
    );
    let value = json!({
        "devices": n, "provision_secs": round3(r.provision_secs), "connect_register_secs": round3(r.connect_secs),
        "connect_p50_ms": r.connect_p50_ms, "connect_p99_ms": r.connect_p99_ms,
        "admin_devices": r.admin_devices, "admin_online": r.admin_online, "admin_connections": r.admin_connections,
        "rss_idle_mib": round3(r.rss_idle), "rss_accounts_mib": round3(r.rss_accounts),
        "rss_registered_mib": round3(r.rss_registered), "rss_end_mib": round3(r.rss_end),
        "rss_kib_per_connected_device": round3(per_device_kib(r.rss_accounts, r.rss_registered)),
        "rss_kib_per_device": round3(per_device_kib(r.rss_idle, r.rss_registered)),
        "idle_secs": round3(r.idle_secs), "heartbeat_secs": args.heartbeat_secs,
        "heartbeat_acks": r.heartbeat_acks, "heartbeat_errors": r.heartbeat_errors,
        "idle_server_cpu_percent": r.idle_cpu.server.map(|c| round3(c / r.idle_secs * 100.0)),
        "idle_client_cpu_percent": r.idle_cpu.client.map(|c| round3(c / r.idle_secs * 100.0)),
        "message": args.message, "connections": args.connections, "window": args.window,
        "client_threads": args.client_threads, "round_trips": ok, "errors": r.load.samples.errors,
        "seconds": round3(r.load.seconds), "rps": rps.round(), "p50_ms": p50, "p99_ms": p99,
        "server_cpu_us_per_round_trip": server_us, "client_cpu_us_per_round_trip": client_us,
        "other_cpu_secs": r.load.cpu.others.map(round3), "engine_events_dropped": dropped, "emulator_log_lines": log_lines,
    });
    report(args.json, summary, value);
    if let Some(e) = r.load.samples.first_error.or(r.first_heartbeat_error) {
        eprintln!("first error: {e}");
    }
    if r.admin_devices != n || r.admin_online != n {
        bail!("/admin/devices lists {} devices ({} online), expected {n}", r.admin_devices, r.admin_online);
    }
    Ok(())
}

struct Outcome {
    provision_secs: f64,
    connect_secs: f64,
    connect_p50_ms: f64,
    connect_p99_ms: f64,
    rss_idle: f64,
    rss_accounts: f64,
    rss_registered: f64,
    rss_end: f64,
    idle_secs: f64,
    idle_cpu: CpuUse,
    heartbeat_acks: u64,
    heartbeat_errors: u64,
    first_heartbeat_error: Option<String>,
    admin_devices: usize,
    admin_online: usize,
    admin_connections: usize,
    load: LoadTally,
}

#[derive(Default)]
struct LoadTally {
    samples: Samples,
    seconds: f64,
    cpu: CpuUse,
}

/// What the heartbeating devices count, together.
#[derive(Default)]
struct HeartbeatStats {
    acks: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl HeartbeatStats {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(what);
    }
}

async fn run(args: &GatewayArgs, emulator: &Emulator, ready: &Value) -> anyhow::Result<Outcome> {
    let pid = emulator.pid();
    let target = Target::from_ready(ready)?;
    let mqtt = authority_of(ready["mqtt_tcp"].as_str().context("no mqtt_tcp in the ready-file")?)?;
    let admin = ready["admin"].as_str().context("no admin in the ready-file")?.to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = emulator.rss_mib()?;

    // (a) accounts and tokens, then connect + register every device.
    let started = Instant::now();
    let accounts = provision(&target, args.devices, args.setup_parallel, &run_id()).await?;
    let provision_secs = started.elapsed().as_secs_f64();
    let rss_accounts = emulator.rss_mib()?;

    let started = Instant::now();
    let (conns, mut setup_us) = connect_all(&mqtt, accounts, args.setup_parallel).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    setup_us.sort_unstable();
    let (connect_p50_ms, connect_p99_ms) = (percentile_ms(&setup_us, 50), percentile_ms(&setup_us, 99));

    // Every device heartbeats, staggered over the interval; the first `connections` are taken
    // back for the load afterwards, the others keep heartbeating through it.
    let stats = Arc::new(HeartbeatStats::default());
    let (stop_load_group, load_group) = watch::channel(false);
    let (stop_others, others) = watch::channel(false);
    let interval = Duration::from_secs(args.heartbeat_secs);
    let idle_start = tokio::time::Instant::now();
    let n = conns.len();
    let mut heartbeaters = Vec::with_capacity(n);
    for (i, c) in conns.into_iter().enumerate() {
        let first = idle_start + interval.mul_f64(i as f64 / n as f64);
        let stop = if i < args.connections { load_group.clone() } else { others.clone() };
        heartbeaters.push(tokio::spawn(heartbeat(c, first, interval, stop, stats.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_registered = emulator.rss_mib()?;
    let cpu_before = cpu_pair(Some(&pid));
    let acks_before = stats.acks.load(Ordering::Relaxed);
    let idle_clock = Instant::now();
    tokio::time::sleep_until(idle_start + Duration::from_secs(args.idle_secs)).await;
    let idle_cpu = cpu_delta(cpu_before, cpu_pair(Some(&pid)));
    let idle_secs = idle_clock.elapsed().as_secs_f64();
    let heartbeat_acks = stats.acks.load(Ordering::Relaxed) - acks_before;

    let devices = get_json(&format!("{admin}/admin/devices")).await?;
    // The SDK devices only: the default configuration's ready-made virtual devices are listed too.
    let mut list = devices["devices"].as_array().cloned().unwrap_or_default();
    list.retain(|d| d["connection"]["transport"] != "virtual");
    let admin_online = list.iter().filter(|d| d["online"] == true).count();
    let admin_connections = devices["connections"].as_u64().unwrap_or(0) as usize;
    let admin_devices = list.len();
    drop(list);

    // (b) request → ACK round trips over the first `connections` devices.
    let _ = stop_load_group.send(true);
    let mut load_conns = Vec::with_capacity(args.connections);
    let mut rest = heartbeaters.split_off(args.connections);
    for h in heartbeaters {
        load_conns.push(h.await??);
    }
    let load = load(args, load_conns, &pid).await?;
    let rss_end = emulator.rss_mib()?;
    let _ = stop_others.send(true);
    for h in rest.drain(..) {
        h.await??;
    }
    let heartbeat_errors = stats.errors.load(Ordering::Relaxed);
    let first_heartbeat_error = stats.first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(Outcome {
        provision_secs,
        connect_secs,
        connect_p50_ms,
        connect_p99_ms,
        rss_idle,
        rss_accounts,
        rss_registered,
        rss_end,
        idle_secs,
        idle_cpu,
        heartbeat_acks,
        heartbeat_errors,
        first_heartbeat_error,
        admin_devices,
        admin_online,
        admin_connections,
        load,
    })
}

/// Connects and registers every account, `parallel` at a time. Returns the connections in
/// account order and each device's connect+register time (µs).
async fn connect_all(mqtt: &str, accounts: Vec<Account>, parallel: usize) -> anyhow::Result<(Vec<Conn>, Vec<u32>)> {
    let n = accounts.len();
    let queue = Arc::new(Mutex::new(accounts.into_iter().enumerate().collect::<VecDeque<_>>()));
    let mut tasks = Vec::new();
    for _ in 0..parallel.clamp(1, n.max(1)) {
        let (queue, mqtt) = (queue.clone(), mqtt.to_string());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((i, account)) = next else { return anyhow::Ok(done) };
                let t = Instant::now();
                let mut c = Conn::open(&mqtt, account, 60).await.with_context(|| format!("device {i}"))?;
                c.register().await.with_context(|| format!("device {i}"))?;
                done.push((i, c, micros_since(t)));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_unstable_by_key(|(i, _, _)| *i);
    let times = all.iter().map(|(_, _, us)| *us).collect();
    Ok((all.into_iter().map(|(_, c, _)| c).collect(), times))
}

/// One idle device: `cs_register` every `interval` from `first`, counting the ACKs, until told
/// to stop; then hands its connection back.
async fn heartbeat(
    mut c: Conn,
    first: tokio::time::Instant,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    stats: Arc<HeartbeatStats>,
) -> anyhow::Result<Conn> {
    let mut next = first;
    let body = c.register_body();
    let mut id = String::new();
    loop {
        tokio::select! {
            r = c.read_more() => {
                r.with_context(|| format!("device {}", c.acct.rtc_id))?;
                while let Some(frame) = c.next_frame()? {
                    match frame {
                        Frame::Publish { payload, .. } => match scan_ack(&payload) {
                            Some((_, 200)) => {
                                stats.acks.fetch_add(1, Ordering::Relaxed);
                            }
                            Some((_, code)) => stats.error(format!("cs_register answered {code}")),
                            None => stats.error(format!("unexpected: {}", String::from_utf8_lossy(&payload))),
                        },
                        Frame::Other { kind: 13, .. } => {} // PINGRESP
                        Frame::Other { kind, .. } => stats.error(format!("unexpected MQTT packet type {kind}")),
                    }
                }
            }
            _ = tokio::time::sleep_until(next) => {
                c.seq += 1;
                id.clear();
                let _ = write!(id, "hb-{}-{}", c.acct.rtc_id, c.seq);
                c.push_request("cs_register", &id, &body);
                c.flush().await?;
                next += interval;
            }
            _ = stop.changed() => return Ok(c),
        }
    }
}

async fn load(args: &GatewayArgs, conns: Vec<Conn>, pid: &str) -> anyhow::Result<LoadTally> {
    let message: Arc<str> = args.message.as_str().into();
    let cpu_before = cpu_pair(Some(pid));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration_secs);
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(pipeline(c, i, message.clone(), args.window, deadline)))
        .collect();
    let samples = Samples::join(workers).await?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(LoadTally { samples, seconds, cpu: cpu_delta(cpu_before, cpu_pair(Some(pid))) })
}

/// Keeps `window` requests in flight on one connection until the deadline, then collects the
/// last ACKs. Requests are written in batches (one `write` per read of ACKs).
async fn pipeline(
    mut c: Conn,
    index: usize,
    message: Arc<str>,
    window: usize,
    deadline: Instant,
) -> anyhow::Result<Samples> {
    c.set_read_chunk(64 * 1024);
    let rtc = c.acct.rtc_id.clone();
    let body = match &*message {
        "cs_register" => c.register_body(),
        _ => format!(r#"{{"deviceId":"{rtc}","userId":"{rtc}","ip":"unknow","status":"online"}}"#),
    };
    let prefix = format!("L{index:x}-");
    let mut tally = Samples::with_capacity(1 << 16);
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::with_capacity(window);
    let mut seq = 0u64;
    let mut id = String::with_capacity(32);
    loop {
        let now = Instant::now();
        if now < deadline {
            while in_flight.len() < window {
                seq += 1;
                id.clear();
                let _ = write!(id, "{prefix}{seq}");
                c.push_request(&message, &id, &body);
                in_flight.push_back((seq, now));
            }
            c.flush().await?;
        } else if in_flight.is_empty() {
            return Ok(tally);
        }
        tokio::time::timeout(Duration::from_secs(5), c.read_more())
            .await
            .with_context(|| format!("connection {index}: no ACK within 5 s ({} in flight)", in_flight.len()))??;
        while let Some(frame) = c.next_frame()? {
            let Frame::Publish { payload, .. } = frame else { continue };
            let Some((rid, code)) = scan_ack(&payload) else {
                tally.error(|| format!("not an ACK: {}", String::from_utf8_lossy(&payload)));
                continue;
            };
            // A heartbeat sent just before the idle phase stopped may be answered now.
            if rid.starts_with(b"hb-") {
                continue;
            }
            let acked = rid
                .strip_prefix(prefix.as_bytes())
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .and_then(|s| in_flight.iter().position(|(q, _)| *q == s))
                .and_then(|at| in_flight.remove(at));
            match acked {
                Some((_, sent)) if code == 200 => tally.latencies_us.push(micros_since(sent)),
                Some(_) => tally.error(|| format!("{message} answered {code}")),
                None => tally.error(|| format!("ACK of an unknown request {rid:?}")),
            }
        }
    }
}
