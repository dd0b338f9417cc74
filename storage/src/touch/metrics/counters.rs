//! Per-stream, per-interval counters behind `live.tick` (spec §3.4).
//!
//! Everything here is reset by [`StreamCounters::take`] once the tick is
//! built, except the two config echoes (`coarseIntervalMs`,
//! `coalesceWindowMs`); `mode` falls back to `idle`, so a stream with waiters
//! but no writes reports `idle` and zero gauges. Inputs are unsigned, which is
//! Prisma's "negative inputs clamp to 0, gauges are floored" by construction.

use super::histogram::LatencyHistogram;
use crate::touch::config::TouchConfig;
use crate::touch::defaults::{COARSE_INTERVAL_MS, TOUCH_COALESCE_WINDOW_MS};

/// Runtime touch mode of a stream, as reported in meta and `live.tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TouchMode {
    /// No waiters.
    #[default]
    Idle,
    /// Fine touches emitted, not lag-suppressed.
    Fine,
    /// Fine emission on but lag-suppressed: template-key touches only.
    Restricted,
    /// Table touches only.
    CoarseOnly,
}

impl TouchMode {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TouchMode::Idle => "idle",
            TouchMode::Fine => "fine",
            TouchMode::Restricted => "restricted",
            TouchMode::CoarseOnly => "coarseOnly",
        }
    }
}

/// Kind of an emitted touch: table (coarse) or template (fine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchKind {
    /// Coarse table-key touch.
    Table,
    /// Fine touch (watch, membership, projected-field or template key).
    Template,
}

/// Outcome of one `/touch/wait` call (client aborts are not recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Answered `touched:true`.
    Touched,
    /// Answered `touched:false`.
    Timeout,
    /// Answered `stale:true` (epoch mismatch).
    Stale,
}

/// Template lifecycle event kinds counted in `templates.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleKind {
    /// `live.template_activated` (refreshes included).
    Activated,
    /// `live.template_retired` (inactivity GC).
    Retired,
    /// `live.template_evicted` (cap LRU).
    Evicted,
}

impl LifecycleKind {
    /// The kind of a lifecycle event `type` string, if it is one.
    pub fn from_event_type(t: &str) -> Option<Self> {
        match t {
            "live.template_activated" => Some(LifecycleKind::Activated),
            "live.template_retired" => Some(LifecycleKind::Retired),
            "live.template_evicted" => Some(LifecycleKind::Evicted),
            _ => None,
        }
    }

    /// The event `type` string.
    pub fn event_type(self) -> &'static str {
        match self {
            LifecycleKind::Activated => "live.template_activated",
            LifecycleKind::Retired => "live.template_retired",
            LifecycleKind::Evicted => "live.template_evicted",
        }
    }
}

/// Hot-interest and waiter gauges sampled at one batch; each tick reports
/// the max over the interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HotGauges {
    pub hot_fine_keys: u64,
    pub hot_templates: u64,
    pub hot_fine_keys_active: u64,
    pub hot_fine_keys_grace: u64,
    pub hot_templates_active: u64,
    pub hot_templates_grace: u64,
    pub fine_waiters_active: u64,
    pub coarse_waiters_active: u64,
    pub broad_fine_waiters_active: u64,
}

impl HotGauges {
    fn max_with(&mut self, o: &HotGauges) {
        self.hot_fine_keys = self.hot_fine_keys.max(o.hot_fine_keys);
        self.hot_templates = self.hot_templates.max(o.hot_templates);
        self.hot_fine_keys_active = self.hot_fine_keys_active.max(o.hot_fine_keys_active);
        self.hot_fine_keys_grace = self.hot_fine_keys_grace.max(o.hot_fine_keys_grace);
        self.hot_templates_active = self.hot_templates_active.max(o.hot_templates_active);
        self.hot_templates_grace = self.hot_templates_grace.max(o.hot_templates_grace);
        self.fine_waiters_active = self.fine_waiters_active.max(o.fine_waiters_active);
        self.coarse_waiters_active = self.coarse_waiters_active.max(o.coarse_waiters_active);
        self.broad_fine_waiters_active = self
            .broad_fine_waiters_active
            .max(o.broad_fine_waiters_active);
    }
}

