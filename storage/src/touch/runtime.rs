//! The touch thread: the runtime shell around the sans-IO journal,
//! processor and registry. One thread serves every touch stream, as
//! Prisma's single default worker does; it sleeps until the next flush,
//! waiter deadline, processor tick or metrics tick, or until the commit
//! thread or a wait whose deadline comes sooner nudges it. Writers never wait for it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, Sender};
use rocksdb::WriteBatch;

use super::defaults::{TOUCH_CHECK_INTERVAL_MS, TOUCH_MAX_BATCH_BYTES, TOUCH_MAX_BATCH_ROWS};
use super::journal::adaptive_coalesce_ms;
use super::live_metrics::MetricsWriter;
use super::metrics::counters::{BatchStats as CounterBatch, LifecycleKind, TouchKind};
use super::processor::{self, Row, TemplatesByEntity};
use super::store::{self, Checkpoint};
use super::stream::{TouchStream, WaitEnd, RETAIN_BYTES, RETAIN_MS};
use crate::clock::now_ms;
use crate::commit::queue::CommitQueue;
use crate::error::{Error, Result};
use crate::shared::Shared;

/// Starts the touch thread; it stops when the returned sender is dropped.
pub(crate) fn spawn(shared: Arc<Shared>, tx: CommitQueue) -> Result<(Sender<()>, JoinHandle<()>)> {
    let (stop_tx, stop_rx) = channel::bounded::<()>(0);
    let wake = shared.touch.wake_receiver();
    let handle = std::thread::Builder::new()
        .name("weir-touch".into())
        .spawn(move || Runtime::new(shared, tx).run(&stop_rx, &wake))
        .map_err(|e| Error::Storage(format!("cannot start touch thread: {e}")))?;
    Ok((stop_tx, handle))
}

struct Runtime {
    shared: Arc<Shared>,
    metrics: MetricsWriter,
    next_tick_ms: u64,
}

impl Runtime {
    fn new(shared: Arc<Shared>, tx: CommitQueue) -> Runtime {
        let metrics = MetricsWriter::new(Arc::clone(&shared), tx);
        Runtime {
            shared,
            metrics,
            next_tick_ms: 0,
        }
    }

    fn run(mut self, stop: &Receiver<()>, wake: &Receiver<()>) {
        self.metrics.start();
        loop {
            self.shared.touch.sleep_until(None);
            let now = now_ms();
            if self.shared.touch.take_changed() {
                self.shared.touch.sync(&self.shared, now);
            }
            let tick = now >= self.next_tick_ms;
            if tick {
                self.next_tick_ms = now + TOUCH_CHECK_INTERVAL_MS;
            }
            let streams = self.shared.touch.list();
            for ts in &streams {
                if let Err(e) = self.service(ts, now, tick) {
                    tracing::warn!(stream = %ts.stream.name, error = %e, "touch processing failed");
                }
            }
            self.metrics.poll(&streams, now);
            let mut deadline = self.next_tick_ms.min(self.metrics.next_due());
            for ts in &streams {
                let mut cell = ts.journal.lock();
                if let Some(f) = cell.flush_at {
                    deadline = deadline.min(f);
                }
                if let Some(d) = cell.journal.next_deadline() {
                    deadline = deadline.min(d);
                }
                if ts.dirty.load(Ordering::Acquire) {
                    deadline = deadline.min(ts.progress.lock().retry_at_ms.max(now));
                }
            }
            self.shared.touch.sleep_until(Some(deadline));
            let sleep = Duration::from_millis(deadline.saturating_sub(now_ms()));
            channel::select! {
                recv(stop) -> _ => {
                    self.checkpoint_all();
                    return;
                }
                recv(wake) -> _ => {}
                default(sleep) => {}
            }
        }
    }

    /// On stop: writes every stream's idle checkpoint that was held back,
    /// so a clean restart does not process (and touch) rows again.
    fn checkpoint_all(&self) {
        for ts in self.shared.touch.list() {
            let mut progress = ts.progress.lock();
            if let Err(e) = write_idle_checkpoint(&self.shared, &ts, &mut progress, u64::MAX) {
                tracing::warn!(stream = %ts.stream.name, error = %e, "cannot write the touch checkpoint");
            }
        }
    }

