//! `video` and `video-latency`: VoIP↔VoIP video calls through the media server's SFU
//! (`emu_media::LegOptions::video`), each leg sending VP8-sized RTP both ways; measured
//! windows, an optional ramp, and the client legs' video timeline.

use super::*;

/// What a video leg sends: `fps` frames per second of `frame_bytes` each, every frame split
/// into equal packets of at most `packet_bytes` (marker on the last).
#[derive(Debug, Clone, Copy)]
pub(super) struct VideoPlan {
    pub(super) fps: f64,
    pub(super) frame_bytes: usize,
    pub(super) packet_bytes: usize,
}

impl VideoPlan {
    pub(super) fn new(kbps: f64, fps: f64, packet_bytes: usize) -> VideoPlan {
        let frame_bytes = (kbps * 1000.0 / 8.0 / fps).round() as usize;
        VideoPlan { fps, frame_bytes, packet_bytes }
    }

    pub(super) fn packets_per_frame(&self) -> usize {
        self.frame_bytes.div_ceil(self.packet_bytes).max(1)
    }

    /// The payload size of packet `i` of a frame (the frame split evenly).
    pub(super) fn payload_len(&self, i: usize) -> usize {
        let n = self.packets_per_frame();
        self.frame_bytes / n + usize::from(i < self.frame_bytes % n)
    }

    pub(super) fn packets_per_second(&self) -> f64 {
        self.fps * self.packets_per_frame() as f64
    }
}

/// Video counts of all the client legs. Packets whose send time (stamped in their payload)
/// falls in the window `[win_start, win_end)` (ns since the epoch) are also counted per
/// direction (index = the sending leg's role: 0 caller → callee, 1 callee → caller), when sent
/// and when received, so that loss in a window is exact whatever is in flight at its edges.
#[derive(Default)]
pub(super) struct VideoGlobal {
    pub(super) tx: AtomicU64,
    pub(super) rx: AtomicU64,
    pub(super) frames_tx: AtomicU64,
    pub(super) frames_rx: AtomicU64,
    /// Received with a sequence number not above the highest one seen (retransmitted or
    /// reordered).
    pub(super) late: AtomicU64,
    pub(super) keyframe_requests: AtomicU64,
    pub(super) tx_win: [AtomicU64; 2],
    pub(super) rx_win: [AtomicU64; 2],
    pub(super) win_start: AtomicU64,
    pub(super) win_end: AtomicU64,
    /// One-way latency (µs) of the packets sent in the window, as they arrive.
    pub(super) lat: std::sync::Mutex<Vec<u32>>,
}

/// What one hub counted since it last published (see [`VideoGlobal`]).
#[derive(Default)]
pub(super) struct VideoCounts {
    tx: u64,
    rx: u64,
    frames_tx: u64,
    frames_rx: u64,
    late: u64,
    pub(super) keyframe_requests: u64,
    tx_win: [u64; 2],
    rx_win: [u64; 2],
    lat: Vec<u32>,
}

impl VideoCounts {
    pub(super) fn publish(&mut self, g: &VideoGlobal) {
        if self.tx + self.rx + self.keyframe_requests == 0 {
            return;
        }
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v > 0 {
                a.fetch_add(std::mem::take(v), Ordering::Relaxed);
            }
        };
        add(&g.tx, &mut self.tx);
        add(&g.rx, &mut self.rx);
        add(&g.frames_tx, &mut self.frames_tx);
        add(&g.frames_rx, &mut self.frames_rx);
        add(&g.late, &mut self.late);
        add(&g.keyframe_requests, &mut self.keyframe_requests);
        for r in 0..2 {
            add(&g.tx_win[r], &mut self.tx_win[r]);
            add(&g.rx_win[r], &mut self.rx_win[r]);
        }
        if !self.lat.is_empty()
            && let Ok(mut l) = g.lat.lock()
        {
            l.append(&mut self.lat);
        }
    }
}

