//! How calls end: cancelled, hung up, unanswered, refused, not connected; the CDR.

use serde_json::json;

use super::call::{CallState, Caller, LegState, Outcome, Target};
use super::ringing::StopNotice;
use super::*;

impl Engine {
    /// The caller gave up before anyone answered: every leg is cancelled.
    pub(super) fn cancel_by_caller(&mut self, channel_id: &str, now: Millis) {
        self.stop_ringing(channel_id, Outcome::Cancelled, StopNotice::Canceled, ReleaseReason::Cancelled, now);
        // The callees' SDKs report 2000107 (remote cancel); the CDR says the same.
        self.end_call(channel_id, "cancelled by the caller", Some(codes::CANCELLED), now);
    }

    /// One side of a connected call hung up: the other side is told, the call ends.
    pub(super) fn hangup(&mut self, channel_id: &str, by: Party, now: Millis) {
        let Some(call) = self.calls.get(channel_id) else { return };
        let tenant = call.tenant;
        let answered = call.answered_leg().map(|l| (l.id, l.target.clone(), l.uuid.clone().unwrap_or_default()));
        let caller = call.caller.clone();
        let who = match by {
            Party::Caller => "caller",
            Party::Leg => "callee",
        };
        match by {
            Party::Caller => {
                if let Some((leg, target, uuid)) = &answered {
                    match target {
                        Target::Device { rtc_id } => {
                            self.send_to(tenant, rtc_id, messages::peer_left(uuid, channel_id))
                        }
                        Target::Phone { .. } => self
                            .out
                            .push(Output::Pstn(PstnCommand::Release { leg: *leg, reason: ReleaseReason::CallEnded })),
                    }
                }
            }
            Party::Leg => match &caller {
                Caller::Device { rtc_id, uuid, .. } => {
                    self.send_to(tenant, rtc_id, messages::peer_left(uuid, channel_id))
                }
                Caller::Phone { leg, .. } => {
                    self.out.push(Output::Pstn(PstnCommand::Release { leg: *leg, reason: ReleaseReason::CallEnded }))
                }
            },
        }
        if let Some((leg, ..)) = answered {
            self.end_leg(channel_id, leg, Outcome::Completed, now);
        }
        self.end_call(channel_id, &format!("hung up by the {who}"), Some(codes::REMOTE_HANGUP), now);
    }

    /// Nobody answered, after every sequence: the caller learns why.
    pub(super) fn finish_unanswered(&mut self, channel_id: &str, now: Millis) {
        let Some(call) = self.calls.get(channel_id) else { return };
        let tenant = call.tenant;
        let outcomes: Vec<Outcome> = call.legs.iter().filter_map(|l| l.outcome).collect();
        let has = |o: Outcome| outcomes.contains(&o);
        let (code, cause, announcement) = if has(Outcome::RejectedElsewhere) {
            (codes::REJECTED, "answer reject", "rejected")
        } else if has(Outcome::NoAnswer) {
            (codes::NO_ANSWER, "no answer", "no_answer")
        } else if has(Outcome::Rejected) {
            (codes::REJECTED, "answer reject", "rejected")
        } else if has(Outcome::Busy) {
            (codes::BUSY, "callee busy", "busy")
        } else if has(Outcome::Invalid) {
            (codes::INVALID_CALLEE, "invalid callee", "invalid_number")
        } else {
            (codes::NOT_REGISTERED, "callee not registered or unreachable", "unreachable")
        };
        match call.caller.clone() {
            Caller::Device { rtc_id, uuid, .. } => {
                if code == codes::REJECTED {
                    let call_id = call.legs.last().map(|l| l.call_id.clone()).unwrap_or_default();
                    self.send_to(tenant, &rtc_id, messages::answered(&uuid, channel_id, &call_id, false));
                } else {
                    self.send_to(tenant, &rtc_id, messages::disconnect(Some(&uuid), channel_id, code, cause));
                }
            }
            Caller::Phone { leg, .. } => {
                let name = self.announcement(channel_id, announcement);
                self.out.push(Output::Pstn(PstnCommand::Announce { leg, name }));
                self.out.push(Output::Pstn(PstnCommand::Release { leg, reason: ReleaseReason::CallEnded }));
            }
        }
        self.end_call(channel_id, cause, Some(code), now);
    }

