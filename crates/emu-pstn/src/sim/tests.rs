use emu_core::TenantId;
use emu_core::pstn::ReleaseReason;
use serde_json::json;

use super::*;
use crate::behavior::{Audio, DtmfPress};
use crate::phone::PhoneState;

const PLATFORM: &str = "057188880000";
const PHONE: &str = "13912345678";

use PstnEvent::{Answered, Busy, Dtmf, HungUp, Invalid, Rejected, Ringing, Unreachable};

fn sim() -> PstnSim {
    PstnSim::new(true, Behavior::default())
}

fn dial(sim: &mut PstnSim, leg: LegId, to: &str, now: Millis) -> Vec<PstnEvent> {
    let command = PstnCommand::Dial {
        leg,
        channel_id: format!("ch{leg}"),
        tenant: TenantId(0),
        from: PLATFORM.into(),
        to: to.into(),
    };
    sim.handle(command, now)
}

fn originate(sim: &mut PstnSim, leg: LegId, from: &str, now: Millis) -> Vec<PstnEvent> {
    let command = PstnCommand::Originated {
        leg,
        channel_id: format!("ch{leg}"),
        tenant: TenantId(0),
        from: from.into(),
        to: PLATFORM.into(),
    };
    sim.handle(command, now)
}

fn release(sim: &mut PstnSim, leg: LegId, reason: ReleaseReason, now: Millis) {
    assert_eq!(sim.handle(PstnCommand::Release { leg, reason }, now), vec![]);
}

/// Drives the timers the way the driver does, one deadline at a time, up to `until`.
fn run(sim: &mut PstnSim, until: Millis) -> Vec<(Millis, PstnEvent)> {
    let mut events = Vec::new();
    while let Some(deadline) = sim.poll_timeout().filter(|d| *d <= until) {
        events.extend(sim.handle_timeout(deadline));
    }
    events
}

/// Everything a dial at time 0 leads to within a minute, stamped.
fn timeline(sim: &mut PstnSim, to: &str) -> Vec<(Millis, PstnEvent)> {
    let mut events: Vec<_> = dial(sim, 1, to, 0).into_iter().map(|e| (0, e)).collect();
    events.extend(run(sim, 60_000));
    events
}

fn dtmf(leg: LegId, digit: char) -> PstnEvent {
    Dtmf { leg, digit }
}

fn state(sim: &PstnSim, number: &str) -> PhoneState {
    sim.phone(number).unwrap().state
}

fn last_end(sim: &PstnSim, number: &str) -> Option<CallEnd> {
    sim.phone(number).unwrap().history.last().and_then(|r| r.end)
}

// --- behaviours -------------------------------------------------------------------------------

#[test]
fn default_behavior_rings_two_seconds_then_answers() {
    let mut sim = sim();
    assert_eq!(dial(&mut sim, 1, PHONE, 100), vec![Ringing { leg: 1 }]);
    assert_eq!(state(&sim, PHONE), PhoneState::Ringing);
    assert_eq!(sim.poll_timeout(), Some(2100));
    assert_eq!(sim.handle_timeout(2099), vec![]);
    assert_eq!(sim.handle_timeout(2100), vec![(2100, Answered { leg: 1 })]);
    assert_eq!(sim.poll_timeout(), None);
    let view = sim.phone(PHONE).unwrap();
    assert_eq!((view.state, view.channel_id.as_deref(), view.leg), (PhoneState::InCall, Some("ch1"), Some(1)));
    assert_eq!((view.role, view.peer.as_deref()), (Some(Role::Callee), Some(PLATFORM)));
    assert_eq!(view.behavior_source, BehaviorSource::Default);
}

