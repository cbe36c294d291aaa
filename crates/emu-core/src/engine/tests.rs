//! Engine unit tests: pure inputs and outputs, time passed in by hand.

use super::*;
use serde_json::json;

const T: TenantId = TenantId(0);

fn engine() -> Engine {
    let mut numbers = HashMap::new();
    numbers.insert("02160000001".to_string(), None);
    let routing = Routing { name: "default".into(), numbers, ..Default::default() };
    Engine::new(EngineConfig { ring_timeout_ms: 30_000, callback_timeout_ms: 3_000, recent_calls: 10 }, vec![routing])
}

fn dev(rtc: &str, message_type: &str, body: Value, ms: Value) -> Input {
    Input::Device(DeviceInput {
        tenant: T,
        rtc_id: rtc.into(),
        message_type: message_type.into(),
        body,
        media_signal: Some(ms),
    })
}

fn online(e: &mut Engine, rtc: &str) {
    e.handle(Input::DeviceOnline { tenant: T, rtc_id: rtc.into() }, 0);
}

/// Caller `a` joins channel `c` and calls `callees`.
fn start_voip(e: &mut Engine, callees: &[&str], now: Millis) -> Vec<Output> {
    e.handle(
        dev("a", "joinChannel", json!({"channelId": "c", "isCaller": true, "uuid": "ua"}), json!({"data": {}})),
        now,
    );
    let list: Vec<Value> = callees.iter().map(|c| json!({"deviceId": c})).collect();
    e.handle(
        dev(
            "a",
            "call",
            json!({"channelId": "c", "uuid": "ua"}),
            json!({"data": {"calleeDeviceInfo": {"deviceList": list}}}),
        ),
        now,
    )
}

fn to_device(out: &[Output]) -> Vec<(String, &'static str)> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToDevice { rtc_id, message_type, .. } => Some((rtc_id.clone(), *message_type)),
            _ => None,
        })
        .collect()
}

fn body_of<'a>(out: &'a [Output], rtc: &str, t: &str) -> &'a Value {
    out.iter()
        .find_map(|o| match o {
            Output::ToDevice { rtc_id, message_type, body, .. } if rtc_id == rtc && *message_type == t => Some(body),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {t} to {rtc} in {out:?}"))
}

#[test]
fn voip_to_voip_answered_and_hung_up() {
    let mut e = engine();
    online(&mut e, "b");
    let out = start_voip(&mut e, &["b"], 1_000);
    assert_eq!(to_device(&out), vec![("b".into(), "called")]);
    let called = body_of(&out, "b", "called");
    assert_eq!(called["callerInfo"], json!({"isPstn": false, "rtcId": "a", "uuid": "ua"}));
    assert!(called.get("uuid").is_none(), "no uuid in called");
    let out = e.handle(Input::DeviceAck { tenant: T, rtc_id: "b".into(), message_type: "called".into() }, 1_100);
    assert_eq!(to_device(&out), vec![("a".into(), "ringing")]);
    let out = e
        .handle(dev("b", "answer", json!({"channelId": "c", "uuid": "ub"}), json!({"data": {"callResult": 1}})), 5_000);
    assert_eq!(to_device(&out), vec![("a".into(), "answered")]);
    let out =
        e.handle(dev("b", "joinChannel", json!({"channelId": "c", "isCaller": false, "uuid": "ub"}), json!({})), 5_100);
    assert_eq!(body_of(&out, "a", "peerJoinedChannel")["mediaSignal"]["data"]["userId"], "ub");
    let out = e.handle(dev("a", "leaveChannel", json!({"channelId": "c", "uuid": "ua"}), json!({})), 65_000);
    assert_eq!(body_of(&out, "b", "peerLeftChannel")["uuid"], "ub");
    let cdr = out
        .iter()
        .find_map(|o| match o {
            Output::Cdr { report, .. } => Some(report),
            _ => None,
        })
        .expect("CDR");
    assert_eq!(cdr["duration"], "60");
    assert_eq!(cdr["callOutInfo"][0]["duration"], "60");
    assert!(cdr["startTime"].is_string());
    assert_eq!(e.call("c").unwrap().state, CallState::Ended);
}

#[test]
fn offline_and_busy_callees() {
    let mut e = engine();
    let out = start_voip(&mut e, &["nobody"], 0);
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::NOT_REGISTERED);

    let mut e = engine();
    online(&mut e, "b");
    start_voip(&mut e, &["b"], 0); // b rings for call c
    e.handle(dev("x", "joinChannel", json!({"channelId": "c2", "isCaller": true, "uuid": "ux"}), json!({})), 1);
    let out = e.handle(
        dev(
            "x",
            "call",
            json!({"channelId": "c2"}),
            json!({"data": {"calleeDeviceInfo": {"deviceList": [{"deviceId": "b"}]}}}),
        ),
        1,
    );
    assert_eq!(body_of(&out, "x", "cs_disconnect")["causeCode"], codes::BUSY);
}

