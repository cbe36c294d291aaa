//! The event log (docs/architecture.md#event-log): every signalling message, registration, PSTN event and receipt,
//! with the call's channelId when it has one. A bounded ring for queries plus a broadcast for
//! live streams; recording never blocks the caller.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::cdr::CdrReport;
use crate::clock::{Clock, Millis};
use crate::metrics::Metrics;
use crate::retention::Chunks;

mod slot;
use slot::Slot;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub seq: u64,
    #[serde(rename = "timeMs")]
    pub time_ms: Millis,
    /// What happened, dotted: `envelope.in`, `envelope.out`, `device.registered`, …
    pub kind: &'static str,
    #[serde(rename = "channelId", skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    // Both names are shared with the connection and the tenant that own them (most events are
    // envelopes; copying the names for each cost allocations on every envelope).
    #[serde(rename = "rtcId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rtc_id: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tenant: Option<Arc<str>>,
    /// What the event carries: an envelope's readable body, a call's codes, … (by kind).
    #[schema(value_type = Value)]
    pub detail: Detail,
    /// The envelope as it crossed the wire (JSON), for `envelope.in`/`envelope.out`: its bytes,
    /// copied into the log's own storage ([`Chunks`]), turned into a readable `detail.body`
    /// only when someone reads the log ([`EventLog::readable`]).
    #[serde(skip)]
    pub wire: Option<Bytes>,
}

/// What an event carries. The gateway's envelope events, most of the log, are typed: a JSON tree
/// built and dropped for each of them was a measurable share of a call's CPU
/// (docs/benchmarks.md#per-call-cpu). Everything else carries the JSON its producer built.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Detail {
    Json(Value),
    /// A call's CDR (`cdr`), shared with the call, its list row and its receipt.
    Cdr(Arc<CdrReport>),
    Envelope(EnvelopeDetail),
    CallState(CallStateDetail),
}

/// A call's state change (`call.state`), as readers see it: `{"state", "detail"}` in that order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallStateDetail {
    pub state: &'static str,
    pub detail: Value,
}

/// An envelope that crossed the gateway (`envelope.in`, `envelope.out`, `envelope.ack`), as
/// readers see it: `{"messageType", "requestId", "code"?, "known"?}` in that order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvelopeDetail {
    #[serde(rename = "messageType")]
    pub message_type: std::borrow::Cow<'static, str>,
    /// Shared with the gateway's pending request or de-duplication entry of the same id.
    #[serde(rename = "requestId")]
    pub request_id: Arc<str>,
    /// The ACK's code: the one sent (`envelope.in`) or received (`envelope.ack`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// For `envelope.ack`: whether it answers a request the gateway sent and still awaited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known: Option<bool>,
}

impl Default for Detail {
    fn default() -> Self {
        Detail::Json(Value::Null)
    }
}

impl From<Value> for Detail {
    fn from(v: Value) -> Self {
        Detail::Json(v)
    }
}

impl From<CallStateDetail> for Detail {
    fn from(d: CallStateDetail) -> Self {
        Detail::CallState(d)
    }
}

impl From<EnvelopeDetail> for Detail {
    fn from(d: EnvelopeDetail) -> Self {
        Detail::Envelope(d)
    }
}

impl Detail {
    /// The JSON a producer built; `None` for a typed detail.
    pub fn json(&self) -> Option<&Value> {
        match self {
            Detail::Json(v) => Some(v),
            Detail::Cdr(_) | Detail::Envelope(_) | Detail::CallState(_) => None,
        }
    }

    /// A `call.state` event's state and its detail, whatever the representation.
    pub fn call_state(&self) -> Option<(&str, &Value)> {
        match self {
            Detail::CallState(d) => Some((d.state, &d.detail)),
            json => {
                let v = json.json()?;
                Some((v.get("state")?.as_str()?, v.get("detail").unwrap_or(&Value::Null)))
            }
        }
    }

    /// The envelope's messageType, for an envelope event.
    pub fn message_type(&self) -> Option<&str> {
        match self {
            Detail::Envelope(d) => Some(&d.message_type),
            json => json.json()?.get("messageType")?.as_str(),
        }
    }

    /// [`Detail::message_type`] as a label: shared, not copied, for an envelope event.
    pub fn message_type_name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Detail::Envelope(d) => d.message_type.clone(),
            json => json.message_type().unwrap_or_default().to_string().into(),
        }
    }

    /// One field of the detail as JSON (`Null` when absent), whatever its representation.
    pub fn field(&self, key: &str) -> Value {
        match self.json() {
            Some(v) => v.get(key).cloned().unwrap_or(Value::Null),
            None => self.to_value().get(key).cloned().unwrap_or(Value::Null),
        }
    }

    /// The detail as the JSON readers see.
    pub fn to_value(&self) -> Value {
        match self {
            Detail::Envelope(d) => serde_json::to_value(d).unwrap_or(Value::Null),
            Detail::CallState(d) => serde_json::to_value(d).unwrap_or(Value::Null),
            Detail::Cdr(r) => serde_json::to_value(&**r).unwrap_or(Value::Null),
            json => json.json().cloned().unwrap_or(Value::Null),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Detail::Json(v) => v,
            envelope => envelope.to_value(),
        }
    }
}

