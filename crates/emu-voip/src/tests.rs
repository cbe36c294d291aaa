use emu_core::signalling::{CalleeRequest, CallerInfo, RequestKind, RtcType, ServerMessage};
use emu_core::tenants::TenantId;
use serde_json::json;

use crate::{Action, Behavior, CallOrder, CallOutcome, DeviceState, Outcome, Role, VirtualDevices, VoipError};

const T: TenantId = TenantId(0);

fn called(channel: &str) -> ServerMessage {
    ServerMessage::Called {
        rtc_type: RtcType::Voip2Voip,
        caller_info: CallerInfo::Device { rtc_id: "caller".into(), uuid: "u".into() },
        channel_id: channel.into(),
        call_id: "call-1".into(),
        caller_user_info: json!({}).into(),
        video: false,
    }
}

/// Every action so far, requests as their message kinds.
fn drain(v: &mut VirtualDevices) -> Vec<Action> {
    std::iter::from_fn(|| v.poll_action()).collect()
}

fn requests(v: &mut VirtualDevices) -> Vec<String> {
    drain(v)
        .into_iter()
        .filter_map(|a| match a {
            Action::Request(r) => Some(match r.kind {
                RequestKind::Join(j) => format!("join(caller={})", j.is_caller),
                RequestKind::Call(_) => "call".into(),
                RequestKind::Answer { accept } => format!("answer({accept})"),
                RequestKind::CancelCall => "cancelCall".into(),
                RequestKind::LeaveChannel => "leaveChannel".into(),
                other => format!("{other:?}"),
            }),
            _ => None,
        })
        .collect()
}

fn device(then: Outcome) -> VirtualDevices {
    let mut v = VirtualDevices::new();
    v.put(T, "vd", None, Behavior::new(then).with_ring_ms(1000), 0);
    drain(&mut v);
    v
}

#[test]
fn put_reports_presence_and_busy_changes_only() {
    let mut v = VirtualDevices::new();
    assert!(v.put(T, "vd", Some("dev-1"), Behavior::default(), 5));
    let a = drain(&mut v);
    assert!(matches!(a.as_slice(), [Action::Presence { online: true, .. }]), "{a:?}");
    assert!(!v.put(T, "vd", None, Behavior::new(Outcome::Busy), 6));
    assert!(matches!(drain(&mut v).as_slice(), [Action::Busy { busy: true, .. }]));
    v.put(T, "vd", None, Behavior::new(Outcome::Offline), 7);
    let a = drain(&mut v);
    assert!(
        matches!(a.as_slice(), [Action::Presence { online: false, .. }, Action::Busy { busy: false, .. }]),
        "{a:?}"
    );
    let view = v.view(T, "vd").unwrap();
    assert_eq!((view.state, view.device_id.as_str(), view.created_ms), (DeviceState::Offline, "dev-1", 5));
    v.remove(T, "vd").unwrap();
    assert!(drain(&mut v).is_empty(), "an offline device has nothing to take offline");
    assert_eq!(v.remove(T, "vd"), Err(VoipError::NotFound("vd".into())));
}

#[test]
fn answers_after_ring_ms_joins_and_hangs_up_after_hangup_after_ms() {
    let mut v = VirtualDevices::new();
    v.put(T, "vd", None, Behavior::new(Outcome::Answer).with_ring_ms(1000).with_hangup_after_ms(5000), 0);
    drain(&mut v);
    assert_eq!(v.deliver(T, "vd", &called("ch"), 100), Some(true));
    assert_eq!(v.view(T, "vd").unwrap().state, DeviceState::Ringing);
    assert_eq!(v.poll_timeout(), Some(1100));
    v.handle_timeout(1099);
    assert!(requests(&mut v).is_empty());
    v.handle_timeout(1100);
    assert_eq!(requests(&mut v), ["answer(true)", "join(caller=false)"]);
    assert_eq!(v.view(T, "vd").unwrap().state, DeviceState::InCall);
    assert_eq!(v.poll_timeout(), Some(6100));
    v.handle_timeout(6100);
    assert_eq!(requests(&mut v), ["leaveChannel"]);
    let view = v.view(T, "vd").unwrap();
    assert_eq!(view.state, DeviceState::Idle);
    let rec = &view.calls[0];
    assert_eq!(
        (rec.role, rec.outcome, rec.code, rec.peer.as_str()),
        (Role::Callee, CallOutcome::Completed, None, "caller")
    );
    assert_eq!((rec.started_ms, rec.answered_ms, rec.ended_ms), (100, Some(1100), 6100));
}

