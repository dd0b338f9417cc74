//! One run from start to verdict: create the run's streams, start the
//! subscribers (each resolved to a concrete start offset before any append,
//! so every acknowledged record is expected), start the producers, tick
//! once a second until the duration or record budget is spent, stop the
//! producers, let subscribers drain, then compare ledgers and build the report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::sync::watch;

use crate::config::LoadConfig;
use crate::ledger::Ledger;
use crate::producer::{self, ProducerShared, ProducerSpec};
use crate::progress::Progress;
use crate::report::{Latency, Report, ServerUsage, Settings};
use crate::stats::Stats;
use crate::subscriber;
use crate::target::Scheme;
use crate::transport::{self, Transport, TransportOptions};

/// How long stopped producers may take to finish the append in flight.
const PRODUCER_STOP_GRACE: Duration = Duration::from_secs(35);

/// A finished run: the report and the merged histograms (for the plot).
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// Append-ack latencies, µs.
    pub ack: Histogram<u64>,
    /// End-to-end latencies, µs.
    pub e2e: Histogram<u64>,
}

/// A run id unique enough for stream names: time and pid in hex.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", nanos as u64, std::process::id())
}

/// Runs the workload `config` describes and reports on it.
pub async fn run(config: LoadConfig) -> anyhow::Result<Outcome> {
    config.validate()?;
    if config.catch_up_records.is_some() {
        return crate::catchup::run(config).await;
    }
    let Setup {
        run_id,
        prefix,
        names,
        conns,
    } = setup(&config).await?;

    if config.progress {
        // What runs goes above its progress lines, not below them.
        let planned = empty_report(&config, run_id.clone(), prefix.clone());
        print!("{}", planned.header(config.duration.as_secs_f64()));
    }
    let stats = Arc::new(Stats::new(config.warmup));
    let ledger = Arc::new(Ledger::new(config.streams, config.check_by));

    // Subscribers first: each learns its start offset before any append.
    let (stop_subs, stop_rx) = watch::channel(false);
    let mut sub_tasks = Vec::new();
    for (s, name) in names.iter().enumerate() {
        for j in 0..config.subscribers_per_stream {
            let t = reader_conn(&conns, &config, s, j);
            let sub = t
                .subscribe(name, config.from)
                .await
                .with_context(|| format!("subscribing to {name}"))?;
            let me = ledger.subscriber(s, sub.start);
            sub_tasks.push(tokio::spawn(subscriber::run(
                stats.clone(),
                ledger.clone(),
                me,
                sub,
                config.record_size,
                stop_rx.clone(),
            )));
        }
    }

    let shared = Arc::new(ProducerShared {
        stats: stats.clone(),
        ledger: ledger.clone(),
        stop: AtomicBool::new(false),
        issued: AtomicU64::new(0),
        max_records: config.max_records,
        run_id: run_id.clone(),
    });
    let per_producer = config
        .rate
        .map(|r| r / config.producers.max(1) as f64 / config.batch as f64);
    let mut producers = Vec::new();
    for p in 0..config.producers {
        let s = p % config.streams;
        let spec = ProducerSpec {
            index: p,
            stream: (s, names[s].clone()),
            batch: config.batch,
            record_size: config.record_size,
            batches_per_sec: per_producer,
            idempotent: config.idempotent,
            inflight: if config.idempotent {
                1
            } else {
                config.inflight
            },
        };
        let t = conns[p % conns.len()].clone();
        producers.push(tokio::spawn(producer::run(shared.clone(), spec, t)));
    }

    // Tick until the duration is over or every producer has finished.
    let started = Instant::now();
    let end = config.warmup + config.duration;
    let mut progress = Progress::default();
    let mut window_start = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    if config.warmup.is_zero() {
        progress.sample_server(config.server_pid);
        progress.server_start = progress.server_last;
        window_start = Some(Instant::now());
    }
    loop {
        let left = end.saturating_sub(started.elapsed());
        let all_done = producers.iter().all(|p| p.is_finished()) && config.producers > 0;
        if left.is_zero() || all_done {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep(left) => {}
            _ = tokio::time::sleep(Duration::from_millis(100)), if config.max_records.is_some() => continue,
        }
        let elapsed = started.elapsed();
        progress.sample_server(config.server_pid);
        if window_start.is_none() && elapsed >= config.warmup {
            progress.server_start = progress.server_last;
            window_start = Some(Instant::now());
        }
        if config.progress {
            // The line covers the second that just ended: label it by its start.
            let warming = elapsed.saturating_sub(Duration::from_millis(999)) < config.warmup;
            println!(
                "{}",
                progress.line(&stats, elapsed.as_secs(), warming, config.record_size)
            );
        }
    }

    // Stop producing; the window ends now.
    stats.close_window();
    let window_end = Instant::now();
    progress.sample_server(config.server_pid);
    shared.stop.store(true, Ordering::Relaxed);
    for p in producers {
        let _ = tokio::time::timeout(PRODUCER_STOP_GRACE, p).await;
    }

    // Drain: subscribers get until the grace to see every acknowledged record.
    let drain_until = Instant::now() + config.drain;
    let mut drained = config.subscribers_per_stream == 0 || ledger.caught_up();
    while !drained && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drained = ledger.caught_up();
    }
    let _ = stop_subs.send(true);
    for t in sub_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if config.cleanup {
        for n in &names {
            let _ = conns[0].delete(n).await;
        }
    }

    let verdict = ledger.verdict();
    let measured = window_start
        .map(|w| window_end.saturating_duration_since(w))
        .unwrap_or_default()
        .as_secs_f64();
    let per_sec = |n: u64| {
        if measured > 0.0 {
            n as f64 / measured
        } else {
            0.0
        }
    };
    let mb = |n: u64| per_sec(n) * config.record_size as f64 / 1e6;
    let ma = stats.measured_appended.load(Ordering::Relaxed);
    let md = stats.measured_delivered.load(Ordering::Relaxed);
    let ack = stats.ack.lock().expect("stats lock").clone();
    let e2e = stats.e2e.lock().expect("stats lock").clone();
    let server = server_usage(config.server_pid, &progress);
    let report = Report {
        measured_secs: measured,
        appended: stats.appended.load(Ordering::Relaxed),
        delivered: stats.delivered.load(Ordering::Relaxed),
        expected_deliveries: verdict.expected,
        lost: verdict.lost,
        duplicates: verdict.duplicates,
        mismatched: verdict.mismatched,
        corrupt: verdict.corrupt,
        unexpected: verdict.unexpected,
        append_errors: stats.append_errors.load(Ordering::Relaxed),
        append_retries: stats.append_retries.load(Ordering::Relaxed),
        subscribe_errors: stats.subscribe_errors.load(Ordering::Relaxed),
        last_error: stats.last_error.lock().expect("stats lock").clone(),
        drained,
        append_records_per_sec: per_sec(ma),
        append_mb_per_sec: mb(ma),
        deliver_records_per_sec: per_sec(md),
        deliver_mb_per_sec: mb(md),
        ack_latency_us: Latency::of(&ack),
        e2e_latency_us: Latency::of(&e2e),
        server,
        header_shown: config.progress,
        ..empty_report(&config, run_id, prefix)
    };
    Ok(Outcome { report, ack, e2e })
}

