//! Record batches on the wire. A batch travels in exactly the layout the
//! engine stores (`weir_storage::Batch`, stored layout version 1): one
//! contiguous buffer with an index of record ends. So a server sends a
//! committed batch to any number of subscribers as a 16-byte descriptor plus
//! the shared stored bytes, never re-encoding or copying a payload, and a
//! receiver validates it with the engine's own bounds-checked decoder.
//!
//! ```text
//! stored layout, little-endian:
//!   u8  layout version (1)
//!   u32 count                 >= 1
//!   u64 append_time_ms
//!   u32 end[count]            end of record i within the data region
//!   data                      record i = u32 key_tag | key | payload
//!                             key_tag 0 = no key, otherwise key length + 1;
//!                             bit 31 set: a tombstone (only with a key)
//! Data body:
//!   u64 base_offset           offset of stored record 0
//!   u32 start, u32 end        the visible records are [start, end) of the batch
//!   stored layout
//! ```
//!
//! If the engine ever changes its stored layout, the golden tests of this
//! module fail, and the protocol version must change with it.

use bytes::{BufMut, Bytes, BytesMut};
use weir_storage::{Batch, Record};

use super::encode::EncodeError;
use super::frame::MIN_LENGTH;

/// Bytes before the index in the stored layout: version, count, append time.
pub const LAYOUT_HEADER_LEN: usize = 1 + 4 + 8;

/// Bytes of the descriptor that precedes the stored layout in a `Data` body.
pub const DATA_HEAD_LEN: usize = 8 + 4 + 4;

const LAYOUT_VERSION: u8 = 1;

/// One record as the layout writer sees it: optional key, payload, tombstone.
type Parts<'a> = (Option<&'a [u8]>, &'a [u8], bool);

/// Bit of a key tag that marks a tombstone (the engine's stored layout).
pub const TOMBSTONE_BIT: u32 = 1 << 31;

/// Length of the stored layout of `records`, or `None` when its data region
/// would not fit the layout's 32-bit record ends.
fn layout_len<'a>(records: impl Iterator<Item = Parts<'a>>) -> Option<usize> {
    let mut count = 0usize;
    let mut data = 0usize;
    for (key, payload, _) in records {
        count += 1;
        data = data
            .checked_add(4 + key.map_or(0, <[u8]>::len))?
            .checked_add(payload.len())?;
    }
    if data > u32::MAX as usize {
        return None;
    }
    Some(LAYOUT_HEADER_LEN + 4 * count + data)
}

/// Appends the stored layout of `records` (at least one, length checked by
/// [`layout_len`]) to `out`; two passes, so the index precedes the data.
fn write_layout<'a, I>(out: &mut BytesMut, records: I, append_time_ms: u64)
where
    I: Iterator<Item = Parts<'a>> + Clone,
{
    out.put_u8(LAYOUT_VERSION);
    out.put_u32_le(records.clone().count() as u32);
    out.put_u64_le(append_time_ms);
    let mut end = 0u32;
    for (key, payload, _) in records.clone() {
        end += (4 + key.map_or(0, <[u8]>::len) + payload.len()) as u32;
        out.put_u32_le(end);
    }
    for (key, payload, tombstone) in records {
        match key {
            None => out.put_u32_le(0),
            Some(k) => {
                let mark = if tombstone { TOMBSTONE_BIT } else { 0 };
                out.put_u32_le((k.len() as u32 + 1) | mark);
                out.put_slice(k);
            }
        }
        out.put_slice(payload);
    }
}

fn parts_of(records: &[Record]) -> impl Iterator<Item = Parts<'_>> + Clone {
    records
        .iter()
        .map(|r| (r.key.as_deref(), &r.payload[..], r.tombstone))
}

fn parts_of_batch(batch: &Batch) -> impl Iterator<Item = Parts<'_>> + Clone {
    (0..batch.len()).map(move |i| {
        let r = batch.get(i).expect("index below len");
        (r.key, r.payload, r.tombstone)
    })
}

/// Builds a batch of `records` whose first record has offset `base_offset`,
/// as a client or a test would before sending it; fails on no records or
/// on more record bytes than the layout can index.
pub fn build(
    base_offset: u64,
    append_time_ms: u64,
    records: &[Record],
) -> Result<Batch, EncodeError> {
    if records.is_empty() {
        return Err(EncodeError::EmptyBatch);
    }
    let len = layout_len(parts_of(records)).ok_or(EncodeError::BatchTooLarge)?;
    let mut out = BytesMut::with_capacity(len);
    write_layout(&mut out, parts_of(records), append_time_ms);
    Ok(Batch::decode(base_offset, out.freeze()).expect("the layout writer produces valid batches"))
}

