//! Touches: live-query invalidation, wire-compatible with Prisma Streams.
//! A touch tells a waiting client "something your query depends on changed;
//! run it again". The processor derives touches from the committed changes
//! of touch-enabled State Protocol streams (off the commit thread), the
//! journal batches them into generations and wakes the waits that match,
//! and templates (see `crate::templates`) declare which fine keys exist.
//!
//! The commit thread touches this module through two calls:
//! [`stage_profile`] writes the checkpoint when touch is turned on (so
//! history is never processed) and removes it when it is turned off, and
//! [`Hub::note_append`] marks a stream for the processor after a commit.
//!
//! Sans-IO cores (each a file, no clocks or threads):
//! - `keys.rs`, `encode.rs`: key families, hashing and argument encodings;
//! - `change.rs`, `derive.rs`: records to changes to fine keys;
//! - `processor.rs`: one batch of records to touches (budgets, lag, coalescing);
//! - `bloom.rs`, `exact.rs`, `journal.rs`: generations, the bloom filter,
//!   the exact lane and the waiter indexes;
//! - `hot.rs`: the interest of current waits;
//! - `config.rs`, `defaults.rs`: the profile's `touch` member and every number;
//! - `request.rs`: the wait request;
//! - `metrics/`: the `live.metrics` model.
//!
//! The shell: `stream.rs` (one stream's runtime state), `runtime.rs` (the
//! touch thread), `store.rs` (the `touch` column family), `live_metrics.rs`
//! (the `live.metrics` writer), and `api.rs`, `wait.rs`, `meta.rs` (the
//! engine's touch operations).

mod api;
pub(crate) mod bloom;
pub(crate) mod change;
pub mod config;
pub mod defaults;
pub(crate) mod derive;
pub mod encode;
pub(crate) mod exact;
pub(crate) mod hot;
pub(crate) mod journal;
pub mod js_coerce;
pub mod json_text;
pub mod keys;
mod live_metrics;
mod meta;
pub mod metrics;
pub(crate) mod processor;
pub mod request;
pub(crate) mod runtime;
pub(crate) mod store;
pub(crate) mod stream;
mod wait;