#[test]
fn every_request_names_the_call_and_one_session() {
    let mut v = device(Outcome::Answer);
    v.deliver(T, "vd", &called("ch-7"), 0);
    v.handle_timeout(1000);
    let reqs: Vec<_> =
        drain(&mut v).into_iter().filter_map(|a| if let Action::Request(r) = a { Some(*r) } else { None }).collect();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!((r.tenant, r.rtc_id.as_str(), r.channel_id.as_deref()), (T, "vd", Some("ch-7")));
        assert_eq!(r.uuid, reqs[0].uuid);
        assert_eq!(r.uuid.len(), 36);
    }
    let RequestKind::Join(join) = &reqs[1].kind else { panic!() };
    assert_eq!(join.rtc_type, Some(RtcType::Voip2Voip));
    assert_eq!(join.signal.data.channel_id.as_deref(), Some("ch-7"));
    assert_eq!(join.signal.data.channel_config.sig_version, Some(1), "signalling version 1: no offer");
}

#[test]
fn rejects_after_ring_ms() {
    let mut v = device(Outcome::Reject);
    v.deliver(T, "vd", &called("ch"), 0);
    v.handle_timeout(1000);
    assert_eq!(requests(&mut v), ["answer(false)"]);
    let rec = &v.view(T, "vd").unwrap().calls[0];
    assert_eq!((rec.outcome, rec.answered_ms), (CallOutcome::Rejected, None));
}

#[test]
fn answer_then_leave_never_joins() {
    let mut v = device(Outcome::AnswerThenLeave);
    v.deliver(T, "vd", &called("ch"), 0);
    v.handle_timeout(1000);
    assert_eq!(requests(&mut v), ["answer(true)", "leaveChannel"], "hangup_after_ms defaults to 0");
}

#[test]
fn no_answer_rings_until_canceled() {
    let mut v = device(Outcome::NoAnswer);
    v.deliver(T, "vd", &called("ch"), 0);
    assert_eq!(v.poll_timeout(), None);
    v.deliver(T, "vd", &ServerMessage::CanceledCall { channel_id: "other".into() }, 10);
    assert_eq!(v.view(T, "vd").unwrap().state, DeviceState::Ringing, "another call's message changes nothing");
    v.deliver(T, "vd", &ServerMessage::CanceledCall { channel_id: "ch".into() }, 30_000);
    let view = v.view(T, "vd").unwrap();
    assert_eq!(view.state, DeviceState::Idle);
    assert_eq!((view.calls[0].outcome, view.calls[0].code), (CallOutcome::Canceled, Some(2000107)));
    assert_eq!(
        view.received.iter().map(|r| r.message_type).collect::<Vec<_>>(),
        ["called", "canceledCall", "canceledCall"]
    );
}

#[test]
fn manual_devices_wait_for_the_admin_api() {
    let mut v = device(Outcome::Manual);
    assert!(matches!(v.answer(T, "vd", 0), Err(VoipError::WrongState { state: DeviceState::Idle, .. })));
    v.deliver(T, "vd", &called("ch"), 0);
    v.handle_timeout(60_000);
    assert!(requests(&mut v).is_empty());
    v.answer(T, "vd", 61_000).unwrap();
    assert_eq!(requests(&mut v), ["answer(true)", "join(caller=false)"]);
    v.hangup(T, "vd", 62_000).unwrap();
    assert_eq!(requests(&mut v), ["leaveChannel"]);
    assert!(matches!(v.hangup(T, "vd", 63_000), Err(VoipError::WrongState { state: DeviceState::Idle, .. })));
    v.deliver(T, "vd", &called("ch2"), 70_000);
    v.reject(T, "vd", 70_500).unwrap();
    assert_eq!(requests(&mut v), ["answer(false)"]);
    assert_eq!(v.answer(T, "nobody", 0), Err(VoipError::NotFound("nobody".into())));
}

