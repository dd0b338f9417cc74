//! Layout of the `kv` column family.
//!
//! ```text
//! sid ‖ 0x00                 marker: u64 applied-through, u8 building, u64 generation, u8 mode (LE)
//! sid ‖ 0x01 ‖ state key     row:    u64 offset that wrote it (LE) ‖ value bytes
//! ```
//!
//! A keyed stream's state key is the record key. A State Protocol stream's
//! is `type` with every 0x00 byte escaped as 0x00 0xFF, then 0x00 0x01, then
//! `key`: the terminator sorts below any escaped byte, so rows order by
//! type and then key, and one type's rows are one contiguous range.

use bytes::Bytes;
use rocksdb::{ColumnFamily, WriteBatch};

use super::ops::Op;
use super::StateMode;
use crate::error::{Error, Result};

const MARKER_TAG: u8 = 0x00;
const ROW_TAG: u8 = 0x01;

/// The identity of one row of a stream's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    /// A keyed stream's record key.
    Keyed(Bytes),
    /// A State Protocol stream's (`type`, `key`).
    Entity {
        /// The message's `type`.
        entity: String,
        /// The message's `key`.
        key: String,
    },
}

impl StateKey {
    /// The row's key bytes: the record key, or the State Protocol `key`.
    pub fn key_bytes(&self) -> &[u8] {
        match self {
            StateKey::Keyed(k) => k,
            StateKey::Entity { key, .. } => key.as_bytes(),
        }
    }

    /// The State Protocol `type`, if any.
    pub fn entity(&self) -> Option<&str> {
        match self {
            StateKey::Keyed(_) => None,
            StateKey::Entity { entity, .. } => Some(entity),
        }
    }

    /// The encoded state key (without the stream prefix).
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            StateKey::Keyed(k) => k.to_vec(),
            StateKey::Entity { entity, key } => entity_key(entity, key),
        }
    }

    /// Decodes an encoded state key of a stream in `protocol` mode or not.
    pub(crate) fn decode(b: &[u8], protocol: bool) -> Result<StateKey> {
        if !protocol {
            return Ok(StateKey::Keyed(Bytes::copy_from_slice(b)));
        }
        let (entity, key) =
            split_entity_key(b).ok_or_else(|| Error::Corrupt("malformed state key".into()))?;
        let text = |v: Vec<u8>| {
            String::from_utf8(v).map_err(|_| Error::Corrupt("non-UTF-8 state key".into()))
        };
        Ok(StateKey::Entity {
            entity: text(entity)?,
            key: text(key.to_vec())?,
        })
    }
}

/// One row of a stream's state as of a read's fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    /// The row's identity.
    pub key: StateKey,
    /// The value: a keyed record's payload, or a State Protocol `value` as JSON text.
    pub value: Bytes,
    /// Offset of the record that wrote this value.
    pub offset: u64,
}

/// The encoded state key of a State Protocol (`type`, `key`).
pub(crate) fn entity_key(entity: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(entity.len() + key.len() + 2);
    push_escaped(&mut out, entity);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The encoded prefix of every row of one State Protocol `type`.
pub(crate) fn entity_prefix(entity: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(entity.len() + 2);
    push_escaped(&mut out, entity);
    out
}

fn push_escaped(out: &mut Vec<u8>, entity: &str) {
    for &b in entity.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

fn split_entity_key(b: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut entity = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0 {
            match b.get(i + 1)? {
                0xFF => entity.push(0),
                0x01 => return Some((entity, &b[i + 2..])),
                _ => return None,
            }
            i += 2;
        } else {
            entity.push(b[i]);
            i += 1;
        }
    }
    None
}

/// The marker key of stream `sid`.
pub(crate) fn marker_key(sid: u64) -> [u8; 9] {
    let mut k = [MARKER_TAG; 9];
    k[..8].copy_from_slice(&sid.to_be_bytes());
    k
}

/// The `kv` key of one row.
pub(crate) fn row_key(sid: u64, state_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + state_key.len());
    push_row_key(&mut k, sid, state_key);
    k
}

/// Replaces `out` with the `kv` key of one row.
fn push_row_key(out: &mut Vec<u8>, sid: u64, state_key: &[u8]) {
    out.clear();
    out.extend_from_slice(&sid.to_be_bytes());
    out.push(ROW_TAG);
    out.extend_from_slice(state_key);
}

/// The half-open range of every row key of stream `sid`.
pub(crate) fn rows_range(sid: u64) -> ([u8; 9], [u8; 9]) {
    let mut lo = [ROW_TAG; 9];
    lo[..8].copy_from_slice(&sid.to_be_bytes());
    let mut hi = lo;
    hi[8] = ROW_TAG + 1;
    (lo, hi)
}

