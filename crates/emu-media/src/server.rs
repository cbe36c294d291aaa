//! The media server: legs (one str0m `Rtc` each), channels, bridges, the I/O task.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use emu_core::{Clock, Millis};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec, FormatParams, PayloadParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt, TelephoneEvent};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, RtpPacket, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, PacerReason, Reason, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, watch};

use crate::audio::{self, FRAME, Tone};
use crate::codec::{AudioCodec, Decoder, Encoder};
use crate::recorder::Recorder;
use crate::srtp::{self, KeySlot, RtpHeader, RxStream, Srtp};
use crate::stun::{self, Kind};
use crate::turn::TurnRelay;
use crate::udp::{self, Parked, RecvBatch, SendQueue};
use crate::{Audio, CodecPreference, Endpoint, MediaConfig, MediaEvent, sdp};

type LegId = u64;

/// Error codes of failed ARTC results (the SDK only reports them: reportStatus 32 / 34).
const ERR_BAD_OFFER: i64 = 40001;
const ERR_NO_LEG: i64 = 40004;

const SYNTH_PERIOD: Duration = Duration::from_millis(20);
/// How long the pacer's "handle a timeout before the next poll" may wait (see `State::drain`).
const PACER_DEFER: Duration = Duration::from_millis(40);
/// A leg's first ICE checks are answered this much later. On loopback Chrome's ICE connects
/// within a millisecond of `addIceCandidate`, sometimes before that call's promise resolves,
/// and the Web SDK then misses "ICE connected" for good (docs/protocol.md#no-candidates-in-the-answer). A
/// real network's round trip hides that race; this restores a small one.
const ICE_HOLD: Duration = Duration::from_millis(30);
const DTMF_DURATION: Duration = Duration::from_millis(100);
const INBAND_DTMF_SAMPLES: usize = 800; // 100 ms
const INBAND_GAP_SAMPLES: usize = 480; // 60 ms
/// Datagrams taken from the socket per system call, and per turn of the I/O task (the timers
/// and the queued sends are served between turns).
const RECV_BATCH: usize = 64;
const RECV_BATCHES_PER_TURN: usize = 4;
/// Socket buffers asked for: the default receive buffer (208 KiB, ~250 datagrams) overflows
/// while the I/O task synthesizes a few hundred phones' frames.
const SOCKET_RECV_BUFFER: usize = 4 << 20;
const SOCKET_SEND_BUFFER: usize = 2 << 20;

/// A finished recording.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingInfo {
    pub file: String,
    pub channel_id: String,
    pub tenant: String,
    pub duration_ms: u64,
    pub bytes: u64,
    pub created_ms: Millis,
    /// Download URL (`http_base` + `/recordings/<file>`).
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum LegState {
    /// Joined; no offer yet (sigv 1 before `sdpCandidate`).
    New,
    /// Offer answered; ICE/DTLS under way.
    Connecting,
    Connected,
    Disconnected,
    /// The Rtc reported an error or closed.
    Closed,
}

#[derive(Debug, Default, Clone, Copy)]
struct LegStats {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    rtp_in: u64,
    rtp_bytes_in: u64,
    rtp_out: u64,
    rtp_bytes_out: u64,
    /// RTP this server decrypted / encrypted itself (`Direct`), not str0m.
    rtp_direct_in: u64,
    rtp_direct_out: u64,
    dtmf_in: u64,
    dtmf_out: u64,
    loss_in: Option<f32>,
    loss_out: Option<f32>,
    rtt: Option<Duration>,
    last_packet: Option<Instant>,
    last_rtp_in: Option<Instant>,
    connected_at: Option<Instant>,
}

/// The codec a leg sends with: the first audio codec of its answer.
#[derive(Debug, Clone, Copy)]
struct SendCodec {
    codec: AudioCodec,
    pt: Pt,
    /// The telephone-event payload type at the same clock rate, if negotiated.
    tele: Option<Pt>,
}

struct Leg {
    id: LegId,
    channel_id: String,
    rtc_id: String,
    uuid: String,
    tenant: String,
    prefer: CodecPreference,
    sigv: u8,
    ice: IceCreds,
    rtc: Option<Rtc>,
    mid: Option<Mid>,
    send: Option<SendCodec>,
    state: LegState,
    turn_user: Option<String>,
    addrs: Vec<SocketAddr>,
    /// Where the leg's DTLS/SRTP comes from: the nominated path (STUN checks also arrive on
    /// candidate pairs that are never used).
    media_from: Option<SocketAddr>,
    /// When str0m last asked to be woken (the latest answer counts).
    timeout: Option<Instant>,
    /// The leg's live entry in `State::timers` (no later than `timeout`; older entries are
    /// stale). A later `timeout` does not push a new entry: the live one re-arms when it fires.
    scheduled: Option<Instant>,
    /// The leg's outgoing RTP timeline (str0m's RTP mode: this server numbers and stamps the
    /// packets): the next sequence number, and the RTP timestamp of the next 20 ms.
    tx_seq: u64,
    tx_time: u32,
    /// Forwarded audio keeps its sender's timestamp spacing: (sender leg, its SSRC, offset
    /// added to its timestamps). Reset by generated audio, so a new source starts a talkspurt.
    fwd: Option<(LegId, Ssrc, u32)>,
    /// The telephone-event being sent, one packet per 20 ms tick.
    dtmf_out: Option<DtmfOut>,
    decoder: Option<Decoder>,
    encoder: Option<Encoder>,
    /// RTP timestamp of the last telephone-event received (its packets repeat it).
    last_dtmf: Option<u32>,
    /// Phone key presses waiting to go out as telephone-events, and when the next may start
    /// (events may not overlap: RFC 4733 §2.5.1.5, str0m's 50 ms pause).
    dtmf_queue: VecDeque<char>,
    dtmf_next: Option<Instant>,
    stats: LegStats,
    created: Instant,
    /// In `State::dirty`.
    dirty: bool,
    /// STUN from this leg is held until then (set by its first STUN packet; see `ICE_HOLD`).
    ice_hold_until: Option<Instant>,
    /// Frames were written (str0m packetizes them in its timeout handling) or a timer is due:
    /// the next drain feeds the Rtc a timeout first, so written packets leave in that drain
    /// rather than after a trip through the timers.
    wants_timeout: bool,
    /// Where this leg's audio goes, as of `State::topology` = the first field.
    route: Option<(u64, Route)>,
    /// The local payload type that carries a sender's payload params (passthrough), cached.
    passthrough: Option<(PayloadParams, Option<Pt>)>,
    /// The leg's SRTP done here rather than by str0m, once its handshake is over.
    direct: Direct,
}

/// A leg's audio encrypted and decrypted by this server (`crate::srtp`), not str0m: per packet,
/// str0m's receive path, send queue, pacer and timeout cost more than the crypto itself. str0m
/// keeps ICE, DTLS, RTCP and the first packet of every received stream, which gives the
/// stream's SRTP index; a leg sends through str0m until str0m has sent one RTP packet, whose
/// header (SSRC, the mid extension) and destination (the nominated path) the leg then reuses.
struct Direct {
    /// Filled by the leg's DTLS handshake (`srtp::with_key_slot`).
    keys: KeySlot,
    provider: Arc<CryptoProvider>,
    srtp: Option<Srtp>,
    /// Received streams this server decrypts, by SSRC (a handful at most: the newest kept).
    rx: Vec<RxStream>,
    /// The header of str0m's last RTP packet on this leg.
    tx_header: Option<([u8; MAX_TEMPLATE], usize)>,
    /// Where str0m sends this leg's RTP and RTCP.
    dest: Option<SocketAddr>,
}

/// The longest RTP header kept as a template (12 bytes, the mid extension, room to spare).
const MAX_TEMPLATE: usize = 64;
const MAX_RX_STREAMS: usize = 4;

impl Direct {
    fn new(keys: KeySlot, provider: Arc<CryptoProvider>) -> Direct {
        Direct { keys, provider, srtp: None, rx: Vec::new(), tx_header: None, dest: None }
    }

    /// The transforms, made when the handshake's keys are first needed.
    fn srtp(&mut self) -> Option<&mut Srtp> {
        if self.srtp.is_none() {
            self.srtp = Srtp::new(&self.provider, self.keys.get()?);
        }
        self.srtp.as_mut()
    }

    /// str0m decrypted packet `index` of stream `ssrc`: this server decrypts the stream's next
    /// packets itself.
    fn seed(&mut self, ssrc: u32, index: u64) {
        if self.srtp().is_none() {
            return;
        }
        if let Some(rx) = self.rx.iter_mut().find(|r| r.ssrc == ssrc) {
            rx.accept(index);
            return;
        }
        if self.rx.len() == MAX_RX_STREAMS {
            self.rx.remove(0);
        }
        self.rx.push(RxStream::new(ssrc, index));
    }

    /// Watches a datagram str0m sends on this leg.
    fn observe(&mut self, datagram: &[u8], dest: SocketAddr) {
        if stun::classify(datagram) != Kind::Rtp {
            return;
        }
        self.dest = Some(dest);
        if let Some(h) = RtpHeader::parse(datagram)
            && h.len <= MAX_TEMPLATE
        {
            let mut t = [0u8; MAX_TEMPLATE];
            t[..h.len].copy_from_slice(&datagram[..h.len]);
            self.tx_header = Some((t, h.len));
        }
    }

    /// Decrypts RTP of a stream this server took over (`seed`) into `out`.
    fn receive(&mut self, buf: &[u8], h: &RtpHeader, out: &mut Vec<u8>) -> Received {
        let Some(rx) = self.rx.iter_mut().find(|r| r.ssrc == h.ssrc) else { return Received::NotOurs };
        let index = rx.index_of(h.seq);
        if rx.is_replay(index) {
            return Received::Replay;
        }
        let Some(srtp) = self.srtp.as_mut() else { return Received::NotOurs };
        if !srtp.unprotect(buf, h, index, out) {
            return Received::NotOurs;
        }
        rx.accept(index);
        Received::Decrypted
    }

    /// Encrypts one RTP packet (packet index = extended sequence number) and queues it; the
    /// datagram's size, or None when the leg is not ready for it.
    fn send(
        &mut self,
        out: &mut SendQueue,
        pt: Pt,
        time: u32,
        marker: bool,
        index: u64,
        payload: &[u8],
    ) -> Option<usize> {
        let (dest, (mut header, len)) = (self.dest?, self.tx_header?);
        header[1] = (u8::from(marker) << 7) | *pt;
        header[2..4].copy_from_slice(&(index as u16).to_be_bytes());
        header[4..8].copy_from_slice(&time.to_be_bytes());
        let srtp = self.srtp()?;
        let mut datagram = out.buffer();
        if !srtp.protect(&header[..len], payload, index, &mut datagram) {
            return None;
        }
        let size = datagram.len();
        out.push(dest, datagram);
        Some(size)
    }
}

