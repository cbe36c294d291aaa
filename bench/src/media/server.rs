//! The media server process (`alicom-bench media --server`): the server and its JSON-line control
//! API over stdin/stdout, the parent's handle on it, and the /proc readings of a run.

use super::*;
use emu_core::media_signal::MediaSignal;

pub(super) fn server_main(recordings: PathBuf, workers: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let cfg = MediaConfig { turn_enabled: false, recordings_dir: recordings, workers, ..MediaConfig::default() };
        let clock = Clock::new(ClockConfig { mode: ClockMode::Real, scale: 1.0 });
        let (server, mut events) = MediaServer::start(cfg, clock).await?;
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut out = tokio::io::stdout();
        while let Some(line) = lines.next_line().await? {
            let req: Value = serde_json::from_str(&line)?;
            let reply = serve_op(&server, &req);
            out.write_all(format!("{reply}\n").as_bytes()).await?;
            out.flush().await?;
        }
        server.shutdown().await;
        anyhow::Ok(())
    })?;
    drop(rt);
    Ok(())
}

pub(super) fn endpoint(v: &Value) -> Endpoint {
    match v["phone"].as_str() {
        Some(n) => {
            Endpoint::Phone { number: n.into(), audio: Audio::ToneHz(v["tone"].as_u64().unwrap_or(1000) as u32) }
        }
        None => Endpoint::Device { rtc_id: v["device"].as_str().unwrap_or_default().into() },
    }
}

pub(super) fn serve_op(server: &MediaServer, req: &Value) -> Value {
    let s = |k: &str| req[k].as_str().unwrap_or_default().to_string();
    let (chan, rtc) = (s("chan"), s("rtc"));
    match req["op"].as_str().unwrap_or_default() {
        "join" => {
            let prefer = if req["prefer"] == "g711" { CodecPreference::G711 } else { CodecPreference::Opus };
            // `video`: a leg of a VoIP↔VoIP video call (its offered video line is answered).
            let options = LegOptions { prefer, video: req["video"].as_bool().unwrap_or(false) };
            let signal = json!({"api": "joinChannel", "data": {"channelId": chan}});
            server
                .join_with(&chan, "default", &rtc, &format!("uuid-{rtc}"), &MediaSignal::of(&signal), options)
                .to_json()
        }
        "video" => video_totals(server, req["prefix"].as_str().unwrap_or_default(), req["calls"].as_u64().unwrap_or(0)),
        "signal" => server
            .signal(&chan, &rtc, &format!("uuid-{rtc}"), "sdpCandidate", &MediaSignal::of(&req["signal"]))
            .map_or(Value::Null, |r| r.to_json()),
        "bridge" => {
            server.bridge(&chan, endpoint(&req["a"]), endpoint(&req["b"]), req["record"].as_bool().unwrap_or(false));
            json!({})
        }
        "release" => {
            json!({"recording": server.release(&chan).map(|r| json!({"file": r.file, "bytes": r.bytes, "durationMs": r.duration_ms}))})
        }
        "totals" => {
            // One short lock per worker (`summary`), not a `stats` per channel: asking for a
            // thousand channels one by one took most of a second under load, so the server's
            // counters covered a longer span than the clients' window.
            let s = server.summary();
            json!({"legs": s["legs"], "connected": s["connectedLegs"], "rtpIn": s["rtpPacketsIn"], "rtpOut": s["rtpPacketsOut"]})
        }
        "summary" => server.summary(),
        other => json!({"error": format!("unknown op {other:?}")}),
    }
}

/// The video statistics of the first `calls` channels `{prefix}{i}`, summed over their legs
/// (`MediaServer::stats` → `legs[].video`).
pub(super) fn video_totals(server: &MediaServer, prefix: &str, calls: u64) -> Value {
    const KEYS: [&str; 11] = [
        "packetsIn",
        "packetsOut",
        "bytesIn",
        "bytesOut",
        "framesIn",
        "framesOut",
        "keyframeRequestsIn",
        "keyframeRequestsOut",
        "dropped",
        "bitrateInBps",
        "bitrateOutBps",
    ];
    let mut sums = [0u64; KEYS.len()];
    let (mut legs, mut connected) = (0u64, 0u64);
    for i in 0..calls {
        let s = serde_json::to_value(server.stats(&format!("{prefix}{i}"))).unwrap_or_default();
        for leg in s["legs"].as_array().into_iter().flatten() {
            connected += u64::from(leg["state"] == "connected");
            let Some(v) = leg["video"].as_object() else { continue };
            legs += 1;
            for (k, sum) in KEYS.iter().zip(sums.iter_mut()) {
                *sum += v.get(*k).and_then(Value::as_u64).unwrap_or(0);
            }
        }
    }
    let mut out = json!({"videoLegs": legs, "connectedLegs": connected});
    for (k, sum) in KEYS.iter().zip(sums) {
        out[*k] = sum.into();
    }
    out
}

/// The server child process and its control pipe.
pub(super) struct ServerProc {
    pub(super) child: tokio::process::Child,
    pub(super) stdin: Option<tokio::process::ChildStdin>,
    pub(super) lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub(super) pid: String,
    pub(super) dir: PathBuf,
    /// The media port (all legs).
    /// The media ports (one per worker).
    pub(super) ports: Vec<u16>,
}