#[test]
fn every_outcome() {
    let cases = [
        (Outcome::Answer, vec![(0, Ringing { leg: 1 }), (500, Answered { leg: 1 })], PhoneState::InCall, None),
        (Outcome::Busy, vec![(0, Busy { leg: 1 })], PhoneState::Idle, Some(CallEnd::Busy)),
        (
            Outcome::Reject,
            vec![(0, Ringing { leg: 1 }), (500, Rejected { leg: 1 })],
            PhoneState::Idle,
            Some(CallEnd::Rejected),
        ),
        (Outcome::NoAnswer, vec![(0, Ringing { leg: 1 })], PhoneState::Ringing, None),
        (Outcome::Unreachable, vec![(0, Unreachable { leg: 1 })], PhoneState::Idle, Some(CallEnd::Unreachable)),
        (Outcome::PoweredOff, vec![(0, Unreachable { leg: 1 })], PhoneState::Idle, Some(CallEnd::PoweredOff)),
        (Outcome::Invalid, vec![(0, Invalid { leg: 1 })], PhoneState::Idle, Some(CallEnd::Invalid)),
        (Outcome::Manual, vec![(0, Ringing { leg: 1 })], PhoneState::Ringing, None),
    ];
    for (outcome, events, end_state, end) in cases {
        let mut sim = sim();
        sim.set_behavior(PHONE, Behavior::new(outcome).with_ring_ms(500)).unwrap();
        assert_eq!(timeline(&mut sim, PHONE), events, "{outcome:?}");
        assert_eq!(state(&sim, PHONE), end_state, "{outcome:?}");
        assert_eq!(last_end(&sim, PHONE), end, "{outcome:?}");
        assert_eq!(sim.poll_timeout(), None, "{outcome:?} left a timer");
    }
}

#[test]
fn zero_ring_answers_through_a_timer_due_at_once() {
    let mut sim = sim();
    sim.set_behavior(PHONE, Behavior::default().with_ring_ms(0)).unwrap();
    assert_eq!(dial(&mut sim, 1, PHONE, 50), vec![Ringing { leg: 1 }]);
    assert_eq!(sim.poll_timeout(), Some(50));
    assert_eq!(sim.handle_timeout(50), vec![(50, Answered { leg: 1 })]);
}

#[test]
fn composition_ring_answer_press_hang_up() {
    let mut sim = sim();
    let behavior = Behavior::new(Outcome::Answer)
        .with_ring_ms(3000)
        .with_press(DtmfPress { after_ms: 1000, digits: "1#".into(), gap_ms: 250 })
        .with_hangup_after_ms(10_000);
    sim.set_behavior(PHONE, behavior).unwrap();
    assert_eq!(
        timeline(&mut sim, PHONE),
        vec![
            (0, Ringing { leg: 1 }),
            (3000, Answered { leg: 1 }),
            (4000, dtmf(1, '1')),
            (4250, dtmf(1, '#')),
            (13_000, HungUp { leg: 1 }),
        ]
    );
    let view = sim.phone(PHONE).unwrap();
    assert_eq!(view.state, PhoneState::Idle);
    assert_eq!(view.digits_sent, "1#");
    let call = &view.history[0];
    assert_eq!((call.started_at, call.answered_at, call.ended_at), (0, Some(3000), Some(13_000)));
    assert_eq!(call.end, Some(CallEnd::HungUp));
}

#[test]
fn several_presses_and_a_press_at_the_hang_up_instant() {
    let mut sim = sim();
    let behavior = Behavior::default()
        .with_ring_ms(0)
        .with_press(DtmfPress { after_ms: 0, digits: "9".into(), gap_ms: 0 })
        .with_press(DtmfPress { after_ms: 100, digits: "*0".into(), gap_ms: 0 })
        .with_press(DtmfPress { after_ms: 500, digits: "12".into(), gap_ms: 100 })
        .with_hangup_after_ms(500);
    sim.set_behavior(PHONE, behavior).unwrap();
    assert_eq!(
        timeline(&mut sim, PHONE),
        vec![
            (0, Ringing { leg: 1 }),
            (0, Answered { leg: 1 }),
            (0, dtmf(1, '9')),
            (100, dtmf(1, '*')),
            (100, dtmf(1, '0')),
            (500, dtmf(1, '1')),
            (500, HungUp { leg: 1 }),
        ],
        "the press due with the hang-up goes first; the one after it never happens"
    );
    assert_eq!(sim.phone(PHONE).unwrap().digits_sent, "9*01");
}

