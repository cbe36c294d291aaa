//! mediaSignal documents a Web SDK client sends, built in one place for the testkit's
//! [`MediaClient`](crate::media::MediaClient) and the benchmark's light client legs (the
//! `alicom-bench` crate).

use serde_json::{Value, json};

/// The `sdpCandidate` mediaSignal of sigv 1: the offer (its SDP without `a=candidate` lines) and
/// the client's one candidate, on the audio m-line `mid`.
pub fn sdp_candidate(channel_id: &str, offer_sdp: &str, candidate: &str, mid: &str) -> Value {
    json!({"api": "sdpCandidate", "serviceName": "alicom", "sdkVersion": "1.2.0", "data": {
        "channelId": channel_id,
        "sdpInfo": {"sdp": offer_sdp, "type": "offer"},
        "candidateList": [{"candidate": candidate, "id": mid, "label": 0, "type": "candidate"}],
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_candidate_is_what_the_media_server_reads() {
        let s = sdp_candidate("c1", "v=0\r\n", "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "0");
        assert_eq!(s["api"], "sdpCandidate");
        assert_eq!(s.pointer("/data/channelId").and_then(Value::as_str), Some("c1"));
        assert_eq!(s.pointer("/data/sdpInfo/type").and_then(Value::as_str), Some("offer"));
        let cands = emu_media::sdp::candidate_strings(s.pointer("/data/candidateList").unwrap_or(&Value::Null));
        assert_eq!(cands, ["candidate:1 1 udp 1 127.0.0.1 5000 typ host"]);
    }
}
