//! What one run does: the library-level description of a workload. The CLI
//! (`cli.rs`) builds one of these; tests build them directly.

use std::time::Duration;

use crate::target::Target;

/// Where subscribers start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartFrom {
    /// The first record of the stream.
    Start,
    /// The tail at the moment the subscriber starts.
    Now,
}

/// How HTTP subscribers follow a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveMode {
    /// `live=long-poll`, one request per chunk.
    LongPoll,
    /// `live=sse`, one held response of events.
    Sse,
}

/// How delivered records are matched with acknowledged ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckBy {
    /// By record offset: the server's offsets count records (Weir). Catches
    /// gaps, repeats and a wrong record at an offset.
    Offset,
    /// By the producer id and sequence embedded in each payload: for servers
    /// whose offsets are opaque (other Durable Streams servers).
    Identity,
}

/// A complete run description; `LoadConfig::new(target)` is the default
/// 10-second mixed benchmark.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Server and transport.
    pub target: Target,
    /// Client connections (transport instances) producers and subscribers share.
    pub connections: usize,
    /// Streams created for the run.
    pub streams: usize,
    /// Producer tasks, spread round-robin over streams and connections.
    pub producers: usize,
    /// Subscribers per stream.
    pub subscribers_per_stream: usize,
    /// Bytes per record (at least [`crate::record::HEADER_LEN`]).
    pub record_size: usize,
    /// Records per append request.
    pub batch: usize,
    /// Total target rate in records per second over all producers; `None` is unlimited.
    pub rate: Option<f64>,
    /// Producer idempotency (HTTP `Producer-Id/Epoch/Seq`); retries failed appends when on.
    pub idempotent: bool,
    /// Appends in flight per producer (1 whenever `idempotent`).
    pub inflight: usize,
    /// Where subscribers start.
    pub from: StartFrom,
    /// HTTP live mode.
    pub live: LiveMode,
    /// Loss and duplicate matching rule.
    pub check_by: CheckBy,
    /// Measured time (after warm-up).
    pub duration: Duration,
    /// Time at the start whose appends and deliveries are excluded from the figures.
    pub warmup: Duration,
    /// Stop producing after this many records in total (warm-up included).
    pub max_records: Option<u64>,
    /// Catch-up mode: fill each stream with this many records, then read it
    /// from the start again and again (see [`crate::catchup`]).
    pub catch_up_records: Option<u64>,
    /// How long subscribers may take to catch up after producers stop.
    pub drain: Duration,
    /// Server process to sample for CPU and RSS.
    pub server_pid: Option<u32>,
    /// Print one progress line per second.
    pub progress: bool,
    /// Delete the run's streams at the end.
    pub cleanup: bool,
}

impl LoadConfig {
    /// The default mixed benchmark against `target`: 4 streams, 4 producers
    /// of 10-record batches of 256 bytes, one live subscriber per stream,
    /// 2 s warm-up then 10 s measured.
    pub fn new(target: Target) -> Self {
        LoadConfig {
            target,
            connections: 4,
            streams: 4,
            producers: 4,
            subscribers_per_stream: 1,
            record_size: 256,
            batch: 10,
            rate: None,
            idempotent: false,
            inflight: 1,
            from: StartFrom::Now,
            live: LiveMode::LongPoll,
            check_by: CheckBy::Offset,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            max_records: None,
            catch_up_records: None,
            drain: Duration::from_secs(5),
            server_pid: None,
            progress: false,
            cleanup: true,
        }
    }

    /// Checks the combination of settings; the message names the bad one.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.streams == 0 {
            bail!("--streams must be at least 1");
        }
        if self.producers == 0 && self.subscribers_per_stream == 0 {
            bail!("nothing to do: no producers and no subscribers");
        }
        if self.record_size < crate::record::HEADER_LEN {
            bail!(
                "--record-size must be at least {} bytes (the timing header)",
                crate::record::HEADER_LEN
            );
        }
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        if self.producers >= crate::record::MAX_PRODUCERS {
            bail!("--producers must be below {}", crate::record::MAX_PRODUCERS);
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("--rate must be a positive number of records per second");
            }
        }
        if let Some(n) = self.catch_up_records {
            if n == 0 || self.subscribers_per_stream == 0 || self.duration.is_zero() {
                bail!(
                    "catch-up mode needs --catch-up-records, --subscribers and --duration above 0"
                );
            }
        }
        if self.duration.is_zero() && self.max_records.is_none() {
            bail!("--duration must be positive (or give --records)");
        }
        Ok(())
    }
}