pub use api::{ActivatedTemplate, Activation};
pub use config::TouchConfig;
pub use metrics::counters::TouchMode;
pub use request::{Interest, WaitRequest};
pub use wait::{WaitOutcome, WaitStatus};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::channel::{self, Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use rocksdb::WriteBatch;

use crate::shared::Shared;
use stream::TouchStream;

/// The name of the internal metrics stream.
pub const LIVE_METRICS_STREAM: &str = "live.metrics";

/// The touch configuration a stored profile document enables, if any.
pub(crate) fn enabled_config(profile: Option<&str>) -> Option<TouchConfig> {
    let doc: serde_json::Value = serde_json::from_str(profile?).ok()?;
    let touch = doc.get("touch")?;
    let cfg = config::parse_touch(Some(touch)).ok()?;
    cfg.enabled.then_some(cfg)
}

/// Stages what a profile change means for touch: a fresh checkpoint at the
/// tail when touch is turned on (history already in the stream is never
/// processed), the removal of the checkpoint and journal history when it is
/// turned off. A change of settings keeps both.
pub(crate) fn stage_profile(
    shared: &Shared,
    wb: &mut WriteBatch,
    sid: u64,
    old: Option<&str>,
    new: Option<&str>,
    tail: u64,
) {
    let was = enabled_config(old);
    let is = enabled_config(new);
    if was != is {
        // The runtime of the old settings must not write after this batch.
        if let Some(ts) = shared.touch.get(sid) {
            ts.retire();
        }
    }
    let (was, is) = (was.is_some(), is.is_some());
    if was == is {
        return;
    }
    store::delete_touch_state(&shared.db, wb, sid);
    if is {
        let c = store::Checkpoint {
            next: tail,
            epoch: stream::random_epoch(),
            generation: 0,
            next_seq: 0,
        };
        store::put_checkpoint(&shared.db, wb, sid, &c);
    }
}

/// Every touch stream's runtime, shared by the touch thread, the commit
/// thread (which marks streams dirty) and the engine's touch operations.
pub(crate) struct Hub {
    streams: RwLock<HashMap<u64, Arc<TouchStream>>>,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// The time (ms) the touch thread sleeps until, or 0 while it is awake
    /// and about to look at every deadline again. A new waiter nudges the
    /// thread only when its deadline comes earlier: at thousands of waits
    /// a second, a wake-up per wait was the thread's main work.
    sleeping_until: AtomicU64,
    /// A profile changed or a stream went away: the thread re-reads profiles.
    changed: AtomicBool,
    /// Lifecycle events waiting for the next `live.metrics` append.
    events: Mutex<Vec<(Arc<str>, serde_json::Value)>>,
    /// Serializes `sync` between the touch thread and profile changes.
    sync_lock: Mutex<()>,
    /// The runtime scheduling delay sampler (fed by the server's runtime).
    pub loop_lag: Mutex<metrics::looplag::LoopLagSampler>,
}

impl Hub {
    /// An empty hub; the first pass of the thread loads every touch stream.
    pub fn new() -> Hub {
        let (wake_tx, wake_rx) = channel::bounded(1);
        Hub {
            streams: RwLock::new(HashMap::new()),
            wake_tx,
            wake_rx,
            sleeping_until: AtomicU64::new(0),
            changed: AtomicBool::new(true),
            events: Mutex::new(Vec::new()),
            sync_lock: Mutex::new(()),
            loop_lag: Mutex::new(metrics::looplag::LoopLagSampler::new(crate::clock::now_ms())),
        }
    }

    fn wake_receiver(&self) -> Receiver<()> {
        self.wake_rx.clone()
    }

    /// Wakes the touch thread (a new waiter's deadline, a commit, a change).
    pub fn nudge(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// Wakes the touch thread for a new waiter's deadline, unless it will
    /// wake before that anyway. SeqCst pairs with [`Hub::sleep_until`]: a
    /// waiter that registered after the thread's scan either sees 0 (and
    /// nudges) or the deadline computed without it (and compares).
    pub fn nudge_for_deadline(&self, deadline_ms: u64) {
        let until = self.sleeping_until.load(Ordering::SeqCst);
        if until == 0 || deadline_ms < until {
            self.nudge();
        }
    }

    /// The touch thread: awake (`None`, about to rescan every deadline) or
    /// about to sleep until `Some(ms)`.
    fn sleep_until(&self, until: Option<u64>) {
        let v = until.map_or(0, |ms| ms.max(1));
        self.sleeping_until.store(v, Ordering::SeqCst);
    }

    /// Called by the commit thread after a group with records for `sid`.
    pub fn note_append(&self, sid: u64) {
        if let Some(ts) = self.streams.read().get(&sid) {
            ts.mark_dirty();
            self.nudge();
        }
    }

    /// A profile changed or a stream was deleted.
    pub fn note_changed(&self) {
        self.changed.store(true, Ordering::Release);
        self.nudge();
    }

    fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// The runtime of a touch-enabled stream.
    pub(crate) fn get(&self, sid: u64) -> Option<Arc<TouchStream>> {
        self.streams.read().get(&sid).cloned()
    }

    fn list(&self) -> Vec<Arc<TouchStream>> {
        let mut v: Vec<_> = self.streams.read().values().cloned().collect();
        v.sort_by_key(|t| t.sid());
        v
    }

    /// Queues lifecycle events for `live.metrics`.
    pub(crate) fn queue_events(&self, stream: &Arc<str>, events: Vec<serde_json::Value>) {
        if events.is_empty() {
            return;
        }
        let mut q = self.events.lock();
        q.extend(events.into_iter().map(|e| (Arc::clone(stream), e)));
    }

    fn take_events(&self) -> Vec<(Arc<str>, serde_json::Value)> {
        std::mem::take(&mut *self.events.lock())
    }

    /// Brings the set of touch streams in line with the stored profiles: new
    /// ones are opened from their checkpoints, removed or disabled ones are
    /// dropped (their waiters' senders go with them, which ends the waits),
    /// changed settings reopen the stream.
    pub(crate) fn sync(&self, shared: &Shared, now: u64) {
        let _one_at_a_time = self.sync_lock.lock();
        let all: Vec<_> = shared.streams.read().values().cloned().collect();
        let mut next = HashMap::new();
        let current = self.streams.read().clone();
        for s in all {
            let (profile, deleted) = {
                let l = s.live.lock();
                (l.kv.profile.clone(), l.deleted || l.soft_deleted)
            };
            if deleted {
                continue;
            }
            let Some(cfg) = enabled_config(profile.as_deref()) else {
                continue;
            };
            if let Some(old) = current.get(&s.id) {
                if Arc::ptr_eq(&old.stream, &s) && *old.config == cfg && !old.is_retired() {
                    next.insert(s.id, Arc::clone(old));
                    continue;
                }
                // The replacement opens from the store: the old runtime
                // must have written its last state first.
                old.retire();
            }
            match TouchStream::open(shared, Arc::clone(&s), cfg, now) {
                Ok(ts) => {
                    next.insert(s.id, Arc::new(ts));
                }
                Err(e) => {
                    tracing::error!(stream = %s.name, error = %e, "cannot open touch state")
                }
            }
        }
        for (sid, old) in &current {
            if !next.contains_key(sid) {
                old.retire();
            }
        }
        *self.streams.write() = next;
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}
