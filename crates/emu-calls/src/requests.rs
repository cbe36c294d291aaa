//! What the admin API may ask the calls driver: typed requests, each with its typed reply, run on
//! the driver's task (it owns the switch, so no lock is needed). [`Driver::serve`] answers them.

use emu_core::lifecycle::AdvanceError;
use emu_core::{Millis, TenantId};
use emu_pstn::{Behavior, PhoneView, PstnError};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::driver::Driver;
use crate::virtual_devices::{DeviceAction, PlaceCall, PutDevice, VirtualDeviceInfo};

type Reply<T> = oneshot::Sender<T>;

/// Why the driver refused an admin request.
#[derive(Debug, thiserror::Error)]
pub enum CallsError {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Pstn(#[from] PstnError),
    #[error(transparent)]
    Voip(#[from] emu_voip::VoipError),
    /// The request clashes with what exists (an account with another DeviceId, a channelId in use).
    #[error("{0}")]
    Conflict(String),
    /// The configuration cannot be carried out (start-up and reset).
    #[error("{0}")]
    Config(String),
}

/// A change of callback URLs (`PUT /admin/callbacks`); `Some(None)` clears, `None` keeps.
#[derive(Debug, Default)]
pub struct CallbacksChange {
    pub tenant: Option<String>,
    pub outbound: Option<Option<String>>,
    pub inbound: Option<Option<String>>,
    pub numbers: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub enum PhoneAction {
    Answer,
    Reject,
    HangUp,
    Press(String),
}

pub enum Request {
    /// Every call, active first: summaries.
    Calls(Reply<Vec<Value>>),
    /// One call with its legs, CDR, timeline and media statistics.
    Call {
        channel_id: String,
        reply: Reply<Option<Value>>,
    },
    Cdrs(Reply<Vec<crate::switch::CdrRow>>),
    /// The sizes and caps of the CDR list and the ended calls, for `/metrics`.
    Retained(Reply<Vec<emu_core::retention::Retained>>),
    Callbacks(Reply<Vec<Value>>),
    SetCallbacks {
        change: CallbacksChange,
        reply: Reply<Result<Value, CallsError>>,
    },
    Phones(Reply<Vec<PhoneView>>),
    Phone {
        number: String,
        reply: Reply<Result<PhoneView, PstnError>>,
    },
    SetPhone {
        number: String,
        behavior: Behavior,
        reply: Reply<Result<PhoneView, PstnError>>,
    },
    ClearPhone {
        number: String,
        reply: Reply<bool>,
    },
    PhoneAction {
        number: String,
        action: PhoneAction,
        reply: Reply<Result<PhoneView, PstnError>>,
    },
    /// A phone calls a bought number: the new channelId.
    DialIn {
        from: String,
        to: String,
        reply: Reply<Result<String, CallsError>>,
    },
    Advance {
        ms: Millis,
        reply: Reply<Result<Millis, AdvanceError>>,
    },
    /// Virtual devices of one tenant, or of all.
    VirtualDevices {
        tenant: Option<String>,
        reply: Reply<Result<Vec<VirtualDeviceInfo>, CallsError>>,
    },
    VirtualDevice {
        tenant: Option<String>,
        rtc_id: String,
        reply: Reply<Result<VirtualDeviceInfo, CallsError>>,
    },
    /// Creates (`true`) or changes a virtual device.
    PutVirtualDevice {
        put: PutDevice,
        reply: Reply<Result<(bool, VirtualDeviceInfo), CallsError>>,
    },
    DeleteVirtualDevice {
        tenant: Option<String>,
        rtc_id: String,
        reply: Reply<Result<(), CallsError>>,
    },
    VirtualDeviceAction {
        tenant: Option<String>,
        rtc_id: String,
        action: DeviceAction,
        reply: Reply<Result<VirtualDeviceInfo, CallsError>>,
    },
    /// A call from a virtual device: its channelId.
    VirtualCall {
        call: PlaceCall,
        reply: Reply<Result<String, CallsError>>,
    },
    Reset,
}

impl Driver {
    /// Answers one admin request. A reply nobody waits for any more is dropped.
    pub(crate) fn serve(&mut self, request: Request) {
        match request {
            Request::Calls(reply) => {
                let list = self.switch.engine.calls().into_iter().map(|c| self.summary(c)).collect();
                let _ = reply.send(list);
            }
            Request::Call { channel_id, reply } => {
                let _ = reply.send(self.call_view(&channel_id));
            }
            Request::Cdrs(reply) => {
                let _ = reply.send(self.switch.cdrs().cloned().collect());
            }
            Request::Retained(reply) => {
                let _ = reply.send(self.switch.retained());
            }
            Request::Callbacks(reply) => {
                let views = self.shared.tenants.all().iter().map(|t| self.callbacks_view(t.id)).collect();
                let _ = reply.send(views);
            }
            Request::SetCallbacks { change, reply } => {
                let _ = reply.send(self.set_callbacks(change));
            }
            Request::Phones(reply) => {
                let _ = reply.send(self.switch.pstn.phones());
            }
            Request::Phone { number, reply } => {
                let _ = reply.send(self.switch.pstn.phone(&number));
            }
            Request::SetPhone { number, behavior, reply } => {
                let result =
                    self.switch.pstn.set_behavior(&number, behavior).and_then(|()| self.switch.pstn.phone(&number));
                let _ = reply.send(result);
            }
            Request::ClearPhone { number, reply } => {
                let _ = reply.send(self.switch.pstn.clear_behavior(&number));
            }
            Request::PhoneAction { number, action, reply } => {
                let _ = reply.send(self.phone_action(&number, action));
            }
            Request::DialIn { from, to, reply } => {
                let _ = reply.send(self.dial_in(&from, &to));
            }
            Request::Advance { ms, reply } => {
                let _ = reply.send(self.advance(ms));
            }
            Request::VirtualDevices { tenant, reply } => {
                let _ = reply.send(self.virtual_devices(tenant.as_deref()));
            }
            Request::VirtualDevice { tenant, rtc_id, reply } => {
                let found = self.tenant_of(tenant.as_deref()).and_then(|t| {
                    self.virtual_device_info(t, &rtc_id).ok_or(emu_voip::VoipError::NotFound(rtc_id).into())
                });
                let _ = reply.send(found);
            }
            Request::PutVirtualDevice { put, reply } => {
                let _ = reply.send(self.put_virtual_device(put));
            }
            Request::DeleteVirtualDevice { tenant, rtc_id, reply } => {
                let _ = reply.send(self.delete_virtual_device(tenant.as_deref(), &rtc_id));
            }
            Request::VirtualDeviceAction { tenant, rtc_id, action, reply } => {
                let _ = reply.send(self.virtual_device_action(tenant.as_deref(), &rtc_id, action));
            }
            Request::VirtualCall { call, reply } => {
                let _ = reply.send(self.place_virtual_call(call));
            }
            Request::Reset => self.reset(),
        }
    }

    fn summary(&self, c: &emu_core::engine::call::Call) -> Value {
        json!({
            "channelId": c.channel_id,
            "tenant": self.switch.tenant_name(c.tenant),
            "alicomRtcType": c.rtc_type,
            "state": c.state,
            "caller": c.caller_label(),
            "callees": c.legs.iter().map(|l| l.target.label()).collect::<Vec<_>>(),
            "createdMs": c.created_ms,
            "answeredMs": c.answered_ms,
            "endedMs": c.ended_ms,
            "endReason": c.end_reason,
            "causeCode": c.cause_code,
        })
    }

    fn call_view(&self, channel_id: &str) -> Option<Value> {
        let c = self.switch.engine.call(channel_id)?;
        let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
        v["tenant"] = self.switch.tenant_name(c.tenant).into();
        let filter = emu_core::events::EventFilter { channel_id: Some(channel_id.into()), ..Default::default() };
        v["timeline"] = serde_json::to_value(self.shared.events.query(&filter)).unwrap_or(Value::Null);
        v["media"] = serde_json::to_value(self.media.stats(channel_id)).unwrap_or(Value::Null);
        Some(v)
    }

    pub(crate) fn tenant_of(&self, name: Option<&str>) -> Result<TenantId, CallsError> {
        match name {
            None => Ok(TenantId(0)),
            Some(n) => self
                .shared
                .tenants
                .by_name(n)
                .map(|t| t.id)
                .ok_or_else(|| CallsError::NotFound(format!("no tenant named {n:?}"))),
        }
    }

    fn callbacks_view(&self, t: TenantId) -> Value {
        let r = self.switch.engine.routing(t).cloned().unwrap_or_default();
        let numbers: serde_json::Map<String, Value> =
            r.numbers.iter().map(|(n, url)| (n.clone(), url.clone().map(Value::from).unwrap_or(Value::Null))).collect();
        json!({"tenant": r.name, "outbound": r.outbound_callback, "inbound": r.inbound_callback, "numbers": numbers})
    }

    /// All or nothing: an unknown tenant or number changes no URL.
    fn set_callbacks(&mut self, change: CallbacksChange) -> Result<Value, CallsError> {
        let t = self.tenant_of(change.tenant.as_deref())?;
        for (number, _) in &change.numbers {
            if !self.switch.engine.routing(t).is_some_and(|r| r.numbers.contains_key(number)) {
                return Err(CallsError::NotFound(format!("{number} is not a number of this tenant")));
            }
        }
        self.switch.engine.set_callbacks(t, change.outbound, change.inbound);
        for (number, url) in change.numbers {
            self.switch.engine.set_number_callback(t, &number, url);
        }
        Ok(self.callbacks_view(t))
    }

    fn phone_action(&mut self, number: &str, action: PhoneAction) -> Result<PhoneView, PstnError> {
        let now = self.now();
        let pstn = &mut self.switch.pstn;
        let events = match action {
            PhoneAction::Answer => pstn.answer(number, now)?,
            PhoneAction::Reject => pstn.reject(number, now)?,
            PhoneAction::HangUp => pstn.hangup(number, now)?,
            PhoneAction::Press(digits) => pstn.press(number, &digits, now)?,
        };
        let effects = self.switch.phone_events(events, now);
        self.apply(effects);
        self.fire_due();
        self.switch.pstn.phone(number)
    }

    fn dial_in(&mut self, from: &str, to: &str) -> Result<String, CallsError> {
        emu_pstn::validate_number(from)?;
        self.switch.pstn.can_originate(from)?;
        let now = self.now();
        let (channel_id, effects) =
            self.switch.dial_in(from, to, now).map_err(|e| CallsError::NotFound(e.to_string()))?;
        self.apply(effects);
        Ok(channel_id)
    }
}