#[test]
fn audio_is_stored_and_shown() {
    let mut sim = sim();
    sim.set_behavior(PHONE, Behavior::default().with_audio(Audio::Silence)).unwrap();
    assert_eq!(sim.phone(PHONE).unwrap().behavior.audio, Audio::Silence);
    assert_eq!(sim.behavior_of("13800000009").0.audio, Audio::Echo);
}

// --- magic numbers ----------------------------------------------------------------------------

#[test]
fn every_magic_number() {
    let answered = |extra: Vec<(Millis, PstnEvent)>| {
        let mut events = vec![(0, Ringing { leg: 1 }), (1000, Answered { leg: 1 })];
        events.extend(extra);
        events
    };
    let cases = [
        ("13800000001", answered(vec![]), Some(PhoneState::InCall)),
        ("13800000002", vec![(0, Busy { leg: 1 })], Some(PhoneState::Idle)),
        ("13800000003", vec![(0, Ringing { leg: 1 })], Some(PhoneState::Ringing)),
        ("13800000004", vec![(0, Ringing { leg: 1 }), (2000, Rejected { leg: 1 })], Some(PhoneState::Idle)),
        ("13800000005", vec![(0, Unreachable { leg: 1 })], Some(PhoneState::Idle)),
        ("13800000006", vec![(0, Invalid { leg: 1 })], Some(PhoneState::Idle)),
        ("13800000007", answered(vec![(6000, HungUp { leg: 1 })]), Some(PhoneState::Idle)),
        (
            "13800000008",
            answered(vec![
                (2000, dtmf(1, '1')),
                (2300, dtmf(1, '2')),
                (2600, dtmf(1, '3')),
                (2900, dtmf(1, '4')),
                (3200, dtmf(1, '#')),
            ]),
            Some(PhoneState::InCall),
        ),
        ("13800000009", answered(vec![]), Some(PhoneState::InCall)),
        ("13800000010", vec![(0, Unreachable { leg: 1 })], Some(PhoneState::Idle)),
        ("13800000011", vec![(0, Ringing { leg: 1 })], Some(PhoneState::Ringing)),
    ];
    assert_eq!(cases.len(), crate::magic::magic_numbers().len());
    for (number, events, end_state) in cases {
        let mut sim = sim();
        assert_eq!(sim.behavior_of(number).1, BehaviorSource::Magic);
        assert_eq!(timeline(&mut sim, number), events, "{number}");
        assert_eq!(Some(state(&sim, number)), end_state, "{number}");
    }
}

#[test]
fn magic_history_tells_powered_off_from_unreachable() {
    let mut sim = sim();
    dial(&mut sim, 1, "13800000005", 0);
    dial(&mut sim, 2, "13800000010", 0);
    assert_eq!(last_end(&sim, "13800000005"), Some(CallEnd::Unreachable));
    assert_eq!(last_end(&sim, "13800000010"), Some(CallEnd::PoweredOff));
}

#[test]
fn magic_numbers_can_be_switched_off_and_overridden() {
    let mut off = PstnSim::new(false, Behavior::new(Outcome::NoAnswer));
    assert_eq!(off.behavior_of("13800000002"), (Behavior::new(Outcome::NoAnswer), BehaviorSource::Default));
    assert_eq!(dial(&mut off, 1, "13800000002", 0), vec![Ringing { leg: 1 }]);

    let mut sim = sim();
    sim.set_behavior("13800000002", Behavior::default()).unwrap();
    assert_eq!(sim.behavior_of("13800000002").1, BehaviorSource::Configured);
    assert_eq!(dial(&mut sim, 1, "13800000002", 0), vec![Ringing { leg: 1 }]);
    assert!(sim.clear_behavior("13800000002"));
    assert!(!sim.clear_behavior("13800000002"));
    assert_eq!(sim.behavior_of("13800000002").1, BehaviorSource::Magic);
}

// --- timers -----------------------------------------------------------------------------------

