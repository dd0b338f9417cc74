//! Scheduling-lag sampler behind `process.eventLoopLagMs*` (spec §3.6).
//!
//! Prisma measures how late a 100 ms JS interval fires; Weir's shell calls
//! [`LoopLagSampler::sample`] from a 100 ms timer task, so the same numbers
//! describe its scheduler delay. One sampler per process, shared by every
//! stream's tick of one flush.

use crate::touch::defaults::{LOOP_LAG_INTERVAL_MS, LOOP_LAG_MAX_DEBT_INTERVALS};

/// Lateness of a periodic timer, aggregated between two ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopLagSampler {
    expected_ms: u64,
    max_ms: u64,
    sum_ms: u64,
    samples: u64,
}

impl LoopLagSampler {
    /// Starts sampling; the first sample is expected one period after `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        LoopLagSampler {
            expected_ms: now_ms + LOOP_LAG_INTERVAL_MS,
            max_ms: 0,
            sum_ms: 0,
            samples: 0,
        }
    }

    /// Records one timer firing at `now_ms`.
    pub fn sample(&mut self, now_ms: u64) {
        let lag = now_ms.saturating_sub(self.expected_ms);
        self.max_ms = self.max_ms.max(lag);
        self.sum_ms = self.sum_ms.saturating_add(lag);
        self.samples += 1;
        self.expected_ms += LOOP_LAG_INTERVAL_MS;
        // After a long pause, forgive the debt instead of reporting every
        // following sample as late.
        if self.expected_ms + LOOP_LAG_MAX_DEBT_INTERVALS * LOOP_LAG_INTERVAL_MS < now_ms {
            self.expected_ms = now_ms + LOOP_LAG_INTERVAL_MS;
        }
    }

    /// `(eventLoopLagMsMax, eventLoopLagMsAvg)` since the last take, then
    /// clears them (the schedule itself is kept). Avg is 0 without samples.
    pub fn take(&mut self) -> (u64, f64) {
        let avg = if self.samples > 0 {
            self.sum_ms as f64 / self.samples as f64
        } else {
            0.0
        };
        let out = (self.max_ms, avg);
        self.max_ms = 0;
        self.sum_ms = 0;
        self.samples = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_time_samples_report_zero() {
        let mut s = LoopLagSampler::new(1_000);
        for i in 1..=5 {
            s.sample(1_000 + 100 * i);
        }
        assert_eq!(s.take(), (0, 0.0));
        assert_eq!(s.take(), (0, 0.0));
    }

    #[test]
    fn late_samples_give_max_and_avg() {
        let mut s = LoopLagSampler::new(0);
        s.sample(100); // on time
        s.sample(230); // expected 200 → 30
        s.sample(300); // expected 300 → 0
        s.sample(460); // expected 400 → 60
        assert_eq!(s.take(), (60, 22.5));
        // Schedule continues at 500.
        s.sample(510);
        assert_eq!(s.take(), (10, 10.0));
    }

    #[test]
    fn early_samples_are_not_negative() {
        let mut s = LoopLagSampler::new(0);
        s.sample(50);
        assert_eq!(s.take(), (0, 0.0));
    }

    #[test]
    fn long_pause_resets_the_schedule() {
        let mut s = LoopLagSampler::new(0);
        // Expected 100, fired at 2000: lag 1900. Next expected would be 200,
        // which is more than 500 ms behind 2000 → reset to 2100.
        s.sample(2_000);
        s.sample(2_100);
        assert_eq!(s.take(), (1_900, 950.0));
        // Exactly 500 ms behind is not reset (strict comparison).
        let mut s = LoopLagSampler::new(0);
        s.sample(700); // lag 600; expected 200 = 700 − 500 → kept
        s.sample(710); // expected 200 → lag 510
        assert_eq!(s.take(), (600, 555.0));
    }
}