/// The state key part of a row key of stream `sid`, or `None` if it is not one.
pub(crate) fn state_key_of(sid: u64, row_key: &[u8]) -> Option<&[u8]> {
    if row_key.len() < 9 || row_key[..8] != sid.to_be_bytes() || row_key[8] != ROW_TAG {
        return None;
    }
    Some(&row_key[9..])
}

/// Encodes a row's value (`write_ops` does the same into a reused buffer).
#[cfg(test)]
pub(crate) fn encode_value(offset: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(value);
    v
}

/// Splits a stored row value into (offset, value bytes).
pub(crate) fn decode_value(v: &[u8]) -> Result<(u64, &[u8])> {
    if v.len() < 8 {
        return Err(Error::Corrupt(
            "state row value shorter than its offset".into(),
        ));
    }
    let off = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
    Ok((off, &v[8..]))
}

/// The applied-through marker of a state stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub applied: u64,
    pub building: bool,
    pub generation: u64,
    /// The mode the rows were written for, so a reader decodes keys right
    /// even if the mode changes under it.
    pub mode: StateMode,
}

impl Marker {
    pub fn encode(&self) -> [u8; 18] {
        let mut b = [0u8; 18];
        b[..8].copy_from_slice(&self.applied.to_le_bytes());
        b[8] = self.building as u8;
        b[9..17].copy_from_slice(&self.generation.to_le_bytes());
        b[17] = self.mode.code();
        b
    }

    pub fn decode(b: &[u8]) -> Result<Marker> {
        let bad = || Error::Corrupt("malformed state marker".into());
        let b: &[u8; 18] = b.try_into().map_err(|_| bad())?;
        Ok(Marker {
            applied: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            building: b[8] != 0,
            generation: u64::from_le_bytes(b[9..17].try_into().expect("8 bytes")),
            mode: StateMode::from_code(b[17]).ok_or_else(bad)?,
        })
    }
}

/// Writes `ops` of records whose offsets are `base + op.at`.
pub(crate) fn write_ops(wb: &mut WriteBatch, cf: &ColumnFamily, sid: u64, base: u64, ops: &[Op]) {
    // The batch copies keys and values, so two scratch buffers serve every
    // op (this runs on the commit thread, once per changed key).
    let (mut k, mut v) = (Vec::with_capacity(64), Vec::with_capacity(256));
    for op in ops {
        match op {
            Op::Put { at, key, value } => {
                push_row_key(&mut k, sid, key);
                v.clear();
                v.extend_from_slice(&(base + at).to_le_bytes());
                v.extend_from_slice(value);
                wb.put_cf(cf, &k, &v);
            }
            Op::Delete { key, .. } => {
                push_row_key(&mut k, sid, key);
                wb.delete_cf(cf, &k);
            }
            Op::Reset { .. } => {
                let (lo, hi) = rows_range(sid);
                wb.delete_range_cf(cf, lo, hi);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_keys_order_by_type_then_key() {
        let a = entity_key("a", "zzz");
        let ab = entity_key("a\0b", "");
        let b = entity_key("b", "");
        let ax = entity_key("ab", "");
        assert!(a < ab && ab < ax && ax < b, "{a:?} {ab:?} {ax:?} {b:?}");
        assert!(a.starts_with(&entity_prefix("a")));
        assert!(!ax.starts_with(&entity_prefix("a")));
        let k = StateKey::Entity {
            entity: "t\0x".into(),
            key: "k\0".into(),
        };
        assert_eq!(StateKey::decode(&k.encode(), true).unwrap(), k);
        assert!(StateKey::decode(b"no-terminator", true).is_err());
    }

    #[test]
    fn row_keys_stay_inside_the_stream_range() {
        let (lo, hi) = rows_range(7);
        let k = row_key(7, &[0xFF; 20]);
        assert!(lo.as_slice() <= k.as_slice() && k.as_slice() < hi.as_slice());
        assert!(marker_key(7).as_slice() < lo.as_slice());
        assert_eq!(state_key_of(7, &k), Some(&[0xFF; 20][..]));
        assert_eq!(state_key_of(8, &k), None);
        let m = Marker {
            applied: 9,
            building: true,
            generation: 3,
            mode: StateMode::Keyed,
        };
        assert_eq!(Marker::decode(&m.encode()).unwrap(), m);
        assert_eq!(
            decode_value(&encode_value(5, b"v")).unwrap(),
            (5, &b"v"[..])
        );
    }
}
