//! Engine counters for operators: what the commit thread did, counted in
//! units (records, bytes, groups), plus fixed-bucket histograms of group
//! size and write duration. Plain atomics, updated once per commit group,
//! so keeping them costs nothing measurable; the network layer formats them
//! (see `weir_net::http` `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the group-size histogram, in requests per group.
pub const GROUP_SIZE_BOUNDS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Upper bounds of the write-duration histogram, in seconds.
pub const WRITE_SECONDS_BOUNDS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

/// A histogram with fixed bounds and atomic bucket counts.
#[derive(Debug)]
pub(crate) struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    counts: [AtomicU64; N],
    over: AtomicU64,
    /// Sum of observations, in millionths.
    sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub fn new(bounds: &'static [f64; N]) -> Self {
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        match self.bounds.iter().position(|b| v <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(N + 1);
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            buckets.push((*b, cumulative));
        }
        cumulative += self.over.load(Ordering::Relaxed);
        buckets.push((f64::INFINITY, cumulative));
        HistogramSnapshot {
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: cumulative,
            buckets,
        }
    }
}

/// A histogram as read at one instant: cumulative `(upper bound, count)`
/// buckets ending with `+Inf`, the observation count and their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of every observation.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// Cumulative buckets, the last one `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

/// The commit thread's counters.
#[derive(Debug)]
pub(crate) struct Stats {
    pub appends: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub groups: AtomicU64,
    pub failed_groups: AtomicU64,
    pub group_size: Histogram<11>,
    pub write_seconds: Histogram<12>,
    /// Records handed to followers' readers (every door and in-process).
    pub delivered: AtomicU64,
    /// Followers that overflowed their live queue and went back to storage.
    pub fallbacks: AtomicU64,
    /// State subscriptions open now.
    pub state_subscriptions: AtomicU64,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            appends: AtomicU64::new(0),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            groups: AtomicU64::new(0),
            failed_groups: AtomicU64::new(0),
            group_size: Histogram::new(&GROUP_SIZE_BOUNDS),
            write_seconds: Histogram::new(&WRITE_SECONDS_BOUNDS),
            delivered: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            state_subscriptions: AtomicU64::new(0),
        }
    }
}

/// What [`crate::Engine::stats`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStats {
    /// Append requests committed (duplicates and refusals excluded).
    pub appends: u64,
    /// Records committed.
    pub records: u64,
    /// Stored record bytes committed (keys, payloads and per-record framing).
    pub bytes: u64,
    /// Commit groups written.
    pub groups: u64,
    /// Commit groups whose write failed.
    pub failed_groups: u64,
    /// Requests per commit group.
    pub group_size: HistogramSnapshot,
    /// Duration of each group's RocksDB write (with its fsync in sync mode), seconds.
    pub write_seconds: HistogramSnapshot,
    /// Requests waiting for the commit thread.
    pub commit_queue: u64,
    /// Open streams.
    pub streams: u64,
    /// Streams that keep key-value state.
    pub state_streams: u64,
    /// RocksDB: bytes of all memtables.
    pub memtable_bytes: u64,
    /// RocksDB: bytes of all SST files.
    pub sst_bytes: u64,
    /// RocksDB: estimated bytes compaction still has to rewrite.
    pub pending_compaction_bytes: u64,
    /// RocksDB: whether writes are being stopped or delayed now (0 or 1).
    pub write_stalled: u64,
    /// RocksDB: bytes held by the block cache.
    pub block_cache_bytes: u64,
    /// Records handed to followers' readers, over every door and in-process.
    pub records_delivered: u64,
    /// Followers that fell behind their live queue and went back to storage.
    pub follower_fallbacks: u64,
    /// Followers in streams' live sets now, and filtered state
    /// subscriptions in their filter's group (`state/fanout.rs`).
    pub live_followers: u64,
    /// State subscriptions open now.
    pub state_subscriptions: u64,
    /// 1 while commit writes fail (a full disk or another storage error).
    pub write_faulted: u64,
}
