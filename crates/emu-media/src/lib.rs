//! `emu-media`: alicom-emu's media server (docs/media.md, docs/architecture.md#one-media-port-ice-lite).
//!
//! - One [str0m](https://docs.rs/str0m) `Rtc` per call leg: ICE-lite, DTLS-SRTP, the Web SDK's
//!   offer answered per docs/protocol.md#the-joinchannel-result (server candidates only in `candidateList` /
//!   `candidateInfo`, never in the answer SDP). Both SDK modes: sigv 1 (offer in `sdpCandidate`,
//!   trickled `candidate`s) and sigv 2 (offer in `joinChannel`, peer-reflexive candidates).
//! - One UDP port for every leg; packets find their leg in O(1): STUN by the USERNAME's local
//!   ufrag, everything else by the source address ICE validated.
//! - An embedded TURN relay ([`turn::TurnRelay`]) with long-term credentials minted per join.
//! - Bridging: VoIP↔VoIP forwards the RTP payload untouched when both legs negotiated the
//!   codec (Opus), and transcodes through 8 kHz PCM otherwise; a phone's side is synthesized
//!   (tone, silence, echo, WAV file) in the device leg's codec, with RFC 4733 DTMF both ways.
//! - Recording to stereo WAV (caller left, callee right), served over HTTP by emu-admin.
//!
//! The API is synchronous (a short lock); the network I/O runs on one task of its own.

pub mod audio;
pub mod codec;
mod recorder;
pub mod sdp;
mod server;
pub mod srtp;
pub mod stun;
pub mod turn;
pub mod udp;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use codec::AudioCodec;
use emu_core::retention::Limit;
pub use emu_pstn::Audio;
/// For the fuzz targets only (docs/fuzzing.md).
#[doc(hidden)]
pub use server::fuzzing;
pub use server::{ChannelStats, MediaServer, RecordingInfo};

/// The media server's settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address the media and TURN sockets bind to.
    pub bind: IpAddr,
    /// Host (name or IP) handed to clients: in TURN URLs, and — resolved to an IP — in the
    /// server's ICE candidate and the TURN relay addresses. Empty: the bind address, or
    /// 127.0.0.1 when bound to an unspecified address.
    pub public_host: String,
    /// The UDP port of every leg (0 = a free port); with several workers, the first of
    /// consecutive ports.
    pub udp_port: u16,
    /// I/O tasks, each with its own port and its share of the channels (default 1).
    pub workers: usize,
    /// The TURN server's UDP port (0 = a free port).
    pub turn_port: u16,
    /// Whether to run the TURN server (without it, sigv 1 browsers cannot connect).
    pub turn_enabled: bool,
    pub turn_realm: String,
    /// Lifetime of the TURN credentials minted per joinChannel (they are also revoked when the
    /// call is released).
    pub turn_credential_ttl: Duration,
    /// Where recordings are written (created if missing).
    pub recordings_dir: PathBuf,
    /// Relative WAV paths of phone audio (`{"wav": "..."}`) are resolved against this.
    pub audio_dir: PathBuf,
    /// Which call types are recorded without being asked (`needRecord`).
    pub record_by_default: RecordDefaults,
    /// Prefix of recording download URLs (e.g. the admin API's base URL); empty: relative
    /// URLs (`/recordings/<file>`).
    pub http_base: String,
    /// Final statistics of released channels kept, per media worker (`retention.finished_channels`).
    pub finished_channels: Limit,
    /// The recordings index kept, per media worker (`retention.recordings`; files stay on disk).
    pub recordings: Limit,
}

/// Recording defaults per call type (`alicomRtcType`). By default as the vendor does:
/// VoIP→PSTN calls are recorded; inbound and pure VoIP calls are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordDefaults {
    pub voip2pstn: bool,
    pub voip2voip: bool,
    pub pstn2voip: bool,
    pub pstn2pstn: bool,
}

impl Default for RecordDefaults {
    fn default() -> Self {
        RecordDefaults { voip2pstn: true, voip2voip: false, pstn2voip: false, pstn2pstn: false }
    }
}

impl RecordDefaults {
    /// Whether a call of this `alicomRtcType` is recorded when nobody asked.
    pub fn for_type(&self, rtc_type: &str) -> bool {
        match rtc_type {
            "voip2pstn" => self.voip2pstn,
            "voip2voip" => self.voip2voip,
            "pstn2voip" => self.pstn2voip,
            "pstn2pstn" => self.pstn2pstn,
            _ => false,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            public_host: String::new(),
            udp_port: 0,
            workers: 1,
            turn_port: 0,
            turn_enabled: true,
            turn_realm: "alicom-emu".into(),
            turn_credential_ttl: Duration::from_secs(86_400),
            recordings_dir: std::env::temp_dir().join("alicom-emu-recordings"),
            audio_dir: PathBuf::from("."),
            record_by_default: RecordDefaults::default(),
            http_base: String::new(),
            finished_channels: Limit::new(1000, 8 << 20),
            recordings: Limit::new(10_000, 4 << 20),
        }
    }
}

/// One side of a bridged call.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// A device's leg in the channel (joined, or joining later).
    Device { rtc_id: String },
    /// A simulated phone: its audio is synthesized here.
    Phone { number: String, audio: Audio },
}

/// Which codec a leg's answer puts first (the one the browser then sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecPreference {
    /// Opus, then PCMU, PCMA: device↔device calls.
    #[default]
    Opus,
    /// PCMU, PCMA, then Opus, as a PSTN gateway answers: calls with a phone.
    G711,
}

impl CodecPreference {
    /// G.711 for call types with a phone in them (`voip2pstn`, `pstn2voip`), Opus otherwise.
    pub fn for_call_type(rtc_type: &str) -> Self {
        if rtc_type.contains("pstn") { CodecPreference::G711 } else { CodecPreference::Opus }
    }
}

/// How a leg's offers are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegOptions {
    pub prefer: CodecPreference,
    /// Answer an offered video line (VP8, H.264) and forward video to the other party: a
    /// VoIP↔VoIP call whose caller asked for video (`channelConfig.allowVideo`). Otherwise
    /// video lines are rejected and the leg is audio only.
    pub video: bool,
}

impl From<CodecPreference> for LegOptions {
    fn from(prefer: CodecPreference) -> Self {
        LegOptions { prefer, video: false }
    }
}

/// What the media server reports.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A leg's ICE and DTLS are up: media can flow.
    LegConnected { channel_id: String, rtc_id: String },
    /// A connected leg's ICE went away (the browser closed, or its network broke).
    LegDisconnected { channel_id: String, rtc_id: String },
    /// A device sent an RFC 4733 telephone-event (reported once per key press).
    DeviceDtmf { channel_id: String, rtc_id: String, digit: char },
    /// A leg allowed video had an offer answered: whether the answer has an active video line
    /// (false: no video line, rejected, or `inactive`; the call is then audio).
    VideoNegotiated { channel_id: String, rtc_id: String, video: bool },
    /// A leg's video reached the other party for the first time (once per negotiated line).
    VideoFlowing { channel_id: String, rtc_id: String },
    /// A call's recording is complete (written when the call was released).
    RecordingDone { channel_id: String, file: String, duration_ms: u64, bytes: u64 },
}
