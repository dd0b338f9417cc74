//! Process figures for `/metrics`, read from `/proc/self` at scrape time:
//! resident memory, CPU time, open file descriptors and threads (the
//! standard `process_*` names, under Weir's prefix).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Encodes the process figures; on systems without `/proc` it encodes none.
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// The figures, or `None` where `/proc/self` cannot be read.
struct Figures {
    resident_bytes: u64,
    cpu_seconds: f64,
    open_fds: u64,
    threads: u64,
}

fn read() -> Option<Figures> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // (3-based numbering of proc(5)) utime 14, stime 15, num_threads 20, rss 24.
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    let page = u64::try_from(page).ok()?;
    Some(Figures {
        resident_bytes: field(24)? * page,
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks as f64,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
        threads: field(20)?,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(enc.encode_descriptor(
            "process_cpu",
            "user and system CPU time of the process",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory",
                "resident memory of the process",
                Some(Unit::Bytes),
                p.resident_bytes,
            ),
            (
                "process_open_fds",
                "open file descriptors",
                None,
                p.open_fds,
            ),
            ("process_threads", "threads of the process", None, p.threads),
        ];
        for (name, help, unit, v) in gauges {
            let m = ConstGauge::new(v as i64);
            m.encode(enc.encode_descriptor(name, help, unit.as_ref(), m.metric_type())?)?;
        }
        Ok(())
    }
}
