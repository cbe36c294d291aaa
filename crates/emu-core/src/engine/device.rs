//! Device requests: joinChannel, call, answer, leaving, ACKs, going offline, DTMF in audio.

use serde_json::{Value, json};

use crate::media_signal::RawJson;
use crate::signalling::{CallRequest, CalleeRequest, DeviceRequest, Join, MediaApi, MediaMode, RequestKind, RtcType};

use super::call::{CallState, Caller, LegState, Outcome, Target};
use super::endings::Party;
use super::plan;
use super::ringing::target_to_callee;
use super::*;

/// Who sent a device request.
pub(super) struct Requester {
    tenant: TenantId,
    rtc_id: String,
    uuid: String,
}

impl Engine {
    pub(super) fn on_device(&mut self, d: DeviceRequest, now: Millis) {
        let Some(channel_id) = d.channel_id.clone() else {
            if !matches!(d.kind, RequestKind::Media { api: MediaApi::Stat | MediaApi::ReportStatus, .. }) {
                tracing::debug!(rtc_id = %d.rtc_id, kind = ?d.kind, "device request without channelId ignored");
            }
            return;
        };
        let known = self.calls.get(&channel_id).is_some_and(|c| c.tenant == d.tenant);
        let ctx = Requester { tenant: d.tenant, rtc_id: d.rtc_id, uuid: d.uuid };
        match d.kind {
            RequestKind::Join(join) => self.on_join(ctx, join, channel_id, now),
            RequestKind::Call(call) => self.on_call(ctx, call, &channel_id, now),
            RequestKind::Answer { accept } => self.on_answer(ctx, accept, &channel_id, now),
            RequestKind::CancelCall => self.on_leave(&ctx, &channel_id, true, now),
            RequestKind::LeaveChannel => self.on_leave(&ctx, &channel_id, false, now),
            RequestKind::Media { api, signal } if known => {
                self.out.push(Output::Media(MediaCommand::Signal {
                    channel_id,
                    tenant: ctx.tenant,
                    rtc_id: ctx.rtc_id,
                    uuid: ctx.uuid,
                    api,
                    signal,
                }));
            }
            RequestKind::Media { .. } | RequestKind::Other(_) => {}
        }
    }

    pub(super) fn on_join(&mut self, d: Requester, join: Join, channel_id: String, now: Millis) {
        let uuid = d.uuid.clone();
        if join.is_caller && !self.calls.contains_key(&channel_id) {
            let rtc_type = join.rtc_type.unwrap_or(RtcType::Voip2Voip);
            let user_info = join.user_info.unwrap_or_else(RawJson::empty_object);
            let caller = Caller::Device { rtc_id: d.rtc_id.clone(), uuid: uuid.clone(), user_info };
            let mut call = self.new_call(&channel_id, d.tenant, rtc_type, caller, now);
            call.need_record = join.need_record;
            call.extend = join.extend.unwrap_or_default();
            call.video.caller_allowed = join.allow_video && rtc_type == RtcType::Voip2Voip;
            self.calls.insert(channel_id.clone(), call);
            self.in_call.insert((d.tenant, d.rtc_id.clone()), channel_id.clone());
            self.log_state(&channel_id, "joining", json!({"caller": d.rtc_id}));
        } else if !join.is_caller {
            let Some(call) = self.calls.get_mut(&channel_id).filter(|c| c.tenant == d.tenant) else {
                return self.stale(&d, &channel_id);
            };
            let Some(leg) = call.legs.iter_mut().find(|l| {
                matches!(&l.target, Target::Device { rtc_id } if *rtc_id == d.rtc_id) && l.state == LegState::Answered
            }) else {
                return self.stale(&d, &channel_id);
            };
            leg.joined = true;
            leg.uuid = Some(uuid.clone());
            if let Caller::Device { rtc_id, uuid: caller_uuid, .. } = &call.caller {
                let (tenant, rtc_id, caller_uuid) = (call.tenant, rtc_id.clone(), caller_uuid.clone());
                self.send_to(tenant, &rtc_id, messages::peer_joined(&caller_uuid, &channel_id, &uuid));
            }
            // Told of a video call that became audio before it joined.
            if let Some(call) = self.calls.get(&channel_id)
                && call.video.requested
                && call.video.mode == MediaMode::Audio
            {
                let reason = call.video.reason.clone().unwrap_or_default();
                let who = call.caller_label().to_string();
                let m = messages::media_mode(&uuid, &channel_id, MediaMode::Audio, &who, &reason);
                self.send_to(d.tenant, &d.rtc_id, m);
            }
        }
        // A callee answering a video call without allowing video (an audio edition, or
        // answering as audio): the call is audio from here on.
        if !join.is_caller && !join.allow_video && self.calls.get(&channel_id).is_some_and(|c| c.video.is_on()) {
            self.switch_to_audio(&channel_id, &d.rtc_id, &format!("{} answered audio-only", d.rtc_id));
        }
        let video = self.calls.get(&channel_id).is_some_and(|c| c.video_for(&d.rtc_id));
        self.out.push(Output::Media(MediaCommand::Join {
            channel_id,
            tenant: d.tenant,
            rtc_id: d.rtc_id,
            uuid,
            signal: join.signal,
            video,
        }));
    }

