//! One producer task: appends batches of fresh records to one stream, at a
//! fixed rate or as fast as acknowledgements come back. By default one
//! append is in flight per producer, as an idempotent producer requires; a
//! non-idempotent producer may keep several in flight, so that a rate above
//! one append per ack round trip (fsync included) can be held.
//!
//! With a target rate the send time written into each record and used for
//! the ack latency is the *scheduled* time, not the moment the request left:
//! when the server falls behind, the queueing delay is part of the figures
//! instead of being hidden (coordinated omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::ledger::Ledger;
use crate::record;
use crate::stats::{self, Stats};
use crate::transport::{ProducerTag, Transport};

/// Attempts of one idempotent append before it counts as failed.
const ATTEMPTS: u32 = 5;

/// What all producers share.
pub struct ProducerShared {
    /// Counters and clock.
    pub stats: Arc<Stats>,
    /// Acknowledged records.
    pub ledger: Arc<Ledger>,
    /// Set to stop producing.
    pub stop: AtomicBool,
    /// Records handed out so far (for the record-count limit).
    pub issued: AtomicU64,
    /// Record-count limit over all producers.
    pub max_records: Option<u64>,
    /// Run id (part of producer ids).
    pub run_id: String,
}

/// One producer's settings.
pub struct ProducerSpec {
    /// Producer id (0-based).
    pub index: usize,
    /// Stream index and name.
    pub stream: (usize, String),
    /// Records per append.
    pub batch: usize,
    /// Bytes per record.
    pub record_size: usize,
    /// Batches per second for this producer; `None` is unlimited.
    pub batches_per_sec: Option<f64>,
    /// Send producer headers and retry failures.
    pub idempotent: bool,
    /// Appends in flight at once (1 for idempotent producers).
    pub inflight: usize,
}

/// What became of one append: the ack (if any attempt succeeded), its
/// scheduled send time and the identities of its records.
type Outcome = (Option<crate::transport::Ack>, u64, Vec<u64>);

/// Runs until stopped or the record budget is spent.
pub async fn run(shared: Arc<ProducerShared>, spec: ProducerSpec, t: Arc<dyn Transport>) {
    let stats = &shared.stats;
    let mut ack_hist = stats::histogram();
    let mut seq: u64 = 0;
    let mut batch_seq: u64 = 0;
    let interval = spec
        .batches_per_sec
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let start = tokio::time::Instant::now();
    let mut buf = BytesMut::new();
    let mut pending: Pending = FuturesUnordered::new();
    let producer_id = spec
        .idempotent
        .then(|| format!("weir-load-{}-{}", shared.run_id, spec.index));
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match shared.max_records {
            None => spec.batch,
            Some(max) => {
                let before = shared
                    .issued
                    .fetch_add(spec.batch as u64, Ordering::Relaxed);
                if before >= max {
                    break;
                }
                spec.batch.min((max - before) as usize)
            }
        };
        let sent = match interval {
            Some(iv) => {
                let at = start + iv.mul_f64(batch_seq as f64);
                if wait_until(at, &mut pending, &shared, &spec, &mut ack_hist).await {
                    backoff(&mut pending, &shared, &spec, &mut ack_hist).await;
                }
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                at.into_std()
                    .saturating_duration_since(stats.epoch())
                    .as_nanos() as u64
            }
            None => stats.now(),
        };
        let ids: Vec<u64> = (0..n as u64)
            .map(|i| record::identity(spec.index, seq + i))
            .collect();
        let records: Vec<_> = ids
            .iter()
            .map(|id| {
                record::encode(&mut buf, spec.record_size, sent, *id);
                buf.split().freeze()
            })
            .collect();
        let tag = producer_id.as_ref().map(|id| ProducerTag {
            id: id.clone(),
            epoch: 0,
            seq: batch_seq,
        });
        pending.push(Box::pin(attempt(
            t.clone(),
            stats.clone(),
            spec.stream.1.clone(),
            records,
            tag,
            sent,
            ids,
        )));
        let mut failed = false;
        while pending.len() >= spec.inflight.max(1) {
            if let Some(o) = pending.next().await {
                failed |= account(&shared, &spec, &mut ack_hist, o);
            }
        }
        if failed {
            backoff(&mut pending, &shared, &spec, &mut ack_hist).await;
        }
        seq += n as u64;
        batch_seq += 1;
    }
    while let Some(o) = pending.next().await {
        account(&shared, &spec, &mut ack_hist, o);
    }
    Stats::merge(&stats.ack, &ack_hist);
}

/// Sends one append, retrying an idempotent one (one with a producer tag)
/// up to [`ATTEMPTS`] times.
async fn attempt(
    t: Arc<dyn Transport>,
    stats: Arc<Stats>,
    stream: String,
    records: Vec<bytes::Bytes>,
    tag: Option<ProducerTag>,
    sent: u64,
    ids: Vec<u64>,
) -> Outcome {
    let attempts = if tag.is_some() { ATTEMPTS } else { 1 };
    for attempt in 0..attempts {
        if attempt > 0 {
            stats.append_retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        match t.append(&stream, records.clone(), tag.clone()).await {
            Ok(ack) => return (Some(ack), sent, ids),
            Err(e) => stats.error(&e),
        }
    }
    (None, sent, ids)
}

/// Appends in flight, each resolving to its [`Outcome`].
type Pending = FuturesUnordered<futures::future::BoxFuture<'static, Outcome>>;

/// Sleeps until `at` while driving and booking the appends in flight, so
/// their ack times are the moments they completed; returns whether one failed.
async fn wait_until(
    at: tokio::time::Instant,
    pending: &mut Pending,
    shared: &ProducerShared,
    spec: &ProducerSpec,
    ack_hist: &mut hdrhistogram::Histogram<u64>,
) -> bool {
    let sleep = tokio::time::sleep_until(at);
    tokio::pin!(sleep);
    let mut failed = false;
    loop {
        tokio::select! {
            biased;
            Some(o) = pending.next(), if !pending.is_empty() => {
                failed |= account(shared, spec, ack_hist, o);
            }
            () = &mut sleep => return failed,
        }
    }
}

/// After a failed append: do not hammer a failing server, but keep booking
/// the appends still in flight.
async fn backoff(
    pending: &mut Pending,
    shared: &ProducerShared,
    spec: &ProducerSpec,
    ack_hist: &mut hdrhistogram::Histogram<u64>,
) {
    let at = tokio::time::Instant::now() + Duration::from_millis(100);
    wait_until(at, pending, shared, spec, ack_hist).await;
}

/// Books one finished append: the ledger, the counters and the ack latency;
/// returns whether it failed.
fn account(
    shared: &ProducerShared,
    spec: &ProducerSpec,
    ack_hist: &mut hdrhistogram::Histogram<u64>,
    (result, sent, ids): Outcome,
) -> bool {
    let stats = &shared.stats;
    let n = ids.len();
    let now = stats.now();
    match result {
        Some(ack) => {
            shared.ledger.ack(spec.stream.0, ack.first_offset, &ids);
            stats.appended.fetch_add(n as u64, Ordering::Relaxed);
            if stats.in_window(now) {
                stats
                    .measured_appended
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            if stats.after_warmup(sent) {
                stats::record_us(ack_hist, now.saturating_sub(sent));
            }
        }
        None => {
            stats.append_errors.fetch_add(1, Ordering::Relaxed);
            return true;
        }
    }
    false
}
