//! The Prometheus text format (version 0.0.4) of the `/metrics` exposition,
//! for scrapers that ask for `text/plain` (older Prometheus servers,
//! `promtool check metrics`, most agents). `prometheus-client` writes
//! OpenMetrics only; the two formats differ, for Weir's metrics, in three
//! line-level ways, which this rewrites: a counter's `# HELP` and `# TYPE`
//! name the family (`weir_appends`) in OpenMetrics but the sample
//! (`weir_appends_total`) in 0.0.4, `# UNIT` lines do not exist in 0.0.4,
//! and neither does the closing `# EOF`. Samples are left as they are.

/// The exposition `openmetrics` in the 0.0.4 text format.
pub fn from_openmetrics(openmetrics: &str) -> String {
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut out = String::with_capacity(openmetrics.len());
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("# UNIT ") || *line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            is_counter(&lines[i..], name).then(|| format!("{tag}{name}_total {text}"))
        });
        match renamed {
            Some(l) => out.push_str(l.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Whether the family `name`, described from the first of `lines` on, is
/// a counter (its `# TYPE` line follows its `# HELP` line).
fn is_counter(lines: &[&str], name: &str) -> bool {
    let want = format!("# TYPE {name} counter");
    lines.iter().take(3).any(|l| *l == want)
}

/// Whether an `Accept` header asks for the 0.0.4 text format rather than
/// OpenMetrics (a scraper offering both gets OpenMetrics).
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("text/plain") && !a.contains("application/openmetrics-text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMETRICS: &str = "\
# HELP weir_appends append requests committed.
# TYPE weir_appends counter
weir_appends_total 3
# HELP weir_rocksdb_sst_bytes bytes of all RocksDB SST files.
# TYPE weir_rocksdb_sst_bytes gauge
# UNIT weir_rocksdb_sst_bytes bytes
weir_rocksdb_sst_bytes 10
# HELP weir_commit_write_seconds duration.
# TYPE weir_commit_write_seconds histogram
# UNIT weir_commit_write_seconds seconds
weir_commit_write_seconds_sum 0.5
weir_commit_write_seconds_count 1
weir_commit_write_seconds_bucket{le=\"+Inf\"} 1
# EOF
";

    #[test]
    fn counters_are_renamed_and_units_and_eof_dropped() {
        let text = from_openmetrics(OPENMETRICS);
        assert_eq!(
            text,
            "\
# HELP weir_appends_total append requests committed.
# TYPE weir_appends_total counter
weir_appends_total 3
# HELP weir_rocksdb_sst_bytes bytes of all RocksDB SST files.
# TYPE weir_rocksdb_sst_bytes gauge
weir_rocksdb_sst_bytes 10
# HELP weir_commit_write_seconds duration.
# TYPE weir_commit_write_seconds histogram
weir_commit_write_seconds_sum 0.5
weir_commit_write_seconds_count 1
weir_commit_write_seconds_bucket{le=\"+Inf\"} 1
"
        );
    }

    #[test]
    fn negotiation_prefers_openmetrics() {
        assert!(wanted(Some("text/plain;version=0.0.4")));
        assert!(!wanted(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wanted(Some("*/*")));
        assert!(!wanted(None));
    }
}