#[test]
fn timers_across_phones_fire_in_deadline_then_insertion_order() {
    let mut sim = sim();
    sim.set_behavior("1391", Behavior::new(Outcome::Reject).with_ring_ms(1500)).unwrap();
    sim.set_behavior("1392", Behavior::default().with_ring_ms(1000).with_press(DtmfPress::new("5"))).unwrap();
    sim.set_behavior("1393", Behavior::default().with_ring_ms(500).with_hangup_after_ms(1500)).unwrap();
    dial(&mut sim, 1, "1391", 0);
    dial(&mut sim, 2, "1392", 500);
    dial(&mut sim, 3, "1393", 1000);
    // One late wake-up still yields every event, in order, each stamped with its own deadline.
    assert_eq!(
        sim.handle_timeout(10_000),
        vec![
            (1500, Rejected { leg: 1 }),
            (1500, Answered { leg: 2 }),
            (1500, Answered { leg: 3 }),
            (2500, dtmf(2, '5')),
            (3000, HungUp { leg: 3 }),
        ]
    );
    assert_eq!(sim.poll_timeout(), None);
}

#[test]
fn scripts_start_from_the_answer_deadline_not_from_a_late_wake_up() {
    let mut sim = sim();
    sim.set_behavior(PHONE, Behavior::default().with_ring_ms(1000).with_hangup_after_ms(1000)).unwrap();
    dial(&mut sim, 1, PHONE, 0);
    assert_eq!(sim.handle_timeout(1500), vec![(1000, Answered { leg: 1 })]);
    assert_eq!(sim.poll_timeout(), Some(2000));
    assert_eq!(sim.handle_timeout(2000), vec![(2000, HungUp { leg: 1 })]);
}

#[test]
fn release_cancels_the_legs_timers() {
    let mut sim = sim();
    dial(&mut sim, 1, PHONE, 0);
    dial(&mut sim, 2, "13800000004", 0);
    release(&mut sim, 1, ReleaseReason::Cancelled, 1000);
    assert_eq!(sim.poll_timeout(), Some(2000), "only the other phone's timer is left");
    assert_eq!(run(&mut sim, 60_000), vec![(2000, Rejected { leg: 2 })]);
    assert_eq!(state(&sim, PHONE), PhoneState::Idle);
    let call = &sim.phone(PHONE).unwrap().history[0];
    assert_eq!((call.end, call.ended_at, call.answered_at), (Some(CallEnd::Cancelled), Some(1000), None));

    // A release in the middle of a script stops it too.
    dial(&mut sim, 3, "13800000008", 10_000);
    assert_eq!(
        run(&mut sim, 12_300),
        vec![(11_000, Answered { leg: 3 }), (12_000, dtmf(3, '1')), (12_300, dtmf(3, '2'))]
    );
    release(&mut sim, 3, ReleaseReason::CallEnded, 12_400);
    assert_eq!(sim.poll_timeout(), None);
    assert_eq!(last_end(&sim, "13800000008"), Some(CallEnd::Ended));
    assert_eq!(sim.phone("13800000008").unwrap().digits_sent, "12");
}

#[test]
fn every_release_reason_is_recorded() {
    for (reason, end) in [
        (ReleaseReason::Cancelled, CallEnd::Cancelled),
        (ReleaseReason::AnsweredElsewhere, CallEnd::AnsweredElsewhere),
        (ReleaseReason::NoAnswer, CallEnd::NoAnswer),
        (ReleaseReason::CallEnded, CallEnd::Ended),
    ] {
        let mut sim = sim();
        dial(&mut sim, 1, "13800000003", 0);
        release(&mut sim, 1, reason, 45_000);
        assert_eq!(last_end(&sim, "13800000003"), Some(end));
    }
}

#[test]
fn commands_for_unknown_or_ended_legs_are_ignored() {
    let mut sim = sim();
    release(&mut sim, 99, ReleaseReason::CallEnded, 0);
    assert_eq!(sim.handle(PstnCommand::Connected { leg: 99 }, 0), vec![]);
    assert_eq!(sim.handle(PstnCommand::Announce { leg: 99, name: "x".into() }, 0), vec![]);
    assert_eq!(sim.handle(PstnCommand::DeviceDtmf { leg: 99, digits: "1".into() }, 0), vec![]);
    dial(&mut sim, 1, "13800000004", 0);
    run(&mut sim, 60_000);
    release(&mut sim, 1, ReleaseReason::CallEnded, 3000);
    assert_eq!(sim.phone("13800000004").unwrap().history.len(), 1);
    assert!(sim.phones().iter().all(|p| p.number != "99"));
}

