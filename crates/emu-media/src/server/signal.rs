//! The device signalling: joinChannel and sdpCandidate results (TURN credentials, the answer
//! to an offer, the server's candidate), trickled candidates, and creating legs and their `Rtc`s.

use emu_core::media_result::{AnswerType, MediaResult, MediaResultApi, SdpAnswer, TurnServer};
use emu_core::media_signal::MediaSignal;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use str0m::change::SdpOffer;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, Mid};
use str0m::rtp::Extension;
use str0m::{Candidate, IceCreds, Rtc};

use crate::srtp::{self, KeySlot};
use crate::{CodecPreference, LegOptions, MediaEvent, sdp};

use super::bridge::Channel;
use super::direct::Direct;
use super::leg::{Leg, LegCounters, LegState, first_seq};
use super::state::State;
use super::video::VideoLeg;
use super::{LegId, MediaServer};
use emu_core::ids::{push_random_alnum, random_alnum};

/// Error codes of failed ARTC results (the SDK only reports them: reportStatus 32 / 34).
const ERR_BAD_OFFER: i64 = 40001;
const ERR_NO_LEG: i64 = 40004;

impl MediaServer {
    /// A device's joinChannel: mints TURN credentials and returns the ARTC joinChannel result
    /// (the `body.mediaSignal` of the answer). With sigv 2 (the offer inside `signal`), it also
    /// carries the answer and the server's one candidate.
    pub fn join(&self, channel_id: &str, tenant: &str, rtc_id: &str, uuid: &str, signal: &MediaSignal) -> MediaResult {
        self.join_with(channel_id, tenant, rtc_id, uuid, signal, CodecPreference::Opus)
    }

    /// [`MediaServer::join`], choosing which codec the answer puts first
    /// ([`CodecPreference::for_call_type`]) and whether video is answered ([`LegOptions`]).
    pub fn join_with(
        &self,
        channel_id: &str,
        tenant: &str,
        rtc_id: &str,
        uuid: &str,
        signal: &MediaSignal,
        options: impl Into<LegOptions>,
    ) -> MediaResult {
        let now = Instant::now();
        let turn = self.mint_turn_user();
        let LegOptions { prefer, video } = options.into();
        let leg = NewLeg { channel_id, tenant, rtc_id, uuid, prefer, video };
        self.worker(channel_id).with(|st| st.join(leg, signal, turn, now))
    }

    /// TURN credentials for one leg, when the relay runs: valid for `turn_credential_ttl`.
    fn mint_turn_user(&self) -> Option<TurnUser> {
        let (turn, url) = (self.turn.as_ref()?, self.turn_url()?);
        let ttl = self.cfg.turn_credential_ttl;
        let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default() + ttl;
        // `<expiry>:<random>`, built in one allocation.
        let mut username = String::with_capacity(32);
        let _ = write!(username, "{}:", expiry.as_secs());
        push_random_alnum(&mut username, 12);
        let password = random_alnum(24);
        turn.add_user(&username, &password, ttl);
        Some(TurnUser { url, username, password })
    }

    /// A device's media signal: `sdpCandidate` (offer + candidates → the answer result),
    /// `candidate` (a trickled candidate; no result), anything else ignored.
    pub fn signal(
        &self,
        channel_id: &str,
        rtc_id: &str,
        uuid: &str,
        api: &str,
        signal: &MediaSignal,
    ) -> Option<MediaResult> {
        let now = Instant::now();
        self.worker(channel_id).with(|st| st.signal(channel_id, rtc_id, uuid, api, signal, now))
    }
}

/// Why an offer gets no answer (the result's `errorMsg` says it).
#[derive(Debug, thiserror::Error)]
pub(super) enum OfferError {
    #[error("the offer has no audio m-line")]
    NoAudio,
    /// str0m could not parse it (its error as text).
    #[error("unparseable SDP: {0}")]
    Unparseable(String),
    #[error("no such leg")]
    NoLeg,
    /// str0m refused it (its error as text).
    #[error("{0}")]
    Refused(String),
    #[error("no audio codec in common (need Opus, PCMU or PCMA)")]
    NoCommonCodec,
}

