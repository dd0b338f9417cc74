//! The engine handle: opening and recovering a data directory, and the public
//! operations, which validate input on the caller's thread and hand every
//! mutation to the commit thread.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{self, Sender};
use futures::channel::oneshot;
use parking_lot::{Mutex, RwLock};
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, DB};

use crate::clock::now_ms;
use crate::commit::queue::CommitQueue;
use crate::commit::{AppendRequest, AppendResult, Command, Committer, CreateOutcome, Pending};
use crate::config::{EngineConfig, MAX_STREAM_SEQ_LEN};
use crate::error::{Error, Result};
use crate::file_cache::FileCache;
use crate::follow::{FollowFrom, Follower};
use crate::keys::{ALL_CFS, CF_PRODUCERS, CF_STREAMS, CF_WAL, NEXT_ID_KEY};
use crate::meta::{validate_name, StreamConfig, StreamInfo, StreamMeta};
use crate::producer::{self, ProducerState};
use crate::read::{recover_tail, ReadResult};
use crate::record::Record;
use crate::shared::{CommitHook, Shared};
use crate::state::StateMode;
use crate::stream::StreamState;

struct Threads {
    commit: Option<JoinHandle<()>>,
    reaper: Option<(Sender<()>, JoinHandle<()>)>,
    touch: Option<(Sender<()>, JoinHandle<()>)>,
}

struct Inner {
    shared: Arc<Shared>,
    tx: CommitQueue,
    threads: Mutex<Threads>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        stop(&self.shared, &self.tx, &self.threads);
    }
}

fn stop(shared: &Shared, tx: &CommitQueue, threads: &Mutex<Threads>) {
    let mut t = threads.lock();
    for (stop, h) in [t.touch.take(), t.reaper.take()].into_iter().flatten() {
        drop(stop);
        let _ = h.join();
    }
    if let Some(h) = t.commit.take() {
        tx.send_shutdown();
        let _ = h.join();
    }
    // Builders end once the commit thread is gone (their sends and replies fail).
    let builders = std::mem::take(&mut *shared.builders.lock());
    crate::state::join_builders(builders);
}

