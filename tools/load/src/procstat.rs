//! CPU time and memory of the server process, from `/proc/PID/stat` and
//! `/proc/PID/status` (Linux only; other systems report nothing).

use std::time::Instant;

/// Clock ticks per second of `/proc/PID/stat` times. `USER_HZ` is 100 on
/// every Linux architecture in use; reading it needs `sysconf`, which would
/// mean a libc dependency for one constant.
const TICKS_PER_SEC: f64 = 100.0;

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// User plus system CPU time, in ticks.
    pub cpu_ticks: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Reads the process now; `None` when it is gone or not readable.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        at: Instant::now(),
        cpu_ticks: utime + stime,
        rss_kib,
    })
}

/// CPU use between two samples, in percent of one core.
pub fn cpu_percent(a: &Sample, b: &Sample) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (b.cpu_ticks.saturating_sub(a.cpu_ticks)) as f64 / TICKS_PER_SEC / secs * 100.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0);
    }
}