#[test]
fn a_repeated_leg_is_ignored() {
    let mut sim = sim();
    assert_eq!(dial(&mut sim, 1, PHONE, 0), vec![Ringing { leg: 1 }]);
    assert_eq!(dial(&mut sim, 1, PHONE, 10), vec![]);
    assert_eq!(dial(&mut sim, 1, "13800000001", 10), vec![]);
    assert_eq!(originate(&mut sim, 1, "13800000001", 10), vec![]);
    assert_eq!(run(&mut sim, 60_000), vec![(2000, Answered { leg: 1 })]);
    assert_eq!(sim.phones().len(), 1);
}

// --- busy, invalid numbers ---------------------------------------------------------------------

#[test]
fn a_phone_in_a_call_is_busy_for_any_new_dial() {
    let mut sim = sim();
    dial(&mut sim, 1, "13800000011", 0);
    assert_eq!(dial(&mut sim, 2, "13800000011", 100), vec![Busy { leg: 2 }], "ringing, even manual");
    sim.answer("13800000011", 200).unwrap();
    assert_eq!(dial(&mut sim, 3, "13800000011", 300), vec![Busy { leg: 3 }], "answered");
    originate(&mut sim, 4, PHONE, 0);
    assert_eq!(dial(&mut sim, 5, PHONE, 300), vec![Busy { leg: 5 }], "calling");

    let view = sim.phone("13800000011").unwrap();
    assert_eq!((view.state, view.leg), (PhoneState::InCall, Some(1)), "the first call goes on");
    let busy: Vec<_> = view.history.iter().map(|r| (r.channel_id.as_str(), r.end)).collect();
    assert_eq!(busy, vec![("ch2", Some(CallEnd::Busy)), ("ch3", Some(CallEnd::Busy))]);
}

#[test]
fn a_malformed_number_is_invalid_and_leaves_no_phone() {
    let mut sim = sim();
    assert_eq!(dial(&mut sim, 1, "12", 0), vec![Invalid { leg: 1 }]);
    assert_eq!(dial(&mut sim, 2, "abc", 0), vec![Invalid { leg: 2 }]);
    assert!(sim.phones().is_empty());
    assert_eq!(sim.poll_timeout(), None);
}

// --- the phone as the caller ------------------------------------------------------------------

#[test]
fn caller_waits_then_runs_its_script_from_connect() {
    let mut sim = sim();
    let behavior = Behavior::new(Outcome::Busy) // irrelevant for a caller
        .with_press(DtmfPress { after_ms: 500, digits: "12".into(), gap_ms: 100 })
        .with_hangup_after_ms(3000);
    sim.set_behavior(PHONE, behavior).unwrap();
    assert_eq!(originate(&mut sim, 7, PHONE, 1000), vec![]);
    let view = sim.phone(PHONE).unwrap();
    assert_eq!((view.state, view.role, view.peer.as_deref()), (PhoneState::InCall, Some(Role::Caller), Some(PLATFORM)));
    assert_eq!(sim.poll_timeout(), None, "nothing happens before the call connects");

    assert_eq!(sim.handle(PstnCommand::Connected { leg: 7 }, 5000), vec![]);
    assert_eq!(sim.handle(PstnCommand::Connected { leg: 7 }, 6000), vec![], "a second connect is ignored");
    assert_eq!(run(&mut sim, 60_000), vec![(5500, dtmf(7, '1')), (5600, dtmf(7, '2')), (8000, HungUp { leg: 7 })]);
    let call = &sim.phone(PHONE).unwrap().history[0];
    assert_eq!(
        (call.role, call.started_at, call.answered_at, call.ended_at),
        (Role::Caller, 1000, Some(5000), Some(8000))
    );
}

#[test]
fn connected_does_not_restart_a_callees_script() {
    let mut sim = sim();
    dial(&mut sim, 1, "13800000007", 0);
    run(&mut sim, 1000);
    sim.handle(PstnCommand::Connected { leg: 1 }, 1000);
    assert_eq!(run(&mut sim, 60_000), vec![(6000, HungUp { leg: 1 })]);
}

