//! Bounded retention (docs/admin-api.md#what-is-retained-and-how-much): what the emulator keeps
//! for the admin API is capped by count **and** bytes, so a long-running sandbox or a client in a
//! loop cannot grow the process. [`Bounded`] is the list every such collection uses; each reports
//! itself as a [`Retained`] line for `/metrics`.

use std::collections::VecDeque;
use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// A collection's caps: at most `items` entries weighing at most `bytes` together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub items: usize,
    pub bytes: usize,
}

impl Limit {
    pub const fn new(items: usize, bytes: usize) -> Limit {
        Limit { items, bytes }
    }
}

/// One retained collection's size and caps, as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub collection: &'static str,
    pub items: usize,
    pub bytes: usize,
    pub limit: Limit,
}

/// Oldest-first entries with their weights; pushing past either cap drops the oldest. The newest
/// entry is always kept, even when it alone weighs more than the byte cap (so the latest CDR or
/// report is never lost to an unusually large one before it).
#[derive(Debug, Clone)]
pub struct Bounded<T> {
    entries: VecDeque<(T, usize)>,
    bytes: usize,
    limit: Limit,
    dropped: u64,
}

impl<T> Bounded<T> {
    pub fn new(limit: Limit) -> Self {
        Bounded { entries: VecDeque::new(), bytes: 0, limit, dropped: 0 }
    }

    /// Adds `item`, weighing `weight` bytes, and drops the oldest entries over the caps.
    pub fn push(&mut self, item: T, weight: usize) {
        self.push_evicting(item, weight, drop);
    }

    /// [`Bounded::push`], handing each entry dropped to `evicted` (to forget what it refers to).
    pub fn push_evicting(&mut self, item: T, weight: usize, mut evicted: impl FnMut(T)) {
        self.entries.push_back((item, weight));
        self.bytes += weight;
        while self.entries.len() > 1 && (self.entries.len() > self.limit.items.max(1) || self.bytes > self.limit.bytes)
        {
            if let Some((old, w)) = self.entries.pop_front() {
                self.bytes -= w;
                self.dropped += 1;
                evicted(old);
            }
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.entries.iter().map(|(t, _)| t)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Entries dropped to stay within the caps, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Keeps the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut bytes = 0;
        self.entries.retain(|(t, w)| {
            let k = keep(t);
            if k {
                bytes += w;
            }
            k
        });
        self.bytes = bytes;
    }

    /// Drops the oldest entries while `expired` accepts them (entries are oldest first), handing
    /// each to `evicted`. Not counted in [`Bounded::dropped`]: these went for their age, not a cap.
    pub fn drop_oldest_while(&mut self, mut expired: impl FnMut(&T) -> bool, mut evicted: impl FnMut(T)) {
        while let Some((front, _)) = self.entries.front()
            && expired(front)
        {
            if let Some((old, w)) = self.entries.pop_front() {
                self.bytes -= w;
                evicted(old);
            }
        }
    }

    /// The newest entry.
    pub fn back(&self) -> Option<&T> {
        self.entries.back().map(|(t, _)| t)
    }

    pub fn retained(&self, collection: &'static str) -> Retained {
        Retained { collection, items: self.len(), bytes: self.bytes, limit: self.limit }
    }
}

/// Where retained byte strings live (envelopes in the event log, a client's last ACKs): copied
/// one after another into shared chunks, each freed once the last copy in it is dropped. Made
/// for collections that drop their entries oldest first, so chunks are freed in order too.
///
/// Why not keep each its own allocation: a full collection drops its oldest entry for every new
/// one, and the allocator hands that block, untouched for hundreds of calls and long out of the
/// caches, to the next copy. Filling a chunk writes memory in address order, which the CPU
/// prefetches, and frees one block per chunk (docs/benchmarks.md#per-call-cpu).
#[derive(Debug)]
pub struct Chunks {
    chunk: BytesMut,
    /// The next chunk's size: from `first`, doubling up to `max`, so a collection that keeps
    /// little (one device's first ACK) takes little.
    next: usize,
    max: usize,
}

impl Chunks {
    pub fn new(first: usize, max: usize) -> Chunks {
        Chunks { chunk: BytesMut::new(), next: first, max }
    }

    /// `bytes`, copied into the current chunk (a new one when it is full). One longer than a
    /// quarter of the largest chunk gets an allocation of its own rather than waste a chunk's rest.
    pub fn copy(&mut self, bytes: &[u8]) -> Bytes {
        if bytes.len() > self.max / 4 {
            return Bytes::copy_from_slice(bytes);
        }
        self.make_room(bytes.len());
        self.chunk.extend_from_slice(bytes);
        self.chunk.split().freeze()
    }

    /// `value` as JSON, written straight into the current chunk (no buffer of its own). Made for
    /// small values: one longer than the chunk's rest moves that rest into an allocation of its
    /// own (the copies made before are untouched).
    pub fn json(&mut self, value: &impl Serialize) -> serde_json::Result<Bytes> {
        self.make_room(256);
        let written = serde_json::to_writer((&mut self.chunk).writer(), value);
        let json = self.chunk.split().freeze();
        written.map(|()| json)
    }

