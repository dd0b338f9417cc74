//! The 16-bucket latency histogram of `live.tick` (spec §3.5). Quantiles
//! report a bucket's upper bound, so `p95LatencyMs` is always one of the
//! bounds (or 0 when empty), never an interpolated value.

use crate::touch::defaults::LATENCY_BOUNDS_MS;

const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// Counts of samples per latency bucket (15 bounded buckets + overflow).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample: the first bucket whose bound is ≥ `ms`, else overflow.
    pub fn record(&mut self, ms: u64) {
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.counts[i] += 1;
    }

    /// Number of samples.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Per-bucket counts, overflow last.
    pub fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// Upper bound of the first bucket whose running count reaches
    /// `ceil(total·q)`; 0 when empty; overflow reports the last bound.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let last = LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1];
        // Same f64 arithmetic as Prisma, so e.g. 20·0.95 rounds identically.
        let target = (total as f64 * q).ceil();
        let mut acc = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            acc += c;
            if acc as f64 >= target {
                return LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(last);
            }
        }
        last
    }

    /// Median bucket bound.
    pub fn p50(&self) -> u64 {
        self.quantile(0.5)
    }

    /// 95th-percentile bucket bound.
    pub fn p95(&self) -> u64 {
        self.quantile(0.95)
    }

    /// 99th-percentile bucket bound.
    pub fn p99(&self) -> u64 {
        self.quantile(0.99)
    }

    /// Empties every bucket.
    pub fn reset(&mut self) {
        self.counts = [0; BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_reports_zero() {
        let h = LatencyHistogram::new();
        assert_eq!((h.p50(), h.p95(), h.p99()), (0, 0, 0));
    }

    #[test]
    fn samples_land_in_first_bound_at_or_above() {
        let mut h = LatencyHistogram::new();
        for ms in [0, 1, 2, 3, 5, 6, 120_000, 120_001, 1_000_000] {
            h.record(ms);
        }
        let c = h.counts();
        assert_eq!(c[0], 2); // 0 and 1 → bound 1
        assert_eq!(c[1], 1); // 2 → bound 2
        assert_eq!(c[2], 2); // 3, 5 → bound 5
        assert_eq!(c[3], 1); // 6 → bound 10
        assert_eq!(c[14], 1); // 120000 → bound 120000
        assert_eq!(c[15], 2); // overflow
        assert_eq!(h.total(), 9);
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let mut h = LatencyHistogram::new();
        // 19 fast samples and 1 slow one: ceil(20·0.95) = 19 → still fast.
        for _ in 0..19 {
            h.record(3);
        }
        h.record(700);
        assert_eq!(h.p50(), 5);
        assert_eq!(h.p95(), 5);
        assert_eq!(h.p99(), 1_000);
        // One more slow sample: ceil(21·0.95) = 20 → the 1000 bucket.
        h.record(999);
        assert_eq!(h.p95(), 1_000);
    }

    #[test]
    fn overflow_reports_last_bound_and_reset_empties() {
        let mut h = LatencyHistogram::new();
        h.record(500_000);
        assert_eq!(h.p95(), 120_000);
        h.reset();
        assert_eq!(h.total(), 0);
        assert_eq!(h.p95(), 0);
    }

    #[test]
    fn single_sample_quantiles() {
        let mut h = LatencyHistogram::new();
        h.record(42);
        assert_eq!((h.p50(), h.p95(), h.p99()), (50, 50, 50));
    }
}