#[test]
fn a_caller_that_never_connects_is_released() {
    let mut sim = sim();
    originate(&mut sim, 1, "13800000007", 0);
    sim.handle(PstnCommand::Announce { leg: 1, name: "not_connected".into() }, 10);
    release(&mut sim, 1, ReleaseReason::CallEnded, 20);
    let view = sim.phone("13800000007").unwrap();
    assert_eq!(view.state, PhoneState::Idle);
    assert_eq!(view.announcements, vec!["not_connected".to_string()]);
    assert_eq!(view.history[0].answered_at, None);
    assert_eq!(sim.poll_timeout(), None);
}

#[test]
fn a_phone_in_a_call_cannot_call_out() {
    let mut sim = sim();
    assert_eq!(sim.can_originate(PHONE), Ok(()));
    dial(&mut sim, 1, PHONE, 0);
    assert_eq!(sim.can_originate(PHONE), Err(PstnError::PhoneBusy { number: PHONE.into(), channel_id: "ch1".into() }));
    assert_eq!(originate(&mut sim, 2, PHONE, 10), vec![HungUp { leg: 2 }]);
    assert!(matches!(sim.can_originate("1"), Err(PstnError::InvalidNumber { .. })));
    assert_eq!(originate(&mut sim, 3, "1", 10), vec![HungUp { leg: 3 }]);
    assert_eq!(sim.phone(PHONE).unwrap().leg, Some(1));
}

// --- what the phone hears ---------------------------------------------------------------------

#[test]
fn device_digits_and_announcements_are_recorded_per_call() {
    let mut sim = sim();
    dial(&mut sim, 1, "13800000001", 0);
    run(&mut sim, 1000);
    sim.handle(PstnCommand::DeviceDtmf { leg: 1, digits: "12".into() }, 1500);
    sim.handle(PstnCommand::DeviceDtmf { leg: 1, digits: "#".into() }, 1600);
    sim.handle(PstnCommand::Announce { leg: 1, name: "recording".into() }, 1700);
    let view = sim.phone("13800000001").unwrap();
    assert_eq!((view.digits_received.as_str(), view.announcements.len()), ("12#", 1));

    release(&mut sim, 1, ReleaseReason::CallEnded, 2000);
    let view = sim.phone("13800000001").unwrap();
    assert_eq!(view.digits_received, "12#", "the last call's digits stay visible");
    assert_eq!(view.history[0].digits_received, "12#");

    dial(&mut sim, 2, "13800000001", 3000);
    let view = sim.phone("13800000001").unwrap();
    assert_eq!((view.digits_received.as_str(), view.announcements.len()), ("", 0), "a new call starts clean");
}

// --- manual control ---------------------------------------------------------------------------

#[test]
fn manual_phone_driven_by_the_test() {
    let mut sim = sim();
    sim.set_behavior("13800000011", Behavior::new(Outcome::Manual).with_press(DtmfPress::new("0"))).unwrap();
    dial(&mut sim, 1, "13800000011", 0);
    assert_eq!(sim.answer("13800000011", 5000), Ok(vec![Answered { leg: 1 }]));
    assert_eq!(run(&mut sim, 6000), vec![(6000, dtmf(1, '0'))], "the script runs after a manual answer");
    assert_eq!(sim.press("13800000011", "12#", 7000), Ok(vec![dtmf(1, '1'), dtmf(1, '2'), dtmf(1, '#')]));
    assert_eq!(sim.phone("13800000011").unwrap().digits_sent, "012#");
    assert_eq!(sim.hangup("13800000011", 8000), Ok(vec![HungUp { leg: 1 }]));
    assert_eq!(last_end(&sim, "13800000011"), Some(CallEnd::HungUp));

    dial(&mut sim, 2, "13800000011", 9000);
    assert_eq!(sim.reject("13800000011", 9500), Ok(vec![Rejected { leg: 2 }]));
    dial(&mut sim, 3, "13800000011", 10_000);
    assert_eq!(sim.hangup("13800000011", 10_500), Ok(vec![Rejected { leg: 3 }]), "hanging up a ringing phone rejects");
    assert_eq!(last_end(&sim, "13800000011"), Some(CallEnd::Rejected));
}