    /// A new chunk when the current one has less than `n` bytes left.
    fn make_room(&mut self, n: usize) {
        if self.chunk.capacity() - self.chunk.len() < n {
            self.chunk = BytesMut::with_capacity(self.next.max(n));
            self.next = (self.next * 2).min(self.max);
        }
    }
}

/// The weight of a JSON value: its serialized length, counted as it is written (no buffer).
pub fn json_weight(v: &impl Serialize) -> usize {
    let mut n = ByteCount(0);
    match serde_json::to_writer(&mut n, v) {
        Ok(()) => n.0,
        Err(_) => 0,
    }
}

/// A writer that keeps nothing, only counts.
struct ByteCount(usize);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0 += buf.len();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_while_they_are_expired() {
        let mut b = Bounded::new(Limit::new(10, 1000));
        for (i, w) in [(1, 10), (2, 20), (3, 30), (1, 40)] {
            b.push(i, w);
        }
        let mut gone = Vec::new();
        b.drop_oldest_while(|&i| i < 3, |i| gone.push(i));
        assert_eq!(gone, [1, 2], "stops at the first entry not expired, even if a later one is");
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [3, 1]);
        assert_eq!((b.bytes(), b.dropped()), (70, 0));
        b.drop_oldest_while(|_| true, drop);
        assert!(b.is_empty() && b.bytes() == 0);
    }

    #[test]
    fn the_oldest_go_when_either_cap_is_reached() {
        let mut b = Bounded::new(Limit::new(3, 100));
        for i in 0..5 {
            b.push(i, 10);
        }
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [2, 3, 4], "count cap");
        assert_eq!((b.len(), b.bytes(), b.dropped()), (3, 30, 2));
        b.push(5, 80);
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [3, 4, 5], "byte cap: 10 + 10 + 80 <= 100");
        assert_eq!(b.bytes(), 100);
        b.push(6, 20);
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [5, 6], "110 > 100: two go");
        b.push(7, 500);
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [7], "the newest stays, however heavy");
        b.retain(|_| false);
        assert_eq!((b.len(), b.bytes()), (0, 0));
        let r = b.retained("x");
        assert_eq!(r, Retained { collection: "x", items: 0, bytes: 0, limit: Limit::new(3, 100) });
    }

    #[test]
    fn chunks_hold_copies_one_after_another() {
        let mut chunks = Chunks::new(64, 256);
        let a = chunks.copy(b"first");
        let b = chunks.copy(b"second");
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        assert_eq!(b.as_ptr(), a[a.len()..].as_ptr(), "the next copy follows in the same chunk");
        // Chunks grow from the first size to the largest: 64 bytes, then 128, then 256.
        let filler = [b'f'; 60];
        let c = chunks.copy(&filler);
        assert_ne!(c.as_ptr(), b[b.len()..].as_ptr(), "a new chunk once the first is full");
        let d = chunks.copy(&filler);
        assert_eq!(d.as_ptr(), c[c.len()..].as_ptr(), "the second chunk holds two");
        let rest: Vec<Bytes> = (0..5).map(|_| chunks.copy(&filler)).collect();
        assert_eq!(rest[1].as_ptr(), rest[0][60..].as_ptr());
        assert!(rest.iter().all(|r| r[..] == filler[..]));
        assert_eq!(&a[..], b"first", "earlier copies stay valid");
        // Longer than a quarter of the largest chunk: its own allocation; the chunk goes on.
        let long = [b'l'; 65];
        let own = chunks.copy(&long);
        let next = chunks.copy(b"x");
        assert_eq!(&own[..], &long[..]);
        assert_eq!(next.as_ptr(), rest[4][60..].as_ptr());
    }

    #[test]
    fn json_is_written_into_the_chunk() {
        let mut chunks = Chunks::new(1024, 1024);
        let a = chunks.copy(b"id");
        let j = chunks.json(&serde_json::json!({"reason": "hangup", "causeCode": 2000099})).unwrap();
        assert_eq!(&j[..], br#"{"reason":"hangup","causeCode":2000099}"#);
        assert_eq!(j.as_ptr(), a[a.len()..].as_ptr(), "after the copy before it");
        // Longer than the chunk's rest: still whole, and the earlier copies stay valid.
        let long = "x".repeat(2000);
        assert_eq!(chunks.json(&long).unwrap().len(), 2002);
        assert_eq!((&a[..], chunks.copy(b"y").len()), (&b"id"[..], 1));
    }

    #[test]
    fn json_weight_is_the_serialized_length() {
        assert_eq!(json_weight(&serde_json::json!({"a": 1})), 7);
        let v = serde_json::json!({"s": "tab\t, quote \" and é", "n": [1.5, -2, null], "f": 0.1f32});
        assert_eq!(json_weight(&v), serde_json::to_vec(&v).unwrap().len());
    }
}
