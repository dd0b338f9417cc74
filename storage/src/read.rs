//! Catch-up reads from the `wal` column family. A read is bounded by the
//! stream's published tail (never exposing a group before it is acknowledged)
//! and by a byte budget, and never takes the commit thread's path.

use bytes::Bytes;
use rocksdb::{ReadOptions, DB};

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::keys::{parse_wal_key, wal_key, CF_WAL};

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
/// are gathered (at least one record when any exists).
pub(crate) fn read_range(
    db: &DB,
    sid: u64,
    from: u64,
    tail: u64,
    budget: usize,
) -> Result<Vec<Batch>> {
    let mut out = Vec::new();
    if from >= tail {
        return Ok(out);
    }
    let cf = db
        .cf_handle(CF_WAL)
        .ok_or_else(|| Error::Corrupt("missing wal column family".into()))?;
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(wal_key(sid, 0).to_vec());
    opts.set_iterate_upper_bound(wal_key(sid, tail).to_vec());
    let mut it = db.raw_iterator_cf_opt(&cf, opts);
    // The batch holding `from` starts at or before it.
    it.seek_for_prev(wal_key(sid, from));
    if !it.valid() {
        it.seek(wal_key(sid, from));
    }
    let mut used = 0usize;
    let mut expect = from;
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        let (ksid, base) =
            parse_wal_key(k).ok_or_else(|| Error::Corrupt("malformed wal key".into()))?;
        if ksid != sid {
            break;
        }
        let batch = Batch::decode(base, Bytes::copy_from_slice(v))?;
        if let Some(b) = batch.skip_to(expect) {
            if b.first_offset() != expect {
                return Err(Error::Corrupt(format!(
                    "stream {sid}: gap in wal at offset {expect}"
                )));
            }
            // The first record of a response always goes out (progress);
            // after that a batch contributes only what fits the budget.
            let room = budget.saturating_sub(used);
            if !out.is_empty() && b.truncate(1).data_len() > room {
                break;
            }
            let b = b.fit(room);
            used += b.data_len();
            expect = b.next_offset();
            let partial = b.next_offset() < batch.next_offset();
            out.push(b);
            if used >= budget || partial || expect >= tail {
                break;
            }
        }
        it.next();
    }
    it.status()?;
    if out.is_empty() {
        return Err(Error::Corrupt(format!(
            "stream {sid}: no batch covers offset {from} below tail {tail}"
        )));
    }
    Ok(out)
}

/// The tail offset of stream `sid` as recorded in the `wal` column family.
pub(crate) fn recover_tail(db: &DB, sid: u64) -> Result<u64> {
    let cf = db
        .cf_handle(CF_WAL)
        .ok_or_else(|| Error::Corrupt("missing wal column family".into()))?;
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(wal_key(sid, 0).to_vec());
    opts.set_iterate_upper_bound(wal_key(sid.wrapping_add(1), 0).to_vec());
    let mut it = db.raw_iterator_cf_opt(&cf, opts);
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
