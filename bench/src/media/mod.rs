//! Benchmarks of the media server: SRTP audio forwarding between VoIP legs (packets per second
//! per core, added latency), concurrent recorded G.711 calls, and video forwarding (issue 19).
//!
//! ```text
//! alicom-bench media forward [--calls 16] [--pps 2000] [--seconds 10]
//!     [--payload-bytes 80] [--client-threads 1] [--direct] [--workers 1] [--prebuilt] [--json]
//! alicom-bench media latency [--calls 50] [--pps 50] [--seconds 10] ...
//! alicom-bench media g711 [--start 100] [--step 100] [--max 1500]
//!     [--seconds 10] [--no-record] [--client-threads 1] [--workers 1] [--prebuilt] [--json]
//! alicom-bench media video [--calls 100] [--kbps 1000] [--fps 30] [--packet-bytes 1100]
//!     [--seconds 10] [--audio] [--direct] [--idle-wait 600] [--client-threads 1] [--workers 1]
//!     [--json]
//! alicom-bench media video --ramp [--start 40] [--step 20] [--max 300] [same options]
//! alicom-bench media video-latency [--calls 100] [same options as video]
//! ```
//!
//! `--workers N` runs the server with `media.workers = N` (N I/O tasks, N ports).
//!
//! `--prebuilt` makes the load generator cheaper, so that the server, not the clients, runs out
//! of CPU first on this two-core machine: as soon as a leg connects, its `Rtc` makes every SRTP
//! packet the leg will send (its own sequence numbers, SRTP index and encryption, exactly as
//! when it sends them one by one) and the leg then only sends those bytes on schedule; received
//! RTP is counted, and one datagram in 64 is handed to str0m, which must decrypt and
//! authenticate it (reported as "authentic"). RTCP, STUN and DTLS still go through str0m. The
//! server does exactly the same work as without it. Latency is not measured in this mode (the
//! send time cannot be written into a packet made in advance).
//!
//! Results and method: docs/benchmarks.md, "Media server and MNS".
//!
//! **The server** runs in a child process (this executable with `media --server`), so that
//! `/proc/<pid>/stat` gives its CPU time alone: `emu_media::MediaServer::start` on a
//! multi-threaded tokio runtime (one worker per core, as in `alicom-emu`), one UDP media port on
//! 127.0.0.1, TURN off (the clients connect directly, as sigv 2 browsers do), recordings in a
//! temporary directory (deleted at the end). This process drives it with one JSON line per call
//! of its API (`join_with`, `signal` with `sdpCandidate`, `bridge`, `release`, `stats`) over the
//! child's stdin/stdout — the same calls `tests/integration/media.rs` makes.
//!
//! **The clients** are light str0m endpoints written here, playing the browser: one `Rtc` and one
//! UDP socket per leg (the server demultiplexes by source address), full ICE (controlling),
//! DTLS client, offering Opus and PCMU, sending in the answer's codec — but nothing the
//! measurement does not need: no TURN, no decoding, no locks, and str0m's RTP mode (whole
//! packets written and read, as the server does); the legs of a `--client-threads` runtime
//! thread share one socket and one timer heap (a "hub"). Payloads are prepared once: a real Opus frame (emu-media's
//! encoder, a 440 Hz tone) padded to `--payload-bytes`, or 20 ms of a µ-law 440 Hz tone (160 B).
//! Each payload's last 8 bytes carry the send time (ns since a process-wide epoch), taken just
//! before `StreamTx::write_rtp`, so the receiving client knows the one-way latency.
//!
//! * `forward`: `--calls` VoIP↔VoIP calls (two legs, codec preference Opus, bridged without
//!   recording), both legs sending `--pps` packets/s; after 2 s of warm-up a `--seconds` window
//!   counts the audio packets the server forwarded (Δ of the legs' `rtpPacketsOut`), what the
//!   clients sent and received, and the CPU time of the server process, of this process and of
//!   the rest of the machine (/proc). Per core = forwarded / server CPU seconds.
//!   `--direct` connects each call's two clients to each other instead (no server): the
//!   loopback baseline of the latency.
//! * `latency`: `forward --direct`, then `forward`, with the same parameters; prints both
//!   latency distributions and the difference (the latency the server adds).
//! * `g711`: calls of one device leg (codec preference G.711: the client sends PCMU, 50 pps)
//!   bridged to a phone playing a 1 kHz tone (synthesized by the server in PCMU, 50 pps), with
//!   `record = true` (a stereo WAV per call). Ramps from `--start` calls by `--step`; at each
//!   level, once every leg is connected and 2 s have passed, measures a `--seconds` window:
//!   uplink loss (1 − Δ server `rtpPacketsIn` / Δ sent by the clients), downlink loss (1 − Δ
//!   received by the clients / 50 × seconds × calls: the server's lateness counts as loss),
//!   whether the clients kept their 50 pps, datagrams dropped on the server's socket (a full
//!   receive buffer, /proc/net/udp), and CPU. A level with ≥ 1 % loss either way is measured once
//!   more; the ramp stops at its second failure, or at `--max`.
//! * `video` (`video.rs`): `--calls` VoIP↔VoIP **video** calls: both legs joined with
//!   `LegOptions { video: true }`, each client offering Opus/PCMU and VP8 (str0m's default
//!   header extensions, transport-wide CC included, as a browser) and sending on its video line
//!   `--kbps` of VP8-sized RTP: `--fps` frames per second, each frame (kbps / 8 / fps bytes,
//!   4,167 B at the defaults) split into equal packets of at most `--packet-bytes` (4 × 1,042 B),
//!   marker on the last, a VP8 payload descriptor in front, a key frame every 10 s; each leg's
//!   frames start at a random phase. `--audio` adds Opus at 50 pps per leg (its CPU is in the
//!   server's, the per-packet figures count video packets). The clients run
//!   str0m's pacer until it has nothing due after each frame (it sends one packet per timeout),
//!   as the server does. Nothing is sent until every leg is connected; then, per window: 2 s of
//!   warm-up, a `--seconds` window, 0.3 s for what is in flight, media held again, 0.7 s. Read:
//!   forwarded video packets/s and Mbit/s of payload (Δ of the server legs'
//!   `video.packetsOut` / `bytesOut`, from `MediaServer::stats` per channel) and per core of
//!   the server's CPU; **loss each way, exact**: each payload's last 8 bytes carry its send
//!   time, so a packet counts in the window by when it was sent, whenever it arrives (caller →
//!   callee and callee → caller apart); **loss per hop, exact**: clients' sent → server
//!   `packetsIn` → server `packetsOut` → clients' received, read while nothing is sent (before
//!   the warm-up and after the tail); packets received out of order (retransmitted), keyframe
//!   requests, the server's `dropped`, datagrams dropped on the server's socket
//!   (/proc/net/udp), one-way latency percentiles of the window's packets, CPU of the server,
//!   the clients and the rest of the machine. A window is **without loss** when nothing is
//!   lost anywhere, the server's socket dropped nothing, the clients sent ≥ 99 % of the plan and
//!   every leg is connected with video. `--direct`: each call's two clients connect to each
//!   other (the loopback baseline). `--ramp`: levels from `--start` by `--step` to `--max`
//!   calls on the same server, each measured like `--calls` (a failing level once more); it
//!   stops at a level's second failure and reports the most calls without loss. Before each
//!   window (media held) it waits up to `--idle-wait` seconds for the rest of the machine to
//!   use < 0.25 core over 2 s; a window that loses while the rest of the machine used > 0.1
//!   core is marked disturbed and measured again (up to 3 times), not counted as a failure.
//!   "The rest of the machine" leaves out the host's steal time and the `ksoftirqd` threads
//!   (reported apart): they are not another process's work.
//! * `video-latency`: `video --direct`, then `video`, with the same parameters; the latency
//!   the server adds per percentile.
//!
//!   Results and method of `video`: docs/benchmarks.md, "Video forwarding (issue 19)".

