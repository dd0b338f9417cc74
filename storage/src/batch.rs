//! The stored and forwarded form of appended records: one contiguous buffer
//! per append with an index of record ends, so a reader can start in the
//! middle, and the same bytes can go to many subscribers without copying.
//!
//! Layout, little-endian:
//! ```text
//! u8  version (1)
//! u32 count            (>= 1)
//! u64 append_time_ms
//! u32 end[count]       end of record i within the data region
//! data                 record i = u32 key_tag | key | payload
//!                      key_tag bits 0..31: 0 = no key, otherwise key length + 1
//!                      key_tag bit 31: tombstone (only with a key)
//! ```

use std::any::Any;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::record::{Record, RecordRef};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 8;
/// Bit of a record's key tag marking a tombstone; keys are far shorter than 2^31.
pub(crate) const TOMBSTONE_BIT: u32 = 1 << 31;

/// Encodes `records` (at least one) with their commit time into one stored value.
pub fn encode(records: &[Record], append_time_ms: u64) -> Vec<u8> {
    let data_len: usize = records
        .iter()
        .map(|r| 4 + r.key.as_ref().map_or(0, |k| k.len()) + r.payload.len())
        .sum();
    let mut out = Vec::with_capacity(HEADER + 4 * records.len() + data_len);
    out.push(VERSION);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&append_time_ms.to_le_bytes());
    let mut end = 0u32;
    for r in records {
        end += (4 + r.key.as_ref().map_or(0, |k| k.len()) + r.payload.len()) as u32;
        out.extend_from_slice(&end.to_le_bytes());
    }
    for r in records {
        let mut tag = r.key.as_ref().map_or(0, |k| k.len() as u32 + 1);
        if r.tombstone && tag != 0 {
            tag |= TOMBSTONE_BIT;
        }
        out.extend_from_slice(&tag.to_le_bytes());
        if let Some(k) = &r.key {
            out.extend_from_slice(k);
        }
        out.extend_from_slice(&r.payload);
    }
    out
}

/// Encoded size of `records`, used to bound commit groups before encoding.
pub fn encoded_len(records: &[Record]) -> usize {
    HEADER
        + records
            .iter()
            .map(|r| 8 + r.key.as_ref().map_or(0, |k| k.len()) + r.payload.len())
            .sum::<usize>()
}

/// Where a value derived from a stored batch is kept once computed, shared by
/// every clone and slice of the batch (see [`Batch::memo`]).
type MemoSlot = Arc<OnceLock<Arc<dyn Any + Send + Sync>>>;

/// A validated, cheaply clonable view of a contiguous run of records of one
/// stored batch. Cloning and slicing never copy record bytes.
#[derive(Clone)]
pub struct Batch {
    raw: Bytes,
    base_offset: u64,
    count: u32,
    start: u32,
    end: u32,
    memo: Option<MemoSlot>,
}

/// Two batches are equal when they view the same records; the memo is a cache.
impl PartialEq for Batch {
    fn eq(&self, other: &Batch) -> bool {
        self.raw == other.raw
            && self.base_offset == other.base_offset
            && self.count == other.count
            && self.start == other.start
            && self.end == other.end
    }
}

impl Eq for Batch {}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("first_offset", &self.first_offset())
            .field("len", &self.len())
            .finish()
    }
}

impl Batch {
    /// Validates a stored value whose first record has offset `base_offset`.
    pub fn decode(base_offset: u64, raw: Bytes) -> Result<Batch> {
        let bad = |why: &str| Error::Corrupt(format!("batch at offset {base_offset}: {why}"));
        if raw.len() < HEADER {
            return Err(bad("shorter than its header"));
        }
        if raw[0] != VERSION {
            return Err(bad("unknown version"));
        }
        let count = u32::from_le_bytes(raw[1..5].try_into().expect("4 bytes"));
        if count == 0 {
            return Err(bad("no records"));
        }
        let index_len = (count as usize)
            .checked_mul(4)
            .ok_or_else(|| bad("count overflows"))?;
        let data_start = HEADER
            .checked_add(index_len)
            .filter(|&s| s <= raw.len())
            .ok_or_else(|| bad("index runs past the value"))?;
        let data_len = raw.len() - data_start;
        let mut prev = 0usize;
        for i in 0..count as usize {
            let at = HEADER + 4 * i;
            let end = u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes")) as usize;
            if end < prev + 4 || end > data_len {
                return Err(bad("record end out of order or out of bounds"));
            }
            let tag_at = data_start + prev;
            let raw_tag = u32::from_le_bytes(raw[tag_at..tag_at + 4].try_into().expect("4 bytes"));
            let tag = raw_tag & !TOMBSTONE_BIT;
            if raw_tag & TOMBSTONE_BIT != 0 && tag == 0 {
                return Err(bad("tombstone without a key"));
            }
            if tag != 0 && (tag as usize - 1) > end - prev - 4 {
                return Err(bad("record key longer than the record"));
            }
            prev = end;
        }
        if prev != data_len {
            return Err(bad("trailing bytes after the last record"));
        }
        Ok(Batch {
            raw,
            base_offset,
            count,
            start: 0,
            end: count,
            memo: None,
        })
    }

