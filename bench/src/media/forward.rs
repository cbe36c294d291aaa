//! `forward` and `latency`: client legs running on their hubs, and the measured windows.

use super::*;

/// A hub's socket port and how to hand it legs.
pub(super) struct Hub {
    pub(super) port: u16,
    pub(super) legs: mpsc::UnboundedSender<(ClientLeg, LegPlan)>,
}

/// Client legs running (on `--client-threads` hubs, a thread each), and how to stop them.
pub(super) struct Running {
    pub(super) g: Arc<Global>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) hubs: Vec<Hub>,
    pub(super) threads: Vec<std::thread::JoinHandle<Vec<u32>>>,
    pub(super) next_hub: usize,
}

impl Running {
    pub(super) fn new(hubs: usize) -> anyhow::Result<Running> {
        let mut run = Running {
            g: Arc::new(Global::default()),
            stop: watch::channel(false).0,
            hubs: Vec::new(),
            threads: Vec::new(),
            next_hub: 0,
        };
        for _ in 0..hubs.max(1) {
            let std_socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
            std_socket.set_nonblocking(true)?;
            emu_media::udp::enable_pktinfo(&std_socket)?;
            emu_media::udp::set_buffer_sizes(&std_socket, 4 << 20, 4 << 20);
            force_recv_buffer(&std_socket, 32 << 20);
            let port = std_socket.local_addr()?.port();
            let (tx, rx) = mpsc::unbounded_channel();
            let (g, stop) = (run.g.clone(), run.stop.subscribe());
            // A thread of its own: the hub never waits while it has work, and the control
            // task's timers must not wait for it.
            run.threads.push(std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    let socket = UdpSocket::from_std(std_socket).expect("socket");
                    hub_task(socket, rx, g, stop).await
                })
            }));
            run.hubs.push(Hub { port, legs: tx });
        }
        Ok(run)
    }

    /// The hub the next leg goes to (round robin).
    pub(super) fn pick(&mut self) -> usize {
        self.next_hub = (self.next_hub + 1) % self.hubs.len();
        self.next_hub
    }

    pub(super) fn port(&self, hub: usize) -> u16 {
        self.hubs[hub].port
    }

    pub(super) fn spawn(&mut self, hub: usize, leg: ClientLeg, plan: LegPlan) {
        let _ = self.hubs[hub].legs.send((leg, plan));
    }

    /// Waits until `n` legs have connected or failed; a few failed DTLS handshakes (out of
    /// hundreds started at once) are reported, not fatal.
    pub(super) async fn wait_connected(&self, n: u64, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let (ok, failed) = (self.g.connected.load(Ordering::Relaxed), self.g.errors.load(Ordering::Relaxed));
            if ok >= n {
                return Ok(());
            }
            if ok + failed >= n || Instant::now() > deadline {
                if failed * 100 > n || Instant::now() > deadline {
                    bail!("only {ok} of {n} legs connected ({failed} failed)");
                }
                eprintln!("warning: {failed} of {n} legs failed to connect; going on with {ok}");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Legs connected or failed.
    pub(super) fn settled(&self) -> u64 {
        self.g.connected.load(Ordering::Relaxed) + self.g.errors.load(Ordering::Relaxed)
    }

    pub(super) fn counts(&self) -> (u64, u64) {
        (self.g.tx.load(Ordering::Relaxed), self.g.rx.load(Ordering::Relaxed))
    }

    pub(super) async fn finish(self) -> Vec<u32> {
        let _ = self.stop.send(true);
        let threads = self.threads;
        tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for t in threads {
                if let Ok(v) = t.join() {
                    all.extend(v);
                }
            }
            all
        })
        .await
        .unwrap_or_default()
    }
}

pub(super) fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

pub(super) fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// forward / latency

pub(super) struct Forward {
    pub(super) summary: String,
    pub(super) value: Value,
    pub(super) lat: Vec<u32>,
}

pub(super) async fn forward(a: &Args) -> anyhow::Result<Forward> {
    let r = forward_run(a).await?;
    if a.json {
        eprintln!("{}", r.summary);
        println!("{}", r.value);
    } else {
        println!("{}", r.summary);
    }
    Ok(r)
}

