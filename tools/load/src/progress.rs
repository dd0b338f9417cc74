//! The once-a-second progress line (only on a terminal) and the server
//! usage sampling that shares its tick.

use std::sync::atomic::Ordering;

use crate::procstat::{self, Sample};
use crate::stats::Stats;

/// Counter values at the previous tick, to print per-second rates.
#[derive(Default)]
pub struct Progress {
    appended: u64,
    delivered: u64,
    /// Server sample at the start of the window.
    pub server_start: Option<Sample>,
    /// Latest server sample.
    pub server_last: Option<Sample>,
    /// Largest RSS seen, KiB.
    pub server_rss_max: u64,
}

impl Progress {
    /// Takes a server sample (when a pid was given).
    pub fn sample_server(&mut self, pid: Option<u32>) {
        if let Some(s) = pid.and_then(procstat::sample) {
            self.server_rss_max = self.server_rss_max.max(s.rss_kib);
            self.server_last = Some(s);
        }
    }

    /// The line for the second that just ended.
    pub fn line(&mut self, stats: &Stats, secs: u64, warming: bool, record_size: usize) -> String {
        let a = stats.appended.load(Ordering::Relaxed);
        let d = stats.delivered.load(Ordering::Relaxed);
        let (da, dd) = (a - self.appended, d - self.delivered);
        self.appended = a;
        self.delivered = d;
        let errors = stats.append_errors.load(Ordering::Relaxed)
            + stats.subscribe_errors.load(Ordering::Relaxed);
        let mb = |n: u64| n as f64 * record_size as f64 / 1e6;
        let mut line = format!(
            "{secs:>4}s{} append {da:>9} rec/s {:>8.2} MB/s | deliver {dd:>9} rec/s {:>8.2} MB/s | errors {errors}",
            if warming { " (warm-up)" } else { "" },
            mb(da),
            mb(dd),
        );
        if let (Some(s), Some(first)) = (&self.server_last, &self.server_start) {
            line.push_str(&format!(
                " | server CPU {:.0}% RSS {:.0} MiB",
                procstat::cpu_percent(first, s),
                s.rss_kib as f64 / 1024.0
            ));
        }
        line
    }
}
