//! Giving disk space back. A deleted stream's keys (and a trimmed
//! stream's dropped batches) go with range deletes, which RocksDB only
//! turns into free space when compaction rewrites the files under them,
//! and its write-ahead log files only go once every column family that
//! wrote into them has flushed. Left alone, that can take arbitrarily long
//! on a quiet server (a few weir-load runs left hundreds of MB behind). So
//! the commit thread queues each deleted range here, and the reaper thread
//! compacts the queued ranges and flushes every column family, at most
//! once per reaper tick: space comes back within about one
//! `expiry_interval` plus the compaction's own time, off the commit path.

use parking_lot::Mutex;
use rocksdb::{CompactOptions, FlushOptions, DB};

use crate::keys::ALL_CFS;

/// A column family and a `[lo, hi)` key range of it.
type Range = (&'static str, Vec<u8>, Vec<u8>);

/// Key ranges waiting for compaction.
#[derive(Default)]
pub(crate) struct Reclaim {
    ranges: Mutex<Vec<Range>>,
}

impl Reclaim {
    /// Queues `[lo, hi)` of column family `cf` (called after the range
    /// delete was written).
    pub fn queue(&self, cf: &'static str, lo: &[u8], hi: &[u8]) {
        self.ranges.lock().push((cf, lo.to_vec(), hi.to_vec()));
    }

    /// Compacts the queued ranges and flushes every column family, so the
    /// deleted data and the log files that held it can be removed.
    /// Returns how many ranges were compacted.
    pub fn run(&self, db: &DB) -> usize {
        let ranges = std::mem::take(&mut *self.ranges.lock());
        if ranges.is_empty() {
            return 0;
        }
        let mut opts = CompactOptions::default();
        // Rewrite the bottommost files too: that is where old data lives.
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for (cf, lo, hi) in &ranges {
            if let Some(h) = db.cf_handle(cf) {
                db.compact_range_cf_opt(&h, Some(lo), Some(hi), &opts);
            }
        }
        let mut flush = FlushOptions::default();
        flush.set_wait(true);
        for cf in ALL_CFS {
            if let Some(h) = db.cf_handle(cf) {
                if let Err(e) = db.flush_cf_opt(&h, &flush) {
                    tracing::warn!(cf, error = %e, "flush after a delete failed");
                }
            }
        }
        ranges.len()
    }
}
