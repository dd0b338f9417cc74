//! The run's result: serialized as the `--json` report and rendered as the
//! summary table.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{CheckBy, LiveMode, StartFrom};

/// Percentiles of one latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Number of samples.
    pub count: u64,
}

impl Latency {
    /// The percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            count: h.len(),
        }
    }
}

/// CPU and memory of the server process during the measured window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerUsage {
    /// The sampled process.
    pub pid: u32,
    /// CPU use over the window, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory at the end of the window, MiB.
    pub rss_mib_end: f64,
    /// Largest resident memory sampled, MiB.
    pub rss_mib_max: f64,
}

/// The workload as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Client connections.
    pub connections: usize,
    /// Streams.
    pub streams: usize,
    /// Producer tasks.
    pub producers: usize,
    /// Subscribers per stream.
    pub subscribers_per_stream: usize,
    /// Bytes per record.
    pub record_size: usize,
    /// Records per append.
    pub batch: usize,
    /// Target rate, records/s over all producers (`null`: unlimited).
    pub rate: Option<f64>,
    /// Idempotent producers.
    pub idempotent: bool,
    /// Appends in flight per producer.
    pub inflight: usize,
    /// Subscriber start.
    pub from: StartFrom,
    /// HTTP live mode.
    pub live: LiveMode,
    /// Loss matching rule.
    pub check_by: CheckBy,
    /// Measured seconds asked for.
    pub duration_secs: f64,
    /// Warm-up seconds.
    pub warmup_secs: f64,
    /// Catch-up mode: records pre-filled into each stream.
    pub catch_up_records: Option<u64>,
    /// Record-count limit.
    pub max_records: Option<u64>,
    /// Drain grace seconds.
    pub drain_secs: f64,
}

/// The full report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Unique id of the run (its streams are under `stream_prefix`).
    pub run_id: String,
    /// Whether the header was printed before the run's progress lines.
    #[serde(skip)]
    pub header_shown: bool,
    /// Target URL.
    pub target: String,
    /// `http`, `quic` or `ws`.
    pub transport: String,
    /// Prefix of the run's stream names.
    pub stream_prefix: String,
    /// The workload.
    pub settings: Settings,
    /// Length of the measured window, seconds.
    pub measured_secs: f64,
    /// Records acknowledged over the whole run (warm-up included).
    pub appended: u64,
    /// Records delivered to subscribers over the whole run.
    pub delivered: u64,
    /// Deliveries the acknowledged records called for.
    pub expected_deliveries: u64,
    /// Acknowledged records a subscriber never got (after the drain).
    pub lost: u64,
    /// Extra deliveries of an offset (or identity) already delivered.
    pub duplicates: u64,
    /// Offsets delivered holding another record than the one acknowledged there.
    pub mismatched: u64,
    /// Payloads that were not intact records of this run.
    pub corrupt: u64,
    /// Delivered offsets no acknowledgement mentioned.
    pub unexpected: u64,
    /// Appends that failed (after retries).
    pub append_errors: u64,
    /// Retried appends.
    pub append_retries: u64,
    /// Failed subscriber reads.
    pub subscribe_errors: u64,
    /// Last error seen, if any.
    pub last_error: Option<String>,
    /// Whether every subscriber caught up within the drain grace.
    pub drained: bool,
    /// Acknowledged records per second in the window.
    pub append_records_per_sec: f64,
    /// Acknowledged payload MB (10^6 bytes) per second in the window.
    pub append_mb_per_sec: f64,
    /// Delivered records per second in the window (all subscribers).
    pub deliver_records_per_sec: f64,
    /// Delivered payload MB per second in the window.
    pub deliver_mb_per_sec: f64,
    /// Append request to acknowledgement.
    pub ack_latency_us: Latency,
    /// Record send time to delivery at a subscriber.
    pub e2e_latency_us: Latency,
    /// Server process usage when `--server-pid` was given.
    pub server: Option<ServerUsage>,
    /// Catch-up mode's own figures (`--catch-up-records`).
    pub catch_up: Option<CatchUp>,
}

