//! The runtime state of one touch-enabled stream: its configuration, the
//! journal with the senders of its waiters, hot interest, the processor's
//! position, the template registry and the interval counters. Each part has
//! its own lock, held briefly; the template lock doubles as Prisma's
//! per-stream activation lock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::channel::oneshot;
use parking_lot::Mutex;

use super::config::TouchConfig;
use super::journal::{Journal, JournalConfig, WaiterId, Wake};
use super::metrics::counters::StreamCounters;
use super::processor::ProcState;
use super::store::{self, Checkpoint};
use crate::error::Result;
use crate::shared::Shared;
use crate::stream::StreamState;
use crate::templates::registry::StreamTemplates;

/// How a registered wait ends, sent by the runtime thread.
#[derive(Debug, Clone)]
pub(crate) enum WaitEnd {
    /// A flushed bucket held one of the waiter's keys (or overflowed), in
    /// the journal of this epoch: with the bucket's generation that is the
    /// answer's cursor, so the woken wait needs no journal lock to answer.
    Touched { wake: Wake, epoch: u64 },
    /// The deadline passed.
    Timeout,
}

/// The journal and everything that changes with it.
pub(crate) struct JournalCell {
    pub journal: Journal,
    pub senders: HashMap<WaiterId, oneshot::Sender<WaitEnd>>,
    /// When the open bucket must be flushed.
    pub flush_at: Option<u64>,
    /// The sequence the next flushed bucket is stored under.
    pub next_seq: u64,
    /// Retained buckets `(seq, bytes, flush_ms)`, oldest first, for trimming.
    pub retained: VecDeque<(u64, usize, u64)>,
    pub retained_bytes: usize,
}

/// Where the processor is.
pub(crate) struct Progress {
    /// The next source offset to read.
    pub next: u64,
    pub state: ProcState,
    /// Consecutive failures and the time before which the stream is not retried.
    pub failures: u32,
    pub retry_at_ms: u64,
    /// The last checkpoint written, to skip rewriting an unchanged one.
    pub written: Option<Checkpoint>,
    /// When an idle checkpoint was last written (they are spaced out).
    pub idle_written_ms: u64,
    /// The active templates by entity as of registry change count `.0`:
    /// rebuilt only when the registry changed, not for every batch.
    pub templates: Option<(u64, Arc<super::processor::TemplatesByEntity>)>,
}

/// Monotonic totals of a stream's processor and waits, for meta.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub scan_rows: u64,
    pub scan_batches: u64,
    pub scanned_but_emitted0_batches: u64,
    pub processed_through_delta: u64,
    pub touches_emitted: u64,
    pub touches_table: u64,
    pub touches_template: u64,
    pub fine_dropped_budget: u64,
    pub fine_skipped_cold_template: u64,
    pub fine_skipped_cold_key: u64,
    pub fine_skipped_template_bucket: u64,
    pub wait_touched: u64,
    pub wait_timeout: u64,
    pub wait_stale: u64,
}

impl Totals {
    /// Adds one processed batch.
    pub fn add_batch(&mut self, s: &super::processor::BatchStats, emitted: u64, delta: u64) {
        self.scan_rows += s.rows;
        self.scan_batches += 1;
        if s.rows > 0 && emitted == 0 {
            self.scanned_but_emitted0_batches += 1;
        }
        self.processed_through_delta += delta;
        self.touches_emitted += emitted;
        self.touches_table += s.table_touches;
        self.touches_template += s.template_touches;
        self.fine_dropped_budget += s.dropped_budget;
        self.fine_skipped_cold_template += s.skipped_cold_template;
        self.fine_skipped_cold_key += s.skipped_cold_key;
        self.fine_skipped_template_bucket += s.skipped_template_bucket;
    }

    /// Writes the totals (and the journal's) under meta's names.
    pub fn write_json(
        &self,
        m: &mut serde_json::Map<String, serde_json::Value>,
        j: &super::journal::JournalTotals,
    ) {
        let mut put = |k: &str, v: u64| {
            m.insert(k.to_string(), v.into());
        };
        put("scanRowsTotal", self.scan_rows);
        put("scanBatchesTotal", self.scan_batches);
        put(
            "scannedButEmitted0BatchesTotal",
            self.scanned_but_emitted0_batches,
        );
        put("processedThroughDeltaTotal", self.processed_through_delta);
        put("touchesEmittedTotal", self.touches_emitted);
        put("touchesTableTotal", self.touches_table);
        put("touchesTemplateTotal", self.touches_template);
        put(
            "fineTouchesDroppedDueToBudgetTotal",
            self.fine_dropped_budget,
        );
        put(
            "fineTouchesSkippedColdTemplateTotal",
            self.fine_skipped_cold_template,
        );
        put("fineTouchesSkippedColdKeyTotal", self.fine_skipped_cold_key);
        put(
            "fineTouchesSkippedTemplateBucketTotal",
            self.fine_skipped_template_bucket,
        );
        put("waitTouchedTotal", self.wait_touched);
        put("waitTimeoutTotal", self.wait_timeout);
        put("waitStaleTotal", self.wait_stale);
        put("journalFlushesTotal", j.flushes);
        put("journalNotifyWakeupsTotal", j.notify_wakeups);
        put("journalNotifyWakeMsTotal", j.notify_wake_ms_sum);
        put("journalNotifyWakeMsMax", j.notify_wake_ms_max);
        put("journalTimeoutsFiredTotal", j.timeouts_fired);
        put("journalTimeoutSweepMsTotal", j.timeout_sweep_ms_sum);
    }
}

