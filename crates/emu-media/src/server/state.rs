//! A worker's state: its channels and legs, routing each datagram to its leg (STUN by ufrag,
//! the rest by validated source address), draining the legs' `Rtc`s, and the timers.
//!
//! Sans-IO, like str0m's `Rtc`: datagrams and the time come in as arguments; what comes out is
//! queued in `out` (datagrams to send), `events` (for the call driver) and `turn_released` (TURN
//! users to forget), which the worker (`worker.rs`) carries out. No socket, channel or
//! `Instant::now()` in here; the only I/O left is the recorder's WAV file.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emu_core::Clock;
use emu_core::retention::Bounded;
use str0m::config::CryptoProvider;
use str0m::media::{MediaKind, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, Ssrc};
use str0m::{Event, IceConnectionState, Input, Output, PacerReason, Reason};

use crate::srtp::RtpHeader;
use crate::stun::{self, Kind};
use crate::udp::{Parked, SendQueue};
use crate::{MediaConfig, MediaEvent};

use super::bridge::Channel;
use super::direct::Received;
use super::leg::{Leg, LegState};
use super::stats::{BridgeStats, ChannelStats, RecordingStats};
use super::{Counters, DtlsIdentity, LegId, RecordingInfo, SYNTH_PERIOD};

/// How long the pacer's "handle a timeout before the next poll" may wait (see `State::drain`).
const PACER_DEFER: Duration = Duration::from_millis(40);
/// A leg's first ICE checks are answered this much later. On loopback Chrome's ICE connects
/// within a millisecond of `addIceCandidate`, sometimes before that call's promise resolves,
/// and the Web SDK then misses "ICE connected" for good (docs/protocol.md#no-candidates-in-the-answer). A
/// real network's round trip hides that race; this restores a small one.
pub(super) const ICE_HOLD: Duration = Duration::from_millis(30);

/// A received RTP packet, decrypted by str0m or by this server (`Direct`).
pub(super) struct Heard<'a> {
    pub(super) pt: Pt,
    pub(super) ssrc: Ssrc,
    /// The extended sequence number (video renumbers from it; audio keeps its own timeline).
    pub(super) seq: u64,
    pub(super) time: u32,
    pub(super) marker: bool,
    pub(super) payload: &'a [u8],
    /// When it arrived.
    pub(super) at: Instant,
}

impl<'a> Heard<'a> {
    pub(super) fn of(p: &'a RtpPacket) -> Heard<'a> {
        let h = &p.header;
        Heard {
            pt: h.payload_type,
            ssrc: h.ssrc,
            seq: *p.seq_no,
            time: h.timestamp,
            marker: h.marker,
            payload: &p.payload,
            at: p.timestamp,
        }
    }
}

pub(super) struct State {
    pub(super) cfg: Arc<MediaConfig>,
    pub(super) clock: Clock,
    /// Datagrams to send, flushed in one go after each batch of work.
    pub(super) out: SendQueue,
    /// Events for the call driver, in order, sent after each batch of work.
    pub(super) events: Vec<MediaEvent>,
    /// TURN users of released legs: their credentials and allocations go.
    pub(super) turn_released: Vec<String>,
    pub(super) cand_addr: SocketAddr,
    pub(super) provider: Arc<CryptoProvider>,
    /// Made on a background thread at start (see [`DtlsIdentity`]).
    pub(super) cert: Arc<DtlsIdentity>,
    pub(super) channels: FxHashMap<String, Channel>,
    // Boxed: a leg is several hundred bytes, moved on every insert, remove and rehash otherwise.
    pub(super) legs: FxHashMap<LegId, Box<Leg>>,
    pub(super) by_ufrag: FxHashMap<String, LegId>,
    pub(super) by_addr: FxHashMap<SocketAddr, LegId>,
    /// Legs with input, written frames or a due timeout since they were last drained, in the
    /// order they were touched (so events come out in the order their datagrams came in).
    pub(super) dirty: VecDeque<LegId>,
    /// RTP datagrams of legs bridged with a synthesized phone, since the phone's last frame:
    /// their audio only goes to the recording, so they are fed to str0m right after that frame
    /// (one timeout and one drain per 20 ms for both directions instead of two).
    pub(super) deferred: Parked<LegId>,
    /// Legs sending a telephone-event (`Leg::dtmf_out`).
    pub(super) dtmf_active: Vec<LegId>,
    /// (channel, device leg) with phone key presses queued (`Leg::dtmf_queue`).
    pub(super) phone_dtmf_pending: Vec<(String, LegId)>,
    /// STUN packets held by `ICE_HOLD`, in arrival order: (release time, source, datagram).
    pub(super) held_stun: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    /// Bumped whenever legs, channels or bridges change: cached routes older than this are
    /// recomputed.
    pub(super) topology: u64,
    pub(super) timers: BinaryHeap<Reverse<(Instant, LegId)>>,
    pub(super) next_synth: Option<Instant>,
    pub(super) next_leg: LegId,
    pub(super) recordings: Bounded<RecordingInfo>,
    pub(super) wav_cache: HashMap<PathBuf, Arc<Vec<i16>>>,
    /// Final statistics of released channels, newest last.
    pub(super) recent: Bounded<(String, ChannelStats)>,
    pub(super) counters: Counters,
    /// The payload of the packet being routed, decrypted by `Direct` (reused).
    pub(super) plain: Vec<u8>,
}

impl State {
    pub(super) fn new(
        cfg: Arc<MediaConfig>,
        clock: Clock,
        cand_addr: SocketAddr,
        provider: Arc<CryptoProvider>,
        cert: Arc<DtlsIdentity>,
    ) -> State {
        let (recordings, finished) = (cfg.recordings, cfg.finished_channels);
        State {
            cfg,
            clock,
            out: SendQueue::new(),
            events: Vec::new(),
            turn_released: Vec::new(),
            cand_addr,
            provider,
            cert,
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
            recordings: Bounded::new(recordings),
            wav_cache: HashMap::new(),
            recent: Bounded::new(finished),
            counters: Counters::default(),
            plain: Vec::new(),
        }
    }

