//! The `live.metrics` writer: ensures the stream at start, then once a
//! second appends one `live.tick` per touch stream together with the queued
//! lifecycle events, and every 60 s the template snapshots; every 60 s it
//! also drops the records older than the retention (7 days). Appends and
//! trims go to the commit thread without waiting for them (best effort, as
//! in Prisma: a full queue or a failed append loses metrics, never a user
//! record).

use std::sync::Arc;

use futures::channel::oneshot;

use super::defaults::{LIVE_SNAPSHOT_INTERVAL_MS, LIVE_TICK_INTERVAL_MS};
use super::metrics::events::{self, Envelope};
use super::metrics::tick::{
    backlog_source_offsets, gc_through, tick_event, BaseProgress, JournalGauges, LiveGauges,
};
use super::stream::TouchStream;
use super::LIVE_METRICS_STREAM;
use crate::commit::queue::CommitQueue;
use crate::commit::{AppendRequest, Command};
use crate::meta::StreamConfig;
use crate::record::Record;
use crate::shared::Shared;
use crate::state::StateMode;
use crate::stream::StreamState;

/// The JSON content type `live.metrics` must have.
const CONTENT_TYPE: &str = "application/json";

pub(crate) struct MetricsWriter {
    shared: Arc<Shared>,
    tx: CommitQueue,
    stream: Option<Arc<StreamState>>,
    env: Envelope,
    next_tick_ms: u64,
    next_snapshot_ms: u64,
    next_trim_ms: u64,
}

/// Most bytes of old records one retention pass reads to find its cut, so
/// a long backlog (after raising the retention's age, say) is trimmed over
/// several passes instead of stalling the touch thread.
const TRIM_SCAN_BYTES: usize = 16 << 20;

impl MetricsWriter {
    pub fn new(shared: Arc<Shared>, tx: CommitQueue) -> MetricsWriter {
        MetricsWriter {
            shared,
            tx,
            stream: None,
            env: Envelope::from_env(|k| std::env::var(k).ok()),
            next_tick_ms: u64::MAX,
            next_snapshot_ms: u64::MAX,
            next_trim_ms: u64::MAX,
        }
    }