    /// A request for a call that no longer exists: tell the device so it does not hang.
    pub(super) fn stale(&mut self, d: &Requester, channel_id: &str) {
        let uuid = Some(d.uuid.as_str()).filter(|u| !u.is_empty());
        self.send_to(
            d.tenant,
            &d.rtc_id,
            messages::disconnect(uuid, channel_id, codes::CALL_ERROR, "the call is over"),
        );
    }

    pub(super) fn on_call(&mut self, d: Requester, req: CallRequest, channel_id: &str, now: Millis) {
        let Some(call) =
            self.calls.get_mut(channel_id).filter(|c| c.tenant == d.tenant && c.is_caller_device(&d.rtc_id))
        else {
            return self.stale(&d, channel_id);
        };
        if call.state != CallState::Joining {
            return; // a second `call` for the same channel changes nothing
        }
        if let Caller::Device { user_info, .. } = &mut call.caller
            && let Some(u) = req.caller_user_info
        {
            *user_info = u;
        }
        if let Some(e) = req.extend {
            call.extend = e;
        }
        call.cancel_on_reject = req.cancel_on_reject;
        if req.allow_video && call.video.caller_allowed && matches!(req.callee, CalleeRequest::Devices(_)) {
            call.video.requested = true;
            call.video.mode = MediaMode::Video;
        }
        let tenant = call.tenant;
        let targets: Vec<Target> = match req.callee {
            CalleeRequest::Phone { number: phone, show, line } => {
                call.rtc_type = RtcType::Voip2Pstn;
                // Whatever stops the call from here on, its CDR names the number dialled and the
                // display number asked for.
                call.display_number = Some(if show.is_empty() { line.clone() } else { show.clone() });
                call.requested = vec![Target::Phone { number: phone.clone(), display: show.clone() }];
                if phone.is_empty() {
                    return self.refuse(channel_id, codes::EMPTY_NUMBER, "empty callee number", now);
                }
                let r = &self.routing[tenant.0];
                let valid = r.numbers.contains_key(&show) || (!line.is_empty() && r.self_lines.contains(&line));
                if !valid {
                    let why = format!("display number {show:?} is not a number bought by this account nor an own line");
                    return self.refuse(channel_id, codes::INVALID_DISPLAY_NUMBER, &why, now);
                }
                vec![Target::Phone { number: phone, display: show }]
            }
            CalleeRequest::Devices(devices) => {
                let targets: Vec<Target> = devices.into_iter().map(|rtc_id| Target::Device { rtc_id }).collect();
                call.requested = targets.clone();
                targets
            }
        };
        if targets.is_empty() {
            return self.refuse(channel_id, codes::EMPTY_NUMBER, "empty callee", now);
        }
        if targets.len() > plan::MAX_CALLEES_PER_SEQUENCE {
            return self.refuse(channel_id, codes::TOO_MANY_CALLEES, "too many callees", now);
        }
        let call = self.calls.get_mut(channel_id).expect("present");
        call.pending_sequences =
            vec![plan::Group { sequence: 1, callees: targets.iter().map(target_to_callee).collect() }];
        match self.routing[tenant.0].outbound_callback.clone() {
            Some(url) => {
                call.state = CallState::Authorizing;
                let callee_infos: Vec<Value> = targets
                    .iter()
                    .map(|t| match t {
                        Target::Device { rtc_id } => json!({"isPstn": false, "voipId": rtc_id}),
                        Target::Phone { number, display } => {
                            json!({"isPstn": true, "platformNumber": display, "phoneNumber": number})
                        }
                    })
                    .collect();
                let body = json!({
                    "communicationType": call.rtc_type,
                    "callerInfo": {"voipId": d.rtc_id},
                    "calleeInfos": callee_infos,
                    "channelId": channel_id,
                    "extend": call.extend,
                });
                self.log_state(channel_id, "authorizing", json!({"url": url}));
                self.callback(channel_id, tenant, CallbackKind::Outbound, url, body, now);
            }
            None => self.ring_next_sequence(channel_id, now),
        }
    }

