//! The light str0m client legs that play the browser, and the hubs (one socket, one timer heap
//! per client thread) that run them.

use super::*;

/// Counters shared by every client leg.
#[derive(Default)]
pub(super) struct Global {
    pub(super) connected: AtomicU64,
    pub(super) tx: AtomicU64,
    pub(super) rx: AtomicU64,
    pub(super) errors: AtomicU64,
    /// Latency samples are kept while this is set.
    pub(super) measuring: AtomicBool,
    /// Connected legs wait with their first send while this is set (`--prebuilt`: until every
    /// leg has built its packets).
    pub(super) hold: AtomicBool,
    /// `--prebuilt`: received RTP datagrams handed to str0m (1 in [`SAMPLE`]), and how many of
    /// them it decrypted and authenticated.
    pub(super) sampled: AtomicU64,
    pub(super) verified: AtomicU64,
    /// Video legs (`media video`): what they sent and received.
    pub(super) video: VideoGlobal,
}

/// `--prebuilt`: one received RTP datagram in this many is decrypted (the rest are counted).
pub(super) const SAMPLE: u32 = 64;

#[derive(Clone)]
pub(super) struct LegPlan {
    pub(super) codec: AudioCodec,
    pub(super) pps: f64,
    pub(super) payload: Arc<Vec<u8>>,
    /// Received datagrams wait for the leg's next send and go in right after it (one str0m
    /// timeout and one drain per send for both directions, as the server does for phone-bridged
    /// legs). For `g711`, which does not measure latency.
    pub(super) batch_rx: bool,
    /// `--prebuilt`: this many SRTP packets are made by str0m right after the leg
    /// connects, and then only sent (0 = each packet is made when it is sent).
    pub(super) prebuild: usize,
    /// `media video`: the leg offers a VP8 line and sends video on it (`pps` 0: no audio).
    pub(super) video: Option<VideoPlan>,
    /// 0 for the caller's leg, 1 for the callee's (video counts each direction apart).
    pub(super) role: usize,
}

/// `--prebuilt`: a leg's SRTP datagrams, made by its str0m `Rtc` before the measurement.
pub(super) struct Built {
    pub(super) data: Vec<u8>,
    pub(super) ends: Vec<usize>,
    pub(super) next: usize,
    pub(super) dest: Option<SocketAddr>,
}

impl Built {
    /// The next datagram to send and where, until they run out.
    pub(super) fn take(&mut self) -> Option<(SocketAddr, &[u8])> {
        let (dest, end) = (self.dest?, *self.ends.get(self.next)?);
        let start = if self.next == 0 { 0 } else { self.ends[self.next - 1] };
        self.next += 1;
        Some((dest, &self.data[start..end]))
    }
}

/// Local addresses of client legs: 127.1.x.y, one per leg (the server tells legs apart by their
/// source address), all on their hub's one port.
pub(super) static NEXT_LEG_IP: AtomicU32 = AtomicU32::new(1);

pub(super) fn next_leg_ip() -> IpAddr {
    let k = NEXT_LEG_IP.fetch_add(1, Ordering::Relaxed);
    IpAddr::from([127, 1 + (k >> 16) as u8, (k >> 8) as u8, k as u8])
}

/// One client leg before it runs: its Rtc (offer made or answer given) and address.
pub(super) struct ClientLeg {
    pub(super) rtc: Rtc,
    pub(super) local: SocketAddr,
    pub(super) mid: Option<Mid>,
    /// The offer's video line (`video` legs).
    pub(super) video_mid: Option<Mid>,
    pub(super) video: bool,
    pub(super) pending: Option<SdpPendingOffer>,
    pub(super) candidate: Candidate,
}