use crate::procstat::{cpu_secs, machine_busy_secs, rss_mib};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use emu_core::Clock;
use emu_core::config::{ClockConfig, ClockMode};
use emu_media::audio::{FRAME, Tone};
use emu_media::codec::{AudioCodec, Encoder};
use emu_media::udp::{Parked, RecvBatch, SendQueue};
use emu_media::{Audio, CodecPreference, Endpoint, LegOptions, MediaConfig, MediaServer};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, PacerReason, Reason, Rtc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process-wide epoch.
fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

mod client;
mod forward;
mod g711;
mod server;
mod video;

use client::*;
use forward::*;
use g711::*;
use server::*;
use video::*;

#[derive(Debug, Clone)]
struct Args {
    mode: String,
    calls: usize,
    pps: f64,
    seconds: f64,
    payload_bytes: usize,
    client_threads: usize,
    direct: bool,
    start: usize,
    step: usize,
    max: usize,
    record: bool,
    json: bool,
    recordings: Option<PathBuf>,
    workers: usize,
    prebuilt: bool,
    /// `video`: each leg's video bitrate, frame rate and largest RTP payload.
    kbps: f64,
    fps: f64,
    packet_bytes: usize,
    /// `video`: ramp from `start` by `step` to `max` calls instead of measuring `calls`.
    ramp: bool,
    /// `video`: each leg also sends Opus at 50 pps.
    audio: bool,
    /// `video`: before each window, wait at most this long for the rest of the machine to be
    /// idle (0: do not wait).
    idle_wait: f64,
}

