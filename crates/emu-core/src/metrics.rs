//! Prometheus metrics (docs/metrics.md), served as text at `GET /metrics` on the admin listener.
//!
//! Most counters are derived from the event log ([`Metrics::observe`], called for every event
//! recorded), so a metric and the event that explains it never disagree. The rest are counted
//! where no event exists (POP requests, MNS operations, ACK latency), and the sizes of things
//! (devices, queues, media legs) are gauges the admin API sets just before it encodes.

use std::borrow::Cow;

use crate::json_path::at;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::events::{Detail, Event};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionCode {
    pub action: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Code {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageType {
    pub message_type: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallEnding {
    pub rtc_type: String,
    pub cause_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindReason {
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PstnEvent {
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Collection {
    pub collection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Op {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct State {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueState {
    pub tenant: String,
    pub queue: String,
    pub state: String,
}

/// Seconds, from 1 ms to ~16 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15)
}

/// Every metric of the product, registered once.
pub struct Metrics {
    registry: Registry,
    // POP API
    pub pop_requests: Family<ActionCode, Counter>,
    pub pop_auth_failures: Family<Code, Counter>,
    // MQTT gateway
    pub mqtt_connections: Gauge,
    pub devices: Family<State, Gauge>,
    pub envelopes_in: Family<MessageType, Counter>,
    pub envelopes_out: Family<MessageType, Counter>,
    pub retransmissions: Family<MessageType, Counter>,
    pub undelivered: Family<MessageType, Counter>,
    pub dedupe_hits: Counter,
    pub ack_latency: Histogram,
    pub registrations: Counter,
    pub kicks: Counter,
    pub tokens_refused: Counter,
    // Calls
    pub calls_started: Counter,
    pub calls_answered: Counter,
    pub calls_active: Gauge,
    pub calls_ended: Family<CallEnding, Counter>,
    pub ring_seconds: Histogram,
    pub callbacks: Family<Kind, Counter>,
    pub callback_failures: Family<KindReason, Counter>,
    pub callback_latency: Histogram,
    pub pstn_events: Family<PstnEvent, Counter>,
    pub custom_messages: Family<Outcome, Counter>,
    // Media
    pub media_channels: Gauge,
    pub media_legs: Family<State, Gauge>,
    pub media_rtp_packets: Family<Op, Gauge>,
    pub turn_users: Gauge,
    pub recordings: Counter,
    pub video_streams: Counter,
    pub video_to_audio: Counter,
    // MNS
    pub mns_queue_messages: Family<QueueState, Gauge>,
    pub mns_messages: Family<Op, Counter>,
    pub receipts: Family<MessageType, Counter>,
    pub push_attempts: Family<Outcome, Counter>,
    // Retained state
    pub event_log_events: Gauge,
    pub event_log_bytes: Gauge,
    pub pop_request_log_entries: Gauge,
    pub retained_items: Family<Collection, Gauge>,
    pub retained_bytes: Family<Collection, Gauge>,
    pub retention_limit_items: Family<Collection, Gauge>,
    pub retention_limit_bytes: Family<Collection, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("alicom");
        macro_rules! reg {
            ($name:literal, $help:literal, $metric:expr) => {{
                let m = $metric;
                r.register($name, $help, m.clone());
                m
            }};
        }
        Metrics {
            pop_requests: reg!(
                "pop_requests",
                "POP API requests by action and result code (OK for a success)",
                Family::default()
            ),
            pop_auth_failures: reg!(
                "pop_auth_failures",
                "POP requests refused for their credentials or signature, by code",
                Family::default()
            ),
            mqtt_connections: reg!("mqtt_connections", "Open MQTT network connections", Gauge::default()),
            devices: reg!(
                "devices",
                "Registered devices (SDK and virtual) by state: online, offline",
                Family::default()
            ),
            envelopes_in: reg!("envelopes_in", "Device requests received, by messageType", Family::default()),
            envelopes_out: reg!("envelopes_out", "Server requests sent to devices, by messageType", Family::default()),
            retransmissions: reg!(
                "retransmissions",
                "Server requests sent again for want of an ACK",
                Family::default()
            ),
            undelivered: reg!("envelopes_undelivered", "Server requests never ACKed", Family::default()),
            dedupe_hits: reg!(
                "dedupe_hits",
                "Device requests received again (same requestId): re-ACKed, not processed",
                Counter::default()
            ),
            ack_latency: reg!(
                "ack_latency_seconds",
                "From sending a server request to the device's ACK (real time)",
                Histogram::new(latency_buckets())
            ),
            registrations: reg!(
                "device_registrations",
                "Devices registered (cs_register or a virtual device)",
                Counter::default()
            ),
            kicks: reg!("device_kicks", "Devices logged out by another login or the admin API", Counter::default()),
            tokens_refused: reg!("tokens_refused", "Token uploads refused", Counter::default()),
            calls_started: reg!(
                "calls_started",
                "Calls begun (a caller joined, or a phone called in)",
                Counter::default()
            ),
            calls_answered: reg!("calls_answered", "Calls answered", Counter::default()),
            calls_active: reg!("calls_active", "Calls begun and not ended", Gauge::default()),
            calls_ended: reg!(
                "calls_ended",
                "Calls ended (one CDR each), by alicomRtcType and causeCode",
                Family::default()
            ),
            ring_seconds: reg!(
                "call_ring_seconds",
                "From a call's start to its answer (emulator clock)",
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.25, 2.0, 10))
            ),
            callbacks: reg!("callbacks", "Requests to the customer's callback server, by kind", Family::default()),
            callback_failures: reg!(
                "callback_failures",
                "Callback requests that failed, by kind and reason",
                Family::default()
            ),
            callback_latency: reg!(
                "callback_latency_seconds",
                "Callback request to its answer (real time)",
                Histogram::new(latency_buckets())
            ),
            pstn_events: reg!("pstn_events", "Simulated PSTN events and commands, by event", Family::default()),
            custom_messages: reg!(
                "custom_messages",
                "Custom messages by outcome: sent, delivered, failed",
                Family::default()
            ),
            media_channels: reg!("media_channels", "Channels with media", Gauge::default()),
            media_legs: reg!("media_legs", "Media legs by state: all, connected", Family::default()),
            media_rtp_packets: reg!(
                "media_rtp_packets",
                "RTP packets of the live legs, by direction (in, out); released legs drop out",
                Family::default()
            ),
            turn_users: reg!("turn_allocations", "TURN users with credentials (one per joined leg)", Gauge::default()),
            recordings: reg!("recordings", "Recordings written", Counter::default()),
            video_streams: reg!(
                "video_streams",
                "Parties of video calls whose video reached the other party",
                Counter::default()
            ),
            video_to_audio: reg!(
                "video_calls_to_audio",
                "Video calls that became audio (a party without video)",
                Counter::default()
            ),
            mns_queue_messages: reg!(
                "mns_queue_messages",
                "Messages in MNS queues, by tenant, queue and state (active, inactive, delayed)",
                Family::default()
            ),
            mns_messages: reg!("mns_messages", "MNS message operations: sent, received, deleted", Family::default()),
            receipts: reg!("receipts", "Receipts (CDRs, recording reports) queued, by messageType", Family::default()),
            push_attempts: reg!(
                "mns_push_attempts",
                "HTTP pushes of receipts, by outcome: ok, failed",
                Family::default()
            ),
            event_log_events: reg!("event_log_events", "Events retained in the event log", Gauge::default()),
            event_log_bytes: reg!(
                "event_log_bytes",
                "What the retained events weigh (server.event_log_max_bytes caps it)",
                Gauge::default()
            ),
            pop_request_log_entries: reg!(
                "pop_request_log_entries",
                "Requests retained in the POP request log",
                Gauge::default()
            ),
            retained_items: reg!(
                "retained_items",
                "Entries kept for the admin API, by collection (docs/admin-api.md#what-is-retained-and-how-much)",
                Family::default()
            ),
            retained_bytes: reg!("retained_bytes", "What the kept entries weigh, by collection", Family::default()),
            retention_limit_items: reg!(
                "retention_limit_items",
                "The count cap of each collection (from the configuration)",
                Family::default()
            ),
            retention_limit_bytes: reg!(
                "retention_limit_bytes",
                "The byte cap of each collection (from the configuration)",
                Family::default()
            ),
            registry: r,
        }
    }

    /// Sets the four retention gauges of one collection.
    pub fn set_retained(&self, r: &crate::retention::Retained) {
        let label = Collection { collection: r.collection.to_string() };
        self.retained_items.get_or_create(&label).set(r.items as i64);
        self.retained_bytes.get_or_create(&label).set(r.bytes as i64);
        self.retention_limit_items.get_or_create(&label).set(r.limit.items.min(i64::MAX as usize) as i64);
        self.retention_limit_bytes.get_or_create(&label).set(r.limit.bytes.min(i64::MAX as usize) as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One POP request's outcome (`code` is `OK` for a success).
    pub fn pop_request(&self, action: &str, code: &str) {
        let action = if action.is_empty() { "(none)" } else { action };
        self.pop_requests.get_or_create(&ActionCode { action: action.into(), code: code.into() }).inc();
        if ["Signature", "AccessKey", "TimeStamp", "Nonce", "SecurityToken"].iter().any(|k| code.contains(k)) {
            self.pop_auth_failures.get_or_create(&Code { code: code.into() }).inc();
        }
    }

    /// MNS message operations (`op`: sent, received, deleted).
    pub fn mns(&self, op: &'static str, n: usize) {
        self.mns_messages.get_or_create(&Op { op: op.into() }).inc_by(n as u64);
    }

    /// Counts what an event says happened.
    pub fn observe(&self, e: &Event) {
        let message_type = || MessageType { message_type: e.detail.message_type_name() };
        // The kinds below the envelopes carry JSON.
        let d = e.detail.json().unwrap_or(&Value::Null);
        let text = |key: &str| d.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        match e.kind {
            "envelope.in" => {
                self.envelopes_in.get_or_create(&message_type()).inc();
            }
            "envelope.out" => {
                self.envelopes_out.get_or_create(&message_type()).inc();
            }
            "envelope.retransmit" => {
                self.retransmissions.get_or_create(&message_type()).inc();
            }
            "envelope.undelivered" => {
                self.undelivered.get_or_create(&message_type()).inc();
            }
            "device.registered" => {
                self.registrations.inc();
            }
            "device.kicked" => {
                self.kicks.inc();
            }
            "token.refused" => {
                self.tokens_refused.inc();
            }
            "call.state" => match e.detail.call_state() {
                Some(("joining", _)) => {
                    self.calls_started.inc();
                    self.calls_active.inc();
                }
                Some(("active", detail)) => {
                    self.calls_answered.inc();
                    if let Some(ms) = detail.get("ringMs").and_then(Value::as_u64) {
                        self.ring_seconds.observe(ms as f64 / 1000.0);
                    }
                }
                Some(("ended", _)) => {
                    self.calls_active.dec();
                }
                Some(("media_mode", _)) => {
                    self.video_to_audio.inc();
                }
                _ => {}
            },
            "cdr" => {
                let ending = match &e.detail {
                    Detail::Cdr(r) => CallEnding {
                        rtc_type: r.alicom_rtc_type.to_string(),
                        // As the JSON reads: a call ended without a code says `null`.
                        cause_code: r.detail.cause_code.map_or_else(|| "null".to_string(), |c| c.to_string()),
                    },
                    _ => CallEnding {
                        rtc_type: text("alicomRtcType"),
                        cause_code: at(d, "/detail/causeCode").map(|c| c.to_string()).unwrap_or_default(),
                    },
                };
                self.calls_ended.get_or_create(&ending).inc();
            }
            "callback.request" => {
                self.callbacks.get_or_create(&Kind { kind: kind_of(d) }).inc();
            }
            "callback.answer" => {
                if let Some(err) = at(d, "/result/error").and_then(Value::as_str) {
                    let reason = err.split(':').next().unwrap_or(err).trim().to_string();
                    self.callback_failures.get_or_create(&KindReason { kind: kind_of(d), reason }).inc();
                }
            }
            "receipt.queued" => {
                self.receipts.get_or_create(&message_type()).inc();
            }
            "receipt.push" => {
                let ok = d.get("ok").and_then(Value::as_bool).unwrap_or(false);
                self.push_attempts.get_or_create(&Outcome { outcome: if ok { "ok" } else { "failed" }.into() }).inc();
            }
            "media.recording" => {
                self.recordings.inc();
            }
            "media.video_flowing" => {
                self.video_streams.inc();
            }
            "message.sent" | "message.delivered" | "message.failed" => {
                self.custom_messages.get_or_create(&Outcome { outcome: e.kind["message.".len()..].into() }).inc();
            }
            k if k.starts_with("pstn.") => {
                self.pstn_events.get_or_create(&PstnEvent { event: k["pstn.".len()..].into() }).inc();
            }
            _ => {}
        }
    }
}

/// A callback's kind (`Outbound`, `Inbound`) as a label: lower case.
fn kind_of(d: &Value) -> String {
    d.get("kind").and_then(Value::as_str).unwrap_or_default().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &'static str, detail: Value) -> Event {
        Event {
            seq: 1,
            time_ms: 0,
            kind,
            channel_id: None,
            rtc_id: None,
            tenant: None,
            detail: detail.into(),
            wire: None,
        }
    }

    #[test]
    fn events_become_counters() {
        let m = Metrics::new();
        m.observe(&event("envelope.in", json!({"messageType": "call"})));
        let typed = crate::events::EnvelopeDetail {
            message_type: "call".into(),
            request_id: "r".into(),
            code: Some(200),
            known: None,
        };
        m.observe(&Event { detail: typed.into(), ..event("envelope.in", Value::Null) });
        m.observe(&event("call.state", json!({"state": "joining"})));
        m.observe(&event("call.state", json!({"state": "active", "detail": {"ringMs": 1500}})));
        m.observe(&event("cdr", json!({"alicomRtcType": "voip2voip", "detail": {"causeCode": 2000099}})));
        // The engine's CDR is typed; it counts the same.
        let report = crate::cdr::CdrReport {
            channel_id: "c".into(),
            caller: "a".into(),
            callee: "b".into(),
            alicom_rtc_type: "voip2voip",
            end_time: String::new(),
            duration: "0".into(),
            extend: String::new(),
            call_in_info: crate::cdr::CallIn {
                caller: "a".into(),
                callee: "b".into(),
                start_time: String::new(),
                end_time: String::new(),
                duration: "0".into(),
            },
            call_out_info: Vec::new(),
            detail: crate::cdr::CdrDetail {
                end_reason: None,
                cause_code: Some(2000099),
                display_number: None,
                need_record: false,
            },
            start_time: None,
        };
        m.observe(&Event { detail: Detail::Cdr(std::sync::Arc::new(report)), ..event("cdr", Value::Null) });
        m.observe(&event("call.state", json!({"state": "ended"})));
        m.observe(&event("callback.answer", json!({"kind": "Outbound", "result": {"error": "timed out: 3000 ms"}})));
        m.pop_request("GetRtcToken", "SignatureDoesNotMatch");
        let text = m.encode();
        for line in [
            "alicom_envelopes_in_total{message_type=\"call\"} 2",
            "alicom_calls_started_total 1",
            "alicom_calls_active 0",
            "alicom_calls_ended_total{rtc_type=\"voip2voip\",cause_code=\"2000099\"} 2",
            "alicom_call_ring_seconds_count 1",
            "alicom_callback_failures_total{kind=\"outbound\",reason=\"timed out\"} 1",
            "alicom_pop_requests_total{action=\"GetRtcToken\",code=\"SignatureDoesNotMatch\"} 1",
            "alicom_pop_auth_failures_total{code=\"SignatureDoesNotMatch\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
