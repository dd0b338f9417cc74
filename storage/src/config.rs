//! Engine configuration and its documented defaults.

use std::time::Duration;

/// When an acknowledged append is considered durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync the RocksDB WAL once per commit group: acknowledged appends
    /// survive a process kill and a power loss.
    #[default]
    Sync,
    /// Write the WAL to the OS without fsync: acknowledged appends survive a
    /// process crash but may be lost on power loss or kernel crash.
    Buffered,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(Durability::Sync),
            "buffered" => Ok(Durability::Buffered),
            other => Err(format!(
                "unknown durability {other:?}; expected \"sync\" or \"buffered\""
            )),
        }
    }
}

/// Tunables of an [`Engine`](crate::Engine); `Default` gives production values.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// fsync policy of commit groups.
    pub durability: Durability,
    /// Requests the commit queue holds; further senders wait (async callers
    /// without blocking their thread) until the commit thread takes one.
    pub commit_queue: usize,
    /// Bytes of records (each `Record` and its bytes) the commit queue's
    /// waiting requests may hold; further senders wait. Bounds the queue's
    /// memory whatever the records' sizes.
    pub commit_queue_bytes: usize,
    /// Upper bound on the payload bytes one commit group gathers before writing.
    pub max_group_bytes: usize,
    /// Longest record key accepted, in bytes.
    pub max_key_len: usize,
    /// Longest producer id accepted, in bytes.
    pub max_producer_id_len: usize,
    /// Batches buffered per live follower before it falls back to storage.
    pub follower_queue: usize,
    /// Byte budget of one catch-up read issued by a follower.
    pub follower_read_bytes: usize,
    /// Stored batches of at least this many bytes go to RocksDB blob files
    /// instead of the `wal` column family's SST blocks (0: never), so one
    /// client's large appends do not make reads of other streams
    /// decompress and checksum huge blocks.
    pub blob_min_bytes: usize,
    /// Threads that run followers' and the doors' storage reads (so that
    /// async runtime threads never wait on RocksDB); also the most such
    /// reads that run at once.
    pub read_threads: usize,
    /// How often the reaper looks for expired streams.
    pub expiry_interval: Duration,
    /// Size of RocksDB's shared block cache.
    pub block_cache_bytes: usize,
    /// Disk bound of the file cache that lets the network doors send large
    /// batches with `sendfile` (see `file_region`); 0 turns it off.
    pub file_cache_bytes: u64,
    /// Smallest stored batch (encoded bytes) the file cache copies.
    pub file_cache_min_batch: usize,
    /// Largest stored size (keys, payloads and per-record framing) of one
    /// append or create, whatever door it came through; at most 2 GiB, the
    /// stored batch layout's own bound.
    pub max_append_bytes: usize,
    /// Records of `live.metrics` older than this are dropped (Prisma's
    /// retention: 7 days; the newest batch always stays).
    pub live_metrics_max_age: Duration,
    /// How often `live.metrics` is trimmed to its maximum age.
    pub live_metrics_trim_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            durability: Durability::Sync,
            commit_queue: 8192,
            commit_queue_bytes: 1 << 30,
            max_group_bytes: 32 << 20,
            max_key_len: 4096,
            max_producer_id_len: 256,
            follower_queue: 1024,
            follower_read_bytes: 1 << 20,
            read_threads: 4,
            blob_min_bytes: 64 << 10,
            expiry_interval: Duration::from_secs(1),
            block_cache_bytes: 256 << 20,
            file_cache_bytes: 2 << 30,
            file_cache_min_batch: 64 << 10,
            max_append_bytes: u32::MAX as usize / 2,
            live_metrics_max_age: Duration::from_millis(
                crate::touch::defaults::LIVE_METRICS_RETENTION_MS,
            ),
            live_metrics_trim_interval: Duration::from_millis(
                crate::touch::defaults::LIVE_RETENTION_INTERVAL_MS,
            ),
        }
    }
}

/// Longest stream name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Longest `Stream-Seq` accepted, in bytes (it is stored with the stream
/// and echoed in error messages, so it must stay small).
pub const MAX_STREAM_SEQ_LEN: usize = 256;
