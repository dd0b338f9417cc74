//! What the writer knows about every change, by the offset its append's
//! acknowledgement gave it: when it was sent, which key it wrote and the
//! key's group before and after. Subscribers read it to time each delivery
//! and to check that the delivery is one their filter must see.
//!
//! Offsets are dense from the first change on (only the writer appends
//! during the run), so the ledger is two flat arrays of atomics: the
//! writer fills a slot once, after the ack, and readers that find it
//! empty (the delivery outran the ack) look again later.

use std::sync::atomic::{AtomicU64, Ordering};

/// One acknowledged change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// When its append was sent, nanos since the run's epoch.
    pub sent_ns: u64,
    /// The key it wrote.
    pub key: u32,
    /// The key's group before the change.
    pub old_group: u8,
    /// The key's group after it.
    pub new_group: u8,
}

/// The per-offset record of acknowledged changes.
pub(crate) struct Ledger {
    base: u64,
    /// `sent_ns + 1` (0: not acknowledged yet).
    sent: Vec<AtomicU64>,
    /// key | old group << 32 | new group << 40.
    meta: Vec<AtomicU64>,
    /// Largest `offset + 1` recorded.
    tail: AtomicU64,
}

impl Ledger {
    /// Room for `capacity` changes from offset `base` on.
    pub(crate) fn new(base: u64, capacity: usize) -> Self {
        Ledger {
            base,
            sent: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            meta: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            tail: AtomicU64::new(base),
        }
    }

    /// Offset of the first change.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// How many changes fit.
    pub(crate) fn capacity(&self) -> usize {
        self.sent.len()
    }

    /// The offset after the last acknowledged change.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(Ordering::Acquire)
    }

    /// Records the change acknowledged at `offset`; false when it lies
    /// outside the ledger.
    pub(crate) fn record(&self, offset: u64, e: Entry) -> bool {
        let Some(i) = self.slot(offset) else {
            return false;
        };
        let meta =
            u64::from(e.key) | (u64::from(e.old_group) << 32) | (u64::from(e.new_group) << 40);
        self.meta[i].store(meta, Ordering::Relaxed);
        // Release: a reader that sees the time sees the meta too.
        self.sent[i].store(e.sent_ns + 1, Ordering::Release);
        self.tail.fetch_max(offset + 1, Ordering::AcqRel);
        true
    }

    /// The change at `offset`, once acknowledged.
    pub(crate) fn get(&self, offset: u64) -> Option<Entry> {
        let i = self.slot(offset)?;
        let sent = self.sent[i].load(Ordering::Acquire);
        if sent == 0 {
            return None;
        }
        let meta = self.meta[i].load(Ordering::Relaxed);
        Some(Entry {
            sent_ns: sent - 1,
            key: meta as u32,
            old_group: (meta >> 32) as u8,
            new_group: (meta >> 40) as u8,
        })
    }

    /// Whether `offset` is past every slot (deliveries there can never be
    /// explained).
    pub(crate) fn beyond(&self, offset: u64) -> bool {
        offset < self.base || offset - self.base >= self.sent.len() as u64
    }

    fn slot(&self, offset: u64) -> Option<usize> {
        let i = offset.checked_sub(self.base)?;
        (i < self.sent.len() as u64).then_some(i as usize)
    }

    /// Acknowledged changes from `from` on that a subscriber of `group`
    /// (`None`: unfiltered, or filtered without a snapshot, which hears of
    /// every change) must receive.
    pub(crate) fn expected(&self, from: u64, group: Option<u8>) -> u64 {
        let start = from.max(self.base);
        let end = self.tail();
        (start..end)
            .filter_map(|o| self.get(o))
            .filter(|e| group.is_none_or(|g| e.old_group == g || e.new_group == g))
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_once_acknowledged() {
        let l = Ledger::new(100, 4);
        assert_eq!(l.get(100), None);
        let e = Entry {
            sent_ns: 5,
            key: 7,
            old_group: 3,
            new_group: 4,
        };
        assert!(l.record(101, e));
        assert_eq!(l.get(101), Some(e));
        assert!(!l.record(104, e) && !l.record(99, e));
        assert!(l.beyond(104) && l.beyond(99) && !l.beyond(103));
        assert_eq!(l.tail(), 102);
        assert_eq!(
            (
                l.expected(0, Some(3)),
                l.expected(0, Some(5)),
                l.expected(0, None)
            ),
            (1, 0, 1)
        );
    }
}
