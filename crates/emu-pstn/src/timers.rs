//! Pending phone actions, ordered by deadline and, on equal deadlines, by the order they were
//! scheduled, so a replay with the same inputs fires them in the same order.

use std::collections::BTreeMap;

use emu_core::Millis;
use emu_core::pstn::LegId;

pub(crate) struct Timers<A> {
    pending: BTreeMap<(Millis, u64), (LegId, A)>,
    next_seq: u64,
}

impl<A> Timers<A> {
    pub fn new() -> Self {
        Timers { pending: BTreeMap::new(), next_seq: 0 }
    }

    pub fn schedule(&mut self, at: Millis, leg: LegId, action: A) {
        self.pending.insert((at, self.next_seq), (leg, action));
        self.next_seq += 1;
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        self.pending.keys().next().map(|&(at, _)| at)
    }

    /// The earliest action due at or before `now`, with its deadline.
    pub fn pop_due(&mut self, now: Millis) -> Option<(Millis, LegId, A)> {
        let entry = self.pending.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let ((at, _), (leg, action)) = entry.remove_entry();
        Some((at, leg, action))
    }

    /// Drops everything pending for a leg that has ended.
    pub fn cancel_leg(&mut self, leg: LegId) {
        self.pending.retain(|_, (pending_leg, _)| *pending_leg != leg);
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_order_then_insertion_order() {
        let mut timers = Timers::new();
        timers.schedule(30, 1, "c");
        timers.schedule(10, 2, "a");
        timers.schedule(30, 3, "d");
        timers.schedule(10, 1, "b");
        assert_eq!(timers.next_deadline(), Some(10));
        assert_eq!(timers.pop_due(9), None);
        let mut fired = Vec::new();
        while let Some(t) = timers.pop_due(30) {
            fired.push(t);
        }
        assert_eq!(fired, vec![(10, 2, "a"), (10, 1, "b"), (30, 1, "c"), (30, 3, "d")]);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn cancel_leg_drops_only_that_leg() {
        let mut timers = Timers::new();
        timers.schedule(10, 1, "a");
        timers.schedule(20, 2, "b");
        timers.schedule(30, 1, "c");
        timers.cancel_leg(1);
        assert_eq!(timers.next_deadline(), Some(20));
        assert_eq!(timers.pop_due(100), Some((20, 2, "b")));
        assert_eq!(timers.pop_due(100), None);
        timers.schedule(5, 3, "x");
        timers.clear();
        assert_eq!(timers.next_deadline(), None);
    }
}
