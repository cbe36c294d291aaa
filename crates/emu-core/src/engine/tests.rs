//! Engine unit tests: pure inputs and outputs, time passed in by hand.

use super::*;
use crate::signalling::RequestBody;
use call::{Outcome, Target};
use serde_json::json;

const T: TenantId = TenantId(0);

fn engine() -> Engine {
    let mut numbers = HashMap::new();
    numbers.insert("02160000001".to_string(), None);
    let routing = Routing { name: "default".into(), numbers, ..Default::default() };
    Engine::new(
        EngineConfig {
            ring_timeout_ms: 30_000,
            callback_timeout_ms: 3_000,
            recent_calls: 10,
            recent_call_bytes: 1 << 20,
        },
        vec![routing],
    )
}

/// A device request as the gateway decodes it from an envelope.
fn dev(rtc: &str, message_type: &str, body: Value, ms: Value) -> Input {
    Input::Device(DeviceRequest::decode(T, rtc, message_type, &RequestBody::of(&body), Some(ms.into())))
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
            Output::ToDevice { rtc_id, message, .. } => Some((rtc_id.clone(), message.message_type())),
            _ => None,
        })
        .collect()
}

/// The body the gateway would send for message type `t` to `rtc`.
fn body_of(out: &[Output], rtc: &str, t: &str) -> Value {
    out.iter()
        .find_map(|o| match o {
            Output::ToDevice { rtc_id, message, .. } if rtc_id == rtc && message.message_type() == t => {
                Some(message.body())
            }
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
            Output::Cdr { report, .. } => Some(serde_json::to_value(&**report).unwrap()),
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
fn an_always_busy_account_is_busy_until_told_otherwise() {
    let mut e = engine();
    online(&mut e, "b");
    e.handle(Input::DeviceBusy { tenant: T, rtc_id: "b".into(), busy: true }, 0);
    let out = start_voip(&mut e, &["b"], 0);
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::BUSY);
    assert!(to_device(&out).iter().all(|(rtc, _)| rtc != "b"), "a busy account is not called");

    let mut e = engine();
    online(&mut e, "b");
    e.handle(Input::DeviceBusy { tenant: T, rtc_id: "b".into(), busy: true }, 0);
    e.handle(Input::DeviceBusy { tenant: T, rtc_id: "b".into(), busy: false }, 0);
    let out = start_voip(&mut e, &["b"], 0);
    assert!(to_device(&out).iter().any(|(rtc, _)| rtc == "b"), "b rings again");
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
            Output::Cdr { report, .. } => Some(serde_json::to_value(&**report).unwrap()),
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

fn cdr_of(out: &[Output]) -> Value {
    out.iter()
        .find_map(|o| match o {
            Output::Cdr { report, .. } => Some(serde_json::to_value(&**report).unwrap()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no CDR in {out:?}"))
}

/// Caller `a` calls several devices with a cancel flag in its `call`.
fn start_voip_with_flag(e: &mut Engine, callees: &[&str], flag: Value) -> Vec<Output> {
    e.handle(dev("a", "joinChannel", json!({"channelId": "c", "isCaller": true, "uuid": "ua"}), json!({})), 0);
    let list: Vec<Value> = callees.iter().map(|c| json!({"deviceId": c})).collect();
    e.handle(
        dev(
            "a",
            "call",
            json!({"channelId": "c", "uuid": "ua"}),
            json!({"data": {"calleeDeviceInfo": {"deviceList": list}, "cancelFlag": flag}}),
        ),
        0,
    )
}

#[test]
fn one_reject_among_several_ringing_devices_cancels_the_call() {
    let mut e = engine();
    for d in ["b", "b2", "b3"] {
        online(&mut e, d);
    }
    let out = start_voip(&mut e, &["b", "b2", "b3"], 0);
    assert_eq!(to_device(&out).len(), 3);
    let out =
        e.handle(dev("b2", "answer", json!({"channelId": "c", "uuid": "u2"}), json!({"data": {"callResult": 2}})), 10);
    for other in ["b", "b3"] {
        let d = body_of(&out, other, "cs_disconnect");
        assert_eq!(d["causeCode"], codes::REJECTED_ELSEWHERE, "{other} stops with 2000133");
    }
    assert!(!to_device(&out).contains(&("b2".into(), "cs_disconnect")), "the rejecting device is not told");
    assert_eq!(body_of(&out, "a", "answered")["mediaSignal"]["data"]["callResult"], 2, "the caller hears 2000106");
    let call = e.call("c").unwrap();
    assert_eq!(call.state, CallState::Ended);
    assert_eq!(call.cause_code, Some(codes::REJECTED));
    let outcomes: Vec<Option<Outcome>> = call.legs.iter().map(|l| l.outcome).collect();
    assert_eq!(
        outcomes,
        vec![Some(Outcome::RejectedElsewhere), Some(Outcome::Rejected), Some(Outcome::RejectedElsewhere)]
    );
    // The ring timers of the stopped legs fire into nothing.
    assert!(e.handle_timeout(60_000).is_empty());
}

#[test]
fn a_ringing_callee_leaving_counts_as_a_reject() {
    let mut e = engine();
    online(&mut e, "b");
    online(&mut e, "b2");
    start_voip(&mut e, &["b", "b2"], 0);
    let out = e.handle(dev("b", "leaveChannel", json!({"channelId": "c"}), json!({})), 10);
    assert_eq!(body_of(&out, "b2", "cs_disconnect")["causeCode"], codes::REJECTED_ELSEWHERE);
    assert_eq!(body_of(&out, "a", "answered")["mediaSignal"]["data"]["callResult"], 2);
}

#[test]
fn with_the_keep_ringing_flag_the_call_fails_only_when_every_callee_declined() {
    for flag in [json!(1), json!("CALL_CANCLE_FLAG_WHEN_ALL_CALLEE_REJECT")] {
        let mut e = engine();
        for d in ["b", "b2", "b3"] {
            online(&mut e, d);
        }
        start_voip_with_flag(&mut e, &["b", "b2", "b3"], flag.clone());
        assert!(!e.call("c").unwrap().cancel_on_reject, "{flag}");
        let out = e.handle(
            dev("b", "answer", json!({"channelId": "c", "uuid": "u1"}), json!({"data": {"callResult": 2}})),
            10,
        );
        assert!(to_device(&out).is_empty(), "the others keep ringing: {out:?}");
        assert_eq!(e.call("c").unwrap().state, CallState::Ringing);
        // A second callee answers: the call connects.
        let out = e.handle(
            dev("b3", "answer", json!({"channelId": "c", "uuid": "u3"}), json!({"data": {"callResult": 1}})),
            20,
        );
        assert_eq!(body_of(&out, "a", "answered")["mediaSignal"]["data"]["callResult"], 1);
        assert_eq!(body_of(&out, "b2", "cs_disconnect")["causeCode"], codes::ANSWERED_ELSEWHERE);
    }
    // Every callee rejects: the caller hears the reject.
    let mut e = engine();
    online(&mut e, "b");
    online(&mut e, "b2");
    start_voip_with_flag(&mut e, &["b", "b2"], json!(1));
    e.handle(dev("b", "answer", json!({"channelId": "c"}), json!({"data": {"callResult": 2}})), 10);
    let out = e.handle(dev("b2", "answer", json!({"channelId": "c"}), json!({"data": {"callResult": 2}})), 20);
    assert_eq!(body_of(&out, "a", "answered")["mediaSignal"]["data"]["callResult"], 2);
    // The default flag (0) cancels, like no flag at all.
    let mut e = engine();
    online(&mut e, "b");
    online(&mut e, "b2");
    start_voip_with_flag(&mut e, &["b", "b2"], json!(0));
    let out = e.handle(dev("b", "answer", json!({"channelId": "c"}), json!({"data": {"callResult": 2}})), 10);
    assert_eq!(body_of(&out, "b2", "cs_disconnect")["causeCode"], codes::REJECTED_ELSEWHERE);
}

#[test]
fn in_an_inbound_plan_a_reject_rings_the_next_sequence() {
    let mut e = engine();
    e.set_callbacks(T, None, Some(Some("http://in".into())));
    online(&mut e, "b");
    let (channel, _) = e.start_inbound("13900000000", "02160000001", 0).unwrap();
    let plan = json!([
        {"type": "voip", "rtcId": "b", "sequence": 1},
        {"type": "pstn", "phoneNumber": "13800000001", "platformNumber": "02160000001", "sequence": 2},
    ]);
    e.handle(
        Input::Callback {
            channel_id: channel.clone(),
            kind: CallbackKind::Inbound,
            result: Ok(json!({"success": true, "model": {"mixedCalleeInfos": plan}})),
        },
        10,
    );
    let out = e.handle(dev("b", "answer", json!({"channelId": channel}), json!({"data": {"callResult": 2}})), 20);
    assert!(out.iter().any(|o| matches!(o, Output::Pstn(PstnCommand::Dial { to, .. }) if to == "13800000001")));
}

#[test]
fn legs_and_events_report_the_declared_sequence() {
    let mut e = engine();
    e.set_callbacks(T, None, Some(Some("http://in".into())));
    let (channel, _) = e.start_inbound("13900000000", "02160000001", 0).unwrap();
    let plan: Vec<Value> = [1, 2, 2, 3, 5]
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"type": "pstn", "phoneNumber": format!("1380000010{i}"), "platformNumber": "02160000001", "sequence": s}))
        .collect();
    e.handle(
        Input::Callback {
            channel_id: channel.clone(),
            kind: CallbackKind::Inbound,
            result: Ok(json!({"success": true, "model": {"mixedCalleeInfos": plan}})),
        },
        10,
    );
    let fired = e.handle_timeout(200_000);
    let events: Vec<Value> = fired
        .iter()
        .flat_map(|(_, o)| o)
        .filter_map(|o| match o {
            Output::Log(ev) if ev.kind == "call.state" && ev.detail.field("state") == "ringing" => {
                Some(ev.detail.to_value())
            }
            _ => None,
        })
        .collect();
    let declared: Vec<(i64, i64)> = events
        .iter()
        .map(|d| (d["detail"]["sequence"].as_i64().unwrap(), d["detail"]["position"].as_i64().unwrap()))
        .collect();
    assert_eq!(declared, vec![(2, 2), (3, 3), (5, 4)]);
    let call = e.call(&channel).unwrap();
    let legs: Vec<(String, i64, usize)> =
        call.legs.iter().map(|l| (l.target.label().to_string(), l.sequence, l.position)).collect();
    assert_eq!(legs.last().unwrap(), &("13800000104".to_string(), 5, 4));
    assert_eq!(legs[1].1, 2);
    assert_eq!(legs[2].1, 2);
    let view = serde_json::to_value(call).unwrap();
    assert_eq!(view["legs"][4]["sequence"], 5);
    assert_eq!(view["legs"][4]["position"], 4);
}

#[test]
fn a_refused_voip_to_pstn_call_names_the_callee_and_display_number() {
    let mut e = engine();
    let out = pstn_call(&mut e, "02199999999", "13812345678");
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::INVALID_DISPLAY_NUMBER);
    let cdr = cdr_of(&out);
    assert_eq!(cdr["callee"], "13812345678");
    assert_eq!(cdr["detail"]["displayNumber"], "02199999999");
    assert_eq!(cdr["callOutInfo"][0]["callee"], "13812345678");
    assert_eq!(cdr["callOutInfo"][0]["caller"], "02199999999");
    assert_eq!(cdr["callOutInfo"][0]["outcome"], "not_dialled");
    assert_eq!(cdr["callOutInfo"][0]["duration"], "0");
}

#[test]
fn every_refusal_path_names_who_was_called() {
    // The outbound callback refuses a VoIP→VoIP call.
    let mut e = engine();
    e.set_callbacks(T, Some(Some("http://cb".into())), None);
    online(&mut e, "b");
    start_voip(&mut e, &["b"], 0);
    let out = e.handle(
        Input::Callback { channel_id: "c".into(), kind: CallbackKind::Outbound, result: Ok(json!({"success": false})) },
        10,
    );
    let cdr = cdr_of(&out);
    assert_eq!(cdr["callee"], "b");
    assert_eq!(cdr["callOutInfo"][0]["callee"], "b");
    // The outbound callback fails for a VoIP→PSTN call: callee and display number are named.
    let mut e = engine();
    e.set_callbacks(T, Some(Some("http://cb".into())), None);
    pstn_call(&mut e, "02160000001", "13812345678");
    let fired = e.handle_timeout(3_000);
    let out: Vec<Output> = fired.into_iter().flat_map(|(_, o)| o).collect();
    let cdr = cdr_of(&out);
    assert_eq!(
        (cdr["callee"].as_str(), cdr["detail"]["displayNumber"].as_str()),
        (Some("13812345678"), Some("02160000001"))
    );
    // Too many callees.
    let mut e = engine();
    let many: Vec<String> = (0..11).map(|i| format!("d{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = start_voip(&mut e, &refs, 0);
    assert_eq!(body_of(&out, "a", "cs_disconnect")["causeCode"], codes::TOO_MANY_CALLEES);
    assert_eq!(cdr_of(&out)["callee"], "d0");
    assert_eq!(cdr_of(&out)["callOutInfo"].as_array().unwrap().len(), 11);
    // An inbound call nobody routes: the callee is the platform number dialled.
    let mut e = engine();
    let (_, out) = e.start_inbound("13900000000", "02160000001", 0).unwrap();
    assert_eq!(cdr_of(&out)["callee"], "02160000001");
}

#[test]
fn a_transfer_presents_the_plans_platform_number() {
    let mut numbers = HashMap::new();
    numbers.insert("02160000001".to_string(), None);
    numbers.insert("02160000002".to_string(), None);
    let routing = Routing { name: "default".into(), numbers, ..Default::default() };
    let mut e = Engine::new(
        EngineConfig {
            ring_timeout_ms: 30_000,
            callback_timeout_ms: 3_000,
            recent_calls: 10,
            recent_call_bytes: 1 << 20,
        },
        vec![routing],
    );
    e.set_callbacks(T, None, Some(Some("http://in".into())));
    let (channel, _) = e.start_inbound("13900000000", "02160000001", 0).unwrap();
    let plan = json!([{"type": "pstn", "phoneNumber": "13700000000", "platformNumber": "02160000002"}]);
    let out = e.handle(
        Input::Callback {
            channel_id: channel.clone(),
            kind: CallbackKind::Inbound,
            result: Ok(json!({"success": true, "model": {"mixedCalleeInfos": plan}})),
        },
        10,
    );
    let (leg, from) = out
        .iter()
        .find_map(|o| match o {
            Output::Pstn(PstnCommand::Dial { leg, from, .. }) => Some((*leg, from.clone())),
            _ => None,
        })
        .expect("dial");
    assert_eq!(from, "02160000002", "the phone is rung from the plan's platformNumber");
    let out = e.handle(Input::Pstn(PstnEvent::Answered { leg }), 1_000);
    assert!(out.iter().any(|o| matches!(o, Output::Pstn(PstnCommand::Connected { .. }))));
    let out = e.handle(Input::Pstn(PstnEvent::HungUp { leg }), 5_000);
    let cdr = cdr_of(&out);
    assert_eq!(cdr["callOutInfo"][0]["caller"], "02160000002");
    let call = e.call(&channel).unwrap();
    assert!(matches!(&call.legs[0].target, Target::Phone { display, .. } if display == "02160000002"));
}

mod video;