    /// A live channel's statistics (None when it is unknown or released).
    pub(super) fn channel_stats(&self, channel_id: &str, now: Instant) -> Option<ChannelStats> {
        let clock_now = self.clock.now_ms();
        let chan = self.channels.get(channel_id)?;
        let mut legs: Vec<&Leg> = chan.legs.values().filter_map(|id| self.legs.get(id).map(|l| &**l)).collect();
        legs.sort_by_key(|l| l.id);
        Some(ChannelStats {
            channel_id: channel_id.to_string(),
            released: false,
            legs: legs.iter().map(|l| l.stats_at(clock_now, now)).collect(),
            bridge: chan.bridge.as_ref().map(|b| BridgeStats {
                caller: (&b.sides[0]).into(),
                callee: (&b.sides[1]).into(),
                record: b.record,
            }),
            recording: chan.record_file.as_ref().map(|f| RecordingStats::Live {
                file: f.clone(),
                in_progress: true,
                elapsed_ms: chan.recorder.as_ref().map(|r| r.elapsed(now).as_millis() as u64),
            }),
        })
    }

    pub(super) fn leg_of(&self, channel_id: &str, rtc_id: &str) -> Option<LegId> {
        self.channels.get(channel_id)?.legs.get(rtc_id).copied()
    }