pub(super) async fn forward_run(a: &Args) -> anyhow::Result<Forward> {
    let plan = LegPlan {
        codec: AudioCodec::Opus,
        pps: a.pps,
        payload: Arc::new(opus_payload(a.payload_bytes)),
        batch_rx: false,
        // Enough for the warm-up, the window and the reading of the counters after it.
        prebuild: if a.prebuilt { ((2.0 + a.seconds + 3.0) * a.pps).ceil() as usize } else { 0 },
        video: None,
        role: 0,
    };
    let mut srv = if a.direct { None } else { Some(ServerProc::spawn("forward", a.workers).await?) };
    let mut run = Running::new(a.client_threads)?;
    run.g.hold.store(a.prebuilt, Ordering::Relaxed);
    for c in 0..a.calls {
        let chan = format!("fwd-{c}");
        let (hx, hy) = (run.pick(), run.pick());
        let (x, y) = match &mut srv {
            Some(s) => {
                let x = server_leg(s, run.port(hx), &chan, "alice", "opus", false).await?;
                let y = server_leg(s, run.port(hy), &chan, "bob", "opus", false).await?;
                s.call(json!({"op": "bridge", "chan": chan, "a": {"device": "alice"}, "b": {"device": "bob"}, "record": false}))
                    .await?;
                (x, y)
            }
            None => direct_pair(run.port(hx), run.port(hy), false)?,
        };
        run.spawn(hx, x, plan.clone());
        run.spawn(hy, y, plan.clone());
    }
    let legs = 2 * a.calls as u64;
    run.wait_connected(legs, Duration::from_secs(if a.prebuilt { 300 } else { 60 })).await?;
    run.g.hold.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    let pid = srv.as_ref().map(|s| s.pid.clone());
    let t0 = match &mut srv {
        Some(s) => s.totals().await?,
        None => Totals::default(),
    };
    let ports = srv.as_ref().map(|s| s.ports.clone());
    let d0 = ports.as_deref().and_then(udp_socket_drops);
    let c0 = cpu_now(pid.as_deref());
    let (tx0, rx0) = run.counts();
    run.g.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
    run.g.measuring.store(false, Ordering::Relaxed);
    let (tx1, rx1) = run.counts();
    let c1 = cpu_now(pid.as_deref());
    let server_drops = d0.zip(ports.as_deref().and_then(udp_socket_drops)).map(|(x, y)| y - x).unwrap_or(0);
    let t1 = match &mut srv {
        Some(s) => s.totals().await?,
        None => Totals::default(),
    };
    let server_rss = pid.as_deref().and_then(rss_mib);
    let summary_json = match &mut srv {
        Some(s) => s.call(json!({"op": "summary"})).await?,
        None => Value::Null,
    };
    let errors = run.g.errors.load(Ordering::Relaxed);
    let (sampled, verified) = (run.g.sampled.load(Ordering::Relaxed), run.g.verified.load(Ordering::Relaxed));
    let mut lat = run.finish().await;
    if let Some(s) = srv {
        s.stop().await?;
    }
    lat.sort_unstable();
    let u = cpu_use(c0, c1);
    let secs = u.seconds;
    let (tx, rx) = (tx1 - tx0, rx1 - rx0);
    let forwarded = if a.direct { rx } else { t1.rtp_out - t0.rtp_out };
    let fwd_pps = forwarded as f64 / secs;
    let loss = if tx > 0 { 1.0 - rx as f64 / tx as f64 } else { 0.0 };
    let server_us = (u.server > 0.0 && forwarded > 0).then(|| u.server * 1e6 / forwarded as f64);
    let per_core = (u.server > 0.0).then(|| forwarded as f64 / u.server);
    let client_us = (rx > 0).then(|| u.client * 1e6 / rx as f64);
    let what = if a.direct { "direct (no server)" } else { "through the server" };
    let mut summary = format!(
        "forward {what}: {} calls × 2 legs × {} pps, Opus {} B: {} forwarded in {secs:.2} s = {fwd_pps:.0} pps; clients sent {tx}, received {rx} (loss {:.3} %)",
        a.calls,
        a.pps,
        plan.payload.len(),
        forwarded,
        loss * 100.0
    );
    if let (Some(us), Some(pc)) = (server_us, per_core) {
        summary.push_str(&format!(
            "; server CPU {:.2} s ({:.0} % of a core) = {us:.2} µs/forwarded packet = {pc:.0} forwarded pps per core",
            u.server,
            u.server / secs * 100.0
        ));
    }
    if let Some(us) = client_us {
        summary.push_str(&format!("; clients CPU {:.2} s = {us:.2} µs per packet received", u.client));
    }
    summary.push_str(&format!(
        "; rest of the machine {:.2} CPU-s; UDP drops (full receive buffer) on the server socket {server_drops}, all sockets {}",
        u.others, u.rcvbuf_errors,
    ));
    if a.prebuilt {
        summary.push_str(&format!(
            "; prebuilt: {} packets per leg made before the window, 1 in {SAMPLE} received decrypted by the clients: {verified} of {sampled} authentic (latency not measured)",
            plan.prebuild
        ));
    } else {
        summary.push_str(&format!(
            "; latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            pct(&lat, 99.9),
            pct(&lat, 100.0),
            lat.len()
        ));
    }
    if let Some(m) = server_rss {
        summary.push_str(&format!("; server RSS {m:.1} MiB"));
    }
    if errors > 0 {
        summary.push_str(&format!("; {errors} client legs failed"));
    }
    let value = json!({
        "mode": "forward", "direct": a.direct, "calls": a.calls, "pps_per_leg": a.pps, "payload_bytes": plan.payload.len(),
        "seconds": r3(secs), "forwarded": forwarded, "forwarded_pps": fwd_pps.round(), "client_tx": tx, "client_rx": rx,
        "loss": r3(loss), "server_cpu_s": r3(u.server), "server_cpu_us_per_forwarded": server_us.map(r3),
        "forwarded_pps_per_server_core": per_core.map(f64::round), "client_cpu_s": r3(u.client),
        "client_cpu_us_per_received": client_us.map(r3), "others_cpu_s": r3(u.others), "udp_rcvbuf_errors": u.rcvbuf_errors, "server_socket_drops": server_drops,
        "latency_ms": {"p50": pct(&lat, 50.0), "p99": pct(&lat, 99.0), "p999": pct(&lat, 99.9), "max": pct(&lat, 100.0), "samples": lat.len()},
        "server_rss_mib": server_rss.map(r3), "server_counters": summary_json["counters"], "client_errors": errors,
        "prebuilt": a.prebuilt, "prebuilt_per_leg": plan.prebuild, "sampled": sampled, "verified": verified,
    });
    Ok(Forward { summary, value, lat })
}