const USAGE: &str = "usage (docs/benchmarks.md):
  alicom-bench media forward [--calls 16] [--pps 2000] [--seconds 10] [--payload-bytes 80]
      [--client-threads 1] [--direct] [--workers 1] [--prebuilt] [--json]
  alicom-bench media latency [--calls 50] [--pps 50] [--seconds 10] [same options as forward]
  alicom-bench media g711 [--start 100] [--step 100] [--max 1500] [--seconds 10] [--no-record]
      [--client-threads 1] [--workers 1] [--prebuilt] [--json]
  alicom-bench media video [--calls 100] [--kbps 1000] [--fps 30] [--packet-bytes 1100] [--seconds 10]
      [--audio] [--direct] [--idle-wait 600] [--client-threads 1] [--workers 1] [--json]
  alicom-bench media video --ramp [--start 40] [--step 20] [--max 300] [same options]
  alicom-bench media video-latency [--calls 100] [same options as video]";

fn parse_args(argv: Vec<String>) -> anyhow::Result<Args> {
    let mut it = argv.into_iter();
    let mode = it.next().unwrap_or_default();
    let latency = mode == "latency";
    let video = mode.starts_with("video");
    let mut a = Args {
        calls: if latency {
            50
        } else if video {
            100
        } else {
            16
        },
        pps: if latency { 50.0 } else { 2000.0 },
        seconds: 10.0,
        payload_bytes: 80,
        client_threads: 1,
        direct: false,
        start: if video { 40 } else { 100 },
        step: if video { 20 } else { 100 },
        max: if video { 300 } else { 1500 },
        record: true,
        json: false,
        recordings: None,
        workers: 1,
        prebuilt: false,
        kbps: 1000.0,
        fps: 30.0,
        packet_bytes: 1100,
        ramp: false,
        audio: false,
        idle_wait: 600.0,
        mode,
    };
    while let Some(arg) = it.next() {
        let mut v = |n: &str| it.next().with_context(|| format!("{n} needs a value"));
        match arg.as_str() {
            "--calls" => a.calls = v("--calls")?.parse()?,
            "--pps" => a.pps = v("--pps")?.parse()?,
            "--seconds" => a.seconds = v("--seconds")?.parse()?,
            "--payload-bytes" => a.payload_bytes = v("--payload-bytes")?.parse()?,
            "--client-threads" => a.client_threads = v("--client-threads")?.parse()?,
            "--direct" => a.direct = true,
            "--start" => a.start = v("--start")?.parse()?,
            "--step" => a.step = v("--step")?.parse()?,
            "--max" => a.max = v("--max")?.parse()?,
            "--no-record" => a.record = false,
            "--json" => a.json = true,
            "--recordings" => a.recordings = Some(v("--recordings")?.into()),
            "--workers" => a.workers = v("--workers")?.parse()?,
            "--prebuilt" => a.prebuilt = true,
            "--kbps" => a.kbps = v("--kbps")?.parse()?,
            "--fps" => a.fps = v("--fps")?.parse()?,
            "--packet-bytes" => a.packet_bytes = v("--packet-bytes")?.parse()?,
            "--ramp" => a.ramp = true,
            "--audio" => a.audio = true,
            "--idle-wait" => a.idle_wait = v("--idle-wait")?.parse()?,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if video && (a.prebuilt || a.fps <= 0.0 || a.kbps <= 0.0 || !(64..=1200).contains(&a.packet_bytes)) {
        bail!("video: --fps and --kbps positive, --packet-bytes 64 to 1200, no --prebuilt");
    }
    if video && a.kbps * 1000.0 / 8.0 / a.fps < 16.0 {
        bail!("video: a frame of --kbps / --fps must be at least 16 bytes");
    }
    if a.prebuilt && a.mode == "latency" {
        bail!("latency cannot be measured with --prebuilt (a packet made in advance has no send time)");
    }
    if a.payload_bytes < 16 || a.payload_bytes > 1000 {
        bail!("--payload-bytes is 16 to 1000");
    }
    if a.calls == 0 || a.client_threads == 0 || a.pps <= 0.0 || a.seconds <= 0.0 || a.start == 0 {
        bail!("--calls, --client-threads, --pps, --seconds and --start must be positive");
    }
    Ok(a)
}

/// `alicom-bench media forward|latency|g711 [options]` (and `media --server`, the server process).
pub fn run(argv: Vec<String>) -> anyhow::Result<()> {
    EPOCH.get_or_init(Instant::now);
    let a = parse_args(argv)?;
    match a.mode.as_str() {
        "--server" => server_main(a.recordings.context("--server needs --recordings DIR")?, a.workers),
        "forward" | "latency" | "g711" | "video" | "video-latency" => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                match a.mode.as_str() {
                    "forward" => forward(&a).await.map(|_| ()),
                    "latency" => latency(&a).await,
                    "video" => video(&a).await,
                    "video-latency" => video_latency(&a).await,
                    _ => g711(&a).await,
                }
            })
        }
        _ => bail!("{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> anyhow::Result<Args> {
        parse_args(s.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn video_takes_its_own_defaults_and_options() {
        let a = args("video").unwrap();
        assert_eq!((a.calls, a.kbps, a.fps, a.packet_bytes, a.ramp, a.audio), (100, 1000.0, 30.0, 1100, false, false));
        assert_eq!((a.start, a.step, a.max), (40, 20, 300));
        let a = args("video --ramp --start 60 --step 10 --max 90 --kbps 500 --fps 15 --audio --idle-wait 0").unwrap();
        assert!(a.ramp && a.audio);
        assert_eq!((a.start, a.step, a.max, a.kbps, a.fps, a.idle_wait), (60, 10, 90, 500.0, 15.0, 0.0));
        assert!(args("video --prebuilt").is_err());
        assert!(args("video --packet-bytes 2000").is_err());
        assert_eq!(args("forward").unwrap().calls, 16, "the other modes keep theirs");
    }

    #[test]
    fn a_frame_is_split_into_equal_packets() {
        let p = VideoPlan::new(1000.0, 30.0, 1100);
        assert_eq!((p.frame_bytes, p.packets_per_frame()), (4167, 4));
        assert!((p.packets_per_second() - 120.0).abs() < 1e-9);
        let sizes: Vec<usize> = (0..4).map(|i| p.payload_len(i)).collect();
        assert_eq!(sizes, [1042, 1042, 1042, 1041]);
        let p = VideoPlan::new(2500.0, 30.0, 1100);
        assert_eq!(p.packets_per_frame(), 10);
    }
}
