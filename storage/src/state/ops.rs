//! Records to key-value changes. Derivation runs on the appending caller's
//! thread (strict: a bad State Protocol message rejects the request) or, for
//! history, in a builder or verifier (lenient: a record that is not a valid
//! change leaves the state alone, which is also what the strict path would
//! have made of it had the stream been plain when it was written).

use bytes::Bytes;

use super::kv::entity_key;
use super::protocol::{self, Control, Message};
use super::StateMode;
use crate::error::{Error, Result};
use crate::record::Record;

/// One change to a stream's state, at record `at` (relative to the offset
/// the caller writes from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Put { at: u64, key: Vec<u8>, value: Bytes },
    Delete { at: u64, key: Vec<u8> },
    Reset { at: u64 },
}

/// The changes of one append, derived for `mode`.
#[derive(Debug, Clone)]
pub(crate) struct Ops {
    pub mode: StateMode,
    pub ops: Vec<Op>,
}

/// Validates and derives the changes of `records` for a stream in `mode`.
pub(crate) fn derive(mode: StateMode, records: &[Record]) -> Result<Option<Ops>> {
    match mode {
        StateMode::None => {
            if records.iter().any(|r| r.tombstone) {
                return Err(Error::Invalid(
                    "tombstones are only meaningful on keyed state streams".into(),
                ));
            }
            Ok(None)
        }
        StateMode::Keyed => {
            let ops = records
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    keyed_op(i as u64, r.key.as_deref(), r.tombstone, || {
                        r.payload.clone()
                    })
                })
                .collect();
            Ok(Some(Ops { mode, ops }))
        }
        StateMode::StateProtocol => {
            if records.iter().any(|r| r.tombstone) {
                return Err(Error::Invalid(
                    "tombstones are only meaningful on keyed state streams \
                     (State Protocol streams delete with operation \"delete\")"
                        .into(),
                ));
            }
            let mut ops = Vec::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                // The first bad message's text, without an index: what
                // Prisma Streams answers, and what its clients match on.
                let msg = protocol::parse(&r.payload).map_err(Error::Invalid)?;
                if let Some(op) = protocol_op(i as u64, &msg, |v| share(&r.payload, v)) {
                    ops.push(op);
                }
            }
            Ok(Some(Ops { mode, ops }))
        }
    }
}

/// Derives changes from stored records `(key, payload, tombstone)` whose
/// offsets are their positions in the iterator plus the caller's base,
/// skipping records that are not valid changes.
pub(crate) fn derive_lenient<'a>(
    mode: StateMode,
    records: impl Iterator<Item = (Option<&'a [u8]>, &'a [u8], bool)>,
) -> Vec<Op> {
    records
        .enumerate()
        .filter_map(|(i, (key, payload, tombstone))| {
            lenient_op(
                mode,
                i as u64,
                key,
                payload,
                tombstone,
                Bytes::copy_from_slice,
            )
        })
        .collect()
}

/// The change of one stored record (or none, as in [`derive_lenient`]),
/// with its value sliced out of `payload` instead of copied.
pub(crate) fn lenient_op_shared(
    mode: StateMode,
    at: u64,
    key: Option<&[u8]>,
    payload: &Bytes,
    tombstone: bool,
) -> Option<Op> {
    lenient_op(mode, at, key, payload, tombstone, |v| share(payload, v))
}

fn lenient_op(
    mode: StateMode,
    at: u64,
    key: Option<&[u8]>,
    payload: &[u8],
    tombstone: bool,
    value_of: impl FnOnce(&[u8]) -> Bytes,
) -> Option<Op> {
    match mode {
        StateMode::None => None,
        StateMode::Keyed => keyed_op(at, key, tombstone, || value_of(payload)),
        StateMode::StateProtocol => protocol::parse(payload)
            .ok()
            .and_then(|m| protocol_op(at, &m, value_of)),
    }
}

fn keyed_op(
    at: u64,
    key: Option<&[u8]>,
    tombstone: bool,
    value: impl FnOnce() -> Bytes,
) -> Option<Op> {
    let key = key?.to_vec();
    Some(if tombstone {
        Op::Delete { at, key }
    } else {
        Op::Put {
            at,
            key,
            value: value(),
        }
    })
}

/// The op of a parsed message; `value_of` turns the value's JSON text into
/// stored bytes (a slice of the shared payload, or a copy).
fn protocol_op(at: u64, msg: &Message<'_>, value_of: impl FnOnce(&[u8]) -> Bytes) -> Option<Op> {
    match msg {
        Message::Control(Control::Reset) => Some(Op::Reset { at }),
        Message::Control(_) => None,
        Message::Change {
            entity,
            key,
            op,
            value,
        } => {
            let k = entity_key(entity, key);
            match (op, value) {
                (protocol::Op::Delete, _) => Some(Op::Delete { at, key: k }),
                (_, Some(v)) => Some(Op::Put {
                    at,
                    key: k,
                    value: value_of(v.get().as_bytes()),
                }),
                (_, None) => None,
            }
        }
    }
}

/// `part` as a slice of `whole` when it lies inside it (no copy), else a copy.
fn share(whole: &Bytes, part: &[u8]) -> Bytes {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    if p >= w && p + part.len() <= w + whole.len() {
        whole.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}