    /// Expires, flushes, processes and maintains one stream.
    fn service(&mut self, ts: &Arc<TouchStream>, now: u64, tick: bool) -> Result<()> {
        expire(ts, now);
        let due = ts.journal.lock().flush_at.is_some_and(|f| f <= now);
        if due {
            flush(&self.shared, ts, now)?;
        }
        if ts.dirty.swap(false, Ordering::AcqRel) || tick {
            self.process(ts, now)?;
        }
        if tick {
            self.maintain_templates(ts, now)?;
            ts.hot.lock().sweep(now);
        }
        Ok(())
    }

    /// Runs batches until the stream is caught up (bounded per call, so one
    /// busy stream cannot starve the others' flushes and deadlines).
    fn process(&mut self, ts: &Arc<TouchStream>, now: u64) -> Result<()> {
        for _ in 0..8 {
            let batch_started = std::time::Instant::now();
            let mut progress = ts.progress.lock();
            if now < progress.retry_at_ms {
                ts.mark_dirty();
                return Ok(());
            }
            let tail = ts.stream.live.lock().next_offset;
            if progress.next >= tail {
                write_idle_checkpoint(&self.shared, ts, &mut progress, now)?;
                return Ok(());
            }
            let from = progress.next;
            let batches = crate::fork::read_stream(
                &self.shared,
                &ts.stream,
                from,
                tail,
                TOUCH_MAX_BATCH_BYTES,
            )?;
            let mut rows = Vec::new();
            'outer: for b in &batches {
                for r in b.iter() {
                    if r.offset < from {
                        continue;
                    }
                    if rows.len() >= TOUCH_MAX_BATCH_ROWS {
                        break 'outer;
                    }
                    rows.push(Row {
                        offset: r.offset,
                        append_time_ms: r.append_time_ms,
                        payload: r.payload,
                    });
                }
            }
            if rows.is_empty() {
                return Ok(());
            }
            let last = rows.last().map_or(from, |r| r.offset);
            let lag = tail - from;
            let outcome = templates_by_entity(ts, &mut progress.templates).and_then(|templates| {
                let hot = ts.hot.lock();
                // The backlog this batch leaves, not the one it starts with.
                let backlog = tail.saturating_sub(last + 1);
                let coalesce = adaptive_coalesce_ms(
                    ts.config.memory.bucket_ms,
                    hot.has_any_waiters(),
                    backlog,
                );
                ts.journal.lock().journal.set_coalesce_ms(coalesce);
                processor::process(
                    &ts.config,
                    &mut progress.state,
                    &hot,
                    &templates,
                    &rows,
                    lag,
                    now,
                )
            });
            let out = match outcome {
                Ok(o) => o,
                Err(msg) => {
                    progress.failures += 1;
                    let backoff = (500u64 << (progress.failures - 1).min(7)).min(60_000);
                    progress.retry_at_ms = now + backoff;
                    ts.counters.lock().record_processor_error();
                    tracing::warn!(stream = %ts.stream.name, error = %msg, "touch batch failed");
                    return Ok(());
                }
            };
            progress.failures = 0;
            {
                let mut cell = ts.journal.lock();
                for t in &out.touches {
                    if let Some(at) = cell.journal.touch(t.key_id, t.routing, t.offset, now) {
                        cell.flush_at = Some(cell.flush_at.map_or(at, |f| f.min(at)));
                    }
                }
            }
            progress.next = last + 1;
            ts.totals
                .lock()
                .add_batch(&out.stats, out.touches.len() as u64, progress.next - from);
            let commit_lag = now.saturating_sub(out.stats.max_append_time_ms);
            let kinds: Vec<(u32, TouchKind)> = out
                .touches
                .iter()
                .map(|t| {
                    let k = if t.routing.is_some() {
                        TouchKind::Template
                    } else {
                        TouchKind::Table
                    };
                    (t.key_id, k)
                })
                .collect();
            let hot = ts.hot.lock().gauges();
            let s = &out.stats;
            ts.counters.lock().record_processor_batch(
                &ts.config,
                &CounterBatch {
                    rows_read: s.rows,
                    changes: s.changes,
                    touches: &kinds,
                    lag_source_offsets: progress.state.last_lag,
                    touch_mode: progress.state.mode.unwrap_or_default(),
                    hot,
                    commit_lag_ms: (s.max_append_time_ms > 0).then_some(commit_lag),
                    fine_touches_dropped_due_to_budget: s.dropped_budget,
                    fine_touches_skipped_cold_template: s.skipped_cold_template,
                    fine_touches_skipped_cold_key: s.skipped_cold_key,
                    fine_touches_skipped_template_bucket: s.skipped_template_bucket,
                    fine_touches_suppressed_due_to_lag: s.suppressed_by_lag,
                    // Prisma's measure: the time spent on batches that ran
                    // suppressed.
                    fine_touches_suppressed_due_to_lag_ms: if s.suppressed_by_lag {
                        batch_started.elapsed().as_millis() as u64
                    } else {
                        0
                    },
                    fine_touches_suppressed_due_to_budget: s.suppressed_by_budget,
                    no_interest_fast_forward: false,
                    processed_through_delta: progress.next - from,
                    touches_emitted_delta: out.touches.len() as u64,
                },
            );
            if progress.next >= tail {
                write_idle_checkpoint(&self.shared, ts, &mut progress, now)?;
                return Ok(());
            }
        }
        ts.mark_dirty();
        Ok(())
    }

    /// Persists due last-seen heartbeats and runs the inactivity GC.
    fn maintain_templates(&mut self, ts: &Arc<TouchStream>, now: u64) -> Result<()> {
        let t = &ts.config.templates;
        let mut reg = ts.templates.lock();
        let mut rows = reg.flush_last_seen(now, t.last_seen_persist_interval_ms);
        let mut events = Vec::new();
        let gc_due = {
            let mut last = ts.last_gc_ms.lock();
            let due = *last == 0 || now.saturating_sub(*last) as f64 >= t.gc_interval_ms;
            if due {
                *last = now;
            }
            due
        };
        if gc_due {
            let gc = reg.gc(now, super::defaults::GC_MAX_RETIRED_PER_PASS);
            rows.extend(gc.refreshed);
            let retired = gc.retired.len();
            rows.extend(gc.retired);
            events = gc.events;
            for _ in 0..retired {
                ts.counters.lock().record_lifecycle(LifecycleKind::Retired);
            }
        }
        if !rows.is_empty() {
            let mut wb = WriteBatch::default();
            for r in &rows {
                store::put_template(&self.shared.db, &mut wb, ts.sid(), r);
            }
            self.shared.db.write(wb)?;
        }
        drop(reg);
        self.shared.touch.queue_events(&ts.stream.name, events);
        Ok(())
    }
}