impl ServerProc {
    pub(super) async fn spawn(tag: &str, workers: usize) -> anyhow::Result<ServerProc> {
        let dir = std::env::temp_dir().join(format!("alicom-emu-media-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("media")
            .arg("--server")
            .arg("--recordings")
            .arg(&dir)
            .arg("--workers")
            .arg(workers.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the server process")?;
        let pid = child.id().context("no pid")?.to_string();
        let stdin = child.stdin.take().context("no stdin")?;
        let lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let mut p = ServerProc { child, stdin: Some(stdin), lines, pid, dir, ports: Vec::new() };
        let summary = p.call(json!({"op": "summary"})).await?;
        p.ports = summary["udpPorts"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).map(|v| v as u16).collect())
            .unwrap_or_default();
        if p.ports.is_empty() {
            bail!("no media port in {summary}");
        }
        Ok(p)
    }

    pub(super) async fn call(&mut self, req: Value) -> anyhow::Result<Value> {
        let stdin = self.stdin.as_mut().context("the server was stopped")?;
        stdin.write_all(format!("{req}\n").as_bytes()).await?;
        stdin.flush().await?;
        let line = self.lines.next_line().await?.context("the server process ended")?;
        Ok(serde_json::from_str(&line)?)
    }

    pub(super) async fn totals(&mut self) -> anyhow::Result<Totals> {
        let v = self.call(json!({"op": "totals"})).await?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Ok(Totals { connected: n("connected"), rtp_in: n("rtpIn"), rtp_out: n("rtpOut") })
    }

    /// Closes the control pipe (the server shuts down, finishing recordings) and waits for it.
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(s) => {
                let s = s?;
                if !s.success() {
                    eprintln!("warning: the server process exited with {s}");
                }
            }
            Err(_) => {
                eprintln!("warning: the server process did not stop; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

impl Drop for ServerProc {
    /// The child is killed (`kill_on_drop`) if still running; its recordings go in any case.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals {
    pub(super) connected: u64,
    pub(super) rtp_in: u64,
    pub(super) rtp_out: u64,
}

// ---------------------------------------------------------------------------------------------
// /proc

/// `RcvbufErrors` of /proc/net/snmp (UDP datagrams the kernel dropped: a full receive buffer).
pub(super) fn udp_rcvbuf_errors() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = s.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// A client hub's receive buffer beyond `net.core.rmem_max` when allowed (`SO_RCVBUFFORCE`
/// needs CAP_NET_ADMIN; otherwise nothing changes): the server sends a phone frame to every leg
/// at once every 20 ms, and a hub thread that the two busy cores keep waiting must not lose
/// them on its own socket — that would count against the server as downlink loss.
pub(super) fn force_recv_buffer(socket: &std::net::UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: a valid fd and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Datagrams the kernel dropped on the server's UDP sockets, bound to `ports` on 127.0.0.1
/// (their receive buffers were full): the `drops` column of /proc/net/udp.
pub(super) fn udp_socket_drops(ports: &[u16]) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/udp").ok()?;
    let mut total = None;
    for port in ports {
        let want = format!("0100007F:{port:04X}");
        let drops: u64 = s.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&want.as_str())).then(|| f.last()?.parse().ok()).flatten()
        })?;
        total = Some(total.unwrap_or(0) + drops);
    }
    total
}

/// CPU seconds since boot of the machine's busy time that is no other process's work: the
/// host's steal (a virtual machine) and the kernel's softirq threads (which deliver loopback
/// datagrams when the load is high: the benchmark's own traffic).
pub(super) fn not_others() -> (f64, f64) {
    let steal = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().next()?.split_whitespace().nth(8)?.parse::<f64>().ok())
        .map_or(0.0, |t| t / 100.0);
    let mut ksoftirqd = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if pid.bytes().all(|b| b.is_ascii_digit())
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("ksoftirqd"))
        {
            ksoftirqd += cpu_secs(&pid).unwrap_or(0.0);
        }
    }
    (steal, ksoftirqd)
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Cpu {
    pub(super) server: Option<f64>,
    pub(super) client: Option<f64>,
    pub(super) machine: Option<f64>,
    pub(super) rcvbuf_errors: Option<u64>,
    pub(super) at: Instant,
}

pub(super) fn cpu_now(server_pid: Option<&str>) -> Cpu {
    Cpu {
        server: server_pid.and_then(cpu_secs),
        client: cpu_secs("self"),
        machine: machine_busy_secs(),
        rcvbuf_errors: udp_rcvbuf_errors(),
        at: Instant::now(),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CpuUse {
    pub(super) seconds: f64,
    pub(super) server: f64,
    pub(super) client: f64,
    pub(super) others: f64,
    pub(super) rcvbuf_errors: u64,
}

pub(super) fn cpu_use(a: Cpu, b: Cpu) -> CpuUse {
    let d = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| y - x).unwrap_or(0.0);
    let (server, client, machine) = (d(a.server, b.server), d(a.client, b.client), d(a.machine, b.machine));
    CpuUse {
        seconds: b.at.duration_since(a.at).as_secs_f64(),
        server,
        client,
        others: (machine - server - client).max(0.0),
        rcvbuf_errors: a.rcvbuf_errors.zip(b.rcvbuf_errors).map(|(x, y)| y - x).unwrap_or(0),
    }
}
