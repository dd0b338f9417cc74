//! Bodies of the requests a client sends. Each converts to the engine's own
//! type where one exists, so a server maps a request onto `weir_storage`
//! without restating its rules.

use serde::{Deserialize, Serialize};
use weir_storage::{FollowFrom, ProducerTag, Record, StreamConfig};

/// `Hello`: the first frame of a connection. It names the range of protocol
/// versions the client speaks and the largest frame it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Oldest protocol version the client speaks.
    pub min_version: u8,
    /// Newest protocol version the client speaks.
    pub max_version: u8,
    /// Largest length prefix the client accepts in frames it receives.
    pub max_frame: u32,
    /// Free-form client name and version, for logs and metrics.
    pub client: String,
    /// Credential for servers that require one; reserved until authentication
    /// lands, and ignored by servers that do not check it.
    pub auth_token: Option<String>,
}

/// `Create`: creates a stream, or confirms it exists with the same config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Create {
    /// Name of the stream.
    pub stream: String,
    /// MIME type of the stream's records.
    pub content_type: String,
    /// Sliding time-to-live in seconds.
    pub ttl_secs: Option<u64>,
    /// Absolute expiry, milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// Version 2: the state mode to keep (absent: none). Not part of the
    /// version-1 body, which is why serde skips it.
    #[serde(skip)]
    pub state: Option<super::state::WireStateMode>,
}

impl Create {
    /// The engine config this request asks for.
    pub fn config(&self) -> StreamConfig {
        StreamConfig {
            content_type: self.content_type.clone(),
            ttl_secs: self.ttl_secs,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// `Head`: asks for a stream's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Name of the stream.
    pub stream: String,
}

/// `Delete`: deletes a stream and all its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    /// Name of the stream.
    pub stream: String,
}

/// Idempotent producer identity and position of an append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// Client-chosen stable producer id.
    pub id: String,
    /// Session epoch; a restarted producer increments it.
    pub epoch: u64,
    /// Sequence of this append within the epoch, from 0.
    pub seq: u64,
}

impl From<Producer> for ProducerTag {
    fn from(p: Producer) -> Self {
        ProducerTag {
            id: p.id,
            epoch: p.epoch,
            seq: p.seq,
        }
    }
}

/// `Append`: records for a stream, with an optional producer tag and close.
/// On the wire the fields other than `records` are a control message and the
/// records are one record batch, so payloads are never re-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// Name of the stream.
    pub stream: String,
    /// Idempotent producer tag, for exactly-once retries.
    pub producer: Option<Producer>,
    /// Close the stream after these records.
    pub close: bool,
    /// Records in order; empty only for a close without records. Decoded
    /// records share the frame's buffer.
    pub records: Vec<Record>,
}

/// The control part of an `Append` body (everything but the records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppendMeta {
    pub stream: String,
    pub producer: Option<Producer>,
    pub close: bool,
}

/// `Read`: records from an offset, up to a byte budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    /// Name of the stream.
    pub stream: String,
    /// Offset of the first record wanted (at most the tail).
    pub from: u64,
    /// Budget of record bytes (keys, payloads and their 4-byte tags) for the
    /// whole response; at least one record is returned when any exists.
    pub max_bytes: u32,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscribeFrom {
    /// The first record of the stream.
    Start,
    /// Only records appended after the subscription is registered.
    Now,
    /// A given offset, at most the tail.
    Offset(u64),
}

impl From<SubscribeFrom> for FollowFrom {
    fn from(f: SubscribeFrom) -> Self {
        match f {
            SubscribeFrom::Start => FollowFrom::Start,
            SubscribeFrom::Now => FollowFrom::Now,
            SubscribeFrom::Offset(o) => FollowFrom::Offset(o),
        }
    }
}

/// `Subscribe`: follows a stream, catch-up then live, every record once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Name of the stream.
    pub stream: String,
    /// Where to start.
    pub from: SubscribeFrom,
}

/// `Unsubscribe`: stops a subscription of this connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// Request id of the `Subscribe` that started it.
    pub subscription: u32,
}
