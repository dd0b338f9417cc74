//! Layouts of the `touch` and `templates` column families.
//!
//! `touch`, per stream `sid`:
//! - `sid ‖ 0x00` → the [`Checkpoint`]: the next source offset the processor
//!   reads, the journal's epoch and generation, and the flush sequence;
//! - `sid ‖ 0x01 ‖ seq` → one flushed journal bucket, `seq` a big-endian
//!   u64 that only grows (generations are u32 and wrap; the sequence orders
//!   the retained buckets without ambiguity).
//!
//! `templates`: `sid ‖ template id` (both big-endian) → a template row.
//!
//! A flushed bucket and the checkpoint that covers its touches are written in
//! one batch, so after a crash the journal never claims a generation whose
//! touches the processor would not derive again.

use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use super::journal::FlushedBucket;
use crate::error::{Error, Result};
use crate::keys::{CF_TEMPLATES, CF_TOUCH};
use crate::templates::row::TemplateRow;

const CHECKPOINT_TAG: u8 = 0x00;
const BUCKET_TAG: u8 = 0x01;
const CHECKPOINT_VERSION: u8 = 1;

/// The processor's durable position and the journal's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// The next source offset to derive touches from (`processed_through + 1`).
    pub next: u64,
    /// The journal epoch; kept across restarts so cursors stay valid.
    pub epoch: u64,
    /// The generation of the last flushed bucket.
    pub generation: u32,
    /// The sequence number the next flushed bucket is stored under.
    pub next_seq: u64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; 29] {
        let mut b = [0u8; 29];
        b[0] = CHECKPOINT_VERSION;
        b[1..9].copy_from_slice(&self.next.to_le_bytes());
        b[9..17].copy_from_slice(&self.epoch.to_le_bytes());
        b[17..21].copy_from_slice(&self.generation.to_le_bytes());
        b[21..29].copy_from_slice(&self.next_seq.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Result<Checkpoint> {
        if b.len() != 29 || b[0] != CHECKPOINT_VERSION {
            return Err(Error::Corrupt(format!(
                "touch checkpoint of {} bytes (version {:?})",
                b.len(),
                b.first()
            )));
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Checkpoint {
            next: u64_at(1),
            epoch: u64_at(9),
            generation: u32::from_le_bytes(b[17..21].try_into().expect("4 bytes")),
            next_seq: u64_at(21),
        })
    }
}

fn checkpoint_key(sid: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&sid.to_be_bytes());
    k[8] = CHECKPOINT_TAG;
    k
}

fn bucket_key(sid: u64, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&sid.to_be_bytes());
    k[8] = BUCKET_TAG;
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn template_key(sid: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&sid.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("column families are created at open")
}

/// Stages a stream's checkpoint.
pub(crate) fn put_checkpoint(db: &DB, wb: &mut WriteBatch, sid: u64, c: &Checkpoint) {
    wb.put_cf(cf(db, CF_TOUCH), checkpoint_key(sid), c.encode());
}

/// Stages the removal of everything touch keeps for a stream (touch turned
/// off): the checkpoint and the buckets. Templates stay, as in Prisma.
pub(crate) fn delete_touch_state(db: &DB, wb: &mut WriteBatch, sid: u64) {
    let (lo, hi) = crate::keys::stream_range(sid);
    wb.delete_range_cf(cf(db, CF_TOUCH), lo, hi);
}

/// A stream's checkpoint, if touch was ever enabled on it.
pub(crate) fn load_checkpoint(db: &DB, sid: u64) -> Result<Option<Checkpoint>> {
    match db.get_cf(cf(db, CF_TOUCH), checkpoint_key(sid))? {
        Some(v) => Ok(Some(Checkpoint::decode(&v)?)),
        None => Ok(None),
    }
}

/// Stages one flushed bucket under `seq`.
pub(crate) fn put_bucket(db: &DB, wb: &mut WriteBatch, sid: u64, seq: u64, b: &FlushedBucket) {
    wb.put_cf(cf(db, CF_TOUCH), bucket_key(sid, seq), b.encode());
}

/// Stages the removal of buckets with sequence below `seq`.
pub(crate) fn trim_buckets(db: &DB, wb: &mut WriteBatch, sid: u64, below_seq: u64) {
    wb.delete_range_cf(
        cf(db, CF_TOUCH),
        bucket_key(sid, 0),
        bucket_key(sid, below_seq),
    );
}

/// Every retained bucket of a stream, oldest first, with its sequence and
/// stored size.
pub(crate) fn load_buckets(db: &DB, sid: u64) -> Result<Vec<(u64, usize, FlushedBucket)>> {
    let lo = bucket_key(sid, 0);
    let hi = bucket_key(sid, u64::MAX);
    let mut out = Vec::new();
    for item in db.iterator_cf(
        cf(db, CF_TOUCH),
        IteratorMode::From(&lo, Direction::Forward),
    ) {
        let (k, v) = item?;
        if k[..] > hi[..] || k.len() != 17 || k[..9] != lo[..9] {
            break;
        }
        let seq = u64::from_be_bytes(k[9..].try_into().expect("8 bytes"));
        let b = FlushedBucket::decode(&v)
            .ok_or_else(|| Error::Corrupt(format!("touch bucket {seq} of stream {sid}")))?;
        out.push((seq, v.len(), b));
    }
    Ok(out)
}

/// Stages one template row.
pub(crate) fn put_template(db: &DB, wb: &mut WriteBatch, sid: u64, row: &TemplateRow) {
    wb.put_cf(
        cf(db, CF_TEMPLATES),
        template_key(sid, row.id),
        row.encode(),
    );
}

/// Every template row of a stream, in id order.
pub(crate) fn load_templates(db: &DB, sid: u64) -> Result<Vec<TemplateRow>> {
    let (lo, _) = crate::keys::stream_range(sid);
    let mut out = Vec::new();
    for item in db.iterator_cf(
        cf(db, CF_TEMPLATES),
        IteratorMode::From(&lo, Direction::Forward),
    ) {
        let (k, v) = item?;
        if k.len() != 16 || k[..8] != lo[..] {
            break;
        }
        let row = TemplateRow::decode(&v)
            .map_err(|e| Error::Corrupt(format!("template row of stream {sid}: {e}")))?;
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_garbage() {
        let c = Checkpoint {
            next: 42,
            epoch: 0xdead_beef_0011_2233,
            generation: u32::MAX,
            next_seq: 7,
        };
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
        assert!(Checkpoint::decode(&c.encode()[..28]).is_err());
        let mut bad = c.encode();
        bad[0] = 9;
        assert!(Checkpoint::decode(&bad).is_err());
    }

    #[test]
    fn bucket_keys_sort_by_sequence_after_the_checkpoint() {
        assert!(checkpoint_key(3)[..] < bucket_key(3, 0)[..]);
        assert!(bucket_key(3, 255)[..] < bucket_key(3, 256)[..]);
        assert!(bucket_key(3, u64::MAX)[..] < checkpoint_key(4)[..]);
    }
}