/// What `Direct::receive` made of a datagram.
enum Received {
    /// Not a stream this server decrypts, or not authentic: str0m's to handle.
    NotOurs,
    Replay,
    Decrypted,
}

/// A received RTP packet, decrypted by str0m or by this server (`Direct`).
struct Heard<'a> {
    pt: Pt,
    ssrc: Ssrc,
    time: u32,
    marker: bool,
    payload: &'a [u8],
    /// When it arrived.
    at: Instant,
}

impl<'a> Heard<'a> {
    fn of(p: &'a RtpPacket) -> Heard<'a> {
        let h = &p.header;
        Heard {
            pt: h.payload_type,
            ssrc: h.ssrc,
            time: h.timestamp,
            marker: h.marker,
            payload: &p.payload,
            at: p.timestamp,
        }
    }
}

/// Where a device leg's audio goes (see `State::route`).
#[derive(Debug, Clone, Copy)]
struct Route {
    side: usize,
    /// The device leg of the other side.
    peer: Option<LegId>,
    /// The other side is a phone that echoes.
    echo: bool,
    /// The other side is a phone.
    phone: bool,
}

/// A telephone-event going out (RFC 4733 §2.5): every 20 ms a packet with the same RTP
/// timestamp and the duration so far, the first one marked; the last one (E bit) three times.
#[derive(Debug, Clone, Copy)]
struct DtmfOut {
    pt: Pt,
    event: u8,
    time: u32,
    freq: Frequency,
    /// Duration reported by the next packet.
    elapsed: Duration,
    /// End packets still to send after the first one.
    repeats: u8,
}

impl DtmfOut {
    /// The next packet's payload and marker bit, or None when the event is over.
    fn next(&mut self) -> Option<([u8; 4], bool)> {
        if self.elapsed > DTMF_DURATION {
            if self.repeats == 0 {
                return None;
            }
            self.repeats -= 1;
        }
        let end = self.elapsed >= DTMF_DURATION;
        let report = TelephoneEvent { event: self.event, end, volume: 10, duration: self.elapsed.min(DTMF_DURATION) };
        let marker = self.elapsed == SYNTH_PERIOD;
        self.elapsed += SYNTH_PERIOD;
        Some((report.to_bytes(self.freq)?, marker))
    }
}

impl Leg {
    /// The payload params of a payload type this leg negotiated (both directions use the
    /// offer's numbers).
    fn params_of(&self, pt: Pt) -> Option<PayloadParams> {
        self.rtc.as_ref()?.codec_config().params().iter().find(|p| p.pt() == pt).copied()
    }

    /// The params the remote side accepts, in our preference order.
    fn send_params(&self) -> Vec<PayloadParams> {
        let (Some(mid), Some(rtc)) = (self.mid, self.rtc.as_ref()) else { return Vec::new() };
        let Some(media) = rtc.media(mid) else { return Vec::new() };
        rtc.codec_config().params().iter().filter(|p| media.remote_pts().contains(&p.pt())).copied().collect()
    }

    fn send_codec(&mut self) -> Option<SendCodec> {
        if self.send.is_some() {
            return self.send;
        }
        let params = self.send_params();
        let first = params.iter().find(|p| AudioCodec::from_str0m(p.spec().codec).is_some())?;
        let clock = first.spec().clock_rate;
        let tele =
            params.iter().find(|p| p.spec().codec == Codec::Tele && p.spec().clock_rate == clock).map(|p| p.pt());
        self.send = Some(SendCodec { codec: AudioCodec::from_str0m(first.spec().codec)?, pt: first.pt(), tele });
        self.send
    }

    fn decode(&mut self, codec: AudioCodec, payload: &[u8]) -> Vec<i16> {
        if self.decoder.as_ref().is_none_or(|d| d.codec() != codec) {
            self.decoder = Some(Decoder::new(codec));
        }
        self.decoder.as_mut().expect("set above").decode(payload)
    }

    /// The local payload type that carries `params` unchanged, if this leg negotiated it.
    fn passthrough_pt(&mut self, params: PayloadParams) -> Option<Pt> {
        if let Some((p, pt)) = self.passthrough
            && p == params
        {
            return pt;
        }
        let pt = (|| {
            let pt = self.rtc.as_ref()?.codec_config().match_params(params)?.pt();
            self.send_params().iter().any(|p| p.pt() == pt).then_some(pt)
        })();
        if self.mid.is_some() && self.rtc.is_some() {
            self.passthrough = Some((params, pt));
        }
        pt
    }

    fn is_connected(&self) -> bool {
        self.state == LegState::Connected
    }

    /// Sends one RTP packet on the leg's timeline: encrypted here and queued on `out` once the
    /// leg is ready for that (`Direct`), else queued on str0m's send stream (str0m encrypts and
    /// sends it at the leg's next timeout, see `wants_timeout`). True when str0m has it: the
    /// leg then needs a drain.
    fn write_rtp(
        &mut self,
        out: &mut SendQueue,
        pt: Pt,
        time: u32,
        marker: bool,
        wallclock: Instant,
        payload: &[u8],
    ) -> bool {
        let len = payload.len() as u64;
        if self.is_connected()
            && let Some(size) = self.direct.send(out, pt, time, marker, self.tx_seq, payload)
        {
            self.tx_seq += 1;
            self.stats.rtp_out += 1;
            self.stats.rtp_bytes_out += len;
            self.stats.rtp_direct_out += 1;
            self.stats.packets_out += 1;
            self.stats.bytes_out += size as u64;
            return false;
        }
        let (Some(mid), Some(rtc)) = (self.mid, self.rtc.as_mut()) else { return false };
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else { return false };
        tx.write_rtp(
            RtpWrite::new(pt, SeqNo::from(self.tx_seq), time, wallclock, Arc::<[u8]>::from(payload)).marker(marker),
        );
        self.tx_seq += 1;
        self.stats.rtp_out += 1;
        self.stats.rtp_bytes_out += len;
        self.wants_timeout = true;
        true
    }

    /// Encodes 8 kHz PCM in this leg's codec, in 20 ms frames, on its own timeline. True when
    /// str0m has packets to send (see `write_rtp`).
    fn write_pcm(&mut self, out: &mut SendQueue, pcm: &[i16], now: Instant) -> bool {
        if !self.is_connected() {
            return false;
        }
        let Some(send) = self.send_codec() else { return false };
        if self.encoder.as_ref().is_none_or(|e| e.codec() != send.codec) {
            self.encoder = Some(Encoder::new(send.codec));
        }
        // After forwarded audio, this is a new source: a new talkspurt.
        let mut marker = self.fwd.take().is_some();
        let mut wrote = false;
        for frame in pcm.chunks(FRAME) {
            let Some(enc) = self.encoder.as_mut() else { return wrote };
            let payload = enc.encode(frame);
            wrote |= self.write_rtp(out, send.pt, self.tx_time, marker, now, &payload);
            marker = false;
            self.tx_time = self
                .tx_time
                .wrapping_add((frame.len() as u64 * send.codec.clock_rate() as u64 / audio::RATE as u64) as u32);
        }
        wrote
    }

    /// Sends the next packet of the telephone-event in progress, if any: Some(true when str0m
    /// has it), None when the event is over.
    fn dtmf_tick(&mut self, out: &mut SendQueue, now: Instant) -> Option<bool> {
        let mut event = self.dtmf_out?;
        let Some((payload, marker)) = event.next() else {
            self.dtmf_out = None;
            return None;
        };
        self.dtmf_out = Some(event);
        Some(self.write_rtp(out, event.pt, event.time, marker, now, &payload))
    }