#[test]
fn manual_control_works_on_scripted_phones_and_cancels_their_timers() {
    let mut sim = sim();
    dial(&mut sim, 1, "13800000007", 0);
    assert_eq!(sim.answer("13800000007", 200), Ok(vec![Answered { leg: 1 }]), "before its own answer at 1 s");
    assert_eq!(sim.poll_timeout(), Some(5200), "no second answer; hang-up counted from the manual answer");
    assert_eq!(sim.hangup("13800000007", 300), Ok(vec![HungUp { leg: 1 }]));
    assert_eq!(sim.poll_timeout(), None);

    dial(&mut sim, 2, "13800000001", 0);
    assert_eq!(sim.reject("13800000001", 500), Ok(vec![Rejected { leg: 2 }]));
    assert_eq!(run(&mut sim, 60_000), vec![]);

    originate(&mut sim, 3, PHONE, 0);
    assert_eq!(sim.press(PHONE, "5", 10), Ok(vec![dtmf(3, '5')]), "a caller can press");
    assert_eq!(sim.hangup(PHONE, 20), Ok(vec![HungUp { leg: 3 }]), "and hang up");
}

#[test]
fn manual_control_errors() {
    let mut sim = sim();
    let unknown = "13999999999";
    assert_eq!(sim.answer(unknown, 0), Err(PstnError::UnknownNumber(unknown.into())));
    assert_eq!(sim.hangup(unknown, 0), Err(PstnError::UnknownNumber(unknown.into())));
    assert!(matches!(sim.answer("12", 0), Err(PstnError::InvalidNumber { .. })));
    assert!(matches!(sim.press("13800000001", "1A", 0), Err(PstnError::InvalidDigits { .. })));
    assert!(matches!(sim.press("13800000001", "", 0), Err(PstnError::InvalidDigits { .. })));

    let idle = |number: &str| (number.to_string(), PhoneState::Idle);
    let not_ringing = |e| match e {
        Err(PstnError::NotRinging { number, state }) => (number, state),
        other => panic!("{other:?}"),
    };
    let not_in_call = |e| match e {
        Err(PstnError::NotInCall { number, state }) => (number, state),
        other => panic!("{other:?}"),
    };
    // A magic or configured phone is known even before its first call.
    assert_eq!(not_ringing(sim.answer("13800000001", 0)), idle("13800000001"));
    sim.set_behavior(unknown, Behavior::default()).unwrap();
    assert_eq!(not_ringing(sim.reject(unknown, 0)), idle(unknown));
    assert_eq!(not_in_call(sim.hangup(unknown, 0)), idle(unknown));
    assert_eq!(not_in_call(sim.press(unknown, "1", 0)), idle(unknown));

    dial(&mut sim, 1, "13800000011", 0);
    assert_eq!(not_in_call(sim.press("13800000011", "1", 0)), ("13800000011".into(), PhoneState::Ringing));
    sim.answer("13800000011", 10).unwrap();
    assert_eq!(not_ringing(sim.answer("13800000011", 20)), ("13800000011".into(), PhoneState::InCall));
    assert_eq!(not_ringing(sim.reject("13800000011", 20)), ("13800000011".into(), PhoneState::InCall));
    assert_eq!(sim.phone("13800000011").unwrap().state, PhoneState::InCall, "errors change nothing");
}

