//! The call engine (docs/architecture.md#sans-io-engine): a sans-IO state machine. The driver feeds it device
//! requests, PSTN events, callback answers and timer expiries with the current time; it returns
//! what to do (messages to devices, PSTN commands, HTTP callbacks, media commands, CDRs).
//! Nothing in here does I/O or reads a clock.

pub mod call;
pub mod cdr;
pub mod codes;
pub mod messages;
pub mod plan;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_json::{Value, json};

use crate::clock::Millis;
use crate::events::NewEvent;
use crate::pstn::{LegId, PstnCommand, PstnEvent, ReleaseReason};
use crate::tenants::TenantId;
use call::{Call, CallState, Caller, Leg, LegState, Outcome, Target};
use plan::Callee;

/// Per-tenant routing: callbacks, bought numbers, own lines.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub name: String,
    pub outbound_callback: Option<String>,
    pub inbound_callback: Option<String>,
    /// Bought numbers and their own inbound callback (overrides the tenant's).
    pub numbers: HashMap<String, Option<String>>,
    /// Per bought number: the announcement a calling phone hears in each situation
    /// (`not_connected`, `no_answer`, `busy`, `rejected`, `unreachable`, `invalid_number`),
    /// instead of the platform's default one of the same name.
    pub announcements: HashMap<String, HashMap<String, String>>,
    pub self_lines: HashSet<String>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long one leg rings before the server gives up on it.
    pub ring_timeout_ms: Millis,
    /// How long the customer's callback may take.
    pub callback_timeout_ms: Millis,
    /// Ended calls kept for the admin API.
    pub recent_calls: usize,
}

/// A device request, decoded by the gateway.
#[derive(Debug, Clone)]
pub struct DeviceInput {
    pub tenant: TenantId,
    pub rtc_id: String,
    pub message_type: String,
    pub body: Value,
    pub media_signal: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    Outbound,
    Inbound,
}

#[derive(Debug, Clone)]
pub enum Input {
    Device(DeviceInput),
    /// A device ACKed a server request (the `called` ACK triggers `ringing`).
    DeviceAck {
        tenant: TenantId,
        rtc_id: String,
        message_type: String,
    },
    DeviceOnline {
        tenant: TenantId,
        rtc_id: String,
    },
    /// Kicked, heartbeat lost, or not back within the disconnect grace.
    DeviceOffline {
        tenant: TenantId,
        rtc_id: String,
    },
    Pstn(PstnEvent),
    /// The customer's callback answered (Ok: its JSON) or failed (Err: why).
    Callback {
        channel_id: String,
        kind: CallbackKind,
        result: Result<Value, String>,
    },
    /// Digits a VoIP device sent in its audio (RFC 4733, from the media server).
    DeviceDtmf {
        channel_id: String,
        rtc_id: String,
        digits: String,
    },
}

/// What the media server is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// A device joined a channel: answer with the joinChannel result (TURN, SDP for sigv 2).
    Join { channel_id: String, tenant: TenantId, rtc_id: String, uuid: String, signal: Value },
    /// sdpCandidate / candidate / reportStatus / stat from a device.
    Signal { channel_id: String, tenant: TenantId, rtc_id: String, uuid: String, api: String, signal: Value },
    /// The call is connected: bridge its parties' audio; record when asked.
    Bridge { channel_id: String, record: bool },
    /// The call is over: tear down every leg.
    Release { channel_id: String },
}

