use super::*;
use serde_json::json;

const T: TenantId = TenantId(0);

#[test]
fn a_web_sdk_call_decodes_into_device_callees() {
    let ms = json!({"api": "call", "data": {"channelId": "c1", "callerUserInfo": {"deviceId": "alice"},
        "calleeDeviceInfo": {"deviceList": [{"deviceId": "bob", "appkey": "__alicom_appkey"}]}}});
    let r =
        DeviceRequest::decode(T, "alice", "call", &RequestBody::of(&json!({"uuid": "u1"})), Some(ms.clone().into()));
    assert_eq!(r.channel_id.as_deref(), Some("c1"), "the channel comes from the mediaSignal");
    assert_eq!(r.uuid, "u1");
    let RequestKind::Call(c) = r.kind else { panic!("{:?}", r.kind) };
    assert_eq!(c.callee, CalleeRequest::Devices(vec!["bob".into()]));
    assert!(c.cancel_on_reject);
    assert_eq!(c.caller_user_info, Some(json!({"deviceId": "alice"}).into()));
}

#[test]
fn pstn_callee_join_answer_and_flags() {
    let ms = json!({"data": {"calleePstnInfo": {"mcuPhone": "021", "phone": "138", "customLineName": "L"}, "cancelFlag": 1}});
    let r =
        DeviceRequest::decode(T, "a", "call", &RequestBody::of(&json!({"channelId": "c"})), Some(ms.clone().into()));
    let RequestKind::Call(c) = r.kind else { panic!() };
    assert_eq!(c.callee, CalleeRequest::Phone { number: "138".into(), show: "021".into(), line: "L".into() });
    assert!(!c.cancel_on_reject);
    let body = json!({"channelId": "c", "isCaller": true, "alicomRtcType": "voip2pstn", "needRecord": true});
    let RequestKind::Join(j) = DeviceRequest::decode(T, "a", "joinChannel", &RequestBody::of(&body), None).kind else {
        panic!()
    };
    assert!(j.is_caller && j.need_record);
    assert_eq!(j.rtc_type, Some(RtcType::Voip2Pstn));
    let reject = json!({"data": {"callResult": 2}});
    let r = DeviceRequest::decode(
        T,
        "b",
        "answer",
        &RequestBody::of(&json!({"channelId": ""})),
        Some(reject.clone().into()),
    );
    assert!(matches!(r.kind, RequestKind::Answer { accept: false }));
    assert_eq!(r.channel_id, None, "an empty channelId is no channel");
    let in_signal = json!({"data": {"channelId": "c9"}});
    let r = DeviceRequest::decode(
        T,
        "b",
        "leaveChannel",
        &RequestBody::of(&json!({"channelId": ""})),
        Some(in_signal.clone().into()),
    );
    assert_eq!(r.channel_id.as_deref(), Some("c9"), "an empty body.channelId falls back to the mediaSignal's");
    assert!(matches!(
        DeviceRequest::decode(T, "b", "xyz", &RequestBody::of(&json!({})), None).kind,
        RequestKind::Other(_)
    ));
}

#[test]
fn cancel_flag_spellings() {
    for (flag, cancels) in [
        (json!(0), true),
        (json!(1), false),
        (json!("CALL_CANCLE_FLAG_WHEN_ONE_CALLEE_REJECT"), true),
        (json!("CALL_CANCLE_FLAG_WHEN_ALL_CALLEE_REJECT"), false),
        (json!(true), false),
        (json!(null), true),
    ] {
        assert_eq!(
            cancel_on_reject(
                &MediaSignal::of(&json!({"data": {"cancelFlag": flag}})).data,
                &RequestBody::of(&json!({}))
            ),
            cancels,
            "{flag}"
        );
    }
    assert!(
        !cancel_on_reject(&SignalData::default(), &RequestBody::of(&json!({"cancelFlag": 1}))),
        "the body may carry it too"
    );
}