/// One touch-enabled stream.
pub(crate) struct TouchStream {
    pub stream: Arc<StreamState>,
    pub config: Arc<TouchConfig>,
    pub journal: Mutex<JournalCell>,
    pub hot: Mutex<super::hot::Hot>,
    pub progress: Mutex<Progress>,
    pub templates: Mutex<StreamTemplates>,
    pub counters: Mutex<StreamCounters>,
    pub totals: Mutex<Totals>,
    /// Set by the commit thread when records were appended.
    pub dirty: AtomicBool,
    /// When the template GC last ran.
    pub last_gc_ms: Mutex<u64>,
    /// Set once the stream's profile changed or it went away: this runtime
    /// no longer owns the stream's touch state and writes nothing more
    /// (a replacement, if any, opens from what the store holds).
    pub retired: AtomicBool,
}

/// Generations skipped after a restart: a flush that a power cut took away
/// may have been seen by a client, so its generation number is never reused
/// (cursors inside the gap are answered stale).
pub(crate) const RESTART_GENERATION_JUMP: u32 = 1 << 16;

/// Retained history of flushed buckets, per stream: the newest buckets up to
/// this age and size survive, so cursors from before a restart stay valid.
pub(crate) const RETAIN_MS: u64 = 10 * 60 * 1000;
/// See [`RETAIN_MS`].
pub(crate) const RETAIN_BYTES: usize = 64 << 20;

impl TouchStream {
    /// Stops this runtime from writing touch state. Taking the progress
    /// lock waits for a flush or checkpoint write in progress, so none
    /// lands after the caller's own write of the stream's touch state.
    pub fn retire(&self) {
        let _writes = self.progress.lock();
        self.retired
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`TouchStream::retire`] was called (check under the progress lock).
    pub fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Opens the runtime of a stream whose profile enables touch, from its
    /// checkpoint, retained buckets and template rows. A stream enabled
    /// without a checkpoint (none written yet) starts at `tail`.
    pub fn open(
        shared: &Shared,
        stream: Arc<StreamState>,
        config: TouchConfig,
        now_ms: u64,
    ) -> Result<TouchStream> {
        let sid = stream.id;
        let tail = stream.live.lock().next_offset;
        let jcfg = journal_config(&config);
        let checkpoint = store::load_checkpoint(&shared.db, sid)?;
        let (journal, next, next_seq, retained, retained_bytes) = match checkpoint {
            Some(c) => {
                let buckets = store::load_buckets(&shared.db, sid)?;
                let next_seq = buckets
                    .last()
                    .map_or(c.next_seq, |b| b.0 + 1)
                    .max(c.next_seq);
                let retained: VecDeque<_> = buckets
                    .iter()
                    .map(|(seq, len, b)| (*seq, *len, b.flush_ms))
                    .collect();
                let bytes = retained.iter().map(|r| r.1).sum();
                // A checkpoint that never flushed has handed out no cursor
                // beyond generation 0: nothing to skip.
                let jump = if c.generation == 0 && next_seq == 0 {
                    0
                } else {
                    RESTART_GENERATION_JUMP
                };
                let journal = Journal::restore(
                    jcfg,
                    c.epoch,
                    c.generation,
                    buckets.into_iter().map(|(_, _, b)| b),
                    jump,
                    now_ms,
                );
                (journal, c.next.min(tail), next_seq, retained, bytes)
            }
            None => (
                Journal::new(jcfg, random_epoch(), now_ms),
                tail,
                0,
                VecDeque::new(),
                0,
            ),
        };
        let mut templates = StreamTemplates::new(&stream.name);
        templates.load(store::load_templates(&shared.db, sid)?);
        let hot = super::hot::Hot::new(hot_config(&config));
        Ok(TouchStream {
            stream,
            journal: Mutex::new(JournalCell {
                journal,
                senders: HashMap::new(),
                flush_at: None,
                next_seq,
                retained,
                retained_bytes,
            }),
            hot: Mutex::new(hot),
            progress: Mutex::new(Progress {
                next,
                state: ProcState::new(&config, now_ms),
                failures: 0,
                retry_at_ms: 0,
                written: checkpoint,
                idle_written_ms: 0,
                templates: None,
            }),
            templates: Mutex::new(templates),
            counters: Mutex::new(StreamCounters::default()),
            totals: Mutex::new(Totals::default()),
            dirty: AtomicBool::new(true),
            last_gc_ms: Mutex::new(0),
            retired: AtomicBool::new(false),
            config: Arc::new(config),
        })
    }

    /// The stream's id.
    pub fn sid(&self) -> u64 {
        self.stream.id
    }

    /// Marks new records for the processor.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// The journal settings of a touch configuration.
pub(crate) fn journal_config(c: &TouchConfig) -> JournalConfig {
    JournalConfig {
        bucket_ms: c.memory.bucket_ms,
        filter_pow2: c.memory.filter_pow2,
        k: c.memory.k,
        pending_max_keys: c.memory.pending_max_keys,
        key_index_max_keys: c.memory.key_index_max_keys,
    }
}

fn hot_config(c: &TouchConfig) -> super::hot::HotConfig {
    super::hot::HotConfig {
        key_ttl_ms: c.memory.hot_key_ttl_ms,
        template_ttl_ms: c.memory.hot_template_ttl_ms,
        max_keys: c.memory.hot_max_keys,
        max_templates: c.memory.hot_max_templates,
    }
}

/// 64 random bits for a new journal epoch, from the OS.
pub(crate) fn random_epoch() -> u64 {
    let mut b = [0u8; 8];
    // The OS random source does not fail on Linux once booted; the clock is
    // a fallback that still differs between process starts.
    if getrandom::getrandom(&mut b).is_err() {
        return crate::clock::now_ms().wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    u64::from_le_bytes(b)
}