#[derive(Debug, Clone)]
pub enum Output {
    ToDevice { tenant: TenantId, rtc_id: String, message_type: &'static str, body: Value },
    Pstn(PstnCommand),
    Callback { channel_id: String, tenant: TenantId, kind: CallbackKind, url: String, body: Value },
    Media(MediaCommand),
    Cdr { tenant: TenantId, channel_id: String, report: Value },
    Log(NewEvent),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    Ring { channel_id: String, leg: LegId },
    Callback { channel_id: String },
    TimeLimit { channel_id: String },
}

pub struct Engine {
    cfg: EngineConfig,
    routing: Vec<Routing>,
    calls: HashMap<String, Call>,
    recent: VecDeque<String>,
    leg_index: HashMap<LegId, String>,
    /// Which call a device is in (as caller, or as a ringing or answered callee).
    in_call: HashMap<(TenantId, String), String>,
    online: HashSet<(TenantId, String)>,
    timers: BTreeMap<(Millis, u64), Timer>,
    seq: u64,
    next_leg: LegId,
    out: Vec<Output>,
}

fn channel_of(d: &DeviceInput) -> Option<String> {
    d.body
        .get("channelId")
        .and_then(Value::as_str)
        .or_else(|| d.media_signal.as_ref().and_then(|m| m.pointer("/data/channelId")).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn new_channel_id(seq: u64, now: Millis) -> String {
    format!("{:016x}{:016x}", now, seq.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

impl Engine {
    pub fn new(cfg: EngineConfig, routing: Vec<Routing>) -> Self {
        Engine {
            cfg,
            routing,
            calls: HashMap::new(),
            recent: VecDeque::new(),
            leg_index: HashMap::new(),
            in_call: HashMap::new(),
            online: HashSet::new(),
            timers: BTreeMap::new(),
            seq: 0,
            next_leg: 1,
            out: Vec::new(),
        }
    }

    pub fn routing(&self, tenant: TenantId) -> Option<&Routing> {
        self.routing.get(tenant.0)
    }

    /// Changes a tenant's callback URLs at run time (`PUT /admin/callbacks`).
    pub fn set_callbacks(
        &mut self,
        tenant: TenantId,
        outbound: Option<Option<String>>,
        inbound: Option<Option<String>>,
    ) {
        if let Some(r) = self.routing.get_mut(tenant.0) {
            if let Some(o) = outbound {
                r.outbound_callback = o.filter(|u| !u.is_empty());
            }
            if let Some(i) = inbound {
                r.inbound_callback = i.filter(|u| !u.is_empty());
            }
        }
    }

    pub fn set_number_callback(&mut self, tenant: TenantId, number: &str, url: Option<String>) -> bool {
        match self.routing.get_mut(tenant.0).and_then(|r| r.numbers.get_mut(number)) {
            Some(slot) => {
                *slot = url.filter(|u| !u.is_empty());
                true
            }
            None => false,
        }
    }

    // ---- the sans-IO surface ----------------------------------------------------------------

    pub fn handle(&mut self, input: Input, now: Millis) -> Vec<Output> {
        match input {
            Input::Device(d) => self.on_device(d, now),
            Input::DeviceAck { tenant, rtc_id, message_type } => self.on_ack(tenant, &rtc_id, &message_type),
            Input::DeviceOnline { tenant, rtc_id } => {
                self.online.insert((tenant, rtc_id));
            }
            Input::DeviceOffline { tenant, rtc_id } => self.on_offline(tenant, &rtc_id, now),
            Input::Pstn(e) => self.on_pstn(e, now),
            Input::Callback { channel_id, kind, result } => self.on_callback(&channel_id, kind, result, now),
            Input::DeviceDtmf { channel_id, rtc_id, digits } => self.on_device_dtmf(&channel_id, &rtc_id, &digits),
        }
        std::mem::take(&mut self.out)
    }

    /// The earliest timer deadline.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    /// Fires every timer due at `now`, in deadline order, each at its own deadline.
    pub fn handle_timeout(&mut self, now: Millis) -> Vec<(Millis, Vec<Output>)> {
        let mut fired = Vec::new();
        while let Some((&(at, seq), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            let timer = self.timers.remove(&(at, seq)).expect("present");
            self.on_timer(timer, at);
            // Timers of legs or callbacks that already ended fire into nothing.
            if !self.out.is_empty() {
                fired.push((at, std::mem::take(&mut self.out)));
            }
        }
        fired
    }

    /// A phone calls platform number `to` (inbound dialling). Returns the new channelId.
    pub fn start_inbound(&mut self, from: &str, to: &str, now: Millis) -> Result<(String, Vec<Output>), String> {
        let tenant = self
            .routing
            .iter()
            .position(|r| r.numbers.contains_key(to))
            .map(TenantId)
            .ok_or_else(|| format!("{to} is not a number bought by any tenant"))?;
        self.seq += 1;
        let channel_id = new_channel_id(self.seq, now);
        let leg = self.alloc_leg(&channel_id);
        let caller = Caller::Phone { number: from.into(), leg, uuid: format!("pstn-{leg}") };
        let mut call = self.new_call(&channel_id, tenant, "pstn2voip", caller, now);
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

    // ---- device requests ---------------------------------------------------------------------

    fn on_device(&mut self, d: DeviceInput, now: Millis) {
        let Some(channel_id) = channel_of(&d) else {
            if !matches!(d.message_type.as_str(), "stat" | "reportStatus") {
                tracing::debug!(rtc_id = %d.rtc_id, message_type = %d.message_type, "device request without channelId ignored");
            }
            return;
        };
        match d.message_type.as_str() {
            "joinChannel" => self.on_join(d, channel_id, now),
            "call" => self.on_call(d, &channel_id, now),
            "answer" => self.on_answer(d, &channel_id, now),
            "cancelCall" => self.on_leave(&d, &channel_id, true, now),
            "leaveChannel" => self.on_leave(&d, &channel_id, false, now),
            "sdpCandidate" | "candidate" | "reportStatus" | "stat"
                if self.calls.get(&channel_id).is_some_and(|c| c.tenant == d.tenant) =>
            {
                let uuid = d.body.get("uuid").and_then(Value::as_str).unwrap_or_default().to_string();
                self.out.push(Output::Media(MediaCommand::Signal {
                    channel_id,
                    tenant: d.tenant,
                    rtc_id: d.rtc_id,
                    uuid,
                    api: d.message_type,
                    signal: d.media_signal.unwrap_or(Value::Null),
                }));
            }
            _ => {}
        }
    }

    fn on_join(&mut self, d: DeviceInput, channel_id: String, now: Millis) {
        let uuid = d.body.get("uuid").and_then(Value::as_str).unwrap_or_default().to_string();
        let is_caller = d.body.get("isCaller").and_then(Value::as_bool).unwrap_or(false);
        let signal = d.media_signal.clone().unwrap_or(Value::Null);
        if is_caller && !self.calls.contains_key(&channel_id) {
            let rtc_type = d.body.get("alicomRtcType").and_then(Value::as_str).unwrap_or("voip2voip").to_string();
            let user_info = signal.pointer("/data/userInfo").cloned().unwrap_or(json!({}));
            let caller = Caller::Device { rtc_id: d.rtc_id.clone(), uuid: uuid.clone(), user_info };
            let mut call = self.new_call(&channel_id, d.tenant, &rtc_type, caller, now);
            call.need_record = d.body.get("needRecord").and_then(Value::as_bool).unwrap_or(false);
            call.extend = d.body.get("extend").and_then(Value::as_str).unwrap_or_default().to_string();
            self.calls.insert(channel_id.clone(), call);
            self.in_call.insert((d.tenant, d.rtc_id.clone()), channel_id.clone());
            self.log_state(&channel_id, "joining", json!({"caller": d.rtc_id}));
        } else if !is_caller {
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
                self.send_to(
                    tenant,
                    &rtc_id,
                    "peerJoinedChannel",
                    messages::peer_joined(&caller_uuid, &channel_id, &uuid),
                );
            }
        }
        self.out.push(Output::Media(MediaCommand::Join {
            channel_id,
            tenant: d.tenant,
            rtc_id: d.rtc_id,
            uuid,
            signal,
        }));
    }

    /// A request for a call that no longer exists: tell the device so it does not hang.
    fn stale(&mut self, d: &DeviceInput, channel_id: &str) {
        let uuid = d.body.get("uuid").and_then(Value::as_str).map(str::to_string);
        self.send_to(
            d.tenant,
            &d.rtc_id,
            "cs_disconnect",
            messages::disconnect(uuid.as_deref(), channel_id, codes::CALL_ERROR, "the call is over"),
        );
    }

    fn on_call(&mut self, d: DeviceInput, channel_id: &str, now: Millis) {
        let ms = d.media_signal.clone().unwrap_or(Value::Null);
        let Some(call) =
            self.calls.get_mut(channel_id).filter(|c| c.tenant == d.tenant && c.is_caller_device(&d.rtc_id))
        else {
            return self.stale(&d, channel_id);
        };
        if call.state != CallState::Joining {
            return; // a second `call` for the same channel changes nothing
        }
        if let Caller::Device { user_info, .. } = &mut call.caller
            && let Some(u) = ms.pointer("/data/callerUserInfo")
        {
            *user_info = u.clone();
        }
        if let Some(e) =
            ms.pointer("/data/extend").and_then(Value::as_str).or(d.body.get("extend").and_then(Value::as_str))
        {
            call.extend = e.to_string();
        }
        let devices: Vec<String> = ms
            .pointer("/data/calleeDeviceInfo/deviceList")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(|x| x.get("deviceId").and_then(Value::as_str)).map(str::to_string).collect())
            .unwrap_or_default();
        let pstn = ms.pointer("/data/calleePstnInfo").cloned();
        let tenant = call.tenant;
        let targets: Vec<Target> = if let Some(p) = pstn {
            call.rtc_type = "voip2pstn".into();
            let phone = p.get("phone").and_then(Value::as_str).unwrap_or_default().to_string();
            let show = p.get("mcuPhone").and_then(Value::as_str).unwrap_or_default().to_string();
            let line = p
                .get("selfLineName")
                .or(p.get("customLineName"))
                .or(p.get("lineName"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if phone.is_empty() {
                return self.refuse(channel_id, codes::EMPTY_NUMBER, "empty callee number", now);
            }
            let r = &self.routing[tenant.0];
            let valid = r.numbers.contains_key(&show) || (!line.is_empty() && r.self_lines.contains(line));
            if !valid {
                let why = format!("display number {show:?} is not a number bought by this account nor an own line");
                return self.refuse(channel_id, codes::INVALID_DISPLAY_NUMBER, &why, now);
            }
            self.calls.get_mut(channel_id).expect("present").display_number =
                Some(if show.is_empty() { line.to_string() } else { show.clone() });
            vec![Target::Phone { number: phone, display: show }]
        } else {
            devices.into_iter().map(|rtc_id| Target::Device { rtc_id }).collect()
        };
        if targets.is_empty() {
            return self.refuse(channel_id, codes::EMPTY_NUMBER, "empty callee", now);
        }
        if targets.len() > plan::MAX_CALLEES_PER_SEQUENCE {
            return self.refuse(channel_id, codes::TOO_MANY_CALLEES, "too many callees", now);
        }
        let call = self.calls.get_mut(channel_id).expect("present");
        call.pending_sequences = vec![targets.iter().map(target_to_callee).collect()];
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

    fn on_answer(&mut self, d: DeviceInput, channel_id: &str, now: Millis) {
        let result =
            d.media_signal.as_ref().and_then(|m| m.pointer("/data/callResult")).and_then(Value::as_i64).unwrap_or(1);
        let uuid = d.body.get("uuid").and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(call) = self.calls.get(channel_id).filter(|c| c.tenant == d.tenant) else {
            return self.stale(&d, channel_id);
        };
        let Some(leg) = call.device_leg(&d.rtc_id).filter(|l| l.state == LegState::Ringing).map(|l| l.id) else {
            if call.state != CallState::Ended {
                return; // not ringing here (already answered, or ended): nothing to do
            }
            return self.stale(&d, channel_id);
        };
        if result == 1 {
            if call.state == CallState::Active {
                // Someone else was first: this device's call ends as "answered elsewhere".
                self.end_leg(channel_id, leg, Outcome::AnsweredElsewhere, now);
                self.send_to(
                    d.tenant,
                    &d.rtc_id,
                    "cs_disconnect",
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
            self.end_leg(channel_id, leg, Outcome::Rejected, now);
            self.after_leg_ended(channel_id, now);
        }
    }

    /// `leaveChannel` or `cancelCall` from a party of the call.
    fn on_leave(&mut self, d: &DeviceInput, channel_id: &str, cancel: bool, now: Millis) {
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
                LegState::Ringing if !cancel => {
                    self.end_leg(channel_id, leg.0, Outcome::Rejected, now);
                    self.after_leg_ended(channel_id, now);
                }
                _ => {}
            }
        }
    }

    fn on_ack(&mut self, tenant: TenantId, rtc_id: &str, message_type: &str) {
        if message_type != "called" {
            return;
        }
        // The callee's `called` ACK is the moment the caller hears it ringing (as the cloud does).
        let Some(channel_id) = self.in_call.get(&(tenant, rtc_id.to_string())).cloned() else { return };
        self.send_ringing(&channel_id);
    }

    fn send_ringing(&mut self, channel_id: &str) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        if call.ringing_sent || call.state != CallState::Ringing {
            return;
        }
        call.ringing_sent = true;
        if let Caller::Device { rtc_id, uuid, .. } = &call.caller {
            let (tenant, rtc_id, uuid) = (call.tenant, rtc_id.clone(), uuid.clone());
            self.send_to(tenant, &rtc_id, "ringing", messages::ringing(&uuid, channel_id));
        }
    }

    fn on_offline(&mut self, tenant: TenantId, rtc_id: &str, now: Millis) {
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

    fn on_device_dtmf(&mut self, channel_id: &str, rtc_id: &str, digits: &str) {
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

    // ---- PSTN events -------------------------------------------------------------------------

    fn on_pstn(&mut self, e: PstnEvent, now: Millis) {
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
    fn phone_dtmf(&mut self, channel_id: &str, leg: LegId, digit: char, now: Millis) {
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
            self.send_to(tenant, &rtc_id, "cs_dtmf", messages::dtmf(&uuid, channel_id, digit, now));
        }
    }

    // ---- callbacks ---------------------------------------------------------------------------

    fn callback(
        &mut self,
        channel_id: &str,
        tenant: TenantId,
        kind: CallbackKind,
        url: String,
        body: Value,
        now: Millis,
    ) {
        self.timer(now + self.cfg.callback_timeout_ms, Timer::Callback { channel_id: channel_id.into() });
        self.out.push(Output::Callback { channel_id: channel_id.into(), tenant, kind, url, body });
    }

    fn on_callback(&mut self, channel_id: &str, kind: CallbackKind, result: Result<Value, String>, now: Millis) {
        let expected = match kind {
            CallbackKind::Outbound => CallState::Authorizing,
            CallbackKind::Inbound => CallState::Routing,
        };
        let Some(call) = self.calls.get(channel_id).filter(|c| c.state == expected) else {
            tracing::info!(channel_id, ?kind, "late callback answer ignored");
            return;
        };
        let tenant = call.tenant;
        let success = |v: &Value| {
            matches!(v.get("success"), Some(Value::Bool(true)))
                || v.get("success").and_then(Value::as_str) == Some("true")
        };
        self.log(
            channel_id,
            "callback.answer",
            json!({"kind": kind, "result": match &result { Ok(v) => v.clone(), Err(e) => json!({"error": e}) }}),
        );
        match (kind, result) {
            (CallbackKind::Outbound, Ok(v)) if success(&v) => {
                let call = self.calls.get_mut(channel_id).expect("present");
                if let Some(limit) = v
                    .pointer("/model/timeLimit")
                    .and_then(|t| t.as_u64().or_else(|| t.as_str().and_then(|s| s.parse().ok())))
                {
                    call.time_limit_secs = Some(limit);
                }
                if let Some(rec) = v.pointer("/model/needRecord").and_then(Value::as_bool) {
                    call.need_record = rec;
                }
                self.ring_next_sequence(channel_id, now);
            }
            (CallbackKind::Outbound, Ok(v)) => {
                let msg = v
                    .get("message")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                    .unwrap_or("call not allowed")
                    .to_string();
                self.refuse(channel_id, codes::NO_PERMISSION, &msg, now);
            }
            (CallbackKind::Outbound, Err(why)) => {
                tracing::warn!(channel_id, "outbound callback failed: {why}");
                self.refuse(channel_id, codes::SERVER_ERROR, &format!("outbound callback failed: {why}"), now);
            }
            (CallbackKind::Inbound, Ok(v)) if success(&v) => {
                let model = v.get("model").cloned().unwrap_or(Value::Null);
                match plan::parse(&model) {
                    Ok(p) => {
                        let valid = self.check_plan(tenant, p);
                        let call = self.calls.get_mut(channel_id).expect("present");
                        call.warnings.extend(valid.warnings);
                        call.time_limit_secs = model
                            .get("timeLimit")
                            .and_then(|t| t.as_u64().or_else(|| t.as_str().and_then(|s| s.parse().ok())));
                        call.need_record = model.get("needRecord").and_then(Value::as_bool).unwrap_or(false);
                        call.pending_sequences = valid.sequences;
                        if call.pending_sequences.is_empty() {
                            return self.not_connected(channel_id, "the routing plan has no usable callee", now);
                        }
                        self.ring_next_sequence(channel_id, now);
                    }
                    Err(e) => self.not_connected(channel_id, &format!("inbound callback answer unusable: {e}"), now),
                }
            }
            (CallbackKind::Inbound, Ok(_)) => {
                self.not_connected(channel_id, "the inbound callback refused the call", now)
            }
            (CallbackKind::Inbound, Err(why)) => {
                self.not_connected(channel_id, &format!("inbound callback failed: {why}"), now)
            }
        }
    }

    /// Drops PSTN callees whose presenting number the tenant does not own.
    fn check_plan(&self, tenant: TenantId, mut p: plan::Plan) -> plan::Plan {
        let r = &self.routing[tenant.0];
        let mut dropped = Vec::new();
        for group in &mut p.sequences {
            group.retain(|c| match c {
                Callee::Pstn { platform_number, self_line, phone_number } => {
                    let ok = r.numbers.contains_key(platform_number) || self_line.as_ref().is_some_and(|l| r.self_lines.contains(l));
                    if !ok {
                        dropped.push(format!("PSTN callee {phone_number}: {platform_number:?} is not a bought number of this account; skipped"));
                    }
                    ok
                }
                Callee::Voip { .. } => true,
            });
        }
        p.sequences.retain(|g| !g.is_empty());
        p.warnings.extend(dropped);
        p
    }

    // ---- ringing -----------------------------------------------------------------------------

    fn ring_next_sequence(&mut self, channel_id: &str, now: Millis) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        if call.pending_sequences.is_empty() {
            return self.finish_unanswered(channel_id, now);
        }
        let group = call.pending_sequences.remove(0);
        call.current_sequence += 1;
        call.state = CallState::Ringing;
        let (tenant, sequence) = (call.tenant, call.current_sequence);
        let caller_info = match &call.caller {
            Caller::Device { rtc_id, uuid, user_info } => {
                (json!({"isPstn": false, "rtcId": rtc_id, "uuid": uuid}), user_info.clone())
            }
            Caller::Phone { number, uuid, .. } => (
                json!({"isPstn": true, "phoneNumber": number, "uuid": uuid}),
                json!({"platform": "pstn", "deviceId": number, "userId": uuid, "role": 1}),
            ),
        };
        let display = call.display_number.clone().unwrap_or_default();
        let caller_is_phone = matches!(call.caller, Caller::Phone { .. });
        let rtc_type = call.rtc_type.clone();
        self.log_state(
            channel_id,
            "ringing",
            json!({"sequence": sequence, "callees": group.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>()}),
        );
        for callee in group {
            let leg = self.alloc_leg(channel_id);
            let target = match &callee {
                Callee::Voip { rtc_id } => Target::Device { rtc_id: rtc_id.clone() },
                Callee::Pstn { phone_number, platform_number, self_line } => Target::Phone {
                    number: phone_number.clone(),
                    display: if platform_number.is_empty() {
                        self_line.clone().unwrap_or_default()
                    } else {
                        platform_number.clone()
                    },
                },
            };
            let call_id = format!("call-{channel_id}-{leg}");
            self.calls.get_mut(channel_id).expect("present").legs.push(Leg {
                id: leg,
                target: target.clone(),
                state: LegState::Ringing,
                sequence,
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
                    if self.in_call.get(&key).is_some_and(|c| c != channel_id) {
                        self.end_leg(channel_id, leg, Outcome::Busy, now);
                        continue;
                    }
                    self.in_call.insert(key, channel_id.into());
                    let kind = if caller_is_phone { "pstn2voip" } else { rtc_type.as_str() };
                    let body =
                        messages::called(kind, caller_info.0.clone(), channel_id, &call_id, caller_info.1.clone());
                    self.send_to(tenant, &rtc_id, "called", body);
                }
                Target::Phone { number, display: show } => {
                    let from = if caller_is_phone { display.clone() } else { show };
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
    fn after_leg_ended(&mut self, channel_id: &str, now: Millis) {
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

    fn answer_leg(&mut self, channel_id: &str, leg: LegId, now: Millis) {
        let Some(call) = self.calls.get_mut(channel_id) else { return };
        call.state = CallState::Active;
        call.answered_ms = Some(now);
        let (tenant, limit, record) = (call.tenant, call.time_limit_secs, call.need_record);
        let Some(l) = call.leg_mut(leg) else { return };
        l.state = LegState::Answered;
        l.answered_ms = Some(now);
        let target = l.target.clone();
        let call_id = l.call_id.clone();
        if let Target::Phone { .. } = target {
            l.joined = true;
        }
        call.rtc_type = match (&call.caller, &target) {
            (Caller::Device { .. }, Target::Device { .. }) => "voip2voip",
            (Caller::Device { .. }, Target::Phone { .. }) => "voip2pstn",
            (Caller::Phone { .. }, Target::Device { .. }) => "pstn2voip",
            (Caller::Phone { .. }, Target::Phone { .. }) => "pstn2pstn",
        }
        .into();
        let caller = call.caller.clone();
        let others: Vec<(LegId, Target)> = call
            .legs
            .iter()
            .filter(|o| o.id != leg && o.state == LegState::Ringing)
            .map(|o| (o.id, o.target.clone()))
            .collect();
        self.log_state(channel_id, "active", json!({"answeredBy": target.label()}));
        match &caller {
            Caller::Device { rtc_id, uuid, .. } => {
                self.send_to(tenant, rtc_id, "answered", messages::answered(uuid, channel_id, &call_id, 1));
                if let Target::Phone { .. } = target {
                    // A phone has no joinChannel of its own: it has joined when it answers.
                    self.send_to(
                        tenant,
                        rtc_id,
                        "peerJoinedChannel",
                        messages::peer_joined(uuid, channel_id, &format!("pstn-{leg}")),
                    );
                }
            }
            Caller::Phone { leg: caller_leg, .. } => {
                self.out.push(Output::Pstn(PstnCommand::Connected { leg: *caller_leg }));
            }
        }
        for (other, t) in others {
            self.end_leg(channel_id, other, Outcome::AnsweredElsewhere, now);
            match t {
                Target::Device { rtc_id } => self.send_to(
                    tenant,
                    &rtc_id,
                    "cs_disconnect",
                    messages::disconnect(None, channel_id, codes::ANSWERED_ELSEWHERE, "answered on another device"),
                ),
                Target::Phone { .. } => self
                    .out
                    .push(Output::Pstn(PstnCommand::Release { leg: other, reason: ReleaseReason::AnsweredElsewhere })),
            }
        }
        self.call_pending_clear(channel_id);
        if let Some(secs) = limit.filter(|s| *s > 0) {
            self.timer(now + secs * 1000, Timer::TimeLimit { channel_id: channel_id.into() });
        }
        self.out.push(Output::Media(MediaCommand::Bridge { channel_id: channel_id.into(), record }));
    }

    fn call_pending_clear(&mut self, channel_id: &str) {
        if let Some(c) = self.calls.get_mut(channel_id) {
            c.pending_sequences.clear();
        }
    }

    fn end_leg(&mut self, channel_id: &str, leg: LegId, outcome: Outcome, now: Millis) {
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

    // ---- endings -----------------------------------------------------------------------------

    /// The caller gave up before anyone answered: every leg is cancelled.
    fn cancel_by_caller(&mut self, channel_id: &str, now: Millis) {
        self.cancel_legs(channel_id, Outcome::Cancelled, ReleaseReason::Cancelled, now);
        // The callees' SDKs report 2000107 (remote cancel); the CDR says the same.
        self.end_call(channel_id, "cancelled by the caller", Some(codes::CANCELLED), now);
    }

    fn cancel_legs(&mut self, channel_id: &str, outcome: Outcome, reason: ReleaseReason, now: Millis) {
        let Some(call) = self.calls.get(channel_id) else { return };
        let tenant = call.tenant;
        let ringing: Vec<(LegId, Target)> =
            call.legs.iter().filter(|l| l.state == LegState::Ringing).map(|l| (l.id, l.target.clone())).collect();
        for (leg, target) in ringing {
            self.end_leg(channel_id, leg, outcome, now);
            match target {
                Target::Device { rtc_id } => {
                    self.send_to(tenant, &rtc_id, "canceledCall", messages::canceled(channel_id))
                }
                Target::Phone { .. } => self.out.push(Output::Pstn(PstnCommand::Release { leg, reason })),
            }
        }
    }

    /// One side of a connected call hung up: the other side is told, the call ends.
    fn hangup(&mut self, channel_id: &str, by: Party, now: Millis) {
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
                            self.send_to(tenant, rtc_id, "peerLeftChannel", messages::peer_left(uuid, channel_id))
                        }
                        Target::Phone { .. } => self
                            .out
                            .push(Output::Pstn(PstnCommand::Release { leg: *leg, reason: ReleaseReason::CallEnded })),
                    }
                }
            }
            Party::Leg => match &caller {
                Caller::Device { rtc_id, uuid, .. } => {
                    self.send_to(tenant, rtc_id, "peerLeftChannel", messages::peer_left(uuid, channel_id))
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
    fn finish_unanswered(&mut self, channel_id: &str, now: Millis) {
        let Some(call) = self.calls.get(channel_id) else { return };
        let tenant = call.tenant;
        let outcomes: Vec<Outcome> = call.legs.iter().filter_map(|l| l.outcome).collect();
        let has = |o: Outcome| outcomes.contains(&o);
        let (code, cause, announcement) = if has(Outcome::NoAnswer) {
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
                    self.send_to(tenant, &rtc_id, "answered", messages::answered(&uuid, channel_id, &call_id, 2));
                } else {
                    self.send_to(
                        tenant,
                        &rtc_id,
                        "cs_disconnect",
                        messages::disconnect(Some(&uuid), channel_id, code, cause),
                    );
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
    fn refuse(&mut self, channel_id: &str, code: i64, cause: &str, now: Millis) {
        let Some(call) = self.calls.get(channel_id) else { return };
        if let Caller::Device { rtc_id, uuid, .. } = call.caller.clone() {
            let tenant = call.tenant;
            self.send_to(tenant, &rtc_id, "cs_disconnect", messages::disconnect(Some(&uuid), channel_id, code, cause));
        }
        self.end_call(channel_id, cause, Some(code), now);
    }

    /// An inbound call nobody takes: the phone hears the default announcement.
    fn not_connected(&mut self, channel_id: &str, why: &str, now: Millis) {
        let Some(Caller::Phone { leg, .. }) = self.calls.get(channel_id).map(|c| c.caller.clone()) else { return };
        tracing::info!(channel_id, "inbound call not connected: {why}");
        let name = self.announcement(channel_id, "not_connected");
        self.out.push(Output::Pstn(PstnCommand::Announce { leg, name }));
        self.out.push(Output::Pstn(PstnCommand::Release { leg, reason: ReleaseReason::CallEnded }));
        self.end_call(channel_id, why, None, now);
    }

    fn end_call(&mut self, channel_id: &str, reason: &str, code: Option<i64>, now: Millis) {
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
        let report = cdr::report(call);
        call.cdr = Some(report.clone());
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
        self.out.push(Output::Cdr { tenant, channel_id: channel_id.into(), report });
        self.recent.push_back(channel_id.into());
        while self.recent.len() > self.cfg.recent_calls {
            if let Some(old) = self.recent.pop_front()
                && let Some(c) = self.calls.remove(&old)
            {
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
    fn announcement(&self, channel_id: &str, situation: &str) -> String {
        self.calls
            .get(channel_id)
            .and_then(|c| {
                let number = c.display_number.as_ref()?;
                self.routing.get(c.tenant.0)?.announcements.get(number)?.get(situation).cloned()
            })
            .unwrap_or_else(|| situation.to_string())
    }

    // ---- timers ------------------------------------------------------------------------------

    fn timer(&mut self, at: Millis, t: Timer) {
        self.seq += 1;
        self.timers.insert((at, self.seq), t);
    }

    fn on_timer(&mut self, t: Timer, now: Millis) {
        match t {
            Timer::Ring { channel_id, leg } => {
                let Some(call) = self.calls.get(&channel_id) else { return };
                let Some(l) = call.leg(leg).filter(|l| l.state == LegState::Ringing) else { return };
                let (tenant, target) = (call.tenant, l.target.clone());
                self.end_leg(&channel_id, leg, Outcome::NoAnswer, now);
                match target {
                    Target::Device { rtc_id } => {
                        self.send_to(tenant, &rtc_id, "canceledCall", messages::canceled(&channel_id))
                    }
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
                self.on_callback(&channel_id, kind, Err("timed out".into()), now);
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
                        message_type: "cs_disconnect",
                        body: messages::disconnect(Some(uuid), &channel_id, codes::TIME_LIMIT, cause),
                    });
                } else if let Caller::Phone { leg, .. } = &call.caller {
                    releases.push(*leg);
                }
                if let Some(l) = call.answered_leg() {
                    match &l.target {
                        Target::Device { rtc_id } => self.out.push(Output::ToDevice {
                            tenant,
                            rtc_id: rtc_id.clone(),
                            message_type: "cs_disconnect",
                            body: messages::disconnect(l.uuid.as_deref(), &channel_id, codes::TIME_LIMIT, cause),
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

    // ---- helpers -----------------------------------------------------------------------------

    fn new_call(&self, channel_id: &str, tenant: TenantId, rtc_type: &str, caller: Caller, now: Millis) -> Call {
        Call {
            channel_id: channel_id.into(),
            tenant,
            rtc_type: rtc_type.into(),
            state: CallState::Joining,
            caller,
            legs: Vec::new(),
            display_number: None,
            extend: String::new(),
            created_ms: now,
            answered_ms: None,
            ended_ms: None,
            time_limit_secs: None,
            need_record: false,
            end_reason: None,
            cause_code: None,
            warnings: Vec::new(),
            pending_sequences: Vec::new(),
            current_sequence: 0,
            ringing_sent: false,
            cdr: None,
        }
    }

    fn alloc_leg(&mut self, channel_id: &str) -> LegId {
        let leg = self.next_leg;
        self.next_leg += 1;
        self.leg_index.insert(leg, channel_id.into());
        leg
    }

    fn send_to(&mut self, tenant: TenantId, rtc_id: &str, message_type: &'static str, body: Value) {
        self.out.push(Output::ToDevice { tenant, rtc_id: rtc_id.into(), message_type, body });
    }

    fn log(&mut self, channel_id: &str, kind: &'static str, detail: Value) {
        self.out.push(Output::Log(NewEvent {
            kind,
            channel_id: Some(channel_id.into()),
            detail,
            ..Default::default()
        }));
    }

    /// One log line per call state change, with the channelId, so a user can follow a call.
    fn log_state(&mut self, channel_id: &str, state: &str, detail: Value) {
        tracing::info!(channel_id, state, %detail, "call state");
        self.log(channel_id, "call.state", json!({"state": state, "detail": detail}));
    }

    // ---- views -------------------------------------------------------------------------------

    pub fn call(&self, channel_id: &str) -> Option<&Call> {
        self.calls.get(channel_id)
    }

    /// Active calls first, then recent ones, newest first.
    pub fn calls(&self) -> Vec<&Call> {
        let mut v: Vec<&Call> = self.calls.values().collect();
        v.sort_by_key(|c| (c.state == CallState::Ended, std::cmp::Reverse(c.created_ms)));
        v
    }

    /// The media server records this call (its own default, or because it was asked): the call
    /// view and the CDR say so.
    pub fn mark_recorded(&mut self, channel_id: &str) {
        if let Some(c) = self.calls.get_mut(channel_id) {
            c.need_record = true;
        }
    }

    /// The phone leg of a call a PSTN leg id belongs to.
    pub fn channel_of_leg(&self, leg: LegId) -> Option<&str> {
        self.leg_index.get(&leg).map(String::as_str)
    }

    pub fn reset(&mut self) {
        self.online.clear();
        self.calls.clear();
        self.recent.clear();
        self.leg_index.clear();
        self.in_call.clear();
        self.timers.clear();
        self.out.clear();
    }
}

#[derive(Debug, Clone, Copy)]
enum Party {
    Caller,
    /// The answered callee.
    Leg,
}

fn target_to_callee(t: &Target) -> Callee {
    match t {
        Target::Device { rtc_id } => Callee::Voip { rtc_id: rtc_id.clone() },
        Target::Phone { number, display } => {
            Callee::Pstn { phone_number: number.clone(), platform_number: display.clone(), self_line: None }
        }
    }
}

#[cfg(test)]
mod tests;