#[test]
fn server_message_bodies_are_the_captured_shapes() {
    let d = ServerMessage::Disconnect { uuid: None, channel_id: "c".into(), code: 2000133, cause: "x".into() };
    assert_eq!(d.message_type(), "cs_disconnect");
    assert_eq!(d.body(), json!({"channelId": "c", "causeCode": 2000133, "cause": "x"}), "no uuid key at all");
    let a = ServerMessage::Answered { uuid: "u".into(), channel_id: "c".into(), call_id: "k".into(), accepted: false };
    assert_eq!(
        a.body()["mediaSignal"],
        json!({"api": "answered", "errorCode": 0, "errorMsg": "SUCCESS",
        "data": {"channelId": "c", "callId": "k", "callResult": 2}})
    );
    let c = ServerMessage::Called {
        rtc_type: RtcType::Pstn2Voip,
        caller_info: CallerInfo::Phone { number: "13900000000".into(), uuid: "u".into() },
        channel_id: "c".into(),
        call_id: "k".into(),
        caller_user_info: json!({}).into(),
        video: false,
    };
    assert_eq!(c.body()["alicomRtcType"], "pstn2voip");
    assert_eq!(c.body()["callerInfo"], json!({"isPstn": true, "phoneNumber": "13900000000", "uuid": "u"}));
    let from_device = CallerInfo::Device { rtc_id: "alice".into(), uuid: "u".into() };
    assert_eq!(serde_json::to_string(&from_device).unwrap(), r#"{"isPstn":false,"rtcId":"alice","uuid":"u"}"#);
    assert!(c.body().get("uuid").is_none());
    assert_eq!(c.body()["mediaSignal"]["data"]["channelConfig"]["allowVideo"], 0);
    let mut v = c.clone();
    if let ServerMessage::Called { video, .. } = &mut v {
        *video = true;
    }
    assert_eq!(v.body()["mediaSignal"]["data"]["channelConfig"]["allowVideo"], 1, "a video call");
    let m = ServerMessage::MediaMode {
        uuid: "u".into(),
        channel_id: "c".into(),
        mode: MediaMode::Audio,
        rtc_id: "bob".into(),
        reason: "bob answered audio-only".into(),
    };
    assert_eq!(m.message_type(), "cs_media_mode");
    assert_eq!(
        m.body(),
        json!({"uuid": "u", "channelId": "c", "mode": 1, "rtcId": "bob", "reason": "bob answered audio-only"})
    );
}

#[test]
fn a_body_decoded_from_text_agrees_with_reading_its_tree() {
    for body in [
        json!({"channelId": "c", "uuid": "u", "isCaller": true, "alicomRtcType": "voip2voip", "needRecord": false,
            "extend": "e", "cancelFlag": 1, "token": {"deep": [1, 2]}}),
        json!({"channelId": 5, "uuid": null, "isCaller": "true", "needRecord": 1, "extend": {"a": 1}, "cancelFlag": null}),
        json!("text"),
        json!([{"channelId": "c"}]),
        json!(null),
    ] {
        let json = body.to_string();
        let text = serde_json::from_str::<RequestBody>(&json).unwrap();
        assert_eq!(text, RequestBody::of(&body), "{body}");
    }
}

#[test]
fn message_type_names_of_the_protocol_are_static() {
    assert!(matches!(message_type_name("joinChannel"), Cow::Borrowed("joinChannel")));
    assert!(matches!(message_type_name("cs_custom_message_push"), Cow::Borrowed(_)));
    assert_eq!(message_type_name("somethingNew"), Cow::<str>::Owned("somethingNew".into()));
    for m in [
        ServerMessage::Ringing { uuid: "u".into(), channel_id: "c".into() },
        ServerMessage::CanceledCall { channel_id: "c".into() },
    ] {
        assert!(matches!(message_type_name(m.message_type()), Cow::Borrowed(_)), "{}", m.message_type());
    }
}

#[test]
fn allow_video_is_read_from_the_channel_config_or_the_call_type() {
    let t = TenantId(0);
    let ms = |v: Value| json!({"data": {"channelConfig": {"allowVideo": v}}});
    let join = |ms: &Value, body: &Value| match DeviceRequest::decode(
        t,
        "a",
        "joinChannel",
        &RequestBody::of(body),
        Some(ms.clone().into()),
    )
    .kind
    {
        RequestKind::Join(j) => j.allow_video,
        other => panic!("{other:?}"),
    };
    assert!(join(&ms(json!(1)), &json!({})));
    assert!(join(&ms(json!(true)), &json!({})));
    assert!(join(&ms(json!("1")), &json!({})));
    assert!(!join(&ms(json!(0)), &json!({})));
    assert!(!join(&json!({}), &json!({})));
    assert!(join(&json!({}), &json!({"alicomRtcType": "video2video"})));
    let call = DeviceRequest::decode(t, "a", "call", &RequestBody::of(&json!({})), Some(ms(json!(1)).into()));
    assert!(matches!(call.kind, RequestKind::Call(CallRequest { allow_video: true, .. })));
}

#[test]
fn rtc_type_names_round_trip() {
    for t in [RtcType::Voip2Voip, RtcType::Voip2Pstn, RtcType::Pstn2Voip, RtcType::Pstn2Pstn] {
        assert_eq!(RtcType::parse(t.as_str()), Some(t));
        assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
    }
    assert_eq!(RtcType::parse("fax"), None);
}

#[test]
fn body_strings_are_borrowed_from_the_text_unless_escaped() {
    let text = r#"{"channelId":"plain","uuid":"esc\u0041ped","alicomRtcType":"voip2voip"}"#;
    let b = serde_json::from_str::<RequestBody>(text).unwrap();
    assert!(matches!(b.channel_id, Some(std::borrow::Cow::Borrowed("plain"))));
    assert!(matches!(b.alicom_rtc_type, Some(std::borrow::Cow::Borrowed("voip2voip"))));
    // An escape needs a copy; the value read is the unescaped one either way.
    assert!(matches!(&b.uuid, Some(std::borrow::Cow::Owned(u)) if u == "escAped"));
}