/// A run's streams and connections, ready for load.
pub(crate) struct Setup {
    /// The run's id.
    pub run_id: String,
    /// Prefix of its stream names.
    pub prefix: String,
    /// Its streams, created.
    pub names: Vec<String>,
    /// Its client connections.
    pub conns: Vec<Arc<dyn Transport>>,
}

/// The connection that serves subscriber (or catch-up reader) `j` of stream
/// `s`: all of a run's readers are spread round-robin over the connections.
pub(crate) fn reader_conn<'a>(
    conns: &'a [Arc<dyn Transport>],
    config: &LoadConfig,
    s: usize,
    j: usize,
) -> &'a Arc<dyn Transport> {
    &conns[(s * config.subscribers_per_stream + j) % conns.len()]
}

/// Opens `config.connections` connections and creates `config.streams`
/// uniquely named streams.
pub(crate) async fn setup(config: &LoadConfig) -> anyhow::Result<Setup> {
    let run_id = run_id();
    let prefix = format!("weir-load/{run_id}/");
    let names: Vec<String> = (0..config.streams)
        .map(|i| format!("{prefix}{i}"))
        .collect();
    let options = TransportOptions {
        record_size: config.record_size,
        live: config.live,
    };
    let mut conns: Vec<Arc<dyn Transport>> = Vec::new();
    for _ in 0..config.connections {
        conns.push(transport::connect(&config.target, options).await?);
    }
    for n in &names {
        conns[0]
            .create(n)
            .await
            .with_context(|| format!("creating stream {n}"))?;
    }
    Ok(Setup {
        run_id,
        prefix,
        names,
        conns,
    })
}

/// The server's CPU and memory over the window `progress` sampled.
pub(crate) fn server_usage(pid: Option<u32>, progress: &Progress) -> Option<ServerUsage> {
    match (pid, progress.server_start, progress.server_last) {
        (Some(pid), Some(a), Some(b)) => Some(ServerUsage {
            pid,
            cpu_percent: crate::procstat::cpu_percent(&a, &b),
            rss_mib_end: b.rss_kib as f64 / 1024.0,
            rss_mib_max: progress.server_rss_max as f64 / 1024.0,
        }),
        _ => None,
    }
}

/// A report of `config`'s run with its identity and settings filled in and
/// every figure zero, for the run modes to complete.
pub(crate) fn empty_report(config: &LoadConfig, run_id: String, prefix: String) -> Report {
    Report {
        run_id,
        header_shown: false,
        target: config.target.to_string(),
        transport: match config.target.scheme {
            Scheme::Http => "http",
            Scheme::Quic => "quic",
            Scheme::Ws => "ws",
        }
        .into(),
        stream_prefix: prefix,
        settings: Settings {
            connections: config.connections,
            streams: config.streams,
            producers: config.producers,
            subscribers_per_stream: config.subscribers_per_stream,
            record_size: config.record_size,
            batch: config.batch,
            rate: config.rate,
            idempotent: config.idempotent,
            inflight: config.inflight,
            from: config.from,
            live: config.live,
            check_by: config.check_by,
            duration_secs: config.duration.as_secs_f64(),
            warmup_secs: config.warmup.as_secs_f64(),
            max_records: config.max_records,
            drain_secs: config.drain.as_secs_f64(),
            catch_up_records: config.catch_up_records,
        },
        measured_secs: 0.0,
        appended: 0,
        delivered: 0,
        expected_deliveries: 0,
        lost: 0,
        duplicates: 0,
        mismatched: 0,
        corrupt: 0,
        unexpected: 0,
        append_errors: 0,
        append_retries: 0,
        subscribe_errors: 0,
        last_error: None,
        drained: true,
        append_records_per_sec: 0.0,
        append_mb_per_sec: 0.0,
        deliver_records_per_sec: 0.0,
        deliver_mb_per_sec: 0.0,
        ack_latency_us: Latency::default(),
        e2e_latency_us: Latency::default(),
        server: None,
        catch_up: None,
    }
}