    fn stats_json(&self, clock_now: Millis, now: Instant) -> Value {
        let s = &self.stats;
        let ms_at = |t: Option<Instant>| {
            t.map(|t| clock_now.saturating_sub(now.saturating_duration_since(t).as_millis() as Millis))
        };
        json!({
            "rtcId": self.rtc_id,
            "uuid": self.uuid,
            "tenant": self.tenant,
            "sigv": self.sigv,
            "state": self.state,
            "codec": self.send.map(|c| c.codec.to_string()),
            "telephoneEvent": self.send.map(|c| c.tele.is_some()),
            "remoteAddress": self.media_from.or(self.addrs.last().copied()).map(|a| a.to_string()),
            "packetsIn": s.packets_in,
            "bytesIn": s.bytes_in,
            "packetsOut": s.packets_out,
            "bytesOut": s.bytes_out,
            "rtpPacketsIn": s.rtp_in,
            "rtpBytesIn": s.rtp_bytes_in,
            "rtpPacketsOut": s.rtp_out,
            "rtpBytesOut": s.rtp_bytes_out,
            "rtpDirectIn": s.rtp_direct_in,
            "rtpDirectOut": s.rtp_direct_out,
            "dtmfIn": s.dtmf_in,
            "dtmfOut": s.dtmf_out,
            "lossIn": s.loss_in,
            "lossOut": s.loss_out,
            "rttMs": s.rtt.map(|d| d.as_secs_f64() * 1000.0),
            "lastPacketMs": ms_at(s.last_packet),
            "lastRtpInMs": ms_at(s.last_rtp_in),
            "connectedMs": ms_at(s.connected_at),
            "ageMs": now.saturating_duration_since(self.created).as_millis() as u64,
        })
    }
}

fn freq_of(codec: AudioCodec) -> Frequency {
    match codec.clock_rate() {
        48000 => Frequency::FORTY_EIGHT_KHZ,
        _ => Frequency::EIGHT_KHZ,
    }
}

/// What a phone sends.
enum Source {
    Silence,
    Echo,
    Tone(Tone),
    Wav { pcm: Arc<Vec<i16>>, pos: usize },
}

/// The phone side of a bridge.
struct Phone {
    /// 0 = caller side, 1 = callee side.
    side: usize,
    source: Source,
    /// In-band DTMF waiting (for legs without telephone-event).
    inband: VecDeque<char>,
    /// (tone, samples left of it, silence after it).
    playing: Option<(Tone, usize, usize)>,
    /// The device leg it talks to, as of `State::topology` = the first field.
    device: Option<(u64, Option<LegId>)>,
}

impl Phone {
    /// The phone's next 20 ms, or None when it only echoes.
    fn next_frame(&mut self) -> Option<[i16; FRAME]> {
        let mut f = [0i16; FRAME];
        let mut have = false;
        match &mut self.source {
            Source::Silence => have = true,
            Source::Echo => {}
            Source::Tone(t) => {
                t.fill(&mut f);
                have = true;
            }
            Source::Wav { pcm, pos } => {
                if !pcm.is_empty() {
                    for s in f.iter_mut() {
                        *s = pcm[*pos];
                        *pos = (*pos + 1) % pcm.len();
                    }
                }
                have = true;
            }
        }
        if !have {
            return None;
        }
        // In-band DTMF replaces the audio while it plays.
        if self.playing.is_none()
            && let Some(d) = self.inband.pop_front()
            && let Some((lo, hi, _)) = audio::dtmf_key(d)
        {
            self.playing = Some((Tone::dual(lo, hi, 7000.0), INBAND_DTMF_SAMPLES, INBAND_GAP_SAMPLES));
        }
        if let Some((tone, left, gap)) = &mut self.playing {
            for s in f.iter_mut() {
                if *left > 0 {
                    let mut one = [0i16; 1];
                    tone.fill(&mut one);
                    *s = one[0];
                    *left -= 1;
                } else if *gap > 0 {
                    *s = 0;
                    *gap -= 1;
                }
            }
            if *left == 0 && *gap == 0 {
                self.playing = None;
            }
        }
        Some(f)
    }
}

struct Bridge {
    sides: [Endpoint; 2],
    record: bool,
    phone: Option<Phone>,
}

impl Bridge {
    fn side_of(&self, rtc_id: &str) -> Option<usize> {
        self.sides.iter().position(|e| matches!(e, Endpoint::Device { rtc_id: r } if r == rtc_id))
    }
}

fn endpoint_json(e: &Endpoint) -> Value {
    match e {
        Endpoint::Device { rtc_id } => json!({"device": rtc_id}),
        Endpoint::Phone { number, audio } => json!({"phone": number, "audio": audio}),
    }
}

struct Channel {
    tenant: String,
    legs: HashMap<String, LegId>,
    bridge: Option<Bridge>,
    recorder: Option<Recorder>,
    record_file: Option<String>,
    created_ms: Millis,
}

/// Global counters.
#[derive(Debug, Default, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
struct Counters {
    packets_in: u64,
    packets_out: u64,
    /// Datagrams that are not STUN, DTLS, RTP or RTCP.
    garbage: u64,
    /// STUN for no known ufrag, or DTLS/RTP from an address no leg has validated.
    unknown_source: u64,
    /// Datagrams str0m refused to parse.
    unparseable: u64,
    /// SRTP packets dropped as replays (a duplicate, or older than the replay window).
    rtp_replayed: u64,
    send_errors: u64,
    legs_created: u64,
    legs_released: u64,
    offers_rejected: u64,
    events_dropped: u64,
}

impl Counters {
    /// Adds another worker's counters.
    fn add(&mut self, o: &Counters) {
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.garbage += o.garbage;
        self.unknown_source += o.unknown_source;
        self.unparseable += o.unparseable;
        self.rtp_replayed += o.rtp_replayed;
        self.send_errors += o.send_errors;
        self.legs_created += o.legs_created;
        self.legs_released += o.legs_released;
        self.offers_rejected += o.offers_rejected;
        self.events_dropped += o.events_dropped;
    }
}

/// The server's DTLS certificate. Generating it is the first use of the crypto library's random
/// generator, whose entropy set-up takes ~30 ms of CPU: done on a thread of its own from start,
/// so the emulator is ready at once; the first leg waits for it only if it comes sooner.
struct DtlsIdentity {
    provider: Arc<CryptoProvider>,
    cert: OnceLock<DtlsCert>,
}

impl DtlsIdentity {
    fn start(provider: Arc<CryptoProvider>) -> Arc<Self> {
        let id = Arc::new(DtlsIdentity { provider, cert: OnceLock::new() });
        let bg = id.clone();
        std::thread::Builder::new()
            .name("dtls-cert".into())
            .spawn(move || {
                bg.get();
            })
            .map_err(|e| tracing::warn!("no thread for the DTLS certificate ({e}); made at the first call"))
            .ok();
        id
    }

    fn get(&self) -> DtlsCert {
        self.cert
            .get_or_init(|| {
                // The rust-crypto provider this crate is built with always generates certificates.
                self.provider.dtls_provider.generate_certificate().expect("the DTLS provider generates certificates")
            })
            .clone()
    }
}

struct State {
    cfg: Arc<MediaConfig>,
    clock: Clock,
    socket: Arc<UdpSocket>,
    /// Datagrams to send, flushed in one go after each batch of work.
    out: SendQueue,
    cand_addr: SocketAddr,
    provider: Arc<CryptoProvider>,
    /// Made on a background thread at start (see [`DtlsIdentity`]).
    cert: Arc<DtlsIdentity>,
    turn: Option<Arc<TurnRelay>>,
    events: mpsc::Sender<MediaEvent>,
    channels: FxHashMap<String, Channel>,
    legs: FxHashMap<LegId, Leg>,
    by_ufrag: FxHashMap<String, LegId>,
    by_addr: FxHashMap<SocketAddr, LegId>,
    /// Legs with input, written frames or a due timeout since they were last drained, in the
    /// order they were touched (so events come out in the order their datagrams came in).
    dirty: VecDeque<LegId>,
    /// RTP datagrams of legs bridged with a synthesized phone, since the phone's last frame:
    /// their audio only goes to the recording, so they are fed to str0m right after that frame
    /// (one timeout and one drain per 20 ms for both directions instead of two).
    deferred: Parked<LegId>,
    /// Legs sending a telephone-event (`Leg::dtmf_out`).
    dtmf_active: Vec<LegId>,
    /// (channel, device leg) with phone key presses queued (`Leg::dtmf_queue`).
    phone_dtmf_pending: Vec<(String, LegId)>,
    /// STUN packets held by `ICE_HOLD`, in arrival order: (release time, source, datagram).
    held_stun: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    /// Bumped whenever legs, channels or bridges change: cached routes older than this are
    /// recomputed.
    topology: u64,
    timers: BinaryHeap<Reverse<(Instant, LegId)>>,
    next_synth: Option<Instant>,
    next_leg: LegId,
    recordings: Vec<RecordingInfo>,
    wav_cache: HashMap<PathBuf, Arc<Vec<i16>>>,
    /// Final statistics of released channels, newest last.
    recent: VecDeque<(String, Value)>,
    counters: Counters,
    /// The payload of the packet being routed, decrypted by `Direct` (reused).
    plain: Vec<u8>,
}

const RECENT_KEPT: usize = 1000;

/// The media server. See the crate docs.
pub struct MediaServer {
    /// `media.workers` I/O tasks, each with its own UDP port and its share of the channels
    /// (both legs of a call on one worker, so forwarding never crosses threads).
    workers: Vec<Worker>,
    stop: watch::Sender<bool>,
    cfg: Arc<MediaConfig>,
    turn: Option<Arc<TurnRelay>>,
    clock: Clock,
}

/// One I/O task: its socket, and the state of its channels' legs.
struct Worker {
    state: Mutex<State>,
    wake: Notify,
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    cand_addr: SocketAddr,
}

/// A leg's first RTP sequence number: random, and low enough that the SRTP rollover counter
/// stays 0 for the first 32,768 packets (RFC 3550 §5.1 wants it random).
fn first_seq() -> u64 {
    rand::rng().random_range(0..1u64 << 15)
}

fn random_string(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// The IP the server's candidate and relay addresses carry.
fn public_ip(cfg: &MediaConfig) -> IpAddr {
    let host = cfg.public_host.trim();
    if host.is_empty() {
        return if cfg.bind.is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { cfg.bind };
    }
    if let Ok(ip) = host.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return ip;
    }
    match (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(|a| a.is_ipv4()).or_else(|| (host, 0).to_socket_addrs().ok()?.next()))
    {
        Some(a) => a.ip(),
        None => {
            tracing::warn!(host, "cannot resolve the media public host; using 127.0.0.1");
            IpAddr::from([127, 0, 0, 1])
        }
    }
}

fn safe_file_stem(s: &str) -> String {
    let stem: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(80).collect();
    if stem.is_empty() { "call".into() } else { stem }
}

impl MediaServer {
    /// Binds the media port and the TURN port and starts the I/O task.
    pub async fn start(
        cfg: MediaConfig,
        clock: Clock,
    ) -> anyhow::Result<(Arc<MediaServer>, mpsc::Receiver<MediaEvent>)> {
        let ip = public_ip(&cfg);
        let turn = if cfg.turn_enabled {
            Some(Arc::new(TurnRelay::start(cfg.bind, cfg.turn_port, ip, &cfg.turn_realm).await?))
        } else {
            None
        };
        std::fs::create_dir_all(&cfg.recordings_dir)
            .with_context(|| format!("cannot create the recordings directory {}", cfg.recordings_dir.display()))?;
        // Each leg's DTLS handshake also hands its SRTP keys to the leg (`Direct`).
        let provider = Arc::new(srtp::capturing(str0m::crypto::from_feature_flags()));
        let cert = DtlsIdentity::start(provider.clone());
        let cfg = Arc::new(cfg);
        let (events, events_rx) = mpsc::channel(16_384);
        let (stop, stop_rx) = watch::channel(false);
        let mut workers = Vec::new();
        for i in 0..cfg.workers.max(1) {
            // Consecutive ports from `udp_port`, or any free ones.
            let port = if cfg.udp_port == 0 { 0 } else { cfg.udp_port.saturating_add(i as u16) };
            let socket = UdpSocket::bind(SocketAddr::new(cfg.bind, port))
                .await
                .with_context(|| format!("cannot listen on {}:{port} (media)", cfg.bind))?;
            let local_addr = socket.local_addr()?;
            let (rcvbuf, sndbuf) = udp::set_buffer_sizes(&socket, SOCKET_RECV_BUFFER, SOCKET_SEND_BUFFER);
            tracing::debug!(rcvbuf, sndbuf, "media socket buffers");
            let cand_addr = SocketAddr::new(ip, local_addr.port());
            let socket = Arc::new(socket);
            let state = State {
                cfg: cfg.clone(),
                clock: clock.clone(),
                socket: socket.clone(),
                out: SendQueue::new(),
                cand_addr,
                provider: provider.clone(),
                cert: cert.clone(),
                turn: turn.clone(),
                events: events.clone(),
                channels: FxHashMap::default(),
                legs: FxHashMap::default(),
                by_ufrag: FxHashMap::default(),
                by_addr: FxHashMap::default(),
                dirty: VecDeque::new(),
                deferred: Parked::default(),
                held_stun: VecDeque::new(),
                topology: 0,
                timers: BinaryHeap::new(),
                dtmf_active: Vec::new(),
                phone_dtmf_pending: Vec::new(),
                next_synth: None,
                next_leg: 1,
                recordings: Vec::new(),
                wav_cache: HashMap::new(),
                recent: VecDeque::new(),
                counters: Counters::default(),
                plain: Vec::new(),
            };
            workers.push(Worker { state: Mutex::new(state), wake: Notify::new(), socket, local_addr, cand_addr });
        }
        let server = Arc::new(MediaServer { workers, stop, cfg, turn, clock });
        for i in 0..server.workers.len() {
            tokio::spawn(io_loop(server.clone(), i, stop_rx.clone()));
        }
        let ports: Vec<u16> = server.workers.iter().map(|w| w.local_addr.port()).collect();
        tracing::info!(media = %server.udp_addr(), ?ports, candidate = %server.candidate_addr(), turn = ?server.turn_addr(), "media server ready");
        Ok((server, events_rx))
    }