/// What one processed batch reports to metrics.
#[derive(Debug, Clone, Default)]
pub struct BatchStats<'a> {
    /// WAL rows read.
    pub rows_read: u64,
    /// Canonical changes derived.
    pub changes: u64,
    /// Every emitted touch as (keyId, kind).
    pub touches: &'a [(u32, TouchKind)],
    /// Remaining lag after the batch (0 when there was no fine demand).
    pub lag_source_offsets: u64,
    pub touch_mode: TouchMode,
    pub hot: HotGauges,
    /// now − largest append ts of the batch; `None` when that ts was 0
    /// (see [`commit_lag_ms`]).
    pub commit_lag_ms: Option<u64>,
    pub fine_touches_dropped_due_to_budget: u64,
    pub fine_touches_skipped_cold_template: u64,
    pub fine_touches_skipped_cold_key: u64,
    pub fine_touches_skipped_template_bucket: u64,
    pub fine_touches_suppressed_due_to_lag: bool,
    /// Batch duration, counted only while lag-suppressed.
    pub fine_touches_suppressed_due_to_lag_ms: u64,
    /// Budget used up or token-limited.
    pub fine_touches_suppressed_due_to_budget: bool,
    /// Never set by Prisma 0.1.11 (the field is always 0); kept for shape.
    pub no_interest_fast_forward: bool,
    pub processed_through_delta: u64,
    pub touches_emitted_delta: u64,
}

/// Prisma's commit-lag rule: recorded only for a positive max source ts,
/// and never negative.
pub fn commit_lag_ms(now_ms: u64, max_source_ts_ms: u64) -> Option<u64> {
    (max_source_ts_ms > 0).then(|| now_ms.saturating_sub(max_source_ts_ms))
}

/// The `touch` group of one interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TouchGroup {
    pub coarse_interval_ms: f64,
    pub coalesce_window_ms: f64,
    pub mode: TouchMode,
    pub hot: HotGauges,
    pub touches_emitted: u64,
    pub unique_keys_touched: u64,
    pub table_touches_emitted: u64,
    pub template_touches_emitted: u64,
    pub stale_responses: u64,
    pub fine_touches_dropped_due_to_budget: u64,
    pub fine_touches_skipped_cold_template: u64,
    pub fine_touches_skipped_cold_key: u64,
    pub fine_touches_skipped_template_bucket: u64,
    pub fine_touches_suppressed_batches_due_to_lag: u64,
    pub fine_touches_suppressed_ms_due_to_lag: u64,
    pub fine_touches_suppressed_batches_due_to_budget: u64,
}

/// The `templates` counters of one interval (`active` is read at tick time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplatesGroup {
    pub activated: u64,
    pub retired: u64,
    pub evicted: u64,
    pub activation_denied: u64,
}

/// The `wait` counters of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitGroup {
    pub calls: u64,
    pub keys_watched_total: u64,
    pub touched: u64,
    pub timeout: u64,
    pub stale: u64,
    pub latency_sum_ms: u64,
}

/// The `processor` counters of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessorGroup {
    pub events_in: u64,
    pub changes_out: u64,
    pub errors: u64,
    pub lag_source_offsets: u64,
    pub scanned_batches: u64,
    pub scanned_but_emitted0_batches: u64,
    pub no_interest_fast_forward_batches: u64,
    pub processed_through_delta: u64,
    pub touches_emitted_delta: u64,
    pub commit_lag_samples: u64,
    pub commit_lag_ms_sum: u64,
}

/// The `base.gc` counters of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcGroup {
    pub calls: u64,
    pub deleted_rows: u64,
    pub deleted_bytes: u64,
    pub ms_sum: u64,
    pub ms_max: u64,
}

/// One interval's counters, as handed to the tick builder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalSnapshot {
    pub touch: TouchGroup,
    pub templates: TemplatesGroup,
    pub wait: WaitGroup,
    pub processor: ProcessorGroup,
    pub gc: GcGroup,
    pub wait_p95_latency_ms: u64,
    pub commit_lag_ms_p50: u64,
    pub commit_lag_ms_p95: u64,
    pub commit_lag_ms_p99: u64,
}

fn ratio(sum: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        sum as f64 / n as f64
    }
}

