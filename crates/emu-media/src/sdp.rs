//! The SDP rules of docs/protocol.md#the-joinchannel-result: the answer carries no candidates, server candidates
//! travel in `candidateList` / `candidateInfo` with the offer's mid and m-line index.

use std::net::SocketAddr;

use emu_core::media_result::{Candidate, CandidateType};
use serde_json::Value;

/// Removes `a=candidate` and `a=end-of-candidates` lines (a candidate in the answer lets
/// ICE connect before the SDK's `addIceCandidate` resolves, and `onActive` never fires).
pub fn strip_candidates(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let l = line.trim_end();
        if l.starts_with("a=candidate:") || l == "a=end-of-candidates" {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Makes the rejected m-lines of an answer valid; returns the answer and those lines' mids.
///
/// str0m rejects an offered m-line it has no codec for (video: the server answers audio only)
/// with `m=video 0 UDP/TLS/RTP/SAVPF`, an empty format list and the offer's direction mirrored.
/// RFC 4566 §5.14 requires a format and browsers refuse to parse the answer without one (the
/// whole answer, audio included). RFC 3264 §6 lets a rejected line list any format of the
/// offer's: this puts the offered line's first format there, with its `a=rtpmap` when the offer
/// has one, and marks the line `a=inactive`. The line stays rejected (port 0, outside BUNDLE).
/// A line str0m accepted with no format at all (a video section offering only audio codecs) is
/// rejected the same way.
/// Lines are paired by their index, as offer/answer pairs them.
pub fn reject_unanswered(answer: &str, offer: &str) -> (String, Vec<String>) {
    const DIRECTIONS: [&str; 4] = ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"];
    let offered = sections(offer);
    let mut out = String::with_capacity(answer.len() + 64);
    let mut rejected = Vec::new();
    let mut index = None::<usize>;
    let mut in_rejected = false;
    let mut pending_rtpmap: Option<String> = None;
    for line in answer.split_inclusive('\n') {
        let l = line.trim_end();
        if l.starts_with("m=") {
            if let Some(rtpmap) = pending_rtpmap.take() {
                out.push_str(&rtpmap);
            }
            index = Some(index.map_or(0, |i| i + 1));
            let fields: Vec<&str> = l.split_whitespace().collect();
            // No format: rejected (port 0), or accepted with no codec in common (a video line whose
            // section offers only audio codecs), which is no less invalid: rejected here too.
            in_rejected = fields.len() == 3;
            if in_rejected {
                let section = index.and_then(|i| offered.get(i));
                let format = section.and_then(|s| s.format.as_deref());
                out.push_str(&format!("{} 0 {} {}\r\n", fields[0], fields[2], format.unwrap_or("0")));
                pending_rtpmap = section.and_then(|s| s.rtpmap.as_ref()).map(|r| format!("{r}\r\n"));
                continue;
            }
        } else if in_rejected {
            if let Some(mid) = l.strip_prefix("a=mid:") {
                rejected.push(mid.trim().to_string());
            } else if DIRECTIONS.contains(&l) {
                out.push_str("a=inactive\r\n");
                continue;
            }
        }
        out.push_str(line);
    }
    if let Some(rtpmap) = pending_rtpmap {
        out.push_str(&rtpmap);
    }
    (out, rejected)
}

/// An offered m-line's first format and that format's `a=rtpmap` line.
struct Section {
    format: Option<String>,
    rtpmap: Option<String>,
}

fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            // A format on an offered line: a token, not free text (it goes into our answer).
            let ok = |f: &&str| !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            let format = line.split_whitespace().nth(3).filter(ok).map(str::to_string);
            out.push(Section { format, rtpmap: None });
        } else if let Some(s) = out.last_mut()
            && s.rtpmap.is_none()
            && let Some(f) = s.format.as_deref()
            && line.strip_prefix("a=rtpmap:").and_then(|r| r.split_whitespace().next()) == Some(f)
        {
            s.rtpmap = Some(line.to_string());
        }
    }
    out
}

/// The first audio m-line of an offer: its mid and its index (`sdpMLineIndex`).
pub fn audio_mid(sdp: &str) -> Option<(String, u32)> {
    let mut index: i64 = -1;
    let mut in_audio = false;
    let mut audio_index = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            index += 1;
            in_audio = rest.starts_with("audio ");
            if in_audio && audio_index.is_none() {
                audio_index = Some(index as u32);
            }
        } else if in_audio
            && audio_index == Some(index as u32)
            && let Some(mid) = line.strip_prefix("a=mid:")
        {
            return Some((mid.trim().to_string(), index as u32));
        }
    }
    // An m-line without a=mid: browsers always send one, but be lenient.
    audio_index.map(|i| (i.to_string(), i))
}

/// An offer's first video m-line: its mid, and whether it is active (a port other than 0, a
/// direction other than `inactive`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoLine {
    pub mid: String,
    pub active: bool,
}

pub fn video_line(sdp: &str) -> Option<VideoLine> {
    let mut index: i64 = -1;
    let mut found: Option<(i64, VideoLine)> = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            index += 1;
            if found.is_some() {
                break;
            }
            if let Some(fields) = rest.strip_prefix("video ") {
                let active = fields.split_whitespace().next() != Some("0");
                found = Some((index, VideoLine { mid: index.to_string(), active }));
            }
        } else if let Some((_, v)) = found.as_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                v.mid = mid.trim().to_string();
            } else if line == "a=inactive" {
                v.active = false;
            }
        }
    }
    found.map(|(_, v)| v)
}

/// The offer's DTLS fingerprint (session or first media level): same peer connection, same one.
pub fn fingerprint(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=fingerprint:")).map(str::trim)
}