    /// The worker that serves a channel.
    fn worker(&self, channel_id: &str) -> &Worker {
        if self.workers.len() == 1 {
            return &self.workers[0];
        }
        use std::hash::BuildHasher;
        let h = rustc_hash::FxBuildHasher.hash_one(channel_id);
        &self.workers[(h % self.workers.len() as u64) as usize]
    }

    /// The bound media socket (the first worker's).
    pub fn udp_addr(&self) -> SocketAddr {
        self.workers[0].local_addr
    }

    /// The address in the server's ICE candidate (the first worker's).
    pub fn candidate_addr(&self) -> SocketAddr {
        self.workers[0].cand_addr
    }

    /// The TURN server's bound address.
    pub fn turn_addr(&self) -> Option<SocketAddr> {
        self.turn.as_ref().map(|t| t.addr())
    }

    /// The TURN URL handed to clients.
    pub fn turn_url(&self) -> Option<String> {
        let port = self.turn_addr()?.port();
        let host = if self.cfg.public_host.trim().is_empty() {
            self.candidate_addr().ip().to_string()
        } else {
            self.cfg.public_host.trim().to_string()
        };
        Some(format!("turn:{host}:{port}?transport=udp"))
    }

    pub fn config(&self) -> &MediaConfig {
        &self.cfg
    }

    /// Whether a call is recorded: asked for (`needRecord`), or recorded by default for its type.
    pub fn should_record(&self, rtc_type: &str, requested: bool) -> bool {
        requested || self.cfg.record_by_default.for_type(rtc_type)
    }

    /// A device's joinChannel: mints TURN credentials and returns the ARTC joinChannel result
    /// (the JSON for `body.mediaSignal`). With sigv 2 (the offer inside `signal`), it also
    /// carries the answer and the server's one candidate.
    pub fn join(&self, channel_id: &str, tenant: &str, rtc_id: &str, uuid: &str, signal: &Value) -> Value {
        self.join_with(channel_id, tenant, rtc_id, uuid, signal, CodecPreference::Opus)
    }

    /// [`MediaServer::join`], choosing which codec the answer puts first
    /// ([`CodecPreference::for_call_type`]).
    pub fn join_with(
        &self,
        channel_id: &str,
        tenant: &str,
        rtc_id: &str,
        uuid: &str,
        signal: &Value,
        prefer: CodecPreference,
    ) -> Value {
        let now = Instant::now();
        let w = self.worker(channel_id);
        let mut st = w.state.lock();
        let id = st.new_leg(channel_id, tenant, rtc_id, uuid, prefer, now);
        let mut result = json!({
            "api": "joinChannel", "errorCode": 0, "errorMsg": "SUCCESS",
            "data": {"channelId": channel_id, "turnServers": [], "dynamicConfig": {}},
        });
        if let Some(seq) = signal.get("seqId") {
            result["seqId"] = seq.clone();
        }
        if let (Some(turn), Some(url)) = (st.turn.clone(), self.turn_url()) {
            let ttl = self.cfg.turn_credential_ttl;
            let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default() + ttl;
            let username = format!("{}:{}", expiry.as_secs(), random_string(12));
            let password = random_string(24);
            turn.add_user(&username, &password, ttl);
            if let Some(leg) = st.legs.get_mut(&id) {
                leg.turn_user = Some(username.clone());
            }
            result["data"]["turnServers"] = json!([{"address": url, "username": username, "password": password}]);
        }
        let offer = signal.pointer("/data/sdpInfo/sdp").and_then(Value::as_str);
        let sigv2 =
            offer.is_some() || signal.pointer("/data/channelConfig/sigVersion").and_then(Value::as_i64) == Some(2);
        if let Some(leg) = st.legs.get_mut(&id) {
            leg.sigv = if sigv2 { 2 } else { 1 };
        }
        if let Some(offer) = offer {
            match st.answer(id, offer, &[], now) {
                Ok((answer, mid, label)) => {
                    result["data"]["sdpInfo"] = json!({"sdp": answer, "type": "answer"});
                    result["data"]["candidateInfo"] = sdp::candidate_json(st.cand_addr, &mid, label);
                }
                Err(e) => {
                    tracing::warn!(channel_id, rtc_id, "joinChannel offer refused: {e}");
                    result["errorCode"] = ERR_BAD_OFFER.into();
                    result["errorMsg"] = format!("cannot answer the offer: {e}").into();
                }
            }
        }
        st.flush();
        drop(st);
        w.wake.notify_one();
        result
    }

    /// A device's media signal: `sdpCandidate` (offer + candidates → the answer result),
    /// `candidate` (a trickled candidate; no result), anything else ignored.
    pub fn signal(&self, channel_id: &str, rtc_id: &str, uuid: &str, api: &str, signal: &Value) -> Option<Value> {
        let now = Instant::now();
        let w = self.worker(channel_id);
        let mut st = w.state.lock();
        let out = match api {
            "sdpCandidate" => {
                let mut result = json!({"api": "sdpCandidate", "errorCode": 0, "errorMsg": "SUCCESS", "data": {"channelId": channel_id}});
                if let Some(seq) = signal.get("seqId") {
                    result["seqId"] = seq.clone();
                }
                let offer = signal.pointer("/data/sdpInfo/sdp").and_then(Value::as_str);
                let candidates = sdp::candidate_strings(signal.pointer("/data/candidateList").unwrap_or(&Value::Null));
                let id = match st.leg_of(channel_id, rtc_id) {
                    Some(id) => Some(id),
                    // No joinChannel seen (a restart, a replayed message): answer anyway.
                    None if offer.is_some() => {
                        let tenant = st.channels.get(channel_id).map(|c| c.tenant.clone()).unwrap_or_default();
                        Some(st.new_leg(channel_id, &tenant, rtc_id, uuid, CodecPreference::Opus, now))
                    }
                    None => None,
                };
                match (id, offer) {
                    (Some(id), Some(offer)) => match st.answer(id, offer, &candidates, now) {
                        Ok((answer, mid, label)) => {
                            result["data"]["sdpInfo"] = json!({"sdp": answer, "type": "answer"});
                            result["data"]["candidateList"] = json!([sdp::candidate_json(st.cand_addr, &mid, label)]);
                        }
                        Err(e) => {
                            tracing::warn!(channel_id, rtc_id, "sdpCandidate offer refused: {e}");
                            result["errorCode"] = ERR_BAD_OFFER.into();
                            result["errorMsg"] = format!("cannot answer the offer: {e}").into();
                        }
                    },
                    _ => {
                        result["errorCode"] = (if id.is_none() { ERR_NO_LEG } else { ERR_BAD_OFFER }).into();
                        result["errorMsg"] = "sdpCandidate without an offer".into();
                    }
                }
                Some(result)
            }
            "candidate" => {
                let info = signal
                    .pointer("/data/candidateInfo")
                    .or_else(|| signal.pointer("/data/candidateList"))
                    .unwrap_or(&Value::Null);
                if let Some(id) = st.leg_of(channel_id, rtc_id) {
                    for c in sdp::candidate_strings(info) {
                        st.add_remote_candidate(id, &c, now);
                    }
                }
                None
            }
            _ => None,
        };
        st.flush();
        drop(st);
        w.wake.notify_one();
        out
    }

    /// Connects the two sides of a call (a = caller, left channel; b = callee, right channel).
    /// Device legs may join before or after. A phone side's audio is synthesized.
    pub fn bridge(&self, channel_id: &str, a: Endpoint, b: Endpoint, record: bool) {
        let now = Instant::now();
        let w = self.worker(channel_id);
        let mut st = w.state.lock();
        let phone_side = match (&a, &b) {
            (Endpoint::Device { .. }, Endpoint::Phone { .. }) => Some(1),
            (Endpoint::Phone { .. }, Endpoint::Device { .. }) => Some(0),
            _ => None,
        };
        let phone = phone_side.map(|side| {
            let Endpoint::Phone { audio, .. } = (if side == 0 { &a } else { &b }) else { unreachable!("a phone side") };
            let source = st.source_for(audio);
            Phone { side, source, inband: VecDeque::new(), playing: None, device: None }
        });
        let clock_ms = st.clock.now_ms();
        let cfg = st.cfg.clone();
        let chan = st.channels.entry(channel_id.to_string()).or_insert_with(|| Channel {
            tenant: String::new(),
            legs: HashMap::new(),
            bridge: None,
            recorder: None,
            record_file: None,
            created_ms: clock_ms,
        });
        if record && chan.recorder.is_none() {
            let stem = safe_file_stem(channel_id);
            let mut file = format!("{stem}.wav");
            let mut n = 1;
            while cfg.recordings_dir.join(&file).exists() {
                n += 1;
                file = format!("{stem}-{n}.wav");
            }
            match Recorder::create(&cfg.recordings_dir.join(&file), now) {
                Ok(r) => {
                    chan.recorder = Some(r);
                    chan.record_file = Some(file);
                }
                Err(e) => tracing::warn!(channel_id, "cannot create the recording: {e}"),
            }
        }
        chan.bridge = Some(Bridge { sides: [a, b], record, phone });
        st.topology += 1;
        if phone_side.is_some() && st.next_synth.is_none() {
            st.next_synth = Some(now + SYNTH_PERIOD);
        }
        drop(st);
        w.wake.notify_one();
    }

    /// The phone in a bridged call pressed `digit`: RFC 4733 telephone-events to the device
    /// leg, or the DTMF tone in-band when the leg negotiated no telephone-event. Presses queue
    /// and go out one at a time (events never overlap) once the leg is connected. False when
    /// the channel has no device leg bridged with a phone, or `digit` is not a DTMF key.
    pub fn phone_dtmf(&self, channel_id: &str, digit: char) -> bool {
        let w = self.worker(channel_id);
        let ok = w.state.lock().phone_dtmf(channel_id, digit);
        w.wake.notify_one();
        ok
    }