/// An open data directory. Cheap to clone; all clones share one engine, which
/// shuts down (draining the commit pipeline) when the last clone is dropped or
/// [`Engine::shutdown`] is called.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Opens (creating if needed) the data directory at `path` and recovers
    /// every stream: tails come from the `wal` column family.
    pub fn open(path: impl AsRef<Path>, config: EngineConfig) -> Result<Engine> {
        let db = open_db(path.as_ref(), &config)?;
        let (streams, next_id) = recover(&db)?;
        let file_cache = FileCache::open(
            path.as_ref(),
            config.file_cache_bytes,
            config.file_cache_min_batch,
        )
        .map_err(|e| Error::Storage(format!("cannot open the file cache: {e}")))?;
        let config_read_threads = config.read_threads;
        let shared = Arc::new(Shared {
            file_cache,
            db,
            config,
            streams: RwLock::new(streams),
            stopped: std::sync::atomic::AtomicBool::new(false),
            builders: Mutex::new(Vec::new()),
            stats: crate::stats::Stats::new(),
            touch: crate::touch::Hub::new(),
            reclaim: crate::reclaim::Reclaim::default(),
            reads: crate::read_pool::ReadPool::start(config_read_threads)?,
            extensions: Mutex::new(Vec::new()),
            hooks: RwLock::new(Vec::new()),
            health: Default::default(),
            #[cfg(test)]
            fail_writes: Default::default(),
        });
        let (tx, rx) =
            CommitQueue::new(shared.config.commit_queue, shared.config.commit_queue_bytes);
        let committer = Committer::new(Arc::clone(&shared), rx, tx.clone(), next_id);
        let commit = std::thread::Builder::new()
            .name("weir-commit".into())
            .spawn(move || committer.run())
            .map_err(|e| Error::Storage(format!("cannot start commit thread: {e}")))?;
        let reaper = spawn_reaper(Arc::clone(&shared), tx.clone())?;
        // Touch routes answer from the first request on: the runtimes of
        // touch-enabled streams open here, not on the thread's first pass.
        shared.touch.sync(&shared, now_ms());
        let touch = crate::touch::runtime::spawn(Arc::clone(&shared), tx.clone())?;
        // Builds interrupted by a restart continue where their marker says.
        let building: Vec<_> = shared
            .streams
            .read()
            .values()
            .filter(|s| s.live.lock().kv.building)
            .cloned()
            .collect();
        for s in building {
            let generation = s.live.lock().kv.generation;
            crate::state::spawn_builder(Arc::clone(&shared), tx.clone(), s, generation);
        }
        let orphans = crate::fork::orphans(shared.streams.read().values());
        for (name, id) in orphans {
            let (reply, rx) = oneshot::channel();
            tx.send_blocking(Command::Delete {
                name,
                only_id: Some(id),
                reply: Some(reply),
            });
            futures::executor::block_on(rx).unwrap_or(Err(Error::ShutDown))?;
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                shared,
                tx,
                threads: Mutex::new(Threads {
                    commit: Some(commit),
                    reaper: Some(reaper),
                    touch: Some(touch),
                }),
            }),
        })
    }

    /// Whether the commit thread still accepts work (false after shutdown,
    /// or if it has died).
    pub fn is_running(&self) -> bool {
        !self
            .inner
            .shared
            .stopped
            .load(std::sync::atomic::Ordering::SeqCst)
            && self
                .inner
                .threads
                .lock()
                .commit
                .as_ref()
                .is_some_and(|h| !h.is_finished())
    }

    /// Why writes fail now (a full disk, another storage error), or `None`
    /// while they succeed. Clears by itself once a write, or the commit
    /// thread's probe, succeeds again.
    pub fn write_fault(&self) -> Option<crate::WriteFault> {
        self.inner.shared.health.fault()
    }

    /// Counters and figures for operators, read now. RocksDB's figures are
    /// summed over the column families.
    pub fn stats(&self) -> crate::stats::EngineStats {
        use std::sync::atomic::Ordering::Relaxed;
        let sh = &self.inner.shared;
        let (streams, state_streams, live_followers) = {
            let map = sh.streams.read();
            let mut state = 0;
            let mut followers = 0;
            for s in map.values() {
                let live = s.live.lock();
                state += usize::from(live.kv.mode != StateMode::None);
                followers += live.subscribers.len() + live.state_groups.slots();
            }
            // The internal `live.metrics` stream is not counted, as it is not listed.
            let internal = usize::from(map.contains_key(crate::touch::LIVE_METRICS_STREAM));
            (
                (map.len() - internal) as u64,
                state as u64,
                followers as u64,
            )
        };
        let prop = |name: &str| self.rocksdb_property_sum(name);
        crate::stats::EngineStats {
            appends: sh.stats.appends.load(Relaxed),
            records: sh.stats.records.load(Relaxed),
            bytes: sh.stats.bytes.load(Relaxed),
            groups: sh.stats.groups.load(Relaxed),
            failed_groups: sh.stats.failed_groups.load(Relaxed),
            group_size: sh.stats.group_size.snapshot(),
            write_seconds: sh.stats.write_seconds.snapshot(),
            commit_queue: self.inner.tx.len() as u64,
            streams,
            state_streams,
            memtable_bytes: prop("rocksdb.cur-size-all-mem-tables"),
            sst_bytes: prop("rocksdb.total-sst-files-size"),
            pending_compaction_bytes: prop("rocksdb.estimate-pending-compaction-bytes"),
            write_stalled: (prop("rocksdb.is-write-stopped")
                + prop("rocksdb.actual-delayed-write-rate")
                > 0) as u64,
            // One cache serves every column family: read it once.
            block_cache_bytes: sh
                .db
                .property_int_value("rocksdb.block-cache-usage")
                .ok()
                .flatten()
                .unwrap_or(0),
            records_delivered: sh.stats.delivered.load(Relaxed),
            follower_fallbacks: sh.stats.fallbacks.load(Relaxed),
            live_followers,
            state_subscriptions: sh.stats.state_subscriptions.load(Relaxed),
            write_faulted: u64::from(sh.health.is_faulted()),
        }
    }

    /// Registers a function told of every committed change to a stream
    /// (appends, closes, creates, forks), from every door and in-process
    /// caller alike, in commit order. See [`CommitHook`] for its rules.
    pub fn on_commit(&self, hook: CommitHook) {
        self.inner.shared.hooks.write().push(hook);
    }

    /// A RocksDB integer property (`rocksdb.num-blob-files`, say) summed
    /// over the engine's column families; 0 for one RocksDB does not know.
    pub fn rocksdb_property_sum(&self, name: &str) -> u64 {
        let sh = &self.inner.shared;
        ALL_CFS
            .iter()
            .filter_map(|cf| sh.db.property_int_value_cf(sh.cf(cf), name).ok().flatten())
            .sum()
    }

    /// Flushes every column family's memtable to files (the data is durable
    /// already; this only moves it out of the write-ahead log, as before a
    /// file-level backup).
    pub fn flush(&self) -> Result<()> {
        let sh = &self.inner.shared;
        for cf in ALL_CFS {
            sh.db.flush_cf(sh.cf(cf))?;
        }
        Ok(())
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.shared.config
    }

    /// Stops the reaper, writes every queued request and stops the commit
    /// thread. Later mutations fail with [`Error::ShutDown`]; reads still work.
    pub fn shutdown(&self) {
        stop(&self.inner.shared, &self.inner.tx, &self.inner.threads);
    }

    /// Queues a command, waiting asynchronously for room in the commit
    /// queue, and returns the future of its answer once it is queued: two
    /// commands submitted one after the other by one task are taken by the
    /// commit thread in that order.
    pub(crate) async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Pending<T> {
        let (reply, rx) = oneshot::channel();
        // A send error drops the command and its reply sender, which the
        // receiver reports as cancelled: shut down.
        let _ = self.inner.tx.send(make(reply)).await;
        Pending(rx)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Looks a live stream up; an expired one counts as absent and is queued for removal.
    pub(crate) fn lookup(&self, name: &str) -> Result<Arc<StreamState>> {
        let s = self.inner.shared.stream(name).ok_or(Error::NotFound)?;
        if s.is_expired(now_ms()) {
            // Best effort: the reaper removes it when the queue is full.
            let _ = self.inner.tx.try_send(Command::Delete {
                name: name.to_string(),
                only_id: Some(s.id),
                reply: None,
            });
            return Err(Error::NotFound);
        }
        if s.live.lock().soft_deleted {
            return Err(Error::Gone);
        }
        Ok(s)
    }

    /// Creates a stream, or confirms it exists with the same config
    /// (`created == false`); a different config is [`Error::ConfigConflict`].
    pub fn create_stream(&self, name: &str, config: StreamConfig) -> Result<CreateOutcome> {
        futures::executor::block_on(self.create_stream_with(name, config, Vec::new(), false))
    }

    /// Creates a stream with initial records, optionally already closed, in
    /// one atomic write.
    pub async fn create_stream_with(
        &self,
        name: &str,
        config: StreamConfig,
        records: Vec<Record>,
        close: bool,
    ) -> Result<CreateOutcome> {
        self.create_stream_in_mode(name, config, StateMode::None, records, close)
            .await
    }

    /// [`Engine::create_stream_with`] for a stream that keeps key-value
    /// state from its first record on. A repeated create naming a mode must
    /// name the stream's current one; naming none matches any.
    pub async fn create_stream_in_mode(
        &self,
        name: &str,
        config: StreamConfig,
        state: StateMode,
        records: Vec<Record>,
        close: bool,
    ) -> Result<CreateOutcome> {
        validate_name(name)?;
        config.validate()?;
        self.validate_records(&records)?;
        crate::rules::check_records(&config.content_type, &records)?;
        crate::state::check_mode(&config.content_type, state)?;
        crate::state::ops::derive(state, &records)?;
        self.submit(|reply| Command::Create {
            name: name.to_string(),
            config,
            state,
            records,
            close,
            reply,
        })
        .await
        .await
    }

    /// Deletes a stream and every key it owns, in all column families.
    pub fn delete_stream(&self, name: &str) -> Result<()> {
        futures::executor::block_on(self.delete_stream_async(name))
    }

    /// Async form of [`Engine::delete_stream`].
    pub async fn delete_stream_async(&self, name: &str) -> Result<()> {
        let s = self.lookup(name)?;
        self.submit(|reply| Command::Delete {
            name: name.to_string(),
            only_id: Some(s.id),
            reply: Some(reply),
        })
        .await
        .await
    }

    /// Metadata of a stream.
    pub fn head(&self, name: &str) -> Result<StreamInfo> {
        Ok(self.lookup(name)?.info())
    }

    /// Up to `limit` streams in name order, starting after `after`.
    pub fn list_streams(&self, after: Option<&str>, limit: usize) -> Vec<StreamInfo> {
        let now = now_ms();
        let map = self.inner.shared.streams.read();
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        map.range::<str, _>((lower, Bound::Unbounded))
            .map(|(_, s)| s)
            .filter(|s| !s.is_expired(now) && !s.live.lock().soft_deleted)
            // The internal metrics stream is readable by name but not listed.
            .filter(|s| &*s.name != crate::touch::LIVE_METRICS_STREAM)
            .take(limit)
            .map(|s| s.info())
            .collect()
    }

    pub(crate) fn validate_records(&self, records: &[Record]) -> Result<()> {
        let max = self.inner.shared.config.max_key_len;
        if records.len() > u32::MAX as usize / 2 {
            return Err(Error::Invalid("too many records in one append".into()));
        }
        let bytes: usize = crate::batch::encoded_len(records);
        let limit = self
            .inner
            .shared
            .config
            .max_append_bytes
            .min(u32::MAX as usize / 2);
        if bytes > limit {
            return Err(Error::Invalid(format!(
                "append would store {bytes} bytes (keys, payloads and 8 bytes per record), \
                 more than the {limit}-byte limit"
            )));
        }
        for r in records {
            if r.key.as_ref().is_some_and(|k| k.len() > max) {
                return Err(Error::Invalid(format!(
                    "record key longer than {max} bytes"
                )));
            }
        }
        Ok(())
    }

    /// Appends a batch of records, blocking until it is durable.
    pub fn append(&self, name: &str, req: AppendRequest) -> Result<AppendResult> {
        futures::executor::block_on(self.append_async(name, req))
    }

    /// Appends a batch of records; resolves once the commit group holding it
    /// is durable under the configured durability mode.
    pub async fn append_async(&self, name: &str, req: AppendRequest) -> Result<AppendResult> {
        self.queue_append(name, req).await?.await
    }

    /// Validates an append and queues it, waiting asynchronously while the
    /// commit queue is full; resolves once it is queued, to the future of
    /// its outcome. Appends queued one after the other (each awaited before
    /// the next is queued) apply in that order, which is how a connection
    /// keeps its pipelined appends in order while their answers complete
    /// concurrently.
    pub async fn queue_append(
        &self,
        name: &str,
        req: AppendRequest,
    ) -> Result<Pending<AppendResult>> {
        let stream = self.lookup(name)?;
        self.validate_records(&req.records)?;
        let mode = stream.live.lock().kv.mode;
        crate::rules::check_records_in(&stream.config.content_type, mode, &req.records)?;
        let ops = crate::state::ops::derive(mode, &req.records)?;
        if let Some(tag) = &req.producer {
            producer::validate(tag, self.inner.shared.config.max_producer_id_len)?;
        }
        if req.records.is_empty() && !req.close {
            return Err(Error::EmptyAppend);
        }
        if let Some(seq) = req
            .stream_seq
            .as_ref()
            .filter(|s| s.len() > MAX_STREAM_SEQ_LEN)
        {
            return Err(Error::Invalid(format!(
                "Stream-Seq is {} bytes long; at most {MAX_STREAM_SEQ_LEN} are allowed",
                seq.len()
            )));
        }
        Ok(self
            .submit(|reply| Command::Append {
                stream,
                req,
                ops,
                reply,
            })
            .await)
    }

    /// Reads records from `from` up to the tail, gathering about `max_bytes`
    /// of record data (always at least one record when any is available).
    pub fn read(&self, name: &str, from: u64, max_bytes: usize) -> Result<ReadResult> {
        let s = self.lookup(name)?;
        read_now(&self.inner.shared, &s, from, max_bytes)
    }

    /// [`Engine::read`] on the engine's reader threads, for async callers:
    /// the calling task waits, its runtime thread does not.
    pub async fn read_async(&self, name: &str, from: u64, max_bytes: usize) -> Result<ReadResult> {
        let s = self.lookup(name)?;
        let shared = Arc::clone(&self.inner.shared);
        let pool = Arc::clone(&shared);
        pool.reads
            .run(move || read_now(&shared, &s, from, max_bytes))
            .await
    }

    /// The stream's tail offset and closed flag.
    pub fn tail(&self, name: &str) -> Result<(u64, bool)> {
        let s = self.lookup(name)?;
        let l = s.live.lock();
        Ok((l.next_offset, l.closed))
    }

    /// Follows a stream from `from`: every record at or after the fence,
    /// exactly once, first from storage and then live.
    pub fn follow(&self, name: &str, from: FollowFrom) -> Result<Follower> {
        let s = self.lookup(name)?;
        Follower::new(Arc::clone(&self.inner.shared), s, from)
    }

    /// The engine's one value of type `T`, created with `T::default()` on
    /// first use and shared by every clone of the engine: how the doors
    /// serving one engine share per-server state (their metrics) without
    /// the engine knowing what they keep.
    pub fn extension<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut all = self.inner.shared.extensions.lock();
        if let Some(t) = all.iter().find_map(|e| Arc::clone(e).downcast::<T>().ok()) {
            return t;
        }
        let t = Arc::new(T::default());
        all.push(Arc::clone(&t) as Arc<dyn std::any::Any + Send + Sync>);
        t
    }

    /// How many followers of `name` are live now (caught up and registered for the next commit).
    pub fn live_followers(&self, name: &str) -> usize {
        let s = self.inner.shared.stream(name);
        s.map_or(0, |s| {
            let live = s.live.lock();
            live.subscribers.len() + live.state_groups.slots()
        })
    }
}

