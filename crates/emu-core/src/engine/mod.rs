//! The call engine (docs/architecture.md#sans-io-engine): a sans-IO state machine. The driver feeds it device
//! requests, PSTN events, callback answers and timer expiries with the current time; it returns
//! what to do (messages to devices, PSTN commands, HTTP callbacks, media commands, CDRs).
//! Nothing in here does I/O or reads a clock.
//!
//! One `impl Engine` per phase of a call, each in its own module:
//! - `device`: device requests (joinChannel, call, answer, leaving, ACKs, offline, DTMF);
//! - `phones`: the simulated PSTN (a phone dialling in, phone events during a call);
//! - `authorize`: the customer's outbound and inbound callbacks, and the plan check;
//! - `ringing`: sequences of callees, answers and rejects, legs ending;
//! - `endings`: cancel, hang-up, unanswered, refused, not connected, and the CDR;
//! - `timers`: ring timeouts, callback timeouts and time limits on the emulator clock.
//!
//! This file holds the types at the boundary (inputs, outputs, routing), the sans-IO surface
//! (`handle`, `poll_timeout`, `handle_timeout`), the admin views and small helpers.

pub mod call;
pub mod cdr;
pub mod codes;
pub mod messages;
pub mod plan;

mod authorize;
mod device;
mod endings;
mod phones;
mod ringing;
mod timers;
mod video;

use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::clock::Millis;
use crate::events::{CallStateDetail, NewEvent};
use crate::media_signal::MediaSignal;
use crate::pstn::{LegId, PstnCommand, PstnEvent, ReleaseReason};
use crate::retention::{Bounded, Limit, Retained};
use crate::signalling::{DeviceRequest, MediaApi, RtcType, ServerMessage};
use crate::tenants::TenantId;
use call::{Call, CallState, Caller};

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
    /// ... weighing at most this many bytes together (their views as JSON).
    pub recent_call_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    Outbound,
    Inbound,
}

/// Whether the engine does anything with a device's ACK of a server request of this type: only
/// the callee's ACK of `called` matters (the caller then hears `ringing`). The gateway passes on
/// only these ([`Input::DeviceAck`]); the others are logged (`envelope.ack`) and end there.
pub fn acts_on_ack(message_type: &str) -> bool {
    message_type == "called"
}

#[derive(Debug, Clone)]
pub enum Input {
    Device(DeviceRequest),
    /// A device ACKed a server request the engine acts on ([`acts_on_ack`]: the `called` ACK
    /// triggers `ringing`).
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
    /// The account is (or no longer is) always busy: calls to it end with "callee busy" as if
    /// it were in another call (a virtual device whose behaviour is `busy`).
    DeviceBusy {
        tenant: TenantId,
        rtc_id: String,
        busy: bool,
    },
    Pstn(PstnEvent),
    /// The customer's callback answered (Ok: its JSON) or failed (Err: why).
    Callback {
        channel_id: String,
        kind: CallbackKind,
        result: Result<Value, CallbackFailure>,
    },
    /// Digits a VoIP device sent in its audio (RFC 4733, from the media server).
    DeviceDtmf {
        channel_id: String,
        rtc_id: String,
        digits: String,
    },
    /// The media server answered a device's offer in a call allowing video: with active video
    /// or without (docs/calls.md#video-calls).
    VideoNegotiated {
        channel_id: String,
        rtc_id: String,
        video: bool,
    },
    /// A device's video reached the other party.
    VideoFlowing {
        channel_id: String,
        rtc_id: String,
    },
}

/// What the media server is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// A device joined a channel: answer with the joinChannel result (TURN, SDP for sigv 2).
    /// `video`: the device may negotiate video (a VoIP↔VoIP video call).
    Join { channel_id: String, tenant: TenantId, rtc_id: String, uuid: String, signal: Box<MediaSignal>, video: bool },
    /// sdpCandidate / candidate / reportStatus / stat from a device.
    Signal {
        channel_id: String,
        tenant: TenantId,
        rtc_id: String,
        uuid: String,
        api: MediaApi,
        signal: Box<MediaSignal>,
    },
    /// The call is connected: bridge its parties' audio; record when asked.
    Bridge { channel_id: String, record: bool },
    /// The call is over: tear down every leg.
    Release { channel_id: String },
}

#[derive(Debug, Clone)]
pub enum Output {
    ToDevice {
        tenant: TenantId,
        rtc_id: String,
        message: ServerMessage,
    },
    Pstn(PstnCommand),
    Callback {
        channel_id: String,
        tenant: TenantId,
        kind: CallbackKind,
        url: String,
        body: Value,
    },
    Media(MediaCommand),
    Cdr {
        tenant: TenantId,
        report: std::sync::Arc<crate::cdr::CdrReport>,
        /// The report as JSON (the receipt's body), serialized once.
        json: Vec<u8>,
    },
    Log(NewEvent),
}