/// Turns an envelope's wire bytes into its readable body (the gateway's, registered at start).
pub type WireReader = fn(&[u8]) -> Option<Value>;

/// What a query selects.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub channel_id: Option<String>,
    pub rtc_id: Option<String>,
    pub kind_prefix: Option<String>,
    /// Only events with `seq > after`.
    pub after: Option<u64>,
    pub limit: Option<usize>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        self.matches_parts(e.seq, e.kind, e.channel_id.as_deref().map(str::as_bytes), e.rtc_id.as_deref())
    }

    /// [`EventFilter::matches`] on an event's parts (the ring's kept form holds its channelId as bytes).
    fn matches_parts(&self, seq: u64, kind: &str, channel_id: Option<&[u8]>, rtc_id: Option<&str>) -> bool {
        self.channel_id.as_ref().is_none_or(|c| channel_id == Some(c.as_bytes()))
            && self.rtc_id.as_deref().is_none_or(|r| rtc_id == Some(r))
            && self.kind_prefix.as_ref().is_none_or(|k| kind.starts_with(k.as_str()))
            && self.after.is_none_or(|a| seq > a)
    }
}

pub struct EventLog {
    clock: Clock,
    capacity: usize,
    max_bytes: usize,
    seq: AtomicU64,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Event>,
    wire_reader: OnceLock<WireReader>,
    /// Counts every event recorded (docs/metrics.md).
    metrics: Option<Arc<Metrics>>,
}

/// The retained events and what they weigh.
struct Ring {
    events: VecDeque<Slot>,
    bytes: usize,
    /// The envelopes' bytes and the events' own strings, in chunks freed in order as the oldest
    /// events go.
    chunks: Chunks,
}

/// The event log's chunks for envelope bytes: some fifty envelopes each.
const WIRE_CHUNK: usize = 64 << 10;

/// What an event counts for against `event_log_max_bytes`: a fixed share for its fields and
/// detail, plus an envelope's bytes (the only large part).
pub fn weight(e: &Event) -> usize {
    weigh(e.wire.as_ref())
}

fn weigh(wire: Option<&Bytes>) -> usize {
    256 + wire.map_or(0, Bytes::len)
}

/// The parts of an event its producer fills in.
#[derive(Debug, Default, Clone)]
pub struct NewEvent {
    pub kind: &'static str,
    pub channel_id: Option<String>,
    pub rtc_id: Option<Arc<str>>,
    pub tenant: Option<Arc<str>>,
    pub detail: Detail,
    pub wire: Option<Bytes>,
}

