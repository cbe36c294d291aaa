//! The simulated PSTN: a phone calling a bought number, and what phones in a call do.

use serde_json::json;

use super::call::{CallState, Caller, LegState, Outcome, Target};
use super::endings::Party;
use super::*;
use crate::signalling::RtcType;

impl Engine {
    /// A phone calls platform number `to` (inbound dialling). Returns the new channelId.
    pub fn start_inbound(
        &mut self,
        from: &str,
        to: &str,
        now: Millis,
    ) -> Result<(String, Vec<Output>), NotABoughtNumber> {
        let tenant = self
            .routing
            .iter()
            .position(|r| r.numbers.contains_key(to))
            .map(TenantId)
            .ok_or_else(|| NotABoughtNumber(to.to_string()))?;
        self.seq += 1;
        let channel_id = new_channel_id(self.seq, now);
        let leg = self.alloc_leg(&channel_id);
        let caller = Caller::Phone { number: from.into(), leg, uuid: format!("pstn-{leg}") };
        let mut call = self.new_call(&channel_id, tenant, RtcType::Pstn2Voip, caller, now);
        call.display_number = Some(to.into());
        call.state = CallState::Routing;
        self.calls.insert(channel_id.clone(), call);
        self.out.push(Output::Pstn(PstnCommand::Originated {
            leg,
            channel_id: channel_id.clone(),
            tenant,
            from: from.into(),
            to: to.into(),
        }));
        self.log_state(&channel_id, "routing", json!({"from": from, "to": to}));
        let url = self.routing[tenant.0]
            .numbers
            .get(to)
            .cloned()
            .flatten()
            .or_else(|| self.routing[tenant.0].inbound_callback.clone());
        match url {
            Some(url) => {
                let body = json!({"phoneNumber": from, "platformNumber": to, "channelId": channel_id});
                self.callback(&channel_id, tenant, CallbackKind::Inbound, url, body, now);
            }
            None => self.not_connected(&channel_id, "no inbound callback is configured", now),
        }
        Ok((channel_id, std::mem::take(&mut self.out)))
    }

    pub(super) fn on_pstn(&mut self, e: PstnEvent, now: Millis) {
        let leg = e.leg();
        let Some(channel_id) = self.leg_index.get(&leg).cloned() else { return };
        let Some(call) = self.calls.get(&channel_id) else { return };
        if call.state == CallState::Ended {
            return;
        }
        let is_caller_phone = matches!(call.caller, Caller::Phone { leg: l, .. } if l == leg);
        match e {
            PstnEvent::HungUp { .. } if is_caller_phone => {
                if call.state == CallState::Active {
                    self.hangup(&channel_id, Party::Caller, now);
                } else {
                    self.cancel_by_caller(&channel_id, now);
                }
            }
            PstnEvent::Dtmf { digit, .. } => self.phone_dtmf(&channel_id, leg, digit, now),
            _ if is_caller_phone => {}
            PstnEvent::Ringing { .. } => self.send_ringing(&channel_id),
            PstnEvent::Answered { .. } => {
                if call.leg(leg).is_some_and(|l| l.state == LegState::Ringing) {
                    if call.state == CallState::Active {
                        self.end_leg(&channel_id, leg, Outcome::AnsweredElsewhere, now);
                        self.out
                            .push(Output::Pstn(PstnCommand::Release { leg, reason: ReleaseReason::AnsweredElsewhere }));
                    } else {
                        self.answer_leg(&channel_id, leg, now);
                    }
                }
            }
            PstnEvent::HungUp { .. } => match call.leg(leg).map(|l| l.state) {
                Some(LegState::Answered) => self.hangup(&channel_id, Party::Leg, now),
                Some(LegState::Ringing) => {
                    self.end_leg(&channel_id, leg, Outcome::Rejected, now);
                    self.after_leg_ended(&channel_id, now);
                }
                _ => {}
            },
            PstnEvent::Busy { .. }
            | PstnEvent::Rejected { .. }
            | PstnEvent::Unreachable { .. }
            | PstnEvent::Invalid { .. } => {
                let outcome = match e {
                    PstnEvent::Busy { .. } => Outcome::Busy,
                    PstnEvent::Rejected { .. } => Outcome::Rejected,
                    PstnEvent::Unreachable { .. } => Outcome::Unreachable,
                    _ => Outcome::Invalid,
                };
                if call.leg(leg).is_some_and(|l| l.state == LegState::Ringing) {
                    self.end_leg(&channel_id, leg, outcome, now);
                    self.after_leg_ended(&channel_id, now);
                }
            }
        }
    }

    /// A phone pressed a digit: the VoIP party of its call gets `cs_dtmf`.
    pub(super) fn phone_dtmf(&mut self, channel_id: &str, leg: LegId, digit: char, now: Millis) {
        let Some(call) = self.calls.get(channel_id) else { return };
        let to = match &call.caller {
            Caller::Device { rtc_id, uuid, .. } if call.answered_leg().is_some_and(|l| l.id == leg) => {
                Some((rtc_id.clone(), uuid.clone()))
            }
            Caller::Phone { leg: caller_leg, .. } if *caller_leg == leg => {
                call.answered_leg().and_then(|l| match &l.target {
                    Target::Device { rtc_id } => Some((rtc_id.clone(), l.uuid.clone().unwrap_or_default())),
                    _ => None,
                })
            }
            _ => None,
        };
        let tenant = call.tenant;
        if let Some((rtc_id, uuid)) = to {
            self.send_to(tenant, &rtc_id, messages::dtmf(&uuid, channel_id, digit, now));
        }
    }
}
