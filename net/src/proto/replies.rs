//! Bodies of the frames a server sends, other than record batches and
//! errors. Each is built from the engine's result type it reports.

use serde::{Deserialize, Serialize};
use weir_storage::{AppendResult, CreateOutcome, ReadResult};

/// `Welcome`: the server accepted `Hello` and chose a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The version both peers use from now on.
    pub version: u8,
    /// Largest length prefix the server accepts in frames it receives.
    pub max_frame: u32,
    /// Free-form server name and version, for logs.
    pub server: String,
}

/// Public description of a stream (reply to `Head`, part of `Created`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// Name of the stream.
    pub stream: String,
    /// MIME type of the stream's records.
    pub content_type: String,
    /// Sliding time-to-live in seconds.
    pub ttl_secs: Option<u64>,
    /// Absolute expiry, milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Offset the next appended record will get.
    pub next_offset: u64,
    /// Whether the stream is closed to appends.
    pub closed: bool,
    /// Version 2: the stream's state mode and build progress. Not part of
    /// the version-1 body, which is why serde skips it.
    #[serde(skip)]
    pub state: Option<super::state::StateInfo>,
}

impl From<&weir_storage::StreamInfo> for StreamInfo {
    fn from(i: &weir_storage::StreamInfo) -> Self {
        StreamInfo {
            stream: i.name.clone(),
            content_type: i.config.content_type.clone(),
            ttl_secs: i.config.ttl_secs,
            expires_at_ms: i.config.expires_at_ms,
            created_at_ms: i.created_at_ms,
            next_offset: i.next_offset,
            closed: i.closed,
            state: Some(i.state.into()),
        }
    }
}

/// `Created`: outcome of a `Create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// False when the stream already existed with the same config.
    pub created: bool,
    /// The stream after the request.
    pub info: StreamInfo,
}

impl From<&CreateOutcome> for Created {
    fn from(o: &CreateOutcome) -> Self {
        Created {
            created: o.created,
            info: StreamInfo::from(&o.info),
        }
    }
}

/// `Appended`: outcome of an accepted (or deduplicated) `Append`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// Offset of the first record written (of the original append for a duplicate).
    pub first_offset: u64,
    /// Tail after the append (after the original append for a duplicate).
    pub next_offset: u64,
    /// The request was a producer retry; nothing was written.
    pub duplicate: bool,
    /// The stream is closed after this request.
    pub closed: bool,
    /// The producer's epoch and highest accepted sequence, when tagged.
    pub producer: Option<(u64, u64)>,
}

impl From<&AppendResult> for Appended {
    fn from(r: &AppendResult) -> Self {
        Appended {
            first_offset: r.first_offset,
            next_offset: r.next_offset,
            duplicate: r.duplicate,
            closed: r.closed,
            producer: r.producer,
        }
    }
}

/// `ReadDone`: the final frame of a `Read`, after its `Data` frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadDone {
    /// Offset after the last record sent (the requested offset if none).
    pub next_offset: u64,
    /// The stream's tail when the read started.
    pub tail: u64,
    /// Whether the stream was closed when the read started.
    pub closed: bool,
}

impl From<&ReadResult> for ReadDone {
    fn from(r: &ReadResult) -> Self {
        ReadDone {
            next_offset: r.next_offset,
            tail: r.tail,
            closed: r.closed,
        }
    }
}

/// `Subscribed`: the subscription is registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    /// Offset of the first record the subscription delivers; every record at
    /// or after it arrives exactly once, in order.
    pub fence: u64,
}

/// `Unsubscribed`: the subscription is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribed {
    /// Offset after the last record the subscription delivered.
    pub next_offset: u64,
}

/// Why the server asks a subscriber to resume elsewhere or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResumeReason {
    /// The subscriber fell too far behind for the server to keep buffering.
    Lagging,
    /// The server is shutting down or draining this connection.
    ShuttingDown,
}

/// `Resume`: the server ended a subscription; subscribe again from `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// Every record before this offset was delivered; none after it was.
    pub offset: u64,
    /// Why the subscription ended.
    pub reason: ResumeReason,
}

/// `EndOfStream`: the stream is closed and the subscription delivered it all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndOfStream {
    /// The closed stream's final tail.
    pub next_offset: u64,
}
