//! The `live.tick` event (spec §3.4): one per touch stream per second, every
//! field present even when all are zero, in Prisma's member order.

use super::counters::IntervalSnapshot;
use super::events::{routing_key, Envelope, MetricsRow};
use crate::touch::defaults::MAX_SAFE_INTEGER;
use crate::touch::json_text::ObjectWriter;

/// `type` of the tick event.
pub const TICK_TYPE: &str = "live.tick";

/// The journal's per-interval statistics, snapshotted and reset by the shell
/// for each tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalIntervalStats {
    pub timeouts_fired: u64,
    pub timeout_sweeps: u64,
    pub timeout_sweep_ms_sum: u64,
    pub timeout_sweep_ms_max: u64,
    pub notify_wakeups: u64,
    pub notify_flushes: u64,
    pub notify_wake_ms_sum: u64,
    pub notify_wake_ms_max: u64,
    /// Deadline heap size at snapshot time (`wait.timeoutHeapSize`).
    pub heap_size: u64,
}

/// Journal state at tick time; absent until the stream's journal exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalGauges {
    pub cursor: String,
    pub epoch: String,
    pub generation: u32,
    pub pending_keys: u64,
    pub overflow_buckets: u64,
    pub active_waiters: u64,
    pub interval: JournalIntervalStats,
}

/// The base stream's storage progress. Offsets are already encoded (26-char
/// stream offsets with the stream epoch) by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseProgress {
    pub tail_offset: String,
    pub next_offset: String,
    pub sealed_through: String,
    pub uploaded_through: String,
    pub processed_through: String,
    /// Encoding of [`gc_through`] of the processed and uploaded positions.
    pub gc_through: String,
    /// `None` when the WAL is empty or could not be read.
    pub wal_oldest_offset: Option<String>,
    /// Clamped to `MAX_SAFE_INTEGER` when written.
    pub wal_retained_rows: u64,
    /// Clamped to `MAX_SAFE_INTEGER` when written.
    pub wal_retained_bytes: u64,
    /// See [`backlog_source_offsets`]; clamped when written.
    pub backlog_source_offsets: u64,
}

/// Everything the tick reads live rather than from the interval counters.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveGauges {
    pub journal: Option<JournalGauges>,
    /// Active template rows in the store right now.
    pub active_templates: u64,
    pub base: BaseProgress,
    /// Process-wide, from `LoopLagSampler::take` once per flush.
    pub loop_lag_max_ms: u64,
    pub loop_lag_avg_ms: f64,
}

/// `base.gcThrough`: WAL rows are kept until both uploaded and processed.
/// Positions are "last offset", `None` meaning before the first offset.
pub fn gc_through(processed_through: Option<u64>, uploaded_through: Option<u64>) -> Option<u64> {
    processed_through.min(uploaded_through)
}

/// `base.backlogSourceOffsets` = max(0, tail − processedThrough), where tail
/// is `next_offset − 1` and `None` is "before the first offset".
pub fn backlog_source_offsets(tail: Option<u64>, processed_through: Option<u64>) -> u64 {
    match (tail, processed_through) {
        (None, _) => 0,
        (Some(t), None) => t + 1,
        (Some(t), Some(p)) => t.saturating_sub(p),
    }
}

