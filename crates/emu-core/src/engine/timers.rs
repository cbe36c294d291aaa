//! Timers on the emulator clock: ring timeouts, callback timeouts, time limits.

use super::call::{CallState, Caller, LegState, Outcome, Target};
use super::*;

impl Engine {
    pub(super) fn timer(&mut self, at: Millis, t: Timer) {
        self.seq += 1;
        self.timers.insert((at, self.seq), t);
    }

    pub(super) fn on_timer(&mut self, t: Timer, now: Millis) {
        match t {
            Timer::Ring { channel_id, leg } => {
                let Some(call) = self.calls.get(&channel_id) else { return };
                let Some(l) = call.leg(leg).filter(|l| l.state == LegState::Ringing) else { return };
                let (tenant, target) = (call.tenant, l.target.clone());
                self.end_leg(&channel_id, leg, Outcome::NoAnswer, now);
                match target {
                    Target::Device { rtc_id } => self.send_to(tenant, &rtc_id, messages::canceled(&channel_id)),
                    Target::Phone { .. } => {
                        self.out.push(Output::Pstn(PstnCommand::Release { leg, reason: ReleaseReason::NoAnswer }))
                    }
                }
                self.after_leg_ended(&channel_id, now);
            }
            Timer::Callback { channel_id } => {
                let kind = match self.calls.get(&channel_id).map(|c| c.state) {
                    Some(CallState::Authorizing) => CallbackKind::Outbound,
                    Some(CallState::Routing) => CallbackKind::Inbound,
                    _ => return,
                };
                self.on_callback(&channel_id, kind, Err(CallbackFailure::TimedOut), now);
            }
            Timer::TimeLimit { channel_id } => {
                let Some(call) = self.calls.get(&channel_id).filter(|c| c.state == CallState::Active) else { return };
                let tenant = call.tenant;
                let cause = "call time limit reached";
                let mut releases = Vec::new();
                if let Caller::Device { rtc_id, uuid, .. } = &call.caller {
                    self.out.push(Output::ToDevice {
                        tenant,
                        rtc_id: rtc_id.clone(),
                        message: messages::disconnect(Some(uuid), &channel_id, codes::TIME_LIMIT, cause),
                    });
                } else if let Caller::Phone { leg, .. } = &call.caller {
                    releases.push(*leg);
                }
                if let Some(l) = call.answered_leg() {
                    match &l.target {
                        Target::Device { rtc_id } => self.out.push(Output::ToDevice {
                            tenant,
                            rtc_id: rtc_id.clone(),
                            message: messages::disconnect(l.uuid.as_deref(), &channel_id, codes::TIME_LIMIT, cause),
                        }),
                        Target::Phone { .. } => releases.push(l.id),
                    }
                }
                for leg in releases {
                    self.out.push(Output::Pstn(PstnCommand::Release { leg, reason: ReleaseReason::CallEnded }));
                }
                self.end_call(&channel_id, cause, Some(codes::TIME_LIMIT), now);
            }
        }
    }
}