/// A snapshot of [`VideoGlobal`]'s counters.
#[derive(Debug, Clone, Copy, Default)]
struct ClientSnap {
    tx: u64,
    rx: u64,
    frames_tx: u64,
    frames_rx: u64,
    late: u64,
    keyframe_requests: u64,
    tx_win: [u64; 2],
    rx_win: [u64; 2],
}

impl ClientSnap {
    fn of(g: &VideoGlobal) -> ClientSnap {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClientSnap {
            tx: l(&g.tx),
            rx: l(&g.rx),
            frames_tx: l(&g.frames_tx),
            frames_rx: l(&g.frames_rx),
            late: l(&g.late),
            keyframe_requests: l(&g.keyframe_requests),
            tx_win: [l(&g.tx_win[0]), l(&g.tx_win[1])],
            rx_win: [l(&g.rx_win[0]), l(&g.rx_win[1])],
        }
    }

    fn since(self, o: ClientSnap) -> ClientSnap {
        ClientSnap {
            tx: self.tx - o.tx,
            rx: self.rx - o.rx,
            frames_tx: self.frames_tx - o.frames_tx,
            frames_rx: self.frames_rx - o.frames_rx,
            late: self.late - o.late,
            keyframe_requests: self.keyframe_requests - o.keyframe_requests,
            tx_win: [self.tx_win[0] - o.tx_win[0], self.tx_win[1] - o.tx_win[1]],
            rx_win: [self.rx_win[0] - o.rx_win[0], self.rx_win[1] - o.rx_win[1]],
        }
    }
}

/// A client leg's video line: its outgoing timeline and what it received.
pub(super) struct VideoTx {
    pub(super) mid: Option<Mid>,
    plan: VideoPlan,
    /// This leg's VP8 payload types (what it receives video on).
    pts: Vec<Pt>,
    send_pt: Option<Pt>,
    seq: u64,
    time: u32,
    pub(super) next_frame: Instant,
    interval: Duration,
    frame: u64,
    /// The next send starts a new, random phase (the first one, and after each hold): the
    /// legs' frames do not all leave at once.
    rephase: bool,
    max_rx_seq: Option<u64>,
    /// A frame's worth of payload bytes (a pattern), copied into each packet.
    pattern: Arc<Vec<u8>>,
}

impl VideoTx {
    pub(super) fn new(plan: &VideoPlan, mid: Option<Mid>, rtc: &Rtc) -> VideoTx {
        let pts = rtc.codec_config().params().iter().filter(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt()).collect();
        VideoTx {
            mid,
            plan: *plan,
            pts,
            send_pt: None,
            seq: rand::random::<u16>() as u64 & 0x7fff,
            time: rand::random::<u32>(),
            next_frame: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / plan.fps),
            frame: 0,
            rephase: true,
            max_rx_seq: None,
            pattern: Arc::new((0..plan.packet_bytes.max(16)).map(|i| (i * 7 + 3) as u8).collect()),
        }
    }

    pub(super) fn is_video(&self, pt: Pt) -> bool {
        self.pts.contains(&pt)
    }
}