impl IntervalSnapshot {
    /// `wait.avgKeysPerCall`: plain division, no rounding (0 without calls).
    pub fn avg_keys_per_call(&self) -> f64 {
        ratio(self.wait.keys_watched_total, self.wait.calls)
    }

    /// `wait.avgLatencyMs`: plain division, no rounding (0 without calls).
    pub fn avg_latency_ms(&self) -> f64 {
        ratio(self.wait.latency_sum_ms, self.wait.calls)
    }

    /// `processor.commitLagMsAvg` over batches that had a commit lag.
    pub fn commit_lag_ms_avg(&self) -> f64 {
        ratio(
            self.processor.commit_lag_ms_sum,
            self.processor.commit_lag_samples,
        )
    }

    /// `touch.fineTouchesSuppressedSecondsDueToLag` (ms ÷ 1000, unrounded).
    pub fn fine_touches_suppressed_seconds_due_to_lag(&self) -> f64 {
        self.touch.fine_touches_suppressed_ms_due_to_lag as f64 / 1000.0
    }
}

/// Live counters of one stream between two ticks.
#[derive(Debug, Clone)]
pub struct StreamCounters {
    touch: TouchGroup,
    templates: TemplatesGroup,
    wait: WaitGroup,
    processor: ProcessorGroup,
    gc: GcGroup,
    wait_latency: LatencyHistogram,
    commit_lag: LatencyHistogram,
}

impl Default for StreamCounters {
    /// Counters first created by a lifecycle event or base GC, before any
    /// config was seen: the config echoes start at their defaults.
    fn default() -> Self {
        Self::new(COARSE_INTERVAL_MS, TOUCH_COALESCE_WINDOW_MS)
    }
}

impl StreamCounters {
    /// Fresh counters echoing the given config values.
    pub fn new(coarse_interval_ms: f64, coalesce_window_ms: f64) -> Self {
        StreamCounters {
            touch: TouchGroup {
                coarse_interval_ms,
                coalesce_window_ms,
                ..TouchGroup::default()
            },
            templates: TemplatesGroup::default(),
            wait: WaitGroup::default(),
            processor: ProcessorGroup::default(),
            gc: GcGroup::default(),
            wait_latency: LatencyHistogram::new(),
            commit_lag: LatencyHistogram::new(),
        }
    }

    /// Fresh counters for a stream whose config is known.
    pub fn for_config(cfg: &TouchConfig) -> Self {
        Self::new(cfg.coarse_interval_ms, cfg.touch_coalesce_window_ms)
    }

    /// Folds one processed batch in; also refreshes the config echoes.
    pub fn record_processor_batch(&mut self, cfg: &TouchConfig, b: &BatchStats<'_>) {
        let t = &mut self.touch;
        t.coarse_interval_ms = cfg.coarse_interval_ms;
        t.coalesce_window_ms = cfg.touch_coalesce_window_ms;
        t.mode = b.touch_mode;
        t.hot.max_with(&b.hot);

        let p = &mut self.processor;
        p.events_in = p.events_in.saturating_add(b.rows_read);
        p.changes_out = p.changes_out.saturating_add(b.changes);
        p.lag_source_offsets = p.lag_source_offsets.max(b.lag_source_offsets);
        p.scanned_batches += 1;
        if b.rows_read > 0 && b.touches.is_empty() {
            p.scanned_but_emitted0_batches += 1;
        }
        if b.no_interest_fast_forward {
            p.no_interest_fast_forward_batches += 1;
        }
        p.processed_through_delta = p
            .processed_through_delta
            .saturating_add(b.processed_through_delta);
        p.touches_emitted_delta = p
            .touches_emitted_delta
            .saturating_add(b.touches_emitted_delta);
        if let Some(lag) = b.commit_lag_ms {
            p.commit_lag_samples += 1;
            p.commit_lag_ms_sum = p.commit_lag_ms_sum.saturating_add(lag);
            self.commit_lag.record(lag);
        }

        t.fine_touches_dropped_due_to_budget += b.fine_touches_dropped_due_to_budget;
        t.fine_touches_skipped_cold_template += b.fine_touches_skipped_cold_template;
        t.fine_touches_skipped_cold_key += b.fine_touches_skipped_cold_key;
        t.fine_touches_skipped_template_bucket += b.fine_touches_skipped_template_bucket;
        if b.fine_touches_suppressed_due_to_lag {
            t.fine_touches_suppressed_batches_due_to_lag += 1;
        }
        t.fine_touches_suppressed_ms_due_to_lag += b.fine_touches_suppressed_due_to_lag_ms;
        if b.fine_touches_suppressed_due_to_budget {
            t.fine_touches_suppressed_batches_due_to_budget += 1;
        }

        let mut ids: Vec<u32> = b.touches.iter().map(|&(id, _)| id).collect();
        ids.sort_unstable();
        ids.dedup();
        let table = b
            .touches
            .iter()
            .filter(|(_, k)| *k == TouchKind::Table)
            .count() as u64;
        t.touches_emitted += b.touches.len() as u64;
        t.unique_keys_touched += ids.len() as u64;
        t.table_touches_emitted += table;
        t.template_touches_emitted += b.touches.len() as u64 - table;
    }

