//! Catch-up mode (`--catch-up-records N`): fill each stream with N records,
//! then let every reader read it from the start through a fresh
//! subscription, pass after pass, for the duration. It measures how fast the
//! server serves stored data (the storage read path and the door), which the
//! live modes never exercise for long. Every completed pass is checked: the
//! offsets 0..N exactly once, in order, each an intact record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::watch;

use crate::config::{LoadConfig, StartFrom};
use crate::progress::Progress;
use crate::record;
use crate::report::{CatchUp, Latency};
use crate::runner::{empty_report, reader_conn, server_usage, setup, Outcome, Setup};
use crate::runs::RunSet;
use crate::stats::{self, Stats};
use crate::transport::Transport;

/// Appends in flight per stream while filling.
const FILL_INFLIGHT: usize = 8;

/// Counters the readers share.
#[derive(Default)]
struct Passes {
    /// Passes that ended inside the measured window.
    complete: AtomicU64,
    /// Those of them that missed, repeated or damaged a record.
    bad: AtomicU64,
    lost: AtomicU64,
    duplicates: AtomicU64,
    corrupt: AtomicU64,
}

/// Runs the catch-up workload `config` describes.
pub async fn run(config: LoadConfig) -> anyhow::Result<Outcome> {
    let total = config.catch_up_records.unwrap_or(0);
    let Setup {
        run_id,
        prefix,
        names,
        conns,
    } = setup(&config).await?;

    let fill_started = Instant::now();
    let mut stored = Vec::new();
    for (s, n) in names.iter().enumerate() {
        stored.push(Arc::new(
            fill(&*conns[s % conns.len()], n, total, &config).await?,
        ));
    }
    let fill_secs = fill_started.elapsed().as_secs_f64();
    let filled_bytes = total * names.len() as u64 * config.record_size as u64;

    let stats = Arc::new(Stats::new(config.warmup));
    let passes = Arc::new(Passes::default());
    let (stop, stop_rx) = watch::channel(false);
    let mut readers = Vec::new();
    for (s, name) in names.iter().enumerate() {
        for j in 0..config.subscribers_per_stream {
            let t = reader_conn(&conns, &config, s, j).clone();
            readers.push(tokio::spawn(reader(
                t,
                name.clone(),
                stored[s].clone(),
                config.record_size,
                stats.clone(),
                passes.clone(),
                stop_rx.clone(),
            )));
        }
    }

    let mut progress = Progress::default();
    tokio::time::sleep(config.warmup).await;
    progress.sample_server(config.server_pid);
    progress.server_start = progress.server_last;
    let window_start = Instant::now();
    let deadline = window_start + config.duration;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline - Instant::now())).await;
        progress.sample_server(config.server_pid);
    }
    stats.close_window();
    let measured = window_start.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let mut pass_hist = stats::histogram();
    for mut r in readers {
        match tokio::time::timeout(Duration::from_secs(5), &mut r).await {
            Ok(Ok(h)) => {
                pass_hist.add(&h).ok();
            }
            Ok(Err(e)) => stats.error(&anyhow::anyhow!("reader task failed: {e}")),
            // Stuck (in a subscribe, say): it must not outlive the run's streams.
            Err(_) => r.abort(),
        }
    }
    if config.cleanup {
        for n in &names {
            let _ = conns[0].delete(n).await;
        }
    }

    let md = stats.measured_delivered.load(Ordering::Relaxed);
    let mut report = empty_report(&config, run_id, prefix);
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    report.measured_secs = measured;
    report.appended = total * names.len() as u64;
    report.append_records_per_sec = report.appended as f64 / fill_secs;
    report.append_mb_per_sec = filled_bytes as f64 / 1e6 / fill_secs;
    report.delivered = get(&stats.delivered);
    report.expected_deliveries = report.delivered;
    report.lost = get(&passes.lost);
    report.duplicates = get(&passes.duplicates);
    report.corrupt = get(&passes.corrupt);
    report.subscribe_errors = get(&stats.subscribe_errors);
    report.last_error = stats.last_error.lock().expect("stats lock").clone();
    report.deliver_records_per_sec = md as f64 / measured;
    report.deliver_mb_per_sec = report.deliver_records_per_sec * config.record_size as f64 / 1e6;
    report.server = server_usage(config.server_pid, &progress);
    report.catch_up = Some(CatchUp {
        records_per_pass: total,
        passes: get(&passes.complete),
        bad_passes: get(&passes.bad),
        pass_us: Latency::of(&pass_hist),
    });
    let empty = stats::histogram();
    Ok(Outcome {
        report,
        ack: empty.clone(),
        e2e: empty,
    })
}