impl HubLeg {
    /// Sends the frames that are due, each as RTP packets written to str0m (the send time in
    /// each payload's last 8 bytes, taken just before the write). True when something was
    /// written (the leg then needs a timeout: str0m sends on its timeouts).
    pub(super) fn send_video(&mut self, now: Instant, hold: bool, g: &Global, c: &mut HubCounts) -> bool {
        let Some(v) = self.video.as_mut() else { return false };
        if hold {
            v.rephase = true;
            return false;
        }
        if v.rephase {
            v.rephase = false;
            v.next_frame = now + v.interval.mul_f64(rand::random::<f64>());
        }
        let Some(mid) = v.mid else { return false };
        if v.send_pt.is_none() {
            let remote = self.rtc.media(mid).map(|m| m.remote_pts().to_vec()).unwrap_or_default();
            v.send_pt = v.pts.iter().copied().find(|pt| remote.contains(pt));
        }
        let Some(pt) = v.send_pt else {
            self.fail(g, "no VP8 in the answer");
            return false;
        };
        let (start, end) = (g.video.win_start.load(Ordering::Relaxed), g.video.win_end.load(Ordering::Relaxed));
        let role = self.plan.role;
        let mut wrote = false;
        while now >= v.next_frame {
            let n = v.plan.packets_per_frame();
            let key = v.frame.is_multiple_of(v.plan.fps.round().max(1.0) as u64 * 10);
            let mut api = self.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else { return wrote };
            for i in 0..n {
                let len = v.plan.payload_len(i).max(16);
                let mut data = v.pattern[..len.min(v.pattern.len())].to_vec();
                data.resize(len, 0);
                // VP8 payload descriptor (RFC 7741): S on the frame's first packet, whose
                // payload header says key frame or not (bit 0 clear: key frame).
                data[0] = if i == 0 { 0x10 } else { 0x00 };
                if i == 0 {
                    data[1] = if key { 0x10 } else { 0x11 };
                }
                let last = i + 1 == n;
                let stamp = now_ns();
                data[len - 8..].copy_from_slice(&stamp.to_le_bytes());
                tx.write_rtp(RtpWrite::new(pt, SeqNo::from(v.seq), v.time, now, data).marker(last).nackable(true));
                v.seq += 1;
                c.video.tx += 1;
                c.video.frames_tx += u64::from(last);
                if stamp >= start && stamp < end {
                    c.video.tx_win[role] += 1;
                }
            }
            wrote = true;
            v.frame += 1;
            v.time = v.time.wrapping_add((90_000.0 / v.plan.fps).round() as u32);
            v.next_frame += v.interval;
            if now > v.next_frame + Duration::from_millis(200) {
                v.next_frame = now + v.interval; // fell far behind: do not burst
            }
        }
        wrote
    }