    /// Tears down every leg of the channel (TURN credentials and allocations included) and
    /// finishes its recording (→ [`MediaEvent::RecordingDone`]).
    pub fn release(&self, channel_id: &str) -> Option<RecordingInfo> {
        let now = Instant::now();
        let w = self.worker(channel_id);
        let mut st = w.state.lock();
        let rec = st.release(channel_id, now);
        drop(st);
        w.wake.notify_one();
        rec
    }

    /// Per-leg media statistics of a channel; for a released channel, its final statistics
    /// (`"released": true`, the last 1000 channels kept); `null` when the channel is unknown.
    pub fn stats(&self, channel_id: &str) -> Value {
        let st = self.worker(channel_id).state.lock();
        match st.channel_stats(channel_id, Instant::now()) {
            Value::Null => {
                st.recent.iter().rev().find(|(id, _)| id == channel_id).map(|(_, v)| v.clone()).unwrap_or(Value::Null)
            }
            v => v,
        }
    }

    /// Server-wide counters and sizes.
    pub fn summary(&self) -> Value {
        let (mut channels, mut legs, mut connected, mut recordings) = (0, 0, 0, 0);
        let (mut rtp_in, mut rtp_out, mut direct_in, mut direct_out) = (0u64, 0u64, 0u64, 0u64);
        let mut counters = Counters::default();
        for w in &self.workers {
            let st = w.state.lock();
            channels += st.channels.len();
            legs += st.legs.len();
            // Summed here, not per channel: one short lock per worker, so a caller watching a
            // thousand calls does not hold up their audio.
            for l in st.legs.values() {
                connected += usize::from(l.is_connected());
                rtp_in += l.stats.rtp_in;
                rtp_out += l.stats.rtp_out;
                direct_in += l.stats.rtp_direct_in;
                direct_out += l.stats.rtp_direct_out;
            }
            recordings += st.recordings.len();
            counters.add(&st.counters());
        }
        json!({
            "udp": self.udp_addr().to_string(),
            "udpPorts": self.workers.iter().map(|w| w.local_addr.port()).collect::<Vec<_>>(),
            "candidate": self.candidate_addr().to_string(),
            "turn": self.turn_addr().map(|a| a.to_string()),
            "turnUrl": self.turn_url(),
            "channels": channels,
            "legs": legs,
            "connectedLegs": connected,
            "rtpPacketsIn": rtp_in,
            "rtpPacketsOut": rtp_out,
            "rtpDirectIn": direct_in,
            "rtpDirectOut": direct_out,
            "turnUsers": self.turn.as_ref().map(|t| t.users()),
            "turnRejected": self.turn.as_ref().map(|t| t.rejected()),
            "recordings": recordings,
            "counters": counters,
        })
    }

    /// Channels with at least one leg or a bridge.
    pub fn channel_count(&self) -> usize {
        self.workers.iter().map(|w| w.state.lock().channels.len()).sum()
    }

    pub fn leg_count(&self) -> usize {
        self.workers.iter().map(|w| w.state.lock().legs.len()).sum()
    }

    /// Whether `rtc_id`'s leg in the channel has ICE and DTLS up.
    pub fn is_connected(&self, channel_id: &str, rtc_id: &str) -> bool {
        let st = self.worker(channel_id).state.lock();
        st.leg_of(channel_id, rtc_id).and_then(|id| st.legs.get(&id)).is_some_and(|l| l.is_connected())
    }

    /// Open TURN allocations (relay ports).
    pub async fn turn_allocations(&self) -> usize {
        match &self.turn {
            Some(t) => t.allocations().await,
            None => 0,
        }
    }

    /// Finished recordings, oldest first.
    pub fn recordings(&self) -> Vec<RecordingInfo> {
        let mut all: Vec<RecordingInfo> = self.workers.iter().flat_map(|w| w.state.lock().recordings.clone()).collect();
        all.sort_by_key(|r| r.created_ms);
        all
    }

    /// The path of a recording file, if it is one of ours.
    pub fn recording_path(&self, file: &str) -> Option<PathBuf> {
        let ok = !file.is_empty()
            && file.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !file.starts_with('.');
        if !ok {
            return None;
        }
        let path = self.cfg.recordings_dir.join(file);
        path.is_file().then_some(path)
    }

    /// The download URL of a recording file.
    pub fn recording_url(&self, file: &str) -> String {
        format!("{}/recordings/{file}", self.cfg.http_base.trim_end_matches('/'))
    }

    /// Drops every channel (recordings in progress are finished), as an emulator reset does.
    pub fn reset(&self) {
        let now = Instant::now();
        for w in &self.workers {
            let mut st = w.state.lock();
            let ids: Vec<String> = st.channels.keys().cloned().collect();
            for id in ids {
                st.release(&id, now);
            }
            st.recent.clear();
        }
    }

    /// Stops the I/O task and the TURN server.
    pub async fn shutdown(&self) {
        self.reset();
        let _ = self.stop.send(true);
        if let Some(t) = &self.turn {
            t.close().await;
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    #[doc(hidden)]
    pub fn socket(&self) -> &UdpSocket {
        &self.workers[0].socket
    }
}

impl State {
    fn channel_stats(&self, channel_id: &str, now: Instant) -> Value {
        let clock_now = self.clock.now_ms();
        let Some(chan) = self.channels.get(channel_id) else { return Value::Null };
        let mut legs: Vec<&Leg> = chan.legs.values().filter_map(|id| self.legs.get(id)).collect();
        legs.sort_by_key(|l| l.id);
        json!({
            "channelId": channel_id,
            "released": false,
            "legs": legs.iter().map(|l| l.stats_json(clock_now, now)).collect::<Vec<_>>(),
            "bridge": chan.bridge.as_ref().map(|b| json!({"caller": endpoint_json(&b.sides[0]), "callee": endpoint_json(&b.sides[1]), "record": b.record})),
            "recording": chan.record_file.as_ref().map(|f| json!({"file": f, "inProgress": true, "elapsedMs": chan.recorder.as_ref().map(|r| r.elapsed(now).as_millis() as u64)})),
        })
    }

    fn leg_of(&self, channel_id: &str, rtc_id: &str) -> Option<LegId> {
        self.channels.get(channel_id)?.legs.get(rtc_id).copied()
    }

    fn new_leg(
        &mut self,
        channel_id: &str,
        tenant: &str,
        rtc_id: &str,
        uuid: &str,
        prefer: CodecPreference,
        now: Instant,
    ) -> LegId {
        // A device joining again (a new session) replaces its old leg.
        if let Some(old) = self.leg_of(channel_id, rtc_id) {
            self.remove_leg(old);
        }
        let id = self.next_leg;
        self.next_leg += 1;
        let mut ufrag = random_string(8);
        while self.by_ufrag.contains_key(&ufrag) {
            ufrag = random_string(8);
        }
        self.by_ufrag.insert(ufrag.clone(), id);
        let clock_ms = self.clock.now_ms();
        let chan = self.channels.entry(channel_id.to_string()).or_insert_with(|| Channel {
            tenant: tenant.to_string(),
            legs: HashMap::new(),
            bridge: None,
            recorder: None,
            record_file: None,
            created_ms: clock_ms,
        });
        if chan.tenant.is_empty() {
            chan.tenant = tenant.to_string();
        }
        chan.legs.insert(rtc_id.to_string(), id);
        let (tx_seq, tx_time) = (first_seq(), rand::rng().random::<u32>());
        self.legs.insert(
            id,
            Leg {
                id,
                channel_id: channel_id.to_string(),
                rtc_id: rtc_id.to_string(),
                uuid: uuid.to_string(),
                tenant: tenant.to_string(),
                prefer,
                sigv: 1,
                ice: IceCreds { ufrag, pass: random_string(24) },
                rtc: None,
                mid: None,
                send: None,
                state: LegState::New,
                turn_user: None,
                addrs: Vec::new(),
                media_from: None,
                timeout: None,
                scheduled: None,
                tx_seq,
                tx_time,
                fwd: None,
                dtmf_out: None,
                decoder: None,
                encoder: None,
                last_dtmf: None,
                dtmf_queue: VecDeque::new(),
                dtmf_next: None,
                stats: LegStats::default(),
                created: now,
                dirty: false,
                ice_hold_until: None,
                wants_timeout: false,
                route: None,
                passthrough: None,
                direct: Direct::new(KeySlot::default(), self.provider.clone()),
            },
        );
        self.topology += 1;
        self.counters.legs_created += 1;
        id
    }

    fn remove_leg(&mut self, id: LegId) {
        let Some(mut leg) = self.legs.remove(&id) else { return };
        self.topology += 1;
        self.by_ufrag.remove(&leg.ice.ufrag);
        for a in &leg.addrs {
            if self.by_addr.get(a) == Some(&id) {
                self.by_addr.remove(a);
            }
        }
        if let (Some(turn), Some(user)) = (&self.turn, &leg.turn_user) {
            turn.remove_user(user);
        }
        if let Some(rtc) = leg.rtc.as_mut() {
            // No DTLS close_notify: the signalling ends the call; a transport close arriving
            // first would make the SDK report a network error instead.
            rtc.disconnect();
        }
        if let Some(chan) = self.channels.get_mut(&leg.channel_id)
            && chan.legs.get(&leg.rtc_id) == Some(&id)
        {
            chan.legs.remove(&leg.rtc_id);
        }
        self.counters.legs_released += 1;
    }

    /// A leg's `Rtc`, and where its DTLS handshake puts the SRTP keys.
    fn new_rtc(&self, prefer: CodecPreference, ice: &IceCreds, now: Instant) -> (Rtc, KeySlot) {
        let mut b = Rtc::builder()
            // RTP mode: received packets come out as they are and this server writes whole
            // packets; forwarding then skips str0m's depacketizing, sample assembly and
            // packetizing (and their copies) — the payload is shared, not copied.
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .set_local_ice_credentials(ice.clone())
            .set_crypto_provider(self.provider.clone())
            .set_dtls_cert(self.cert.get())
            .set_stats_interval(Some(Duration::from_secs(1)))
            .set_rtcp_report_interval_audio(Duration::from_secs(1))
            // Audio only: keep the mid (BUNDLE demultiplexing) and the audio level; no
            // transport-wide congestion control, whose per-packet feedback both ways costs
            // more than the audio itself at 50 pps and steers nothing (the server never
            // adapts an audio bitrate), nor abs-send-time, which only feeds that estimator.
            .clear_extension_map()
            .set_extension(1, Extension::AudioLevel)
            .set_extension(4, Extension::RtpMid)
            .clear_codecs();
        b = match prefer {
            CodecPreference::Opus => b.enable_opus(true, false).enable_pcmu(true, false).enable_pcma(true, false),
            CodecPreference::G711 => b.enable_pcmu(true, false).enable_pcma(true, false).enable_opus(true, false),
        };
        let (first, second) = match prefer {
            CodecPreference::Opus => ((110u8, Frequency::FORTY_EIGHT_KHZ), (126u8, Frequency::EIGHT_KHZ)),
            CodecPreference::G711 => ((126u8, Frequency::EIGHT_KHZ), (110u8, Frequency::FORTY_EIGHT_KHZ)),
        };
        for (pt, freq) in [first, second] {
            b.codec_config().add_config(pt.into(), None, Codec::Tele, freq, None, FormatParams::default());
        }
        let keys = KeySlot::default();
        let mut rtc = srtp::with_key_slot(&keys, || b.build(now));
        match Candidate::host(self.cand_addr, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => tracing::error!("cannot use {} as the media candidate: {e}", self.cand_addr),
        }
        (rtc, keys)
    }

    /// Answers an offer for a leg: (answer SDP without candidates, offer mid, m-line index).
    fn answer(
        &mut self,
        id: LegId,
        offer_sdp: &str,
        candidates: &[String],
        now: Instant,
    ) -> Result<(String, String, u32), String> {
        let (mid, label) = sdp::audio_mid(offer_sdp).ok_or("the offer has no audio m-line")?;
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| format!("unparseable SDP: {e}"))?;
        let (prefer, ice) = {
            let leg = self.legs.get(&id).ok_or("no such leg")?;
            (leg.prefer, leg.ice.clone())
        };
        let (fresh, keys) = self.new_rtc(prefer, &ice, now);
        let leg = self.legs.get_mut(&id).ok_or("no such leg")?;
        // A re-offer (ICE restart, renegotiation) starts over on a new Rtc.
        leg.rtc = Some(fresh);
        leg.direct = Direct::new(keys, self.provider.clone());
        // A new SRTP session with a new SSRC, whose receiver takes the first packet's rollover
        // counter to be 0: the numbering starts over, or a re-offer after 65,536 packets
        // (~20 minutes) would send audio the browser cannot decrypt.
        leg.tx_seq = first_seq();
        leg.mid = None;
        leg.send = None;
        leg.scheduled = None;
        leg.timeout = None;
        leg.passthrough = None;
        leg.fwd = None;
        leg.dtmf_out = None;
        leg.state = LegState::Connecting;
        let rtc = leg.rtc.as_mut().expect("set above");
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                leg.rtc = None;
                leg.state = LegState::New;
                self.counters.offers_rejected += 1;
                return Err(e.to_string());
            }
        };
        let audio_ok = rtc.media(Mid::from(mid.as_str())).is_some_and(|m| !m.disabled());
        if !audio_ok {
            leg.rtc = None;
            leg.state = LegState::New;
            self.counters.offers_rejected += 1;
            return Err("no audio codec in common (need Opus, PCMU or PCMA)".into());
        }
        // Video (any line without a codec of ours) is rejected: str0m leaves that line without a
        // format and with the offer's direction. Repair the text and set the line inactive in
        // str0m too, so its state matches the answer (no change to apply: nothing is offered).
        let (answer, rejected) = sdp::reject_unanswered(&answer.to_sdp_string(), offer_sdp);
        let mut api = rtc.sdp_api();
        for m in &rejected {
            api.set_direction(Mid::from(m.as_str()), Direction::Inactive);
        }
        drop(api);
        leg.mid = Some(Mid::from(mid.as_str()));
        self.touch(id);
        self.settle(now);
        for c in candidates {
            self.add_remote_candidate(id, c, now);
        }
        Ok((sdp::strip_candidates(&answer), mid, label))
    }

