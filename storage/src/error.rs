//! The engine's typed errors. Each protocol outcome is its own variant so the
//! network doors can map it to a status code without parsing messages.

/// Everything an engine operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The stream does not exist (never created, deleted, or expired).
    #[error("stream not found")]
    NotFound,
    /// The stream was deleted but forks still read its data: it keeps its
    /// name (a create is refused) until the last fork is gone.
    #[error("stream is gone (deleted while forks still use it)")]
    Gone,
    /// A create named an existing stream with a different configuration.
    #[error("stream already exists with a different configuration")]
    ConfigConflict,
    /// A create named a deleted stream that forks still read: its name is
    /// reserved until they are deleted.
    #[error("a deleted stream of that name is still read by its forks; the name is reserved until they are deleted")]
    NameReserved,
    /// Records were appended to a closed stream.
    #[error("stream is closed")]
    Closed {
        /// The stream's final tail offset.
        next_offset: u64,
    },
    /// The append's content type differs from the stream's.
    #[error("content type mismatch: stream has {expected:?}, request has {got:?}")]
    ContentTypeMismatch {
        /// The stream's configured content type.
        expected: String,
        /// The content type the append carried.
        got: String,
    },
    /// A `Stream-Seq` did not strictly increase (byte-wise) over the last one.
    #[error(
        "stream sequence regression: {} is not after {}",
        seq_text(received),
        seq_text(last)
    )]
    StreamSeqRegression {
        /// The last accepted sequence.
        last: Vec<u8>,
        /// The sequence this append carried.
        received: Vec<u8>,
    },
    /// A producer wrote with an epoch older than the one the stream knows.
    #[error("stale producer epoch; current epoch is {current}")]
    StaleEpoch {
        /// The producer's current epoch on this stream.
        current: u64,
    },
    /// A producer skipped sequence numbers.
    #[error("producer sequence gap: expected {expected}, received {received}")]
    SequenceGap {
        /// The next sequence the stream accepts from this producer.
        expected: u64,
        /// The sequence this append carried.
        received: u64,
    },
    /// A producer opened a new epoch with a sequence other than 0.
    #[error("a new producer epoch must start at seq 0, received {received}")]
    EpochMustStartAtZero {
        /// The sequence this append carried.
        received: u64,
    },
    /// An append carried no records and did not close the stream.
    #[error("append carries no records")]
    EmptyAppend,
    /// A read or follow asked for an offset past the stream's tail.
    #[error("offset {offset} is beyond the tail {tail}")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: u64,
        /// The stream's tail offset.
        tail: u64,
    },
    /// Input that breaks a documented limit or format (name, key, producer id, config).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A state read (get, scan, snapshot) on a stream that keeps no state.
    #[error("stream keeps no key-value state (its state mode is none)")]
    NotStateStream,
    /// The stream's state is still being built from its history.
    #[error("stream state is being built: {done} of {total} records applied")]
    StateBuilding {
        /// Records of the history applied so far.
        done: u64,
        /// The tail the build is heading for when the read was refused.
        total: u64,
    },
    /// A touch operation on a stream whose profile does not enable touch.
    #[error("touch not enabled")]
    TouchNotEnabled,
    /// The engine has been shut down; no new operations are accepted.
    #[error("engine is shut down")]
    ShutDown,
    /// RocksDB reported an error; the operation did not take effect.
    #[error("storage error: {0}")]
    Storage(String),
    /// The filesystem under the data directory is full; the operation did
    /// not take effect. Writes resume by themselves once space is freed.
    #[error("storage full: {0} (nothing was written; writes resume once space is freed)")]
    NoSpace(String),
    /// Stored bytes failed validation; the data directory is damaged.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        let text = e.into_string();
        // RocksDB's C API keeps only the status text: ENOSPC shows as the
        // OS's own words, both on the failing write and on every write
        // refused afterwards for the same background error.
        if text.contains("No space left on device") || text.contains("NoSpace") {
            Error::NoSpace(text)
        } else {
            Error::Storage(text)
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A `Stream-Seq` as text in a message: UTF-8 (lossy) in quotes.
fn seq_text(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}
