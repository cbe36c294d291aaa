//! `bench pop` and `bench startup`: signed POP requests per second, start-up time and idle memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use hyper::header::HeaderValue;
use hyper::{StatusCode, Uri};
use serde_json::{Value, json};

use crate::common::{
    Emulator, Samples, Sender, Target, client_runtime, connect, contains, percentile_ms, report, round3, send, signed,
};
use crate::procstat::cpu_secs;

#[derive(Debug, Args)]
pub struct PopArgs {
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
pub struct StartupArgs {
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Print one JSON object instead of the summary line (which then goes to stderr).
    #[arg(long)]
    json: bool,
}

pub fn startup(args: StartupArgs) -> anyhow::Result<()> {
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

pub fn pop(args: PopArgs) -> anyhow::Result<()> {
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

    let runtime = client_runtime(args.client_threads)?;
    let server_pid = emulator.as_ref().map(|e| e.child.id().to_string());
    let result = runtime.block_on(load(&args, &target, server_pid.as_deref()))?;
    let server_rss = emulator.as_ref().and_then(|e| e.rss_mib().ok());
    if let Some(e) = &mut emulator {
        let status = e.stop()?;
        if !status.success() {
            eprintln!("warning: the emulator exited with {status} after SIGTERM");
        }
    }

    let mut latencies = result.samples.latencies_us;
    latencies.sort_unstable();
    let (requests, seconds) = (latencies.len(), result.seconds);
    let rps = requests as f64 / seconds;
    let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
    let mut summary = format!(
        "pop {}: {requests} ok, {} errors in {seconds:.2} s over {} connections ({} client threads): {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
        args.action, result.samples.errors, args.connections, args.client_threads
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
        "action": args.action, "requests": requests, "errors": result.samples.errors, "seconds": round3(seconds),
        "rps": rps.round(), "p50_ms": p50, "p99_ms": p99, "connections": args.connections,
        "client_threads": args.client_threads, "server_rss_mib": server_rss.map(round3),
        "server_cpu_us_per_request": server_us, "client_cpu_us_per_request": client_us,
    });
    report(args.json, summary, value);
    if let Some(e) = result.samples.first_error {
        eprintln!("first error: {e}");
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    samples: Samples,
    seconds: f64,
    /// CPU seconds the server process and this one used while the clock ran.
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
}

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
    let cpu = || (server_pid.and_then(cpu_secs), cpu_secs("self"));
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
    let samples = Samples::join(workers).await?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = cpu();
    Ok(Tally {
        samples,
        seconds,
        server_cpu: cpu_after.0.zip(cpu_before.0).map(|(after, before)| after - before),
        client_cpu: cpu_after.1.zip(cpu_before.1).map(|(after, before)| after - before),
    })
}

/// Sends requests on one connection until the deadline, one at a time.
async fn worker(
    mut sender: Sender,
    host: HeaderValue,
    authority: String,
    pool: Arc<Vec<Uri>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> anyhow::Result<Samples> {
    let mut tally = Samples::with_capacity(1 << 16);
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
            Ok((status, body)) => tally.error(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&body))),
            Err(e) => {
                tally.error(|| format!("{e:#}"));
                sender = connect(&authority).await?;
            }
        }
    }
}