#[test]
fn a_manual_answer_makes_the_ring_timer_stale() {
    let mut v = device(Outcome::Reject);
    v.deliver(T, "vd", &called("ch"), 0);
    v.answer(T, "vd", 500).unwrap();
    assert_eq!(requests(&mut v), ["answer(true)", "join(caller=false)"]);
    v.handle_timeout(1000);
    assert!(requests(&mut v).is_empty(), "the reject timer armed while ringing is stale");
    assert_eq!(v.view(T, "vd").unwrap().state, DeviceState::InCall);
}

#[test]
fn the_peer_hanging_up_ends_the_call_with_its_code() {
    let mut v = device(Outcome::Answer);
    v.deliver(T, "vd", &called("ch"), 0);
    v.handle_timeout(1000);
    drain(&mut v);
    v.deliver(T, "vd", &ServerMessage::PeerLeft { uuid: "u".into(), channel_id: "ch".into() }, 4000);
    let rec = &v.view(T, "vd").unwrap().calls[0];
    assert_eq!((rec.outcome, rec.code, rec.ended_ms), (CallOutcome::Completed, Some(2000099), 4000));
}

#[test]
fn never_acking_devices_still_follow_their_behaviour() {
    let mut v = VirtualDevices::new();
    v.put(T, "vd", None, Behavior { ack: false, ..Behavior::new(Outcome::Answer).with_ring_ms(0) }, 0);
    assert_eq!(v.deliver(T, "vd", &called("ch"), 0), Some(false));
    v.handle_timeout(0);
    assert_eq!(requests(&mut v), ["answer(true)", "join(caller=false)"]);
    assert!(!v.view(T, "vd").unwrap().received[0].acked);
    assert_eq!(v.deliver(T, "someone-else", &called("ch"), 0), None);
}

fn order(callee: CalleeRequest) -> CallOrder {
    CallOrder { channel_id: "ch".into(), callee, extend: Some("x".into()), need_record: true, cancel_on_reject: true }
}

#[test]
fn calls_join_then_call_and_connect_on_answered() {
    let mut v = device(Outcome::Answer);
    v.put(T, "vd", None, Behavior::new(Outcome::Answer).with_hangup_after_ms(3000), 0);
    v.call(T, "vd", order(CalleeRequest::Devices(vec!["b".into(), "c".into()])), 100).unwrap();
    let reqs: Vec<_> =
        drain(&mut v).into_iter().filter_map(|a| if let Action::Request(r) = a { Some(*r) } else { None }).collect();
    let [join, call] = &reqs[..] else { panic!("{reqs:?}") };
    let RequestKind::Join(j) = &join.kind else { panic!() };
    assert!(j.is_caller && j.need_record);
    assert_eq!((j.rtc_type, j.extend.as_deref()), (Some(RtcType::Voip2Voip), Some("x")));
    let RequestKind::Call(c) = &call.kind else { panic!() };
    assert_eq!(c.callee, CalleeRequest::Devices(vec!["b".into(), "c".into()]));
    assert_eq!(c.caller_user_info.as_ref().unwrap().to_value()["role"], 1);
    assert_eq!(v.view(T, "vd").unwrap().state, DeviceState::Calling);
    assert!(matches!(v.call(T, "vd", order(CalleeRequest::Devices(vec![])), 0), Err(VoipError::WrongState { .. })));

    v.deliver(T, "vd", &ServerMessage::Ringing { uuid: join.uuid.clone(), channel_id: "ch".into() }, 200);
    let answered = ServerMessage::Answered {
        uuid: join.uuid.clone(),
        channel_id: "ch".into(),
        call_id: "c".into(),
        accepted: true,
    };
    v.deliver(T, "vd", &answered, 1000);
    assert_eq!(v.view(T, "vd").unwrap().state, DeviceState::InCall);
    v.handle_timeout(4000);
    assert_eq!(requests(&mut v), ["leaveChannel"]);
    let rec = &v.view(T, "vd").unwrap().calls[0];
    assert_eq!((rec.role, rec.outcome, rec.peer.as_str()), (Role::Caller, CallOutcome::Completed, "b,c"));
}