    /// Creates `live.metrics` if it is missing. A stream of that name with
    /// another content type disables metrics, with a logged error.
    pub fn start(&mut self) {
        let existing = self.shared.streams.read().get(LIVE_METRICS_STREAM).cloned();
        let stream = match existing {
            Some(s) => s,
            None => {
                let (reply, rx) = oneshot::channel();
                let _ = self.tx.send_blocking(Command::Create {
                    name: LIVE_METRICS_STREAM.to_string(),
                    config: StreamConfig::new(CONTENT_TYPE),
                    state: StateMode::None,
                    records: Vec::new(),
                    close: false,
                    reply,
                });
                if let Ok(Err(e)) = futures::executor::block_on(rx) {
                    tracing::error!(error = %e, "cannot create the live.metrics stream");
                }
                match self.shared.streams.read().get(LIVE_METRICS_STREAM).cloned() {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        if crate::meta::media_type(&stream.config.content_type) != CONTENT_TYPE {
            tracing::error!(
                kind = "live_metrics_stream_content_type_mismatch",
                "live metrics stream content-type mismatch: {}",
                stream.config.content_type
            );
            return;
        }
        self.stream = Some(stream);
        let now = crate::clock::now_ms();
        self.next_tick_ms = now + LIVE_TICK_INTERVAL_MS;
        self.next_snapshot_ms = now + LIVE_SNAPSHOT_INTERVAL_MS;
        self.next_trim_ms = now + self.trim_interval_ms();
    }

    fn trim_interval_ms(&self) -> u64 {
        (self.shared.config.live_metrics_trim_interval.as_millis() as u64).max(1)
    }

    /// When the writer next has work.
    pub fn next_due(&self) -> u64 {
        self.next_tick_ms
            .min(self.next_snapshot_ms)
            .min(self.next_trim_ms)
    }

    /// Drops the batches appended before `now - max_age` (Prisma's rule on
    /// append times; the newest batch always stays).
    fn trim(&mut self, target: &Arc<StreamState>, now: u64) {
        self.next_trim_ms = now + self.trim_interval_ms();
        let max_age = self.shared.config.live_metrics_max_age.as_millis() as u64;
        let cutoff = now.saturating_sub(max_age);
        let (head, tail) = {
            let l = target.live.lock();
            (l.head, l.next_offset)
        };
        let mut at = head;
        let mut scanned = 0usize;
        // The first batch appended at or after the cutoff, or as far as the
        // scan got through batches that are all older.
        let cut = loop {
            if at >= tail || scanned >= TRIM_SCAN_BYTES {
                break at;
            }
            let Ok(batches) = crate::fork::read_stream(&self.shared, target, at, tail, 1 << 20)
            else {
                return;
            };
            if batches.is_empty() {
                break at;
            }
            if let Some(b) = batches.iter().find(|b| b.append_time_ms() >= cutoff) {
                break b.first_offset();
            }
            for b in &batches {
                scanned += b.data_len();
                at = b.next_offset();
            }
        };
        if cut > head {
            let _ = self.tx.try_send(Command::Trim {
                stream: target.clone(),
                before: cut,
                reply: None,
            });
        }
    }

    /// Writes the ticks, events and snapshots that are due.
    pub fn poll(&mut self, streams: &[Arc<TouchStream>], now: u64) {
        let Some(target) = self.stream.clone() else {
            // Metrics are off; drop queued events so they do not pile up.
            drop(self.shared.touch.take_events());
            return;
        };
        if now >= self.next_trim_ms {
            self.trim(&target, now);
        }
        let mut records = Vec::new();
        for (stream, event) in self.shared.touch.take_events() {
            let kind = event
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("live.event")
                .to_string();
            records.push(Record::keyed(
                events::routing_key(&stream, &kind),
                events::wrap_lifecycle(&event, &self.env),
            ));
        }
        if now >= self.next_tick_ms {
            self.next_tick_ms = now + LIVE_TICK_INTERVAL_MS;
            let (lag_max, lag_avg) = self.shared.touch.loop_lag.lock().take();
            for ts in streams {
                let snap = ts.counters.lock().take();
                let gauges = self.gauges(ts, lag_max, lag_avg, now);
                let tick = tick_event(&self.env, &ts.stream.name, &snap, &gauges, now);
                records.push(Record::keyed(
                    events::routing_key(&ts.stream.name, "live.tick"),
                    tick,
                ));
            }
        }
        if now >= self.next_snapshot_ms {
            self.next_snapshot_ms = now + LIVE_SNAPSHOT_INTERVAL_MS;
            for ts in streams {
                let items: Vec<events::SnapshotTemplate> = ts
                    .templates
                    .lock()
                    .snapshot_rows()
                    .into_iter()
                    .map(|(id, entity, fields, last_seen)| events::SnapshotTemplate {
                        template_id: super::keys::hex16(id),
                        entity,
                        fields,
                        last_seen_at_ms: last_seen,
                    })
                    .collect();
                for row in events::template_snapshot_rows(&self.env, &ts.stream.name, &items, now) {
                    records.push(Record::keyed(row.routing_key, row.payload));
                }
            }
        }
        if records.is_empty() {
            return;
        }
        let (reply, _rx) = oneshot::channel();
        let _ = self.tx.try_send(Command::Append {
            stream: target,
            req: AppendRequest {
                records,
                content_type: None,
                stream_seq: None,
                producer: None,
                close: false,
            },
            ops: None,
            reply,
        });
    }

    fn gauges(&self, ts: &TouchStream, lag_max: u64, lag_avg: f64, now: u64) -> LiveGauges {
        let tail = ts.stream.live.lock().next_offset;
        let next = ts.progress.lock().next;
        let active_templates = ts.templates.lock().active_count() as u64;
        let mut cell = ts.journal.lock();
        let st = cell.journal.take_interval_stats();
        let j = &cell.journal;
        let enc = |o: Option<u64>| o.map_or_else(|| "-1".to_string(), offset_text);
        let processed = next.checked_sub(1);
        let tail_last = tail.checked_sub(1);
        LiveGauges {
            journal: Some(JournalGauges {
                cursor: j.cursor(),
                epoch: super::keys::hex16(j.epoch()),
                generation: j.generation(),
                pending_keys: j.pending_keys() as u64,
                overflow_buckets: j.meta(now).overflow_buckets,
                active_waiters: j.active_waiters() as u64,
                interval: st,
            }),
            active_templates,
            // Weir has no object store: everything committed counts as
            // sealed and uploaded, so the GC bound is the touch checkpoint.
            base: BaseProgress {
                tail_offset: enc(tail_last),
                next_offset: offset_text(tail),
                sealed_through: enc(tail_last),
                uploaded_through: enc(tail_last),
                processed_through: enc(processed),
                gc_through: enc(gc_through(processed, tail_last)),
                wal_oldest_offset: (tail > 0).then(|| offset_text(0)),
                wal_retained_rows: tail,
                wal_retained_bytes: 0,
                backlog_source_offsets: backlog_source_offsets(tail_last, processed),
            },
            loop_lag_max_ms: lag_max,
            loop_lag_avg_ms: lag_avg,
        }
    }
}

/// An offset in the HTTP door's encoding (two 16-digit halves).
fn offset_text(o: u64) -> String {
    const HALF: u64 = 10_000_000_000_000_000;
    format!("{:016}_{:016}", o / HALF, o % HALF)
}
