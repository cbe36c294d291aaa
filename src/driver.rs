//! The driver (docs/architecture.md#sans-io-engine): one task that owns the call engine and the simulated PSTN, feeds
//! them gateway events, callback answers, admin commands and due timers, and carries out what
//! they return (messages to devices, HTTP callbacks, media, CDRs, the event log).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use emu_core::clock::format_shanghai;
use emu_core::engine::call::{Caller, Target};
use emu_core::engine::{CallbackFailure, CallbackKind, Engine, EngineConfig, Input, MediaCommand, Output, Routing};
use emu_core::events::NewEvent;
use emu_core::pstn::{LegId, PstnCommand, PstnEvent};
use emu_core::signalling::{MediaResultApi, ServerMessage};
use emu_core::{Millis, Shared, TenantId};
use emu_gateway::{GatewayEvent, Hub, media_signal};
use emu_media::{CodecPreference, Endpoint, MediaEvent, MediaServer};
use emu_pstn::PstnSim;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

/// Work run on the driver's task with exclusive access to its state.
type Job = Box<dyn FnOnce(&mut Driver) + Send>;

/// A handle for the admin API: runs jobs on the driver's task.
#[derive(Clone)]
pub struct DriverHandle {
    tx: mpsc::Sender<Job>,
}

impl DriverHandle {
    /// Runs `f` on the driver and returns its result.
    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Driver) -> T + Send + 'static,
    ) -> Result<T, String> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |d| {
            let _ = reply.send(f(d));
        });
        self.tx.send(job).await.map_err(|_| "the call driver has stopped".to_string())?;
        rx.await.map_err(|_| "the call driver has stopped".to_string())
    }

    /// Queues `f` without waiting (for synchronous hooks such as reset).
    pub fn spawn(&self, f: impl FnOnce(&mut Driver) + Send + 'static) {
        let _ = self.tx.try_send(Box::new(f));
    }
}

pub struct Driver {
    pub shared: Shared,
    pub hub: Arc<Hub>,
    pub mns: Arc<emu_mns::Mns>,
    pub media: Arc<MediaServer>,
    pub engine: Engine,
    pub pstn: PstnSim,
    pub cdrs: VecDeque<Value>,
    /// Which phone number is on which PSTN leg (for the event log).
    leg_numbers: HashMap<LegId, String>,
    callbacks: mpsc::Sender<(String, CallbackKind, Result<Value, CallbackFailure>)>,
    http: reqwest::Client,
}

const CDRS_KEPT: usize = 1000;

/// The engine's routing tables, from the configuration.
pub fn routing_from_config(shared: &Shared) -> Vec<Routing> {
    shared
        .config
        .tenants
        .iter()
        .map(|t| Routing {
            name: t.name.clone(),
            outbound_callback: Some(t.callbacks.outbound.clone()).filter(|u| !u.is_empty()),
            inbound_callback: Some(t.callbacks.inbound.clone()).filter(|u| !u.is_empty()),
            numbers: t
                .numbers
                .iter()
                .map(|n| (n.number.clone(), Some(n.inbound_callback.clone()).filter(|u| !u.is_empty())))
                .collect(),
            self_lines: t.self_lines.iter().cloned().collect(),
            announcements: t
                .numbers
                .iter()
                .filter(|n| !n.announcements.is_empty())
                .map(|n| (n.number.clone(), n.announcements.clone().into_iter().collect()))
                .collect(),
        })
        .collect()
}

fn engine_from_config(shared: &Shared) -> Engine {
    let c = &shared.config.calls;
    Engine::new(
        EngineConfig {
            ring_timeout_ms: c.ring_timeout_ms,
            callback_timeout_ms: c.callback_timeout_ms,
            recent_calls: c.recent_calls,
        },
        routing_from_config(shared),
    )
}