pub(super) async fn latency(a: &Args) -> anyhow::Result<()> {
    let base = forward_run(&Args { direct: true, ..a.clone() }).await?;
    if a.json {
        eprintln!("{}", base.summary)
    } else {
        println!("{}", base.summary)
    }
    let srv = forward_run(&Args { direct: false, ..a.clone() }).await?;
    if a.json {
        eprintln!("{}", srv.summary)
    } else {
        println!("{}", srv.summary)
    }
    let (b, s) = (&base.lat, &srv.lat);
    let summary = format!(
        "latency, {} calls × 2 legs × {} pps: direct p50 {:.3} / p99 {:.3} ms; through the server p50 {:.3} / p99 {:.3} ms; added p50 {:.3} ms, p99 {:.3} ms",
        a.calls,
        a.pps,
        pct(b, 50.0),
        pct(b, 99.0),
        pct(s, 50.0),
        pct(s, 99.0),
        pct(s, 50.0) - pct(b, 50.0),
        pct(s, 99.0) - pct(b, 99.0)
    );
    if a.json {
        eprintln!("{summary}");
        println!(
            "{}",
            json!({"mode": "latency", "direct": base.value, "server": srv.value,
                   "added_ms": {"p50": r3(pct(s, 50.0) - pct(b, 50.0)), "p99": r3(pct(s, 99.0) - pct(b, 99.0))}})
        );
    } else {
        println!("{summary}");
    }
    Ok(())
}
