//! Ringing: sequences of callees, answers, rejects, and legs ending.

use serde_json::json;

use super::call::{CallState, Caller, Leg, LegState, Outcome, Target};
use super::plan::{self, Callee};
use super::*;
use crate::signalling::{CallerInfo, RtcType};

impl Engine {
    pub(super) fn ring_next_sequence(&mut self, channel_id: &str, now: Millis) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        if call.pending_sequences.is_empty() {
            return self.finish_unanswered(channel_id, now);
        }
        let plan::Group { sequence, callees: group } = call.pending_sequences.remove(0);
        call.current_sequence = sequence;
        call.sequence_position += 1;
        call.state = CallState::Ringing;
        let (tenant, position) = (call.tenant, call.sequence_position);
        let caller_info = match &call.caller {
            Caller::Device { rtc_id, uuid, user_info } => {
                (CallerInfo::Device { rtc_id: rtc_id.clone(), uuid: uuid.clone() }, user_info.clone())
            }
            Caller::Phone { number, uuid, .. } => (
                CallerInfo::Phone { number: number.clone(), uuid: uuid.clone() },
                json!({"platform": "pstn", "deviceId": number, "userId": uuid, "role": 1}).into(),
            ),
        };
        let display = call.display_number.clone().unwrap_or_default();
        let caller_is_phone = matches!(call.caller, Caller::Phone { .. });
        let rtc_type = call.rtc_type;
        let video = call.video.is_on();
        self.log_state(
            channel_id,
            "ringing",
            json!({
                "sequence": sequence,
                "position": position,
                "callees": group.iter().map(Callee::label).collect::<Vec<_>>(),
            }),
        );
        for callee in group {
            let leg = self.alloc_leg(channel_id);
            let target = callee_target(&callee, Some(&display));
            let call_id = format!("call-{channel_id}-{leg}");
            self.calls.get_mut(channel_id).expect("present").legs.push(Leg {
                id: leg,
                target: target.clone(),
                state: LegState::Ringing,
                sequence,
                position,
                start_ms: now,
                answered_ms: None,
                ended_ms: None,
                outcome: None,
                uuid: None,
                call_id: call_id.clone(),
                joined: false,
            });
            match target {
                Target::Device { rtc_id } => {
                    let key = (tenant, rtc_id.clone());
                    if !self.online.contains(&key) {
                        self.end_leg(channel_id, leg, Outcome::Offline, now);
                        continue;
                    }
                    if self.busy.contains(&key) || self.in_call.get(&key).is_some_and(|c| c != channel_id) {
                        self.end_leg(channel_id, leg, Outcome::Busy, now);
                        continue;
                    }
                    self.in_call.insert(key, channel_id.into());
                    let kind = if caller_is_phone { RtcType::Pstn2Voip } else { rtc_type };
                    let body = messages::called(
                        kind,
                        caller_info.0.clone(),
                        channel_id,
                        &call_id,
                        caller_info.1.clone(),
                        video,
                    );
                    self.send_to(tenant, &rtc_id, body);
                }
                Target::Phone { number, display: from } => {
                    // The phone sees the leg's display number: for a transfer (a phone caller)
                    // that is the plan's platformNumber, "the calling number used for the
                    // transfer"; for a VoIP caller the display number it asked for.
                    self.out.push(Output::Pstn(PstnCommand::Dial {
                        leg,
                        channel_id: channel_id.into(),
                        tenant,
                        from,
                        to: number,
                    }));
                }
            }
            self.timer(now + self.cfg.ring_timeout_ms, Timer::Ring { channel_id: channel_id.into(), leg });
        }
        self.after_leg_ended(channel_id, now);
    }

    /// After a leg ended while ringing: if none of the current sequence still rings, ring the
    /// next sequence, or end the call unanswered.
    pub(super) fn after_leg_ended(&mut self, channel_id: &str, now: Millis) {
        let Some(call) = self.calls.get(channel_id) else { return };
        if call.state != CallState::Ringing || call.legs.iter().any(|l| l.state != LegState::Ended) {
            return;
        }
        if call.pending_sequences.is_empty() {
            self.finish_unanswered(channel_id, now);
        } else {
            self.ring_next_sequence(channel_id, now);
        }
    }

    /// A ringing callee rejected. By default (the SDKs' `CALL_CANCLE_FLAG_WHEN_ONE_CALLEE_REJECT`)
    /// one reject ends a VoIP caller's call: every other ringing callee stops with 2000133 and
    /// the caller hears 2000106. With the other flag, and for a phone caller's routing plan, only
    /// this leg ends and ringing goes on (next sequence when the whole group has ended).
    pub(super) fn callee_rejected(&mut self, channel_id: &str, leg: LegId, now: Millis) {
        self.end_leg(channel_id, leg, Outcome::Rejected, now);
        let Some(call) = self.calls.get(channel_id) else { return };
        let cancels = call.cancel_on_reject && matches!(call.caller, Caller::Device { .. });
        if !cancels || call.state != CallState::Ringing {
            return self.after_leg_ended(channel_id, now);
        }
        let notice = StopNotice::Disconnect(codes::REJECTED_ELSEWHERE, "rejected on another device");
        self.stop_ringing(channel_id, Outcome::RejectedElsewhere, notice, ReleaseReason::Cancelled, now);
        self.call_pending_clear(channel_id);
        self.finish_unanswered(channel_id, now);
    }

    pub(super) fn answer_leg(&mut self, channel_id: &str, leg: LegId, now: Millis) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        call.state = CallState::Active;
        call.answered_ms = Some(now);
        let (tenant, limit, record) = (call.tenant, call.time_limit_secs, call.need_record);
        let Some(l) = call.leg_mut(leg) else { return };
        l.state = LegState::Answered;
        l.answered_ms = Some(now);
        let target = l.target.clone();
        let call_id = l.call_id.clone();
        let ring_ms = now.saturating_sub(l.start_ms);
        if let Target::Phone { .. } = target {
            l.joined = true;
        }
        call.rtc_type = match (&call.caller, &target) {
            (Caller::Device { .. }, Target::Device { .. }) => RtcType::Voip2Voip,
            (Caller::Device { .. }, Target::Phone { .. }) => RtcType::Voip2Pstn,
            (Caller::Phone { .. }, Target::Device { .. }) => RtcType::Pstn2Voip,
            (Caller::Phone { .. }, Target::Phone { .. }) => RtcType::Pstn2Pstn,
        };
        let caller = call.caller.clone();
        self.log_state(channel_id, "active", json!({"answeredBy": target.label(), "ringMs": ring_ms}));
        match &caller {
            Caller::Device { rtc_id, uuid, .. } => {
                self.send_to(tenant, rtc_id, messages::answered(uuid, channel_id, &call_id, true));
                if let Target::Phone { .. } = target {
                    // A phone has no joinChannel of its own: it has joined when it answers.
                    self.send_to(tenant, rtc_id, messages::peer_joined(uuid, channel_id, &format!("pstn-{leg}")));
                }
            }
            Caller::Phone { leg: caller_leg, .. } => {
                self.out.push(Output::Pstn(PstnCommand::Connected { leg: *caller_leg }));
            }
        }
        let notice = StopNotice::Disconnect(codes::ANSWERED_ELSEWHERE, "answered on another device");
        self.stop_ringing(channel_id, Outcome::AnsweredElsewhere, notice, ReleaseReason::AnsweredElsewhere, now);
        self.call_pending_clear(channel_id);
        if let Some(secs) = limit.filter(|s| *s > 0) {
            self.timer(now + secs * 1000, Timer::TimeLimit { channel_id: channel_id.into() });
        }
        self.out.push(Output::Media(MediaCommand::Bridge { channel_id: channel_id.into(), record }));
    }

    /// Stops every leg of the call still ringing: devices are told (`notice`), phones released.
    pub(super) fn stop_ringing(
        &mut self,
        channel_id: &str,
        outcome: Outcome,
        notice: StopNotice,
        reason: ReleaseReason,
        now: Millis,
    ) {
        let Some(call) = self.calls.get(channel_id) else { return };
        let tenant = call.tenant;
        let ringing: Vec<(LegId, Target)> =
            call.legs.iter().filter(|l| l.state == LegState::Ringing).map(|l| (l.id, l.target.clone())).collect();
        for (leg, target) in ringing {
            self.end_leg(channel_id, leg, outcome, now);
            match target {
                Target::Device { rtc_id } => {
                    let message = match notice {
                        StopNotice::Canceled => messages::canceled(channel_id),
                        // No uuid: the device never answered.
                        StopNotice::Disconnect(code, cause) => messages::disconnect(None, channel_id, code, cause),
                    };
                    self.send_to(tenant, &rtc_id, message)
                }
                Target::Phone { .. } => self.out.push(Output::Pstn(PstnCommand::Release { leg, reason })),
            }
        }
    }

    pub(super) fn call_pending_clear(&mut self, channel_id: &str) {
        if let Some(c) = self.calls.get_mut(channel_id) {
            c.pending_sequences.clear();
        }
    }

    pub(super) fn end_leg(&mut self, channel_id: &str, leg: LegId, outcome: Outcome, now: Millis) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        let tenant = call.tenant;
        let Some(l) = call.leg_mut(leg) else { return };
        if l.state == LegState::Ended {
            return;
        }
        l.state = LegState::Ended;
        l.ended_ms = Some(now);
        l.outcome = Some(outcome);
        if let Target::Device { rtc_id } = &l.target {
            let key = (tenant, rtc_id.clone());
            if self.in_call.get(&key).is_some_and(|c| c == channel_id) {
                self.in_call.remove(&key);
            }
        }
        let label = l.target.label().to_string();
        self.log(channel_id, "leg.ended", json!({"leg": leg, "callee": label, "outcome": outcome}));
    }
}