#[test]
fn first_answer_wins_among_several_devices() {
    let mut e = engine();
    online(&mut e, "b");
    online(&mut e, "b2");
    let out = start_voip(&mut e, &["b", "b2"], 0);
    assert_eq!(to_device(&out).len(), 2);
    let out =
        e.handle(dev("b2", "answer", json!({"channelId": "c", "uuid": "u2"}), json!({"data": {"callResult": 1}})), 10);
    assert_eq!(body_of(&out, "b", "cs_disconnect")["causeCode"], codes::ANSWERED_ELSEWHERE);
    assert!(body_of(&out, "b", "cs_disconnect").get("uuid").is_none());
    assert_eq!(body_of(&out, "a", "answered")["mediaSignal"]["data"]["callResult"], 1);
}

#[test]
fn reject_and_no_answer() {
    let mut e = engine();
    online(&mut e, "b");
    start_voip(&mut e, &["b"], 0);
    let out = e.handle(dev("b", "answer", json!({"channelId": "c"}), json!({"data": {"callResult": 2}})), 10);
    assert_eq!(body_of(&out, "a", "answered")["mediaSignal"]["data"]["callResult"], 2);

    let mut e = engine();
    online(&mut e, "b");
    start_voip(&mut e, &["b"], 0);
    assert_eq!(e.poll_timeout(), Some(30_000));
    let fired = e.handle_timeout(30_000);
    let out: Vec<Output> = fired.into_iter().flat_map(|(_, o)| o).collect();
    assert!(to_device(&out).contains(&("b".into(), "canceledCall")));
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::NO_ANSWER);
}

#[test]
fn caller_cancels_while_ringing() {
    let mut e = engine();
    online(&mut e, "b");
    start_voip(&mut e, &["b"], 0);
    let out = e.handle(dev("a", "leaveChannel", json!({"channelId": "c"}), json!({})), 5);
    assert_eq!(to_device(&out), vec![("b".into(), "canceledCall")]);
    // The cancelCall that follows changes nothing.
    let out = e.handle(dev("a", "cancelCall", json!({"channelId": "c"}), json!({})), 6);
    assert!(to_device(&out).is_empty());
}

fn pstn_call(e: &mut Engine, show: &str, phone: &str) -> Vec<Output> {
    e.handle(
        dev(
            "a",
            "joinChannel",
            json!({"channelId": "p", "isCaller": true, "uuid": "ua", "alicomRtcType": "voip2pstn"}),
            json!({}),
        ),
        0,
    );
    e.handle(
        dev(
            "a",
            "call",
            json!({"channelId": "p"}),
            json!({"data": {"calleePstnInfo": {"mcuPhone": show, "phone": phone}}}),
        ),
        0,
    )
}

