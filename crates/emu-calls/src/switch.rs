//! The switch: the call engine and the simulated PSTN composed, without I/O. The engine's PSTN
//! commands are answered by the simulator at once and its events go back into the engine until
//! nothing is left to do; what remains is a list of [`Effect`]s (messages to devices, HTTP
//! callbacks, media commands, receipts, log events) for the driver to carry out, in order.
//!
//! Time is passed in, as everywhere in the emulator (docs/architecture.md#one-clock), so a test
//! drives a whole call, sequential ringing included, in microseconds.

use std::collections::VecDeque;
use std::sync::Arc;

use emu_core::cdr::CdrReport;
use emu_core::engine::{CallbackKind, Engine, Input, MediaCommand, NotABoughtNumber, Output};
use emu_core::events::{Detail, NewEvent};
use emu_core::pstn::{LegId, PstnCommand, PstnEvent};
use emu_core::retention::{Bounded, Limit, Retained, json_weight};
use emu_core::signalling::ServerMessage;
use emu_core::{Millis, TenantId};
use emu_pstn::PstnSim;
use emu_voip::VirtualDevices;
use rustc_hash::FxHashMap;
use serde_json::{Value, json};

mod voip;

/// What the driver does for the switch.
#[derive(Debug, Clone)]
pub enum Effect {
    Send {
        tenant: TenantId,
        rtc_id: String,
        message: ServerMessage,
        /// The account's virtual device received it and ACKs it (the gateway clears the
        /// retransmission as for an SDK's ACK).
        virtual_ack: bool,
    },
    /// A virtual device came online (registered as a connected SDK is) or went offline.
    VirtualPresence {
        tenant: TenantId,
        rtc_id: String,
        device_id: String,
        online: bool,
    },
    Callback {
        channel_id: String,
        tenant: TenantId,
        kind: CallbackKind,
        url: String,
        body: Value,
    },
    Media(MediaCommand),
    /// A phone pressed a key: it also goes into the VoIP party's audio (RFC 4733).
    PhoneDtmf {
        channel_id: String,
        digit: char,
    },
    /// A receipt for the tenant's MNS queue (`ArtcCdrReport`).
    Receipt {
        tenant: TenantId,
        message_type: &'static str,
        report: Arc<CdrReport>,
        /// The report as JSON (the engine's `Output::Cdr`), the queued message's body; its
        /// length also gives the weight of the `GET /admin/cdrs` row.
        json: Vec<u8>,
    },
    Event(NewEvent),
}

/// One row of `GET /admin/cdrs`: a CDR as put into the tenant's `ArtcCdrReport` queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CdrRow {
    pub tenant: Arc<str>,
    pub report: Arc<CdrReport>,
}

impl CdrRow {
    /// Its JSON length (`json_weight`), from its report's: `{"tenant":…,"report":…}`.
    fn weight(&self, report_json_len: usize) -> usize {
        r#"{"tenant":,"report":}"#.len() + json_weight(&self.tenant) + report_json_len
    }
}

pub struct Switch {
    pub engine: Engine,
    pub pstn: PstnSim,
    /// Virtual VoIP devices (docs/voip-devices.md).
    pub voip: VirtualDevices,
    /// Tenant names by id, for CDR rows and events.
    tenants: Vec<Arc<str>>,
    /// CDRs kept for `GET /admin/cdrs` (`retention.cdrs` / `cdr_bytes`).
    cdrs: Bounded<CdrRow>,
    /// Which phone number is on which PSTN leg (for the event log).
    leg_numbers: FxHashMap<LegId, String>,
}

impl Switch {
    pub fn new(engine: Engine, pstn: PstnSim, tenants: Vec<Arc<str>>, cdrs: Limit) -> Self {
        Switch {
            engine,
            pstn,
            voip: VirtualDevices::new(),
            tenants,
            cdrs: Bounded::new(cdrs),
            leg_numbers: FxHashMap::default(),
        }
    }

    /// The earliest deadline of the engine, the phones or the virtual devices.
    pub fn poll_timeout(&self) -> Option<Millis> {
        [self.engine.poll_timeout(), self.pstn.poll_timeout(), self.voip.poll_timeout()].into_iter().flatten().min()
    }