/// Resolves every waiter whose deadline passed.
fn expire(ts: &TouchStream, now: u64) {
    let started = std::time::Instant::now();
    let mut cell = ts.journal.lock();
    let expired = cell.journal.expire(now);
    if expired.is_empty() {
        return;
    }
    for id in expired {
        if let Some(s) = cell.senders.remove(&id) {
            let _ = s.send(WaitEnd::Timeout);
        }
    }
    cell.journal
        .note_sweep_ms(started.elapsed().as_millis() as u64);
}

/// Flushes the open bucket: persists it with the checkpoint that covers its
/// touches in one batch, then wakes the waiters it matches. Persisting first
/// means no client sees a cursor the store does not know.
pub(crate) fn flush(shared: &Shared, ts: &TouchStream, now: u64) -> Result<()> {
    let mut progress = ts.progress.lock();
    if ts.is_retired() {
        return Ok(());
    }
    let mut cell = ts.journal.lock();
    cell.flush_at = None;
    let matching = std::time::Instant::now();
    let Some(f) = cell.journal.flush(now) else {
        return Ok(());
    };
    // Wake time is matching plus sending, not the store write between.
    let matched_in = matching.elapsed();
    let seq = cell.next_seq;
    cell.next_seq += 1;
    let mut wb = WriteBatch::default();
    let encoded_len = f.bucket.encode().len();
    store::put_bucket(&shared.db, &mut wb, ts.sid(), seq, &f.bucket);
    cell.retained
        .push_back((seq, encoded_len, f.bucket.flush_ms));
    cell.retained_bytes += encoded_len;
    let mut trim_below = None;
    while let Some(&(s, len, at)) = cell.retained.front() {
        let too_old = now.saturating_sub(at) > RETAIN_MS;
        if !(too_old || cell.retained_bytes > RETAIN_BYTES) || cell.retained.len() == 1 {
            break;
        }
        cell.retained.pop_front();
        cell.retained_bytes -= len;
        trim_below = Some(s + 1);
    }
    if let Some(below) = trim_below {
        store::trim_buckets(&shared.db, &mut wb, ts.sid(), below);
    }
    let c = Checkpoint {
        next: progress.next,
        epoch: cell.journal.epoch(),
        generation: f.bucket.generation,
        next_seq: cell.next_seq,
    };
    store::put_checkpoint(&shared.db, &mut wb, ts.sid(), &c);
    shared.db.write(wb)?;
    progress.written = Some(c);
    let waking = std::time::Instant::now();
    if f.woken.is_empty() {
        return Ok(());
    }
    let epoch = cell.journal.epoch();
    let answers: Vec<_> = f
        .woken
        .into_iter()
        .filter_map(|(id, wake)| cell.senders.remove(&id).map(|s| (s, wake)))
        .collect();
    // Send with no lock held: each send wakes a task that would otherwise
    // find the journal (or the processor) locked and park, hundreds of
    // times per flush when a change touches many waiters.
    drop(cell);
    drop(progress);
    for (s, wake) in answers {
        let _ = s.send(WaitEnd::Touched { wake, epoch });
    }
    let ms = (matched_in + waking.elapsed()).as_millis() as u64;
    ts.journal.lock().journal.note_wake_ms(ms);
    Ok(())
}