impl ClientLeg {
    /// A leg of the hub on `port`, at a fresh local IP; with `video`, it also offers (or
    /// accepts) VP8.
    pub(super) fn new(port: u16, video: bool) -> anyhow::Result<ClientLeg> {
        let local = SocketAddr::new(next_leg_ip(), port);
        // As little as a browser-like endpoint needs: no statistics events (the default), and
        // str0m's RTP mode (whole packets in and out, as the server does: no packetizing).
        // str0m's default header extensions: transport-wide CC included, as a browser has.
        let mut b = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).enable_pcmu(true, false);
        if video {
            b = b.enable_vp8(true);
        }
        let rtc = b.build(Instant::now());
        let candidate = Candidate::host(local, "udp").map_err(|e| anyhow!("{e}"))?;
        let mut leg =
            ClientLeg { rtc, local, mid: None, video_mid: None, video, pending: None, candidate: candidate.clone() };
        leg.rtc.add_local_candidate(candidate).context("candidate refused")?;
        Ok(leg)
    }

    /// Makes the offer (one sendrecv audio m-line, and a video one for `video` legs), without
    /// candidates.
    pub(super) fn offer(&mut self) -> anyhow::Result<String> {
        let mut api = self.rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        if self.video {
            self.video_mid = Some(api.add_media(MediaKind::Video, Direction::SendRecv, None, None, None));
        }
        let (offer, pending) = api.apply().context("no offer")?;
        self.mid = Some(mid);
        self.pending = Some(pending);
        Ok(emu_media::sdp::strip_candidates(&offer.to_sdp_string()))
    }

    pub(super) fn accept_answer(&mut self, sdp: &str, candidates: &[String]) -> anyhow::Result<()> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| anyhow!("bad answer: {e}"))?;
        let pending = self.pending.take().context("no offer")?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| anyhow!("answer refused: {e}"))?;
        for c in candidates {
            self.rtc.add_remote_candidate(Candidate::from_sdp_string(c).map_err(|e| anyhow!("{e}"))?);
        }
        Ok(())
    }

    /// The `sdpCandidate` mediaSignal of sigv 1 (offer + the client's candidate).
    pub(super) fn sdp_candidate_signal(&self, chan: &str, offer: &str) -> Value {
        let mid = self.mid.map(|m| m.to_string()).unwrap_or_default();
        emu_testkit::signal::sdp_candidate(chan, offer, &self.candidate.to_sdp_string(), &mid)
    }
}

/// Connects a leg to the media server the sigv 1 way: joinChannel (with `video`: a leg of a
/// video call, `LegOptions::video`), then sdpCandidate.
pub(super) async fn server_leg(
    srv: &mut ServerProc,
    port: u16,
    chan: &str,
    rtc_id: &str,
    prefer: &str,
    video: bool,
) -> anyhow::Result<ClientLeg> {
    let mut leg = ClientLeg::new(port, video)?;
    let offer = leg.offer()?;
    let join = srv.call(json!({"op": "join", "chan": chan, "rtc": rtc_id, "prefer": prefer, "video": video})).await?;
    if join["errorCode"] != 0 {
        bail!("joinChannel failed: {join}");
    }
    let result = srv
        .call(json!({"op": "signal", "chan": chan, "rtc": rtc_id, "signal": leg.sdp_candidate_signal(chan, &offer)}))
        .await?;
    if result["errorCode"] != 0 {
        bail!("sdpCandidate failed: {result}");
    }
    let sdp = result.pointer("/data/sdpInfo/sdp").and_then(Value::as_str).context("no answer")?;
    let cands = emu_media::sdp::candidate_strings(result.pointer("/data/candidateList").unwrap_or(&Value::Null));
    leg.accept_answer(sdp, &cands)?;
    Ok(leg)
}

/// Two clients connected to each other directly (the baseline: no server in between).
pub(super) fn direct_pair(port_a: u16, port_b: u16, video: bool) -> anyhow::Result<(ClientLeg, ClientLeg)> {
    let mut a = ClientLeg::new(port_a, video)?;
    let mut b = ClientLeg::new(port_b, video)?;
    let offer = a.offer()?;
    let offer = SdpOffer::from_sdp_string(&offer).map_err(|e| anyhow!("{e}"))?;
    let answer = b.rtc.sdp_api().accept_offer(offer).map_err(|e| anyhow!("{e}"))?;
    b.rtc.add_remote_candidate(a.candidate.clone());
    let cand_b = b.candidate.to_sdp_string();
    a.accept_answer(&emu_media::sdp::strip_candidates(&answer.to_sdp_string()), &[cand_b])?;
    Ok((a, b))
}

