//! The switch's virtual VoIP devices (docs/voip-devices.md). What a virtual device sends goes into
//! the engine at once, as a connected SDK's request would after the gateway, and what the engine
//! sends its account reaches it at once: so a manual clock advance runs every party's timers
//! (engine, phones, virtual devices) in deadline order.

use emu_core::engine::{Input, Output};
use emu_core::events::NewEvent;
use emu_core::signalling::RequestKind;
use emu_core::{Millis, TenantId};
use emu_voip::{Action, VirtualDevices};
use serde_json::json;

use super::{Effect, Switch};

/// The message type of a device request, as its envelope names it.
fn message_type(kind: &RequestKind) -> &str {
    match kind {
        RequestKind::Join(_) => "joinChannel",
        RequestKind::Call(_) => "call",
        RequestKind::Answer { .. } => "answer",
        RequestKind::CancelCall => "cancelCall",
        RequestKind::LeaveChannel => "leaveChannel",
        RequestKind::Media { api, .. } => api.as_str(),
        RequestKind::Other(t) => t,
    }
}

impl Switch {
    /// Runs an admin action on the virtual devices and carries out what follows from it.
    pub fn with_voip<T>(&mut self, now: Millis, action: impl FnOnce(&mut VirtualDevices) -> T) -> (T, Vec<Effect>) {
        let result = action(&mut self.voip);
        let mut effects = Vec::new();
        self.carry_out_voip(now, &mut effects);
        (result, effects)
    }

    pub(super) fn carry_out_voip(&mut self, now: Millis, effects: &mut Vec<Effect>) {
        let outputs = self.voip_outputs(now, effects);
        self.carry_out(outputs, now, effects);
    }

    /// Takes the virtual devices' actions: requests, presence and busy marks go into the engine
    /// (its outputs are returned, to be carried out in order), the rest become effects.
    pub(super) fn voip_outputs(&mut self, now: Millis, effects: &mut Vec<Effect>) -> Vec<Output> {
        let mut outputs = Vec::new();
        while let Some(action) = self.voip.poll_action() {
            match action {
                Action::Request(r) => {
                    effects.push(self.voip_event(
                        "envelope.in",
                        r.tenant,
                        &r.rtc_id,
                        r.channel_id.clone(),
                        json!({"messageType": message_type(&r.kind), "uuid": r.uuid, "transport": "virtual"}),
                    ));
                    outputs.extend(self.engine.handle(Input::Device(*r), now));
                }
                Action::Presence { tenant, rtc_id, online } => {
                    let device_id = self.voip.device_id(tenant, &rtc_id).unwrap_or(&rtc_id).to_string();
                    let input = if online {
                        Input::DeviceOnline { tenant, rtc_id: rtc_id.clone() }
                    } else {
                        Input::DeviceOffline { tenant, rtc_id: rtc_id.clone() }
                    };
                    effects.push(Effect::VirtualPresence { tenant, rtc_id, device_id, online });
                    outputs.extend(self.engine.handle(input, now));
                }
                Action::Busy { tenant, rtc_id, busy } => {
                    outputs.extend(self.engine.handle(Input::DeviceBusy { tenant, rtc_id, busy }, now));
                }
                Action::State { tenant, rtc_id, channel_id, from, to } => {
                    tracing::info!(channel_id = channel_id.as_deref().unwrap_or(""), rtc_id, %from, %to, "virtual device");
                    effects.push(self.voip_event(
                        "voip.state",
                        tenant,
                        &rtc_id,
                        channel_id,
                        json!({"from": from, "to": to}),
                    ));
                }
            }
        }
        outputs
    }

    fn voip_event(
        &self,
        kind: &'static str,
        tenant: TenantId,
        rtc_id: &str,
        channel_id: Option<String>,
        detail: serde_json::Value,
    ) -> Effect {
        Effect::Event(NewEvent {
            kind,
            channel_id,
            rtc_id: Some(rtc_id.into()),
            tenant: self.tenant_label(tenant),
            detail: detail.into(),
            wire: None,
        })
    }
}
