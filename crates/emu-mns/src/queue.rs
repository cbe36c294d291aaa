//! One queue's state machine (docs/mns.md#semantics), sans I/O: every operation takes the emulator time.
//!
//! A message is *active* (visible, in `ready`), or *waiting* until `visible_at` (in `waiting`):
//! delayed (never received) or inactive (received, its visibility timeout running). Receiving
//! makes it inactive with a new receipt handle and `DequeueCount + 1`; when the timeout passes it
//! is active again, back at its place in the FIFO order of its priority. Only the newest handle
//! is valid, and only while the message is inactive. Messages expire `MessageRetentionPeriod`
//! after they were sent, whatever their state.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::MnsError;

pub type Millis = u64;

pub const MAX_MESSAGE_SIZE: u32 = 65_536;
pub const MAX_DELAY_SECONDS: u32 = 604_800;
pub const MIN_VISIBILITY_TIMEOUT: u32 = 1;
pub const MAX_VISIBILITY_TIMEOUT: u32 = 43_200;
pub const MIN_RETENTION: u32 = 60;
pub const MAX_RETENTION: u32 = 604_800;
pub const MAX_WAIT_SECONDS: u32 = 30;
pub const MAX_BATCH: usize = 16;
pub const MIN_PRIORITY: u8 = 1;
pub const MAX_PRIORITY: u8 = 16;
pub const DEFAULT_PRIORITY: u8 = 8;

/// How many messages a queue holds in each state (GetQueueAttributes reports them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub active: usize,
    pub inactive: usize,
    pub delayed: usize,
}

/// The settable attributes of a queue, with the vendor's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueAttrs {
    pub delay_seconds: u32,
    pub maximum_message_size: u32,
    pub message_retention_period: u32,
    pub visibility_timeout: u32,
    pub polling_wait_seconds: u32,
    pub logging_enabled: bool,
}

impl Default for QueueAttrs {
    fn default() -> Self {
        QueueAttrs {
            delay_seconds: 0,
            maximum_message_size: MAX_MESSAGE_SIZE,
            message_retention_period: 345_600,
            visibility_timeout: 30,
            polling_wait_seconds: 0,
            logging_enabled: false,
        }
    }
}

/// Attributes given in a CreateQueue / SetQueueAttributes body (absent = unchanged / default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrsPatch {
    pub delay_seconds: Option<u32>,
    pub maximum_message_size: Option<u32>,
    pub message_retention_period: Option<u32>,
    pub visibility_timeout: Option<u32>,
    pub polling_wait_seconds: Option<u32>,
    pub logging_enabled: Option<bool>,
}

fn range(name: &str, v: Option<u32>, lo: u32, hi: u32) -> Result<(), MnsError> {
    match v {
        Some(v) if v < lo || v > hi => {
            Err(MnsError::invalid_argument(format!("The value of {name} should between {lo} and {hi} (got {v}).")))
        }
        _ => Ok(()),
    }
}

impl AttrsPatch {
    pub fn validate(&self) -> Result<(), MnsError> {
        range("DelaySeconds", self.delay_seconds, 0, MAX_DELAY_SECONDS)?;
        range("MaximumMessageSize", self.maximum_message_size, 1024, MAX_MESSAGE_SIZE)?;
        range("MessageRetentionPeriod", self.message_retention_period, MIN_RETENTION, MAX_RETENTION)?;
        range("VisibilityTimeout", self.visibility_timeout, MIN_VISIBILITY_TIMEOUT, MAX_VISIBILITY_TIMEOUT)?;
        range("PollingWaitSeconds", self.polling_wait_seconds, 0, MAX_WAIT_SECONDS)
    }

    pub fn apply(&self, base: &QueueAttrs) -> QueueAttrs {
        QueueAttrs {
            delay_seconds: self.delay_seconds.unwrap_or(base.delay_seconds),
            maximum_message_size: self.maximum_message_size.unwrap_or(base.maximum_message_size),
            message_retention_period: self.message_retention_period.unwrap_or(base.message_retention_period),
            visibility_timeout: self.visibility_timeout.unwrap_or(base.visibility_timeout),
            polling_wait_seconds: self.polling_wait_seconds.unwrap_or(base.polling_wait_seconds),
            logging_enabled: self.logging_enabled.unwrap_or(base.logging_enabled),
        }
    }
}