#[test]
fn errors_carry_an_http_status_and_a_readable_message() {
    let mut sim = sim();
    let invalid = sim.set_behavior("x", Behavior::default()).unwrap_err();
    assert_eq!(
        (invalid.http_status(), invalid.to_string().as_str()),
        (400, r#"invalid phone number "x": only digits and an optional leading + are allowed"#)
    );
    let unknown = sim.answer("13999999999", 0).unwrap_err();
    assert_eq!(
        (unknown.http_status(), unknown.to_string().as_str()),
        (404, "phone 13999999999 is unknown: it has never been called and has no behavior set")
    );
    let idle = sim.hangup("13800000001", 0).unwrap_err();
    assert_eq!(
        (idle.http_status(), idle.to_string().as_str()),
        (409, "phone 13800000001 is not in a call (it is idle)")
    );
}

// --- behaviours at run time, views, reset -----------------------------------------------------

#[test]
fn set_behavior_validates() {
    let mut sim = sim();
    let bad = Behavior::default().with_audio(Audio::ToneHz(10));
    let error = sim.set_behavior(PHONE, bad).unwrap_err();
    assert_eq!(error.to_string(), "invalid behavior: audio.tone_hz: 10 Hz is outside 50..=4000 Hz");
    assert_eq!(sim.behavior_of(PHONE).1, BehaviorSource::Default, "nothing changed");
    let parsed: Result<Behavior, _> = serde_json::from_value(json!({"then": "answer", "dtmf": [{"digits": "1#"}]}));
    sim.set_behavior(PHONE, parsed.unwrap()).unwrap();
    assert_eq!(sim.behavior_of(PHONE).0.dtmf, vec![DtmfPress::new("1#")]);
}

#[test]
fn a_behavior_change_applies_from_the_next_call() {
    let mut sim = sim();
    dial(&mut sim, 1, PHONE, 0);
    sim.set_behavior(PHONE, Behavior::new(Outcome::Busy)).unwrap();
    assert_eq!(run(&mut sim, 60_000), vec![(2000, Answered { leg: 1 })]);
    release(&mut sim, 1, ReleaseReason::CallEnded, 3000);
    assert_eq!(dial(&mut sim, 2, PHONE, 4000), vec![Busy { leg: 2 }]);
}

#[test]
fn phones_lists_called_and_configured_phones_in_order() {
    let mut sim = sim();
    sim.set_behavior("13900000002", Behavior::default()).unwrap();
    dial(&mut sim, 1, "13800000002", 0);
    dial(&mut sim, 2, "13900000002", 0);
    dial(&mut sim, 3, "13700000000", 0);
    let numbers: Vec<_> = sim.phones().into_iter().map(|p| (p.number, p.behavior_source)).collect();
    assert_eq!(
        numbers,
        vec![
            ("13700000000".to_string(), BehaviorSource::Default),
            ("13800000002".to_string(), BehaviorSource::Magic),
            ("13900000002".to_string(), BehaviorSource::Configured),
        ]
    );
    let never_called = sim.phone("13600000000").unwrap();
    assert_eq!((never_called.state, never_called.history.len()), (PhoneState::Idle, 0));
    assert!(matches!(sim.phone("1-2"), Err(PstnError::InvalidNumber { .. })));
}

#[test]
fn from_config_and_reset() {
    let config = PstnConfig {
        magic_numbers: true,
        default_behavior: json!({"ring_ms": 1000, "then": "answer"}),
        phones: vec![json!({"number": "13800000002", "behavior": {"then": "reject", "ring_ms": 500}})],
    };
    let mut sim = PstnSim::from_config(&config).unwrap();
    assert_eq!(
        sim.behavior_of("13800000002"),
        (Behavior::new(Outcome::Reject).with_ring_ms(500), BehaviorSource::Configured)
    );
    assert_eq!(sim.behavior_of(PHONE), (Behavior::default().with_ring_ms(1000), BehaviorSource::Default));

    sim.clear_behavior("13800000002");
    sim.set_behavior(PHONE, Behavior::new(Outcome::Manual)).unwrap();
    dial(&mut sim, 1, PHONE, 0);
    dial(&mut sim, 2, "13800000001", 0);
    sim.reset();
    assert_eq!(sim.behavior_of("13800000002").1, BehaviorSource::Configured, "config phones are back");
    assert_eq!(sim.behavior_of(PHONE).1, BehaviorSource::Default, "run-time behaviours are gone");
    assert_eq!(sim.poll_timeout(), None);
    assert_eq!(sim.phones().len(), 1);
    assert_eq!(dial(&mut sim, 1, PHONE, 0), vec![Ringing { leg: 1 }], "leg ids can be reused after a reset");
}

#[test]
fn from_config_names_the_bad_field() {
    let config = PstnConfig { magic_numbers: true, default_behavior: json!({"ring_ms": "2s"}), phones: vec![] };
    let error = PstnSim::from_config(&config).err().unwrap();
    assert_eq!(error.to_string(), r#"pstn.default_behavior.ring_ms: invalid type: string "2s", expected u64"#);
}
