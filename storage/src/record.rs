//! The unit of data a client appends: an optional routing key and a payload.

use bytes::Bytes;

/// One record to append. The key routes the record to key-value state and
/// touches; the payload is opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Optional routing key (bounded by `EngineConfig::max_key_len`).
    pub key: Option<Bytes>,
    /// The record's bytes.
    pub payload: Bytes,
    /// On a `keyed` state stream, removes the key's value instead of setting
    /// it. Needs a key; stored as bit 31 of the record's key tag.
    pub tombstone: bool,
}

impl Record {
    /// A record without a key.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Record {
            key: None,
            payload: payload.into(),
            tombstone: false,
        }
    }

    /// A record with a routing key.
    pub fn keyed(key: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            payload: payload.into(),
            tombstone: false,
        }
    }

    /// A tombstone for `key`: on a `keyed` state stream it deletes the key.
    pub fn tombstone(key: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            payload: Bytes::new(),
            tombstone: true,
        }
    }
}

/// A borrowed view of one stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The record's offset in its stream.
    pub offset: u64,
    /// Commit time of the append that wrote it, milliseconds since the Unix epoch.
    pub append_time_ms: u64,
    /// Routing key, if the record has one.
    pub key: Option<&'a [u8]>,
    /// The record's bytes.
    pub payload: &'a [u8],
    /// Whether the record is a tombstone (see [`Record::tombstone`]).
    pub tombstone: bool,
}