/// A user property of a message (`<UserProperties><PropertyValue>`), kept and returned as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Property {
    pub name: String,
    pub value: String,
    pub kind: String,
}

/// What a SendMessage asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub body: String,
    pub delay_seconds: Option<u32>,
    pub priority: Option<u8>,
    pub properties: Vec<Property>,
}

impl NewMessage {
    pub fn new(body: impl Into<String>) -> Self {
        NewMessage { body: body.into(), delay_seconds: None, priority: None, properties: Vec::new() }
    }

    pub fn validate(&self, attrs: &QueueAttrs) -> Result<(), MnsError> {
        if self.body.is_empty() {
            return Err(MnsError::invalid_argument("The MessageBody is empty."));
        }
        if self.body.len() > attrs.maximum_message_size as usize {
            return Err(MnsError::invalid_argument(format!(
                "The length of the message body ({} bytes) exceeds the queue's MaximumMessageSize ({} bytes).",
                self.body.len(),
                attrs.maximum_message_size
            )));
        }
        range("DelaySeconds", self.delay_seconds, 0, MAX_DELAY_SECONDS)?;
        if let Some(p) = self.priority
            && !(MIN_PRIORITY..=MAX_PRIORITY).contains(&p)
        {
            return Err(MnsError::invalid_argument(format!(
                "The value of Priority should between {MIN_PRIORITY} and {MAX_PRIORITY} (got {p})."
            )));
        }
        Ok(())
    }
}

/// A message and its state; also what the durable store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Global sequence number: FIFO order and the storage key.
    pub seq: u64,
    pub id: String,
    pub body: String,
    pub priority: u8,
    pub enqueue_time: Millis,
    pub first_dequeue_time: Option<Millis>,
    pub dequeue_count: u32,
    /// NextVisibleTime: when a delayed or inactive message becomes active.
    pub visible_at: Millis,
    /// The newest receipt handle (None until the first receive).
    pub receipt: Option<String>,
    /// Receipt handles issued so far (part of every handle, so an old one never comes back).
    pub handles_issued: u32,
    pub expires_at: Millis,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

impl StoredMessage {
    /// MessageBodyMD5. Worked out when a reply shows it, not for every message queued: most
    /// receipts a call engine queues are never read.
    pub fn body_md5(&self) -> String {
        crate::signature::md5_upper_hex(self.body.as_bytes())
    }

    /// `active`, `inactive` (received, timeout running) or `delayed` (never received yet).
    pub fn state(&self, now: Millis) -> &'static str {
        if self.visible_at <= now {
            "active"
        } else if self.receipt.is_some() {
            "inactive"
        } else {
            "delayed"
        }
    }
}

/// A new message id: 32 upper-case hex digits, like the vendor's.
pub fn new_message_id() -> String {
    emu_core::ids::random_hex_upper(32)
}

/// Receipt handles: `1-<MessageId>-<n>-<random>`, only `[A-Za-z0-9-]` (clients put them in URLs
/// unencoded). The message id inside finds the message; the whole string must be its newest.
fn new_receipt(id: &str, n: u32) -> String {
    format!("1-{id}-{n}-{}", emu_core::tenants::random_alnum(8))
}