/// Why a customer's callback gave no usable answer. Any of these refuses an outbound call
/// (3999999) and leaves an inbound one not connected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackFailure {
    #[error("connection failed: {0}")]
    Connect(String),
    /// No answer within `calls.callback_timeout_ms` on the emulator clock (or the HTTP client's).
    #[error("timed out")]
    TimedOut,
    #[error("HTTP {0}")]
    Status(u16),
    #[error("invalid JSON answer: {0}")]
    InvalidJson(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Transport(String),
}

/// A phone dialled a number no tenant bought.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a number bought by any tenant")]
pub struct NotABoughtNumber(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    Ring { channel_id: String, leg: LegId },
    Callback { channel_id: String },
    TimeLimit { channel_id: String },
}

pub struct Engine {
    cfg: EngineConfig,
    routing: Vec<Routing>,
    calls: FxHashMap<String, Call>,
    recent: Bounded<String>,
    leg_index: FxHashMap<LegId, String>,
    /// Which call a device is in (as caller, or as a ringing or answered callee).
    in_call: FxHashMap<(TenantId, String), String>,
    online: HashSet<(TenantId, String)>,
    /// Accounts that are busy whatever they do (`Input::DeviceBusy`).
    busy: HashSet<(TenantId, String)>,
    timers: BTreeMap<(Millis, u64), Timer>,
    seq: u64,
    next_leg: LegId,
    out: Vec<Output>,
}

fn new_channel_id(seq: u64, now: Millis) -> String {
    format!("{:016x}{:016x}", now, seq.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

impl Engine {
    pub fn new(cfg: EngineConfig, routing: Vec<Routing>) -> Self {
        let recent = Bounded::new(Limit::new(cfg.recent_calls, cfg.recent_call_bytes));
        Engine {
            cfg,
            routing,
            calls: FxHashMap::default(),
            recent,
            leg_index: FxHashMap::default(),
            in_call: FxHashMap::default(),
            online: HashSet::new(),
            busy: HashSet::new(),
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
            Input::DeviceBusy { tenant, rtc_id, busy } => {
                if busy {
                    self.busy.insert((tenant, rtc_id));
                } else {
                    self.busy.remove(&(tenant, rtc_id));
                }
            }
            Input::Pstn(e) => self.on_pstn(e, now),
            Input::Callback { channel_id, kind, result } => self.on_callback(&channel_id, kind, result, now),
            Input::DeviceDtmf { channel_id, rtc_id, digits } => self.on_device_dtmf(&channel_id, &rtc_id, &digits),
            Input::VideoNegotiated { channel_id, rtc_id, video } => {
                self.on_video_negotiated(&channel_id, &rtc_id, video)
            }
            Input::VideoFlowing { channel_id, rtc_id } => self.on_video_flowing(&channel_id, &rtc_id),
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

    // ---- helpers -----------------------------------------------------------------------------

    fn new_call(&self, channel_id: &str, tenant: TenantId, rtc_type: RtcType, caller: Caller, now: Millis) -> Call {
        Call {
            channel_id: channel_id.into(),
            tenant,
            rtc_type,
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
            sequence_position: 0,
            requested: Vec::new(),
            cancel_on_reject: true,
            ringing_sent: false,
            cdr: None,
            video: Default::default(),
        }
    }

    fn alloc_leg(&mut self, channel_id: &str) -> LegId {
        let leg = self.next_leg;
        self.next_leg += 1;
        self.leg_index.insert(leg, channel_id.into());
        leg
    }

    fn send_to(&mut self, tenant: TenantId, rtc_id: &str, message: ServerMessage) {
        self.out.push(Output::ToDevice { tenant, rtc_id: rtc_id.into(), message });
    }

    fn log(&mut self, channel_id: &str, kind: &'static str, detail: Value) {
        self.out.push(Output::Log(NewEvent {
            kind,
            channel_id: Some(channel_id.into()),
            detail: detail.into(),
            ..Default::default()
        }));
    }

    /// One log line per call state change, with the channelId, so a user can follow a call.
    fn log_state(&mut self, channel_id: &str, state: &'static str, detail: Value) {
        tracing::info!(channel_id, state, %detail, "call state");
        self.out.push(Output::Log(NewEvent {
            kind: "call.state",
            channel_id: Some(channel_id.into()),
            detail: CallStateDetail { state, detail }.into(),
            ..Default::default()
        }));
    }

    // ---- views -------------------------------------------------------------------------------

    /// The ended calls kept, for `/metrics`.
    pub fn retained(&self) -> Retained {
        self.recent.retained("recent_calls")
    }

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
        self.busy.clear();
        self.calls.clear();
        self.recent.clear();
        self.leg_index.clear();
        self.in_call.clear();
        self.timers.clear();
        self.out.clear();
    }
}

#[cfg(test)]
mod tests;
