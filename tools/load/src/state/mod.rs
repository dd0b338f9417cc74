//! The `state` workload: state subscribers with snapshots and filters on
//! one state stream while a writer changes its keys.
//!
//! Setup (over the binary door, protocol version 2): one stream in
//! `state-protocol` or `keyed` mode holding `--keys` keys, key `i` in group
//! `i % groups` (the group is the value's field `g`). Then `--state-subscribers`
//! subscribers connect in waves, each subscribed with a snapshot and the
//! filter `{"field":"g","op":"eq","value":k % groups}` (or unfiltered),
//! and the writer changes keys at `--change-rate`, moving a key to another
//! group with probability `--move-prob`, for warm-up plus duration.
//!
//! After the writer stops, subscribers get `--drain` to receive every
//! delivery due to them. Then the checks: each subscriber received exactly
//! the deliveries its filter makes due (every change its rows enter, stay
//! in or leave), each judged against the change at its offset, in growing
//! offset order, and its materialized state equals a Scan with its filter.
//!
//! Figures: snapshot time (subscribe to `SnapshotDone`) and rows/s, change
//! latency (receive time minus the time the change's append was sent, for
//! changes sent after warm-up, delivered before the end of the drain),
//! changes/s and deliveries/s, server CPU per change and RSS.

mod check;
mod data;
mod door;
mod ledger;
mod report;
mod setup;
mod subscriber;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{oneshot, watch};
use weir_net::proto::{Scan, WireRow};

pub use check::{compare, Difference, Materialized, Row};
pub use report::{CheckFigures, SnapshotFigures, StateReport, UsageFigures};

use crate::procstat;
use crate::report::Latency;
use crate::stats::histogram;
use crate::target::Target;
use door::Door;
use ledger::Ledger;
use subscriber::{Ctx, Outcome, Progress};

/// The state mode of the workload's stream (JSON values in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateModeArg {
    /// Durable Streams State Protocol messages, keyed by type and key.
    StateProtocol,
    /// Keyed records: the record key is the row key, the payload its value.
    Keyed,
}

impl StateModeArg {
    fn name(self) -> &'static str {
        match self {
            StateModeArg::StateProtocol => "state-protocol",
            StateModeArg::Keyed => "keyed",
        }
    }
}

/// What a state run does.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Where to connect: `quic://` or `ws://`.
    pub target: Target,
    /// Keys in the state.
    pub keys: u32,
    /// State subscribers.
    pub subscribers: usize,
    /// Groups; subscriber `k` follows group `k % groups` (0: unfiltered).
    pub groups: u8,
    /// Probability that a change moves its key to another group.
    pub move_prob: f64,
    /// Bytes of each JSON value.
    pub value_size: usize,
    /// The stream's state mode.
    pub mode: StateModeArg,
    /// Subscribers start with a snapshot.
    pub snapshot: bool,
    /// Changes per second.
    pub change_rate: f64,
    /// Subscribers per client connection (the server allows 256).
    pub subscribers_per_connection: usize,
    /// Measured time after warm-up.
    pub duration: Duration,
    /// Time the writer runs before the measurement.
    pub warmup: Duration,
    /// Time subscribers get to receive what is due after the writer stops.
    pub drain: Duration,
    /// Server process whose CPU and RSS are reported.
    pub server_pid: Option<u32>,
    /// Delete the stream at the end.
    pub cleanup: bool,
    /// Seed of the change sequence.
    pub seed: u64,
}

impl StateConfig {
    /// The defaults of the issue's benchmark shape at a smaller scale.
    pub fn new(target: Target) -> Self {
        StateConfig {
            target,
            keys: 10_000,
            subscribers: 100,
            groups: 20,
            move_prob: 0.25,
            value_size: 100,
            mode: StateModeArg::StateProtocol,
            snapshot: true,
            change_rate: 1000.0,
            subscribers_per_connection: 100,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            drain: Duration::from_secs(5),
            server_pid: None,
            cleanup: true,
            seed: 42,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.keys >= 1, "--keys must be at least 1");
        anyhow::ensure!(
            self.subscribers >= 1,
            "--state-subscribers must be at least 1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.move_prob),
            "--move-prob must be in [0, 1]"
        );
        anyhow::ensure!(
            self.change_rate > 0.0 && self.change_rate <= 1_000_000.0,
            "--change-rate must be in (0, 1000000]"
        );
        anyhow::ensure!(
            (1..=256).contains(&self.subscribers_per_connection),
            "--subscribers-per-connection must be in 1..=256 (the server's limit per connection)"
        );
        anyhow::ensure!(
            (40..=1_000_000).contains(&self.value_size),
            "--value-size must be in 40..=1000000"
        );
        Ok(())
    }
}