    /// One wait outcome; `keys_count` is the size of the effective key set.
    pub fn record_wait(&mut self, keys_count: u64, outcome: WaitOutcome, latency_ms: u64) {
        let w = &mut self.wait;
        w.calls += 1;
        w.keys_watched_total = w.keys_watched_total.saturating_add(keys_count);
        w.latency_sum_ms = w.latency_sum_ms.saturating_add(latency_ms);
        self.wait_latency.record(latency_ms);
        match outcome {
            WaitOutcome::Touched => w.touched += 1,
            WaitOutcome::Timeout => w.timeout += 1,
            WaitOutcome::Stale => {
                w.stale += 1;
                self.touch.stale_responses += 1;
            }
        }
    }

    /// A failed batch.
    pub fn record_processor_error(&mut self) {
        self.processor.errors += 1;
    }

    /// `n` activation denials for `rate_limited` (not `invalid` ones).
    pub fn record_activation_denied(&mut self, n: u64) {
        self.templates.activation_denied += n;
    }

    /// One lifecycle event written (or attempted) to `live.metrics`.
    pub fn record_lifecycle(&mut self, kind: LifecycleKind) {
        match kind {
            LifecycleKind::Activated => self.templates.activated += 1,
            LifecycleKind::Retired => self.templates.retired += 1,
            LifecycleKind::Evicted => self.templates.evicted += 1,
        }
    }

    /// One base-WAL GC deletion. Sweeps that removed nothing are ignored, as
    /// Prisma only reports deletions that removed rows or bytes.
    pub fn record_base_gc(&mut self, deleted_rows: u64, deleted_bytes: u64, duration_ms: u64) {
        if deleted_rows == 0 && deleted_bytes == 0 {
            return;
        }
        let g = &mut self.gc;
        g.calls += 1;
        g.deleted_rows = g.deleted_rows.saturating_add(deleted_rows);
        g.deleted_bytes = g.deleted_bytes.saturating_add(deleted_bytes);
        g.ms_sum = g.ms_sum.saturating_add(duration_ms);
        g.ms_max = g.ms_max.max(duration_ms);
    }

    /// Current `touch.mode`.
    pub fn mode(&self) -> TouchMode {
        self.touch.mode
    }