/// Writes the checkpoint when no bucket is open (an open bucket's flush
/// writes it instead, together with the touches it covers). Idle
/// checkpoints are spaced [`IDLE_CHECKPOINT_MS`] apart: under a steady
/// trickle of rows the processor catches up after every commit group, and
/// a store write each time cost the commit path more than the processing.
/// A checkpoint that lags only means rows processed again after a crash,
/// which touches again (a false wake, never a lost one); the touch
/// thread's tick writes the last one within a tick of going quiet.
fn write_idle_checkpoint(
    shared: &Shared,
    ts: &TouchStream,
    progress: &mut super::stream::Progress,
    now: u64,
) -> Result<()> {
    if ts.is_retired() || now.saturating_sub(progress.idle_written_ms) < IDLE_CHECKPOINT_MS {
        return Ok(());
    }
    let cell = ts.journal.lock();
    if cell.flush_at.is_some() || cell.journal.pending_keys() > 0 {
        return Ok(());
    }
    let c = Checkpoint {
        next: progress.next,
        epoch: cell.journal.epoch(),
        generation: cell.journal.generation(),
        next_seq: cell.next_seq,
    };
    drop(cell);
    if progress.written == Some(c) {
        return Ok(());
    }
    let mut wb = WriteBatch::default();
    store::put_checkpoint(&shared.db, &mut wb, ts.sid(), &c);
    shared.db.write(wb)?;
    progress.written = Some(c);
    progress.idle_written_ms = now;
    Ok(())
}

/// The least time between two idle checkpoints of one stream.
const IDLE_CHECKPOINT_MS: u64 = 200;

/// The stream's active templates grouped by entity, for one batch: the
/// cached grouping unless the registry changed since it was made (with
/// 1,000 templates, rebuilding it per batch cost more than the batch).
fn templates_by_entity(
    ts: &TouchStream,
    cache: &mut Option<(u64, Arc<TemplatesByEntity>)>,
) -> Result<Arc<TemplatesByEntity>, String> {
    let reg = ts.templates.lock();
    let changes = reg.changes();
    if let Some((at, map)) = cache {
        if *at == changes {
            return Ok(Arc::clone(map));
        }
    }
    let mut map: TemplatesByEntity = HashMap::new();
    for spec in reg.active_specs()? {
        map.entry(spec.entity.clone()).or_default().push(spec);
    }
    let map = Arc::new(map);
    *cache = Some((changes, Arc::clone(&map)));
    Ok(map)
}
