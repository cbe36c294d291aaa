//! What the platform reads of a device's `mediaSignal` (docs/protocol.md#mediasignal), decoded
//! straight from the inflated JSON into fields, without building a JSON tree: the call engine
//! reads the callees, flags and user info of a `call` or `joinChannel`, the media server the
//! offer, the candidates and `channelConfig`. Everything else in the document is skipped.
//!
//! Decoding is as forgiving as reading a JSON tree by path was (`crate::lenient`): a field of
//! another type than expected counts as absent (a numeric `channelId`, a `data` that is a
//! string), a repeated key keeps its last value, and any JSON document decodes (into no fields).
//! Only JSON that does not parse is an error.

use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess};
use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::lenient::{Fields, Leaf, Object, skip};

/// A device's `mediaSignal`: `{api, seqId, data: {…}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaSignal {
    /// `seqId`: echoed in the media server's result.
    pub seq_id: Option<Value>,
    pub data: SignalData,
}

/// `mediaSignal.data`, the members the platform reads. A member kept as JSON is `Some` whenever
/// it is present, `null` included; a string or number member only when it has that type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalData {
    pub channel_id: Option<String>,
    /// joinChannel: the device's user info (a callee's is shown to nobody; the caller's goes to
    /// callees in `called`).
    pub user_info: Option<RawJson>,
    /// call: the caller's user info for the callees.
    pub caller_user_info: Option<RawJson>,
    /// call: `{phone, mcuPhone, selfLineName | customLineName | lineName}` of a phone callee.
    pub callee_pstn_info: Option<Value>,
    /// call: `{deviceList: [{deviceId}]}` of VoIP callees.
    pub callee_device_info: Option<Value>,
    pub extend: Option<String>,
    pub cancel_flag: Option<Value>,
    /// answer: 1 accepts.
    pub call_result: Option<i64>,
    pub channel_config: ChannelConfigIn,
    /// `sdpInfo.sdp`: the offer (signalling version 2, and sdpCandidate).
    pub sdp: Option<String>,
    pub candidate_list: Option<Value>,
    pub candidate_info: Option<Value>,
}

/// `mediaSignal.data.channelConfig`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelConfigIn {
    pub allow_video: Option<Value>,
    pub sig_version: Option<i64>,
}

/// JSON the platform passes on without reading it (a caller's `userInfo`, echoed to callees in
/// `called`): the device's own text, shared by every message that carries it, never parsed into
/// a tree.
#[derive(Debug, Clone)]
pub struct RawJson(Arc<RawValue>);

impl RawJson {
    /// `{}`.
    pub fn empty_object() -> RawJson {
        RawJson(Arc::from(RawValue::from_string("{}".into()).expect("{} is JSON")))
    }

    /// The JSON text, as the device sent it.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parsed, for readers and tests.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }
}

