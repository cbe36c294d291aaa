//! A device that also does media: a str0m WebRTC client playing the Web SDK's browser.
//!
//! It offers one audio m-line (sendrecv: Opus, PCMU, telephone-event), connects to the media
//! server through its TURN relay (sigv 1, as the SDK's `iceTransportPolicy: "relay"`) or
//! directly (sigv 2), sends a tone in whatever codec the answer put first, decodes what it
//! receives (G.711 and Opus, to 8 kHz PCM) and counts it, and sends RFC 4733 digits.
//!
//! ```no_run
//! # async fn demo(server: &emu_media::MediaServer) -> anyhow::Result<()> {
//! use emu_core::media_signal::MediaSignal;
//! use emu_testkit::media::{ClientOptions, MediaClient, TurnCreds};
//! let join = server.join("chan", "default", "alice", "uuid", &MediaSignal::default()).to_json();
//! let mut alice = MediaClient::new(ClientOptions::relay(TurnCreds::from_join_result(&join).unwrap())).await?;
//! let offer = MediaSignal::of(&alice.sdp_candidate_signal("chan"));
//! let answer = server.signal("chan", "alice", "uuid", "sdpCandidate", &offer).unwrap().to_json();
//! alice.accept(&answer)?;
//! alice.wait_connected(std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use emu_media::audio::{self, FRAME, Tone};
use emu_media::codec::{AudioCodec, Decoder, Encoder};
use parking_lot::Mutex;
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, CodecExtra, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt, TelephoneEvent};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use webrtc_util::Conn;

use crate::device::Device;
use crate::{DEFAULT_TIMEOUT, Envelope};

pub use emu_media;

mod options;

use options::VIDEO_FRAME_INTERVAL;
pub use options::{ClientOptions, ClientStats, TurnCreds, VIDEO_FRAME_BYTES, VideoLine};

#[derive(Default)]
struct Shared {
    stats: ClientStats,
    /// Received audio, decoded to 8 kHz (the last 30 s).
    pcm: Vec<i16>,
    error: Option<String>,
}

enum Cmd {
    Dtmf(char),
    Tone(Option<f64>),
    Close,
}

enum Transport {
    Direct(Arc<UdpSocket>),
    Relay { conn: Arc<dyn Conn + Send + Sync>, client: turn::client::Client },
}

