//! The writer: appends the change sequence at the target rate over the
//! binary door. Every tick (1 ms) it sends what is due as one append, so
//! a high rate batches several changes per append; appends pipeline, up to
//! a bound that keeps two changes of one key from ever being in flight
//! together. Each acknowledgement fills the ledger: the changes' offsets,
//! their send time (when the append went out) and their groups.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::data::{self, Changes};
use super::door::Door;
use super::ledger::{Entry, Ledger};
use super::{Clock, StateModeArg};

/// How often what is due is sent.
const TICK: Duration = Duration::from_millis(1);

/// Most changes in one append.
const MAX_BATCH: usize = 1000;

/// Most appends in flight.
const MAX_APPENDS: usize = 256;

/// What the writer does.
pub(crate) struct Plan {
    pub stream: String,
    pub mode: StateModeArg,
    pub rate: f64,
    pub value_size: usize,
    pub keys: u32,
    /// When to stop sending, nanos since the epoch.
    pub until_ns: u64,
}

/// What the writer did.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Changes sent.
    pub sent: u64,
    /// Changes acknowledged.
    pub acked: u64,
    /// Changes acknowledged that were sent after warm-up.
    pub measured: u64,
    /// Appends that failed (their changes' fate is unknown).
    pub failed_appends: u64,
    pub last_error: Option<String>,
    /// Acknowledged changes the ledger had no room for.
    pub unrecorded: u64,
    /// Most the writer fell behind its schedule, ms.
    pub behind_ms: f64,
}

/// Shared between the writer loop and its append tasks.
#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    measured: AtomicU64,
    failed: AtomicU64,
    unrecorded: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Runs the writer until `plan.until_ns`, then waits for every append in
/// flight.
pub(crate) async fn run(
    door: Door,
    plan: Plan,
    mut changes: Changes,
    ledger: Arc<Ledger>,
    clock: Clock,
) -> Written {
    let plan = Arc::new(plan);
    // Fewer changes in flight than keys: the permutation then never has
    // the same key in two appends that could apply out of order.
    let window = ((plan.keys as usize) / 2).clamp(1, 100_000);
    let changes_in_flight = Arc::new(Semaphore::new(window));
    let appends = Arc::new(Semaphore::new(MAX_APPENDS));
    let counts = Arc::new(Counts::default());
    let max_batch = MAX_BATCH.min(window);
    let start = clock.now();
    let mut sent = 0u64;
    let mut behind_ns = 0u64;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'run: loop {
        ticker.tick().await;
        let now = clock.now();
        if now >= plan.until_ns || sent as usize >= ledger.capacity() {
            break;
        }
        let due = ((now - start) as f64 * plan.rate / 1e9) as u64;
        if due > sent + 1 {
            // What is left over from earlier ticks shows how far behind it is.
            let late = ((due - sent) as f64 / plan.rate * 1e9) as u64;
            behind_ns = behind_ns.max(late.saturating_sub(TICK.as_nanos() as u64));
        }
        while sent < due {
            let n = ((due - sent) as usize)
                .min(max_batch)
                .min(ledger.capacity() - sent as usize);
            if n == 0 {
                break 'run;
            }
            let permit_changes = changes_in_flight
                .clone()
                .acquire_many_owned(n as u32)
                .await
                .expect("semaphore open");
            let permit_append = appends
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore open");
            let batch: Vec<data::Change> = (0..n).map(|_| changes.next_change()).collect();
            let records = batch
                .iter()
                .map(|c| {
                    let v = data::value(c.new_group, c.seq, plan.value_size);
                    data::record(plan.mode, c.key, &v, false)
                })
                .collect();
            sent += n as u64;
            let (door, task_plan, ledger, counts, task_clock) = (
                door.clone(),
                plan.clone(),
                ledger.clone(),
                counts.clone(),
                clock.clone(),
            );
            tokio::spawn(async move {
                let sent_ns = task_clock.now();
                match door.append(&task_plan.stream, records).await {
                    Ok(first) => {
                        for (i, c) in batch.iter().enumerate() {
                            let e = Entry {
                                sent_ns,
                                key: c.key,
                                old_group: c.old_group,
                                new_group: c.new_group,
                            };
                            if !ledger.record(first + i as u64, e) {
                                counts.unrecorded.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        counts.acked.fetch_add(n as u64, Ordering::Relaxed);
                        if task_clock.measured(sent_ns) {
                            counts.measured.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        *counts.last_error.lock().expect("lock") = Some(format!("{e:#}"));
                    }
                }
                drop((permit_changes, permit_append));
            });
            if clock.now() >= plan.until_ns {
                break 'run;
            }
        }
    }
    // Every append answered (or failed) once all permits are back.
    let _all = appends
        .acquire_many(MAX_APPENDS as u32)
        .await
        .expect("semaphore open");
    let last_error = counts.last_error.lock().expect("lock").take();
    Written {
        sent,
        acked: counts.acked.load(Ordering::Relaxed),
        measured: counts.measured.load(Ordering::Relaxed),
        failed_appends: counts.failed.load(Ordering::Relaxed),
        last_error,
        unrecorded: counts.unrecorded.load(Ordering::Relaxed),
        behind_ms: behind_ns as f64 / 1e6,
    }
}