/// Starts the driver task; returns its handle.
pub fn spawn(
    shared: Shared,
    hub: Arc<Hub>,
    mns: Arc<emu_mns::Mns>,
    media: Arc<MediaServer>,
    mut media_events: mpsc::Receiver<MediaEvent>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(DriverHandle, tokio::task::JoinHandle<()>)> {
    let pstn =
        PstnSim::from_config(&shared.config.pstn).map_err(|e| anyhow::anyhow!("invalid [pstn] configuration: {e}"))?;
    let mut gateway = hub.attach_engine();
    let (job_tx, mut jobs) = mpsc::channel::<Job>(1024);
    let (cb_tx, mut cb_rx) = mpsc::channel(1024);
    let mut driver = Driver {
        engine: engine_from_config(&shared),
        pstn,
        cdrs: VecDeque::new(),
        leg_numbers: HashMap::new(),
        callbacks: cb_tx,
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?,
        shared,
        hub,
        mns,
        media,
    };
    let task = tokio::spawn(async move {
        loop {
            let sleep = driver.sleep_for_next_timer();
            tokio::select! {
                Some(ev) = gateway.recv() => driver.on_gateway(ev),
                Some(job) = jobs.recv() => job(&mut driver),
                Some(ev) = media_events.recv() => driver.on_media(ev),
                Some((channel_id, kind, result)) = cb_rx.recv() => {
                    let now = driver.now();
                    driver.feed(Input::Callback { channel_id, kind, result }, now);
                }
                _ = sleep => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            driver.fire_due();
        }
    });
    Ok((DriverHandle { tx: job_tx }, task))
}

impl Driver {
    pub fn now(&self) -> Millis {
        self.shared.clock.now_ms()
    }

    /// Sleeps (in real time) until the next engine or PSTN deadline; forever on a manual clock,
    /// where only `POST /admin/clock/advance` moves time.
    fn sleep_for_next_timer(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let next = [self.engine.poll_timeout(), self.pstn.poll_timeout()].into_iter().flatten().min();
        match next.and_then(|at| self.shared.clock.real_duration(at.saturating_sub(self.now()))) {
            Some(d) => Box::pin(tokio::time::sleep(d)),
            None => Box::pin(std::future::pending()),
        }
    }

    /// Moves a manual clock and fires every timer that comes due, in order (the admin advance).
    pub fn advance(&mut self, ms: u64) -> Result<Millis, String> {
        let now = self.shared.clock.advance(ms).map_err(|e| e.to_string())?;
        self.fire_due();
        Ok(now)
    }

    /// Fires due timers of the engine and the PSTN in deadline order across both.
    pub fn fire_due(&mut self) {
        let now = self.now();
        loop {
            let (e, p) = (self.engine.poll_timeout(), self.pstn.poll_timeout());
            let Some(next) = [e, p].into_iter().flatten().min().filter(|t| *t <= now) else { return };
            if e == Some(next) {
                for (at, outputs) in self.engine.handle_timeout(next) {
                    self.carry_out(outputs, at);
                }
            } else {
                for (at, event) in self.pstn.handle_timeout(next) {
                    self.pstn_to_media(&event);
                    self.feed(Input::Pstn(event), at);
                }
            }
        }
    }

    fn on_gateway(&mut self, ev: GatewayEvent) {
        let now = self.now();
        let input = match ev {
            GatewayEvent::Request(r) => Input::Device(r),
            GatewayEvent::Ack { tenant, rtc_id, message_type, .. } => Input::DeviceAck { tenant, rtc_id, message_type },
            GatewayEvent::Registered { tenant, rtc_id, .. } => Input::DeviceOnline { tenant, rtc_id },
            GatewayEvent::Offline { tenant, rtc_id, .. } => Input::DeviceOffline { tenant, rtc_id },
            GatewayEvent::Undelivered { .. } => return,
        };
        self.feed(input, now);
    }

    pub fn feed(&mut self, input: Input, now: Millis) {
        let outputs = self.engine.handle(input, now);
        self.carry_out(outputs, now);
    }

    /// Carries out engine outputs; PSTN commands are answered by the simulator at once and its
    /// events go back into the engine until nothing is left to do.
    pub fn carry_out(&mut self, outputs: Vec<Output>, now: Millis) {
        let mut queue: VecDeque<Output> = outputs.into();
        while let Some(out) = queue.pop_front() {
            match out {
                Output::ToDevice { tenant, rtc_id, message } => self.send(tenant, &rtc_id, &message),
                Output::Pstn(cmd) => {
                    let events = self.pstn_command(cmd, now);
                    for e in events {
                        self.log_pstn(&e);
                        self.pstn_to_media(&e);
                        queue.extend(self.engine.handle(Input::Pstn(e), now));
                    }
                }
                Output::Callback { channel_id, tenant, kind, url, body } => {
                    self.callback(channel_id, tenant, kind, url, body)
                }
                Output::Media(cmd) => self.media(cmd),
                Output::Cdr { tenant, channel_id, report } => {
                    self.shared.events.record(NewEvent {
                        kind: "cdr",
                        channel_id: Some(channel_id),
                        tenant: Some(self.shared.tenants.get(tenant).name.clone()),
                        detail: report.clone(),
                        ..Default::default()
                    });
                    if self.cdrs.len() == CDRS_KEPT {
                        self.cdrs.pop_front();
                    }
                    self.cdrs.push_back(json!({"tenant": self.shared.tenants.get(tenant).name, "report": report}));
                    self.receipt(tenant, "ArtcCdrReport", report);
                }
                Output::Log(e) => self.shared.events.record(e),
            }
        }
    }

    fn pstn_command(&mut self, cmd: PstnCommand, now: Millis) -> Vec<PstnEvent> {
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
        self.log_leg(kind, leg, detail);
        self.pstn.handle(cmd, now)
    }

    pub fn log_pstn(&self, e: &PstnEvent) {
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
        self.log_leg(kind, e.leg(), detail);
    }

    fn log_leg(&self, kind: &'static str, leg: LegId, mut detail: Value) {
        let number = self.leg_numbers.get(&leg).cloned().unwrap_or_default();
        detail["number"] = number.clone().into();
        detail["leg"] = leg.into();
        tracing::debug!(kind, number, leg, "pstn");
        self.shared.events.record(NewEvent {
            kind,
            channel_id: self.engine.channel_of_leg(leg).map(str::to_string),
            detail,
            ..Default::default()
        });
    }

    /// Sends a server request to a device; its JSON `mediaSignal` is encoded on the way.
    fn send(&self, tenant: TenantId, rtc_id: &str, message: &ServerMessage) {
        let message_type = message.message_type();
        let mut body = message.body();
        if let Some(ms) = body.get_mut("mediaSignal").filter(|m| m.is_object()) {
            *ms = media_signal::encode(ms).into();
        }
        if self.hub.send_request(tenant, rtc_id, message_type, body).is_err() {
            tracing::info!(rtc_id, message_type, "device not registered; message not sent");
        }
    }

    fn callback(&self, channel_id: String, tenant: TenantId, kind: CallbackKind, url: String, body: Value) {
        self.shared.events.record(NewEvent {
            kind: "callback.request",
            channel_id: Some(channel_id.clone()),
            tenant: Some(self.shared.tenants.get(tenant).name.clone()),
            detail: json!({"kind": kind, "url": url, "body": body}),
            ..Default::default()
        });
        let http = self.http.clone();
        let results = self.callbacks.clone();
        tokio::spawn(async move {
            let result = post_callback(&http, &url, &body).await;
            if let Err(e) = &result {
                tracing::warn!(channel_id, ?kind, url, "callback failed: {e}");
            }
            let _ = results.send((channel_id, kind, result)).await;
        });
    }

    /// Carries out a media command: joinChannel and sdpCandidate results go back to the device.
    fn media(&mut self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Join { channel_id, tenant, rtc_id, uuid, signal } => {
                let tenant_name = self.shared.tenants.get(tenant).name.clone();
                let rtc_type = self.engine.call(&channel_id).map(|c| c.rtc_type.as_str()).unwrap_or_default();
                let preference = CodecPreference::for_call_type(rtc_type);
                let result = self.media.join_with(&channel_id, &tenant_name, &rtc_id, &uuid, &signal, preference);
                let message = ServerMessage::MediaResult {
                    api: MediaResultApi::JoinChannel,
                    uuid,
                    channel_id,
                    media_signal: result,
                };
                self.send(tenant, &rtc_id, &message);
            }
            MediaCommand::Signal { channel_id, tenant, rtc_id, uuid, api, signal } => {
                if let Some(result) = self.media.signal(&channel_id, &rtc_id, &uuid, api.as_str(), &signal) {
                    let message = ServerMessage::MediaResult {
                        api: MediaResultApi::SdpCandidate,
                        uuid,
                        channel_id,
                        media_signal: result,
                    };
                    self.send(tenant, &rtc_id, &message);
                }
            }
            MediaCommand::Bridge { channel_id, record } => {
                let Some(call) = self.engine.call(&channel_id) else { return };
                let phone =
                    |n: &str| Endpoint::Phone { number: n.to_string(), audio: self.pstn.behavior_of(n).0.audio };
                let caller = match &call.caller {
                    Caller::Device { rtc_id, .. } => Endpoint::Device { rtc_id: rtc_id.clone() },
                    Caller::Phone { number, .. } => phone(number),
                };
                let Some(leg) = call.answered_leg() else { return };
                let callee = match &leg.target {
                    Target::Device { rtc_id } => Endpoint::Device { rtc_id: rtc_id.clone() },
                    Target::Phone { number, .. } => phone(number),
                };
                let record = self.media.should_record(call.rtc_type.as_str(), record);
                self.media.bridge(&channel_id, caller, callee, record);
                if record {
                    self.engine.mark_recorded(&channel_id);
                }
            }
            MediaCommand::Release { channel_id } => {
                self.media.release(&channel_id);
            }
        }
    }

    fn on_media(&mut self, ev: MediaEvent) {
        let now = self.now();
        let log = |kind: &'static str, channel_id: String, detail: Value| {
            self.shared.events.record(NewEvent { kind, channel_id: Some(channel_id), detail, ..Default::default() })
        };
        match ev {
            MediaEvent::DeviceDtmf { channel_id, rtc_id, digit } => {
                log("media.dtmf", channel_id.clone(), json!({"rtcId": rtc_id, "digit": digit.to_string()}));
                self.feed(Input::DeviceDtmf { channel_id, rtc_id, digits: digit.to_string() }, now);
            }
            MediaEvent::RecordingDone { channel_id, file, duration_ms, bytes } => {
                let url = self.media.recording_url(&file);
                log(
                    "media.recording",
                    channel_id.clone(),
                    json!({"file": file, "url": url, "durationMs": duration_ms, "bytes": bytes}),
                );
                self.recording_report(&channel_id, &file, &url, duration_ms);
            }
            MediaEvent::LegConnected { channel_id, rtc_id } => {
                log("media.connected", channel_id, json!({"rtcId": rtc_id}))
            }
            MediaEvent::LegDisconnected { channel_id, rtc_id } => {
                log("media.disconnected", channel_id, json!({"rtcId": rtc_id}))
            }
        }
    }

    /// The `VoiceRecordReport` of a finished recording (docs/media.md#recording), with its download URL.
    fn recording_report(&self, channel_id: &str, file: &str, url: &str, duration_ms: u64) {
        let Some(call) = self.engine.call(channel_id) else { return };
        // The recording runs from the answer for `duration_ms`: start, end and duration agree.
        let begin = call.answered_ms.unwrap_or(call.created_ms);
        let report = json!({
            "call_id": channel_id,
            "channelId": channel_id,
            "start_time": format_shanghai(begin),
            "end_time": format_shanghai(begin + duration_ms),
            "duration": duration_ms.div_ceil(1000).to_string(),
            "status_code": "200000",
            "status_msg": "recording done",
            "out_id": call.extend,
            "dtmf": "",
            "caller": call.caller_label(),
            "callee": call.answered_leg().map(|l| l.target.label().to_string()).unwrap_or_default(),
            "alicomRtcType": call.rtc_type,
            "record_file": file,
            "record_url": url,
            "record_begin_time": format_shanghai(begin),
        });
        self.receipt(call.tenant, "VoiceRecordReport", report);
    }

    /// A phone's key press also goes into the device's audio (RFC 4733).
    fn pstn_to_media(&self, e: &PstnEvent) {
        if let PstnEvent::Dtmf { leg, digit } = e
            && let Some(channel_id) = self.engine.channel_of_leg(*leg)
        {
            self.media.phone_dtmf(channel_id, *digit);
        }
    }

    /// Puts a receipt in the tenant's MNS queue (and its HTTP pushes), off the driver's task:
    /// a slow disk must not hold up calls.
    fn receipt(&self, tenant: TenantId, message_type: &'static str, report: Value) {
        let mns = self.mns.clone();
        tokio::spawn(async move {
            if let Err(e) = mns.deliver(tenant, message_type, &report).await {
                tracing::error!(message_type, "receipt not queued: {e}");
            }
        });
    }

    pub fn reset(&mut self) {
        self.engine = engine_from_config(&self.shared);
        self.pstn.reset();
        self.cdrs.clear();
        self.leg_numbers.clear();
        self.media.reset();
    }
}

/// POSTs a callback; 2xx with a JSON body is an answer, anything else a failure with its reason.
async fn post_callback(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, CallbackFailure> {
    let resp = http.post(url).json(body).send().await.map_err(|e| {
        if e.is_connect() {
            CallbackFailure::Connect(e.to_string())
        } else if e.is_timeout() {
            CallbackFailure::TimedOut
        } else {
            CallbackFailure::Transport(e.to_string())
        }
    })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| CallbackFailure::Transport(e.to_string()))?;
    if !status.is_success() {
        return Err(CallbackFailure::Status(status.as_u16()));
    }
    serde_json::from_str(&text).map_err(|e| CallbackFailure::InvalidJson(e.to_string()))
}