#[test]
fn a_failed_call_keeps_the_platforms_code_and_cause() {
    let mut v = device(Outcome::Answer);
    v.call(T, "vd", order(CalleeRequest::Phone { number: "139".into(), show: "0571".into(), line: String::new() }), 0)
        .unwrap();
    drain(&mut v);
    let bye =
        ServerMessage::Disconnect { uuid: None, channel_id: "ch".into(), code: 2000109, cause: "callee busy".into() };
    v.deliver(T, "vd", &bye, 10);
    let rec = &v.view(T, "vd").unwrap().calls[0];
    assert_eq!(
        (rec.outcome, rec.code, rec.cause.as_deref()),
        (CallOutcome::Failed, Some(2000109), Some("callee busy"))
    );
    assert_eq!(rec.rtc_type, RtcType::Voip2Pstn);
}

#[test]
fn hanging_up_an_unanswered_call_leaves_and_cancels() {
    let mut v = device(Outcome::Answer);
    v.call(T, "vd", order(CalleeRequest::Devices(vec!["b".into()])), 0).unwrap();
    drain(&mut v);
    v.hangup(T, "vd", 50).unwrap();
    assert_eq!(requests(&mut v), ["leaveChannel", "cancelCall"]);
    assert_eq!(v.view(T, "vd").unwrap().calls[0].outcome, CallOutcome::Canceled);
}

#[test]
fn offline_devices_cannot_call_and_states_are_logged() {
    let mut v = device(Outcome::Offline);
    assert_eq!(v.call(T, "vd", order(CalleeRequest::Devices(vec![])), 0), Err(VoipError::Offline("vd".into())));
    let mut v = device(Outcome::Answer);
    v.deliver(T, "vd", &called("ch"), 0);
    let states: Vec<_> = drain(&mut v)
        .into_iter()
        .filter_map(|a| {
            if let Action::State { from, to, channel_id, .. } = a { Some((from, to, channel_id)) } else { None }
        })
        .collect();
    assert_eq!(states, [(DeviceState::Idle, DeviceState::Ringing, Some("ch".to_string()))]);
    v.hangup(T, "vd", 5).unwrap();
    let ended: Vec<_> = drain(&mut v)
        .into_iter()
        .filter_map(|a| if let Action::State { to, channel_id, .. } = a { Some((to, channel_id)) } else { None })
        .collect();
    assert_eq!(ended, [(DeviceState::Idle, Some("ch".to_string()))], "the call that ended is named");
}

#[test]
fn a_kicked_device_is_offline_until_put_again() {
    let mut v = device(Outcome::Answer);
    v.deliver(T, "vd", &called("ch"), 0);
    v.kicked(T, "vd", 10);
    let view = v.view(T, "vd").unwrap();
    assert!(view.kicked);
    assert_eq!(view.state, DeviceState::Offline);
    assert_eq!((view.calls[0].outcome, view.calls[0].code), (CallOutcome::Failed, Some(3110000)));
    assert!(!v.is_online(T, "vd"));
    assert_eq!(v.deliver(T, "vd", &called("ch2"), 20), None, "the account's messages are the real SDK's now");
    drain(&mut v);
    v.put(T, "vd", None, Behavior::default(), 30);
    assert!(matches!(drain(&mut v).as_slice(), [Action::Presence { online: true, .. }, ..]));
    assert!(v.is_online(T, "vd") && !v.view(T, "vd").unwrap().kicked);
}

#[test]
fn the_same_rtc_id_in_two_tenants_is_two_devices_until_each_is_removed() {
    let (a, b) = (TenantId(0), TenantId(1));
    let mut v = VirtualDevices::new();
    v.put(a, "vd", None, Behavior::default(), 0);
    v.put(b, "vd", None, Behavior::default(), 0);
    v.put(b, "vd", None, Behavior::new(Outcome::Busy), 1); // changed, not a third device
    v.remove(a, "vd").unwrap();
    assert!(!v.contains(a, "vd"));
    assert!(v.contains(b, "vd"), "removing one tenant's device leaves the other's");
    assert!(v.deliver(b, "vd", &called("c1"), 2).is_some(), "the other is still delivered to");
    assert!(v.deliver(a, "vd", &called("c1"), 2).is_none());
    v.remove(b, "vd").unwrap();
    assert!(!v.contains(b, "vd"));
    v.put(a, "vd", None, Behavior::default(), 3);
    assert!(v.contains(a, "vd"), "put again after removal");
    v.clear();
    assert!(!v.contains(a, "vd"));
}