impl From<&Value> for RawJson {
    fn from(value: &Value) -> RawJson {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        RawJson(Arc::from(RawValue::from_string(text).unwrap_or_else(|_| null())))
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> RawJson {
        RawJson::from(&value)
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
}

/// Equal when the JSON is, whatever the spacing.
impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawJson, D::Error> {
        Box::<RawValue>::deserialize(d).map(|raw| RawJson(Arc::from(raw)))
    }
}

impl MediaSignal {
    /// The fields of a signal already held as JSON (tests, tools, the fuzzers).
    pub fn of(value: &Value) -> MediaSignal {
        MediaSignal::deserialize(value).unwrap_or_default()
    }
}

impl From<Value> for MediaSignal {
    fn from(value: Value) -> MediaSignal {
        MediaSignal::deserialize(value).unwrap_or_default()
    }
}

impl<'de> Fields<'de> for MediaSignal {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "seqId" => self.seq_id = Some(map.next_value()?),
            "data" => self.data = map.next_value::<Object<SignalData>>()?.0,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for SignalData {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "channelId" => self.channel_id = map.next_value::<Leaf>()?.string(),
            "userInfo" => self.user_info = Some(map.next_value()?),
            "callerUserInfo" => self.caller_user_info = Some(map.next_value()?),
            "calleePstnInfo" => self.callee_pstn_info = Some(map.next_value()?),
            "calleeDeviceInfo" => self.callee_device_info = Some(map.next_value()?),
            "extend" => self.extend = map.next_value::<Leaf>()?.string(),
            "cancelFlag" => self.cancel_flag = Some(map.next_value()?),
            "callResult" => self.call_result = map.next_value::<Leaf>()?.int(),
            "channelConfig" => self.channel_config = map.next_value::<Object<ChannelConfigIn>>()?.0,
            "sdpInfo" => self.sdp = map.next_value::<Object<SdpInfo>>()?.0.sdp,
            "candidateList" => self.candidate_list = Some(map.next_value()?),
            "candidateInfo" => self.candidate_info = Some(map.next_value()?),
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for ChannelConfigIn {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "allowVideo" => self.allow_video = Some(map.next_value()?),
            "sigVersion" => self.sig_version = map.next_value::<Leaf>()?.int(),
            _ => skip(map)?,
        }
        Ok(())
    }
}

#[derive(Default)]
struct SdpInfo {
    sdp: Option<String>,
}

impl<'de> Fields<'de> for SdpInfo {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "sdp" => self.sdp = map.next_value::<Leaf>()?.string(),
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for MediaSignal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MediaSignal, D::Error> {
        Object::<MediaSignal>::deserialize(d).map(|o| o.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_path::at;
    use serde_json::json;

    fn parse(text: &str) -> MediaSignal {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn reads_what_the_platform_needs_and_skips_the_rest() {
        let text = r#"{"api":"joinChannel","seqId":7,"data":{"channelConfig":{"callType":"chat","allowVideo":1,
            "sigVersion":2},"userInfo":{"deviceId":"a","x":[1,{"y":null}]},"channelId":"c1",
            "sdpInfo":{"sdp":"v=0\r\n","type":"offer"},"candidateList":[{"candidate":"c"}],"other":{"deep":[[]]}}}"#;
        let s = parse(text);
        assert_eq!(s.seq_id, Some(json!(7)));
        assert_eq!(s.data.channel_id.as_deref(), Some("c1"));
        let user_info = s.data.user_info.as_ref().unwrap();
        assert_eq!(user_info.get(), r#"{"deviceId":"a","x":[1,{"y":null}]}"#, "kept as sent");
        assert_eq!(user_info, &RawJson::from(json!({"deviceId": "a", "x": [1, {"y": null}]})));
        assert_eq!(s.data.channel_config, ChannelConfigIn { allow_video: Some(json!(1)), sig_version: Some(2) });
        assert_eq!(s.data.sdp.as_deref(), Some("v=0\r\n"));
        assert_eq!(s.data.candidate_list, Some(json!([{"candidate": "c"}])));
        // The same fields from a JSON tree.
        assert_eq!(MediaSignal::of(&serde_json::from_str(text).unwrap()), s);
    }

    /// Every field agrees with reading the JSON tree by path, for documents of odd shapes.
    #[test]
    fn as_forgiving_as_reading_by_path() {
        let docs = [
            json!(5),
            json!("x"),
            json!([{"data": {}}]),
            json!({"data": "x"}),
            json!({"data": [1, 2]}),
            json!({"data": {"channelId": 5, "extend": {"a": 1}, "callResult": 2.0, "sdpInfo": "v=0"}}),
            json!({"data": {"channelId": null, "userInfo": null, "callResult": "1", "channelConfig": [1]}}),
            json!({"data": {"callResult": u64::MAX, "channelConfig": {"sigVersion": -1}, "sdpInfo": {"sdp": 1}}}),
            json!({"seqId": null, "data": {"candidateInfo": null, "cancelFlag": false, "calleePstnInfo": {}}}),
        ];
        for doc in docs {
            let s = MediaSignal::of(&doc);
            let text = |p| at(&doc, p).and_then(Value::as_str).map(str::to_string);
            assert_eq!(s.seq_id, doc.get("seqId").cloned(), "{doc}");
            assert_eq!(s.data.channel_id, text("/data/channelId"), "{doc}");
            assert_eq!(s.data.extend, text("/data/extend"), "{doc}");
            assert_eq!(s.data.sdp, text("/data/sdpInfo/sdp"), "{doc}");
            assert_eq!(s.data.user_info.as_ref().map(RawJson::to_value).as_ref(), at(&doc, "/data/userInfo"), "{doc}");
            assert_eq!(s.data.candidate_info.as_ref(), at(&doc, "/data/candidateInfo"), "{doc}");
            assert_eq!(s.data.cancel_flag.as_ref(), at(&doc, "/data/cancelFlag"), "{doc}");
            assert_eq!(s.data.callee_pstn_info.as_ref(), at(&doc, "/data/calleePstnInfo"), "{doc}");
            assert_eq!(s.data.call_result, at(&doc, "/data/callResult").and_then(Value::as_i64), "{doc}");
            let sig = at(&doc, "/data/channelConfig/sigVersion").and_then(Value::as_i64);
            assert_eq!(s.data.channel_config.sig_version, sig, "{doc}");
            // From text too, where keys and strings arrive borrowed.
            assert_eq!(serde_json::from_str::<MediaSignal>(&doc.to_string()).unwrap(), s, "{doc}");
        }
    }

    #[test]
    fn the_last_of_a_repeated_key_counts_and_bad_json_is_an_error() {
        let s = parse(r#"{"data":{"channelId":"a","userInfo":1},"data":{"channelId":"b"}}"#);
        assert_eq!((s.data.channel_id.as_deref(), s.data.user_info.is_none()), (Some("b"), true));
        let escaped = parse(r#"{"d\u0061ta":{"channel\u0049d":"c\"1"}}"#);
        assert_eq!(escaped.data.channel_id.as_deref(), Some("c\"1"));
        assert!(serde_json::from_str::<MediaSignal>(r#"{"data": {"#).is_err());
        assert!(serde_json::from_str::<MediaSignal>(r#"{"data": 1} x"#).is_err());
    }
}