    /// Snapshots the interval and starts the next one (config echoes kept,
    /// mode back to idle, histograms emptied).
    pub fn take(&mut self) -> IntervalSnapshot {
        let snap = IntervalSnapshot {
            touch: self.touch.clone(),
            templates: self.templates,
            wait: self.wait,
            processor: self.processor,
            gc: self.gc,
            wait_p95_latency_ms: self.wait_latency.p95(),
            commit_lag_ms_p50: self.commit_lag.p50(),
            commit_lag_ms_p95: self.commit_lag.p95(),
            commit_lag_ms_p99: self.commit_lag.p99(),
        };
        *self = Self::new(self.touch.coarse_interval_ms, self.touch.coalesce_window_ms);
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TouchConfig {
        let mut c = TouchConfig::default_enabled();
        c.coarse_interval_ms = 250.0;
        c.touch_coalesce_window_ms = 40.0;
        c
    }

    #[test]
    fn fresh_counters_are_zero_and_idle() {
        let mut c = StreamCounters::default();
        let s = c.take();
        assert_eq!(s.touch.coarse_interval_ms, 100.0);
        assert_eq!(s.touch.coalesce_window_ms, 100.0);
        assert_eq!(s.touch.mode, TouchMode::Idle);
        assert_eq!(s.wait, WaitGroup::default());
        assert_eq!(s.processor, ProcessorGroup::default());
        assert_eq!(s.gc, GcGroup::default());
        assert_eq!(s.avg_keys_per_call(), 0.0);
        assert_eq!(s.avg_latency_ms(), 0.0);
        assert_eq!(s.commit_lag_ms_avg(), 0.0);
        assert_eq!(s.wait_p95_latency_ms, 0);
    }

    #[test]
    fn waits_are_counted_once_then_reset() {
        let mut c = StreamCounters::for_config(&cfg());
        c.record_wait(3, WaitOutcome::Touched, 4);
        c.record_wait(1, WaitOutcome::Timeout, 30_000);
        c.record_wait(0, WaitOutcome::Stale, 1);
        let s = c.take();
        assert_eq!(s.wait.calls, 3);
        assert_eq!(s.wait.keys_watched_total, 4);
        assert_eq!((s.wait.touched, s.wait.timeout, s.wait.stale), (1, 1, 1));
        assert_eq!(s.touch.stale_responses, 1);
        assert_eq!(s.avg_keys_per_call(), 4.0 / 3.0);
        assert_eq!(s.avg_latency_ms(), 30_005.0 / 3.0);
        // ceil(3·0.95) = 3 → the bucket holding 30000 (bound 30000).
        assert_eq!(s.wait_p95_latency_ms, 30_000);
        let next = c.take();
        assert_eq!(next.wait, WaitGroup::default());
        assert_eq!(next.touch.stale_responses, 0);
        assert_eq!(next.wait_p95_latency_ms, 0);
        assert_eq!(next.touch.coarse_interval_ms, 250.0);
        assert_eq!(next.touch.coalesce_window_ms, 40.0);
    }

    #[test]
    fn p95_uses_bucket_upper_bounds() {
        let mut c = StreamCounters::default();
        for _ in 0..10 {
            c.record_wait(1, WaitOutcome::Timeout, 11);
        }
        assert_eq!(c.take().wait_p95_latency_ms, 20);
    }

    #[test]
    fn batch_gauges_are_maxed_and_counters_summed() {
        let mut c = StreamCounters::default();
        let touches = [
            (7, TouchKind::Table),
            (7, TouchKind::Table),
            (9, TouchKind::Template),
            (11, TouchKind::Template),
        ];
        c.record_processor_batch(
            &cfg(),
            &BatchStats {
                rows_read: 10,
                changes: 8,
                touches: &touches,
                lag_source_offsets: 500,
                touch_mode: TouchMode::Fine,
                hot: HotGauges {
                    hot_fine_keys: 5,
                    fine_waiters_active: 2,
                    ..HotGauges::default()
                },
                commit_lag_ms: Some(30),
                fine_touches_dropped_due_to_budget: 4,
                fine_touches_suppressed_due_to_lag: true,
                fine_touches_suppressed_due_to_lag_ms: 250,
                processed_through_delta: 10,
                touches_emitted_delta: 4,
                ..BatchStats::default()
            },
        );
        c.record_processor_batch(
            &cfg(),
            &BatchStats {
                rows_read: 3,
                touches: &[(9, TouchKind::Template)],
                lag_source_offsets: 100,
                touch_mode: TouchMode::Restricted,
                hot: HotGauges {
                    hot_fine_keys: 2,
                    fine_waiters_active: 6,
                    ..HotGauges::default()
                },
                commit_lag_ms: None,
                fine_touches_suppressed_due_to_budget: true,
                ..BatchStats::default()
            },
        );
        // A batch that read rows but emitted nothing.
        c.record_processor_batch(
            &cfg(),
            &BatchStats {
                rows_read: 1,
                touch_mode: TouchMode::CoarseOnly,
                commit_lag_ms: Some(2_500),
                ..BatchStats::default()
            },
        );
        c.record_processor_error();
        assert_eq!(c.mode(), TouchMode::CoarseOnly);
        let s = c.take();
        assert_eq!(s.touch.coarse_interval_ms, 250.0);
        assert_eq!(s.touch.mode, TouchMode::CoarseOnly);
        assert_eq!(s.touch.hot.hot_fine_keys, 5);
        assert_eq!(s.touch.hot.fine_waiters_active, 6);
        assert_eq!(s.touch.touches_emitted, 5);
        // Distinct per batch, summed: {7,9,11} + {9}.
        assert_eq!(s.touch.unique_keys_touched, 4);
        assert_eq!(s.touch.table_touches_emitted, 2);
        assert_eq!(s.touch.template_touches_emitted, 3);
        assert_eq!(s.touch.fine_touches_dropped_due_to_budget, 4);
        assert_eq!(s.touch.fine_touches_suppressed_batches_due_to_lag, 1);
        assert_eq!(s.fine_touches_suppressed_seconds_due_to_lag(), 0.25);
        assert_eq!(s.touch.fine_touches_suppressed_batches_due_to_budget, 1);
        assert_eq!(s.processor.events_in, 14);
        assert_eq!(s.processor.changes_out, 8);
        assert_eq!(s.processor.errors, 1);
        assert_eq!(s.processor.lag_source_offsets, 500);
        assert_eq!(s.processor.scanned_batches, 3);
        assert_eq!(s.processor.scanned_but_emitted0_batches, 1);
        assert_eq!(s.processor.no_interest_fast_forward_batches, 0);
        assert_eq!(s.processor.processed_through_delta, 10);
        assert_eq!(s.processor.touches_emitted_delta, 4);
        assert_eq!(s.processor.commit_lag_samples, 2);
        assert_eq!(s.commit_lag_ms_avg(), 1_265.0);
        assert_eq!(
            (
                s.commit_lag_ms_p50,
                s.commit_lag_ms_p95,
                s.commit_lag_ms_p99
            ),
            (50, 5_000, 5_000)
        );
        // Everything is back to zero, mode idle, config kept.
        let z = c.take();
        assert_eq!(z.touch.mode, TouchMode::Idle);
        assert_eq!(z.touch.hot, HotGauges::default());
        assert_eq!(z.processor, ProcessorGroup::default());
        assert_eq!(z.touch.touches_emitted, 0);
        assert_eq!(z.touch.fine_touches_suppressed_ms_due_to_lag, 0);
        assert_eq!(z.commit_lag_ms_p99, 0);
        assert_eq!(z.touch.coalesce_window_ms, 40.0);
    }

    #[test]
    fn templates_and_gc_counters() {
        let mut c = StreamCounters::default();
        c.record_lifecycle(LifecycleKind::Activated);
        c.record_lifecycle(LifecycleKind::Activated);
        c.record_lifecycle(LifecycleKind::Retired);
        c.record_lifecycle(LifecycleKind::Evicted);
        c.record_activation_denied(3);
        c.record_base_gc(10, 1_000, 4);
        c.record_base_gc(0, 0, 99); // removed nothing: ignored
        c.record_base_gc(1, 10, 2);
        let s = c.take();
        assert_eq!(
            s.templates,
            TemplatesGroup {
                activated: 2,
                retired: 1,
                evicted: 1,
                activation_denied: 3
            }
        );
        assert_eq!(
            s.gc,
            GcGroup {
                calls: 2,
                deleted_rows: 11,
                deleted_bytes: 1_010,
                ms_sum: 6,
                ms_max: 4
            }
        );
        let z = c.take();
        assert_eq!(z.templates, TemplatesGroup::default());
        assert_eq!(z.gc, GcGroup::default());
    }

    #[test]
    fn commit_lag_rule() {
        assert_eq!(commit_lag_ms(1_000, 0), None);
        assert_eq!(commit_lag_ms(1_000, 400), Some(600));
        assert_eq!(commit_lag_ms(1_000, 5_000), Some(0));
    }

    #[test]
    fn names() {
        assert_eq!(TouchMode::CoarseOnly.as_str(), "coarseOnly");
        assert_eq!(TouchMode::Restricted.as_str(), "restricted");
        assert_eq!(
            LifecycleKind::from_event_type("live.template_evicted"),
            Some(LifecycleKind::Evicted)
        );
        assert_eq!(LifecycleKind::from_event_type("live.tick"), None);
        assert_eq!(LifecycleKind::Retired.event_type(), "live.template_retired");
    }
}