    pub(super) fn on_answer(&mut self, d: Requester, accept: bool, channel_id: &str, now: Millis) {
        let uuid = d.uuid.clone();
        let Some(call) = self.calls.get(channel_id).filter(|c| c.tenant == d.tenant) else {
            return self.stale(&d, channel_id);
        };
        let Some(leg) = call.device_leg(&d.rtc_id).filter(|l| l.state == LegState::Ringing).map(|l| l.id) else {
            if call.state != CallState::Ended {
                return; // not ringing here (already answered, or ended): nothing to do
            }
            return self.stale(&d, channel_id);
        };
        if accept {
            if call.state == CallState::Active {
                // Someone else was first: this device's call ends as "answered elsewhere".
                self.end_leg(channel_id, leg, Outcome::AnsweredElsewhere, now);
                self.send_to(
                    d.tenant,
                    &d.rtc_id,
                    messages::disconnect(
                        Some(&uuid),
                        channel_id,
                        codes::ANSWERED_ELSEWHERE,
                        "answered on another device",
                    ),
                );
                return;
            }
            if let Some(l) = self.calls.get_mut(channel_id).and_then(|c| c.leg_mut(leg)) {
                l.uuid = Some(uuid);
            }
            self.answer_leg(channel_id, leg, now);
        } else {
            self.callee_rejected(channel_id, leg, now);
        }
    }

    /// `leaveChannel` or `cancelCall` from a party of the call.
    pub(super) fn on_leave(&mut self, d: &Requester, channel_id: &str, cancel: bool, now: Millis) {
        let Some(call) = self.calls.get(channel_id).filter(|c| c.tenant == d.tenant && c.state != CallState::Ended)
        else {
            return;
        };
        if call.is_caller_device(&d.rtc_id) {
            if call.state == CallState::Active {
                self.hangup(channel_id, Party::Caller, now);
            } else {
                self.cancel_by_caller(channel_id, now);
            }
        } else if let Some(leg) = call.device_leg(&d.rtc_id).map(|l| (l.id, l.state)) {
            match leg.1 {
                LegState::Answered => self.hangup(channel_id, Party::Leg, now),
                LegState::Ringing if !cancel => self.callee_rejected(channel_id, leg.0, now),
                _ => {}
            }
        }
    }

    pub(super) fn on_ack(&mut self, tenant: TenantId, rtc_id: &str, message_type: &str) {
        if !super::acts_on_ack(message_type) {
            return;
        }
        // The callee's `called` ACK is the moment the caller hears it ringing (as the cloud does).
        let Some(channel_id) = self.in_call.get(&(tenant, rtc_id.to_string())).cloned() else { return };
        self.send_ringing(&channel_id);
    }

    pub(super) fn send_ringing(&mut self, channel_id: &str) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        if call.ringing_sent || call.state != CallState::Ringing {
            return;
        }
        call.ringing_sent = true;
        if let Caller::Device { rtc_id, uuid, .. } = &call.caller {
            let (tenant, rtc_id, uuid) = (call.tenant, rtc_id.clone(), uuid.clone());
            self.send_to(tenant, &rtc_id, messages::ringing(&uuid, channel_id));
        }
    }

    pub(super) fn on_offline(&mut self, tenant: TenantId, rtc_id: &str, now: Millis) {
        self.online.remove(&(tenant, rtc_id.to_string()));
        let Some(channel_id) = self.in_call.get(&(tenant, rtc_id.to_string())).cloned() else { return };
        let Some(call) = self.calls.get(&channel_id) else { return };
        if call.is_caller_device(rtc_id) {
            if call.state == CallState::Active {
                self.hangup(&channel_id, Party::Caller, now);
            } else {
                self.cancel_by_caller(&channel_id, now);
            }
        } else if let Some((leg, state)) = call.device_leg(rtc_id).map(|l| (l.id, l.state)) {
            if state == LegState::Answered {
                self.hangup(&channel_id, Party::Leg, now);
            } else {
                self.end_leg(&channel_id, leg, Outcome::Offline, now);
                self.after_leg_ended(&channel_id, now);
            }
        }
    }

    pub(super) fn on_device_dtmf(&mut self, channel_id: &str, rtc_id: &str, digits: &str) {
        let Some(call) = self.calls.get(channel_id) else { return };
        let phone_leg = match &call.caller {
            Caller::Phone { leg, .. }
                if call.legs.iter().any(|l| l.answered_ms.is_some() && l.target.label() == rtc_id) =>
            {
                Some(*leg)
            }
            Caller::Device { rtc_id: r, .. } if r == rtc_id => {
                call.answered_leg().filter(|l| matches!(l.target, Target::Phone { .. })).map(|l| l.id)
            }
            _ => None,
        };
        if let Some(leg) = phone_leg {
            self.out.push(Output::Pstn(PstnCommand::DeviceDtmf { leg, digits: digits.into() }));
        }
    }
}