/// A client leg inside its hub.
pub(super) struct HubLeg {
    pub(super) rtc: Rtc,
    pub(super) local: SocketAddr,
    pub(super) mid: Option<Mid>,
    pub(super) plan: LegPlan,
    pub(super) connected: bool,
    pub(super) dead: bool,
    /// str0m's next timeout.
    pub(super) timeout: Instant,
    pub(super) next_send: Instant,
    pub(super) interval: Duration,
    pub(super) send: Option<Pt>,
    pub(super) rtp_time: u32,
    pub(super) seq: u64,
    /// The timer-heap entry that is current for this leg.
    pub(super) scheduled: Option<Instant>,
    pub(super) dirty: bool,
    /// Datagrams waiting for the next send (`LegPlan::batch_rx`).
    pub(super) rx_waiting: Parked<()>,
    /// `--prebuilt`: connected, packets not built yet.
    pub(super) build_pending: bool,
    pub(super) built: Option<Built>,
    /// `--prebuilt`: RTP datagrams received (1 in [`SAMPLE`] goes to str0m).
    pub(super) rx_seen: u32,
    /// `media video`: the video line's timeline and what it received.
    pub(super) video: Option<VideoTx>,
}

/// What a hub counts between two publications to [`Global`].
#[derive(Default)]
pub(super) struct HubCounts {
    pub(super) tx: u64,
    pub(super) rx: u64,
    pub(super) sampled: u64,
    pub(super) verified: u64,
    pub(super) video: VideoCounts,
}

impl HubCounts {
    /// Adds what was counted to [`Global`] and starts again from zero.
    fn publish(&mut self, g: &Global) {
        g.tx.fetch_add(std::mem::take(&mut self.tx), Ordering::Relaxed);
        g.rx.fetch_add(std::mem::take(&mut self.rx), Ordering::Relaxed);
        g.sampled.fetch_add(std::mem::take(&mut self.sampled), Ordering::Relaxed);
        g.verified.fetch_add(std::mem::take(&mut self.verified), Ordering::Relaxed);
        self.video.publish(&g.video);
    }
}