    /// Wraps a value this process just produced with [`encode`], skipping
    /// validation (the commit thread's hot path).
    pub(crate) fn from_encoded(base_offset: u64, raw: Bytes) -> Batch {
        let count = u32::from_le_bytes(raw[1..5].try_into().expect("encoded header"));
        Batch {
            raw,
            base_offset,
            count,
            start: 0,
            end: count,
            memo: None,
        }
    }

    /// Gives the batch a memo slot that its clones share, so a value derived
    /// from it (its state changes) is computed once however many
    /// subscribers receive it. The commit thread does this for state
    /// streams' batches only: plain streams pay nothing.
    pub(crate) fn with_memo(mut self) -> Batch {
        self.memo = Some(Arc::default());
        self
    }

    /// The value `init` derives from this stored batch, computed at most once
    /// for all clones when the batch has a memo slot (else every call
    /// computes it). `init` must depend only on the stored records.
    pub(crate) fn memo<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let Some(slot) = &self.memo else {
            return Arc::new(init());
        };
        let mut init = Some(init);
        let stored = slot.get_or_init(|| Arc::new((init.take().expect("first use"))()));
        match Arc::clone(stored).downcast::<T>() {
            Ok(t) => t,
            // Another type is memoized (so `init` was not run): derive
            // without keeping it.
            Err(_) => Arc::new((init.take().expect("not run"))()),
        }
    }

    /// Every record of the stored batch, visible or not.
    pub(crate) fn whole(&self) -> Batch {
        let mut b = self.clone();
        b.start = 0;
        b.end = b.count;
        b
    }

    /// Offset of the first visible record.
    pub fn first_offset(&self) -> u64 {
        self.base_offset + self.start as u64
    }

    /// Offset after the last visible record.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.end as u64
    }

    /// Number of visible records.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether no record is visible (never true for batches the engine hands out).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Commit time of the append that wrote this batch.
    pub fn append_time_ms(&self) -> u64 {
        u64::from_le_bytes(self.raw[5..13].try_into().expect("8 bytes"))
    }

    fn data_start(&self) -> usize {
        HEADER + 4 * self.count as usize
    }

    fn end_of(&self, i: u32) -> usize {
        let at = HEADER + 4 * i as usize;
        u32::from_le_bytes(self.raw[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    /// Byte span of stored record `i` (an index into the whole stored batch).
    fn span(&self, i: u32) -> (usize, usize) {
        let from = if i == 0 { 0 } else { self.end_of(i - 1) };
        let ds = self.data_start();
        (ds + from, ds + self.end_of(i))
    }

    /// (key range, payload range, tombstone) of stored record `i` within `raw`.
    fn parts(&self, i: u32) -> (Option<(usize, usize)>, (usize, usize), bool) {
        let (from, to) = self.span(i);
        let raw_tag = u32::from_le_bytes(self.raw[from..from + 4].try_into().expect("4 bytes"));
        let tag = raw_tag & !TOMBSTONE_BIT;
        let tombstone = raw_tag & TOMBSTONE_BIT != 0;
        if tag == 0 {
            (None, (from + 4, to), false)
        } else {
            let kend = from + 4 + (tag as usize - 1);
            (Some((from + 4, kend)), (kend, to), tombstone)
        }
    }

    /// The `i`-th visible record, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<RecordRef<'_>> {
        if i >= self.len() {
            return None;
        }
        let idx = self.start + i as u32;
        let (key, (ps, pe), tombstone) = self.parts(idx);
        Some(RecordRef {
            offset: self.base_offset + idx as u64,
            append_time_ms: self.append_time_ms(),
            key: key.map(|(ks, ke)| &self.raw[ks..ke]),
            payload: &self.raw[ps..pe],
            tombstone,
        })
    }

    /// The `i`-th visible record's payload as shared bytes (no copy).
    pub fn payload_bytes(&self, i: usize) -> Option<Bytes> {
        if i >= self.len() {
            return None;
        }
        let (_, (ps, pe), _) = self.parts(self.start + i as u32);
        Some(self.raw.slice(ps..pe))
    }

    /// Iterates the visible records in offset order.
    pub fn iter(&self) -> impl Iterator<Item = RecordRef<'_>> + '_ {
        (0..self.len()).map(move |i| self.get(i).expect("index in range"))
    }

    /// Bytes of the visible records in the stored layout (tags, keys, payloads).
    pub fn data_len(&self) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.span(self.end - 1).1 - self.span(self.start).0
    }

    /// The records at or after `offset`, or `None` if the batch ends before it.
    pub fn skip_to(&self, offset: u64) -> Option<Batch> {
        if offset >= self.next_offset() {
            return None;
        }
        let mut b = self.clone();
        if offset > self.first_offset() {
            b.start = (offset - self.base_offset) as u32;
        }
        Some(b)
    }

    /// The first `n` visible records (at least one is kept).
    pub fn truncate(&self, n: usize) -> Batch {
        let mut b = self.clone();
        b.end = b.start + n.clamp(1, self.len()) as u32;
        b
    }

    /// The longest prefix whose record bytes fit `budget`, keeping at least one record.
    pub fn fit(&self, budget: usize) -> Batch {
        if self.data_len() <= budget {
            return self.clone();
        }
        let first = self.span(self.start).0;
        let mut n = 1;
        while n < self.len() && self.span(self.start + n as u32).1 - first <= budget {
            n += 1;
        }
        self.truncate(n)
    }

    /// The whole stored value this batch views, for forwarding without re-encoding.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Offset of the stored value's first record, visible or not.
    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Whether every record of the stored value is visible.
    pub(crate) fn is_whole(&self) -> bool {
        self.start == 0 && self.end == self.count
    }

    /// Index range (start, end) of the visible records within [`Batch::raw`].
    pub fn visible(&self) -> (u32, u32) {
        (self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn recs() -> Vec<Record> {
        vec![
            Record::new(&b"alpha"[..]),
            Record::keyed(&b"k1"[..], &b""[..]),
            Record::keyed(&b""[..], &b"gamma"[..]),
        ]
    }

    #[test]
    fn encode_decode_preserves_records() {
        let raw = encode(&recs(), 77);
        assert_eq!(raw.len(), encoded_len(&recs()));
        let b = Batch::decode(10, Bytes::from(raw)).unwrap();
        assert_eq!(Batch::from_encoded(10, Bytes::from(encode(&recs(), 77))), b);
        assert_eq!(b.len(), 3);
        assert_eq!((b.first_offset(), b.next_offset()), (10, 13));
        let v: Vec<_> = b.iter().collect();
        assert_eq!(v[0].payload, b"alpha");
        assert_eq!(v[0].key, None);
        assert_eq!(v[1].key, Some(&b"k1"[..]));
        assert_eq!(v[1].payload, b"");
        assert_eq!(v[2].key, Some(&b""[..]));
        assert_eq!(v[2].offset, 12);
        assert_eq!(v[2].append_time_ms, 77);
    }

    #[test]
    fn slicing_keeps_offsets() {
        let b = Batch::decode(10, Bytes::from(encode(&recs(), 1))).unwrap();
        let s = b.skip_to(11).unwrap();
        assert_eq!(s.first_offset(), 11);
        assert_eq!(s.get(0).unwrap().key, Some(&b"k1"[..]));
        assert!(b.skip_to(13).is_none());
        assert_eq!(b.skip_to(0).unwrap().first_offset(), 10);
        let t = b.truncate(1);
        assert_eq!(t.next_offset(), 11);
        assert_eq!(b.fit(1).len(), 1);
        assert_eq!(b.fit(usize::MAX).len(), 3);
        assert_eq!(b.payload_bytes(2).unwrap(), Bytes::from_static(b"gamma"));
    }

    #[test]
    fn tombstones_round_trip_and_need_a_key() {
        let recs = vec![
            Record::tombstone(&b"gone"[..]),
            Record::keyed(&b"k"[..], &b"v"[..]),
        ];
        let b = Batch::decode(0, Bytes::from(encode(&recs, 1))).unwrap();
        let v: Vec<_> = b.iter().collect();
        assert!(v[0].tombstone && !v[1].tombstone);
        assert_eq!(v[0].key, Some(&b"gone"[..]));
        // A tombstone flag on a keyless record is damage, not data.
        let mut raw = encode(&[Record::new(&b"x"[..])], 1);
        let tag_at = HEADER + 4;
        raw[tag_at..tag_at + 4].copy_from_slice(&TOMBSTONE_BIT.to_le_bytes());
        assert!(Batch::decode(0, Bytes::from(raw)).is_err());
    }

    #[test]
    fn rejects_damaged_values() {
        let raw = encode(&recs(), 1);
        for cut in 0..raw.len() {
            assert!(Batch::decode(0, Bytes::copy_from_slice(&raw[..cut])).is_err());
        }
        let mut bad = raw.clone();
        bad[HEADER] = 0xff; // first end beyond data
        assert!(Batch::decode(0, Bytes::from(bad)).is_err());
        let mut zero = raw;
        zero[1..5].copy_from_slice(&0u32.to_le_bytes());
        assert!(Batch::decode(0, Bytes::from(zero)).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Batch::decode(0, Bytes::from(raw));
        }

        #[test]
        fn round_trip(items in proptest::collection::vec(
            (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
             proptest::collection::vec(any::<u8>(), 0..32)), 1..20)) {
            let records: Vec<Record> = items.iter().map(|(k, p)| Record {
                key: k.clone().map(Bytes::from), payload: Bytes::from(p.clone()), tombstone: false }).collect();
            let b = Batch::decode(5, Bytes::from(encode(&records, 3))).unwrap();
            prop_assert_eq!(b.len(), records.len());
            for (r, got) in records.iter().zip(b.iter()) {
                prop_assert_eq!(r.key.as_deref(), got.key);
                prop_assert_eq!(&r.payload[..], got.payload);
            }
        }
    }
}