fn message_id_of(handle: &str) -> Option<&str> {
    let mut parts = handle.split('-');
    if parts.next()? != "1" {
        return None;
    }
    let id = parts.next()?;
    (id.len() == 32 && parts.next().is_some() && parts.next().is_some() && parts.next().is_none()).then_some(id)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueueMeta {
    pub attrs: QueueAttrs,
    pub create_time: Millis,
    pub last_modify_time: Millis,
}

#[derive(Debug)]
pub struct QueueState {
    pub name: String,
    pub meta: QueueMeta,
    msgs: HashMap<u64, StoredMessage>,
    by_id: HashMap<String, u64>,
    /// Active messages: (priority, seq) — priority 1 first, FIFO within a priority.
    ready: BTreeSet<(u8, u64)>,
    /// Delayed and inactive messages by the time they become active.
    waiting: BTreeSet<(Millis, u64)>,
    expiry: BTreeSet<(Millis, u64)>,
}

/// What a tick changed: messages that expired (the store forgets them).
pub type Expired = Vec<u64>;

impl QueueState {
    pub fn new(name: impl Into<String>, meta: QueueMeta) -> Self {
        QueueState {
            name: name.into(),
            meta,
            msgs: HashMap::new(),
            by_id: HashMap::new(),
            ready: BTreeSet::new(),
            waiting: BTreeSet::new(),
            expiry: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Puts a message (new, or loaded from the store) where its state says.
    pub fn insert(&mut self, now: Millis, msg: StoredMessage) {
        let seq = msg.seq;
        if msg.visible_at <= now {
            self.ready.insert((msg.priority, seq));
        } else {
            self.waiting.insert((msg.visible_at, seq));
        }
        self.expiry.insert((msg.expires_at, seq));
        self.by_id.insert(msg.id.clone(), seq);
        self.msgs.insert(seq, msg);
    }

    fn remove(&mut self, seq: u64) -> Option<StoredMessage> {
        let msg = self.msgs.remove(&seq)?;
        self.ready.remove(&(msg.priority, seq));
        self.waiting.remove(&(msg.visible_at, seq));
        self.expiry.remove(&(msg.expires_at, seq));
        self.by_id.remove(&msg.id);
        Some(msg)
    }

    /// Brings the queue to `now`: expired messages go, due ones become active.
    pub fn tick(&mut self, now: Millis) -> Expired {
        let mut expired = Vec::new();
        while let Some(&(at, seq)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.remove(seq);
            expired.push(seq);
        }
        while let Some(&(at, seq)) = self.waiting.first() {
            if at > now {
                break;
            }
            self.waiting.pop_first();
            if let Some(m) = self.msgs.get(&seq) {
                self.ready.insert((m.priority, seq));
            }
        }
        expired
    }

    /// When the next waiting message becomes active.
    pub fn next_wakeup(&self) -> Option<Millis> {
        self.waiting.first().map(|(at, _)| *at)
    }

    pub fn counts(&self, now: Millis) -> Counts {
        let mut c = Counts { active: 0, inactive: 0, delayed: 0 };
        for m in self.msgs.values() {
            match m.state(now) {
                "active" => c.active += 1,
                "inactive" => c.inactive += 1,
                _ => c.delayed += 1,
            }
        }
        c
    }

    /// SendMessage (validated by the caller).
    pub fn send(&mut self, now: Millis, seq: u64, new: NewMessage) -> StoredMessage {
        let delay = new.delay_seconds.unwrap_or(self.meta.attrs.delay_seconds) as u64;
        let msg = StoredMessage {
            seq,
            id: new_message_id(),
            body: new.body,
            priority: new.priority.unwrap_or(DEFAULT_PRIORITY),
            enqueue_time: now,
            first_dequeue_time: None,
            dequeue_count: 0,
            visible_at: now + delay * 1000,
            receipt: None,
            handles_issued: 0,
            expires_at: now + self.meta.attrs.message_retention_period as u64 * 1000,
            properties: new.properties,
        };
        self.insert(now, msg.clone());
        msg
    }

    /// Receives up to `n` active messages: each becomes inactive for the queue's visibility
    /// timeout, with a new receipt handle and its dequeue count + 1.
    pub fn receive(&mut self, now: Millis, n: usize) -> Vec<StoredMessage> {
        let timeout = self.meta.attrs.visibility_timeout as u64 * 1000;
        let mut out = Vec::new();
        while out.len() < n {
            let Some((_, seq)) = self.ready.pop_first() else { break };
            let Some(m) = self.msgs.get_mut(&seq) else { continue };
            m.dequeue_count += 1;
            m.first_dequeue_time.get_or_insert(now);
            m.visible_at = now + timeout;
            m.handles_issued += 1;
            m.receipt = Some(new_receipt(&m.id, m.handles_issued));
            self.waiting.insert((m.visible_at, seq));
            out.push(m.clone());
        }
        out
    }

    /// The next `n` active messages, unchanged.
    pub fn peek(&self, n: usize) -> Vec<StoredMessage> {
        self.ready.iter().take(n).filter_map(|(_, seq)| self.msgs.get(seq).cloned()).collect()
    }

    fn valid_handle(&self, now: Millis, handle: &str) -> Result<u64, MnsError> {
        let id = message_id_of(handle).ok_or_else(MnsError::receipt_handle_error)?;
        let seq = *self.by_id.get(id).ok_or_else(MnsError::receipt_handle_error)?;
        let m = &self.msgs[&seq];
        if m.receipt.as_deref() != Some(handle) || m.visible_at <= now {
            return Err(MnsError::receipt_handle_error());
        }
        Ok(seq)
    }

    /// DeleteMessage: only with the newest handle, before the message is visible again.
    pub fn delete(&mut self, now: Millis, handle: &str) -> Result<StoredMessage, MnsError> {
        let seq = self.valid_handle(now, handle)?;
        Ok(self.remove(seq).expect("validated"))
    }

    /// ChangeMessageVisibility: the message stays inactive until `now + seconds`, under a new
    /// handle (the old one is no longer valid).
    pub fn change_visibility(&mut self, now: Millis, handle: &str, seconds: u32) -> Result<StoredMessage, MnsError> {
        let seq = self.valid_handle(now, handle)?;
        let m = self.msgs.get_mut(&seq).expect("validated");
        self.waiting.remove(&(m.visible_at, seq));
        m.visible_at = now + seconds as u64 * 1000;
        m.handles_issued += 1;
        m.receipt = Some(new_receipt(&m.id, m.handles_issued));
        self.waiting.insert((m.visible_at, seq));
        Ok(m.clone())
    }

    /// Every message, in delivery order of the active ones, then the waiting ones by due time.
    pub fn all_messages(&self) -> Vec<StoredMessage> {
        self.ready
            .iter()
            .map(|(_, s)| s)
            .chain(self.waiting.iter().map(|(_, s)| s))
            .filter_map(|s| self.msgs.get(s).cloned())
            .collect()
    }

    /// Removes every message; returns their sequence numbers.
    pub fn purge(&mut self) -> Vec<u64> {
        let seqs: Vec<u64> = self.msgs.keys().copied().collect();
        self.msgs.clear();
        self.by_id.clear();
        self.ready.clear();
        self.waiting.clear();
        self.expiry.clear();
        seqs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_000_000;

    fn queue(visibility: u32) -> QueueState {
        let attrs = QueueAttrs { visibility_timeout: visibility, ..Default::default() };
        QueueState::new("q", QueueMeta { attrs, create_time: T0, last_modify_time: T0 })
    }

    fn send(q: &mut QueueState, now: Millis, seq: u64, body: &str) -> StoredMessage {
        q.send(now, seq, NewMessage::new(body))
    }

    #[test]
    fn receive_hides_until_visibility_timeout_then_comes_back_with_higher_dequeue_count() {
        let mut q = queue(30);
        let sent = send(&mut q, T0, 1, "a");
        assert_eq!(sent.body_md5(), "0CC175B9C0F1B6A831C399E269772661");
        let got = q.receive(T0 + 10, 1);
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!((m.dequeue_count, m.first_dequeue_time, m.visible_at), (1, Some(T0 + 10), T0 + 30_010));
        assert!(m.receipt.as_ref().unwrap().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        q.tick(T0 + 30_009);
        assert!(q.receive(T0 + 30_009, 1).is_empty(), "still inactive");
        assert_eq!(q.counts(T0 + 30_009), Counts { active: 0, inactive: 1, delayed: 0 });
        q.tick(T0 + 30_010);
        let again = q.receive(T0 + 30_010, 1);
        assert_eq!(again[0].dequeue_count, 2);
        assert_eq!(again[0].first_dequeue_time, Some(T0 + 10), "FirstDequeueTime is fixed");
        assert_ne!(again[0].receipt, m.receipt);
        // The first handle is stale now, the second one works.
        assert_eq!(q.delete(T0 + 30_011, m.receipt.as_deref().unwrap()).unwrap_err().code, "ReceiptHandleError");
        q.delete(T0 + 30_011, again[0].receipt.as_deref().unwrap()).unwrap();
        assert!(q.is_empty());
    }

    #[test]
    fn handle_expires_with_the_visibility_timeout() {
        let mut q = queue(5);
        send(&mut q, T0, 1, "a");
        let h = q.receive(T0, 1)[0].receipt.clone().unwrap();
        q.tick(T0 + 5000);
        assert_eq!(q.delete(T0 + 5000, &h).unwrap_err().code, "ReceiptHandleError");
        assert_eq!(q.change_visibility(T0 + 5000, &h, 10).unwrap_err().code, "ReceiptHandleError");
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn change_visibility_issues_a_new_handle_and_moves_the_deadline() {
        let mut q = queue(30);
        send(&mut q, T0, 1, "a");
        let h1 = q.receive(T0, 1)[0].receipt.clone().unwrap();
        let m = q.change_visibility(T0 + 1000, &h1, 2).unwrap();
        assert_eq!(m.visible_at, T0 + 3000);
        let h2 = m.receipt.clone().unwrap();
        assert_ne!(h1, h2);
        assert!(q.delete(T0 + 1001, &h1).is_err(), "superseded handle");
        q.tick(T0 + 3000);
        let again = q.receive(T0 + 3000, 1);
        assert_eq!(again[0].dequeue_count, 2, "visible again after the new timeout");
        assert!(q.delete(T0 + 3001, &h2).is_err());
        q.delete(T0 + 3001, again[0].receipt.as_deref().unwrap()).unwrap();
    }

    #[test]
    fn garbage_handles_are_refused() {
        let mut q = queue(30);
        send(&mut q, T0, 1, "a");
        for h in ["", "x", "1-bm90LWEtaGFuZGxl", "1-0123456789ABCDEF0123456789ABCDEF-1-abc", "2-a-b-c"] {
            assert_eq!(q.delete(T0, h).unwrap_err().code, "ReceiptHandleError", "{h}");
        }
    }

    #[test]
    fn fifo_within_priority_and_priority_first() {
        let mut q = queue(30);
        for (seq, p) in [(1, 8), (2, 3), (3, 8), (4, 3), (5, 16), (6, 1)] {
            q.send(T0, seq, NewMessage { priority: Some(p), ..NewMessage::new(format!("m{seq}")) });
        }
        let order: Vec<String> = q.peek(16).into_iter().map(|m| m.body).collect();
        assert_eq!(order, ["m6", "m2", "m4", "m1", "m3", "m5"]);
        let got: Vec<String> = q.receive(T0, 3).into_iter().map(|m| m.body).collect();
        assert_eq!(got, ["m6", "m2", "m4"]);
    }

    #[test]
    fn a_returning_message_keeps_its_place() {
        let mut q = queue(1);
        send(&mut q, T0, 1, "first");
        send(&mut q, T0, 2, "second");
        q.receive(T0, 1);
        q.tick(T0 + 1000);
        assert_eq!(q.receive(T0 + 1000, 1)[0].body, "first");
    }

    #[test]
    fn delay_hides_the_message_until_due() {
        let mut q = queue(30);
        q.send(T0, 1, NewMessage { delay_seconds: Some(10), ..NewMessage::new("d") });
        assert_eq!(q.counts(T0), Counts { active: 0, inactive: 0, delayed: 1 });
        assert!(q.receive(T0, 1).is_empty());
        assert!(q.peek(1).is_empty());
        assert_eq!(q.next_wakeup(), Some(T0 + 10_000));
        q.tick(T0 + 10_000);
        let m = q.receive(T0 + 10_000, 1);
        assert_eq!(m[0].dequeue_count, 1);
        assert_eq!(m[0].enqueue_time, T0);
    }

    #[test]
    fn queue_delay_is_the_default_delay() {
        let mut q = queue(30);
        q.meta.attrs.delay_seconds = 5;
        send(&mut q, T0, 1, "d");
        assert!(q.receive(T0 + 4999, 1).is_empty());
        q.tick(T0 + 5000);
        assert_eq!(q.receive(T0 + 5000, 1).len(), 1);
    }

    #[test]
    fn retention_expiry_removes_messages_in_any_state() {
        let mut q = queue(43_200);
        q.meta.attrs.message_retention_period = 60;
        send(&mut q, T0, 1, "a");
        send(&mut q, T0 + 1, 2, "b");
        q.receive(T0, 1); // "a" is inactive for 12 hours
        assert_eq!(q.tick(T0 + 59_999), Vec::<u64>::new());
        assert_eq!(q.tick(T0 + 60_000), vec![1]);
        assert_eq!(q.tick(T0 + 60_001), vec![2]);
        assert!(q.is_empty());
        assert!(q.receive(T0 + 60_001, 16).is_empty());
    }

    #[test]
    fn peek_changes_nothing() {
        let mut q = queue(30);
        send(&mut q, T0, 1, "a");
        let p = q.peek(1);
        assert_eq!((p[0].dequeue_count, p[0].receipt.clone()), (0, None));
        assert_eq!(q.peek(1), p);
        assert_eq!(q.receive(T0, 1)[0].dequeue_count, 1);
        assert!(q.peek(1).is_empty(), "inactive messages are not peeked");
    }

    #[test]
    fn limits() {
        let attrs = QueueAttrs::default();
        assert!(NewMessage::new("x".repeat(65_536)).validate(&attrs).is_ok());
        assert_eq!(NewMessage::new("x".repeat(65_537)).validate(&attrs).unwrap_err().code, "InvalidArgument");
        assert!(NewMessage::new("").validate(&attrs).is_err());
        for p in [0u8, 17] {
            assert!(NewMessage { priority: Some(p), ..NewMessage::new("x") }.validate(&attrs).is_err());
        }
        for p in [1u8, 16] {
            assert!(NewMessage { priority: Some(p), ..NewMessage::new("x") }.validate(&attrs).is_ok());
        }
        assert!(NewMessage { delay_seconds: Some(604_800), ..NewMessage::new("x") }.validate(&attrs).is_ok());
        assert!(NewMessage { delay_seconds: Some(604_801), ..NewMessage::new("x") }.validate(&attrs).is_err());
        let small = QueueAttrs { maximum_message_size: 1024, ..Default::default() };
        assert!(NewMessage::new("x".repeat(1025)).validate(&small).is_err());

        let ok = AttrsPatch { visibility_timeout: Some(1), message_retention_period: Some(60), ..Default::default() };
        assert!(ok.validate().is_ok());
        for bad in [
            AttrsPatch { visibility_timeout: Some(0), ..Default::default() },
            AttrsPatch { visibility_timeout: Some(43_201), ..Default::default() },
            AttrsPatch { message_retention_period: Some(59), ..Default::default() },
            AttrsPatch { message_retention_period: Some(604_801), ..Default::default() },
            AttrsPatch { delay_seconds: Some(604_801), ..Default::default() },
            AttrsPatch { maximum_message_size: Some(1023), ..Default::default() },
            AttrsPatch { maximum_message_size: Some(65_537), ..Default::default() },
            AttrsPatch { polling_wait_seconds: Some(31), ..Default::default() },
        ] {
            assert_eq!(bad.validate().unwrap_err().code, "InvalidArgument", "{bad:?}");
        }
    }

    #[test]
    fn ids_and_handles_are_url_safe() {
        let id = new_message_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let h = new_receipt(&id, 3);
        assert_eq!(message_id_of(&h), Some(id.as_str()));
        assert!(h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }
}