impl HubLeg {
    /// Sends what is due, feeds str0m its timeout when due, and drains it.
    pub(super) fn service(
        &mut self,
        now: Instant,
        out: &mut SendQueue,
        g: &Global,
        c: &mut HubCounts,
        lat: &mut Vec<u32>,
    ) {
        if self.dead {
            return;
        }
        if self.build_pending {
            self.build_pending = false;
            self.build(now, out, g);
            if self.dead {
                return;
            }
            g.connected.fetch_add(1, Ordering::Relaxed);
        }
        let mut wrote = false;
        let hold = g.hold.load(Ordering::Relaxed);
        while self.connected && self.plan.pps > 0.0 && now >= self.next_send && !hold {
            if let Some(b) = &mut self.built {
                if let Some((dest, datagram)) = b.take() {
                    out.push_copy(Some(self.local.ip()), dest, datagram);
                    c.tx += 1;
                }
            } else {
                let Some(pt) = self.send_pt() else {
                    self.fail(g, "no send codec");
                    return;
                };
                let payload = &self.plan.payload;
                let stamp_at = payload.len() - 8;
                let mut data = payload.to_vec();
                data[stamp_at..].copy_from_slice(&now_ns().to_le_bytes());
                if self.write_next(pt, now, data) {
                    c.tx += 1;
                    wrote = true;
                }
            }
            self.next_send += self.interval;
            if now > self.next_send + Duration::from_millis(200) {
                self.next_send = now + self.interval; // fell far behind: do not burst
            }
        }
        if self.connected && self.video.is_some() {
            wrote |= self.send_video(now, hold, g, c);
        }
        // str0m sends written packets in its timeout handling (which it also runs after each
        // datagram): the packet leaves now.
        let mut timed_out = false;
        if wrote && !self.rx_waiting.is_empty() {
            let mut waiting = std::mem::take(&mut self.rx_waiting);
            for ((), src, buf) in waiting.iter() {
                if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, buf) {
                    timed_out |= self.rtc.handle_input(Input::Receive(now, r)).is_ok();
                    self.poll(now, out, g, c, lat, true);
                }
            }
            waiting.clear();
            self.rx_waiting = waiting;
        }
        if !timed_out
            && (wrote || now >= self.timeout)
            && let Err(e) = self.rtc.handle_input(Input::Timeout(now))
        {
            self.fail(g, &e.to_string());
            return;
        }
        self.poll(now, out, g, c, lat, false);
    }

    /// The payload type of the codec this leg sends (the plan's, as the answer numbered it).
    pub(super) fn send_pt(&mut self) -> Option<Pt> {
        if self.send.is_none() {
            let want = if self.plan.codec == AudioCodec::Opus { Codec::Opus } else { Codec::PCMU };
            self.send = self.mid.and_then(|m| {
                let remote = self.rtc.media(m)?.remote_pts();
                let p = self
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .find(|p| p.spec().codec == want && remote.contains(&p.pt()))?;
                Some(p.pt())
            });
        }
        self.send
    }

    /// Writes the next packet of the leg's timeline to str0m; false when there is no send
    /// stream (the timestamp moves on anyway).
    pub(super) fn write_next(&mut self, pt: Pt, now: Instant, payload: Vec<u8>) -> bool {
        let mut api = self.rtc.direct_api();
        let written = match self.mid.and_then(|m| api.stream_tx_by_mid(m, None)) {
            Some(tx) => {
                tx.write_rtp(RtpWrite::new(pt, SeqNo::from(self.seq), self.rtp_time, now, payload));
                self.seq += 1;
                true
            }
            None => false,
        };
        self.rtp_time = self.rtp_time.wrapping_add(self.plan.codec.units_per_frame() as u32);
        written
    }

    /// `--prebuilt`: str0m makes the leg's whole schedule of SRTP packets now (its own sequence
    /// numbers, SRTP index and encryption, exactly as when sending them one by one); what else
    /// it sends meanwhile (RTCP) goes out at once.
    pub(super) fn build(&mut self, now: Instant, out: &mut SendQueue, g: &Global) {
        let Some(pt) = self.send_pt() else {
            self.fail(g, "no send codec");
            return;
        };
        let n = self.plan.prebuild;
        let mut b = Built {
            data: Vec::with_capacity(n * (self.plan.payload.len() + 48)),
            ends: Vec::with_capacity(n),
            next: 0,
            dest: None,
        };
        for _ in 0..n {
            if !self.write_next(pt, now, self.plan.payload.to_vec()) {
                self.fail(g, "no send stream");
                return;
            }
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.fail(g, &e.to_string());
                return;
            }
            loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        self.timeout = t.max(now + Duration::from_millis(40));
                        break;
                    }
                    Ok(Output::Transmit(t)) if emu_media::stun::is_rtp(&t.contents) => {
                        b.data.extend_from_slice(&t.contents);
                        b.ends.push(b.data.len());
                        b.dest = Some(t.destination);
                    }
                    Ok(Output::Transmit(t)) => out.push_from(Some(self.local.ip()), t.destination, t.contents.into()),
                    Ok(Output::Event(_)) => {}
                    Err(e) => {
                        self.fail(g, &e.to_string());
                        return;
                    }
                }
            }
        }
        self.built = Some(b);
        self.next_send = Instant::now();
    }

    /// Drains str0m to its next timeout, or (`to_packet`) only until it hands out the packet
    /// just received (in RTP mode it keeps one until the next poll; see the server).
    pub(super) fn poll(
        &mut self,
        now: Instant,
        out: &mut SendQueue,
        g: &Global,
        c: &mut HubCounts,
        lat: &mut Vec<u32>,
        to_packet: bool,
    ) {
        // A video leg's pacer sends one packet per timeout: it is run until nothing is due
        // (bounded: never spin), as the server does.
        let mut pacer_rounds = if self.video.is_some() && !to_packet { 256 } else { 0 };
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) if t <= now && pacer_rounds > 0 => {
                    pacer_rounds -= 1;
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        self.fail(g, &e.to_string());
                        return;
                    }
                }
                Ok(Output::Timeout(t)) => {
                    // The pacer's "a timeout before the next poll" after each packet sent: the
                    // next frame written is followed by one anyway (as in the server).
                    let pacer = self.rtc.last_timeout_reason() == Reason::Pacer(PacerReason::Handle);
                    self.timeout = if pacer && t <= now { now + Duration::from_millis(40) } else { t };
                    break;
                }
                Ok(Output::Transmit(t)) => out.push_from(Some(self.local.ip()), t.destination, t.contents.into()),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        if self.plan.prebuild > 0 {
                            self.build_pending = true; // counted as connected once built
                        } else {
                            g.connected.fetch_add(1, Ordering::Relaxed);
                        }
                        self.next_send = now;
                    }
                    Event::MediaAdded(m) if m.kind == MediaKind::Video => {
                        if let Some(v) = self.video.as_mut() {
                            v.mid.get_or_insert(m.mid);
                        }
                    }
                    Event::MediaAdded(m) if self.mid.is_none() => self.mid = Some(m.mid),
                    Event::KeyframeRequest(_) => c.video.keyframe_requests += 1,
                    Event::RtpPacket(_) if self.plan.prebuild > 0 => {
                        c.verified += 1; // counted when it arrived
                        if to_packet {
                            break;
                        }
                    }
                    Event::RtpPacket(p) if self.video.as_ref().is_some_and(|v| v.is_video(p.header.payload_type)) => {
                        self.video_received(&p, g, c);
                        if to_packet {
                            break;
                        }
                    }
                    Event::RtpPacket(p) => {
                        c.rx += 1;
                        if p.payload.len() == self.plan.payload.len() && g.measuring.load(Ordering::Relaxed) {
                            let at = p.payload.len() - 8;
                            let sent = u64::from_le_bytes(p.payload[at..].try_into().expect("8 bytes"));
                            lat.push(((now_ns().saturating_sub(sent)) / 1000).min(u32::MAX as u64) as u32);
                        }
                        if to_packet {
                            break;
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    self.fail(g, &e.to_string());
                    return;
                }
            }
        }
    }

    pub(super) fn fail(&mut self, g: &Global, e: &str) {
        eprintln!("client leg {}: {e}", self.local);
        g.errors.fetch_add(1, Ordering::Relaxed);
        self.dead = true;
    }

    pub(super) fn due(&self, hold: bool) -> Instant {
        if !self.connected || hold || self.build_pending {
            return self.timeout;
        }
        let t = if self.plan.pps > 0.0 { self.timeout.min(self.next_send) } else { self.timeout };
        match &self.video {
            Some(v) => t.min(v.next_frame),
            None => t,
        }
    }
}