impl EventLog {
    pub fn new(clock: Clock, capacity: usize, max_bytes: usize) -> Self {
        EventLog {
            clock,
            capacity,
            max_bytes,
            seq: AtomicU64::new(0),
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity.min(4096)),
                bytes: 0,
                chunks: Chunks::new(WIRE_CHUNK, WIRE_CHUNK),
            }),
            live: broadcast::channel(4096).0,
            wire_reader: OnceLock::new(),
            metrics: None,
        }
    }

    /// Every event recorded is also counted in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How many events the log holds now.
    pub fn len(&self) -> usize {
        self.ring.lock().events.len()
    }

    /// What those events weigh together (see [`weight`]).
    pub fn bytes(&self) -> usize {
        self.ring.lock().bytes
    }

    /// Its size and caps, for `/metrics`.
    pub fn retained(&self) -> crate::retention::Retained {
        crate::retention::Retained {
            collection: "event_log",
            items: self.len(),
            bytes: self.bytes(),
            limit: crate::retention::Limit::new(self.capacity, self.max_bytes),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How envelope bytes become a readable body (the first registration wins).
    pub fn set_wire_reader(&self, reader: WireReader) {
        let _ = self.wire_reader.set(reader);
    }

    /// The event as readers see it: an envelope's wire bytes decoded into `detail.body`.
    pub fn readable(&self, mut e: Event) -> Event {
        if let (Some(wire), Some(read)) = (e.wire.take(), self.wire_reader.get())
            && let Some(body) = read(&wire)
        {
            let mut detail = std::mem::take(&mut e.detail).into_value();
            if let Some(fields) = detail.as_object_mut() {
                fields.insert("body".into(), body);
            }
            e.detail = Detail::Json(detail);
        }
        e
    }

    pub fn record(&self, e: NewEvent) {
        self.keep(e, None);
    }

    /// [`EventLog::record`] for an envelope event whose bytes the caller only borrows (a
    /// connection's read buffer, a packet about to be written): the log keeps a copy.
    pub fn record_envelope(&self, e: NewEvent, wire: &[u8]) {
        self.keep(e, Some(wire));
    }

    fn keep(&self, e: NewEvent, borrowed_wire: Option<&[u8]>) {
        let mut event = Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            time_ms: self.clock.now_ms(),
            kind: e.kind,
            channel_id: e.channel_id,
            rtc_id: e.rtc_id,
            tenant: e.tenant,
            detail: e.detail,
            wire: e.wire,
        };
        if let Some(m) = &self.metrics {
            m.observe(&event);
        }
        if self.capacity == 0 {
            return;
        }
        // The event evicted to make room (one, once the log is full) is dropped after the lock
        // is released: freeing its cold memory kept every other recorder waiting.
        let mut evicted = None;
        let mut ring = self.ring.lock();
        // Every envelope's bytes go into the log's own storage, one after the other.
        if let Some(copied) = borrowed_wire.or(event.wire.as_deref()).map(|wire| ring.chunks.copy(wire)) {
            event.wire = Some(copied);
        }
        let size = weight(&event);
        while !ring.events.is_empty() && (ring.events.len() >= self.capacity || ring.bytes + size > self.max_bytes) {
            if let Some(old) = ring.events.pop_front() {
                ring.bytes -= weigh(old.wire.as_ref());
                evicted = Some(old);
            }
        }
        ring.bytes += size;
        let live = (self.live.receiver_count() > 0).then(|| event.clone());
        let slot = Slot::keep(event, &mut ring.chunks);
        ring.events.push_back(slot);
        drop(ring);
        drop(evicted);
        if let Some(event) = live {
            let _ = self.live.send(event);
        }
    }

    /// Matching events, oldest first, readable; with a limit, the newest `limit` of them.
    pub fn query(&self, filter: &EventFilter) -> Vec<Event> {
        let v: Vec<Event> = {
            let ring = self.ring.lock();
            let matching: Vec<&Slot> = ring.events.iter().filter(|s| s.matches(filter)).collect();
            let skip = filter.limit.map_or(0, |limit| matching.len().saturating_sub(limit));
            matching[skip..].iter().map(|s| s.event()).collect()
        };
        // Decoded outside the lock: recording never waits for a reader's inflating.
        v.into_iter().map(|e| self.readable(e)).collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    pub fn clear(&self) {
        let mut ring = self.ring.lock();
        ring.events.clear();
        ring.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_state_reads_as_the_json_it_replaced() {
        let typed = Detail::from(CallStateDetail { state: "active", detail: serde_json::json!({"ringMs": 5}) });
        let json = serde_json::json!({"state": "active", "detail": {"ringMs": 5}});
        assert_eq!(serde_json::to_string(&typed).unwrap(), json.to_string(), "same text, same order");
        assert_eq!(typed.field("state"), "active");
        assert_eq!(typed.call_state(), Detail::Json(json.clone()).call_state());
        assert_eq!(typed.call_state(), Some(("active", &serde_json::json!({"ringMs": 5}))));
    }

    #[test]
    fn ring_is_bounded_and_filtered() {
        let log = EventLog::new(Clock::manual_at(0), 3, usize::MAX);
        for i in 0..5 {
            log.record(NewEvent {
                kind: "envelope.in",
                channel_id: Some(format!("c{}", i % 2)),
                detail: serde_json::json!({"i": i}).into(),
                ..Default::default()
            });
        }
        let all = log.query(&EventFilter::default());
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        let c0 = log.query(&EventFilter { channel_id: Some("c0".into()), ..Default::default() });
        assert_eq!(c0.len(), 2);
        let after = log.query(&EventFilter { after: Some(4), ..Default::default() });
        assert_eq!(after.len(), 1);
        let limited = log.query(&EventFilter { limit: Some(1), ..Default::default() });
        assert_eq!(limited[0].seq, 5);
    }

    #[test]
    fn an_envelope_detail_reads_as_the_json_it_replaced() {
        let d = Detail::from(EnvelopeDetail {
            message_type: "call".into(),
            request_id: "r1".into(),
            code: Some(200),
            known: Some(true),
        });
        let json = serde_json::json!({"messageType": "call", "requestId": "r1", "code": 200, "known": true});
        // Key order included: readers (the console's ladder, users' scripts) see the same text.
        assert_eq!(serde_json::to_string(&d).unwrap(), serde_json::to_string(&json).unwrap());
        assert_eq!(d.to_value(), json);
        assert_eq!(d.field("code"), 200);
        assert_eq!(d.field("absent"), Value::Null);
        assert_eq!(d.message_type(), Some("call"));
        let out = Detail::from(EnvelopeDetail {
            message_type: "called".into(),
            request_id: "r2".into(),
            code: None,
            known: None,
        });
        assert_eq!(serde_json::to_string(&out).unwrap(), r#"{"messageType":"called","requestId":"r2"}"#);
        assert_eq!(Detail::from(serde_json::json!({"messageType": "x"})).message_type(), Some("x"));
    }

    #[test]
    fn a_readable_envelope_event_gains_its_body() {
        let log = EventLog::new(Clock::manual_at(0), 10, usize::MAX);
        log.set_wire_reader(|wire| serde_json::from_slice::<Value>(wire).ok()?.get("body").cloned());
        log.record(NewEvent {
            kind: "envelope.in",
            detail: EnvelopeDetail {
                message_type: "call".into(),
                request_id: "r1".into(),
                code: Some(200),
                known: None,
            }
            .into(),
            wire: Some(Bytes::from_static(br#"{"body":{"a":1}}"#)),
            ..Default::default()
        });
        let [e] = &log.query(&EventFilter::default())[..] else { panic!("one event") };
        assert_eq!(
            e.detail,
            Detail::Json(serde_json::json!({"messageType": "call", "requestId": "r1", "code": 200, "body": {"a": 1}}))
        );
    }

    #[test]
    fn a_zero_size_log_keeps_and_streams_nothing() {
        // `server.event_log_size = 0` (docs/configuration.md): the cheapest calls, no timeline.
        let log = EventLog::new(Clock::manual_at(0), 0, usize::MAX);
        let mut live = log.subscribe();
        log.record(NewEvent { kind: "call.state", channel_id: Some("c".into()), ..Default::default() });
        assert!(log.is_empty());
        assert!(log.query(&EventFilter::default()).is_empty());
        assert!(matches!(live.try_recv(), Err(broadcast::error::TryRecvError::Empty)));
        // With a size it keeps and streams the same event.
        let log = EventLog::new(Clock::manual_at(0), 1, usize::MAX);
        let mut live = log.subscribe();
        log.record(NewEvent { kind: "call.state", channel_id: Some("c".into()), ..Default::default() });
        assert_eq!(log.len(), 1);
        assert_eq!(live.try_recv().map(|e| e.kind).ok(), Some("call.state"));
    }

    #[test]
    fn the_log_keeps_its_own_copy_of_an_envelope() {
        let log = EventLog::new(Clock::manual_at(0), 10, usize::MAX);
        let packet = Bytes::from(br#"{"body":{"a":1}}"#.to_vec());
        log.record(NewEvent { kind: "envelope.out", wire: Some(packet.clone()), ..Default::default() });
        let mut read_buffer = br#"{"body":{"b":2}}"#.to_vec();
        log.record_envelope(NewEvent { kind: "envelope.in", ..Default::default() }, &read_buffer);
        read_buffer.fill(b'x');
        let ring = log.ring.lock();
        let wires: Vec<&Bytes> = ring.events.iter().filter_map(|e| e.wire.as_ref()).collect();
        assert_eq!(wires, [&packet, &Bytes::from_static(br#"{"body":{"b":2}}"#)]);
        assert_ne!(wires[0].as_ptr(), packet.as_ptr(), "not the packet's memory");
        assert_eq!(ring.bytes, 2 * 256 + 2 * packet.len());
    }

    #[test]
    fn bytes_are_capped_too() {
        // Room for 10 small events, or 2 with 1 KiB envelopes.
        let log = EventLog::new(Clock::manual_at(0), 100, 2_560);
        for _ in 0..20 {
            log.record(NewEvent { kind: "call.state", ..Default::default() });
        }
        assert_eq!((log.len(), log.bytes()), (10, 2_560));
        for _ in 0..5 {
            log.record(NewEvent {
                kind: "envelope.in",
                wire: Some(Bytes::from(vec![b'x'; 1024])),
                ..Default::default()
            });
        }
        assert_eq!((log.len(), log.bytes()), (2, 2 * 1_280));
        assert!(log.query(&EventFilter::default()).iter().all(|e| e.kind == "envelope.in"));
        // One event larger than the cap is still kept (alone).
        log.record(NewEvent { kind: "envelope.in", wire: Some(Bytes::from(vec![b'x'; 4096])), ..Default::default() });
        assert_eq!(log.len(), 1);
        log.clear();
        assert_eq!((log.len(), log.bytes()), (0, 0));
    }
}