/// Copies the visible records of `batch` into a fresh batch that holds only
/// them (same offsets and append time). Costs one copy of the visible bytes.
pub fn compact(batch: &Batch) -> Batch {
    let len =
        layout_len(parts_of_batch(batch)).expect("a sub-range of a valid batch fits the layout");
    let mut out = BytesMut::with_capacity(len);
    write_layout(&mut out, parts_of_batch(batch), batch.append_time_ms());
    Batch::decode(batch.first_offset(), out.freeze())
        .expect("the layout writer produces valid batches")
}

/// The batch to put in a `Data` frame for a peer with frame limit
/// `max_frame`: `batch` itself (zero-copy) when its stored bytes fit and at
/// least half of them are visible, otherwise a compact copy of the visible
/// records, so a read that starts inside a large batch does not ship the
/// records before it. Fails when even the visible records exceed the limit;
/// callers first trim with `Batch::fit` to a budget below the limit.
pub fn for_wire(batch: &Batch, max_frame: u32) -> Result<Batch, EncodeError> {
    let room = (max_frame as usize).saturating_sub(MIN_LENGTH as usize + DATA_HEAD_LEN);
    let whole = batch.raw().len();
    let visible = LAYOUT_HEADER_LEN + 4 * batch.len() + batch.data_len();
    if whole <= room && whole <= 2 * visible {
        return Ok(batch.clone());
    }
    if visible > room {
        return Err(EncodeError::FrameTooLarge {
            length: visible + MIN_LENGTH as usize + DATA_HEAD_LEN,
            max_frame,
        });
    }
    Ok(compact(batch))
}

/// The visible records of `batch` as engine records whose keys and payloads
/// share the batch's buffer (no copy), e.g. to hand a decoded `Append` to
/// `Engine::append`.
pub fn records(batch: &Batch) -> Vec<Record> {
    let raw = batch.raw();
    batch
        .iter()
        .map(|r| Record {
            key: r.key.map(|k| raw.slice_ref(k)),
            payload: raw.slice_ref(r.payload),
            tombstone: r.tombstone,
        })
        .collect()
}

/// Length `records` add to an `Append` body (0 for none), or `None` when
/// the layout cannot index them.
pub(crate) fn append_len(records: &[Record]) -> Option<usize> {
    if records.is_empty() {
        Some(0)
    } else {
        layout_len(parts_of(records))
    }
}

/// Writes the records of an `Append` (nothing for none). The append time
/// is 0: the server stamps its own commit time.
pub(crate) fn write_append(out: &mut BytesMut, records: &[Record]) {
    if !records.is_empty() {
        write_layout(out, parts_of(records), 0);
    }
}

/// Decodes the records of an `Append` from the rest of its body.
pub(crate) fn read_append(rest: Bytes) -> Result<Vec<Record>, String> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let batch = Batch::decode(0, rest).map_err(|e| e.to_string())?;
    Ok(records(&batch))
}

/// Writes the descriptor of a `Data` body and returns the stored bytes that
/// follow it, shared with `batch`.
pub(crate) fn write_data(out: &mut BytesMut, batch: &Batch) -> Result<Bytes, EncodeError> {
    if batch.is_empty() {
        return Err(EncodeError::EmptyBatch);
    }
    let (start, end) = batch.visible();
    out.put_u64_le(batch.first_offset() - start as u64);
    out.put_u32_le(start);
    out.put_u32_le(end);
    Ok(batch.raw().clone())
}

/// Decodes a `Data` body: validates the stored layout and the visible range
/// and returns the view of the visible records (sharing `body`).
pub(crate) fn read_data(body: Bytes) -> Result<Batch, String> {
    if body.len() < DATA_HEAD_LEN {
        return Err("data body shorter than its descriptor".into());
    }
    let base = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let start = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
    let end = u32::from_le_bytes(body[12..16].try_into().expect("4 bytes"));
    let whole = Batch::decode(base, body.slice(DATA_HEAD_LEN..)).map_err(|e| e.to_string())?;
    if base.checked_add(whole.len() as u64).is_none() {
        return Err("batch offsets overflow u64".into());
    }
    if start >= end || end as usize > whole.len() {
        return Err(format!(
            "visible range {start}..{end} is empty or outside the batch of {} records",
            whole.len()
        ));
    }
    let from = whole
        .skip_to(base + start as u64)
        .ok_or("visible range outside the batch")?;
    Ok(from.truncate((end - start) as usize))
}
