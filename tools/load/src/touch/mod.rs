//! The `touch` workload: live-query waiters against a touch-enabled State
//! Protocol stream while changes flow into it.
//!
//! Setup (always over HTTP, where the profile and templates live): one
//! stream with touches on, the template `posts(tenantId)` and
//! `--templates - 1` filler templates. Then `--waiters` tasks each wait on
//! the watch keys of `--keys-per-wait` tenants drawn from `--tuples`, over
//! HTTP or QUIC, re-waiting with the returned cursor after every answer,
//! while a writer inserts posts for random tenants at `--change-rate`.
//!
//! Figures: touched latency, from the moment the first change to one of
//! the waiter's tenants after its wait began was sent, to the answer. The
//! commit lies between the send and the acknowledgement, so this bounds
//! the commit-to-answer time from above by the append's own latency (well
//! under a millisecond on loopback). Also waits/s, timeouts, and false
//! wakes: touched answers when no change to any of the waiter's tenants
//! was sent since one second before its wait began (the slack covers
//! bucket flushes and the cursor's age).

mod ledger;
mod setup;
mod waiter;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::procstat;
use crate::stats::histogram;
use crate::target::{Scheme, Target};
use ledger::Ledger;

/// What a touch run does.
#[derive(Debug, Clone)]
pub struct TouchConfig {
    /// Where waiters connect: `http://` or `quic://`.
    pub target: Target,
    /// The HTTP address for setup and changes (`host:port`).
    pub http: String,
    /// Concurrent waiters.
    pub waiters: usize,
    /// Tenants (watch keys) per wait.
    pub keys_per_wait: usize,
    /// Distinct tenants.
    pub tuples: usize,
    /// Changes per second.
    pub change_rate: f64,
    /// Changes per append.
    pub changes_per_append: usize,
    /// Active templates on the stream (at least 1: the one waited on).
    pub templates: usize,
    /// Server-side wait timeout, ms.
    pub wait_timeout_ms: u64,
    /// Measured time after warm-up.
    pub duration: Duration,
    /// Warm-up excluded from the figures.
    pub warmup: Duration,
    /// Server process whose CPU and RSS are reported.
    pub server_pid: Option<u32>,
}

/// The figures of a touch run.
#[derive(Debug, Clone, Serialize)]
pub struct TouchReport {
    /// Waiters that ran.
    pub waiters: usize,
    /// Waiters connected when the measurement began.
    pub waiters_ready: usize,
    /// Changes acknowledged in the window.
    pub changes: u64,
    /// Answers in the window, per second.
    pub waits_per_sec: f64,
    /// Touched answers in the window.
    pub touched: u64,
    /// Timed-out answers in the window.
    pub timeouts: u64,
    /// Stale answers in the window.
    pub stale: u64,
    /// Touched answers with no change of theirs to explain them.
    pub false_wakes: u64,
    /// Failed waits (each retried).
    pub errors: u64,
    /// Touched latency percentiles, ms: p50, p95, p99, max.
    pub latency_ms: [f64; 4],
    /// Server CPU over the window, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// Server RSS at the end, MiB.
    pub server_rss_mib: Option<f64>,
}

impl TouchReport {
    /// A short human summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "touch: {} waiters ({} ready), {} changes, {:.0} waits/s\n\
             answers: {} touched, {} timeouts, {} stale, {} false wakes, {} errors\n\
             touched latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}\n",
            self.waiters,
            self.waiters_ready,
            self.changes,
            self.waits_per_sec,
            self.touched,
            self.timeouts,
            self.stale,
            self.false_wakes,
            self.errors,
            self.latency_ms[0],
            self.latency_ms[1],
            self.latency_ms[2],
            self.latency_ms[3],
        );
        if let (Some(cpu), Some(rss)) = (self.server_cpu_percent, self.server_rss_mib) {
            s.push_str(&format!("server: {cpu:.0}% CPU, {rss:.0} MiB RSS\n"));
        }
        s
    }
}

/// Counters the waiters share.
#[derive(Default)]
pub(crate) struct Counts {
    touched: AtomicU64,
    timeouts: AtomicU64,
    stale: AtomicU64,
    false_wakes: AtomicU64,
    errors: AtomicU64,
    ready: AtomicU64,
}

/// The shared clock and measurement window.
pub(crate) struct Window {
    epoch: Instant,
    start: Duration,
    end: Duration,
}

impl Window {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn inside(&self, t: Duration) -> bool {
        t >= self.start && t < self.end
    }
}

/// Runs the workload to its end.
pub async fn run(config: TouchConfig) -> anyhow::Result<TouchReport> {
    anyhow::ensure!(
        matches!(config.target.scheme, Scheme::Http | Scheme::Quic),
        "the touch workload waits over http:// or quic://"
    );
    anyhow::ensure!(config.templates >= 1 && config.tuples >= config.keys_per_wait);
    let http = setup::Http::new(&config.http);
    let stream = format!("weir-load/touch-{}", std::process::id());
    let template_id = setup::prepare(&http, &stream, config.templates).await?;
    let ledger = Arc::new(Ledger::new(config.tuples));
    let counts = Arc::new(Counts::default());
    let latency: Arc<Mutex<Histogram<u64>>> = Arc::new(Mutex::new(histogram()));
    let window = Arc::new(Window {
        epoch: Instant::now(),
        start: config.warmup,
        end: config.warmup + config.duration,
    });

    let mut tasks = Vec::new();
    let waiter_ctx = waiter::Ctx::connect(&config, &stream, template_id).await?;
    for i in 0..config.waiters {
        let ctx = waiter_ctx.clone();
        let (l, c, h, w) = (
            ledger.clone(),
            counts.clone(),
            latency.clone(),
            window.clone(),
        );
        tasks.push(tokio::spawn(waiter::run(ctx, i, l, c, h, w)));
    }
    let changes = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(ledger::write_changes(
        http.clone(),
        stream.clone(),
        config.change_rate,
        config.changes_per_append,
        ledger.clone(),
        window.clone(),
        changes.clone(),
    ));

    tokio::time::sleep(config.warmup).await;
    let ready = counts.ready.load(Ordering::Relaxed) as usize;
    let before = config.server_pid.and_then(procstat::sample);
    tokio::time::sleep(config.duration).await;
    let after = config.server_pid.and_then(procstat::sample);
    // Answers of waits in flight at the end are outside the window anyway.
    for t in &tasks {
        t.abort();
    }
    writer.abort();
    let _ = http.delete(&stream).await;

    let h = latency.lock().unwrap();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let touched = counts.touched.load(Ordering::Relaxed);
    let timeouts = counts.timeouts.load(Ordering::Relaxed);
    let stale = counts.stale.load(Ordering::Relaxed);
    let secs = config.duration.as_secs_f64().max(1e-9);
    Ok(TouchReport {
        waiters: config.waiters,
        waiters_ready: ready,
        changes: changes.load(Ordering::Relaxed),
        waits_per_sec: (touched + timeouts + stale) as f64 / secs,
        touched,
        timeouts,
        stale,
        false_wakes: counts.false_wakes.load(Ordering::Relaxed),
        errors: counts.errors.load(Ordering::Relaxed),
        latency_ms: [ms(0.5), ms(0.95), ms(0.99), h.max() as f64 / 1000.0],
        server_cpu_percent: match (&before, &after) {
            (Some(a), Some(b)) => Some(procstat::cpu_percent(a, b)),
            _ => None,
        },
        server_rss_mib: after.map(|s| s.rss_kib as f64 / 1024.0),
    })
}
