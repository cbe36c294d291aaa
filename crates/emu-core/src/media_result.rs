//! The media server's answer to a device's `joinChannel` or `sdpCandidate`: the `mediaSignal`
//! of the result sent back to the device (docs/protocol.md#the-joinchannel-result).
//! Typed and written straight to the wire: a JSON tree built, walked and dropped for each join was
//! a measurable share of a call's CPU (docs/benchmarks.md#per-call-cpu).
//!
//! Members are written in the order the JSON tree had them: `api`, `errorCode`, `errorMsg`,
//! `data` (`channelId`, then for a join `turnServers` and `dynamicConfig`, then the answer's
//! `sdpInfo` and `candidateInfo` / `candidateList`), `seqId` last.

use std::borrow::Cow;

use serde::{Serialize, Serializer};
use serde_json::Value;

/// Which device request a result answers (its `api`, and the result's messageType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaResultApi {
    JoinChannel,
    SdpCandidate,
}

impl MediaResultApi {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaResultApi::JoinChannel => "joinChannel",
            MediaResultApi::SdpCandidate => "sdpCandidate",
        }
    }
}

impl Serialize for MediaResultApi {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `{api, errorCode, errorMsg, data, seqId?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaResult {
    pub api: MediaResultApi,
    /// 0 when the request succeeded.
    pub error_code: i64,
    pub error_msg: Cow<'static, str>,
    pub data: MediaResultData,
    /// The request's `seqId`, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_id: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaResultData {
    pub channel_id: String,
    /// joinChannel: the relay's address and this leg's credentials (empty without TURN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_servers: Option<Vec<TurnServer>>,
    /// joinChannel: always `{}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_config: Option<EmptyObject>,
    /// The answer to an offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdp_info: Option<SdpAnswer>,
    /// joinChannel with an offer (signalling version 2): the server's one candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_info: Option<Candidate>,
    /// sdpCandidate: the server's one candidate, in a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_list: Option<[Candidate; 1]>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnServer {
    pub address: String,
    pub username: String,
    pub password: String,
}

/// `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmptyObject {}

/// `{"sdp": …, "type": "answer"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SdpAnswer {
    pub sdp: String,
    #[serde(rename = "type")]
    pub kind: AnswerType,
}

/// The only SDP type the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerType {
    Answer,
}

/// `{"candidate": "candidate:… typ host …", "id": mid, "label": m-line index, "type": "candidate"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub candidate: String,
    pub id: String,
    pub label: u32,
    #[serde(rename = "type")]
    pub kind: CandidateType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateType {
    Candidate,
}

impl MediaResult {
    /// A successful result for `channel_id`: a join's carries `turnServers: []` and
    /// `dynamicConfig: {}` until TURN credentials are added.
    pub fn success(api: MediaResultApi, channel_id: &str, seq_id: Option<Value>) -> MediaResult {
        let join = api == MediaResultApi::JoinChannel;
        MediaResult {
            api,
            error_code: 0,
            error_msg: Cow::Borrowed("SUCCESS"),
            data: MediaResultData {
                channel_id: channel_id.to_string(),
                turn_servers: join.then(Vec::new),
                dynamic_config: join.then_some(EmptyObject {}),
                ..MediaResultData::default()
            },
            seq_id,
        }
    }

    /// Refused: the code and why, in the result's `errorCode` and `errorMsg`.
    pub fn fail(&mut self, code: i64, msg: impl Into<Cow<'static, str>>) {
        self.error_code = code;
        self.error_msg = msg.into();
    }

    /// The result as a JSON tree, for tests and readers.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn candidate() -> Candidate {
        Candidate {
            candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
            id: "0".into(),
            label: 0,
            kind: CandidateType::Candidate,
        }
    }

    #[test]
    fn a_join_result_reads_as_the_json_it_replaced() {
        let mut r = MediaResult::success(MediaResultApi::JoinChannel, "ch1", Some(json!(7)));
        r.data.turn_servers =
            Some(vec![TurnServer { address: "turn:x".into(), username: "u".into(), password: "p".into() }]);
        r.data.sdp_info = Some(SdpAnswer { sdp: "v=0".into(), kind: AnswerType::Answer });
        r.data.candidate_info = Some(candidate());
        let mut expected = json!({
            "api": "joinChannel", "errorCode": 0, "errorMsg": "SUCCESS",
            "data": {"channelId": "ch1", "turnServers": [], "dynamicConfig": {}},
        });
        expected["seqId"] = json!(7);
        expected["data"]["turnServers"] = json!([{"address": "turn:x", "username": "u", "password": "p"}]);
        expected["data"]["sdpInfo"] = json!({"sdp": "v=0", "type": "answer"});
        expected["data"]["candidateInfo"] = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "id": "0", "label": 0, "type": "candidate"});
        // Text equality: the key order too.
        assert_eq!(serde_json::to_string(&r).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn an_sdp_candidate_result_reads_as_the_json_it_replaced() {
        let mut r = MediaResult::success(MediaResultApi::SdpCandidate, "ch1", None);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"api":"sdpCandidate","errorCode":0,"errorMsg":"SUCCESS","data":{"channelId":"ch1"}}"#
        );
        r.data.sdp_info = Some(SdpAnswer { sdp: "v=0".into(), kind: AnswerType::Answer });
        r.data.candidate_list = Some([candidate()]);
        r.fail(40001, "cannot answer the offer: x");
        assert_eq!(
            r.to_json(),
            json!({"api": "sdpCandidate", "errorCode": 40001, "errorMsg": "cannot answer the offer: x", "data": {
                "channelId": "ch1", "sdpInfo": {"sdp": "v=0", "type": "answer"},
                "candidateList": [{"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "id": "0", "label": 0, "type": "candidate"}],
            }})
        );
    }
}