/// What a ringing device hears when its leg is stopped.
#[derive(Debug, Clone, Copy)]
pub(super) enum StopNotice {
    /// `canceledCall` (the caller gave up): the SDK reports 2000107.
    Canceled,
    /// `cs_disconnect{code, cause}`.
    Disconnect(i64, &'static str),
}

/// The leg target a plan callee rings; a PSTN callee without a platform number shows its own
/// line, or else the number the call came in on.
pub(super) fn callee_target(c: &Callee, call_display: Option<&str>) -> Target {
    match c {
        Callee::Voip { rtc_id } => Target::Device { rtc_id: rtc_id.clone() },
        Callee::Pstn { phone_number, platform_number, self_line } => Target::Phone {
            number: phone_number.clone(),
            display: if !platform_number.is_empty() {
                platform_number.clone()
            } else {
                self_line.clone().or_else(|| call_display.map(str::to_string)).unwrap_or_default()
            },
        },
    }
}

pub(super) fn target_to_callee(t: &Target) -> Callee {
    match t {
        Target::Device { rtc_id } => Callee::Voip { rtc_id: rtc_id.clone() },
        Target::Phone { number, display } => {
            Callee::Pstn { phone_number: number.clone(), platform_number: display.clone(), self_line: None }
        }
    }
}