/// Appends `total` records of the run's size to `stream`, `batch` per append,
/// several appends in flight, each record stamped with its sequence; returns
/// which record the server stored at each offset (appends in flight may be
/// ordered either way).
async fn fill(
    t: &dyn Transport,
    stream: &str,
    total: u64,
    config: &LoadConfig,
) -> anyhow::Result<RunSet> {
    let mut stored = RunSet::default();
    let mut buf = BytesMut::new();
    let mut pending = FuturesUnordered::new();
    let mut seq = 0u64;
    while seq < total || !pending.is_empty() {
        if seq < total && pending.len() < FILL_INFLIGHT {
            let n = (config.batch as u64).min(total - seq);
            let records = (seq..seq + n)
                .map(|i| {
                    record::encode(&mut buf, config.record_size, 0, record::identity(0, i));
                    buf.split().freeze()
                })
                .collect();
            let first = seq;
            seq += n;
            let append = t.append(stream, records, None);
            pending.push(async move { (first, n, append.await) });
            continue;
        }
        if let Some((first, n, r)) = pending.next().await {
            let ack = r.with_context(|| format!("filling {stream}"))?;
            stored.insert_run(ack.first_offset, record::identity(0, first), n);
        }
    }
    let mut expected = RunSet::default();
    expected.insert_run(0, 0, total);
    let d = expected.diff(0, &stored);
    if d.only_first + d.only_second > 0 {
        anyhow::bail!("filling {stream}: the server's offsets are not 0..{total}");
    }
    Ok(stored)
}

/// Reads `stream` from the start, `total` records per pass, until stopped;
/// returns the histogram of whole, clean pass durations. A record that comes
/// out of order counts as lost where it was due and as a duplicate where it
/// came; either way its pass is bad.
async fn reader(
    t: Arc<dyn Transport>,
    stream: String,
    stored: Arc<RunSet>,
    record_size: usize,
    stats: Arc<Stats>,
    passes: Arc<Passes>,
    mut stop: watch::Receiver<bool>,
) -> Histogram<u64> {
    let total = stored.len();
    let mut hist = stats::histogram();
    while !*stop.borrow() {
        let started = stats.now();
        let mut sub = match t.subscribe(&stream, StartFrom::Start).await {
            Ok(s) => s,
            Err(e) => {
                stats.subscribe_errors.fetch_add(1, Ordering::Relaxed);
                stats.error(&e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (mut next, mut lost, mut dups, mut corrupt) = (0u64, 0u64, 0u64, 0u64);
        while next < total {
            let item = tokio::select! {
                item = sub.records.next() => item,
                _ = stop.wait_for(|s| *s) => return hist,
            };
            let delivery = match item {
                None => break,
                Some(Err(e)) => {
                    stats.subscribe_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error(&e);
                    continue;
                }
                Some(Ok(d)) => d,
            };
            let now = stats.now();
            for (offset, payload) in delivery.iter() {
                match offset.cmp(&next) {
                    std::cmp::Ordering::Less => dups += 1,
                    std::cmp::Ordering::Greater => lost += offset - next,
                    std::cmp::Ordering::Equal => {}
                }
                let intact = record::decode(payload, record_size)
                    .is_some_and(|d| stored.get(offset) == Some(d.id));
                corrupt += u64::from(!intact);
                next = next.max(offset + 1);
            }
            let n = delivery.len() as u64;
            stats.delivered.fetch_add(n, Ordering::Relaxed);
            if stats.in_window(now) {
                stats.measured_delivered.fetch_add(n, Ordering::Relaxed);
            }
        }
        let ended = stats.now();
        lost += total.saturating_sub(next);
        let clean = lost + dups + corrupt == 0;
        if stats.in_window(ended) {
            passes.complete.fetch_add(1, Ordering::Relaxed);
            if clean {
                stats::record_us(&mut hist, ended.saturating_sub(started));
            } else {
                passes.bad.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Damage counts whenever it happened, warm-up included.
        passes.lost.fetch_add(lost, Ordering::Relaxed);
        passes.duplicates.fetch_add(dups, Ordering::Relaxed);
        passes.corrupt.fetch_add(corrupt, Ordering::Relaxed);
    }
    hist
}
