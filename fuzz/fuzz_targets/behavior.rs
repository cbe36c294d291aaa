//! Phone and virtual-device behaviours (crates/emu-pstn: behavior.rs, parse.rs; crates/emu-voip:
//! behavior.rs), as the admin API and the configuration take them: JSON parsed field by field
//! and validated; what is accepted writes back to JSON that parses to the same behaviour, and
//! then plays out: a phone dialled with it (and connected, DTMF and all) and a virtual device
//! called with it run their timers to the end, whatever the times in it.
#![no_main]

use emu_core::TenantId;
use emu_core::pstn::{PstnCommand, ReleaseReason};
use emu_core::signalling::{CallerInfo, RtcType, ServerMessage};
use emu_pstn::PstnSim;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const NUMBER: &str = "13800000000";
/// Every timer a behaviour can make: ring, answer, hang up, and at most 256 digits.
const MAX_STEPS: usize = 1000;

fn phone(b: emu_pstn::Behavior) {
    let mut sim = PstnSim::new(true, emu_pstn::Behavior::default());
    sim.set_behavior(NUMBER, b).expect("a valid number");
    let leg = 1;
    let dial = PstnCommand::Dial {
        leg,
        channel_id: "ch".into(),
        tenant: TenantId(0),
        from: "057100000000".into(),
        to: NUMBER.into(),
    };
    let mut now = 1_000;
    let mut events = sim.handle(dial, now);
    let mut connected = false;
    for _ in 0..MAX_STEPS {
        if !connected && events.iter().any(|e| matches!(e, emu_core::pstn::PstnEvent::Answered { .. })) {
            connected = true;
            events = sim.handle(PstnCommand::Connected { leg }, now);
            continue;
        }
        let Some(next) = sim.poll_timeout() else { break };
        assert!(next >= now, "a timer in the past: {next} < {now}");
        now = next;
        events = sim
            .handle_timeout(now)
            .into_iter()
            .map(|(at, e)| {
                assert!(at <= now);
                e
            })
            .collect();
    }
    sim.handle(PstnCommand::Release { leg, reason: ReleaseReason::CallEnded }, now);
    assert!(sim.phones().iter().all(|p| p.state == emu_pstn::PhoneState::Idle), "a phone still busy after the release");
}

fn device(b: emu_voip::Behavior) {
    let mut v = emu_voip::VirtualDevices::new();
    v.put(TenantId(0), "vd", None, b, 0);
    let called = ServerMessage::Called {
        rtc_type: RtcType::Voip2Voip,
        caller_info: CallerInfo::Device { rtc_id: "caller".into(), uuid: "u".into() },
        channel_id: "ch".into(),
        call_id: "call".into(),
        caller_user_info: json!({}).into(),
        video: false,
    };
    v.deliver(TenantId(0), "vd", &called, 10);
    let mut now = 10;
    for _ in 0..MAX_STEPS {
        while v.poll_action().is_some() {}
        let Some(next) = v.poll_timeout() else { break };
        assert!(next >= now, "a timer in the past: {next} < {now}");
        now = next;
        v.handle_timeout(now);
    }
    let _ = v.hangup(TenantId(0), "vd", now);
    while v.poll_action().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(b) = serde_json::from_value::<emu_pstn::Behavior>(value.clone()) {
        let back = serde_json::to_value(&b).expect("a behaviour serialises");
        assert_eq!(serde_json::from_value::<emu_pstn::Behavior>(back).ok().as_ref(), Some(&b), "phone round trip");
        phone(b);
    }
    if let Ok(b) = emu_voip::Behavior::from_json(value) {
        let back = serde_json::to_value(&b).expect("a behaviour serialises");
        assert_eq!(emu_voip::Behavior::from_json(back).ok().as_ref(), Some(&b), "device round trip");
        device(b);
    }
});