/// Reads `s` from `from` up to its tail, about `max_bytes` of records.
fn read_now(
    shared: &Shared,
    s: &Arc<StreamState>,
    from: u64,
    max_bytes: usize,
) -> Result<ReadResult> {
    let (tail, closed) = {
        let l = s.live.lock();
        (l.next_offset, l.closed)
    };
    if from > tail {
        return Err(Error::OffsetOutOfRange { offset: from, tail });
    }
    s.touch(now_ms());
    let batches =
        crate::fork::read_stream(shared, s, from, tail, max_bytes).map_err(|e| deleted_or(s, e))?;
    let next_offset = batches.last().map_or(from, |b| b.next_offset());
    Ok(ReadResult {
        batches,
        next_offset,
        tail,
        closed,
    })
}

/// A read that failed because a concurrent delete removed the stream's keys
/// is reported as `NotFound`, not as the corruption it would otherwise look like.
pub(crate) fn deleted_or(s: &StreamState, e: Error) -> Error {
    if s.live.lock().deleted {
        Error::NotFound
    } else {
        e
    }
}

fn open_db(path: &Path, config: &EngineConfig) -> Result<DB> {
    let cache = Cache::new_lru_cache(config.block_cache_bytes);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_block_size(32 << 10);
    let cf_opts = |write_buffer: usize| {
        let mut o = Options::default();
        o.set_block_based_table_factory(&table);
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_write_buffer_size(write_buffer);
        o.set_level_compaction_dynamic_level_bytes(true);
        o
    };
    let cfs: Vec<_> = ALL_CFS
        .iter()
        .map(|name| {
            let wb = if *name == CF_WAL { 128 << 20 } else { 16 << 20 };
            let mut o = cf_opts(wb);
            if *name == CF_WAL && config.blob_min_bytes > 0 {
                // Large batches live in blob files: an SST block then holds
                // only small values and blob references, whatever one
                // client appends (issue 16, finding 2).
                o.set_enable_blob_files(true);
                o.set_min_blob_size(config.blob_min_bytes as u64);
                o.set_blob_compression_type(DBCompressionType::Lz4);
                o.set_enable_blob_gc(true);
            }
            ColumnFamilyDescriptor::new(*name, o)
        })
        .collect();
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts.set_bytes_per_sync(1 << 20);
    opts.set_keep_log_file_num(4);
    opts.set_max_total_wal_size(512 << 20);
    DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| {
        // RocksDB's own text ("While lock file: .../LOCK: Resource
        // temporarily unavailable") hides the likely cause.
        if e.to_string().contains("/LOCK") {
            Error::Storage(format!(
                "the data directory {} is in use by another process (another weir serve?): \
                 stop it, or use another --data-dir",
                path.display()
            ))
        } else {
            e.into()
        }
    })
}