#[test]
fn voip_to_pstn() {
    let mut e = engine();
    let out = pstn_call(&mut e, "999", "13800000001");
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::INVALID_DISPLAY_NUMBER);

    let mut e = engine();
    let out = pstn_call(&mut e, "02160000001", "13800000001");
    let leg = out
        .iter()
        .find_map(|o| match o {
            Output::Pstn(PstnCommand::Dial { leg, from, .. }) => {
                assert_eq!(from, "02160000001");
                Some(*leg)
            }
            _ => None,
        })
        .expect("dial");
    let out = e.handle(Input::Pstn(PstnEvent::Ringing { leg }), 1000);
    assert_eq!(to_device(&out), vec![("a".into(), "ringing")]);
    let out = e.handle(Input::Pstn(PstnEvent::Answered { leg }), 2000);
    assert_eq!(to_device(&out), vec![("a".into(), "answered"), ("a".into(), "peerJoinedChannel")]);
    let out = e.handle(Input::Pstn(PstnEvent::Dtmf { leg, digit: '5' }), 2500);
    assert_eq!(body_of(&out, "a", "cs_dtmf")["dtmf"], "5");
    let out = e.handle(Input::Pstn(PstnEvent::HungUp { leg }), 4000);
    assert_eq!(to_device(&out), vec![("a".into(), "peerLeftChannel")]);

    let mut e = engine();
    let out = pstn_call(&mut e, "02160000001", "13800000002");
    let leg = out
        .iter()
        .find_map(|o| match o {
            Output::Pstn(PstnCommand::Dial { leg, .. }) => Some(*leg),
            _ => None,
        })
        .unwrap();
    let out = e.handle(Input::Pstn(PstnEvent::Busy { leg }), 10);
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::BUSY);
}

#[test]
fn outbound_callback_refusal_failure_and_time_limit() {
    let mut e = engine();
    e.set_callbacks(T, Some(Some("http://cb".into())), None);
    online(&mut e, "b");
    let out = start_voip(&mut e, &["b"], 0);
    let body = out
        .iter()
        .find_map(|o| match o {
            Output::Callback { body, .. } => Some(body.clone()),
            _ => None,
        })
        .expect("callback");
    assert_eq!(body["communicationType"], "voip2voip");
    assert_eq!(body["calleeInfos"][0], json!({"isPstn": false, "voipId": "b"}));
    let out = e.handle(
        Input::Callback {
            channel_id: "c".into(),
            kind: CallbackKind::Outbound,
            result: Ok(json!({"success": false, "message": "no credit"})),
        },
        10,
    );
    let d = body_of(&out, "a", "cs_disconnect");
    assert_eq!((d["causeCode"].as_i64(), d["cause"].as_str()), (Some(codes::NO_PERMISSION), Some("no credit")));

    let mut e = engine();
    e.set_callbacks(T, Some(Some("http://cb".into())), None);
    online(&mut e, "b");
    start_voip(&mut e, &["b"], 0);
    let fired = e.handle_timeout(3_000);
    let out: Vec<Output> = fired.into_iter().flat_map(|(_, o)| o).collect();
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::SERVER_ERROR);

    let mut e = engine();
    e.set_callbacks(T, Some(Some("http://cb".into())), None);
    online(&mut e, "b");
    start_voip(&mut e, &["b"], 0);
    e.handle(
        Input::Callback {
            channel_id: "c".into(),
            kind: CallbackKind::Outbound,
            result: Ok(json!({"success": true, "model": {"timeLimit": 60}})),
        },
        10,
    );
    e.handle(dev("b", "answer", json!({"channelId": "c", "uuid": "ub"}), json!({"data": {"callResult": 1}})), 1_000);
    let fired = e.handle_timeout(61_000);
    assert_eq!(fired[0].0, 61_000);
    let out: Vec<Output> = fired.into_iter().flat_map(|(_, o)| o).collect();
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::TIME_LIMIT);
    assert_eq!(body_of(&out, "b", "cs_disconnect")["causeCode"], codes::TIME_LIMIT);
}