    /// The call is refused before ringing (callback, invalid display number, …).
    pub(super) fn refuse(&mut self, channel_id: &str, code: i64, cause: &str, now: Millis) {
        let Some(call) = self.calls.get(channel_id) else { return };
        if let Caller::Device { rtc_id, uuid, .. } = call.caller.clone() {
            let tenant = call.tenant;
            self.send_to(tenant, &rtc_id, messages::disconnect(Some(&uuid), channel_id, code, cause));
        }
        self.end_call(channel_id, cause, Some(code), now);
    }

    /// An inbound call nobody takes: the phone hears the default announcement.
    pub(super) fn not_connected(&mut self, channel_id: &str, why: &str, now: Millis) {
        let Some(Caller::Phone { leg, .. }) = self.calls.get(channel_id).map(|c| c.caller.clone()) else { return };
        tracing::info!(channel_id, "inbound call not connected: {why}");
        let name = self.announcement(channel_id, "not_connected");
        self.out.push(Output::Pstn(PstnCommand::Announce { leg, name }));
        self.out.push(Output::Pstn(PstnCommand::Release { leg, reason: ReleaseReason::CallEnded }));
        self.end_call(channel_id, why, None, now);
    }

    pub(super) fn end_call(&mut self, channel_id: &str, reason: &str, code: Option<i64>, now: Millis) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        if call.state == CallState::Ended {
            return;
        }
        call.state = CallState::Ended;
        call.ended_ms = Some(now);
        call.end_reason = Some(reason.into());
        call.cause_code = code;
        for l in call.legs.iter_mut().filter(|l| l.state != LegState::Ended) {
            l.state = LegState::Ended;
            l.ended_ms = Some(now);
            l.outcome.get_or_insert(Outcome::Completed);
        }
        let tenant = call.tenant;
        let report = std::sync::Arc::new(cdr::report(call));
        // Every call the engine's tests end checks the typed CDR against the `json!` one, key
        // order included.
        #[cfg(test)]
        assert_eq!(
            serde_json::to_string(&*report).unwrap(),
            serde_json::to_string(&cdr::json_report(call)).unwrap(),
            "the typed CDR is the json! one"
        );
        call.cdr = Some(std::sync::Arc::clone(&report));
        let participants: Vec<String> = std::iter::once(call.caller_label().to_string())
            .chain(call.legs.iter().map(|l| l.target.label().to_string()))
            .collect();
        for p in participants {
            let key = (tenant, p);
            if self.in_call.get(&key).is_some_and(|c| c == channel_id) {
                self.in_call.remove(&key);
            }
        }
        self.log_state(channel_id, "ended", json!({"reason": reason, "causeCode": code}));
        self.out.push(Output::Media(MediaCommand::Release { channel_id: channel_id.into() }));
        // Serialized once: the receipt's body, and the part of the call's weight it is.
        let mut json = Vec::with_capacity(1024);
        if serde_json::to_writer(&mut json, &*report).is_err() {
            json.clear();
        }
        let weight = self.calls.get_mut(channel_id).map_or(0, |c| weight_with_cdr(c, json.len()));
        self.out.push(Output::Cdr { tenant, report, json });
        let mut evicted = Vec::new();
        self.recent.push_evicting(channel_id.to_string(), weight, |old| evicted.push(old));
        for old in evicted {
            if let Some(c) = self.calls.remove(&old) {
                for l in c.legs {
                    self.leg_index.remove(&l.id);
                }
                if let Caller::Phone { leg, .. } = c.caller {
                    self.leg_index.remove(&leg);
                }
            }
        }
    }

    /// The announcement for `situation` on the platform number the call came in on.
    pub(super) fn announcement(&self, channel_id: &str, situation: &str) -> String {
        self.calls
            .get(channel_id)
            .and_then(|c| {
                let number = c.display_number.as_ref()?;
                self.routing.get(c.tenant.0)?.announcements.get(number)?.get(situation).cloned()
            })
            .unwrap_or_else(|| situation.to_string())
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Party {
    Caller,
    /// The answered callee.
    Leg,
}

/// The call's weight (its JSON length, `json_weight`), its CDR's JSON being `cdr_json_len` bytes
/// long: the call is measured without the report, which is not serialized a second time.
fn weight_with_cdr(call: &mut Call, cdr_json_len: usize) -> usize {
    let Some(cdr) = call.cdr.take() else { return crate::retention::json_weight(call) };
    let without = crate::retention::json_weight(call); // `"cdr":null`
    call.cdr = Some(cdr);
    let weight = without - "null".len() + cdr_json_len;
    // Every call the engine's tests end checks it against the whole call's JSON.
    #[cfg(test)]
    assert_eq!(weight, crate::retention::json_weight(call), "the call's weight is its JSON length");
    weight
}