type Recovered = (BTreeMap<Arc<str>, Arc<StreamState>>, u64);

fn recover(db: &DB) -> Result<Recovered> {
    let now = now_ms();
    let streams_cf = db.cf_handle(CF_STREAMS).expect("created at open");
    let mut by_id = std::collections::HashMap::new();
    let mut map = BTreeMap::new();
    let mut next_id = 1u64;
    for item in db.iterator_cf(&streams_cf, rocksdb::IteratorMode::Start) {
        let (k, v) = item?;
        if &*k == NEXT_ID_KEY {
            let b: [u8; 8] = (&*v)
                .try_into()
                .map_err(|_| Error::Corrupt("malformed next stream id".into()))?;
            next_id = next_id.max(u64::from_le_bytes(b));
            continue;
        }
        let name =
            std::str::from_utf8(&k).map_err(|_| Error::Corrupt("non-UTF-8 stream name".into()))?;
        let meta = StreamMeta::decode(&v)?;
        next_id = next_id.max(meta.id + 1);
        let tail = recover_tail(db, meta.id)?;
        let state = Arc::new(StreamState::new(name, meta, tail, now));
        state.live.lock().head = crate::retention::recover_head(db, state.id)?;
        by_id.insert(state.id, Arc::clone(&state));
        map.insert(Arc::clone(&state.name), state);
    }
    let producers_cf = db.cf_handle(CF_PRODUCERS).expect("created at open");
    for item in db.iterator_cf(&producers_cf, rocksdb::IteratorMode::Start) {
        let (k, v) = item?;
        if k.len() < 8 {
            return Err(Error::Corrupt("malformed producer key".into()));
        }
        let sid = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
        let pid = String::from_utf8(k[8..].to_vec())
            .map_err(|_| Error::Corrupt("non-UTF-8 producer id".into()))?;
        if let Some(s) = by_id.get(&sid) {
            s.live
                .lock()
                .producers
                .insert(pid, ProducerState::decode(&v)?);
        }
    }
    crate::fork::recover(db, &by_id)?;
    crate::state::recover(db, &by_id)?;
    Ok((map, next_id))
}

fn spawn_reaper(shared: Arc<Shared>, tx: CommitQueue) -> Result<(Sender<()>, JoinHandle<()>)> {
    let (stop_tx, stop_rx) = channel::bounded::<()>(0);
    let every = shared.config.expiry_interval;
    let handle = std::thread::Builder::new()
        .name("weir-reaper".into())
        .spawn(move || {
            // Returns on disconnect (the engine is stopping).
            while let Err(channel::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
                let now = now_ms();
                let expired: Vec<(String, u64)> = shared
                    .streams
                    .read()
                    .values()
                    .filter(|s| s.is_expired(now))
                    .map(|s| (s.name.to_string(), s.id))
                    .collect();
                for (name, id) in expired {
                    tracing::debug!(stream = %name, "removing expired stream");
                    let _ = tx.send_blocking(Command::Delete {
                        name,
                        only_id: Some(id),
                        reply: None,
                    });
                }
                let n = shared.reclaim.run(&shared.db);
                if n > 0 {
                    tracing::debug!(ranges = n, "compacted deleted ranges");
                }
            }
        })
        .map_err(|e| Error::Storage(format!("cannot start reaper thread: {e}")))?;
    Ok((stop_tx, handle))
}