impl Transport {
    async fn send(&self, buf: &[u8], to: SocketAddr) -> anyhow::Result<()> {
        match self {
            Transport::Direct(s) => s.send_to(buf, to).await.map(|_| ()).map_err(Into::into),
            Transport::Relay { conn, .. } => conn.send_to(buf, to).await.map(|_| ()).map_err(|e| anyhow!("{e}")),
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> anyhow::Result<(usize, SocketAddr)> {
        match self {
            Transport::Direct(s) => s.recv_from(buf).await.map_err(Into::into),
            Transport::Relay { conn, .. } => conn.recv_from(buf).await.map_err(|e| anyhow!("{e}")),
        }
    }
}

struct Pending {
    rtc: Rtc,
    pending: SdpPendingOffer,
    transport: Transport,
}

/// A WebRTC audio client (see the module docs).
pub struct MediaClient {
    opts: ClientOptions,
    shared: Arc<Mutex<Shared>>,
    changed: watch::Receiver<u64>,
    changed_tx: Arc<watch::Sender<u64>>,
    cmds: Option<mpsc::UnboundedSender<Cmd>>,
    pending: Option<Pending>,
    task: Option<tokio::task::JoinHandle<()>>,
    mid: Mid,
    video_mid: Option<Mid>,
    /// The offer, without candidates (as the SDK sends it).
    pub offer_sdp: String,
    /// The client's one candidate (relay or host), in SDP form.
    pub candidate: String,
    /// The local address of that candidate (the relayed address through TURN).
    pub local_addr: SocketAddr,
}

impl MediaClient {
    /// Binds a socket (and allocates a TURN relay when asked) and makes the offer.
    pub async fn new(opts: ClientOptions) -> anyhow::Result<Self> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let base = socket.local_addr()?;
        let (transport, cand) = match &opts.turn {
            None => (Transport::Direct(socket), Candidate::host(base, "udp")?),
            Some(t) => {
                let client = turn::client::Client::new(turn::client::ClientConfig {
                    stun_serv_addr: t.addr.to_string(),
                    turn_serv_addr: t.addr.to_string(),
                    username: t.username.clone(),
                    password: t.password.clone(),
                    realm: t.realm.clone(),
                    software: "emu-testkit".into(),
                    rto_in_ms: 0,
                    conn: socket,
                    vnet: None,
                })
                .await
                .map_err(|e| anyhow!("turn client: {e}"))?;
                client.listen().await.map_err(|e| anyhow!("turn listen: {e}"))?;
                let relay = tokio::time::timeout(DEFAULT_TIMEOUT, client.allocate())
                    .await
                    .context("TURN allocation timed out")?
                    .map_err(|e| anyhow!("TURN allocation refused: {e}"))?;
                let relayed = relay.local_addr().map_err(|e| anyhow!("{e}"))?;
                let conn: Arc<dyn Conn + Send + Sync> = Arc::new(relay);
                (Transport::Relay { conn, client }, Candidate::relayed(relayed, base, "udp")?)
            }
        };
        let local_addr = cand.addr();
        let mut b = Rtc::builder().clear_codecs();
        for c in &opts.codecs {
            b = match c {
                AudioCodec::Opus => b.enable_opus(true, false),
                AudioCodec::Pcmu => b.enable_pcmu(true, false),
                AudioCodec::Pcma => b.enable_pcma(true, false),
            };
        }
        if opts.telephone_event {
            b.codec_config().add_config(
                110.into(),
                None,
                Codec::Tele,
                Frequency::FORTY_EIGHT_KHZ,
                None,
                FormatParams::default(),
            );
            b.codec_config().add_config(
                126.into(),
                None,
                Codec::Tele,
                Frequency::EIGHT_KHZ,
                None,
                FormatParams::default(),
            );
        }
        if opts.video.is_some() {
            b = b.enable_vp8(true);
        }
        let mut rtc = b.build(Instant::now());
        let candidate = rtc.add_local_candidate(cand).context("candidate refused")?.to_sdp_string();
        let mut api = rtc.sdp_api();
        let mut video_mid = None;
        if opts.video == Some(VideoLine::BeforeAudio) {
            video_mid = Some(api.add_media(MediaKind::Video, Direction::SendRecv, None, None, None));
        }
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        if opts.video == Some(VideoLine::AfterAudio) {
            video_mid = Some(api.add_media(MediaKind::Video, Direction::SendRecv, None, None, None));
        }
        let (offer, pending) = api.apply().context("no offer")?;
        let offer_sdp = emu_media::sdp::strip_candidates(&offer.to_sdp_string());
        let (changed_tx, changed) = watch::channel(0);
        Ok(MediaClient {
            opts,
            shared: Arc::new(Mutex::new(Shared::default())),
            changed,
            changed_tx: Arc::new(changed_tx),
            cmds: None,
            pending: Some(Pending { rtc, pending, transport }),
            task: None,
            mid,
            video_mid,
            offer_sdp,
            candidate,
            local_addr,
        })
    }

    /// The `sdpCandidate` mediaSignal of sigv 1: the offer and the client's candidate.
    pub fn sdp_candidate_signal(&self, channel_id: &str) -> Value {
        crate::signal::sdp_candidate(channel_id, &self.offer_sdp, &self.candidate, &self.mid.to_string())
    }

    /// The `joinChannel` mediaSignal of sigv 2: the offer rides in the join, no candidates
    /// (`allowVideo` 1 when the client offers video).
    pub fn join_signal_v2(&self, channel_id: &str) -> Value {
        let video = u8::from(self.video_mid.is_some());
        json!({"api": "joinChannel", "serviceName": "alicom", "sdkVersion": "1.2.0", "data": {
            "channelId": channel_id,
            "channelConfig": {"callType": "chat", "outerBizId": "alicom", "allowVideo": video, "creator": 1, "sigVersion": 2},
            "sdpInfo": {"sdp": self.offer_sdp, "type": "offer"},
        }})
    }

    /// Applies the server's result (`sdpCandidate`, or a sigv 2 `joinChannel`): its answer and
    /// candidates; then starts the media loop.
    pub fn accept(&mut self, result: &Value) -> anyhow::Result<()> {
        if result["errorCode"].as_i64().unwrap_or(0) != 0 {
            bail!("the server refused the offer: {result}");
        }
        let sdp = result.pointer("/data/sdpInfo/sdp").and_then(Value::as_str).context("no answer in the result")?;
        if sdp.contains("a=candidate") {
            bail!("the answer carries candidates (docs/protocol.md#no-candidates-in-the-answer)");
        }
        let send_pt = first_audio_pt(sdp);
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| anyhow!("bad answer: {e}"))?;
        let Pending { mut rtc, pending, transport } = self.pending.take().context("already started")?;
        rtc.sdp_api().accept_answer(pending, answer).map_err(|e| anyhow!("answer refused: {e}"))?;
        let cands = result
            .pointer("/data/candidateList")
            .or_else(|| result.pointer("/data/candidateInfo"))
            .cloned()
            .unwrap_or(Value::Null);
        let cands = emu_media::sdp::candidate_strings(&cands);
        if cands.is_empty() {
            bail!("no server candidate in the result");
        }
        for c in cands {
            rtc.add_remote_candidate(Candidate::from_sdp_string(&c).map_err(|e| anyhow!("bad server candidate: {e}"))?);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.cmds = Some(tx);
        let ctx = Loop {
            rtc,
            transport,
            local: self.local_addr,
            mid: self.mid,
            video_mid: self.video_mid,
            send_pt,
            shared: self.shared.clone(),
            changed: self.changed_tx.clone(),
            tone: self.opts.tone_hz.map(Tone::new),
            duplicate_rtp: self.opts.duplicate_rtp,
        };
        self.task = Some(tokio::spawn(ctx.run(rx)));
        Ok(())
    }

    /// Through a testkit [`Device`] as the SDK does it: `sdpCandidate` with the offer and the
    /// relay candidate, then the server's `sdpCandidate` result. `join` is the joinChannel
    /// result envelope (its TURN servers are used).
    pub async fn connect_device(
        device: &mut Device,
        channel_id: &str,
        join: &Envelope,
        opts: ClientOptions,
    ) -> anyhow::Result<Self> {
        let ms = crate::device::media(join)?;
        let turn = TurnCreds::from_join_result(&ms).context("no TURN server in the joinChannel result")?;
        let mut c = MediaClient::new(ClientOptions { turn: Some(turn), ..opts }).await?;
        let signal = c.sdp_candidate_signal(channel_id);
        device.request("sdpCandidate", json!({"channelId": channel_id}), Some(&signal)).await?;
        let result = device.expect("sdpCandidate").await?;
        c.accept(&crate::device::media(&result)?)?;
        Ok(c)
    }

    pub fn stats(&self) -> ClientStats {
        self.shared.lock().stats.clone()
    }

    /// Audio received so far (8 kHz mono, at most the last 30 s).
    pub fn received_pcm(&self) -> Vec<i16> {
        self.shared.lock().pcm.clone()
    }

    /// Waits until `check` holds on the stats, or fails after `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        check: impl Fn(&ClientStats) -> bool,
    ) -> anyhow::Result<ClientStats> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            {
                let s = self.shared.lock();
                if check(&s.stats) {
                    return Ok(s.stats.clone());
                }
                if let Some(e) = &s.error {
                    bail!("media client failed while waiting for {what}: {e}");
                }
            }
            match tokio::time::timeout_at(deadline, self.changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("media client stopped while waiting for {what}"),
                Err(_) => bail!("timed out after {within:?} waiting for {what}; {:?}", self.stats()),
            }
        }
    }

    /// ICE and DTLS up.
    pub async fn wait_connected(&mut self, within: Duration) -> anyhow::Result<()> {
        self.wait_for(within, "connected", |s| s.connected).await.map(|_| ())
    }

    /// At least `n` whole video frames received.
    pub async fn wait_video_frames(&mut self, n: u64, within: Duration) -> anyhow::Result<ClientStats> {
        self.wait_for(within, &format!("{n} video frames"), |s| s.video_frames_rx >= n).await
    }

    /// At least `n` audio packets received.
    pub async fn wait_rtp(&mut self, n: u64, within: Duration) -> anyhow::Result<ClientStats> {
        self.wait_for(within, &format!("{n} audio packets"), |s| s.rtp_rx >= n).await
    }

    /// `digits` received as RFC 4733 events (in order, at the end of what was received).
    pub async fn wait_dtmf(&mut self, digits: &str, within: Duration) -> anyhow::Result<()> {
        let want: Vec<char> = digits.chars().collect();
        self.wait_for(within, &format!("DTMF {digits}"), |s| s.dtmf_rx.ends_with(&want)).await.map(|_| ())
    }

    /// Sends one key press as RFC 4733 telephone-events (100 ms); presses queue, 250 ms apart.
    pub fn send_dtmf(&self, digit: char) {
        if let Some(c) = &self.cmds {
            let _ = c.send(Cmd::Dtmf(digit));
        }
    }

    /// Changes the tone sent (`None`: silence).
    pub fn set_tone(&self, hz: Option<f64>) {
        if let Some(c) = &self.cmds {
            let _ = c.send(Cmd::Tone(hz));
        }
    }

    /// Stops the media loop and frees the TURN allocation.
    pub async fn close(mut self) {
        if let Some(c) = self.cmds.take() {
            let _ = c.send(Cmd::Close);
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

impl Drop for MediaClient {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The first payload type on the answer's audio m-line (the browser sends with it).
fn first_audio_pt(sdp: &str) -> Option<Pt> {
    let m = sdp.lines().find(|l| l.starts_with("m=audio"))?;
    m.split_whitespace().nth(3)?.parse::<u8>().ok().map(Pt::from)
}

struct Loop {
    rtc: Rtc,
    transport: Transport,
    local: SocketAddr,
    mid: Mid,
    video_mid: Option<Mid>,
    send_pt: Option<Pt>,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<watch::Sender<u64>>,
    tone: Option<Tone>,
    /// `ClientOptions::duplicate_rtp`.
    duplicate_rtp: bool,
}

impl Loop {
    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn fail(&self, e: String) {
        self.shared.lock().error = Some(e);
        self.bump();
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let mut buf = vec![0u8; 2048];
        let mut next_audio = Instant::now() + Duration::from_millis(20);
        let mut next_video = Instant::now() + VIDEO_FRAME_INTERVAL;
        let mut video_frame: u64 = 0;
        let mut tx_time: u64 = 0;
        let mut encoder: Option<Encoder> = None;
        let mut decoder: Option<Decoder> = None;
        let mut last_dtmf: Option<u64> = None;
        let mut connected = false;
        // Key presses wait for the previous event to end (events may not overlap).
        let mut dtmf_queue: std::collections::VecDeque<char> = Default::default();
        let mut dtmf_next = Instant::now();
        loop {
            // Drain to the next timeout.
            let timeout = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let copies = if self.duplicate_rtp && emu_media::stun::is_rtp(&t.contents) { 2 } else { 1 };
                        for _ in 0..copies {
                            self.shared.lock().stats.packets_tx += 1;
                            if let Err(e) = self.transport.send(&t.contents, t.destination).await {
                                tracing::debug!("client send: {e}");
                            }
                        }
                    }
                    Ok(Output::Event(e)) => match e {
                        Event::Connected => {
                            connected = true;
                            self.shared.lock().stats.connected = true;
                            self.bump();
                        }
                        Event::MediaData(d) => {
                            let mut sh = self.shared.lock();
                            if let CodecExtra::Tele(ev) = d.codec_extra {
                                if last_dtmf != Some(d.time.numer()) {
                                    last_dtmf = Some(d.time.numer());
                                    if let Some(digit) = audio::dtmf_digit(ev.event) {
                                        sh.stats.dtmf_rx.push(digit);
                                    }
                                }
                            } else if d.params.spec().codec.is_video() {
                                sh.stats.video_frames_rx += 1;
                                sh.stats.video_bytes_rx += d.data.len() as u64;
                            } else if let Some(codec) = AudioCodec::from_str0m(d.params.spec().codec) {
                                sh.stats.rtp_rx += 1;
                                sh.stats.rtp_bytes_rx += d.data.len() as u64;
                                sh.stats.rx_codec = Some(codec);
                                if decoder.as_ref().is_none_or(|x| x.codec() != codec) {
                                    decoder = Some(Decoder::new(codec));
                                }
                                let pcm = decoder.as_mut().expect("set above").decode(&d.data);
                                sh.pcm.extend_from_slice(&pcm);
                                let cap = audio::RATE as usize * 30;
                                if sh.pcm.len() > cap {
                                    let cut = sh.pcm.len() - cap;
                                    sh.pcm.drain(..cut);
                                }
                            }
                            drop(sh);
                            self.bump();
                        }
                        Event::KeyframeRequest(_) => {
                            self.shared.lock().stats.keyframe_requests_rx += 1;
                            self.bump();
                        }
                        _ => {}
                    },
                    Err(e) => {
                        self.fail(format!("rtc: {e}"));
                        return;
                    }
                }
            };
            let wait = match (connected, self.video_mid.is_some()) {
                (true, true) => timeout.min(next_audio).min(next_video),
                (true, false) => timeout.min(next_audio),
                (false, _) => timeout,
            };
            tokio::select! {
                r = self.transport.recv(&mut buf) => match r {
                    Ok((n, src)) => {
                        self.shared.lock().stats.packets_rx += 1;
                        if let Ok(recv) = Receive::new(Protocol::Udp, src, self.local, &buf[..n])
                            && let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), recv)) {
                            tracing::debug!("client input: {e}");
                        }
                    }
                    Err(e) => {
                        self.fail(format!("socket: {e}"));
                        return;
                    }
                },
                _ = tokio::time::sleep_until(wait.into()) => {
                    let now = Instant::now();
                    if connected && self.video_mid.is_some() && now >= next_video {
                        next_video = (next_video + VIDEO_FRAME_INTERVAL).max(now);
                        self.send_video_frame(video_frame, now);
                        video_frame += 1;
                    }
                    if connected && now >= next_audio {
                        next_audio += Duration::from_millis(20);
                        if now > next_audio + Duration::from_millis(200) {
                            next_audio = now + Duration::from_millis(20);
                        }
                        // A key press rides on an audio write (str0m's telephone_event).
                        let press = if now >= dtmf_next { dtmf_queue.pop_front() } else { None };
                        if press.is_some() {
                            dtmf_next = now + Duration::from_millis(250);
                        }
                        self.send_frame(&mut encoder, &mut tx_time, now, press);
                    } else if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        self.fail(format!("timeout: {e}"));
                        return;
                    }
                }
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Dtmf(d)) => dtmf_queue.push_back(d),
                    Some(Cmd::Tone(hz)) => self.tone = hz.map(Tone::new),
                    Some(Cmd::Close) | None => {
                        if let Transport::Relay { client, .. } = &self.transport {
                            let _ = client.close().await;
                        }
                        return;
                    }
                },
            }
        }
    }

    /// One synthetic VP8 frame: the first and every 30th a keyframe (bit 0 of the first byte
    /// clear, RFC 6386 §9.1), the rest of it a pattern.
    fn send_video_frame(&mut self, n: u64, now: Instant) {
        let Some(mid) = self.video_mid else { return };
        let Some(pt) = self.rtc.media(mid).and_then(|m| m.remote_pts().first().copied()) else { return };
        let Some(writer) = self.rtc.writer(mid) else { return };
        let mut frame: Vec<u8> = (0..VIDEO_FRAME_BYTES).map(|i| (i as u64 ^ n) as u8).collect();
        frame[0] = if n.is_multiple_of(30) { 0x10 } else { 0x11 };
        let at = MediaTime::new(n * 3000, Frequency::NINETY_KHZ);
        if writer.write(pt, now, at, frame).is_ok() {
            self.shared.lock().stats.video_frames_tx += 1;
        }
    }

    /// The payload type and codec to send with: the answer's first audio codec.
    fn send_params(&mut self) -> Option<(Pt, AudioCodec, Frequency, bool)> {
        let writer = self.rtc.writer(self.mid)?;
        let params: Vec<_> = writer.payload_params().copied().collect();
        let p = params
            .iter()
            .find(|p| Some(p.pt()) == self.send_pt && AudioCodec::from_str0m(p.spec().codec).is_some())
            .or_else(|| params.iter().find(|p| AudioCodec::from_str0m(p.spec().codec).is_some()))?;
        let codec = AudioCodec::from_str0m(p.spec().codec)?;
        let freq = p.spec().clock_rate;
        let tele = params.iter().any(|q| q.spec().codec == Codec::Tele && q.spec().clock_rate == freq);
        Some((p.pt(), codec, freq, tele))
    }

    fn send_frame(&mut self, encoder: &mut Option<Encoder>, tx_time: &mut u64, now: Instant, press: Option<char>) {
        let Some((pt, codec, freq, tele)) = self.send_params() else { return };
        if encoder.as_ref().is_none_or(|e| e.codec() != codec) {
            *encoder = Some(Encoder::new(codec));
        }
        let frame = match &mut self.tone {
            Some(t) => t.frame(),
            None => [0i16; FRAME],
        };
        let payload = encoder.as_mut().expect("set above").encode(&frame);
        let at = MediaTime::new(*tx_time, freq);
        *tx_time += codec.units_per_frame();
        let Some(mut writer) = self.rtc.writer(self.mid) else { return };
        let mut sent_dtmf = false;
        if let Some(code) = press.and_then(audio::dtmf_event_code) {
            if tele {
                writer = writer.telephone_event(TelephoneEvent {
                    event: code,
                    end: true,
                    volume: 10,
                    duration: Duration::from_millis(100),
                });
                sent_dtmf = true;
            } else {
                tracing::warn!("no telephone-event negotiated; DTMF not sent");
            }
        }
        match writer.write(pt, now, at, payload) {
            Ok(()) => {
                let mut sh = self.shared.lock();
                sh.stats.rtp_tx += 1;
                sh.stats.tx_codec = Some(codec);
                if sent_dtmf {
                    sh.stats.dtmf_tx += 1;
                }
            }
            Err(e) => {
                if sent_dtmf {
                    self.fail(format!("dtmf: {e}"));
                } else {
                    tracing::debug!("client write: {e}");
                }
            }
        }
    }
}