/// All the client legs of one thread: one UDP socket bound to 0.0.0.0 (each leg sends from its
/// own 127.1.x.y through `IP_PKTINFO`, and received datagrams find their leg by destination),
/// batched system calls (`recvmmsg` / `sendmmsg`), one timer heap, and no task per leg.
pub(super) async fn hub_task(
    socket: UdpSocket,
    mut incoming: mpsc::UnboundedReceiver<(ClientLeg, LegPlan)>,
    g: Arc<Global>,
    mut stop: watch::Receiver<bool>,
) -> Vec<u32> {
    let mut legs: Vec<HubLeg> = Vec::new();
    let mut by_ip: HashMap<IpAddr, usize> = HashMap::new();
    let mut timers: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let mut dirty: Vec<usize> = Vec::new();
    let mut batch = RecvBatch::new(64);
    let mut out = SendQueue::new();
    let mut lat: Vec<u32> = Vec::new();
    let mut counts = HubCounts::default();
    let mut fresh: Vec<(ClientLeg, LegPlan)> = Vec::new();
    let mut closed = false;
    loop {
        while let Ok(x) = incoming.try_recv() {
            fresh.push(x);
        }
        for (leg, plan) in fresh.drain(..) {
            let i = legs.len();
            by_ip.insert(leg.local.ip(), i);
            let interval = Duration::from_secs_f64(1.0 / plan.pps.max(0.001));
            let video = plan.video.as_ref().map(|v| VideoTx::new(v, leg.video_mid, &leg.rtc));
            legs.push(HubLeg {
                rtc: leg.rtc,
                local: leg.local,
                mid: leg.mid,
                plan,
                connected: false,
                dead: false,
                timeout: Instant::now(),
                next_send: Instant::now(),
                interval,
                send: None,
                rtp_time: rand::random::<u32>(),
                seq: rand::random::<u16>() as u64 & 0x7fff,
                scheduled: None,
                dirty: true,
                rx_waiting: Parked::default(),
                build_pending: false,
                built: None,
                rx_seen: 0,
                video,
            });
            dirty.push(i);
        }
        // Input: whatever the socket has.
        for _ in 0..8 {
            match socket.try_io(Interest::READABLE, || batch.recv(&socket)) {
                Ok(n) => {
                    let now = Instant::now();
                    for k in 0..n {
                        let (buf, src, dst) = batch.get(k);
                        let Some(&i) = dst.and_then(|d| by_ip.get(&d)) else { continue };
                        let leg = &mut legs[i];
                        if leg.dead {
                            continue;
                        }
                        if leg.plan.prebuild > 0 && leg.connected && emu_media::stun::is_rtp(buf) {
                            counts.rx += 1;
                            leg.rx_seen = leg.rx_seen.wrapping_add(1);
                            if !leg.rx_seen.is_multiple_of(SAMPLE) {
                                continue;
                            }
                            counts.sampled += 1;
                        } else if leg.plan.batch_rx && leg.connected && emu_media::stun::is_rtp(buf) {
                            leg.rx_waiting.push((), src, buf);
                            continue;
                        }
                        if let Ok(r) = Receive::new(Protocol::Udp, src, leg.local, buf) {
                            let _ = leg.rtc.handle_input(Input::Receive(now, r));
                            leg.poll(now, &mut out, &g, &mut counts, &mut lat, true);
                        }
                        if !leg.dirty {
                            leg.dirty = true;
                            dirty.push(i);
                        }
                    }
                    if n < batch.capacity() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        // Timers due.
        let now = Instant::now();
        while let Some(&Reverse((t, i))) = timers.peek() {
            if t > now {
                break;
            }
            timers.pop();
            let leg = &mut legs[i];
            if leg.scheduled != Some(t) {
                continue;
            }
            leg.scheduled = None;
            if !leg.dirty {
                leg.dirty = true;
                dirty.push(i);
            }
        }
        for i in dirty.drain(..) {
            let leg = &mut legs[i];
            leg.dirty = false;
            leg.service(now, &mut out, &g, &mut counts, &mut lat);
            if leg.dead {
                continue;
            }
            // The latest time counts (other entries are stale), at most a second ahead.
            let due = leg.due(g.hold.load(Ordering::Relaxed)).min(now + Duration::from_secs(1));
            if leg.scheduled != Some(due) {
                leg.scheduled = Some(due);
                timers.push(Reverse((due, i)));
            }
        }
        if !out.is_empty() {
            out.flush(&socket);
        }
        counts.publish(&g);
        let wake = timers.peek().map_or(now + Duration::from_secs(1), |Reverse((t, _))| *t);
        tokio::select! {
            biased;
            _ = stop.changed() => return lat,
            x = incoming.recv(), if !closed => match x {
                Some(x) => fresh.push(x),
                None => closed = true,
            },
            _ = socket.readable() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

pub(super) fn opus_payload(bytes: usize) -> Vec<u8> {
    let mut enc = Encoder::new(AudioCodec::Opus);
    let mut tone = Tone::new(440.0);
    let mut frame = Vec::new();
    for _ in 0..10 {
        frame = enc.encode(&tone.frame());
    }
    frame.resize(bytes.max(frame.len() + 8), 0);
    frame
}

pub(super) fn pcmu_payload() -> Vec<u8> {
    let mut enc = Encoder::new(AudioCodec::Pcmu);
    let p = enc.encode(&Tone::new(440.0).frame());
    debug_assert_eq!(p.len(), FRAME);
    p
}
