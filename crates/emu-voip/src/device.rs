//! The virtual devices: each plays the SDK's side of the protocol (docs/protocol.md#call-flows)
//! by its behaviour, as a sans-IO state machine. It is fed the server messages the platform sends
//! its account and the current time, and returns the device requests its SDK would send, the
//! ACK decision, and presence changes; timers are on the emulator clock (`poll_timeout`).

use std::collections::{BTreeMap, VecDeque};

use emu_core::Millis;
use emu_core::media_signal::{ChannelConfigIn, MediaSignal, SignalData};
use emu_core::signalling::{CallRequest, CalleeRequest, DeviceRequest, Join, RequestKind, RtcType, ServerMessage};
use emu_core::tenants::TenantId;
use hashbrown::{Equivalent, HashMap};
use rustc_hash::FxBuildHasher;
use serde_json::{Value, json};

use crate::behavior::{Behavior, Outcome};
use crate::error::VoipError;
use crate::view::{CallOutcome, CallRecord, DeviceState, DeviceView, Received, Role};

/// Calls kept in a device's history, and server messages in its inbox view.
const HISTORY_KEPT: usize = 50;
const RECEIVED_KEPT: usize = 200;

/// The platform's codes a device's SDK reports (docs/calls.md#what-each-side-hears).
const PEER_LEFT: i64 = 2000099;
const PEER_REJECTED: i64 = 2000106;
const CANCELED: i64 = 2000107;
/// What an SDK reports when another login of its account kicks it.
const KICKED: i64 = 3110000;

/// The call a device is in (ringing, calling or connected).
#[derive(Debug, Clone, PartialEq)]
struct Current {
    channel_id: String,
    /// The device's session id for this call (`body.uuid` of its requests).
    uuid: String,
    role: Role,
    rtc_type: RtcType,
    peer: String,
    started_ms: Millis,
    answered_ms: Option<Millis>,
    /// `answer_then_leave`: answered without joining.
    joined: bool,
}

struct VirtualDevice {
    device_id: String,
    /// A real SDK logged in to the account since: offline until the next `put`.
    kicked: bool,
    behavior: Behavior,
    current: Option<Current>,
    /// Bumped on every state change: a timer armed before it is stale.
    generation: u64,
    history: VecDeque<CallRecord>,
    received: VecDeque<Received>,
    created_ms: Millis,
}

impl VirtualDevice {
    fn state(&self) -> DeviceState {
        match &self.current {
            _ if self.kicked => DeviceState::Offline,
            None if self.behavior.then == Outcome::Offline => DeviceState::Offline,
            None => DeviceState::Idle,
            Some(c) if c.answered_ms.is_some() => DeviceState::InCall,
            Some(c) if c.role == Role::Callee => DeviceState::Ringing,
            Some(_) => DeviceState::Calling,
        }
    }
}

/// What the device does, for the driver to carry out.
#[derive(Debug, Clone)]
pub enum Action {
    /// A request its SDK would send; for the engine, as if it came through the gateway.
    Request(Box<DeviceRequest>),
    /// The device came online (registered) or went offline.
    Presence { tenant: TenantId, rtc_id: String, online: bool },
    /// Whether the platform must treat the account as busy (behaviour `busy`).
    Busy { tenant: TenantId, rtc_id: String, busy: bool },
    /// The device's state changed (for the event log).
    State { tenant: TenantId, rtc_id: String, channel_id: Option<String>, from: DeviceState, to: DeviceState },
}

/// A call a virtual device places (`POST /admin/voip/calls`).
#[derive(Debug, Clone, PartialEq)]
pub struct CallOrder {
    pub channel_id: String,
    pub callee: CalleeRequest,
    pub extend: Option<String>,
    pub need_record: bool,
    /// The native SDKs' cancel flag: one reject ends the call (the default).
    pub cancel_on_reject: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// `ring_ms` is over: do `then`.
    RingOver,
    /// `hangup_after_ms` is over: leave.
    HangUp,
}

type Key = (TenantId, String);

/// A [`Key`] borrowed: every message the platform sends looks its account up here, and this
/// finds it without building a `String`. It hashes as the tuple does (`(TenantId, &str)` and
/// `(TenantId, String)` feed the hasher the same), and compares field by field.
#[derive(Hash)]
struct KeyRef<'a>(TenantId, &'a str);

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// Every virtual device of every tenant.
#[derive(Default)]
pub struct VirtualDevices {
    devices: HashMap<Key, VirtualDevice, FxBuildHasher>,
    timers: BTreeMap<(Millis, u64), (Key, u64, Timer)>,
    seq: u64,
    out: VecDeque<Action>,
}