    pub fn feed(&mut self, input: Input, now: Millis) -> Vec<Effect> {
        let outputs = self.engine.handle(input, now);
        let mut effects = Vec::new();
        self.carry_out(outputs, now, &mut effects);
        effects
    }

    /// Fires every engine, phone and virtual-device timer due at `now`, in deadline order across
    /// all three, each at its own deadline.
    pub fn fire_due(&mut self, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        loop {
            let (e, p, v) = (self.engine.poll_timeout(), self.pstn.poll_timeout(), self.voip.poll_timeout());
            let Some(next) = [e, p, v].into_iter().flatten().min().filter(|t| *t <= now) else { break };
            if e == Some(next) {
                for (at, outputs) in self.engine.handle_timeout(next) {
                    self.carry_out(outputs, at, &mut effects);
                }
            } else if v == Some(next) {
                self.voip.handle_timeout(next);
                self.carry_out_voip(next, &mut effects);
            } else {
                let events = self.pstn.handle_timeout(next);
                for (at, event) in events {
                    self.phone_event(event, at, &mut effects);
                }
            }
        }
        effects
    }

    /// Events a phone produced on an admin command (answer, reject, hang up, keys).
    pub fn phone_events(&mut self, events: Vec<PstnEvent>, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        for e in events {
            self.phone_event(e, now, &mut effects);
        }
        effects
    }

    /// A phone calls a bought number. Returns the new channelId.
    pub fn dial_in(&mut self, from: &str, to: &str, now: Millis) -> Result<(String, Vec<Effect>), NotABoughtNumber> {
        let (channel_id, outputs) = self.engine.start_inbound(from, to, now)?;
        let mut effects = Vec::new();
        self.carry_out(outputs, now, &mut effects);
        Ok((channel_id, effects))
    }

    pub fn cdrs(&self) -> impl Iterator<Item = &CdrRow> {
        self.cdrs.iter()
    }

    /// The CDRs and ended calls kept, for `/metrics`.
    pub fn retained(&self) -> Vec<Retained> {
        vec![self.cdrs.retained("cdrs"), self.engine.retained()]
    }

    pub fn tenant_name(&self, tenant: TenantId) -> &str {
        self.tenants.get(tenant.0).map_or("", |n| n)
    }

    /// The tenant's name for an event or a record: shared, not copied.
    pub fn tenant_label(&self, tenant: TenantId) -> Option<Arc<str>> {
        self.tenants.get(tenant.0).cloned()
    }

    /// Back to the state at start-up, with a fresh engine (`POST /admin/reset`).
    pub fn reset(&mut self, engine: Engine) {
        self.engine = engine;
        self.pstn.reset();
        self.voip.clear();
        self.cdrs.clear();
        self.leg_numbers.clear();
    }

    fn phone_event(&mut self, e: PstnEvent, now: Millis, effects: &mut Vec<Effect>) {
        self.observe(&e, effects);
        let outputs = self.engine.handle(Input::Pstn(e), now);
        self.carry_out(outputs, now, effects);
    }

    /// What every phone event causes besides the engine's reaction: a log line, and a key press
    /// in the VoIP party's audio.
    fn observe(&self, e: &PstnEvent, effects: &mut Vec<Effect>) {
        self.log_pstn(e, effects);
        if let PstnEvent::Dtmf { leg, digit } = *e
            && let Some(channel_id) = self.engine.channel_of_leg(leg)
        {
            effects.push(Effect::PhoneDtmf { channel_id: channel_id.to_string(), digit });
        }
    }

