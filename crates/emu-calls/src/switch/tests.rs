//! The switch without I/O: typed device requests in, effects out, time passed by hand.

use std::collections::HashMap;

use emu_core::engine::{EngineConfig, Routing};
use emu_core::signalling::{DeviceRequest, RequestBody, ServerMessage};
use emu_pstn::Behavior;
use serde_json::json;

use super::*;

const T: TenantId = TenantId(0);

fn switch() -> Switch {
    let mut numbers = HashMap::new();
    numbers.insert("02160000001".to_string(), None);
    let routing = Routing { name: "default".into(), numbers, ..Default::default() };
    let engine = Engine::new(
        EngineConfig {
            ring_timeout_ms: 30_000,
            callback_timeout_ms: 3_000,
            recent_calls: 10,
            recent_call_bytes: 1 << 20,
        },
        vec![routing],
    );
    let config = emu_core::config::PstnConfig {
        magic_numbers: true,
        default_behavior: json!({"ring_ms": 2000, "then": "answer"}),
        phones: Vec::new(),
    };
    let pstn = PstnSim::from_config(&config).expect("default PSTN");
    Switch::new(engine, pstn, vec!["default".into()], Limit::new(1000, 1 << 20))
}

fn device(s: &mut Switch, rtc: &str, message_type: &str, body: Value, ms: Value, now: Millis) -> Vec<Effect> {
    s.feed(Input::Device(DeviceRequest::decode(T, rtc, message_type, &RequestBody::of(&body), Some(ms.into()))), now)
}

fn sent(effects: &[Effect]) -> Vec<(&str, &'static str)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { rtc_id, message, .. } => Some((rtc_id.as_str(), message.message_type())),
            _ => None,
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<&'static str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some(ev.kind),
            _ => None,
        })
        .collect()
}

/// A VoIP→PSTN call to a phone that answers after 1 s, presses a key, and hangs up: the phone's
/// events run back through the engine inside the switch, and the effects come out in order.
#[test]
fn a_voip_to_pstn_call_runs_to_its_cdr_without_io() {
    let mut s = switch();
    s.pstn
        .set_behavior(
            "13912345678",
            Behavior::try_from(json!({"ring_ms": 1000, "then": "answer", "dtmf": [{"after_ms": 500, "digits": "5"}], "hangup_after_ms": 2000})).unwrap(),
        )
        .unwrap();
    let join = json!({"channelId": "p", "isCaller": true, "uuid": "ua", "alicomRtcType": "voip2pstn"});
    let out = device(&mut s, "a", "joinChannel", join, json!({}), 0);
    assert!(matches!(out.last(), Some(Effect::Media(MediaCommand::Join { .. }))), "{out:?}");
    let call = json!({"data": {"calleePstnInfo": {"mcuPhone": "02160000001", "phone": "13912345678"}}});
    let out = device(&mut s, "a", "call", json!({"channelId": "p", "uuid": "ua"}), call, 0);
    // The dial, the phone ringing at once, and the caller hearing it, all in one feed.
    assert_eq!(sent(&out), vec![("a", "ringing")]);
    assert!(events(&out).starts_with(&["call.state", "pstn.dial", "pstn.ringing"]), "{:?}", events(&out));
    assert_eq!(s.poll_timeout(), Some(1000));
    let out = s.fire_due(1000);
    assert_eq!(sent(&out), vec![("a", "answered"), ("a", "peerJoinedChannel")]);
    assert!(out.iter().any(|e| matches!(e, Effect::Media(MediaCommand::Bridge { .. }))));
    let out = s.fire_due(1500);
    assert!(
        out.iter().any(|e| matches!(e, Effect::PhoneDtmf { channel_id, digit: '5' } if channel_id == "p")),
        "the key also goes into the caller's audio: {out:?}"
    );
    assert!(matches!(
        &out.iter().find_map(|e| match e {
            Effect::Send { message, .. } => Some(message),
            _ => None,
        }),
        Some(ServerMessage::Dtmf { digit: '5', .. })
    ));
    let out = s.fire_due(3000);
    assert_eq!(sent(&out), vec![("a", "peerLeftChannel")]);
    let (receipt, json) = out
        .iter()
        .find_map(|e| match e {
            Effect::Receipt { message_type: "ArtcCdrReport", report, json, .. } => Some((report, json)),
            _ => None,
        })
        .expect("a CDR receipt");
    assert_eq!((receipt.duration.as_str(), receipt.callee.as_str()), ("2", "13912345678"));
    // The queued body is the report's JSON, serialized once.
    assert_eq!(json, &serde_json::to_vec(&**receipt).unwrap());
    assert_eq!(s.cdrs().count(), 1);
    let row = s.cdrs().next().unwrap();
    assert_eq!(&*row.tenant, "default");
    // The row's weight, derived from that JSON, is its own JSON length.
    assert_eq!(row.weight(json.len()), json_weight(row));
    let escaped = CdrRow { tenant: r#"a "b""#.into(), ..row.clone() };
    assert_eq!(escaped.weight(json.len()), json_weight(&escaped));
    // One report, shared by the receipt, the list and the call: no copies.
    assert!(std::sync::Arc::ptr_eq(&row.report, receipt));
    let channel_id = &row.report.channel_id;
    let kept = s.engine.call(channel_id).and_then(|c| c.cdr.as_ref()).expect("the ended call keeps its CDR");
    assert!(std::sync::Arc::ptr_eq(&row.report, kept));
    // The ring timer of the answered leg is still queued; it fires into nothing.
    assert!(s.fire_due(60_000).is_empty());
}

/// Keys a phone presses on an admin command reach the device's audio too, like scripted ones.
#[test]
fn admin_phone_events_go_through_the_engine_and_into_the_audio() {
    let mut s = switch();
    s.pstn.set_behavior("13912345679", Behavior::try_from(json!({"ring_ms": 0, "then": "answer"})).unwrap()).unwrap();
    device(&mut s, "a", "joinChannel", json!({"channelId": "q", "isCaller": true, "uuid": "ua"}), json!({}), 0);
    let call = json!({"data": {"calleePstnInfo": {"mcuPhone": "02160000001", "phone": "13912345679"}}});
    device(&mut s, "a", "call", json!({"channelId": "q"}), call, 0);
    s.fire_due(0);
    let events = s.pstn.press("13912345679", "7", 10).unwrap();
    let out = s.phone_events(events, 10);
    assert!(out.iter().any(|e| matches!(e, Effect::PhoneDtmf { digit: '7', .. })), "{out:?}");
    assert_eq!(sent(&out), vec![("a", "cs_dtmf")]);
}

#[test]
fn dialling_an_unbought_number_is_refused_and_changes_nothing() {
    let mut s = switch();
    let err = s.dial_in("13900000000", "02199999999", 0).unwrap_err();
    assert_eq!(err.to_string(), "02199999999 is not a number bought by any tenant");
    assert_eq!(s.poll_timeout(), None);
    let (channel, out) = s.dial_in("13900000000", "02160000001", 0).unwrap();
    assert!(!channel.is_empty());
    assert!(events(&out).contains(&"pstn.call_in"));
    assert!(out.iter().any(|e| matches!(e, Effect::Receipt { .. })), "no inbound callback: not connected, CDR");
}