/// The server's one host candidate, in the form `addIceCandidate` accepts.
pub fn host_candidate(addr: SocketAddr) -> String {
    format!("candidate:1 1 udp 2130706431 {} {} typ host generation 0", addr.ip(), addr.port())
}

/// `{candidate, id, label, type}` as the SDK sends and expects it.
pub fn candidate(addr: SocketAddr, mid: &str, label: u32) -> Candidate {
    Candidate { candidate: host_candidate(addr), id: mid.to_string(), label, kind: CandidateType::Candidate }
}

/// The candidate strings of an SDK `candidateList` / `candidateInfo` (objects or plain strings).
pub fn candidate_strings(v: &Value) -> Vec<String> {
    let one = |c: &Value| -> Option<String> {
        match c {
            Value::String(s) => Some(s.clone()),
            Value::Object(_) => c.get("candidate").and_then(Value::as_str).map(str::to_string),
            _ => None,
        }
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect::<Vec<_>>(),
        other => one(other).into_iter().collect(),
    }
    .into_iter()
    .map(|s| s.trim().strip_prefix("a=").unwrap_or(s.trim()).to_string())
    .filter(|s| !s.is_empty())
    .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strips_candidates_only() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\na=end-of-candidates\r\na=rtcp-mux\r\n";
        assert_eq!(strip_candidates(sdp), "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtcp-mux\r\n");
    }

    #[test]
    fn finds_the_audio_mid() {
        let sdp = "v=0\r\nm=video 9 X 96\r\na=mid:v\r\nm=audio 9 X 111\r\na=mid:a1\r\n";
        assert_eq!(audio_mid(sdp), Some(("a1".into(), 1)));
        assert_eq!(audio_mid("v=0\r\nm=audio 9 X 0\r\n"), Some(("0".into(), 0)));
        assert_eq!(audio_mid("v=0\r\n"), None);
    }

    #[test]
    fn rejected_lines_get_the_offers_first_format_and_go_inactive() {
        let offer = "v=0\r\nm=audio 9 P 111 0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
                     m=video 9 P 96 97\r\na=mid:1\r\na=rtpmap:97 rtx/90000\r\na=rtpmap:96 VP8/90000\r\n\
                     m=video 9 P 98\r\na=mid:2\r\n";
        let answer = "v=0\r\nm=audio 9 P 111\r\na=mid:0\r\na=sendrecv\r\nm=video 0 P \r\na=mid:1\r\na=sendrecv\r\n\
                      m=video 0 P\r\na=mid:2\r\na=recvonly\r\n";
        let (fixed, mids) = reject_unanswered(answer, offer);
        assert_eq!(
            fixed,
            "v=0\r\nm=audio 9 P 111\r\na=mid:0\r\na=sendrecv\r\nm=video 0 P 96\r\na=mid:1\r\na=inactive\r\n\
             a=rtpmap:96 VP8/90000\r\nm=video 0 P 98\r\na=mid:2\r\na=inactive\r\n"
        );
        assert_eq!(mids, ["1", "2"]);
        // Nothing rejected: unchanged.
        assert_eq!(reject_unanswered(offer, offer), (offer.to_string(), vec![]));
        // A line the offer lacks, or whose format is not a token: a placeholder format.
        assert_eq!(reject_unanswered("m=video 0 P\r\n", "").0, "m=video 0 P 0\r\n");
        // Found by fuzzing (fuzz/ sdp_answer): a video section offering only audio codecs came
        // back accepted (port 9) with no format; it is rejected like any line without one.
        let (fixed, mids) = reject_unanswered(
            "m=video 9 P\r\na=mid:1\r\na=sendrecv\r\n",
            "m=video 9 P 96 97\r\na=rtpmap:96 VP8/90000\r\n",
        );
        assert_eq!(fixed, "m=video 0 P 96\r\na=mid:1\r\na=inactive\r\na=rtpmap:96 VP8/90000\r\n");
        assert_eq!(mids, vec!["1".to_string()]);
        assert_eq!(reject_unanswered("m=video 0 P\r\n", "m=video 9 P \u{7f}x\r\n").0, "m=video 0 P 0\r\n");
    }

    #[test]
    fn finds_the_video_line_and_whether_it_is_active() {
        let sdp = "v=0\r\na=fingerprint:sha-256 AB:CD\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\na=sendrecv\r\n";
        assert_eq!(video_line(sdp), Some(VideoLine { mid: "1".into(), active: true }));
        assert_eq!(fingerprint(sdp), Some("sha-256 AB:CD"));
        let off = sdp.replace("a=sendrecv", "a=inactive");
        assert_eq!(video_line(&off), Some(VideoLine { mid: "1".into(), active: false }));
        let stopped = sdp.replace("m=video 9", "m=video 0");
        assert_eq!(video_line(&stopped).map(|v| v.active), Some(false));
        assert_eq!(video_line("v=0\r\nm=audio 9 X 0\r\na=mid:0\r\n"), None);
        assert_eq!(fingerprint("v=0\r\n"), None);
    }

    #[test]
    fn candidate_lists() {
        let v = json!([{"candidate": "candidate:1 1 udp 5 127.0.0.1 9 typ relay", "id": "0", "label": 0}, "a=candidate:2 1 udp 5 127.0.0.1 10 typ host", 7]);
        assert_eq!(
            candidate_strings(&v),
            vec!["candidate:1 1 udp 5 127.0.0.1 9 typ relay", "candidate:2 1 udp 5 127.0.0.1 10 typ host"]
        );
        assert_eq!(candidate_strings(&json!({"candidate": "candidate:x"})), vec!["candidate:x"]);
        let c = candidate("127.0.0.1:5000".parse().unwrap(), "0", 0);
        assert_eq!(c.candidate, "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host generation 0");
    }
}