/// What the catch-up mode measured: readers reading a pre-filled stream from
/// the start, one whole pass after another.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    /// Records in each stream (one pass reads them all).
    pub records_per_pass: u64,
    /// Passes that ended in the measured window, all readers.
    pub passes: u64,
    /// Of those, passes that missed, repeated or damaged a record.
    pub bad_passes: u64,
    /// Duration of one whole pass, µs.
    pub pass_us: Latency,
}

impl Report {
    /// Whether the run saw no loss, duplicate or damaged record.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.mismatched == 0
            && self.corrupt == 0
            && self.unexpected == 0
    }

    /// The run's two header lines: what ran against what. `secs` is the
    /// measured time (planned, when printed before the run).
    pub fn header(&self, secs: f64) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "weir-load {} -> {}  (run {})",
            self.transport, self.target, self.run_id
        );
        let st = &self.settings;
        let _ = writeln!(
            s,
            "  {}, {} x {} rec x {} B{}{}{}, {} per stream from {:?}, {:.1}s measured after {:.1}s warm-up",
            counted(st.streams, "stream"),
            counted(st.producers, "producer"),
            st.batch,
            st.record_size,
            st.rate.map(|r| format!(" @ {r:.0} rec/s")).unwrap_or_default(),
            if st.idempotent { ", idempotent" } else { "" },
            if st.inflight > 1 { format!(", {} in flight", st.inflight) } else { String::new() },
            counted(st.subscribers_per_stream, "subscriber"),
            st.from,
            secs,
            st.warmup_secs,
        );
        s
    }

    /// The human summary table (without the header when the run printed
    /// it before its progress lines).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if !self.header_shown {
            s.push_str(&self.header(self.measured_secs));
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:<12} {:>14} {:>10} {:>14}",
            "", "records/s", "MB/s", "total"
        );
        let _ = writeln!(
            s,
            "  {:<12} {:>14.0} {:>10.2} {:>14}",
            "appended", self.append_records_per_sec, self.append_mb_per_sec, self.appended
        );
        let _ = writeln!(
            s,
            "  {:<12} {:>14.0} {:>10.2} {:>14}",
            "delivered", self.deliver_records_per_sec, self.deliver_mb_per_sec, self.delivered
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "latency µs", "p50", "p90", "p99", "p99.9", "max", "samples"
        );
        let mut rows = vec![
            ("append ack", &self.ack_latency_us),
            ("end-to-end", &self.e2e_latency_us),
        ];
        if let Some(c) = &self.catch_up {
            // In catch-up mode the appends are the fill and nothing is live.
            rows = vec![("whole pass", &c.pass_us)];
        }
        for (name, l) in rows {
            let _ = writeln!(
                s,
                "  {:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
                name, l.p50, l.p90, l.p99, l.p999, l.max, l.count
            );
        }
        if let Some(c) = &self.catch_up {
            let _ = writeln!(
                s,
                "\n  catch-up: {} passes of {} records ({} bad); the appended row is the fill",
                c.passes, c.records_per_pass, c.bad_passes
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  check: lost {}  duplicates {}  mismatched {}  corrupt {}  unexpected {}  (of {} expected deliveries{})",
            self.lost,
            self.duplicates,
            self.mismatched,
            self.corrupt,
            self.unexpected,
            self.expected_deliveries,
            if self.drained { "" } else { "; drain grace elapsed" }
        );
        let _ = writeln!(
            s,
            "  errors: append {} (retries {})  subscribe {}",
            self.append_errors, self.append_retries, self.subscribe_errors
        );
        if let Some(e) = &self.last_error {
            let _ = writeln!(s, "  last error: {e}");
        }
        if let Some(u) = &self.server {
            let _ = writeln!(
                s,
                "  server pid {}: CPU {:.0}% of a core, RSS {:.1} MiB (max {:.1})",
                u.pid, u.cpu_percent, u.rss_mib_end, u.rss_mib_max
            );
        }
        s
    }
}

/// `n` and `noun`, plural unless `n` is 1 ("1 stream", "4 streams").
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod counted_tests {
    use super::counted;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(counted(1, "stream"), "1 stream");
        assert_eq!(counted(0, "producer"), "0 producers");
        assert_eq!(counted(4, "subscriber"), "4 subscribers");
    }
}
