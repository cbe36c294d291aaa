//! The SDP rules of docs/protocol.md#the-joinchannel-result: the answer carries no candidates, server candidates
//! travel in `candidateList` / `candidateInfo` with the offer's mid and m-line index.

use std::net::SocketAddr;

use serde_json::{Value, json};

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

/// The server's one host candidate, in the form `addIceCandidate` accepts.
pub fn host_candidate(addr: SocketAddr) -> String {
    format!("candidate:1 1 udp 2130706431 {} {} typ host generation 0", addr.ip(), addr.port())
}

/// `{candidate, id, label, type}` as the SDK sends and expects it.
pub fn candidate_json(addr: SocketAddr, mid: &str, label: u32) -> Value {
    json!({"candidate": host_candidate(addr), "id": mid, "label": label, "type": "candidate"})
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
    fn candidate_lists() {
        let v = json!([{"candidate": "candidate:1 1 udp 5 127.0.0.1 9 typ relay", "id": "0", "label": 0}, "a=candidate:2 1 udp 5 127.0.0.1 10 typ host", 7]);
        assert_eq!(
            candidate_strings(&v),
            vec!["candidate:1 1 udp 5 127.0.0.1 9 typ relay", "candidate:2 1 udp 5 127.0.0.1 10 typ host"]
        );
        assert_eq!(candidate_strings(&json!({"candidate": "candidate:x"})), vec!["candidate:x"]);
        let c = candidate_json("127.0.0.1:5000".parse().unwrap(), "0", 0);
        assert_eq!(c["candidate"], "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host generation 0");
    }
}