#[test]
fn three_sequences_of_30_seconds_run_to_the_end() {
    let mut e = engine();
    e.set_callbacks(T, None, Some(Some("http://in".into())));
    let (channel, _) = e.start_inbound("13900000000", "02160000001", 0).unwrap();
    let plan: Vec<Value> = (1..=3)
        .map(|i| json!({"type": "pstn", "phoneNumber": format!("1380000000{i}"), "platformNumber": "02160000001", "sequence": i}))
        .collect();
    let out = e.handle(
        Input::Callback {
            channel_id: channel.clone(),
            kind: CallbackKind::Inbound,
            result: Ok(json!({"success": true, "model": {"mixedCalleeInfos": plan}})),
        },
        100,
    );
    assert_eq!(out.iter().filter(|o| matches!(o, Output::Pstn(PstnCommand::Dial { .. }))).count(), 1);
    let started = std::time::Instant::now();
    let fired = e.handle_timeout(100 + 95_000);
    let deadlines: Vec<Millis> = fired.iter().map(|(t, _)| *t).collect();
    assert_eq!(deadlines, vec![30_100, 60_100, 90_100]);
    let out: Vec<Output> = fired.into_iter().flat_map(|(_, o)| o).collect();
    assert_eq!(out.iter().filter(|o| matches!(o, Output::Pstn(PstnCommand::Dial { .. }))).count(), 2);
    let cdr = out
        .iter()
        .find_map(|o| match o {
            Output::Cdr { report, .. } => Some(report),
            _ => None,
        })
        .expect("CDR");
    assert_eq!(cdr["callOutInfo"].as_array().unwrap().len(), 3);
    assert!(cdr.get("startTime").is_none(), "never answered");
    assert_eq!(cdr["duration"], "0");
    assert!(out.iter().any(|o| matches!(o, Output::Pstn(PstnCommand::Announce { name, .. }) if name == "no_answer")));
    assert!(started.elapsed() < std::time::Duration::from_millis(50));
}

#[test]
fn inbound_not_connected_without_callback() {
    let mut e = engine();
    let (_, out) = e.start_inbound("13900000000", "02160000001", 0).unwrap();
    assert!(
        out.iter().any(|o| matches!(o, Output::Pstn(PstnCommand::Announce { name, .. }) if name == "not_connected"))
    );
    assert!(out.iter().any(|o| matches!(o, Output::Cdr { .. })));
    assert!(e.start_inbound("1", "99999", 0).is_err());
}

#[test]
fn inbound_to_voip_with_dtmf_from_the_phone() {
    let mut e = engine();
    e.set_callbacks(T, None, Some(Some("http://in".into())));
    online(&mut e, "b");
    let (channel, out) = e.start_inbound("13900000000", "02160000001", 0).unwrap();
    let caller_leg = out
        .iter()
        .find_map(|o| match o {
            Output::Pstn(PstnCommand::Originated { leg, .. }) => Some(*leg),
            _ => None,
        })
        .unwrap();
    let out = e.handle(
        Input::Callback {
            channel_id: channel.clone(),
            kind: CallbackKind::Inbound,
            result: Ok(json!({"success": true, "model": {"calleeInfos": [{"rtcId": "b"}]}})),
        },
        10,
    );
    let called = body_of(&out, "b", "called");
    assert_eq!(called["alicomRtcType"], "pstn2voip");
    assert_eq!(called["callerInfo"]["phoneNumber"], "13900000000");
    let out = e.handle(
        dev("b", "answer", json!({"channelId": channel, "uuid": "ub"}), json!({"data": {"callResult": 1}})),
        20,
    );
    assert!(out.iter().any(|o| matches!(o, Output::Pstn(PstnCommand::Connected { leg }) if *leg == caller_leg)));
    let out = e.handle(Input::Pstn(PstnEvent::Dtmf { leg: caller_leg, digit: '#' }), 30);
    assert_eq!(body_of(&out, "b", "cs_dtmf")["uuid"], "ub");
    let out = e.handle(Input::Pstn(PstnEvent::HungUp { leg: caller_leg }), 40);
    assert_eq!(to_device(&out), vec![("b".into(), "peerLeftChannel")]);
}