    fn add_remote_candidate(&mut self, id: LegId, c: &str, now: Instant) {
        let Some(rtc) = self.legs.get_mut(&id).and_then(|l| l.rtc.as_mut()) else { return };
        match Candidate::from_sdp_string(c) {
            Ok(cand) => {
                rtc.add_remote_candidate(cand);
                self.touch(id);
                self.settle(now);
            }
            Err(e) => tracing::debug!("remote candidate ignored: {e}"),
        }
    }

    /// The counters, with every datagram queued counted as sent.
    fn counters(&self) -> Counters {
        Counters { packets_out: self.out.queued(), ..self.counters }
    }

    fn emit(&mut self, e: MediaEvent) {
        if self.events.try_send(e).is_err() {
            self.counters.events_dropped += 1;
        }
    }

    /// Marks a leg for the next [`State::settle`].
    fn touch(&mut self, id: LegId) {
        if let Some(leg) = self.legs.get_mut(&id)
            && !leg.dirty
        {
            leg.dirty = true;
            self.dirty.push_back(id);
        }
    }

    /// Drains every touched leg (packetizing what was written to it first); routing received
    /// audio touches the legs it is written to, which are drained in turn. A leg with several
    /// datagrams in one receive batch is drained once for all of them.
    fn settle(&mut self, now: Instant) {
        while let Some(id) = self.dirty.pop_front() {
            let Some(leg) = self.legs.get_mut(&id) else { continue };
            leg.dirty = false;
            if std::mem::take(&mut leg.wants_timeout)
                && let Some(rtc) = leg.rtc.as_mut()
                && let Err(e) = rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!(rtc_id = %leg.rtc_id, "timeout refused: {e}");
            }
            self.drain(id, now);
        }
    }

    /// Drains a leg's Rtc to its next timeout: transmits, events, then routes received audio.
    fn drain(&mut self, id: LegId, now: Instant) {
        self.poll_leg(id, now, false);
    }

    /// Polls a leg's Rtc: to its next timeout, or (`to_packet`) only until it hands out the
    /// packet just received — in RTP mode str0m keeps one received packet until the next
    /// poll, so each must be taken before the next datagram goes in. The rest of that drain
    /// (the next timeout) then comes with the leg's next full drain.
    fn poll_leg(&mut self, id: LegId, now: Instant, to_packet: bool) {
        let mut media = Vec::new();
        let mut events = Vec::new();
        let mut connected = false;
        {
            let Some(leg) = self.legs.get_mut(&id) else { return };
            let Some(rtc) = leg.rtc.as_mut() else { return };
            loop {
                match rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        // After each packet it sends, str0m's pacer asks for a timeout before
                        // it polls its queues again. Every frame written here is followed by
                        // one (`wants_timeout`), so that timer can wait: one timeout per packet
                        // fewer. Later, so that a leg with nothing more to send gets it anyway.
                        let t = if t <= now && rtc.last_timeout_reason() == Reason::Pacer(PacerReason::Handle) {
                            now + PACER_DEFER
                        } else {
                            t
                        };
                        // At most a second ahead, so that stale entries leave the heap soon.
                        let t = t.min(now + Duration::from_secs(1));
                        leg.timeout = Some(t);
                        if leg.scheduled.is_none_or(|s| t < s) {
                            leg.scheduled = Some(t);
                            self.timers.push(Reverse((t, id)));
                        }
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        leg.stats.packets_out += 1;
                        leg.stats.bytes_out += t.contents.len() as u64;
                        leg.direct.observe(&t.contents, t.destination);
                        self.out.push(t.destination, t.contents.into());
                    }
                    Ok(Output::Event(e)) => match e {
                        Event::Connected => {
                            connected = true;
                            leg.state = LegState::Connected;
                            leg.stats.connected_at = Some(now);
                            events.push(MediaEvent::LegConnected {
                                channel_id: leg.channel_id.clone(),
                                rtc_id: leg.rtc_id.clone(),
                            });
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                            if leg.state == LegState::Connected =>
                        {
                            leg.state = LegState::Disconnected;
                            events.push(MediaEvent::LegDisconnected {
                                channel_id: leg.channel_id.clone(),
                                rtc_id: leg.rtc_id.clone(),
                            });
                        }
                        Event::IceConnectionStateChange(
                            IceConnectionState::Connected | IceConnectionState::Completed,
                        ) if leg.state == LegState::Disconnected => {
                            leg.state = LegState::Connected;
                        }
                        // The audio line only: an offer's video line is added too (and
                        // rejected), and taking its mid left the leg without a send codec.
                        Event::MediaAdded(m) if m.kind == MediaKind::Audio => leg.mid = Some(m.mid),
                        Event::RtpPacket(p) => {
                            media.push(p);
                            if to_packet {
                                break;
                            }
                        }
                        Event::MediaIngressStats(s) => {
                            leg.stats.loss_in = s.loss.or(leg.stats.loss_in);
                            leg.stats.rtt = s.rtt.or(leg.stats.rtt);
                        }
                        Event::MediaEgressStats(s) => {
                            leg.stats.loss_out = s.loss.or(leg.stats.loss_out);
                            leg.stats.rtt = s.rtt.or(leg.stats.rtt);
                        }
                        Event::Closed => leg.state = LegState::Closed,
                        _ => {}
                    },
                    Err(e) => {
                        tracing::debug!(rtc_id = %leg.rtc_id, "rtc error: {e}");
                        leg.state = LegState::Closed;
                        break;
                    }
                }
            }
        }
        if connected && let Some(leg) = self.legs.get_mut(&id) {
            leg.send_codec();
        }
        for e in events {
            self.emit(e);
        }
        for p in media {
            // str0m found this packet's index: the stream's next packets are decrypted here.
            if let Some(leg) = self.legs.get_mut(&id) {
                leg.direct.seed(*p.header.ssrc, *p.seq_no);
            }
            self.route(id, Heard::of(&p), now);
        }
    }

    fn on_packet(&mut self, buf: &[u8], src: SocketAddr, now: Instant) {
        self.counters.packets_in += 1;
        self.handle_packet(buf, src, now);
    }

    fn handle_packet(&mut self, buf: &[u8], src: SocketAddr, now: Instant) {
        let kind = stun::classify(buf);
        let id = match kind {
            Kind::Stun => {
                let Some(&id) = stun::local_ufrag(buf).and_then(|u| self.by_ufrag.get(u)) else {
                    self.counters.unknown_source += 1;
                    return;
                };
                if self.by_addr.get(&src) != Some(&id) {
                    self.by_addr.insert(src, id);
                    if let Some(leg) = self.legs.get_mut(&id)
                        && !leg.addrs.contains(&src)
                    {
                        leg.addrs.push(src);
                    }
                }
                id
            }
            Kind::Dtls | Kind::Rtp => match self.by_addr.get(&src) {
                Some(&id) => id,
                None => {
                    self.counters.unknown_source += 1;
                    return;
                }
            },
            Kind::Other => {
                self.counters.garbage += 1;
                return;
            }
        };
        let Some(leg) = self.legs.get_mut(&id) else { return };
        if kind == Kind::Stun {
            let until = *leg.ice_hold_until.get_or_insert(now + ICE_HOLD);
            if now < until {
                self.held_stun.push_back((until, src, buf.to_vec()));
                return;
            }
        } else {
            leg.media_from = Some(src);
        }
        if kind == Kind::Rtp && self.receive_direct(id, buf, now) {
            return;
        }
        let Some(leg) = self.legs.get(&id) else { return };
        let rtp = stun::is_rtp(buf);
        // RTP of a connected leg whose audio goes to a synthesized phone (and so only to the
        // recording) waits for the phone's next frame: str0m then takes the frame and the
        // datagram with one timeout and one drain instead of two each.
        if rtp
            && leg.is_connected()
            && leg.route.is_some_and(|(at, r)| at == self.topology && r.phone && !r.echo && self.next_synth.is_some())
        {
            self.deferred.push(id, src, buf);
            return;
        }
        self.receive(id, src, buf, rtp, now);
    }

    /// Feeds a datagram to its leg's Rtc, takes the RTP packet it carried (and routes it), and
    /// marks the leg for the next drain when that may send something.
    fn receive(&mut self, id: LegId, src: SocketAddr, buf: &[u8], rtp: bool, now: Instant) {
        let Some(leg) = self.legs.get_mut(&id) else { return };
        let Some(rtc) = leg.rtc.as_mut() else { return };
        let Ok(recv) = Receive::new(Protocol::Udp, src, self.cand_addr, buf) else {
            self.counters.unparseable += 1;
            return;
        };
        leg.stats.packets_in += 1;
        leg.stats.bytes_in += buf.len() as u64;
        leg.stats.last_packet = Some(now);
        let written = leg.wants_timeout;
        match rtc.handle_input(Input::Receive(now, recv)) {
            // str0m handles a timeout after each datagram: what was written to the leg before
            // it leaves with the next drain without one more.
            Ok(()) => leg.wants_timeout = false,
            Err(e) => tracing::debug!(rtc_id = %leg.rtc_id, "input refused: {e}"),
        }
        if rtp {
            self.poll_leg(id, now, true);
            // Receiving audio sends nothing by itself (no NACK for audio, no TWCC). What the
            // receive's timeout made due (an RTCP report) goes when the leg's timer, due too,
            // fires at the end of this turn. Only packets written to the leg need a drain now.
            if !written {
                return;
            }
        }
        self.touch(id);
    }

    /// RTP of a stream this server decrypts itself (`Direct`): decrypted and routed here. False
    /// hands the datagram to str0m: a stream's first packet, a leg without keys, or a packet
    /// that does not authenticate (str0m then has the last word).
    fn receive_direct(&mut self, id: LegId, buf: &[u8], now: Instant) -> bool {
        let Some(h) = RtpHeader::parse(buf) else { return false };
        let Some(leg) = self.legs.get_mut(&id) else { return false };
        if !leg.is_connected() {
            return false;
        }
        let mut plain = std::mem::take(&mut self.plain);
        match leg.direct.receive(buf, &h, &mut plain) {
            Received::Decrypted => {}
            Received::Replay => {
                self.plain = plain;
                self.counters.rtp_replayed += 1;
                return true;
            }
            Received::NotOurs => {
                self.plain = plain;
                return false;
            }
        }
        leg.stats.packets_in += 1;
        leg.stats.bytes_in += buf.len() as u64;
        leg.stats.last_packet = Some(now);
        leg.stats.rtp_direct_in += 1;
        let heard = Heard {
            pt: Pt::from(h.pt),
            ssrc: Ssrc::from(h.ssrc),
            time: h.time,
            marker: h.marker,
            payload: &plain,
            at: now,
        };
        self.route(id, heard, now);
        self.plain = plain;
        true
    }

    /// The datagrams that waited for the phones' frames (see `handle_packet`).
    fn receive_deferred(&mut self, now: Instant) {
        let mut parked = std::mem::take(&mut self.deferred);
        for (id, src, buf) in parked.iter() {
            self.receive(id, src, buf, true, now);
        }
        parked.clear(); // and keep its allocations
        self.deferred = parked;
    }

    /// Where `from`'s audio goes, from the cache or worked out anew.
    fn route_of(&mut self, from: LegId) -> Option<Route> {
        let leg = self.legs.get(&from)?;
        if let Some((at, r)) = leg.route
            && at == self.topology
        {
            return Some(r);
        }
        let chan = self.channels.get(&leg.channel_id)?;
        let bridge = chan.bridge.as_ref()?;
        let side = bridge.side_of(&leg.rtc_id)?;
        let other = 1 - side;
        let echo = matches!(&bridge.sides[other], Endpoint::Phone { audio: Audio::Echo, .. });
        let peer = match &bridge.sides[other] {
            Endpoint::Device { rtc_id } => chan.legs.get(rtc_id).copied(),
            Endpoint::Phone { .. } => None,
        };
        let phone = matches!(&bridge.sides[other], Endpoint::Phone { .. });
        let r = Route { side, peer, echo, phone };
        let topology = self.topology;
        if let Some(leg) = self.legs.get_mut(&from) {
            leg.route = Some((topology, r));
        }
        Some(r)
    }

    /// Audio from a device leg: DTMF detection, recording, forwarding to the other side.
    fn route(&mut self, from: LegId, p: Heard, now: Instant) {
        let Some(leg) = self.legs.get_mut(&from) else { return };
        let Some(params) = leg.params_of(p.pt) else { return };
        leg.stats.rtp_in += 1;
        leg.stats.rtp_bytes_in += p.payload.len() as u64;
        leg.stats.last_rtp_in = Some(now);
        if params.spec().codec == Codec::Tele {
            // Every packet of an event repeats its timestamp: the first one reports the key.
            let t = p.time;
            if leg.last_dtmf != Some(t)
                && let Some(ev) = TelephoneEvent::parse(p.payload, params.spec().clock_rate)
            {
                leg.last_dtmf = Some(t);
                if let Some(digit) = audio::dtmf_digit(ev.event) {
                    leg.stats.dtmf_in += 1;
                    let e = MediaEvent::DeviceDtmf {
                        channel_id: leg.channel_id.clone(),
                        rtc_id: leg.rtc_id.clone(),
                        digit,
                    };
                    tracing::debug!(rtc_id = %leg.rtc_id, %digit, "device DTMF");
                    self.emit(e);
                }
            }
            return;
        }
        let Some(codec) = AudioCodec::from_str0m(params.spec().codec) else { return };
        let Some(Route { side, peer, echo, .. }) = self.route_of(from) else { return };
        // Recorded where it arrived (a leg's audio may wait for the phone's next frame).
        let at = p.at;
        let other = 1 - side;
        let mut pcm = None;
        let Some(leg) = self.legs.get_mut(&from) else { return };
        if let Some(rec) = self.channels.get_mut(&leg.channel_id).and_then(|c| c.recorder.as_mut()) {
            let pcm_in = leg.decode(codec, p.payload);
            rec.push(side, &pcm_in, at);
            if echo {
                rec.push(other, &pcm_in, at);
            }
            pcm = Some(pcm_in);
        }
        let target = if echo { Some(from) } else { peer };
        if let Some(to) = target {
            self.forward(from, to, p, params, codec, pcm, now);
        }
    }

    /// Sends a packet received on `from` out of `to`: the same payload when `to` negotiated
    /// the codec (renumbered and restamped onto `to`'s timeline), transcoded through PCM
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        from: LegId,
        to: LegId,
        p: Heard,
        params: PayloadParams,
        codec: AudioCodec,
        pcm: Option<Vec<i16>>,
        now: Instant,
    ) {
        let Some(to_leg) = self.legs.get_mut(&to) else { return };
        if !to_leg.is_connected() {
            return;
        }
        let str0m_has_it = if let Some(pt) = to_leg.passthrough_pt(params) {
            let source = (from, p.ssrc);
            let (offset, new_source) = match to_leg.fwd {
                Some((leg, ssrc, offset)) if (leg, ssrc) == source => (offset, false),
                _ => (to_leg.tx_time.wrapping_sub(p.time), true),
            };
            to_leg.fwd = Some((source.0, source.1, offset));
            let time = p.time.wrapping_add(offset);
            let wrote = to_leg.write_rtp(&mut self.out, pt, time, p.marker || new_source, p.at, p.payload);
            to_leg.tx_time = time.wrapping_add(codec.units_per_frame() as u32);
            wrote
        } else {
            let pcm = match pcm {
                Some(pcm) => pcm,
                None => match self.legs.get_mut(&from) {
                    Some(l) => l.decode(codec, p.payload),
                    None => return,
                },
            };
            let Some(to_leg) = self.legs.get_mut(&to) else { return };
            to_leg.write_pcm(&mut self.out, &pcm, now)
        };
        if str0m_has_it {
            self.touch(to);
        }
    }

    fn source_for(&mut self, audio: &Audio) -> Source {
        match audio {
            Audio::Silence => Source::Silence,
            Audio::Echo => Source::Echo,
            Audio::ToneHz(hz) => Source::Tone(Tone::new(*hz as f64)),
            Audio::Wav(path) => {
                let p = Path::new(path);
                let full = if p.is_absolute() { p.to_path_buf() } else { self.cfg.audio_dir.join(p) };
                if let Some(pcm) = self.wav_cache.get(&full) {
                    return Source::Wav { pcm: pcm.clone(), pos: 0 };
                }
                match std::fs::read(&full).map_err(|e| e.to_string()).and_then(|b| audio::parse_wav(&b)) {
                    Ok(w) => {
                        let pcm = Arc::new(w.to_mono_8k());
                        self.wav_cache.insert(full, pcm.clone());
                        Source::Wav { pcm, pos: 0 }
                    }
                    Err(e) => {
                        tracing::warn!(path = %full.display(), "phone audio file unusable ({e}); sending silence");
                        Source::Silence
                    }
                }
            }
        }
    }

    fn phone_dtmf(&mut self, channel_id: &str, digit: char) -> bool {
        if audio::dtmf_event_code(digit).is_none() {
            return false;
        }
        let Some(chan) = self.channels.get(channel_id) else { return false };
        let Some(bridge) = chan.bridge.as_ref() else { return false };
        let Some(phone) = bridge.phone.as_ref() else { return false };
        let Endpoint::Device { rtc_id } = &bridge.sides[1 - phone.side] else { return false };
        let Some(&id) = chan.legs.get(rtc_id) else { return false };
        let Some(leg) = self.legs.get_mut(&id) else { return false };
        leg.dtmf_queue.push_back(digit);
        self.phone_dtmf_pending.push((channel_id.to_string(), id));
        true
    }

    /// Sends the next queued key press of a device leg bridged with `phone`: RFC 4733 events
    /// when negotiated, else the DTMF tone in-band (not into an echo).
    fn send_queued_dtmf(&mut self, id: LegId, phone: &mut Phone, now: Instant) -> bool {
        let Some(leg) = self.legs.get_mut(&id) else { return false };
        if leg.dtmf_next.is_some_and(|t| now < t) || !leg.is_connected() {
            return false;
        }
        let Some(digit) = leg.dtmf_queue.pop_front() else { return false };
        let code = audio::dtmf_event_code(digit).unwrap_or(0);
        leg.stats.dtmf_out += 1;
        if let Some(send) = leg.send_codec()
            && let Some(pt) = send.tele
        {
            let (freq, time) = (freq_of(send.codec), leg.tx_time);
            leg.dtmf_out = Some(DtmfOut { pt, event: code, time, freq, elapsed: SYNTH_PERIOD, repeats: 2 });
            self.dtmf_active.push(id);
            // The event, its three end packets (40 ms), and a pause.
            leg.dtmf_next = Some(now + DTMF_DURATION + Duration::from_millis(100));
            return leg.dtmf_tick(&mut self.out, now).unwrap_or(false);
        }
        leg.dtmf_next = Some(now + Duration::from_millis((INBAND_DTMF_SAMPLES + INBAND_GAP_SAMPLES) as u64 / 8));
        if !matches!(phone.source, Source::Echo) {
            phone.inband.push_back(digit);
        }
        false
    }

    /// Every 20 ms: the synthesized phones' audio, to their device legs and recordings.
    fn synth_tick(&mut self, now: Instant) -> bool {
        let mut out: Vec<(LegId, [i16; FRAME])> = Vec::new();
        let mut any = false;
        // Telephone-events in progress: their next packet.
        for id in std::mem::take(&mut self.dtmf_active) {
            let Some(str0m_has_it) = self.legs.get_mut(&id).and_then(|l| l.dtmf_tick(&mut self.out, now)) else {
                continue;
            };
            self.dtmf_active.push(id);
            if str0m_has_it {
                self.touch(id);
            }
        }
        // Key presses first (an in-band one starts in this very frame).
        let mut dtmf = std::mem::take(&mut self.phone_dtmf_pending);
        dtmf.sort();
        dtmf.dedup();
        for (cid, id) in dtmf {
            if self.legs.get(&id).is_none_or(|l| l.dtmf_queue.is_empty()) {
                continue;
            }
            let Some(mut phone) =
                self.channels.get_mut(&cid).and_then(|c| c.bridge.as_mut()).and_then(|b| b.phone.take())
            else {
                continue;
            };
            if self.send_queued_dtmf(id, &mut phone, now) {
                if let Some(leg) = self.legs.get_mut(&id) {
                    leg.wants_timeout = true;
                }
                self.touch(id);
            }
            if let Some(b) = self.channels.get_mut(&cid).and_then(|c| c.bridge.as_mut()) {
                b.phone = Some(phone);
            }
            if self.legs.get(&id).is_some_and(|l| !l.dtmf_queue.is_empty()) {
                self.phone_dtmf_pending.push((cid, id));
            }
        }
        let topology = self.topology;
        for chan in self.channels.values_mut() {
            let Some(bridge) = chan.bridge.as_mut() else { continue };
            let Some(phone) = bridge.phone.as_mut() else { continue };
            any = true;
            let Some(frame) = phone.next_frame() else { continue };
            if let Some(rec) = chan.recorder.as_mut() {
                rec.push(phone.side, &frame, now);
            }
            let device = match phone.device {
                Some((at, id)) if at == topology => id,
                _ => {
                    let id = match &bridge.sides[1 - phone.side] {
                        Endpoint::Device { rtc_id } => chan.legs.get(rtc_id).copied(),
                        Endpoint::Phone { .. } => None,
                    };
                    phone.device = Some((topology, id));
                    id
                }
            };
            if let Some(id) = device {
                out.push((id, frame));
            }
        }
        for (id, frame) in out {
            if let Some(leg) = self.legs.get_mut(&id)
                && leg.write_pcm(&mut self.out, &frame, now)
            {
                self.touch(id);
            }
        }
        // After the frames, so that each leg's datagram and frame share one timeout.
        self.receive_deferred(now);
        any
    }

    fn release(&mut self, channel_id: &str, now: Instant) -> Option<RecordingInfo> {
        let mut last = self.channel_stats(channel_id, now);
        let chan = self.channels.remove(channel_id)?;
        last["released"] = true.into();
        if let Some(file) = &chan.record_file {
            last["recording"] = json!({"file": file, "inProgress": false, "url": format!("{}/recordings/{file}", self.cfg.http_base.trim_end_matches('/'))});
        }
        if self.recent.len() == RECENT_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back((channel_id.to_string(), last));
        for id in chan.legs.values().copied().collect::<Vec<_>>() {
            self.remove_leg(id);
        }
        let rec = chan.recorder?;
        let file = chan.record_file.unwrap_or_default();
        match rec.finish(now) {
            Ok(done) => {
                let info = RecordingInfo {
                    url: format!("{}/recordings/{file}", self.cfg.http_base.trim_end_matches('/')),
                    file: file.clone(),
                    channel_id: channel_id.to_string(),
                    tenant: chan.tenant.clone(),
                    duration_ms: done.duration_ms,
                    bytes: done.bytes,
                    created_ms: chan.created_ms,
                };
                tracing::info!(channel_id, file, duration_ms = done.duration_ms, "recording done");
                self.recordings.push(info.clone());
                self.emit(MediaEvent::RecordingDone {
                    channel_id: channel_id.to_string(),
                    file,
                    duration_ms: done.duration_ms,
                    bytes: done.bytes,
                });
                Some(info)
            }
            Err(e) => {
                tracing::warn!(channel_id, "recording failed: {e}");
                None
            }
        }
    }

    /// Sends the queued datagrams.
    fn flush(&mut self) {
        if !self.out.is_empty() {
            let f = self.out.flush(&*self.socket);
            self.counters.send_errors += f.failed as u64;
        }
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        let cap = now + Duration::from_secs(1);
        let t = self.timers.peek().map(|Reverse((t, _))| *t).unwrap_or(cap);
        let t = self.next_synth.map_or(t, |s| s.min(t));
        let t = self.held_stun.front().map_or(t, |(h, _, _)| (*h).min(t));
        t.min(cap)
    }

    fn run_due(&mut self, now: Instant) {
        // Every hold is the same length, so the queue is (nearly) in release order; a packet
        // waits at most for those ahead of it.
        while self.held_stun.front().is_some_and(|(t, _, _)| *t <= now) {
            if let Some((_, src, buf)) = self.held_stun.pop_front() {
                self.handle_packet(&buf, src, now);
            }
        }
        // The phones' frames first: a leg with a frame to send and a due timer then takes one
        // timeout for both.
        while let Some(next) = self.next_synth {
            if next > now {
                break;
            }
            let any = self.synth_tick(now);
            self.next_synth = if !any {
                None
            } else if now.saturating_duration_since(next) > Duration::from_millis(200) {
                Some(now + SYNTH_PERIOD)
            } else {
                Some(next + SYNTH_PERIOD)
            };
        }
        if self.next_synth.is_none() {
            self.receive_deferred(now);
        }
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(leg) = self.legs.get_mut(&id) else { continue };
            if leg.scheduled != Some(t) {
                continue; // superseded
            }
            leg.scheduled = None;
            if let Some(later) = leg.timeout.filter(|&d| d > now) {
                leg.scheduled = Some(later);
                self.timers.push(Reverse((later, id)));
                continue;
            }
            leg.wants_timeout = true;
            if !leg.dirty {
                leg.dirty = true;
                self.dirty.push_back(id);
            }
        }
        self.settle(now);
    }
}

