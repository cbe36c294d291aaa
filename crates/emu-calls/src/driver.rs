//! The calls driver: one task that owns the [`Switch`] (call engine + simulated PSTN), feeds it
//! gateway events, callback answers, media events, admin commands and due timers, and carries out
//! the effects it returns: messages to devices, HTTP callbacks, media commands, receipts, the
//! event log. All I/O of the call path is here; the logic is in the switch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use emu_core::lifecycle::AdvanceError;
use emu_core::retention::Limit;

use emu_core::cdr::CdrReport;
use emu_core::clock::format_shanghai;
use emu_core::engine::call::{Caller, Target};
use emu_core::engine::{CallbackFailure, CallbackKind, Engine, EngineConfig, Input, MediaCommand, Routing};
use emu_core::events::NewEvent;
use emu_core::signalling::ServerMessage;
use emu_core::{Millis, Shared, TenantId};
use emu_gateway::{GatewayEvent, HeldAck, Hub};
use emu_media::{CodecPreference, Endpoint, LegOptions, MediaEvent, MediaServer};
use emu_pstn::PstnSim;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::requests::Request;
use crate::switch::{Effect, Switch};

/// The driver has stopped (the emulator is shutting down): admin requests answer 503.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the call driver has stopped")]
pub struct DriverStopped;

/// A handle for the admin API: sends typed requests to the driver's task.
#[derive(Clone)]
pub struct DriverHandle {
    tx: mpsc::Sender<Request>,
}

impl DriverHandle {
    /// Sends the request `make` builds around a reply channel, and awaits the reply.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, DriverStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| DriverStopped)?;
        rx.await.map_err(|_| DriverStopped)
    }
}

/// `POST /admin/reset`: the driver starts over (queued; the admin answers at once).
impl emu_core::lifecycle::Reset for DriverHandle {
    fn reset(&self) {
        let _ = self.tx.try_send(Request::Reset);
    }
}

/// `POST /admin/clock/advance`: the driver moves the clock and fires every timer that comes due
/// before it answers.
impl emu_core::lifecycle::Advance for DriverHandle {
    fn advance(&self, ms: Millis) -> Pin<Box<dyn Future<Output = Result<Millis, AdvanceError>> + Send + '_>> {
        Box::pin(
            async move { self.ask(|reply| Request::Advance { ms, reply }).await.map_err(|_| AdvanceError::Stopped)? },
        )
    }
}

pub struct Driver {
    pub(crate) shared: Shared,
    pub(crate) switch: Switch,
    pub(crate) hub: Arc<Hub>,
    mns: Arc<emu_mns::Mns>,
    pub(crate) media: Arc<MediaServer>,
    callbacks: mpsc::Sender<(String, CallbackKind, Result<Value, CallbackFailure>)>,
    http: reqwest::Client,
    /// The ACK of the device request being handled, when the gateway held it back to go out with
    /// the media server's answer (`emu_gateway::HeldAck`); sent on its own if nothing follows.
    held_ack: Option<HeldAck>,
}

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
            recent_call_bytes: shared.config.retention.recent_call_bytes,
        },
        routing_from_config(shared),
    )
}

fn switch_from_config(shared: &Shared, pstn: PstnSim) -> Switch {
    let names = shared.tenants.all().iter().map(|t| t.name.clone()).collect();
    let r = &shared.config.retention;
    Switch::new(engine_from_config(shared), pstn, names, Limit::new(r.cdrs, r.cdr_bytes))
}

