//! The server-wide budget of output the WebSocket door holds for its
//! connections. Each connection's queue is capped by its own send budget,
//! but thousands of slow readers could still hold that cap each: past the
//! server-wide budget, the slowest connections (those holding at least a
//! quarter of their own send buffer whose writer has written nothing for
//! longest) are closed without a close
//! frame, which they would not read, and their queues released, so the door's buffered output stays
//! near the budget whatever the number of slow readers. A reader closed
//! this way reconnects and resumes from its last offset; what it missed is
//! read again from storage.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::sink::Shared;

/// The door's buffered-output budget and its counters (the metric of how
/// much output slow readers hold, and how many were closed for it).
#[derive(Debug)]
pub struct OutputBudget {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
    evictions: AtomicU64,
    /// Bytes queued on connections already closed for the budget but not
    /// yet released: they no longer count as over the budget, so that the
    /// time a close takes does not close more connections than needed.
    releasing: AtomicUsize,
    conns: Mutex<Vec<Weak<Shared>>>,
}

impl OutputBudget {
    /// A budget of `limit` bytes of queued outgoing messages, across every
    /// connection that uses it.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(OutputBudget {
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            releasing: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
        })
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of outgoing messages queued now, across connections.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes ever queued at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Connections closed because the budget was exceeded.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Makes `conn` a candidate for eviction.
    pub(super) fn register(&self, conn: &Arc<Shared>) {
        let mut v = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(conn));
    }

    /// Counts `len` queued bytes until the returned charge is dropped (when
    /// the message is written or discarded); past the budget, closes the
    /// connection with the largest backlog.
    pub(super) fn charge(self: &Arc<Self>, len: usize) -> Charge {
        let used = self.used.fetch_add(len, Ordering::Relaxed) + len;
        self.peak.fetch_max(used, Ordering::Relaxed);
        if used.saturating_sub(self.releasing.load(Ordering::Acquire)) > self.limit {
            self.evict_slowest();
        }
        Charge {
            budget: Arc::clone(self),
            len,
        }
    }

    /// Closes the connections with the largest backlogs until what they
    /// hold would bring the total back under the budget.
    fn evict_slowest(&self) {
        // Held throughout, so that concurrent senders over the budget choose
        // their victims one after the other, each seeing the others' closes.
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|w| w.strong_count() > 0);
        // The slowest first: the longest without writing anything (a reader
        // that keeps up writes all the time). A connection holding under a
        // quarter of its own send buffer is not what fills the budget: a
        // producer reading its acknowledgements late, say.
        let mut candidates: Vec<(usize, Duration, Arc<Shared>)> = conns
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| !c.is_evicted())
            .map(|c| (c.backlog(), c.stalled(), c))
            .filter(|(b, _, c)| *b > 0 && *b >= c.cap() / 4)
            .collect();
        candidates.sort_by_key(|(_, stalled, _)| std::cmp::Reverse(*stalled));
        for (backlog, _, victim) in candidates {
            let counted = self
                .used()
                .saturating_sub(self.releasing.load(Ordering::Acquire));
            if counted <= self.limit {
                break;
            }
            self.releasing.fetch_add(backlog, Ordering::AcqRel);
            self.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                backlog,
                budget = self.limit,
                "closing a slow WebSocket connection: server send budget exceeded"
            );
            victim.evict(backlog);
        }
    }

    /// Called once an evicted connection's queue, `share` bytes when it was
    /// chosen, is released.
    pub(super) fn evicted_released(&self, share: usize) {
        self.releasing.fetch_sub(share, Ordering::AcqRel);
    }
}

/// Queued bytes counted against the budget until dropped.
pub(super) struct Charge {
    budget: Arc<OutputBudget>,
    len: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.len, Ordering::Relaxed);
    }
}
