//! An event as the log's ring keeps it: every string it owns alone (its channelId, an
//! envelope's requestId, a call state's detail as JSON text) copied into the log's chunks beside
//! the envelopes' bytes, so that the event evicted hundreds of calls later frees no small cold
//! allocations of its own, and the strings a producer built are freed at once, while they are
//! still in the caches (docs/architecture.md#event-log). Readers get an [`Event`] back.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::{CallStateDetail, Detail, EnvelopeDetail, Event, EventFilter};
use crate::clock::Millis;
use crate::retention::Chunks;

pub(super) struct Slot {
    pub(super) seq: u64,
    time_ms: Millis,
    pub(super) kind: &'static str,
    /// UTF-8, copied from the event's `String`.
    channel_id: Option<Bytes>,
    rtc_id: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
    detail: KeptDetail,
    pub(super) wire: Option<Bytes>,
}

enum KeptDetail {
    Envelope {
        message_type: Cow<'static, str>,
        request_id: Bytes,
        code: Option<i64>,
        known: Option<bool>,
    },
    /// The state's detail serialized: a call state's detail is a small object of strings and
    /// integers, which reads back as the same JSON.
    CallState {
        state: &'static str,
        detail: Bytes,
    },
    /// A producer's JSON and a shared CDR, as they are.
    Other(Detail),
}

impl Slot {
    /// `event`, its strings copied into `chunks` (its wire already is).
    pub(super) fn keep(event: Event, chunks: &mut Chunks) -> Slot {
        let detail = match event.detail {
            Detail::Envelope(d) => KeptDetail::Envelope {
                message_type: d.message_type,
                request_id: chunks.copy(d.request_id.as_bytes()),
                code: d.code,
                known: d.known,
            },
            Detail::CallState(d) => match chunks.json(&d.detail) {
                Ok(detail) => KeptDetail::CallState { state: d.state, detail },
                Err(_) => KeptDetail::Other(Detail::CallState(d)),
            },
            other => KeptDetail::Other(other),
        };
        Slot {
            seq: event.seq,
            time_ms: event.time_ms,
            kind: event.kind,
            channel_id: event.channel_id.map(|c| chunks.copy(c.as_bytes())),
            rtc_id: event.rtc_id,
            tenant: event.tenant,
            detail,
            wire: event.wire,
        }
    }

    /// The event as it was recorded.
    pub(super) fn event(&self) -> Event {
        let detail = match &self.detail {
            KeptDetail::Envelope { message_type, request_id, code, known } => Detail::Envelope(EnvelopeDetail {
                message_type: message_type.clone(),
                request_id: Arc::from(text(request_id)),
                code: *code,
                known: *known,
            }),
            KeptDetail::CallState { state, detail } => Detail::CallState(CallStateDetail {
                state,
                detail: serde_json::from_slice(detail).unwrap_or(Value::Null),
            }),
            KeptDetail::Other(d) => d.clone(),
        };
        Event {
            seq: self.seq,
            time_ms: self.time_ms,
            kind: self.kind,
            channel_id: self.channel_id.as_deref().map(|c| text(c).to_string()),
            rtc_id: self.rtc_id.clone(),
            tenant: self.tenant.clone(),
            detail,
            wire: self.wire.clone(),
        }
    }

    pub(super) fn matches(&self, filter: &EventFilter) -> bool {
        filter.matches_parts(self.seq, self.kind, self.channel_id.as_deref(), self.rtc_id.as_deref())
    }
}

/// Bytes copied from a `str`.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_reads_back_as_it_was_recorded() {
        let mut chunks = Chunks::new(256, 256);
        let events = [
            Event {
                seq: 7,
                time_ms: 1_000,
                kind: "envelope.in",
                channel_id: Some("ch-é".into()),
                rtc_id: Some("rtc".into()),
                tenant: Some("t".into()),
                detail: EnvelopeDetail {
                    message_type: "call".into(),
                    request_id: "r1".into(),
                    code: Some(200),
                    known: None,
                }
                .into(),
                wire: Some(Bytes::from_static(b"{}")),
            },
            Event {
                seq: 8,
                time_ms: 1_001,
                kind: "call.state",
                channel_id: Some("ch".into()),
                rtc_id: None,
                tenant: None,
                detail: CallStateDetail { state: "ended", detail: json!({"reason": "hangup", "causeCode": 2000099}) }
                    .into(),
                wire: None,
            },
            Event {
                seq: 9,
                time_ms: 1_002,
                kind: "receipt.queued",
                channel_id: None,
                rtc_id: None,
                tenant: None,
                detail: json!({"queue": "q", "n": 1.5}).into(),
                wire: None,
            },
        ];
        let slots: Vec<Slot> = events.iter().map(|e| Slot::keep(e.clone(), &mut chunks)).collect();
        for (slot, event) in slots.iter().zip(&events) {
            let back = slot.event();
            assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(event).unwrap());
            assert_eq!(back.detail, event.detail);
        }
        // The strings live in the chunk, one after another.
        let (KeptDetail::Envelope { request_id, .. }, Some(channel)) = (&slots[0].detail, &slots[0].channel_id) else {
            panic!("an envelope with a channel")
        };
        assert_eq!(channel.as_ptr(), request_id[request_id.len()..].as_ptr());
        let filter = |channel_id: &str| EventFilter { channel_id: Some(channel_id.into()), ..Default::default() };
        assert!(slots[0].matches(&filter("ch-é")) && !slots[0].matches(&filter("ch")));
        assert!(slots[1].matches(&EventFilter {
            kind_prefix: Some("call.".into()),
            after: Some(7),
            ..Default::default()
        }));
    }
}