async fn io_loop(server: Arc<MediaServer>, index: usize, mut stop: watch::Receiver<bool>) {
    let server = &server.workers[index];
    let mut batch = RecvBatch::new(RECV_BATCH);
    loop {
        let deadline = {
            let mut st = server.state.lock();
            st.flush();
            st.next_deadline(Instant::now())
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = server.socket.readable() => {
                if let Err(e) = r {
                    tracing::trace!("media socket: {e}");
                    continue;
                }
                let mut st = server.state.lock();
                for _ in 0..RECV_BATCHES_PER_TURN {
                    match server.socket.try_io(tokio::io::Interest::READABLE, || batch.recv(&*server.socket)) {
                        Ok(n) => {
                            let now = Instant::now();
                            for i in 0..n {
                                let (buf, src, _) = batch.get(i);
                                st.on_packet(buf, src, now);
                            }
                            st.settle(now);
                            // Send what this batch produced before taking the next.
                            st.flush();
                            if n < batch.capacity() {
                                break;
                            }
                        }
                        Err(e) => {
                            if e.kind() != std::io::ErrorKind::WouldBlock {
                                tracing::trace!("media socket: {e}");
                            }
                            break;
                        }
                    }
                }
                st.run_due(Instant::now());
            }
            _ = tokio::time::sleep_until(deadline.into()) => server.state.lock().run_due(Instant::now()),
            _ = server.wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_telephone_event_is_five_updates_and_three_end_packets() {
        let mut out = DtmfOut {
            pt: Pt::from(101),
            event: 5,
            time: 1234,
            freq: Frequency::EIGHT_KHZ,
            elapsed: SYNTH_PERIOD,
            repeats: 2,
        };
        let mut packets = Vec::new();
        while let Some(p) = out.next() {
            packets.push(p);
        }
        assert_eq!(packets.len(), 7, "{packets:?}");
        let reports: Vec<TelephoneEvent> =
            packets.iter().map(|(b, _)| TelephoneEvent::parse(b, Frequency::EIGHT_KHZ).unwrap()).collect();
        // Only the first is marked; durations grow by 20 ms to 100 ms; the last three end it.
        assert_eq!(
            packets.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
            [true, false, false, false, false, false, false]
        );
        let ms: Vec<u128> = reports.iter().map(|r| r.duration.as_millis()).collect();
        assert_eq!(ms, [20, 40, 60, 80, 100, 100, 100]);
        let ends: Vec<bool> = reports.iter().map(|r| r.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert!(reports.iter().all(|r| r.event == 5 && r.volume == 10));
        assert!(out.next().is_none(), "stays over");
    }
}
