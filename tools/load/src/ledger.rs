//! Loss and duplicate accounting. Producers write every acknowledged record
//! into their stream's ledger (key -> identity); each subscriber notes every
//! key it was delivered. At the end, a record acknowledged but never
//! delivered to a subscriber that should have seen it is *lost*; a key
//! delivered twice is a *duplicate*; a key delivered with another record's
//! identity is *mismatched*; a payload that is not an intact record of this
//! run is *corrupt*; a key delivered that was never acknowledged is
//! *unexpected* (for instance an append whose answer was lost).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::CheckBy;
use crate::record::Decoded;
use crate::runs::RunSet;

/// Acknowledged records of one stream.
#[derive(Default)]
pub struct StreamLedger {
    acked: Mutex<RunSet>,
}

/// What one subscriber received.
pub struct SubLedger {
    /// Index of the stream it follows.
    pub stream: usize,
    /// First offset it could receive; earlier records are not expected.
    pub start: u64,
    seen: Mutex<RunSet>,
    duplicates: AtomicU64,
    corrupt: AtomicU64,
}

/// The verdict over all subscribers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Deliveries that should have happened (acked records × their subscribers).
    pub expected: u64,
    /// Expected deliveries that never happened.
    pub lost: u64,
    /// Keys delivered more than once (each extra delivery counts one).
    pub duplicates: u64,
    /// Keys delivered with a different record than the one acknowledged there.
    pub mismatched: u64,
    /// Payloads that are not intact records of this run.
    pub corrupt: u64,
    /// Keys delivered that no acknowledgement mentions.
    pub unexpected: u64,
}

/// All ledgers of a run.
pub struct Ledger {
    check_by: CheckBy,
    streams: Vec<StreamLedger>,
    subs: Mutex<Vec<std::sync::Arc<SubLedger>>>,
}

impl Ledger {
    /// Empty ledgers for `streams` streams.
    pub fn new(streams: usize, check_by: CheckBy) -> Self {
        Ledger {
            check_by,
            streams: (0..streams).map(|_| StreamLedger::default()).collect(),
            subs: Mutex::new(Vec::new()),
        }
    }

    /// Registers a subscriber of `stream` starting at `start`.
    pub fn subscriber(&self, stream: usize, start: u64) -> std::sync::Arc<SubLedger> {
        let s = std::sync::Arc::new(SubLedger {
            stream,
            start,
            seen: Mutex::new(RunSet::default()),
            duplicates: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
        });
        self.subs.lock().expect("ledger lock").push(s.clone());
        s
    }

    fn key(&self, offset: u64, id: u64) -> u64 {
        match self.check_by {
            CheckBy::Offset => offset,
            CheckBy::Identity => id,
        }
    }

    /// Records an acknowledged batch whose first record got `first_offset`.
    pub fn ack(&self, stream: usize, first_offset: u64, ids: &[u64]) {
        let mut acked = self.streams[stream].acked.lock().expect("ledger lock");
        for (i, id) in ids.iter().enumerate() {
            // A repeated ack (a producer retry) names the same records again.
            acked.insert(self.key(first_offset + i as u64, *id), *id);
        }
    }

    /// Notes one delivery of records to `sub`: each with its offset and its
    /// decoded payload (`None` for a corrupt one). Runs of consecutive keys
    /// and identities are booked at once.
    pub fn deliver(
        &self,
        sub: &SubLedger,
        records: impl IntoIterator<Item = (u64, Option<Decoded>)>,
    ) {
        let mut seen = sub.seen.lock().expect("ledger lock");
        let mut dups = 0;
        // The run being gathered: first key, first identity, length.
        let mut run: Option<(u64, u64, u64)> = None;
        for (offset, decoded) in records {
            let Some(d) = decoded else {
                sub.corrupt.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let key = self.key(offset, d.id);
            match &mut run {
                Some((k, i, n)) if *k + *n == key && *i + *n == d.id => *n += 1,
                _ => {
                    if let Some((k, i, n)) = run.replace((key, d.id, 1)) {
                        dups += seen.insert_run(k, i, n);
                    }
                }
            }
        }
        if let Some((k, i, n)) = run {
            dups += seen.insert_run(k, i, n);
        }
        sub.duplicates.fetch_add(dups, Ordering::Relaxed);
    }

    /// Where a subscriber's expectations start.
    fn start(&self, sub: &SubLedger) -> u64 {
        match self.check_by {
            CheckBy::Offset => sub.start,
            CheckBy::Identity => 0,
        }
    }

    /// Whether every subscriber has every acknowledged record it expects.
    pub fn caught_up(&self) -> bool {
        let subs = self.subs.lock().expect("ledger lock").clone();
        subs.iter().all(|s| {
            let acked = self.streams[s.stream].acked.lock().expect("ledger lock");
            let seen = s.seen.lock().expect("ledger lock");
            acked.diff(self.start(s), &seen).only_first == 0
        })
    }

    /// Compares what was delivered with what was acknowledged.
    pub fn verdict(&self) -> Verdict {
        let mut v = Verdict::default();
        for s in self.subs.lock().expect("ledger lock").iter() {
            let acked = self.streams[s.stream].acked.lock().expect("ledger lock");
            let seen = s.seen.lock().expect("ledger lock");
            let d = acked.diff(self.start(s), &seen);
            v.expected += d.only_first + d.same + d.different;
            v.lost += d.only_first;
            v.mismatched += d.different;
            v.unexpected += d.only_second;
            v.duplicates += s.duplicates.load(Ordering::Relaxed);
            v.corrupt += s.corrupt.load(Ordering::Relaxed);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::identity;

    fn d(id: u64) -> Option<Decoded> {
        Some(Decoded { sent_nanos: 0, id })
    }

    #[test]
    fn counts_loss_duplicates_and_mismatch() {
        let l = Ledger::new(1, CheckBy::Offset);
        let s = l.subscriber(0, 0);
        let ids: Vec<u64> = (0..4).map(|i| identity(0, i)).collect();
        l.ack(0, 0, &ids);
        l.deliver(&s, [(0, d(ids[0])), (0, d(ids[0]))]);
        l.deliver(&s, [(2, d(ids[3])), (3, d(ids[3])), (9, None)]);
        assert!(!l.caught_up());
        let v = l.verdict();
        assert_eq!(
            (v.expected, v.lost, v.duplicates, v.mismatched, v.corrupt),
            (4, 1, 1, 1, 1)
        );
    }
}