/// The tick payload for `stream`.
pub fn tick_event(
    env: &Envelope,
    stream: &str,
    snap: &IntervalSnapshot,
    live: &LiveGauges,
    now_ms: u64,
) -> String {
    let j = live.journal.as_ref();
    let ji = j.map(|j| j.interval).unwrap_or_default();
    let t = &snap.touch;
    let h = &t.hot;

    let mut touch = ObjectWriter::new();
    touch
        .f64("coarseIntervalMs", t.coarse_interval_ms)
        .f64("coalesceWindowMs", t.coalesce_window_ms)
        .str("mode", t.mode.as_str())
        .u64("hotFineKeys", h.hot_fine_keys)
        .u64("hotTemplates", h.hot_templates)
        .u64("hotFineKeysActive", h.hot_fine_keys_active)
        .u64("hotFineKeysGrace", h.hot_fine_keys_grace)
        .u64("hotTemplatesActive", h.hot_templates_active)
        .u64("hotTemplatesGrace", h.hot_templates_grace)
        .u64("fineWaitersActive", h.fine_waiters_active)
        .u64("coarseWaitersActive", h.coarse_waiters_active)
        .u64("broadFineWaitersActive", h.broad_fine_waiters_active)
        .u64("touchesEmitted", t.touches_emitted)
        .u64("uniqueKeysTouched", t.unique_keys_touched)
        .u64("tableTouchesEmitted", t.table_touches_emitted)
        .u64("templateTouchesEmitted", t.template_touches_emitted)
        .u64("staleResponses", t.stale_responses)
        .u64(
            "fineTouchesDroppedDueToBudget",
            t.fine_touches_dropped_due_to_budget,
        )
        .u64(
            "fineTouchesSkippedColdTemplate",
            t.fine_touches_skipped_cold_template,
        )
        .u64("fineTouchesSkippedColdKey", t.fine_touches_skipped_cold_key)
        .u64(
            "fineTouchesSkippedTemplateBucket",
            t.fine_touches_skipped_template_bucket,
        )
        .u64(
            "fineTouchesSuppressedBatchesDueToLag",
            t.fine_touches_suppressed_batches_due_to_lag,
        )
        .f64(
            "fineTouchesSuppressedSecondsDueToLag",
            snap.fine_touches_suppressed_seconds_due_to_lag(),
        )
        .u64(
            "fineTouchesSuppressedBatchesDueToBudget",
            t.fine_touches_suppressed_batches_due_to_budget,
        )
        .opt_str("cursor", j.map(|j| j.cursor.as_str()))
        .opt_str("epoch", j.map(|j| j.epoch.as_str()))
        .opt_u64("generation", j.map(|j| u64::from(j.generation)))
        .u64("pendingKeys", j.map_or(0, |j| j.pending_keys))
        .u64("overflowBuckets", j.map_or(0, |j| j.overflow_buckets));

    let tp = &snap.templates;
    let mut templates = ObjectWriter::new();
    templates
        .u64("active", live.active_templates)
        .u64("activated", tp.activated)
        .u64("retired", tp.retired)
        .u64("evicted", tp.evicted)
        .u64("activationDenied", tp.activation_denied);

    let w = &snap.wait;
    let mut wait = ObjectWriter::new();
    wait.u64("calls", w.calls)
        .u64("keysWatchedTotal", w.keys_watched_total)
        .f64("avgKeysPerCall", snap.avg_keys_per_call())
        .u64("touched", w.touched)
        .u64("timeout", w.timeout)
        .u64("stale", w.stale)
        .f64("avgLatencyMs", snap.avg_latency_ms())
        .u64("p95LatencyMs", snap.wait_p95_latency_ms)
        .u64("activeWaiters", j.map_or(0, |j| j.active_waiters))
        .u64("timeoutsFired", ji.timeouts_fired)
        .u64("timeoutSweeps", ji.timeout_sweeps)
        .u64("timeoutSweepMsSum", ji.timeout_sweep_ms_sum)
        .u64("timeoutSweepMsMax", ji.timeout_sweep_ms_max)
        .u64("notifyWakeups", ji.notify_wakeups)
        .u64("notifyFlushes", ji.notify_flushes)
        .u64("notifyWakeMsSum", ji.notify_wake_ms_sum)
        .u64("notifyWakeMsMax", ji.notify_wake_ms_max)
        .u64("timeoutHeapSize", ji.heap_size);

    let p = &snap.processor;
    let mut processor = ObjectWriter::new();
    processor
        .u64("eventsIn", p.events_in)
        .u64("changesOut", p.changes_out)
        .u64("errors", p.errors)
        .u64("lagSourceOffsets", p.lag_source_offsets)
        .u64("scannedBatches", p.scanned_batches)
        .u64("scannedButEmitted0Batches", p.scanned_but_emitted0_batches)
        .u64(
            "noInterestFastForwardBatches",
            p.no_interest_fast_forward_batches,
        )
        .u64("processedThroughDelta", p.processed_through_delta)
        .u64("touchesEmittedDelta", p.touches_emitted_delta)
        .f64("commitLagMsAvg", snap.commit_lag_ms_avg())
        .u64("commitLagMsP50", snap.commit_lag_ms_p50)
        .u64("commitLagMsP95", snap.commit_lag_ms_p95)
        .u64("commitLagMsP99", snap.commit_lag_ms_p99);

    let g = &snap.gc;
    let mut gc = ObjectWriter::new();
    gc.u64("calls", g.calls)
        .u64("deletedRows", g.deleted_rows)
        .u64("deletedBytes", g.deleted_bytes)
        .u64("msSum", g.ms_sum)
        .u64("msMax", g.ms_max);

    let b = &live.base;
    let mut base = ObjectWriter::new();
    base.str("tailOffset", &b.tail_offset)
        .str("nextOffset", &b.next_offset)
        .str("sealedThrough", &b.sealed_through)
        .str("uploadedThrough", &b.uploaded_through)
        .str("processedThrough", &b.processed_through)
        .str("gcThrough", &b.gc_through)
        .opt_str("walOldestOffset", b.wal_oldest_offset.as_deref())
        .u64("walRetainedRows", b.wal_retained_rows.min(MAX_SAFE_INTEGER))
        .u64(
            "walRetainedBytes",
            b.wal_retained_bytes.min(MAX_SAFE_INTEGER),
        )
        .raw("gc", &gc.finish())
        .u64(
            "backlogSourceOffsets",
            b.backlog_source_offsets.min(MAX_SAFE_INTEGER),
        );

    let mut process = ObjectWriter::new();
    process
        .u64("eventLoopLagMsMax", live.loop_lag_max_ms)
        .f64("eventLoopLagMsAvg", live.loop_lag_avg_ms);

    let mut ev = env.begin(TICK_TYPE, stream, now_ms);
    ev.raw("touch", &touch.finish())
        .raw("templates", &templates.finish())
        .raw("wait", &wait.finish())
        .raw("processor", &processor.finish())
        .raw("base", &base.finish())
        .raw("process", &process.finish());
    ev.finish()
}