/// The SDK's `userInfo`, as a virtual device fills it in.
fn user_info(rtc_id: &str, uuid: &str) -> Value {
    json!({"platform": "virtual", "os": "alicom-emu", "osVersion": "", "model": "virtual-device",
           "appkey": "__alicom_appkey", "deviceId": rtc_id, "userId": uuid})
}

/// A random v4-shaped session id, like the SDK's.
/// A virtual device's joinChannel signal: signalling version 1 (no offer), audio only, as the
/// Web SDK's.
fn join_signal(channel_id: &str) -> Box<MediaSignal> {
    let channel_config = ChannelConfigIn { allow_video: Some(0.into()), sig_version: Some(1) };
    Box::new(MediaSignal {
        seq_id: None,
        data: SignalData { channel_id: Some(channel_id.to_string()), channel_config, ..SignalData::default() },
    })
}

fn session_uuid() -> String {
    let h = emu_core::ids::random_hex_upper(32).to_ascii_lowercase();
    format!("{}-{}-4{}-a{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

impl VirtualDevices {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, tenant: TenantId, rtc_id: &str) -> bool {
        self.get(tenant, rtc_id).is_some()
    }

    /// The device of an account. Asked for every message the platform sends.
    fn get(&self, tenant: TenantId, rtc_id: &str) -> Option<&VirtualDevice> {
        self.devices.get(&KeyRef(tenant, rtc_id))
    }

    /// Creates the device (online unless its behaviour is `offline`) or changes its behaviour.
    /// Returns whether it was created.
    pub fn put(
        &mut self,
        tenant: TenantId,
        rtc_id: &str,
        device_id: Option<&str>,
        behavior: Behavior,
        now: Millis,
    ) -> bool {
        let key = (tenant, rtc_id.to_string());
        let (created, was_online, was_busy) = match self.devices.get_mut(&key) {
            Some(d) => {
                let was = (d.behavior.then != Outcome::Offline && !d.kicked, d.behavior.then == Outcome::Busy);
                d.kicked = false;
                if let Some(id) = device_id {
                    d.device_id = id.to_string();
                }
                d.behavior = behavior.clone();
                (false, was.0, was.1)
            }
            None => {
                self.devices.insert(
                    key.clone(),
                    VirtualDevice {
                        device_id: device_id.unwrap_or(rtc_id).to_string(),
                        kicked: false,
                        behavior: behavior.clone(),
                        current: None,
                        generation: 0,
                        history: VecDeque::new(),
                        received: VecDeque::new(),
                        created_ms: now,
                    },
                );
                (true, false, false)
            }
        };
        let (online, busy) = (behavior.then != Outcome::Offline, behavior.then == Outcome::Busy);
        if online != was_online {
            self.out.push_back(Action::Presence { tenant, rtc_id: rtc_id.to_string(), online });
        }
        if busy != was_busy {
            self.out.push_back(Action::Busy { tenant, rtc_id: rtc_id.to_string(), busy });
        }
        created
    }

    /// The device goes offline and is forgotten. Its call, if any, ends as the platform ends a
    /// call whose device went offline.
    pub fn remove(&mut self, tenant: TenantId, rtc_id: &str) -> Result<(), VoipError> {
        let d = self.devices.remove(&(tenant, rtc_id.to_string())).ok_or_else(|| VoipError::NotFound(rtc_id.into()))?;
        if d.behavior.then == Outcome::Busy {
            self.out.push_back(Action::Busy { tenant, rtc_id: rtc_id.to_string(), busy: false });
        }
        if d.behavior.then != Outcome::Offline && !d.kicked {
            self.out.push_back(Action::Presence { tenant, rtc_id: rtc_id.to_string(), online: false });
        }
        Ok(())
    }

    /// A real SDK device logged in to the account and the platform kicked this one (as it kicks
    /// an older login): offline, its call over for it, until the next `put`. The platform has
    /// already taken the account offline: no presence action.
    pub fn kicked(&mut self, tenant: TenantId, rtc_id: &str, now: Millis) {
        let key = (tenant, rtc_id.to_string());
        let Some(d) = self.devices.get_mut(&key) else { return };
        if d.kicked {
            return;
        }
        if d.current.is_some() {
            self.finish(&key, CallOutcome::Failed, Some(KICKED), Some("kicked".into()), now);
        }
        self.transition(&key, |d| d.kicked = true);
    }

    /// The device's account is the device's (not kicked by a real SDK), and it is online.
    pub fn is_online(&self, tenant: TenantId, rtc_id: &str) -> bool {
        self.get(tenant, rtc_id).is_some_and(|d| d.state() != DeviceState::Offline)
    }

    /// The device's DeviceId.
    pub fn device_id(&self, tenant: TenantId, rtc_id: &str) -> Option<&str> {
        self.get(tenant, rtc_id).map(|d| d.device_id.as_str())
    }

    /// The device's behaviour (the media server plays its `audio`).
    pub fn behavior(&self, tenant: TenantId, rtc_id: &str) -> Option<&Behavior> {
        self.get(tenant, rtc_id).map(|d| &d.behavior)
    }

    /// Forgets every device (no presence actions: the caller resets the platform too).
    pub fn clear(&mut self) {
        self.devices.clear();
        self.timers.clear();
        self.out.clear();
    }

    pub fn view(&self, tenant: TenantId, rtc_id: &str) -> Option<DeviceView> {
        let key = (tenant, rtc_id.to_string());
        self.devices.get(&key).map(|d| view(&key, d))
    }

    /// Every device, by tenant and rtcId.
    pub fn list(&self) -> Vec<DeviceView> {
        let mut keys: Vec<&Key> = self.devices.keys().collect();
        keys.sort();
        keys.into_iter().map(|k| view(k, &self.devices[k])).collect()
    }

    /// A server message for the device's account. `None` when the account has no virtual
    /// device; else whether the device ACKs it.
    pub fn deliver(&mut self, tenant: TenantId, rtc_id: &str, msg: &ServerMessage, now: Millis) -> Option<bool> {
        let d = self.devices.get_mut(&KeyRef(tenant, rtc_id)).filter(|d| !d.kicked)?;
        let ack = d.behavior.ack;
        let (code, digit) = match msg {
            ServerMessage::Disconnect { code, .. } => (Some(*code), None),
            ServerMessage::Dtmf { digit, .. } => (None, Some(*digit)),
            _ => (None, None),
        };
        d.received.push_back(Received {
            at_ms: now,
            message_type: msg.message_type(),
            channel_id: msg.channel_id().to_string(),
            code,
            digit,
            acked: ack,
        });
        if d.received.len() > RECEIVED_KEPT {
            d.received.pop_front();
        }
        self.on_message(&(tenant, rtc_id.to_string()), msg, now);
        Some(ack)
    }

    fn on_message(&mut self, key: &Key, msg: &ServerMessage, now: Millis) {
        let Some(d) = self.devices.get(key) else { return };
        let in_this = |ch: &str| d.current.as_ref().is_some_and(|c| c.channel_id == ch);
        match msg {
            ServerMessage::Called { rtc_type, caller_info, channel_id, .. } => {
                if d.current.is_some() || !d.behavior.then.rings() {
                    return;
                }
                let peer = caller_info.peer().to_string();
                let (then, ring_ms) = (d.behavior.then, d.behavior.ring_ms);
                self.begin(
                    key,
                    Current {
                        channel_id: channel_id.clone(),
                        uuid: session_uuid(),
                        role: Role::Callee,
                        rtc_type: *rtc_type,
                        peer,
                        started_ms: now,
                        answered_ms: None,
                        joined: false,
                    },
                );
                if matches!(then, Outcome::Answer | Outcome::Reject | Outcome::AnswerThenLeave) {
                    self.arm(key, now.saturating_add(ring_ms), Timer::RingOver);
                }
            }
            ServerMessage::Answered { channel_id, accepted, .. } if in_this(channel_id) => {
                if *accepted {
                    self.connected(key, now);
                } else {
                    self.finish(key, CallOutcome::Rejected, Some(PEER_REJECTED), None, now);
                }
            }
            ServerMessage::PeerLeft { channel_id, .. } if in_this(channel_id) => {
                let outcome =
                    if d.state() == DeviceState::InCall { CallOutcome::Completed } else { CallOutcome::Failed };
                self.finish(key, outcome, Some(PEER_LEFT), None, now);
            }
            ServerMessage::CanceledCall { channel_id } if in_this(channel_id) => {
                self.finish(key, CallOutcome::Canceled, Some(CANCELED), None, now);
            }
            ServerMessage::Disconnect { channel_id, code, cause, .. } if in_this(channel_id) => {
                let outcome = match d.state() {
                    DeviceState::InCall => CallOutcome::Completed,
                    DeviceState::Ringing => CallOutcome::Canceled,
                    _ => CallOutcome::Failed,
                };
                self.finish(key, outcome, Some(*code), Some(cause.clone()), now);
            }
            _ => {}
        }
    }

    /// Answers a ringing device (its behaviour's `then`, or the admin API's manual answer).
    pub fn answer(&mut self, tenant: TenantId, rtc_id: &str, now: Millis) -> Result<(), VoipError> {
        let key = self.expect_state(tenant, rtc_id, DeviceState::Ringing, "ringing")?;
        self.pick_up(&key, true, now);
        Ok(())
    }

    /// Declines a ringing device's call.
    pub fn reject(&mut self, tenant: TenantId, rtc_id: &str, now: Millis) -> Result<(), VoipError> {
        let key = self.expect_state(tenant, rtc_id, DeviceState::Ringing, "ringing")?;
        self.decline(&key, now);
        Ok(())
    }

    /// Ends what the device is doing: leaves a call, gives up its own unanswered call, or
    /// declines a ringing one (the SDK's `stop()`).
    pub fn hangup(&mut self, tenant: TenantId, rtc_id: &str, now: Millis) -> Result<(), VoipError> {
        let key = (tenant, rtc_id.to_string());
        let d = self.devices.get(&key).ok_or_else(|| VoipError::NotFound(rtc_id.into()))?;
        match d.state() {
            DeviceState::Ringing => self.decline(&key, now),
            DeviceState::InCall => self.leave(&key, now),
            DeviceState::Calling => {
                self.request(&key, RequestKind::LeaveChannel);
                self.request(&key, RequestKind::CancelCall);
                self.finish(&key, CallOutcome::Canceled, None, None, now);
            }
            state => return Err(VoipError::WrongState { rtc_id: rtc_id.into(), state, wanted: "in a call" }),
        }
        Ok(())
    }

    /// Places a call from the device: `joinChannel` as the caller, then `call`, as the SDK does.
    pub fn call(&mut self, tenant: TenantId, rtc_id: &str, order: CallOrder, now: Millis) -> Result<(), VoipError> {
        let key = self.expect_state(tenant, rtc_id, DeviceState::Idle, "idle")?;
        if order.channel_id.is_empty() {
            return Err(VoipError::InvalidCall("empty channelId".into()));
        }
        let (rtc_type, peer) = match &order.callee {
            CalleeRequest::Devices(list) => (RtcType::Voip2Voip, list.join(",")),
            CalleeRequest::Phone { number, .. } => (RtcType::Voip2Pstn, number.clone()),
        };
        let uuid = session_uuid();
        let info = user_info(rtc_id, &uuid);
        let signal = join_signal(&order.channel_id);
        self.begin(
            &key,
            Current {
                channel_id: order.channel_id.clone(),
                uuid,
                role: Role::Caller,
                rtc_type,
                peer,
                started_ms: now,
                answered_ms: None,
                joined: true,
            },
        );
        self.request(
            &key,
            RequestKind::Join(Join {
                is_caller: true,
                rtc_type: Some(rtc_type),
                need_record: order.need_record,
                extend: order.extend.clone(),
                user_info: Some((&info).into()),
                // A virtual device has no camera: its calls are audio.
                allow_video: false,
                signal,
            }),
        );
        let mut caller_user_info = info;
        caller_user_info["role"] = 1.into();
        self.request(
            &key,
            RequestKind::Call(CallRequest {
                callee: order.callee,
                extend: order.extend,
                caller_user_info: Some(caller_user_info.into()),
                cancel_on_reject: order.cancel_on_reject,
                allow_video: false,
            }),
        );
        Ok(())
    }

    /// When the next timer is due.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (key, generation, timer) = entry.remove();
            let Some(d) = self.devices.get(&key) else { continue };
            if d.generation != generation {
                continue;
            }
            match (timer, d.behavior.then) {
                (Timer::RingOver, Outcome::Reject) => self.decline(&key, now),
                (Timer::RingOver, Outcome::AnswerThenLeave) => self.pick_up(&key, false, now),
                (Timer::RingOver, _) => self.pick_up(&key, true, now),
                (Timer::HangUp, _) => self.leave(&key, now),
            }
        }
    }

    /// The next thing to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    fn expect_state(
        &self,
        tenant: TenantId,
        rtc_id: &str,
        want: DeviceState,
        wanted: &'static str,
    ) -> Result<Key, VoipError> {
        let key = (tenant, rtc_id.to_string());
        let d = self.devices.get(&key).ok_or_else(|| VoipError::NotFound(rtc_id.into()))?;
        match d.state() {
            DeviceState::Offline => Err(VoipError::Offline(rtc_id.into())),
            s if s == want => Ok(key),
            state => Err(VoipError::WrongState { rtc_id: rtc_id.into(), state, wanted }),
        }
    }

    fn arm(&mut self, key: &Key, at: Millis, timer: Timer) {
        let Some(d) = self.devices.get(key) else { return };
        self.seq += 1;
        self.timers.insert((at, self.seq), (key.clone(), d.generation, timer));
    }

    /// Sends a request in the device's current call.
    fn request(&mut self, key: &Key, kind: RequestKind) {
        let Some(c) = self.devices.get(key).and_then(|d| d.current.as_ref()) else { return };
        self.out.push_back(Action::Request(Box::new(DeviceRequest {
            tenant: key.0,
            rtc_id: key.1.clone(),
            channel_id: Some(c.channel_id.clone()),
            uuid: c.uuid.clone(),
            kind,
        })));
    }

    /// Moves the device to a new state, logging it and making older timers stale.
    fn transition(&mut self, key: &Key, change: impl FnOnce(&mut VirtualDevice)) {
        let Some(d) = self.devices.get_mut(key) else { return };
        let from = d.state();
        let before = d.current.as_ref().map(|c| c.channel_id.clone());
        change(d);
        d.generation += 1;
        let to = d.state();
        if from != to {
            // The call the change is about: the one begun, or the one just over.
            let channel_id = d.current.as_ref().map(|c| c.channel_id.clone()).or(before);
            self.out.push_back(Action::State { tenant: key.0, rtc_id: key.1.clone(), channel_id, from, to });
        }
    }

    fn begin(&mut self, key: &Key, current: Current) {
        self.transition(key, |d| d.current = Some(current));
    }

    /// `answer` with callResult 1, then (unless `join` is false) `joinChannel` as the callee.
    fn pick_up(&mut self, key: &Key, join: bool, now: Millis) {
        let Some(c) = self.devices.get(key).and_then(|d| d.current.clone()) else { return };
        self.request(key, RequestKind::Answer { accept: true });
        if join {
            let info = user_info(&key.1, &c.uuid);
            let signal = join_signal(&c.channel_id);
            self.request(
                key,
                RequestKind::Join(Join {
                    is_caller: false,
                    rtc_type: Some(c.rtc_type),
                    need_record: false,
                    extend: None,
                    user_info: Some(info.into()),
                    allow_video: false,
                    signal,
                }),
            );
        }
        self.transition(key, |d| {
            if let Some(c) = d.current.as_mut() {
                c.joined = join;
            }
        });
        self.connected(key, now);
        if !join {
            let after = self.devices.get(key).and_then(|d| d.behavior.hangup_after_ms).unwrap_or(0);
            self.arm(key, now.saturating_add(after), Timer::HangUp);
        }
    }

    /// The call is answered: in a call, with `hangup_after_ms` armed.
    fn connected(&mut self, key: &Key, now: Millis) {
        self.transition(key, |d| {
            if let Some(c) = d.current.as_mut() {
                c.answered_ms.get_or_insert(now);
            }
        });
        let Some(d) = self.devices.get(key) else { return };
        if let (Some(after), Some(true)) = (d.behavior.hangup_after_ms, d.current.as_ref().map(|c| c.joined)) {
            self.arm(key, now.saturating_add(after), Timer::HangUp);
        }
    }

    fn decline(&mut self, key: &Key, now: Millis) {
        self.request(key, RequestKind::Answer { accept: false });
        self.finish(key, CallOutcome::Rejected, None, None, now);
    }

    fn leave(&mut self, key: &Key, now: Millis) {
        self.request(key, RequestKind::LeaveChannel);
        self.finish(key, CallOutcome::Completed, None, None, now);
    }

    /// The call is over for this device: into the history, back to idle.
    fn finish(&mut self, key: &Key, outcome: CallOutcome, code: Option<i64>, cause: Option<String>, now: Millis) {
        let Some(c) = self.devices.get(key).and_then(|d| d.current.clone()) else { return };
        self.transition(key, |d| {
            d.current = None;
            d.history.push_back(CallRecord {
                channel_id: c.channel_id,
                role: c.role,
                rtc_type: c.rtc_type,
                peer: c.peer,
                outcome,
                code,
                cause,
                started_ms: c.started_ms,
                answered_ms: c.answered_ms,
                ended_ms: now,
            });
            if d.history.len() > HISTORY_KEPT {
                d.history.pop_front();
            }
        });
    }
}

fn view(key: &Key, d: &VirtualDevice) -> DeviceView {
    DeviceView {
        tenant: key.0,
        rtc_id: key.1.clone(),
        device_id: d.device_id.clone(),
        behavior: d.behavior.clone(),
        state: d.state(),
        kicked: d.kicked,
        channel_id: d.current.as_ref().map(|c| c.channel_id.clone()),
        created_ms: d.created_ms,
        calls: d.history.iter().cloned().collect(),
        received: d.received.iter().cloned().collect(),
    }
}