/// Who a new leg belongs to.
pub(super) struct NewLeg<'a> {
    pub(super) channel_id: &'a str,
    pub(super) tenant: &'a str,
    pub(super) rtc_id: &'a str,
    pub(super) uuid: &'a str,
    pub(super) prefer: CodecPreference,
    pub(super) video: bool,
}

/// TURN credentials minted for a leg (the relay knows them already).
pub(super) struct TurnUser {
    pub(super) url: String,
    pub(super) username: String,
    pub(super) password: String,
}

impl State {
    /// The joinChannel result (the answer's `body.mediaSignal`) for a new leg; with sigv 2 (the
    /// offer inside `signal`), it also carries the answer and the server's one candidate.
    pub(super) fn join(
        &mut self,
        leg: NewLeg,
        signal: &MediaSignal,
        turn: Option<TurnUser>,
        now: Instant,
    ) -> MediaResult {
        let NewLeg { channel_id, tenant, rtc_id, uuid, prefer, video } = leg;
        let id = self.new_leg(channel_id, tenant, rtc_id, uuid, prefer, now);
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.video_allowed = video;
        }
        let mut result = MediaResult::success(MediaResultApi::JoinChannel, channel_id, signal.seq_id.clone());
        if let Some(TurnUser { url, username, password }) = turn {
            if let Some(leg) = self.legs.get_mut(&id) {
                leg.turn_user = Some(username.clone());
            }
            result.data.turn_servers = Some(vec![TurnServer { address: url, username, password }]);
        }
        let offer = signal.data.sdp.as_deref();
        let sigv2 = offer.is_some() || signal.data.channel_config.sig_version == Some(2);
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.sigv = if sigv2 { 2 } else { 1 };
        }
        if let Some(offer) = offer {
            match self.answer(id, offer, &[], now) {
                Ok((answer, mid, label)) => {
                    result.data.sdp_info = Some(SdpAnswer { sdp: answer, kind: AnswerType::Answer });
                    result.data.candidate_info = Some(sdp::candidate(self.cand_addr, &mid, label));
                }
                Err(e) => {
                    tracing::warn!(channel_id, rtc_id, "joinChannel offer refused: {e}");
                    result.fail(ERR_BAD_OFFER, format!("cannot answer the offer: {e}"));
                }
            }
        }
        result
    }

    /// A media signal: `sdpCandidate` answers the offer (creating the leg if no joinChannel
    /// came first), `candidate` adds trickled candidates; anything else is ignored.
    pub(super) fn signal(
        &mut self,
        channel_id: &str,
        rtc_id: &str,
        uuid: &str,
        api: &str,
        signal: &MediaSignal,
        now: Instant,
    ) -> Option<MediaResult> {
        match api {
            "sdpCandidate" => {
                let mut result = MediaResult::success(MediaResultApi::SdpCandidate, channel_id, signal.seq_id.clone());
                let offer = signal.data.sdp.as_deref();
                let candidates = sdp::candidate_strings(signal.data.candidate_list.as_ref().unwrap_or(&Value::Null));
                let id = match self.leg_of(channel_id, rtc_id) {
                    Some(id) => Some(id),
                    // No joinChannel seen (a restart, a replayed message): answer anyway.
                    None if offer.is_some() => {
                        let tenant = self.channels.get(channel_id).map(|c| c.tenant.clone()).unwrap_or_default();
                        Some(self.new_leg(channel_id, &tenant, rtc_id, uuid, CodecPreference::Opus, now))
                    }
                    None => None,
                };
                match (id, offer) {
                    (Some(id), Some(offer)) => match self.answer(id, offer, &candidates, now) {
                        Ok((answer, mid, label)) => {
                            result.data.sdp_info = Some(SdpAnswer { sdp: answer, kind: AnswerType::Answer });
                            result.data.candidate_list = Some([sdp::candidate(self.cand_addr, &mid, label)]);
                        }
                        Err(e) => {
                            tracing::warn!(channel_id, rtc_id, "sdpCandidate offer refused: {e}");
                            result.fail(ERR_BAD_OFFER, format!("cannot answer the offer: {e}"));
                        }
                    },
                    _ => {
                        result.fail(
                            if id.is_none() { ERR_NO_LEG } else { ERR_BAD_OFFER },
                            "sdpCandidate without an offer",
                        );
                    }
                }
                Some(result)
            }
            "candidate" => {
                let data = &signal.data;
                let info = data.candidate_info.as_ref().or(data.candidate_list.as_ref()).unwrap_or(&Value::Null);
                if let Some(id) = self.leg_of(channel_id, rtc_id) {
                    for c in sdp::candidate_strings(info) {
                        self.add_remote_candidate(id, &c, now);
                    }
                }
                None
            }
            _ => None,
        }
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
        let mut ufrag = random_alnum(8);
        while self.by_ufrag.contains_key(&ufrag) {
            ufrag = random_alnum(8);
        }
        self.by_ufrag.insert(ufrag.clone(), id);
        let clock_ms = self.clock.now_ms();
        let chan = self.channels.entry(channel_id.to_string()).or_insert_with(|| Channel::new(tenant, clock_ms));
        if chan.tenant.is_empty() {
            chan.tenant = tenant.to_string();
        }
        chan.legs.insert(rtc_id.to_string(), id);
        let (tx_seq, tx_time) = (first_seq(), rand::rng().random::<u32>());
        self.legs.insert(
            id,
            Box::new(Leg {
                id,
                channel_id: channel_id.to_string(),
                rtc_id: rtc_id.to_string(),
                uuid: uuid.to_string(),
                tenant: tenant.to_string(),
                prefer,
                sigv: 1,
                ice: IceCreds { ufrag, pass: random_alnum(24) },
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
                stats: LegCounters::default(),
                created: now,
                dirty: false,
                ice_hold_until: None,
                wants_timeout: false,
                route: None,
                passthrough: None,
                direct: Direct::new(KeySlot::default(), self.provider.clone()),
                video_allowed: false,
                video_rtc: false,
                video: None,
                remote_fingerprint: None,
            }),
        );
        self.topology += 1;
        self.counters.legs_created += 1;
        id
    }

    /// A leg's `Rtc`, and where its DTLS handshake puts the SRTP keys. With `video`, it also
    /// answers VP8 and H.264 and negotiates transport-wide congestion control.
    fn new_rtc(&self, prefer: CodecPreference, ice: &IceCreds, video: bool, now: Instant) -> (Rtc, KeySlot) {
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
        if video {
            // The browser's bandwidth estimate needs per-packet feedback to grow beyond its
            // start rate; the server sends it (str0m does, for every received packet).
            b = b
                .set_extension(3, Extension::TransportSequenceNumber)
                .set_extension(13, Extension::VideoOrientation)
                .set_send_buffer_video(1000)
                .set_reordering_size_video(30)
                .enable_vp8(true)
                .enable_h264(true);
        }
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
    ///
    /// An offer from the peer connection the leg already has (same DTLS fingerprint) is a
    /// renegotiation, answered by the leg's `Rtc` (a party turning its video off); any other
    /// offer (a new peer connection, an ICE restart with new keys) starts over on a new `Rtc`.
    pub(super) fn answer(
        &mut self,
        id: LegId,
        offer_sdp: &str,
        candidates: &[String],
        now: Instant,
    ) -> Result<(String, String, u32), OfferError> {
        let (mid, label) = sdp::audio_mid(offer_sdp).ok_or(OfferError::NoAudio)?;
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| OfferError::Unparseable(e.to_string()))?;
        let fingerprint = sdp::fingerprint(offer_sdp);
        let video_line = sdp::video_line(offer_sdp);
        let leg = self.legs.get(&id).ok_or(OfferError::NoLeg)?;
        let renegotiation = leg.rtc.is_some()
            && matches!(leg.state, LegState::Connecting | LegState::Connected | LegState::Disconnected)
            && fingerprint.is_some()
            && leg.remote_fingerprint.as_deref() == fingerprint;
        let answer = if renegotiation {
            let leg = self.legs.get_mut(&id).ok_or(OfferError::NoLeg)?;
            let rtc = leg.rtc.as_mut().expect("checked above");
            let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| {
                self.counters.offers_rejected += 1;
                OfferError::Refused(e.to_string())
            })?;
            tracing::info!(channel_id = %leg.channel_id, rtc_id = %leg.rtc_id, "offer renegotiated");
            answer
        } else {
            let (prefer, ice) = (leg.prefer, leg.ice.clone());
            let video = leg.video_allowed && video_line.as_ref().is_some_and(|l| l.active);
            let (fresh, keys) = self.new_rtc(prefer, &ice, video, now);
            let leg = self.legs.get_mut(&id).ok_or(OfferError::NoLeg)?;
            // A re-offer (ICE restart, renegotiation) starts over on a new Rtc.
            leg.rtc = Some(Box::new(fresh));
            leg.video_rtc = video;
            leg.video = None;
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
            leg.remote_fingerprint = fingerprint.map(str::to_string);
            let rtc = leg.rtc.as_mut().expect("set above");
            match rtc.sdp_api().accept_offer(offer) {
                Ok(a) => a,
                Err(e) => {
                    leg.rtc = None;
                    leg.state = LegState::New;
                    self.counters.offers_rejected += 1;
                    return Err(OfferError::Refused(e.to_string()));
                }
            }
        };
        let leg = self.legs.get_mut(&id).ok_or(OfferError::NoLeg)?;
        let rtc = leg.rtc.as_mut().expect("answered above");
        let audio_ok = rtc.media(Mid::from(mid.as_str())).is_some_and(|m| !m.disabled());
        if !audio_ok {
            leg.rtc = None;
            leg.state = LegState::New;
            leg.video = None;
            self.counters.offers_rejected += 1;
            return Err(OfferError::NoCommonCodec);
        }
        // Lines without a codec of ours (video in an audio call) are rejected: str0m leaves such
        // a line without a format and with the offer's direction. Repair the text and set the
        // line inactive in str0m too, so its state matches the answer (no change to apply:
        // nothing is offered).
        let (answer, rejected) = sdp::reject_unanswered(&answer.to_sdp_string(), offer_sdp);
        let mut api = rtc.sdp_api();
        for m in &rejected {
            api.set_direction(Mid::from(m.as_str()), Direction::Inactive);
        }
        drop(api);
        // The video line, if it was answered and is active both ways.
        let video_mid =
            video_line.filter(|l| l.active && leg.video_rtc).map(|l| Mid::from(l.mid.as_str())).filter(|m| {
                rtc.media(*m).is_some_and(|media| !media.disabled() && media.direction() == Direction::SendRecv)
            });
        leg.video = match (leg.video.take(), video_mid) {
            (Some(old), Some(mid)) => Some(old.renegotiated(mid)),
            (None, Some(mid)) => Some(VideoLeg::new(mid, first_seq())),
            (_, None) => None,
        };
        leg.mid = Some(Mid::from(mid.as_str()));
        leg.passthrough = None;
        if leg.video_allowed {
            let e = MediaEvent::VideoNegotiated {
                channel_id: leg.channel_id.clone(),
                rtc_id: leg.rtc_id.clone(),
                video: leg.video.is_some(),
            };
            tracing::info!(channel_id = %leg.channel_id, rtc_id = %leg.rtc_id, video = leg.video.is_some(), "video negotiated");
            self.emit(e);
        }
        self.topology += 1;
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
}