/// The tick as a `live.metrics` row routed `"<stream>|live.tick"`.
pub fn tick_row(
    env: &Envelope,
    stream: &str,
    snap: &IntervalSnapshot,
    live: &LiveGauges,
    now_ms: u64,
) -> MetricsRow {
    MetricsRow {
        routing_key: routing_key(stream, TICK_TYPE),
        payload: tick_event(env, stream, snap, live, now_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::touch::config::TouchConfig;
    use crate::touch::metrics::counters::{
        BatchStats, StreamCounters, TouchKind, TouchMode, WaitOutcome,
    };
    use serde_json::{json, Value};

    const OFF: &str = "00000000000000000000000000";

    fn base() -> BaseProgress {
        BaseProgress {
            tail_offset: OFF.into(),
            next_offset: OFF.into(),
            sealed_through: OFF.into(),
            uploaded_through: OFF.into(),
            processed_through: OFF.into(),
            gc_through: OFF.into(),
            wal_oldest_offset: None,
            wal_retained_rows: 0,
            wal_retained_bytes: 0,
            backlog_source_offsets: 0,
        }
    }

    fn idle_live() -> LiveGauges {
        LiveGauges {
            journal: None,
            active_templates: 0,
            base: base(),
            loop_lag_max_ms: 0,
            loop_lag_avg_ms: 0.0,
        }
    }

    fn env() -> Envelope {
        Envelope {
            instance_id: "local".into(),
            region: "local".into(),
        }
    }

    /// The whole tick of a fresh stream, written out from the spec's §3.4
    /// field list (not from this code).
    #[test]
    fn zero_tick_has_every_field_in_order() {
        let snap = StreamCounters::default().take();
        let got = tick_event(&env(), "app.wal", &snap, &idle_live(), 1_774_261_800_000);
        let want = concat!(
            r#"{"type":"live.tick","ts":"2026-03-23T10:30:00.000Z","stream":"app.wal","#,
            r#""liveSystemVersion":"v2","instanceId":"local","region":"local","#,
            r#""touch":{"coarseIntervalMs":100,"coalesceWindowMs":100,"mode":"idle","#,
            r#""hotFineKeys":0,"hotTemplates":0,"hotFineKeysActive":0,"hotFineKeysGrace":0,"#,
            r#""hotTemplatesActive":0,"hotTemplatesGrace":0,"fineWaitersActive":0,"#,
            r#""coarseWaitersActive":0,"broadFineWaitersActive":0,"touchesEmitted":0,"#,
            r#""uniqueKeysTouched":0,"tableTouchesEmitted":0,"templateTouchesEmitted":0,"#,
            r#""staleResponses":0,"fineTouchesDroppedDueToBudget":0,"#,
            r#""fineTouchesSkippedColdTemplate":0,"fineTouchesSkippedColdKey":0,"#,
            r#""fineTouchesSkippedTemplateBucket":0,"fineTouchesSuppressedBatchesDueToLag":0,"#,
            r#""fineTouchesSuppressedSecondsDueToLag":0,"fineTouchesSuppressedBatchesDueToBudget":0,"#,
            r#""cursor":null,"epoch":null,"generation":null,"pendingKeys":0,"overflowBuckets":0},"#,
            r#""templates":{"active":0,"activated":0,"retired":0,"evicted":0,"activationDenied":0},"#,
            r#""wait":{"calls":0,"keysWatchedTotal":0,"avgKeysPerCall":0,"touched":0,"timeout":0,"#,
            r#""stale":0,"avgLatencyMs":0,"p95LatencyMs":0,"activeWaiters":0,"timeoutsFired":0,"#,
            r#""timeoutSweeps":0,"timeoutSweepMsSum":0,"timeoutSweepMsMax":0,"notifyWakeups":0,"#,
            r#""notifyFlushes":0,"notifyWakeMsSum":0,"notifyWakeMsMax":0,"timeoutHeapSize":0},"#,
            r#""processor":{"eventsIn":0,"changesOut":0,"errors":0,"lagSourceOffsets":0,"#,
            r#""scannedBatches":0,"scannedButEmitted0Batches":0,"noInterestFastForwardBatches":0,"#,
            r#""processedThroughDelta":0,"touchesEmittedDelta":0,"commitLagMsAvg":0,"#,
            r#""commitLagMsP50":0,"commitLagMsP95":0,"commitLagMsP99":0},"#,
            r#""base":{"tailOffset":"00000000000000000000000000","nextOffset":"00000000000000000000000000","#,
            r#""sealedThrough":"00000000000000000000000000","uploadedThrough":"00000000000000000000000000","#,
            r#""processedThrough":"00000000000000000000000000","gcThrough":"00000000000000000000000000","#,
            r#""walOldestOffset":null,"walRetainedRows":0,"walRetainedBytes":0,"#,
            r#""gc":{"calls":0,"deletedRows":0,"deletedBytes":0,"msSum":0,"msMax":0},"#,
            r#""backlogSourceOffsets":0},"#,
            r#""process":{"eventLoopLagMsMax":0,"eventLoopLagMsAvg":0}}"#
        );
        assert_eq!(got, want);
        let row = tick_row(&env(), "app.wal", &snap, &idle_live(), 1_774_261_800_000);
        assert_eq!(row.routing_key, "app.wal|live.tick");
        assert_eq!(row.payload, want);
    }

    #[test]
    fn waits_show_in_exactly_one_tick() {
        let mut c = StreamCounters::for_config(&TouchConfig::default_enabled());
        for (keys, ms) in [(1, 3), (2, 3), (4, 700)] {
            c.record_wait(keys, WaitOutcome::Touched, ms);
        }
        c.record_wait(0, WaitOutcome::Stale, 0);
        let first: Value =
            serde_json::from_str(&tick_event(&env(), "s", &c.take(), &idle_live(), 0)).unwrap();
        assert_eq!(first["wait"]["calls"], json!(4));
        assert_eq!(first["wait"]["touched"], json!(3));
        assert_eq!(first["wait"]["stale"], json!(1));
        assert_eq!(first["touch"]["staleResponses"], json!(1));
        assert_eq!(first["wait"]["avgKeysPerCall"], json!(1.75));
        assert_eq!(first["wait"]["avgLatencyMs"], json!(176.5));
        // ceil(4·0.95) = 4 → the bucket holding 700, upper bound 1000.
        assert_eq!(first["wait"]["p95LatencyMs"], json!(1000));
        let second: Value =
            serde_json::from_str(&tick_event(&env(), "s", &c.take(), &idle_live(), 1_000)).unwrap();
        assert_eq!(second["wait"]["calls"], json!(0));
        assert_eq!(second["wait"]["avgKeysPerCall"], json!(0));
        assert_eq!(second["wait"]["p95LatencyMs"], json!(0));
        assert_eq!(second["touch"]["staleResponses"], json!(0));
    }

    #[test]
    fn fractional_averages_use_js_notation() {
        let mut c = StreamCounters::default();
        c.record_wait(1, WaitOutcome::Timeout, 1);
        c.record_wait(0, WaitOutcome::Timeout, 0);
        c.record_wait(0, WaitOutcome::Timeout, 0);
        let text = tick_event(&env(), "s", &c.take(), &idle_live(), 0);
        assert!(
            text.contains(r#""avgKeysPerCall":0.3333333333333333,"#),
            "{text}"
        );
        assert!(
            text.contains(r#""avgLatencyMs":0.3333333333333333,"#),
            "{text}"
        );
    }

    #[test]
    fn journal_batch_and_base_fields() {
        let mut cfg = TouchConfig::default_enabled();
        cfg.coarse_interval_ms = 2.5;
        let mut c = StreamCounters::for_config(&cfg);
        c.record_processor_batch(
            &cfg,
            &BatchStats {
                rows_read: 2,
                changes: 2,
                touches: &[(1, TouchKind::Table), (2, TouchKind::Template)],
                touch_mode: TouchMode::Restricted,
                fine_touches_suppressed_due_to_lag: true,
                fine_touches_suppressed_due_to_lag_ms: 1_234,
                ..BatchStats::default()
            },
        );
        let live = LiveGauges {
            journal: Some(JournalGauges {
                cursor: "00000000000000ff:7".into(),
                epoch: "00000000000000ff".into(),
                generation: 7,
                pending_keys: 3,
                overflow_buckets: 1,
                active_waiters: 9,
                interval: JournalIntervalStats {
                    timeouts_fired: 2,
                    notify_wake_ms_max: 5,
                    heap_size: 4,
                    ..JournalIntervalStats::default()
                },
            }),
            active_templates: 12,
            base: BaseProgress {
                wal_oldest_offset: Some("x".into()),
                wal_retained_rows: u64::MAX,
                backlog_source_offsets: 1 << 60,
                ..base()
            },
            loop_lag_max_ms: 40,
            loop_lag_avg_ms: 12.5,
        };
        let v: Value = serde_json::from_str(&tick_event(&env(), "s", &c.take(), &live, 0)).unwrap();
        assert_eq!(v["touch"]["coarseIntervalMs"], json!(2.5));
        assert_eq!(v["touch"]["mode"], json!("restricted"));
        assert_eq!(
            v["touch"]["fineTouchesSuppressedSecondsDueToLag"],
            json!(1.234)
        );
        assert_eq!(v["touch"]["cursor"], json!("00000000000000ff:7"));
        assert_eq!(v["touch"]["epoch"], json!("00000000000000ff"));
        assert_eq!(v["touch"]["generation"], json!(7));
        assert_eq!(v["touch"]["pendingKeys"], json!(3));
        assert_eq!(v["touch"]["overflowBuckets"], json!(1));
        assert_eq!(v["touch"]["tableTouchesEmitted"], json!(1));
        assert_eq!(v["templates"]["active"], json!(12));
        assert_eq!(v["wait"]["activeWaiters"], json!(9));
        assert_eq!(v["wait"]["timeoutsFired"], json!(2));
        assert_eq!(v["wait"]["notifyWakeMsMax"], json!(5));
        assert_eq!(v["wait"]["timeoutHeapSize"], json!(4));
        assert_eq!(v["processor"]["eventsIn"], json!(2));
        assert_eq!(v["base"]["walOldestOffset"], json!("x"));
        assert_eq!(
            v["base"]["walRetainedRows"],
            json!(9_007_199_254_740_991u64)
        );
        assert_eq!(
            v["base"]["backlogSourceOffsets"],
            json!(9_007_199_254_740_991u64)
        );
        assert_eq!(v["process"]["eventLoopLagMsMax"], json!(40));
        assert_eq!(v["process"]["eventLoopLagMsAvg"], json!(12.5));
    }

    #[test]
    fn base_position_helpers() {
        assert_eq!(gc_through(Some(10), Some(4)), Some(4));
        assert_eq!(gc_through(Some(3), Some(4)), Some(3));
        assert_eq!(gc_through(None, Some(4)), None);
        assert_eq!(backlog_source_offsets(Some(10), Some(4)), 6);
        assert_eq!(backlog_source_offsets(Some(4), Some(10)), 0);
        assert_eq!(backlog_source_offsets(Some(0), None), 1);
        assert_eq!(backlog_source_offsets(None, None), 0);
    }
}