    pub(super) fn remove_leg(&mut self, id: LegId) {
        let Some(mut leg) = self.legs.remove(&id) else { return };
        self.topology += 1;
        self.by_ufrag.remove(&leg.ice.ufrag);
        for a in &leg.addrs {
            if self.by_addr.get(a) == Some(&id) {
                self.by_addr.remove(a);
            }
        }
        if let Some(user) = leg.turn_user.take() {
            self.turn_released.push(user);
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

    /// The counters, with every datagram queued counted as sent.
    pub(super) fn counters(&self) -> Counters {
        Counters { packets_out: self.out.queued(), ..self.counters }
    }

    pub(super) fn emit(&mut self, e: MediaEvent) {
        self.events.push(e);
    }

    /// Marks a leg for the next [`State::settle`].
    pub(super) fn touch(&mut self, id: LegId) {
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
    pub(super) fn settle(&mut self, now: Instant) {
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
    pub(super) fn drain(&mut self, id: LegId, now: Instant) {
        self.poll_leg(id, now, false);
    }

    /// Polls a leg's Rtc: to its next timeout, or (`to_packet`) only until it hands out the
    /// packet just received — in RTP mode str0m keeps one received packet until the next
    /// poll, so each must be taken before the next datagram goes in. The rest of that drain
    /// (the next timeout) then comes with the leg's next full drain.
    fn poll_leg(&mut self, id: LegId, now: Instant, to_packet: bool) {
        let mut media = Vec::new();
        let mut events = Vec::new();
        let mut keyframe_requests = Vec::new();
        let mut connected = false;
        {
            let Some(leg) = self.legs.get_mut(&id) else { return };
            let Some(rtc) = leg.rtc.as_mut() else { return };
            // A video leg's pacer is run until it has nothing due (bounded: never spin).
            let mut pacer_rounds = if leg.video_rtc { 256 } else { 0 };
            loop {
                match rtc.poll_output() {
                    Ok(Output::Timeout(t)) if t <= now && pacer_rounds > 0 && !to_packet => {
                        pacer_rounds -= 1;
                        if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                            tracing::debug!(rtc_id = %leg.rtc_id, "timeout refused: {e}");
                            break;
                        }
                    }
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
                        if !leg.video_rtc {
                            leg.direct.observe(&t.contents, t.destination);
                        }
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
                        Event::KeyframeRequest(r) => keyframe_requests.push(r.kind),
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
        for kind in keyframe_requests {
            self.keyframe_requested(id, kind);
        }
        for p in media {
            // str0m found this packet's index: the stream's next packets are decrypted here.
            if let Some(leg) = self.legs.get_mut(&id)
                && !leg.video_rtc
            {
                leg.direct.seed(*p.header.ssrc, *p.seq_no);
            }
            self.route(id, Heard::of(&p), now);
        }
    }

    pub(super) fn on_packet(&mut self, buf: &[u8], src: SocketAddr, now: Instant) {
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
    pub(super) fn receive(&mut self, id: LegId, src: SocketAddr, buf: &[u8], rtp: bool, now: Instant) {
        let Some(leg) = self.legs.get_mut(&id) else { return };
        let Some(rtc) = leg.rtc.as_mut() else { return };
        let Ok(recv) = Receive::new(Protocol::Udp, src, self.cand_addr, buf) else {
            self.counters.unparseable += 1;
            return;
        };
        leg.stats.packets_in += 1;
        leg.stats.bytes_in += buf.len() as u64;
        leg.stats.last_packet = Some(now);
        // A video leg answers what it receives (congestion feedback, NACKs): always drained.
        let written = leg.wants_timeout || leg.video_rtc;
        // The WebRTC stack can panic on a peer's malformed datagram (the DTLS library asserts on
        // some duplicate records: found by fuzzing). That must cost this leg only, not the worker
        // and every other call on it: the leg loses its Rtc, as after a refused offer.
        let input = Input::Receive(now, recv);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rtc.handle_input(input))) {
            // str0m handles a timeout after each datagram: what was written to the leg before
            // it leaves with the next drain without one more.
            Ok(Ok(())) => leg.wants_timeout = false,
            Ok(Err(e)) => tracing::debug!(rtc_id = %leg.rtc_id, "input refused: {e}"),
            Err(_) => {
                tracing::warn!(rtc_id = %leg.rtc_id, %src, "the leg's WebRTC stack panicked on a datagram; leg reset");
                leg.rtc = None;
                leg.state = LegState::New;
                self.counters.unparseable += 1;
                return;
            }
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
            seq: u64::from(h.seq),
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
    pub(super) fn receive_deferred(&mut self, now: Instant) {
        let mut parked = std::mem::take(&mut self.deferred);
        for (id, src, buf) in parked.iter() {
            self.receive(id, src, buf, true, now);
        }
        parked.clear(); // and keep its allocations
        self.deferred = parked;
    }

    pub(super) fn next_deadline(&self, now: Instant) -> Instant {
        let cap = now + Duration::from_secs(1);
        let t = self.timers.peek().map(|Reverse((t, _))| *t).unwrap_or(cap);
        let t = self.next_synth.map_or(t, |s| s.min(t));
        let t = self.held_stun.front().map_or(t, |(h, _, _)| (*h).min(t));
        t.min(cap)
    }

    pub(super) fn run_due(&mut self, now: Instant) {
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
