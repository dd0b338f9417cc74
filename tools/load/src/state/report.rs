//! The figures of a state run: the `--json` report and its summary.

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::Latency;

/// Snapshot figures over all subscribers.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SnapshotFigures {
    /// Subscribers whose snapshot completed.
    pub count: usize,
    /// Subscribe to `SnapshotDone`, ms: median.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Rows per snapshot (mean).
    pub rows_mean: f64,
    /// One subscriber's snapshot rows/s, median over subscribers.
    pub rows_per_sec_p50: f64,
    /// All snapshot rows over the wall time of the connect phase.
    pub rows_per_sec_total: f64,
    /// Wall time until every subscriber held its snapshot, s.
    pub connect_secs: f64,
}

/// The end-of-run checks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckFigures {
    /// Every check passed.
    pub passed: bool,
    /// Every subscriber received what it was due before the drain timed out.
    pub drained: bool,
    /// Deliveries due (from the acknowledged changes and each filter).
    pub expected_deliveries: u64,
    /// Deliveries due that did not arrive (summed over subscribers).
    pub missing_deliveries: u64,
    /// Deliveries beyond those due (summed over subscribers).
    pub extra_deliveries: u64,
    /// Subscribers whose materialized state differs from a Scan.
    pub state_mismatches: usize,
    /// The first difference found.
    pub first_difference: Option<String>,
    /// Deliveries whose offset did not grow (repeats, reordering).
    pub out_of_order: u64,
    /// Subscribers with at least one such delivery.
    pub subscribers_out_of_order: usize,
    /// Deliveries that are not what their change means for the subscriber's filter.
    pub wrong_deliveries: u64,
    /// The first wrong delivery.
    pub first_wrong: Option<String>,
    /// Deliveries at offsets no acknowledged change explains.
    pub unexplained_deliveries: u64,
    /// Subscriptions that ended with an error.
    pub subscriber_errors: usize,
    /// The first such error.
    pub first_error: Option<String>,
    /// Failed appends (their changes' fate is unknown).
    pub failed_appends: u64,
}

/// Server (and load generator) usage.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct UsageFigures {
    /// Server CPU over the window, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// Server CPU per acknowledged change in the window, µs.
    pub server_cpu_us_per_change: Option<f64>,
    /// Server RSS once every subscriber held its snapshot, MiB.
    pub server_rss_mib_subscribed: Option<f64>,
    /// Largest server RSS sampled during the changes, MiB.
    pub server_rss_mib_peak: Option<f64>,
    /// weir-load's own CPU over the window, percent of one core (when it
    /// nears 100 % per core it runs on, the figures measure the client).
    pub client_cpu_percent: Option<f64>,
}

/// The figures of a state run.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    /// The target URL.
    pub target: String,
    /// `state-protocol` or `keyed`.
    pub state_mode: &'static str,
    /// Keys in the state.
    pub keys: u32,
    /// Groups (0: unfiltered subscribers).
    pub groups: u32,
    /// Subscribers.
    pub subscribers: usize,
    /// Client connections the subscribers shared.
    pub connections: usize,
    /// Whether subscribers started with a snapshot.
    pub snapshot: bool,
    /// Target changes/s.
    pub change_rate: f64,
    /// Changes acknowledged in the window, per second.
    pub changes_per_sec: f64,
    /// Changes sent over the whole run.
    pub changes_sent: u64,
    /// Changes acknowledged over the whole run.
    pub changes_acked: u64,
    /// Most the writer fell behind its schedule, ms.
    pub writer_behind_ms: f64,
    /// Deliveries received over the whole run.
    pub deliveries: u64,
    /// Deliveries received in the window, per second.
    pub deliveries_per_sec: f64,
    /// Snapshot figures.
    pub snapshots: SnapshotFigures,
    /// Change latency (µs): subscriber receive time minus the send time of
    /// the change, for changes sent after warm-up.
    pub change_latency_us: Latency,
    /// The checks.
    pub check: CheckFigures,
    /// CPU and memory.
    pub usage: UsageFigures,
}

impl StateReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.check.passed
    }

    /// A short human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            s,
            "state: {} over {}, {} keys, {} subscribers ({}) on {} connections",
            self.state_mode,
            self.target,
            self.keys,
            self.subscribers,
            if self.groups == 0 {
                "unfiltered".to_string()
            } else {
                format!("1 of {} groups each", self.groups)
            },
            self.connections,
        );
        let _ = writeln!(
            s,
            "changes: {:.0}/s of {:.0}/s target ({} sent, {} acked, writer at most {:.1} ms behind)",
            self.changes_per_sec,
            self.change_rate,
            self.changes_sent,
            self.changes_acked,
            self.writer_behind_ms,
        );
        let _ = writeln!(
            s,
            "deliveries: {} ({:.0}/s in the window)",
            self.deliveries, self.deliveries_per_sec
        );
        let sn = &self.snapshots;
        if self.snapshot {
            let _ = writeln!(
                s,
                "snapshots: {} in {:.2} s, ms p50 {:.1}  p99 {:.1}  max {:.1}; {:.0} rows each, \
                 {:.0} rows/s per subscriber (p50), {:.0} rows/s in all",
                sn.count,
                sn.connect_secs,
                sn.p50_ms,
                sn.p99_ms,
                sn.max_ms,
                sn.rows_mean,
                sn.rows_per_sec_p50,
                sn.rows_per_sec_total,
            );
        }
        let l = &self.change_latency_us;
        let _ = writeln!(
            s,
            "change latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            l.count,
        );
        let u = &self.usage;
        if let Some(cpu) = u.server_cpu_percent {
            let _ = write!(s, "server: {cpu:.0}% CPU");
            if let Some(per) = u.server_cpu_us_per_change {
                let _ = write!(s, ", {per:.0} µs CPU per change");
            }
            if let (Some(a), Some(b)) = (u.server_rss_mib_subscribed, u.server_rss_mib_peak) {
                let _ = write!(s, ", RSS {a:.0} MiB subscribed, {b:.0} MiB peak");
            }
            s.push('\n');
        }
        if let Some(c) = u.client_cpu_percent {
            let _ = writeln!(s, "weir-load: {c:.0}% CPU");
        }
        let c = &self.check;
        let _ = writeln!(
            s,
            "check: {}; {} of {} due deliveries missing, {} extra, {} out of order, {} wrong, \
             {} unexplained; {} states differ from a Scan; {} subscriber errors, {} failed appends{}",
            if c.passed { "PASSED" } else { "FAILED" },
            c.missing_deliveries,
            c.expected_deliveries,
            c.extra_deliveries,
            c.out_of_order,
            c.wrong_deliveries,
            c.unexplained_deliveries,
            c.state_mismatches,
            c.subscriber_errors,
            c.failed_appends,
            if c.drained { "" } else { " (drain timed out)" },
        );
        for (what, text) in [
            ("first difference", &c.first_difference),
            ("first wrong delivery", &c.first_wrong),
            ("first subscriber error", &c.first_error),
        ] {
            if let Some(t) = text {
                let _ = writeln!(s, "  {what}: {t}");
            }
        }
        s
    }
}