/// The run's clock: nanos since its start, and from when changes count.
#[derive(Clone)]
pub(crate) struct Clock {
    epoch: Instant,
    measure_from: Arc<AtomicU64>,
}

impl Clock {
    fn new() -> Self {
        Clock {
            epoch: Instant::now(),
            measure_from: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// Nanos since the run's start.
    pub(crate) fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether a change sent at `t` is measured (sent after warm-up).
    pub(crate) fn measured(&self, t: u64) -> bool {
        t >= self.measure_from.load(Ordering::Relaxed)
    }

    fn at(&self, t: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.epoch + Duration::from_nanos(t))
    }
}

/// Subscribers connecting at once.
const WAVE: usize = 50;

/// Longest one wave of subscribers may take to hold their snapshots.
const WAVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Pause between the last snapshot and the writer's start, so the server's
/// RSS reading is of the subscribed state at rest.
const SETTLE: Duration = Duration::from_millis(500);

/// Latency histogram shards.
const SHARDS: usize = 16;

/// Rows per scan page of the final check.
const SCAN_PAGE: u32 = 1000;

/// Runs the workload to its end.
pub async fn run(config: StateConfig) -> anyhow::Result<StateReport> {
    config.validate()?;
    let clock = Clock::new();
    let writer_door = Door::connect(&config.target).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let stream = format!("weir-load/state-{}-{stamp}", std::process::id());
    let groups = config.groups.max(1);
    let base = setup::prepare(
        &writer_door,
        &stream,
        config.mode,
        config.keys,
        groups,
        config.value_size,
    )
    .await
    .context("preparing the state stream")?;
    let result = drive(&config, &writer_door, &stream, base, clock).await;
    if config.cleanup {
        let _ = writer_door.delete(&stream).await;
    }
    result
}

/// Server and client readings at one instant.
struct Reading {
    server: Option<procstat::Sample>,
    client: Option<procstat::Sample>,
    received: u64,
}

fn reading(config: &StateConfig, progress: &[Arc<Progress>]) -> Reading {
    Reading {
        server: config.server_pid.and_then(procstat::sample),
        client: procstat::sample(std::process::id()),
        received: progress
            .iter()
            .map(|p| p.received.load(Ordering::Relaxed))
            .sum(),
    }
}

async fn drive(
    config: &StateConfig,
    writer_door: &Door,
    stream: &str,
    base: u64,
    clock: Clock,
) -> anyhow::Result<StateReport> {
    let run_secs = (config.warmup + config.duration).as_secs_f64();
    let capacity = (config.change_rate * run_secs * 1.2) as usize + 1024;
    let ledger = Arc::new(Ledger::new(base, capacity));
    let ctx = Arc::new(Ctx {
        stream: stream.to_string(),
        mode: config.mode,
        snapshot: config.snapshot,
        ledger: ledger.clone(),
        clock: clock.clone(),
        latency: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
    });

    let connections = config
        .subscribers
        .div_ceil(config.subscribers_per_connection);
    let mut doors = Vec::with_capacity(connections);
    for _ in 0..connections {
        doors.push(Door::connect(&config.target).await?);
    }

    // Subscribers, in waves, each wave holding its snapshots before the next.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut progress = Vec::with_capacity(config.subscribers);
    let mut tasks = Vec::with_capacity(config.subscribers);
    let connect_start = Instant::now();
    let mut snapshot_ready = 0usize;
    let mut first_error: Option<String> = None;
    for wave in (0..config.subscribers).collect::<Vec<_>>().chunks(WAVE) {
        let mut readies = Vec::with_capacity(wave.len());
        for &k in wave {
            let group = (config.groups > 0).then(|| (k % usize::from(config.groups)) as u8);
            let p = Arc::new(Progress::default());
            let (tx, rx) = oneshot::channel();
            tasks.push(tokio::spawn(subscriber::run(
                doors[k % connections].clone(),
                k,
                group,
                ctx.clone(),
                p.clone(),
                tx,
                stop_rx.clone(),
            )));
            progress.push(p);
            readies.push(rx);
        }
        let all = futures::future::join_all(readies);
        let answers = tokio::time::timeout(WAVE_TIMEOUT, all)
            .await
            .context("subscribers did not hold their snapshots within 2 minutes")?;
        for a in answers {
            match a {
                Ok(Ok(_)) => snapshot_ready += 1,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert("a subscriber task ended".into());
                }
            }
        }
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    if snapshot_ready < config.subscribers {
        let _ = stop_tx.send(true);
        anyhow::bail!(
            "{} of {} subscribers failed to subscribe: {}",
            config.subscribers - snapshot_ready,
            config.subscribers,
            first_error.unwrap_or_default()
        );
    }
    tokio::time::sleep(SETTLE).await;
    let rss_subscribed = config
        .server_pid
        .and_then(procstat::sample)
        .map(|s| s.rss_kib);

    // Peak RSS while changes flow.
    let peak = Arc::new(AtomicU64::new(rss_subscribed.unwrap_or(0)));
    let sampler = config.server_pid.map(|pid| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(s) = procstat::sample(pid) {
                    peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });

    // The writer: warm-up, then the measured window.
    let begin = clock.now();
    let measure_from = begin + config.warmup.as_nanos() as u64;
    let until = measure_from + config.duration.as_nanos() as u64;
    clock.measure_from.store(measure_from, Ordering::Relaxed);
    let plan = writer::Plan {
        stream: stream.to_string(),
        mode: config.mode,
        rate: config.change_rate,
        value_size: config.value_size,
        keys: config.keys,
        until_ns: until,
    };
    let changes = data::Changes::new(
        config.keys,
        config.groups.max(1),
        config.move_prob,
        config.seed,
    );
    let writer = tokio::spawn(writer::run(
        writer_door.clone(),
        plan,
        changes,
        ledger.clone(),
        clock.clone(),
    ));
    tokio::time::sleep_until(clock.at(measure_from)).await;
    let r0 = reading(config, &progress);
    tokio::time::sleep_until(clock.at(until)).await;
    let r1 = reading(config, &progress);
    let written = writer.await.context("the writer task failed")?;
    if let Some(s) = sampler {
        s.abort();
    }

    // Drain: until every subscriber received what is due to it.
    let due: Vec<u64> = {
        let mut cache: HashMap<(u64, Option<u8>), u64> = HashMap::new();
        progress
            .iter()
            .enumerate()
            .map(|(k, p)| {
                // Without a snapshot a filtered subscriber hears of every
                // change too (outside its filter as a delete).
                let group = (config.groups > 0 && config.snapshot)
                    .then(|| (k % usize::from(config.groups)) as u8);
                let from = if config.snapshot {
                    p.fence.load(Ordering::Relaxed)
                } else {
                    base
                };
                *cache
                    .entry((from, group))
                    .or_insert_with(|| ledger.expected(from, group))
            })
            .collect()
    };
    let drain_end = Instant::now() + config.drain;
    let drained = loop {
        let done = progress
            .iter()
            .zip(&due)
            .all(|(p, d)| p.received.load(Ordering::Relaxed) >= *d);
        if done {
            break true;
        }
        if Instant::now() >= drain_end {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await.context("a subscriber task failed")?);
    }

    // The state check: one scan per distinct filter.
    let mut scans: HashMap<Option<u8>, Vec<WireRow>> = HashMap::new();
    for o in &outcomes {
        if let std::collections::hash_map::Entry::Vacant(v) = scans.entry(o.group) {
            v.insert(scan_all(writer_door, stream, o.group, ledger.tail()).await?);
        }
    }
    let since = if config.snapshot { 0 } else { base };
    let mut check = CheckFigures {
        drained,
        failed_appends: written.failed_appends,
        ..CheckFigures::default()
    };
    if let Some(e) = &written.last_error {
        check.first_error = Some(format!("writer: {e}"));
    }
    for (o, d) in outcomes.iter().zip(&due) {
        tally(&mut check, o, *d, &scans[&o.group], since);
    }
    check.passed = check.drained
        && check.missing_deliveries == 0
        && check.extra_deliveries == 0
        && check.state_mismatches == 0
        && check.out_of_order == 0
        && check.wrong_deliveries == 0
        && check.unexplained_deliveries == 0
        && check.subscriber_errors == 0
        && check.failed_appends == 0
        && written.unrecorded == 0;

    let latency = {
        let mut all = histogram();
        for shard in &ctx.latency {
            let _ = all.add(&*shard.lock().expect("latency lock"));
        }
        Latency::of(&all)
    };
    let window_secs = config.duration.as_secs_f64().max(1e-9);
    let server_cpu_percent = match (&r0.server, &r1.server) {
        (Some(a), Some(b)) => Some(procstat::cpu_percent(a, b)),
        _ => None,
    };
    let changes_per_sec = written.measured as f64 / window_secs;
    let usage = UsageFigures {
        server_cpu_percent,
        server_cpu_us_per_change: server_cpu_percent
            .filter(|_| changes_per_sec > 0.0)
            .map(|p| p / 100.0 * 1e6 / changes_per_sec),
        server_rss_mib_subscribed: rss_subscribed.map(|k| k as f64 / 1024.0),
        server_rss_mib_peak: config
            .server_pid
            .map(|_| peak.load(Ordering::Relaxed) as f64 / 1024.0),
        client_cpu_percent: match (&r0.client, &r1.client) {
            (Some(a), Some(b)) => Some(procstat::cpu_percent(a, b)),
            _ => None,
        },
    };
    Ok(StateReport {
        target: config.target.to_string(),
        state_mode: config.mode.name(),
        keys: config.keys,
        groups: u32::from(config.groups),
        subscribers: config.subscribers,
        connections,
        snapshot: config.snapshot,
        change_rate: config.change_rate,
        changes_per_sec,
        changes_sent: written.sent,
        changes_acked: written.acked,
        writer_behind_ms: written.behind_ms,
        deliveries: outcomes.iter().map(|o| o.received).sum(),
        deliveries_per_sec: (r1.received - r0.received) as f64 / window_secs,
        snapshots: snapshot_figures(&outcomes, connect_secs),
        change_latency_us: latency,
        check,
        usage,
    })
}

/// Adds subscriber `o`'s results (due `due` deliveries) to the check.
fn tally(check: &mut CheckFigures, o: &Outcome, due: u64, scan: &[WireRow], since: u64) {
    check.expected_deliveries += due;
    check.missing_deliveries += due.saturating_sub(o.received);
    check.extra_deliveries += o.received.saturating_sub(due);
    check.out_of_order += o.out_of_order;
    check.subscribers_out_of_order += usize::from(o.out_of_order > 0);
    check.wrong_deliveries += o.wrong;
    check.unexplained_deliveries += o.unexplained;
    if check.first_wrong.is_none() {
        check.first_wrong.clone_from(&o.first_wrong);
    }
    if let Some(e) = &o.error {
        check.subscriber_errors += 1;
        check.first_error.get_or_insert_with(|| e.clone());
    }
    if let Err(d) = compare(&o.state, scan, since) {
        check.state_mismatches += 1;
        check.first_difference.get_or_insert_with(|| d.to_string());
    }
}

/// Every row matching group `group`'s filter, page after page; the pages
/// must be the state at or after `tail` (every acknowledged change).
async fn scan_all(
    door: &Door,
    stream: &str,
    group: Option<u8>,
    tail: u64,
) -> anyhow::Result<Vec<WireRow>> {
    let filter = group.map(|g| format!(r#"{{"field":"g","op":"eq","value":{g}}}"#));
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = door
            .scan(Scan {
                stream: stream.into(),
                filter: filter.clone(),
                entity: None,
                prefix: None,
                after,
                limit: SCAN_PAGE,
            })
            .await
            .context("scanning the state")?;
        anyhow::ensure!(
            page.fence >= tail,
            "a scan page at fence {} misses acknowledged changes up to {tail}",
            page.fence
        );
        rows.extend(page.rows);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(rows),
        }
    }
}

fn snapshot_figures(outcomes: &[Outcome], connect_secs: f64) -> SnapshotFigures {
    let snaps: Vec<_> = outcomes.iter().filter_map(|o| o.snapshot).collect();
    if snaps.is_empty() {
        return SnapshotFigures {
            connect_secs,
            ..SnapshotFigures::default()
        };
    }
    let mut ms: Vec<f64> = snaps.iter().map(|s| s.nanos as f64 / 1e6).collect();
    ms.sort_by(f64::total_cmp);
    let mut rate: Vec<f64> = snaps
        .iter()
        .map(|s| s.rows as f64 / (s.nanos as f64 / 1e9).max(1e-9))
        .collect();
    rate.sort_by(f64::total_cmp);
    let q = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let rows: u64 = snaps.iter().map(|s| s.rows).sum();
    SnapshotFigures {
        count: snaps.len(),
        p50_ms: q(&ms, 0.5),
        p99_ms: q(&ms, 0.99),
        max_ms: *ms.last().expect("not empty"),
        rows_mean: rows as f64 / snaps.len() as f64,
        rows_per_sec_p50: q(&rate, 0.5),
        rows_per_sec_total: rows as f64 / connect_secs.max(1e-9),
        connect_secs,
    }
}
