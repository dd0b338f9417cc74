//! The one place that knows how control messages become bytes: bincode 2.0.1
//! with its standard configuration (little-endian, variable-length integers)
//! and a decode limit.
//!
//! bincode is unmaintained (RUSTSEC-2025-0141) and 2.0.1 is its last working
//! release (3.0.0 is an empty tombstone), so it is pinned in the workspace and
//! nothing else in the crate imports it: a bincode-compatible crate can
//! replace it by changing this file alone. PROTOCOL.md describes the encoding
//! itself, so peers in other languages never depend on this crate.

use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest encoded control message, in bytes. It bounds what a claimed
/// string or list length may make the decoder allocate, and it keeps every
/// control frame below the smallest frame limit a peer may announce.
pub const MAX_CONTROL_LEN: usize = 32 << 10;

const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_CONTROL_LEN>,
> = bincode::config::standard().with_limit::<MAX_CONTROL_LEN>();

/// Limit of the version-2 bodies that carry state rows (`GetResult`,
/// `ScanPage`, `Snapshot`, `Change`): values are record payloads, so these
/// are bounded by the frame limit rather than by [`MAX_CONTROL_LEN`].
const ROWS_CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 1 << 30 }>,
> = bincode::config::standard().with_limit::<{ 1 << 30 }>();

/// Appends the encoding of a row-bearing body to `out` (no control limit:
/// the encoder checks the frame limit).
pub(crate) fn encode_rows<T: Serialize>(value: &T, out: &mut BytesMut) -> Result<(), ControlError> {
    bincode::serde::encode_into_std_write(value, &mut out.writer(), ROWS_CONFIG)
        .map_err(|e| ControlError::Codec(e.to_string()))?;
    Ok(())
}

/// Decodes exactly one row-bearing body filling all of `body`. Claimed
/// lengths are checked against the bytes present before anything is kept.
pub(crate) fn decode_rows<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(body, ROWS_CONFIG)
        .map_err(|e| ControlError::Codec(e.to_string()))?;
    if used != body.len() {
        return Err(ControlError::Codec(format!(
            "{} trailing bytes after the message",
            body.len() - used
        )));
    }
    Ok(value)
}

/// Appends the encoding of `value` to `out`; fails with the encoded length
/// when it exceeds [`MAX_CONTROL_LEN`] or with bincode's reason.
pub(crate) fn encode<T: Serialize>(value: &T, out: &mut BytesMut) -> Result<(), ControlError> {
    let start = out.len();
    bincode::serde::encode_into_std_write(value, &mut out.writer(), CONFIG)
        .map_err(|e| ControlError::Codec(e.to_string()))?;
    let len = out.len() - start;
    if len > MAX_CONTROL_LEN {
        out.truncate(start);
        return Err(ControlError::TooLarge(len));
    }
    Ok(())
}

/// Decodes exactly one `T` filling all of `body`; trailing bytes are an error
/// so that two encodings never decode to the same message.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    if body.len() > MAX_CONTROL_LEN {
        return Err(ControlError::TooLarge(body.len()));
    }
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(body, CONFIG)
        .map_err(|e| ControlError::Codec(e.to_string()))?;
    if used != body.len() {
        return Err(ControlError::Codec(format!(
            "{} trailing bytes after the message",
            body.len() - used
        )));
    }
    Ok(value)
}

/// Why a control message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ControlError {
    /// The encoding has this many bytes, more than [`MAX_CONTROL_LEN`].
    TooLarge(usize),
    /// The serializer refused the value or the bytes are not a valid encoding.
    Codec(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::TooLarge(len) => write!(
                f,
                "control message of {len} bytes exceeds {MAX_CONTROL_LEN} bytes"
            ),
            ControlError::Codec(why) => write!(f, "control message: {why}"),
        }
    }
}
