//! The state every part of the engine shares: the database, the stream
//! map, the caches and hubs, and the commit hooks through which the engine
//! announces committed changes to whoever registered (the doors' webhook
//! subscriptions today).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use rocksdb::{ColumnFamily, DB};

use crate::config::EngineConfig;
use crate::file_cache::FileCache;
use crate::stream::StreamState;

/// A stream changed by a committed write (records appended, closed, or
/// created): what commit hooks are told, in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The stream's name.
    pub stream: Arc<str>,
    /// Its tail after the write.
    pub next_offset: u64,
    /// Whether it is closed after the write.
    pub closed: bool,
}

/// A function the commit thread calls after each write that changed
/// streams, once the change is durable and visible to readers. It runs on
/// the commit thread, so it must be quick and must never block: hand the
/// work to another thread or task.
pub type CommitHook = Arc<dyn Fn(&[Committed]) + Send + Sync>;

/// State shared by the engine handle, the commit thread, readers and followers.
pub(crate) struct Shared {
    /// Copies of large committed batches for zero-copy sends. Declared
    /// before `db` so it is dropped (and its directory removed) while the
    /// database lock is still held: a new engine cannot open the directory
    /// and then lose its fresh cache to this one's cleanup.
    pub file_cache: FileCache,
    pub db: DB,
    pub config: EngineConfig,
    pub streams: RwLock<BTreeMap<Arc<str>, Arc<StreamState>>>,
    /// Set by the commit thread when it stops; followers check it under the
    /// stream lock before going live, so none waits forever after shutdown.
    pub stopped: std::sync::atomic::AtomicBool,
    /// State builder threads, joined when the engine stops.
    pub builders: Mutex<Vec<JoinHandle<()>>>,
    /// Counters of the commit thread.
    pub stats: crate::stats::Stats,
    /// The runtimes of touch-enabled streams (see `touch/`).
    pub touch: crate::touch::Hub,
    /// Deleted key ranges whose space the reaper gives back (`reclaim.rs`).
    pub reclaim: crate::reclaim::Reclaim,
    /// The threads that run storage reads for async callers (`read_pool.rs`).
    pub reads: crate::read_pool::ReadPool,
    /// Called after every write that changed streams (see [`CommitHook`]).
    pub hooks: RwLock<Vec<CommitHook>>,
    /// Values the engine's users attach to it, one per type (see
    /// [`crate::Engine::extension`]).
    pub extensions: Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
    /// Whether writes succeed (`write_health.rs`).
    pub health: crate::write_health::WriteHealth,
    /// Fault injection for tests: every write fails while set.
    #[cfg(test)]
    pub fail_writes: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// The stream of that name in the map, if any (expired or not).
    pub fn stream(&self, name: &str) -> Option<Arc<StreamState>> {
        self.streams.read().get(name).cloned()
    }

    /// Tells every commit hook what a write changed.
    pub fn announce(&self, committed: &[Committed]) {
        if committed.is_empty() {
            return;
        }
        for hook in self.hooks.read().iter() {
            hook(committed);
        }
    }
}