/// How many queued gateway events one wake-up of the driver serves at most (timers due and
/// admin requests are looked at between batches).
const GATEWAY_BATCH: usize = 64;

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
    let (requests_tx, mut requests) = mpsc::channel::<Request>(1024);
    let (cb_tx, mut cb_rx) = mpsc::channel(1024);
    let mut driver = Driver {
        switch: switch_from_config(&shared, pstn),
        callbacks: cb_tx,
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?,
        shared,
        hub,
        mns,
        media,
        held_ack: None,
    };
    driver.make_configured_devices().map_err(|e| anyhow::anyhow!("{e}"))?;
    let task = tokio::spawn(async move {
        loop {
            let sleep = driver.sleep_for_next_timer();
            tokio::select! {
                Some(ev) = gateway.recv() => {
                    driver.on_gateway(ev);
                    // Whatever else the gateway queued meanwhile, in order, before the timers are
                    // looked at again: under load one wake-up serves many device messages.
                    for _ in 0..GATEWAY_BATCH {
                        let Ok(ev) = gateway.try_recv() else { break };
                        driver.fire_due();
                        driver.on_gateway(ev);
                    }
                }
                Some(request) = requests.recv() => driver.serve(request),
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
    Ok((DriverHandle { tx: requests_tx }, task))
}

impl Driver {
    pub(crate) fn now(&self) -> Millis {
        self.shared.clock.now_ms()
    }

    /// Sleeps (in real time) until the next engine or PSTN deadline; forever on a manual clock,
    /// where only `POST /admin/clock/advance` moves time.
    fn sleep_for_next_timer(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        match self.switch.poll_timeout().and_then(|at| self.shared.clock.real_duration(at.saturating_sub(self.now()))) {
            Some(d) => Box::pin(tokio::time::sleep(d)),
            None => Box::pin(std::future::pending()),
        }
    }

    /// Moves a manual clock and fires every timer that comes due, in order (the admin advance).
    pub(crate) fn advance(&mut self, ms: u64) -> Result<Millis, AdvanceError> {
        let now = self.shared.clock.advance(ms)?;
        self.fire_due();
        Ok(now)
    }

    /// Fires due timers of the engine and the PSTN in deadline order across both.
    pub(crate) fn fire_due(&mut self) {
        let effects = self.switch.fire_due(self.now());
        self.apply(effects);
    }

    fn on_gateway(&mut self, ev: GatewayEvent) {
        let now = self.now();
        let input = match ev {
            GatewayEvent::Request(r, None) => Input::Device(r),
            GatewayEvent::Request(r, held) => {
                self.held_ack = held;
                self.feed(Input::Device(r), now);
                if let Some(ack) = self.held_ack.take() {
                    self.hub.release_ack(ack);
                }
                return;
            }
            GatewayEvent::Ack { tenant, rtc_id, message_type, .. } => Input::DeviceAck { tenant, rtc_id, message_type },
            GatewayEvent::Registered { tenant, rtc_id, .. } => Input::DeviceOnline { tenant, rtc_id },
            GatewayEvent::Offline { tenant, rtc_id, reason } => {
                self.feed(Input::DeviceOffline { tenant, rtc_id: rtc_id.clone() }, now);
                self.virtual_offline(tenant, &rtc_id, reason, now);
                return;
            }
            GatewayEvent::Undelivered { .. } => return,
        };
        self.feed(input, now);
    }

    /// An account went offline in the gateway. A virtual device's registration that a real SDK
    /// took over is kicked; an SDK kicked by a virtual device's registration leaves the account
    /// online (the virtual device has it now).
    fn virtual_offline(&mut self, tenant: TenantId, rtc_id: &str, reason: &str, now: Millis) {
        if !self.switch.voip.contains(tenant, rtc_id) {
            return;
        }
        if self.hub.virtual_conn(tenant, rtc_id).is_some() {
            self.feed(Input::DeviceOnline { tenant, rtc_id: rtc_id.to_string() }, now);
        } else if reason == "kicked" {
            let ((), effects) = self.switch.with_voip(now, |v| v.kicked(tenant, rtc_id, now));
            self.apply(effects);
        }
    }

    pub(crate) fn feed(&mut self, input: Input, now: Millis) {
        let effects = self.switch.feed(input, now);
        self.apply(effects);
    }

    /// Carries out the switch's effects, in order.
    pub(crate) fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { tenant, rtc_id, message, virtual_ack } => {
                    if let Some(request_id) = self.send(tenant, &rtc_id, &message)
                        && virtual_ack
                    {
                        self.hub.virtual_ack(tenant, &rtc_id, &request_id);
                    }
                }
                Effect::VirtualPresence { tenant, rtc_id, device_id, online } => {
                    if online {
                        self.hub.register_virtual(tenant, &rtc_id, &device_id);
                    } else {
                        self.hub.unregister_virtual(tenant, &rtc_id);
                    }
                }
                Effect::Callback { channel_id, tenant, kind, url, body } => {
                    self.callback(channel_id, tenant, kind, url, body)
                }
                Effect::Media(cmd) => self.media(cmd),
                Effect::PhoneDtmf { channel_id, digit } => {
                    self.media.phone_dtmf(&channel_id, digit);
                }
                Effect::Receipt { tenant, message_type, report, json } => {
                    self.receipt(tenant, message_type, Receipt::Cdr(report, json))
                }
                Effect::Event(e) => self.shared.events.record(e),
            }
        }
    }

    /// Sends a server request to a device (the gateway encodes its JSON `mediaSignal`). Returns
    /// its requestId.
    fn send(&mut self, tenant: TenantId, rtc_id: &str, message: &ServerMessage) -> Option<Arc<str>> {
        let message_type = message.message_type();
        match self.hub.send_message_after(tenant, rtc_id, message, &mut self.held_ack) {
            Ok(request_id) => Some(request_id),
            Err(_) => {
                tracing::info!(rtc_id, message_type, "device not registered; message not sent");
                None
            }
        }
    }

    fn callback(&self, channel_id: String, tenant: TenantId, kind: CallbackKind, url: String, body: Value) {
        self.shared.events.record(NewEvent {
            kind: "callback.request",
            channel_id: Some(channel_id.clone()),
            tenant: self.switch.tenant_label(tenant),
            detail: json!({"kind": kind, "url": url, "body": body}).into(),
            ..Default::default()
        });
        let http = self.http.clone();
        let results = self.callbacks.clone();
        let metrics = self.shared.metrics.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = post_callback(&http, &url, &body).await;
            metrics.callback_latency.observe(started.elapsed().as_secs_f64());
            if let Err(e) = &result {
                tracing::warn!(channel_id, ?kind, url, "callback failed: {e}");
            }
            let _ = results.send((channel_id, kind, result)).await;
        });
    }

    /// Carries out a media command: joinChannel and sdpCandidate results go back to the device.
    fn media(&mut self, cmd: MediaCommand) {
        match cmd {
            // A virtual device has no WebRTC leg: the media server plays its side (`Bridge`).
            MediaCommand::Join { tenant, rtc_id, .. } | MediaCommand::Signal { tenant, rtc_id, .. }
                if self.switch.voip.contains(tenant, &rtc_id) => {}
            MediaCommand::Join { channel_id, tenant, rtc_id, uuid, signal, video } => {
                let tenant_name = self.shared.tenants.get(tenant).name.clone();
                let rtc_type = self.switch.engine.call(&channel_id).map(|c| c.rtc_type.as_str()).unwrap_or_default();
                let options = LegOptions { prefer: CodecPreference::for_call_type(rtc_type), video };
                let result = self.media.join_with(&channel_id, &tenant_name, &rtc_id, &uuid, &signal, options);
                let message = ServerMessage::MediaResult { uuid, channel_id, media_signal: Box::new(result) };
                self.send(tenant, &rtc_id, &message);
            }
            MediaCommand::Signal { channel_id, tenant, rtc_id, uuid, api, signal } => {
                if let Some(result) = self.media.signal(&channel_id, &rtc_id, &uuid, api.as_str(), &signal) {
                    let message = ServerMessage::MediaResult { uuid, channel_id, media_signal: Box::new(result) };
                    self.send(tenant, &rtc_id, &message);
                }
            }
            MediaCommand::Bridge { channel_id, record } => {
                let Some(call) = self.switch.engine.call(&channel_id) else { return };
                let phone =
                    |n: &str| Endpoint::Phone { number: n.to_string(), audio: self.switch.pstn.behavior_of(n).0.audio };
                // A virtual device's audio is synthesized like a phone's.
                let device = |rtc_id: &str| match self.switch.voip.behavior(call.tenant, rtc_id) {
                    Some(b) => Endpoint::Phone { number: rtc_id.to_string(), audio: b.audio.clone() },
                    None => Endpoint::Device { rtc_id: rtc_id.to_string() },
                };
                let caller = match &call.caller {
                    Caller::Device { rtc_id, .. } => device(rtc_id),
                    Caller::Phone { number, .. } => phone(number),
                };
                let Some(leg) = call.answered_leg() else { return };
                let callee = match &leg.target {
                    Target::Device { rtc_id } => device(rtc_id),
                    Target::Phone { number, .. } => phone(number),
                };
                let record = self.media.should_record(call.rtc_type.as_str(), record);
                self.media.bridge(&channel_id, caller, callee, record);
                if record {
                    self.switch.engine.mark_recorded(&channel_id);
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
            self.shared.events.record(NewEvent {
                kind,
                channel_id: Some(channel_id),
                detail: detail.into(),
                ..Default::default()
            })
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
            MediaEvent::VideoNegotiated { channel_id, rtc_id, video } => {
                log("media.video", channel_id.clone(), json!({"rtcId": rtc_id, "video": video}));
                self.feed(Input::VideoNegotiated { channel_id, rtc_id, video }, now);
            }
            MediaEvent::VideoFlowing { channel_id, rtc_id } => {
                log("media.video_flowing", channel_id.clone(), json!({"rtcId": rtc_id}));
                self.feed(Input::VideoFlowing { channel_id, rtc_id }, now);
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
        let Some(call) = self.switch.engine.call(channel_id) else { return };
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
        self.receipt(call.tenant, "VoiceRecordReport", Receipt::Json(report));
    }

    /// Puts a receipt in the tenant's MNS queue (and its HTTP pushes), off the driver's task:
    /// a slow disk must not hold up calls.
    fn receipt(&self, tenant: TenantId, message_type: &'static str, report: Receipt) {
        let mns = self.mns.clone();
        tokio::spawn(async move {
            let delivered = match report {
                Receipt::Cdr(r, json) => {
                    mns.queue_receipt(tenant, message_type, &json, Some(r.channel_id.clone())).await
                }
                Receipt::Json(v) => mns.deliver(tenant, message_type, &v).await.map(drop),
            };
            if let Err(e) = delivered {
                tracing::error!(message_type, "receipt not queued: {e}");
            }
        });
    }

    pub(crate) fn reset(&mut self) {
        let engine = engine_from_config(&self.shared);
        self.switch.reset(engine);
        self.media.reset();
        if let Err(e) = self.make_configured_devices() {
            tracing::error!("virtual devices not made again after the reset: {e}");
        }
    }
}

/// What a receipt carries: a call's typed CDR (shared with its list row and event) with its
/// JSON, or a report built as JSON (`VoiceRecordReport`).
enum Receipt {
    Cdr(Arc<CdrReport>, Vec<u8>),
    Json(Value),
}

/// The largest callback answer read.
const MAX_CALLBACK_ANSWER_BYTES: usize = 1 << 20;

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
    if !status.is_success() {
        return Err(CallbackFailure::Status(status.as_u16()));
    }
    // A callback answer is a few hundred bytes; a server streaming without end must not grow the
    // emulator's memory.
    let mut resp = resp;
    let mut answer = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| CallbackFailure::Transport(e.to_string()))? {
        if answer.len() + chunk.len() > MAX_CALLBACK_ANSWER_BYTES {
            return Err(CallbackFailure::TooLarge(MAX_CALLBACK_ANSWER_BYTES));
        }
        answer.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&answer).map_err(|e| CallbackFailure::InvalidJson(e.to_string()))
}