    fn carry_out(&mut self, outputs: Vec<Output>, now: Millis, effects: &mut Vec<Effect>) {
        let mut queue: VecDeque<Output> = outputs.into();
        while let Some(out) = queue.pop_front() {
            match out {
                Output::ToDevice { tenant, rtc_id, message } => {
                    // A virtual device hears the message at once (its timers start now); the
                    // gateway still sends it to its connection and waits for the ACK.
                    let virtual_ack = self.voip.deliver(tenant, &rtc_id, &message, now) == Some(true);
                    effects.push(Effect::Send { tenant, rtc_id, message, virtual_ack });
                    queue.extend(self.voip_outputs(now, effects));
                }
                Output::Pstn(cmd) => {
                    // The simulator answers at once; its events go back into the engine.
                    for e in self.pstn_command(cmd, now, effects) {
                        self.observe(&e, effects);
                        queue.extend(self.engine.handle(Input::Pstn(e), now));
                    }
                }
                Output::Callback { channel_id, tenant, kind, url, body } => {
                    effects.push(Effect::Callback { channel_id, tenant, kind, url, body })
                }
                Output::Media(cmd) => effects.push(Effect::Media(cmd)),
                Output::Cdr { tenant, report, json } => {
                    let name = self.tenant_label(tenant).unwrap_or_else(|| "".into());
                    effects.push(Effect::Event(NewEvent {
                        kind: "cdr",
                        channel_id: Some(report.channel_id.clone()),
                        tenant: Some(name.clone()),
                        detail: Detail::Cdr(Arc::clone(&report)),
                        ..Default::default()
                    }));
                    let row = CdrRow { tenant: name, report: Arc::clone(&report) };
                    let weight = row.weight(json.len());
                    self.cdrs.push(row, weight);
                    effects.push(Effect::Receipt { tenant, message_type: "ArtcCdrReport", report, json });
                }
                Output::Log(e) => effects.push(Effect::Event(e)),
            }
        }
    }

    fn pstn_command(&mut self, cmd: PstnCommand, now: Millis, effects: &mut Vec<Effect>) -> Vec<PstnEvent> {
        let (kind, leg, detail) = match &cmd {
            PstnCommand::Dial { leg, from, to, .. } => {
                self.leg_numbers.insert(*leg, to.clone());
                ("pstn.dial", *leg, json!({"from": from, "to": to}))
            }
            PstnCommand::Originated { leg, from, to, .. } => {
                self.leg_numbers.insert(*leg, from.clone());
                ("pstn.call_in", *leg, json!({"from": from, "to": to}))
            }
            PstnCommand::Connected { leg } => ("pstn.connected", *leg, json!({})),
            PstnCommand::Release { leg, reason } => ("pstn.release", *leg, json!({"reason": reason})),
            PstnCommand::Announce { leg, name } => ("pstn.announcement", *leg, json!({"name": name})),
            PstnCommand::DeviceDtmf { leg, digits } => ("pstn.dtmf_in", *leg, json!({"digits": digits})),
        };
        effects.push(self.leg_event(kind, leg, detail));
        self.pstn.handle(cmd, now)
    }

    fn log_pstn(&self, e: &PstnEvent, effects: &mut Vec<Effect>) {
        let (kind, detail) = match e {
            PstnEvent::Ringing { .. } => ("pstn.ringing", json!({})),
            PstnEvent::Answered { .. } => ("pstn.answered", json!({})),
            PstnEvent::Busy { .. } => ("pstn.busy", json!({})),
            PstnEvent::Rejected { .. } => ("pstn.rejected", json!({})),
            PstnEvent::Unreachable { .. } => ("pstn.unreachable", json!({})),
            PstnEvent::Invalid { .. } => ("pstn.invalid", json!({})),
            PstnEvent::HungUp { .. } => ("pstn.hung_up", json!({})),
            PstnEvent::Dtmf { digit, .. } => ("pstn.dtmf", json!({"digit": digit.to_string()})),
        };
        effects.push(self.leg_event(kind, e.leg(), detail));
    }

    fn leg_event(&self, kind: &'static str, leg: LegId, mut detail: Value) -> Effect {
        let number = self.leg_numbers.get(&leg).cloned().unwrap_or_default();
        tracing::debug!(kind, number, leg, "pstn");
        detail["number"] = number.into();
        detail["leg"] = leg.into();
        Effect::Event(NewEvent {
            kind,
            channel_id: self.engine.channel_of_leg(leg).map(str::to_string),
            detail: detail.into(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests;
