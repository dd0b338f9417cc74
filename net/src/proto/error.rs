//! The `Error` frame: a numeric code with code-specific fields, plus a
//! human-readable message. Every `weir_storage::Error` variant has its own
//! code, so a client can act on an outcome (retry, resume at the tail, fix its
//! producer sequence) without parsing text; protocol faults have theirs.
//!
//! The code is the variant's position in [`ErrorKind`] as bincode writes it:
//! the order is part of the protocol, so new kinds are only ever appended.

use serde::{Deserialize, Serialize};
use weir_storage::Error as StorageError;

/// Longest string or byte field the server copies into an error, so that an
/// error about a huge input still fits in a control message.
pub const MAX_ERROR_FIELD: usize = 1024;

/// What went wrong, with the values a client needs to react.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Code 0: a frame's body does not decode as its opcode says.
    MalformedFrame,
    /// Code 1: a length prefix exceeds the receiver's frame limit.
    FrameTooLarge {
        /// The receiver's limit.
        max_frame: u32,
    },
    /// Code 2: the frame's version, or every version a `Hello` offers, is unsupported.
    UnsupportedVersion {
        /// Oldest version the sender of this error speaks.
        min_version: u8,
        /// Newest version the sender of this error speaks.
        max_version: u8,
    },
    /// Code 3: the opcode is not defined in the frame's version.
    UnknownOpcode {
        /// The offending opcode byte.
        opcode: u8,
    },
    /// Code 4: a well-formed message where it is not allowed (a reply sent
    /// as a request, a request before `Hello`, a second `Hello`).
    UnexpectedMessage {
        /// The offending opcode byte.
        opcode: u8,
    },
    /// Code 5: the request id is 0 or already used by a request in flight.
    BadRequestId,
    /// Code 6: `Unsubscribe` names no active subscription of this connection.
    UnknownSubscription,
    /// Code 7: the `Hello` credential is missing or refused.
    Unauthorized,
    /// Code 8: the server refuses the request for now (too many requests or
    /// subscriptions in flight); retry later.
    Busy,
    /// Code 9: the server failed in a way no other code describes.
    Internal,
    /// Code 10: the stream does not exist.
    NotFound,
    /// Code 11: the stream exists with a different configuration.
    ConfigConflict,
    /// Code 12: the stream is closed to appends.
    Closed {
        /// The stream's final tail.
        next_offset: u64,
    },
    /// Code 13: the append's content type differs from the stream's.
    ContentTypeMismatch {
        /// The stream's content type.
        expected: String,
        /// The request's content type.
        got: String,
    },
    /// Code 14: a stream sequence did not increase.
    StreamSeqRegression {
        /// The last accepted sequence.
        #[serde(with = "byte_buf")]
        last: Vec<u8>,
        /// The sequence the append carried.
        #[serde(with = "byte_buf")]
        received: Vec<u8>,
    },
    /// Code 15: the producer's epoch is older than the stream's.
    StaleEpoch {
        /// The producer's current epoch on this stream.
        current: u64,
    },
    /// Code 16: the producer skipped sequence numbers.
    SequenceGap {
        /// The next sequence the stream accepts.
        expected: u64,
        /// The sequence the append carried.
        received: u64,
    },
    /// Code 17: a new producer epoch must start at sequence 0.
    EpochMustStartAtZero {
        /// The sequence the append carried.
        received: u64,
    },
    /// Code 18: an append carried no records and did not close the stream.
    EmptyAppend,
    /// Code 19: the offset is past the stream's tail.
    OffsetOutOfRange {
        /// The requested offset.
        offset: u64,
        /// The stream's tail.
        tail: u64,
    },
    /// Code 20: input breaks a documented limit or format (the message says which).
    Invalid,
    /// Code 21: the engine is shutting down.
    ShutDown,
    /// Code 22: the storage layer failed; the operation did not take effect.
    Storage,
    /// Code 23: stored data failed validation on the server.
    Corrupt,
    /// Code 24: the session's token does not grant this request (the
    /// connection stays open; other streams may be granted).
    Forbidden,
}

impl ErrorKind {
    /// The numeric code of this kind, as listed in PROTOCOL.md.
    pub fn code(&self) -> u16 {
        match self {
            ErrorKind::MalformedFrame => 0,
            ErrorKind::FrameTooLarge { .. } => 1,
            ErrorKind::UnsupportedVersion { .. } => 2,
            ErrorKind::UnknownOpcode { .. } => 3,
            ErrorKind::UnexpectedMessage { .. } => 4,
            ErrorKind::BadRequestId => 5,
            ErrorKind::UnknownSubscription => 6,
            ErrorKind::Unauthorized => 7,
            ErrorKind::Busy => 8,
            ErrorKind::Internal => 9,
            ErrorKind::NotFound => 10,
            ErrorKind::ConfigConflict => 11,
            ErrorKind::Closed { .. } => 12,
            ErrorKind::ContentTypeMismatch { .. } => 13,
            ErrorKind::StreamSeqRegression { .. } => 14,
            ErrorKind::StaleEpoch { .. } => 15,
            ErrorKind::SequenceGap { .. } => 16,
            ErrorKind::EpochMustStartAtZero { .. } => 17,
            ErrorKind::EmptyAppend => 18,
            ErrorKind::OffsetOutOfRange { .. } => 19,
            ErrorKind::Invalid => 20,
            ErrorKind::ShutDown => 21,
            ErrorKind::Storage => 22,
            ErrorKind::Corrupt => 23,
            ErrorKind::Forbidden => 24,
        }
    }
}

