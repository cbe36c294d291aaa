//! What a [`super::MediaClient`] is told (TURN credentials, codecs, video, tone) and what it
//! reports ([`ClientStats`]).

use std::net::SocketAddr;
use std::time::Duration;

use emu_media::codec::AudioCodec;
use serde_json::Value;

/// Long-term TURN credentials from a joinChannel result's `turnServers`.
#[derive(Debug, Clone)]
pub struct TurnCreds {
    pub addr: SocketAddr,
    pub username: String,
    pub password: String,
    pub realm: String,
}

impl TurnCreds {
    /// The first `turn:` server of a joinChannel result (the decoded mediaSignal).
    pub fn from_join_result(result: &Value) -> Option<TurnCreds> {
        let s = result.pointer("/data/turnServers")?.as_array()?.first()?;
        let url = s["address"].as_str()?;
        let hostport = url.strip_prefix("turn:")?.split('?').next()?;
        let addr = tokio_addr(hostport)?;
        Some(TurnCreds {
            addr,
            username: s["username"].as_str()?.to_string(),
            password: s["password"].as_str()?.to_string(),
            realm: "alicom-emu".into(),
        })
    }
}

fn tokio_addr(hostport: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    hostport.to_socket_addrs().ok()?.find(|a| a.is_ipv4())
}

/// How the client connects and what it sends.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Through this TURN relay (relay candidate only), or directly (a host candidate).
    pub turn: Option<TurnCreds>,
    /// Audio codecs offered, in order.
    pub codecs: Vec<AudioCodec>,
    /// Offer telephone-event (8 kHz and 48 kHz).
    pub telephone_event: bool,
    /// The tone sent once connected (`None`: digital silence).
    pub tone_hz: Option<f64>,
    /// Send every RTP datagram twice, as a network that duplicates packets does (the server
    /// must drop the replays).
    pub duplicate_rtp: bool,
    /// A video m-line (VP8, send and receive) in the offer too, as a client with a camera has.
    /// When the answer accepts it, the client sends synthetic VP8 frames (30 fps,
    /// `VIDEO_FRAME_BYTES` each, a few packets per frame).
    pub video: Option<VideoLine>,
}

/// The size of each synthetic video frame: ~720 kbit/s at 30 fps.
pub const VIDEO_FRAME_BYTES: usize = 3000;
pub(super) const VIDEO_FRAME_INTERVAL: Duration = Duration::from_millis(33);

/// Where the offer's video m-line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoLine {
    /// After the audio m-line (a camera added after the microphone).
    AfterAudio,
    /// Before it (the camera first).
    BeforeAudio,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            turn: None,
            codecs: vec![AudioCodec::Opus, AudioCodec::Pcmu],
            telephone_event: true,
            tone_hz: Some(440.0),
            duplicate_rtp: false,
            video: None,
        }
    }
}

impl ClientOptions {
    /// Directly to the media server's host candidate (sigv 2 style).
    pub fn direct() -> Self {
        ClientOptions::default()
    }

    /// Through the TURN relay only (sigv 1, `iceTransportPolicy: "relay"`).
    pub fn relay(turn: TurnCreds) -> Self {
        ClientOptions { turn: Some(turn), ..ClientOptions::default() }
    }

    pub fn tone(mut self, hz: f64) -> Self {
        self.tone_hz = Some(hz);
        self
    }

    pub fn codecs(mut self, codecs: &[AudioCodec]) -> Self {
        self.codecs = codecs.to_vec();
        self
    }

    /// Offers a video m-line too, placed as `line` says (sending video once it is answered).
    pub fn video(mut self, line: VideoLine) -> Self {
        self.video = Some(line);
        self
    }
}

/// What the client has seen so far.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    pub connected: bool,
    /// UDP datagrams (through the relay: payloads) in and out.
    pub packets_rx: u64,
    pub packets_tx: u64,
    /// Audio RTP packets received / sent.
    pub rtp_rx: u64,
    pub rtp_bytes_rx: u64,
    pub rtp_tx: u64,
    /// Codec of the audio received, and of the audio sent.
    pub rx_codec: Option<AudioCodec>,
    pub tx_codec: Option<AudioCodec>,
    /// RFC 4733 digits received, one per key press.
    pub dtmf_rx: Vec<char>,
    pub dtmf_tx: u64,
    /// Whole video frames sent / received (str0m packetizes and reassembles them).
    pub video_frames_tx: u64,
    pub video_frames_rx: u64,
    pub video_bytes_rx: u64,
    /// Keyframe requests (PLI/FIR) the server sent this client.
    pub keyframe_requests_rx: u64,
}
