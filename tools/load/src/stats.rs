//! Run-wide counters and the measurement window. Every event is stamped on
//! one clock (nanos since the run's epoch) and counted in the figures only
//! when it falls after warm-up and before the producers were told to stop;
//! latencies are kept in hdrhistograms per task and merged at the end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Largest latency kept exactly (µs); larger ones saturate to it.
const MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds (1 µs to 1 h), 3 significant digits.
/// Fixed bounds: merging auto-resized histograms skewed the percentiles.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid bounds")
}

/// Shared clock, window and counters.
pub struct Stats {
    epoch: Instant,
    warmup_nanos: u64,
    over: AtomicBool,
    /// Records acknowledged (whole run).
    pub appended: AtomicU64,
    /// Records acknowledged inside the window.
    pub measured_appended: AtomicU64,
    /// Records delivered to subscribers (whole run).
    pub delivered: AtomicU64,
    /// Records delivered inside the window.
    pub measured_delivered: AtomicU64,
    /// Append requests that failed (after retries).
    pub append_errors: AtomicU64,
    /// Append retries (idempotent producers only).
    pub append_retries: AtomicU64,
    /// Failed subscriber reads (each followed by a retry).
    pub subscribe_errors: AtomicU64,
    /// The most recent error text, for the summary.
    pub last_error: Mutex<Option<String>>,
    /// Merged append-ack latencies (µs).
    pub ack: Mutex<Histogram<u64>>,
    /// Merged end-to-end latencies (µs).
    pub e2e: Mutex<Histogram<u64>>,
}

impl Stats {
    /// A fresh run starting now, measuring after `warmup`.
    pub fn new(warmup: std::time::Duration) -> Self {
        Stats {
            epoch: Instant::now(),
            warmup_nanos: warmup.as_nanos() as u64,
            over: AtomicBool::new(false),
            appended: AtomicU64::new(0),
            measured_appended: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            measured_delivered: AtomicU64::new(0),
            append_errors: AtomicU64::new(0),
            append_retries: AtomicU64::new(0),
            subscribe_errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
            ack: Mutex::new(histogram()),
            e2e: Mutex::new(histogram()),
        }
    }

    /// The run's epoch (the shared clock's zero).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Nanos since the epoch.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether an event at `t` (nanos since the epoch) is measured.
    pub fn in_window(&self, t: u64) -> bool {
        t >= self.warmup_nanos && !self.over.load(Ordering::Relaxed)
    }

    /// Whether a record sent at `t` belongs to the measured records
    /// (its latency counts even when it is delivered during the drain).
    pub fn after_warmup(&self, t: u64) -> bool {
        t >= self.warmup_nanos
    }

    /// Closes the window (producers are being stopped).
    pub fn close_window(&self) {
        self.over.store(true, Ordering::Relaxed);
    }

    /// Keeps `e` as the last error seen.
    pub fn error(&self, e: &anyhow::Error) {
        *self.last_error.lock().expect("stats lock") = Some(format!("{e:#}"));
    }

    /// Merges a task's histogram into `into`.
    pub fn merge(into: &Mutex<Histogram<u64>>, h: &Histogram<u64>) {
        // Both auto-resize, so adding cannot fail.
        let _ = into.lock().expect("stats lock").add(h);
    }
}

/// Records `nanos` as microseconds (at least 1, so a sub-microsecond value
/// still counts).
pub fn record_us(h: &mut Histogram<u64>, nanos: u64) {
    record_us_n(h, nanos, 1);
}

/// [`record_us`] for `count` samples of the same value.
pub fn record_us_n(h: &mut Histogram<u64>, nanos: u64, count: u64) {
    h.saturating_record_n((nanos / 1000).max(1), count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_percentiles() {
        let mut a = histogram();
        for v in 1..=1000u64 {
            record_us(&mut a, v * 1000);
        }
        let total = Mutex::new(histogram());
        Stats::merge(&total, &a);
        let t = total.lock().unwrap();
        assert_eq!(t.len(), 1000);
        assert!((495..=505).contains(&t.value_at_quantile(0.5)));
    }
}
