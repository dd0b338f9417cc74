//! Catch-up reads from the `wal` column family. A read is bounded by the
//! stream's published tail (never exposing a group before it is acknowledged)
//! and by a byte budget, and never takes the commit thread's path.

use bytes::Bytes;
use rocksdb::{DBRawIteratorWithThreadMode, ReadOptions, DB};

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::keys::{parse_wal_key, wal_key, CF_WAL};
use crate::shared::Shared;

/// What one read returns.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Batches in offset order, contiguous from the requested offset.
    pub batches: Vec<Batch>,
    /// The offset after the last returned record (the requested offset if none).
    pub next_offset: u64,
    /// The stream's tail when the read started.
    pub tail: u64,
    /// Whether the stream was closed when the read started.
    pub closed: bool,
}

impl ReadResult {
    /// Whether the read reached the tail (nothing more to read right now).
    pub fn up_to_date(&self) -> bool {
        self.next_offset >= self.tail
    }

    /// Number of records returned.
    pub fn record_count(&self) -> usize {
        self.batches.iter().map(|b| b.len()).sum()
    }
}

/// Reads batches of stream `sid` in `[from, tail)` until `budget` record bytes
/// are gathered (at least one record when any exists). Batches in the file
/// cache come from there, the rest from RocksDB.
pub(crate) fn read_range(
    shared: &Shared,
    sid: u64,
    from: u64,
    tail: u64,
    budget: usize,
) -> Result<Vec<Batch>> {
    let mut page = Page {
        out: Vec::new(),
        used: 0,
        expect: from,
        tail,
        budget,
    };
    if from >= tail {
        return Ok(page.out);
    }
    // Cached batches first, without even opening a RocksDB iterator.
    let (db, cache) = (&shared.db, &shared.file_cache);
    while let Some(batch) = cache.lookup(sid, page.expect) {
        if !page.take(sid, &batch)? {
            return Ok(page.out);
        }
    }
    let cf = db
        .cf_handle(CF_WAL)
        .ok_or_else(|| Error::Corrupt("missing wal column family".into()))?;
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(wal_key(sid, 0).to_vec());
    opts.set_iterate_upper_bound(wal_key(sid, tail).to_vec());
    let mut it = db.raw_iterator_cf_opt(&cf, opts);
    // The batch holding `expect` starts at or before it.
    it.seek_for_prev(wal_key(sid, page.expect));
    if !it.valid() {
        it.seek(wal_key(sid, page.expect));
    }
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        let (ksid, base) =
            parse_wal_key(k).ok_or_else(|| Error::Corrupt("malformed wal key".into()))?;
        if ksid != sid {
            break;
        }
        // A batch cached after the page left the cache is still taken from
        // there: the copy out of RocksDB is what the cache saves.
        let batch = match cache.lookup_exact(sid, base, v.len()) {
            Some(b) => b,
            None => Batch::decode(base, Bytes::copy_from_slice(v))?,
        };
        if !page.take(sid, &batch)? {
            break;
        }
        it.next();
    }
    it.status()?;
    if page.out.is_empty() {
        return Err(Error::Corrupt(format!(
            "stream {sid}: no batch covers offset {from} below tail {tail}"
        )));
    }
    Ok(page.out)
}

/// A response being gathered: which offset comes next and how much of the
/// byte budget is spent.
struct Page {
    out: Vec<Batch>,
    used: usize,
    expect: u64,
    tail: u64,
    budget: usize,
}

impl Page {
    /// Adds what `batch` holds from the expected offset on, as far as the
    /// budget allows; false once the page is complete.
    fn take(&mut self, sid: u64, batch: &Batch) -> Result<bool> {
        let Some(b) = batch.skip_to(self.expect) else {
            return Ok(true); // wholly before the offset: the one found by seek_for_prev
        };
        if b.first_offset() != self.expect {
            return Err(Error::Corrupt(format!(
                "stream {sid}: gap in wal at offset {}",
                self.expect
            )));
        }
        // The first record of a response always goes out (progress);
        // after that a batch contributes only what fits the budget.
        let room = self.budget.saturating_sub(self.used);
        if !self.out.is_empty() && b.truncate(1).data_len() > room {
            return Ok(false);
        }
        let b = b.fit(room);
        self.used += b.data_len();
        self.expect = b.next_offset();
        let partial = b.next_offset() < batch.next_offset();
        self.out.push(b);
        Ok(!(self.used >= self.budget || partial || self.expect >= self.tail))
    }
}

/// An iterator over every `wal` key of stream `sid`, unpositioned.
pub(crate) fn stream_wal(db: &DB, sid: u64) -> Result<DBRawIteratorWithThreadMode<'_, DB>> {
    let cf = db
        .cf_handle(CF_WAL)
        .ok_or_else(|| Error::Corrupt("missing wal column family".into()))?;
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(wal_key(sid, 0).to_vec());
    opts.set_iterate_upper_bound(wal_key(sid.wrapping_add(1), 0).to_vec());
    Ok(db.raw_iterator_cf_opt(&cf, opts))
}

/// The tail offset of stream `sid` as recorded in the `wal` column family.
pub(crate) fn recover_tail(db: &DB, sid: u64) -> Result<u64> {
    let mut it = stream_wal(db, sid)?;
    it.seek_to_last();
    let tail = match (it.key(), it.value()) {
        (Some(k), Some(v)) if it.valid() => {
            let (_, base) =
                parse_wal_key(k).ok_or_else(|| Error::Corrupt("malformed wal key".into()))?;
            Batch::decode(base, Bytes::copy_from_slice(v))?.next_offset()
        }
        _ => 0,
    };
    it.status()?;
    Ok(tail)
}