/// Body of an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Human-readable explanation, for logs; never parsed.
    pub message: String,
}

impl WireError {
    /// An error of `kind` with `message` (cut to [`MAX_ERROR_FIELD`] bytes).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        WireError {
            kind,
            message: cut_str(message.into()),
        }
    }

    /// The engine error this frame reports, or `None` for protocol faults.
    pub fn to_storage(&self) -> Option<StorageError> {
        let msg = self.message.clone();
        Some(match &self.kind {
            ErrorKind::NotFound => StorageError::NotFound,
            ErrorKind::ConfigConflict => StorageError::ConfigConflict,
            ErrorKind::Closed { next_offset } => StorageError::Closed {
                next_offset: *next_offset,
            },
            ErrorKind::ContentTypeMismatch { expected, got } => StorageError::ContentTypeMismatch {
                expected: expected.clone(),
                got: got.clone(),
            },
            ErrorKind::StreamSeqRegression { last, received } => {
                StorageError::StreamSeqRegression {
                    last: last.clone(),
                    received: received.clone(),
                }
            }
            ErrorKind::StaleEpoch { current } => StorageError::StaleEpoch { current: *current },
            ErrorKind::SequenceGap { expected, received } => StorageError::SequenceGap {
                expected: *expected,
                received: *received,
            },
            ErrorKind::EpochMustStartAtZero { received } => StorageError::EpochMustStartAtZero {
                received: *received,
            },
            ErrorKind::EmptyAppend => StorageError::EmptyAppend,
            ErrorKind::OffsetOutOfRange { offset, tail } => StorageError::OffsetOutOfRange {
                offset: *offset,
                tail: *tail,
            },
            ErrorKind::Invalid => StorageError::Invalid(msg),
            ErrorKind::ShutDown => StorageError::ShutDown,
            ErrorKind::Storage => StorageError::Storage(msg),
            ErrorKind::Corrupt => StorageError::Corrupt(msg),
            _ => return None,
        })
    }
}

impl From<&StorageError> for WireError {
    fn from(e: &StorageError) -> Self {
        let kind = match e {
            StorageError::NotFound => ErrorKind::NotFound,
            // A soft-deleted stream (kept for its forks) is absent to this door.
            StorageError::Gone => ErrorKind::NotFound,
            // The same kind; the message says why.
            StorageError::ConfigConflict | StorageError::NameReserved => ErrorKind::ConfigConflict,
            StorageError::Closed { next_offset } => ErrorKind::Closed {
                next_offset: *next_offset,
            },
            StorageError::ContentTypeMismatch { expected, got } => ErrorKind::ContentTypeMismatch {
                expected: cut_str(expected.clone()),
                got: cut_str(got.clone()),
            },
            StorageError::StreamSeqRegression { last, received } => {
                ErrorKind::StreamSeqRegression {
                    last: cut_bytes(last),
                    received: cut_bytes(received),
                }
            }
            StorageError::StaleEpoch { current } => ErrorKind::StaleEpoch { current: *current },
            StorageError::SequenceGap { expected, received } => ErrorKind::SequenceGap {
                expected: *expected,
                received: *received,
            },
            StorageError::EpochMustStartAtZero { received } => ErrorKind::EpochMustStartAtZero {
                received: *received,
            },
            StorageError::EmptyAppend => ErrorKind::EmptyAppend,
            StorageError::OffsetOutOfRange { offset, tail } => ErrorKind::OffsetOutOfRange {
                offset: *offset,
                tail: *tail,
            },
            // A full disk is a storage error on the wire; the text says which.
            StorageError::NoSpace(_) => return WireError::new(ErrorKind::Storage, e.to_string()),
            StorageError::Invalid(s) | StorageError::Storage(s) | StorageError::Corrupt(s) => {
                // These carry their whole meaning in the text: send it bare so
                // `to_storage` gives back the same error.
                let kind = match e {
                    StorageError::Invalid(_) => ErrorKind::Invalid,
                    StorageError::Storage(_) => ErrorKind::Storage,
                    _ => ErrorKind::Corrupt,
                };
                return WireError::new(kind, s.clone());
            }
            StorageError::ShutDown => ErrorKind::ShutDown,
            // Version 1 has no state requests; these reach it only as text.
            StorageError::NotStateStream
            | StorageError::StateBuilding { .. }
            | StorageError::TouchNotEnabled => {
                return WireError::new(ErrorKind::Invalid, e.to_string());
            }
        };
        WireError::new(kind, e.to_string())
    }
}

/// Cuts `s` to at most [`MAX_ERROR_FIELD`] bytes on a character boundary.
fn cut_str(mut s: String) -> String {
    if s.len() > MAX_ERROR_FIELD {
        let mut at = MAX_ERROR_FIELD;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

fn cut_bytes(b: &[u8]) -> Vec<u8> {
    b[..b.len().min(MAX_ERROR_FIELD)].to_vec()
}

/// Serde glue that reads a byte field as one buffer rather than a sequence
/// of bytes: the control decoder then checks the claimed length against its
/// limit before allocating (a sequence would pre-allocate up to 1 MiB on
/// serde's guess). The encoding is the same either way.
mod byte_buf {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte buffer")
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_byte_buf(Visit)
    }
}