    /// A video packet received: counted, and its latency kept when it was sent in the window.
    pub(super) fn video_received(&mut self, p: &RtpPacket, g: &Global, c: &mut HubCounts) {
        let Some(v) = self.video.as_mut() else { return };
        c.video.rx += 1;
        c.video.frames_rx += u64::from(p.header.marker);
        let seq = *p.seq_no;
        match v.max_rx_seq {
            Some(m) if seq <= m => c.video.late += 1,
            _ => v.max_rx_seq = Some(seq),
        }
        let Some(at) = p.payload.len().checked_sub(8) else { return };
        let sent = u64::from_le_bytes(p.payload[at..].try_into().expect("8 bytes"));
        let (start, end) = (g.video.win_start.load(Ordering::Relaxed), g.video.win_end.load(Ordering::Relaxed));
        if sent >= start && sent < end {
            c.video.rx_win[1 - self.plan.role] += 1;
            c.video.lat.push(((now_ns().saturating_sub(sent)) / 1000).min(u32::MAX as u64) as u32);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server's side (its `video` op: `server::video_totals`)

/// [`video_totals`] as read by the parent.
#[derive(Debug, Clone, Copy, Default)]
struct ServerSnap {
    video_legs: u64,
    connected: u64,
    packets_in: u64,
    packets_out: u64,
    bytes_out: u64,
    frames_out: u64,
    keyframe_requests_in: u64,
    keyframe_requests_out: u64,
    dropped: u64,
    bitrate_out_bps: u64,
}

impl ServerSnap {
    fn since(self, o: ServerSnap) -> ServerSnap {
        ServerSnap {
            packets_in: self.packets_in - o.packets_in,
            packets_out: self.packets_out - o.packets_out,
            bytes_out: self.bytes_out - o.bytes_out,
            frames_out: self.frames_out - o.frames_out,
            keyframe_requests_in: self.keyframe_requests_in - o.keyframe_requests_in,
            keyframe_requests_out: self.keyframe_requests_out - o.keyframe_requests_out,
            dropped: self.dropped - o.dropped,
            ..self
        }
    }
}

const CHAN: &str = "video-";

async fn server_snap(srv: &mut Option<ServerProc>, calls: usize) -> anyhow::Result<ServerSnap> {
    let Some(s) = srv else { return Ok(ServerSnap::default()) };
    let v = s.call(json!({"op": "video", "prefix": CHAN, "calls": calls})).await?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Ok(ServerSnap {
        video_legs: n("videoLegs"),
        connected: n("connectedLegs"),
        packets_in: n("packetsIn"),
        packets_out: n("packetsOut"),
        bytes_out: n("bytesOut"),
        frames_out: n("framesOut"),
        keyframe_requests_in: n("keyframeRequestsIn"),
        keyframe_requests_out: n("keyframeRequestsOut"),
        dropped: n("dropped"),
        bitrate_out_bps: n("bitrateOutBps"),
    })
}

// ---------------------------------------------------------------------------------------------
// The measurement

/// The calls running, through the server or (`--direct`) client to client.
struct Bench {
    srv: Option<ServerProc>,
    run: Running,
    plan: LegPlan,
    calls: usize,
}

/// One measured window.
pub(super) struct Window {
    ok: bool,
    /// The rest of the machine used more than a tenth of a core during the window.
    disturbed: bool,
    summary: String,
    value: Value,
    lat: Vec<u32>,
}

impl Bench {
    async fn start(a: &Args) -> anyhow::Result<Bench> {
        let plan = LegPlan {
            codec: AudioCodec::Opus,
            pps: if a.audio { 50.0 } else { 0.0 },
            payload: Arc::new(opus_payload(a.payload_bytes)),
            batch_rx: false,
            prebuild: 0,
            video: Some(VideoPlan::new(a.kbps, a.fps, a.packet_bytes)),
            role: 0,
        };
        let srv = if a.direct { None } else { Some(ServerProc::spawn("video", a.workers).await?) };
        let run = Running::new(a.client_threads)?;
        // Nothing is sent until every leg is connected (see `window`).
        run.g.hold.store(true, Ordering::Relaxed);
        Ok(Bench { srv, run, plan, calls: 0 })
    }

    /// Adds calls up to `calls` (both legs joined with video, bridged, connected) while
    /// every leg holds its media.
    async fn grow(&mut self, calls: usize) -> anyhow::Result<Duration> {
        let setup = Instant::now();
        self.run.g.hold.store(true, Ordering::Relaxed);
        while self.calls < calls {
            let chan = format!("{CHAN}{}", self.calls);
            let (hx, hy) = (self.run.pick(), self.run.pick());
            let (x, y) = match &mut self.srv {
                Some(s) => {
                    let x = server_leg(s, self.run.port(hx), &chan, "alice", "opus", true).await?;
                    let y = server_leg(s, self.run.port(hy), &chan, "bob", "opus", true).await?;
                    s.call(json!({"op": "bridge", "chan": chan, "a": {"device": "alice"}, "b": {"device": "bob"}, "record": false}))
                        .await?;
                    (x, y)
                }
                None => direct_pair(self.run.port(hx), self.run.port(hy), true)?,
            };
            if x.video_mid.is_none() {
                bail!("no video line in the offer");
            }
            self.run.spawn(hx, x, LegPlan { role: 0, ..self.plan.clone() });
            self.run.spawn(hy, y, LegPlan { role: 1, ..self.plan.clone() });
            self.calls += 1;
            // At most 50 handshakes under way.
            while 2 * self.calls as u64 > self.run.settled() + 50 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        self.run.wait_connected(2 * self.calls as u64, Duration::from_secs(120)).await?;
        Ok(setup.elapsed())
    }

    /// Releases the legs' media, warms up for 2 s, measures a `--seconds` window, holds the
    /// media again and waits for what is in flight. The server's and the clients' totals are
    /// read while nothing is sent, before and after: their differences are exact per hop.
    async fn window(&mut self, a: &Args) -> anyhow::Result<Window> {
        let g = self.run.g.clone();
        let (calls, legs) = (self.calls, 2 * self.calls as u64);
        let vplan = self.plan.video.expect("a video plan");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle_before = self.wait_quiet(a).await;
        let q0 = (server_snap(&mut self.srv, calls).await?, ClientSnap::of(&g.video));
        g.hold.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
        let (w0, w1) = (now_ns() + 20_000_000, now_ns() + 20_000_000 + (a.seconds * 1e9) as u64);
        g.video.win_end.store(w1, Ordering::Relaxed);
        g.video.win_start.store(w0, Ordering::Relaxed);
        let at = |ns: u64| tokio::time::Instant::from_std(*EPOCH.get().expect("epoch") + Duration::from_nanos(ns));
        g.video.lat.lock().map_err(|_| anyhow!("poisoned"))?.clear();
        tokio::time::sleep_until(at(w0)).await;
        let pid = self.srv.as_ref().map(|s| s.pid.clone());
        let ports = self.srv.as_ref().map(|s| s.ports.clone()).unwrap_or_default();
        let (s0, d0, c0, k0) = (
            server_snap(&mut self.srv, calls).await?,
            udp_socket_drops(&ports),
            cpu_now(pid.as_deref()),
            ClientSnap::of(&g.video),
        );
        let n0 = not_others();
        tokio::time::sleep_until(at(w1)).await;
        let (c1, k1, d1) = (cpu_now(pid.as_deref()), ClientSnap::of(&g.video), udp_socket_drops(&ports));
        let n1 = not_others();
        let s1 = server_snap(&mut self.srv, calls).await?;
        // What was sent in the window may still arrive (retransmissions included).
        tokio::time::sleep(Duration::from_millis(300)).await;
        g.hold.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let q1 = (server_snap(&mut self.srv, calls).await?, ClientSnap::of(&g.video));
        let mut lat = std::mem::take(&mut *g.video.lat.lock().map_err(|_| anyhow!("poisoned"))?);
        lat.sort_unstable();
        let counters = match &mut self.srv {
            Some(s) => s.call(json!({"op": "summary"})).await?["counters"].clone(),
            None => Value::Null,
        };
        let rss = pid.as_deref().and_then(rss_mib);
        let errors = g.errors.load(Ordering::Relaxed);

        let u = cpu_use(c0, c1);
        let secs = u.seconds;
        let (sw, kw, kall) = (s1.since(s0), k1.since(k0), ClientSnap::of(&g.video).since(q0.1));
        // Exact, by the send times stamped in the payloads: each direction of the window.
        let (tx_win, rx_win) = (kall.tx_win, kall.rx_win);
        let lost_win = [tx_win[0].saturating_sub(rx_win[0]), tx_win[1].saturating_sub(rx_win[1])];
        let loss_pct = |lost: u64, of: u64| if of > 0 { lost as f64 * 100.0 / of as f64 } else { 0.0 };
        // Exact per hop, between the two quiet points (warm-up, window and tail).
        let (sq, kq) = (q1.0.since(q0.0), q1.1.since(q0.1));
        let (up_lost, down_lost) = if self.srv.is_some() {
            (kq.tx.saturating_sub(sq.packets_in), sq.packets_out.saturating_sub(kq.rx))
        } else {
            (0, kq.tx.saturating_sub(kq.rx))
        };
        let server_unforwarded = sq.packets_in.saturating_sub(sq.packets_out);
        let server_drops = d0.zip(d1).map(|(x, y)| y - x).unwrap_or(0);
        let expected = legs as f64 * vplan.packets_per_second() * secs;
        let shortfall = (1.0 - (kw.tx as f64) / expected).max(0.0);
        let forwarded = if self.srv.is_some() { sw.packets_out } else { kw.rx };
        let fwd_pps = forwarded as f64 / secs;
        let fwd_mbps = if self.srv.is_some() {
            sw.bytes_out as f64 * 8.0 / secs / 1e6
        } else {
            kw.rx as f64 * (vplan.frame_bytes as f64 / vplan.packets_per_frame() as f64) * 8.0 / secs / 1e6
        };
        let per_core = (u.server > 0.0).then(|| forwarded as f64 / u.server);
        let mbps_per_core = (u.server > 0.0).then(|| fwd_mbps * secs / u.server);
        let lost = lost_win[0] + lost_win[1] + up_lost + down_lost + server_unforwarded;
        let connected_ok = self.srv.is_none() || (sq.connected == legs && sq.video_legs == legs);
        let ok = lost == 0 && server_drops == 0 && shortfall < 0.01 && connected_ok && errors == 0;
        // The rest of the machine, less the host's steal and the kernel's softirq threads.
        let (steal, ksoftirqd) = (n1.0 - n0.0, n1.1 - n0.1);
        let others = (u.others - steal - ksoftirqd).max(0.0);
        let disturbed = others > 0.1 * secs;
        let pct_core = |x: f64| x / secs * 100.0;
        let what = if self.srv.is_some() { "through the server" } else { "direct (no server)" };
        let mut summary = format!(
            "video {what}: {calls} calls × 2 legs × {:.0} kbit/s ({} fps, {} B frames in {} packets{}): {forwarded} forwarded in {secs:.2} s = {fwd_pps:.0} pps, {fwd_mbps:.1} Mbit/s of payload; clients sent {} ({:.2} % short of the plan), received {}, frames {}/{}",
            a.kbps,
            a.fps,
            vplan.frame_bytes,
            vplan.packets_per_frame(),
            if a.audio { " + Opus 50 pps" } else { "" },
            kw.tx,
            shortfall * 100.0,
            kw.rx,
            kw.frames_tx,
            kw.frames_rx,
        );
        summary.push_str(&format!(
            "; window loss caller→callee {} of {} ({:.4} %), callee→caller {} of {} ({:.4} %); per hop since the last quiet point: uplink {up_lost} of {}, in the server {server_unforwarded} (video dropped {}), downlink {down_lost} of {}; late/retransmitted {}; keyframe requests: server in {} out {}, clients got {}",
            lost_win[0],
            tx_win[0],
            loss_pct(lost_win[0], tx_win[0]),
            lost_win[1],
            tx_win[1],
            loss_pct(lost_win[1], tx_win[1]),
            kq.tx,
            sq.dropped,
            sq.packets_out,
            kq.late,
            sq.keyframe_requests_in,
            sq.keyframe_requests_out,
            kq.keyframe_requests,
        ));
        if let Some(pc) = per_core {
            summary.push_str(&format!(
                "; server CPU {:.2} s ({:.0} % of a core) = {:.2} µs per forwarded packet = {pc:.0} forwarded pps per core = {:.0} Mbit/s per core",
                u.server,
                pct_core(u.server),
                u.server * 1e6 / forwarded.max(1) as f64,
                mbps_per_core.unwrap_or(0.0)
            ));
        }
        summary.push_str(&format!(
            "; clients CPU {:.0} % of a core, rest of the machine {:.2} CPU-s (+ steal {steal:.2}, ksoftirqd {ksoftirqd:.2}); drops on the server socket {server_drops}, all UDP {}; latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
            pct_core(u.client),
            others,
            u.rcvbuf_errors,
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            pct(&lat, 99.9),
            pct(&lat, 100.0),
            lat.len()
        ));
        if let Some(m) = rss {
            summary.push_str(&format!("; server RSS {m:.1} MiB"));
        }
        if errors > 0 {
            summary.push_str(&format!("; {errors} client legs failed"));
        }
        if disturbed {
            summary.push_str(" (DISTURBED: the rest of the machine was busy)");
        }
        summary.push_str(if ok { " → no loss" } else { " → LOSS" });
        let value = json!({
            "mode": "video", "direct": self.srv.is_none(), "calls": calls, "kbps_per_leg": a.kbps, "fps": a.fps,
            "frame_bytes": vplan.frame_bytes, "packets_per_frame": vplan.packets_per_frame(), "audio": a.audio,
            "seconds": r3(secs), "forwarded": forwarded, "forwarded_pps": fwd_pps.round(), "forwarded_mbps": r3(fwd_mbps),
            "server_bitrate_out_bps_at_end": s1.bitrate_out_bps,
            "client_sent": kw.tx, "client_received": kw.rx, "client_send_shortfall_pct": r3(shortfall * 100.0),
            "frames_sent": kw.frames_tx, "frames_received": kw.frames_rx, "server_frames_out": sw.frames_out,
            "window_sent": tx_win, "window_lost": lost_win,
            "window_loss_pct": [r3(loss_pct(lost_win[0], tx_win[0])), r3(loss_pct(lost_win[1], tx_win[1]))],
            "hop_uplink_lost": up_lost, "hop_server_unforwarded": server_unforwarded, "hop_downlink_lost": down_lost,
            "hop_client_sent": kq.tx, "hop_server_in": sq.packets_in, "hop_server_out": sq.packets_out, "hop_client_received": kq.rx,
        });
        let more = json!({
            "server_video_dropped": sq.dropped, "late_or_retransmitted": kq.late,
            "keyframe_requests": {"server_in": sq.keyframe_requests_in, "server_out": sq.keyframe_requests_out, "clients_got": kq.keyframe_requests},
            "server_socket_drops": server_drops, "udp_rcvbuf_errors": u.rcvbuf_errors,
            "server_cpu_s": r3(u.server), "server_cpu_pct_of_core": r3(pct_core(u.server)),
            "server_cpu_us_per_forwarded": (forwarded > 0 && u.server > 0.0).then(|| r3(u.server * 1e6 / forwarded as f64)),
            "forwarded_pps_per_server_core": per_core.map(f64::round), "forwarded_mbps_per_server_core": mbps_per_core.map(r3),
            "client_cpu_pct_of_core": r3(pct_core(u.client)), "others_cpu_s": r3(others), "steal_cpu_s": r3(steal), "ksoftirqd_cpu_s": r3(ksoftirqd),
            "latency_ms": {"p50": pct(&lat, 50.0), "p99": pct(&lat, 99.0), "p999": pct(&lat, 99.9), "max": pct(&lat, 100.0), "samples": lat.len()},
            "server_rss_mib": rss.map(r3), "server_counters": counters, "client_errors": errors, "no_loss": ok,
            "disturbed": disturbed, "others_cores_before": r3(idle_before),
        });
        let mut value = value;
        if let (Some(v), Value::Object(m)) = (value.as_object_mut(), more) {
            v.extend(m);
        }
        Ok(Window { ok, disturbed, summary, value, lat })
    }

    /// Waits (at most `--idle-wait` seconds) until the rest of the machine uses less than a
    /// quarter of a core over 2 s, while the legs hold their media; returns that share.
    async fn wait_quiet(&self, a: &Args) -> f64 {
        let pid = self.srv.as_ref().map(|s| s.pid.clone());
        let start = Instant::now();
        let mut said = false;
        loop {
            let (c0, n0) = (cpu_now(pid.as_deref()), not_others());
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (u, n1) = (cpu_use(c0, cpu_now(pid.as_deref())), not_others());
            let busy = (u.others - (n1.0 - n0.0) - (n1.1 - n0.1)).max(0.0) / u.seconds;
            if busy < 0.25 || a.idle_wait <= 0.0 {
                return busy;
            }
            if start.elapsed().as_secs_f64() > a.idle_wait {
                eprintln!("warning: the machine is still busy ({busy:.2} cores); measuring anyway");
                return busy;
            }
            if !said {
                eprintln!("waiting for the machine to be idle (the rest of it uses {busy:.2} cores)");
                said = true;
            }
        }
    }

    async fn finish(self) -> anyhow::Result<()> {
        self.run.finish().await;
        if let Some(s) = self.srv {
            s.stop().await?;
        }
        Ok(())
    }
}

fn say(a: &Args, line: &str) {
    if a.json { eprintln!("{line}") } else { println!("{line}") }
}

/// `media video`: `--calls` calls measured once, or (`--ramp`) from `--start` by `--step` to
/// `--max` until a level loses packets twice.
pub(super) async fn video(a: &Args) -> anyhow::Result<()> {
    let mut levels = vec![a.calls];
    if a.ramp {
        levels = (a.start..=a.max).step_by(a.step.max(1)).collect();
    }
    let mut b = Bench::start(a).await?;
    let (mut rows, mut best) = (Vec::new(), None);
    'ramp: for level in levels {
        let setup = b.grow(level).await?;
        say(
            a,
            &format!("video {level} calls: every leg connected {:.1} s after the first new join", setup.as_secs_f64()),
        );
        // A level that loses is measured once more in a ramp; a window that lost while the
        // rest of the machine was busy is measured again (up to 3 times) and not counted.
        let (allowed, mut failures, mut disturbed, mut attempt) = (if a.ramp { 2 } else { 1 }, 0, 0, 0);
        loop {
            attempt += 1;
            let w = b.window(a).await?;
            say(a, &w.summary);
            let mut row = w.value;
            row["attempt"] = attempt.into();
            rows.push(row);
            if w.ok {
                best = Some(level);
                break;
            }
            if w.disturbed && disturbed < 3 {
                disturbed += 1;
                continue;
            }
            failures += 1;
            if failures == allowed {
                if a.ramp {
                    break 'ramp;
                }
                break;
            }
        }
    }
    b.finish().await?;
    if a.ramp {
        say(a, &format!("video ramp: the most calls without loss {}", best.map_or("none".into(), |n| n.to_string())));
    }
    if a.json {
        match (a.ramp, rows.len()) {
            (false, 1) => println!("{}", rows.remove(0)),
            _ => println!("{}", json!({"mode": "video-ramp", "max_calls_without_loss": best, "levels": rows})),
        }
    }
    Ok(())
}

/// `media video-latency`: the same calls client to client (`--direct`), then through the server;
/// the latency the server adds per percentile.
pub(super) async fn video_latency(a: &Args) -> anyhow::Result<()> {
    let mut lats = Vec::new();
    let mut values = Vec::new();
    for direct in [true, false] {
        let args = Args { direct, ramp: false, ..a.clone() };
        let mut b = Bench::start(&args).await?;
        b.grow(a.calls).await?;
        let w: Window = b.window(&args).await?;
        b.finish().await?;
        say(a, &w.summary);
        lats.push(w.lat);
        values.push(w.value);
    }
    let (d, s) = (&lats[0], &lats[1]);
    let summary = format!(
        "video latency, {} calls × 2 legs × {} kbit/s: direct p50 {:.3} / p99 {:.3} ms; through the server p50 {:.3} / p99 {:.3} ms; added p50 {:.3} ms, p99 {:.3} ms",
        a.calls,
        a.kbps,
        pct(d, 50.0),
        pct(d, 99.0),
        pct(s, 50.0),
        pct(s, 99.0),
        pct(s, 50.0) - pct(d, 50.0),
        pct(s, 99.0) - pct(d, 99.0)
    );
    say(a, &summary);
    if a.json {
        println!(
            "{}",
            json!({"mode": "video-latency", "direct": values[0], "server": values[1],
                   "added_ms": {"p50": r3(pct(s, 50.0) - pct(d, 50.0)), "p99": r3(pct(s, 99.0) - pct(d, 99.0))}})
        );
    }
    Ok(())
}
