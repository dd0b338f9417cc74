//! The commit thread: the engine's only writer. It drains every pending
//! request from a bounded channel, validates each against the stream's state
//! as staged by earlier requests of the same group, writes the whole group as
//! one RocksDB `WriteBatch` (one fsync in `sync` mode), then publishes the
//! state, fans the batches out to followers, and acknowledges each request.
//! Creates and deletes are rare; each is written as its own group so that
//! name-level changes never interleave with staged appends.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use crossbeam::channel::{Receiver, Sender};
use futures::channel::oneshot;
use rocksdb::{WriteBatch, WriteOptions};

use crate::batch::{self, Batch};
use crate::clock::now_ms;
use crate::config::Durability;
use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::hub;
use crate::keys::{
    producer_key, stream_range, wal_key, CF_PRODUCERS, CF_STREAMS, CF_WAL, NEXT_ID_KEY,
    PER_STREAM_CFS,
};
use crate::meta::{media_type, StreamConfig, StreamInfo, StreamMeta};
use crate::producer::{self, ProducerCheck, ProducerState, ProducerTag};
use crate::record::Record;
use crate::state::{self, ChunkOutcome, KvStatus, StateMode, StateStatus};
use crate::stream::StreamState;

/// One append as submitted by a client.
#[derive(Debug, Clone, Default)]
pub struct AppendRequest {
    /// Records to append, in order. May be empty only when `close` is set.
    pub records: Vec<Record>,
    /// The request's content type; checked against the stream's when given.
    pub content_type: Option<String>,
    /// `Stream-Seq`: when given, must be byte-wise greater than the last one.
    pub stream_seq: Option<Vec<u8>>,
    /// Idempotent producer tag.
    pub producer: Option<ProducerTag>,
    /// Close the stream after these records.
    pub close: bool,
}

/// The outcome of an accepted (or deduplicated) append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the first record written (for a duplicate: of the original append).
    pub first_offset: u64,
    /// Tail offset after the append (for a duplicate: after the original append).
    pub next_offset: u64,
    /// The request was a producer retry; nothing was written.
    pub duplicate: bool,
    /// The stream is closed after this request.
    pub closed: bool,
    /// The producer's epoch and highest accepted sequence, when a tag was given.
    pub producer: Option<(u64, u64)>,
}

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOutcome {
    /// False when the stream already existed with the same config.
    pub created: bool,
    /// The stream as it is after the request.
    pub info: StreamInfo,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

pub(crate) enum Command {
    Append {
        stream: Arc<StreamState>,
        req: AppendRequest,
        /// The append's state changes, derived on the caller's thread.
        ops: Option<state::ops::Ops>,
        reply: Reply<AppendResult>,
    },
    Create {
        name: String,
        config: StreamConfig,
        state: StateMode,
        records: Vec<Record>,
        close: bool,
        reply: Reply<CreateOutcome>,
    },
    /// Changes a stream's state mode (and stored profile).
    SetState {
        name: String,
        mode: StateMode,
        profile: Option<String>,
        reply: Reply<StateStatus>,
    },
    /// One chunk of a background state build.
    StateChunk {
        stream: Arc<StreamState>,
        chunk: state::Chunk,
        reply: Reply<ChunkOutcome>,
    },
    Fork {
        name: String,
        req: crate::fork::ForkRequest,
        reply: Reply<CreateOutcome>,
    },
    Delete {
        name: String,
        /// Only delete if the stream still has this id (expiry must not
        /// remove a stream recreated under the same name).
        only_id: Option<u64>,
        reply: Option<Reply<()>>,
    },
    /// Drops a plain stream's batches below the one holding `before` (`retention.rs`).
    Trim {
        stream: Arc<StreamState>,
        before: u64,
        reply: Option<Reply<u64>>,
    },
    Shutdown,
}

/// Per-stream state as staged by the appends of the current group.
struct Staged {
    stream: Arc<StreamState>,
    next_offset: u64,
    closed: bool,
    last_stream_seq: Option<Vec<u8>>,
    producers: HashMap<String, ProducerState>,
    batches: Vec<Batch>,
    meta_dirty: bool,
    deleted: bool,
    kv: KvStatus,
}

/// The group being assembled.
#[derive(Default)]
struct Group {
    wb: WriteBatch,
    staged: HashMap<u64, Staged>,
    order: Vec<u64>,
    replies: Vec<(Reply<AppendResult>, Result<AppendResult>)>,
    chunk_replies: Vec<(Reply<ChunkOutcome>, ChunkOutcome)>,
    bytes: usize,
}

pub(crate) struct Committer {
    pub(crate) shared: Arc<Shared>,
    rx: Receiver<Command>,
    /// For state builders, which talk to this thread through the same queue.
    pub(crate) tx: Sender<Command>,
    pub(crate) next_id: u64,
    pub(crate) write_opts: WriteOptions,
}

impl Committer {
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Command>,
        tx: Sender<Command>,
        next_id: u64,
    ) -> Self {
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(shared.config.durability == Durability::Sync);
        Committer {
            shared,
            rx,
            tx,
            next_id,
            write_opts,
        }
    }

    /// Runs until a `Shutdown` command or until every sender is gone.
    pub fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let mut group = Group::default();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append {
                        stream,
                        req,
                        ops,
                        reply,
                    } => {
                        group.bytes += batch::encoded_len(&req.records);
                        let res = self.stage_append(&mut group, &stream, req, ops);
                        group.replies.push((reply, res));
                    }
                    Command::StateChunk {
                        stream,
                        chunk,
                        reply,
                    } => {
                        let st = Self::staged(&mut group.staged, &mut group.order, &stream);
                        let outcome = if st.deleted {
                            ChunkOutcome::Stale
                        } else {
                            let tail = st.next_offset;
                            state::stage_chunk(
                                &self.shared,
                                &mut group.wb,
                                &mut st.kv,
                                stream.id,
                                &chunk,
                                tail,
                            )
                        };
                        group.chunk_replies.push((reply, outcome));
                    }
                    Command::Create {
                        name,
                        config,
                        state,
                        records,
                        close,
                        reply,
                    } => {
                        self.flush(&mut group);
                        let _ = reply.send(self.create(&name, config, state, records, close));
                    }
                    Command::SetState {
                        name,
                        mode,
                        profile,
                        reply,
                    } => {
                        self.flush(&mut group);
                        let _ = reply.send(self.set_state(&name, mode, profile));
                    }
                    Command::Fork { name, req, reply } => {
                        self.flush(&mut group);
                        let _ = reply.send(crate::fork::create_fork(&mut self, &name, req));
                    }
                    Command::Delete {
                        name,
                        only_id,
                        reply,
                    } => {
                        self.flush(&mut group);
                        let res = self.delete(&name, only_id);
                        if let Some(r) = reply {
                            let _ = r.send(res);
                        }
                    }
                    Command::Trim {
                        stream,
                        before,
                        reply,
                    } => {
                        self.flush(&mut group);
                        let res = self.trim(&stream, before);
                        if let Some(r) = reply {
                            let _ = r.send(res);
                        }
                    }
                    Command::Shutdown => {
                        self.flush(&mut group);
                        self.end_followers();
                        return;
                    }
                }
                if group.bytes >= self.shared.config.max_group_bytes {
                    break;
                }
                next = self.rx.try_recv().ok();
            }
            self.flush(&mut group);
        }
    }

    /// The stream's staged state in this group, staged from its live state
    /// on first use. Takes the group's fields apart so the caller can keep
    /// writing to the batch meanwhile.
    fn staged<'g>(
        staged: &'g mut HashMap<u64, Staged>,
        order: &mut Vec<u64>,
        stream: &Arc<StreamState>,
    ) -> &'g mut Staged {
        match staged.entry(stream.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let live = stream.live.lock();
                order.push(stream.id);
                e.insert(Staged {
                    stream: stream.clone(),
                    next_offset: live.next_offset,
                    closed: live.closed,
                    last_stream_seq: live.last_stream_seq.clone(),
                    producers: HashMap::new(),
                    batches: Vec::new(),
                    meta_dirty: false,
                    deleted: live.deleted,
                    kv: live.kv.clone(),
                })
            }
        }
    }

    fn stage_append(
        &self,
        g: &mut Group,
        stream: &Arc<StreamState>,
        req: AppendRequest,
        ops: Option<state::ops::Ops>,
    ) -> Result<AppendResult> {
        let st = Self::staged(&mut g.staged, &mut g.order, stream);
        if st.deleted {
            return Err(Error::NotFound);
        }
        if let Some(tag) = &req.producer {
            let known = match st.producers.get(&tag.id) {
                Some(s) => Some(*s),
                None => stream.live.lock().producers.get(&tag.id).copied(),
            };
            if let ProducerCheck::Duplicate(s) = producer::check(known.as_ref(), tag)? {
                return Ok(AppendResult {
                    first_offset: s.last_first_offset,
                    next_offset: s.last_next_offset,
                    duplicate: true,
                    closed: st.closed,
                    producer: Some((s.epoch, s.last_seq)),
                });
            }
        }
        if st.closed {
            if req.records.is_empty() && req.close {
                // Closing a closed stream is idempotent.
                return Ok(AppendResult {
                    first_offset: st.next_offset,
                    next_offset: st.next_offset,
                    duplicate: false,
                    closed: true,
                    producer: None,
                });
            }
            return Err(Error::Closed {
                next_offset: st.next_offset,
            });
        }
        if req.records.is_empty() && !req.close {
            return Err(Error::EmptyAppend);
        }
        if let Some(ct) = &req.content_type {
            if media_type(ct) != media_type(&stream.config.content_type) {
                return Err(Error::ContentTypeMismatch {
                    expected: stream.config.content_type.clone(),
                    got: ct.clone(),
                });
            }
        }
        if let (Some(seq), Some(last)) = (&req.stream_seq, &st.last_stream_seq) {
            if seq <= last {
                return Err(Error::StreamSeqRegression {
                    last: last.clone(),
                    received: seq.clone(),
                });
            }
        }

        let first = st.next_offset;
        if !req.records.is_empty() {
            let raw = batch::encode(&req.records, now_ms());
            g.wb.put_cf(&self.shared.cf(CF_WAL), wal_key(stream.id, first), &raw);
            state::stage(
                &self.shared,
                &mut g.wb,
                &st.kv,
                stream.id,
                first,
                &req.records,
                ops.as_ref(),
            );
            st.batches
                .push(Batch::from_encoded(first, Bytes::from(raw)));
            st.next_offset += req.records.len() as u64;
        }
        if req.close {
            st.closed = true;
            st.meta_dirty = true;
        }
        if let Some(seq) = req.stream_seq {
            st.last_stream_seq = Some(seq);
            st.meta_dirty = true;
        }
        let mut producer_out = None;
        if let Some(tag) = &req.producer {
            let state = ProducerState {
                epoch: tag.epoch,
                last_seq: tag.seq,
                last_first_offset: first,
                last_next_offset: st.next_offset,
            };
            g.wb.put_cf(
                &self.shared.cf(CF_PRODUCERS),
                producer_key(stream.id, &tag.id),
                state.encode(),
            );
            st.producers.insert(tag.id.clone(), state);
            producer_out = Some((tag.epoch, tag.seq));
        }
        stream.touch(now_ms());
        Ok(AppendResult {
            first_offset: first,
            next_offset: st.next_offset,
            duplicate: false,
            closed: st.closed,
            producer: producer_out,
        })
    }

    /// Writes the group, publishes it and answers its requests.
    fn flush(&self, g: &mut Group) {
        let mut g = std::mem::take(g);
        for id in &g.order {
            let st = g.staged.get_mut(id).expect("staged stream");
            state::finish(&self.shared, &mut g.wb, &mut st.kv, *id, st.next_offset);
            if st.meta_dirty {
                let meta = st
                    .stream
                    .meta(st.closed, st.last_stream_seq.clone(), &st.kv);
                g.wb.put_cf(
                    &self.shared.cf(CF_STREAMS),
                    st.stream.name.as_bytes(),
                    meta.encode(),
                );
            }
        }
        let started = std::time::Instant::now();
        let wrote = !g.wb.is_empty();
        let written = if wrote {
            self.shared
                .db
                .write_opt(std::mem::take(&mut g.wb), &self.write_opts)
        } else {
            Ok(())
        };
        if wrote {
            self.count_group(&g, started.elapsed(), written.is_ok());
        }
        match written {
            Ok(()) => {
                for id in &g.order {
                    let st = g.staged.remove(id).expect("staged stream");
                    let mut live = st.stream.live.lock();
                    if live.deleted {
                        continue;
                    }
                    live.next_offset = st.next_offset;
                    live.closed = st.closed;
                    live.last_stream_seq = st.last_stream_seq;
                    live.producers.extend(st.producers);
                    live.kv = st.kv;
                    hub::publish(&mut live, &st.batches, st.closed);
                    drop(live);
                    if !st.batches.is_empty() {
                        self.shared.touch.note_append(st.stream.id);
                    }
                    for b in &st.batches {
                        self.shared.file_cache.offer(st.stream.id, b);
                    }
                }
                for (reply, res) in g.replies {
                    let _ = reply.send(res);
                }
                for (reply, outcome) in g.chunk_replies {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit group write failed");
                let err = Error::from(e);
                for (reply, res) in g.replies {
                    let _ = reply.send(res.and(Err(err.clone())));
                }
                for (reply, _) in g.chunk_replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Adds a written group to the engine's counters.
    fn count_group(&self, g: &Group, took: std::time::Duration, ok: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.shared.stats;
        if !ok {
            stats.failed_groups.fetch_add(1, Relaxed);
            return;
        }
        let (mut records, mut bytes) = (0u64, 0u64);
        for st in g.staged.values() {
            for b in &st.batches {
                records += b.len() as u64;
                bytes += b.raw().len() as u64;
            }
        }
        let appends = g
            .replies
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|r| !r.duplicate))
            .count();
        stats.appends.fetch_add(appends as u64, Relaxed);
        stats.records.fetch_add(records, Relaxed);
        stats.bytes.fetch_add(bytes, Relaxed);
        stats.groups.fetch_add(1, Relaxed);
        stats.group_size.observe(g.replies.len() as f64);
        stats.write_seconds.observe(took.as_secs_f64());
    }

    fn create(
        &mut self,
        name: &str,
        config: StreamConfig,
        mode: StateMode,
        records: Vec<Record>,
        close: bool,
    ) -> Result<CreateOutcome> {
        let now = now_ms();
        let existing = self.shared.streams.read().get(name).cloned();
        if let Some(s) = existing {
            if crate::fork::pins_name(&s, now) {
                return Err(Error::ConfigConflict);
            }
            if !s.is_expired(now) {
                // A create that names no state mode matches any: the mode
                // may have been set after creation.
                let mode_differs = mode != StateMode::None && s.live.lock().kv.mode != mode;
                if s.config != config || mode_differs {
                    return Err(Error::ConfigConflict);
                }
                return Ok(CreateOutcome {
                    created: false,
                    info: s.info(),
                });
            }
            self.delete(name, Some(s.id))?;
        }
        let id = self.next_id;
        let meta = StreamMeta {
            id,
            config,
            created_at_ms: now,
            closed: close,
            last_stream_seq: None,
            state: mode,
            profile: None,
        };
        let mut wb = WriteBatch::default();
        wb.put_cf(&self.shared.cf(CF_STREAMS), name.as_bytes(), meta.encode());
        let kv = state::stage_create(&self.shared, &mut wb, id, mode, &records);
        wb.put_cf(
            &self.shared.cf(CF_STREAMS),
            NEXT_ID_KEY,
            (id + 1).to_le_bytes(),
        );
        let n = records.len() as u64;
        if n > 0 {
            wb.put_cf(
                &self.shared.cf(CF_WAL),
                wal_key(id, 0),
                batch::encode(&records, now),
            );
        }
        self.shared.db.write_opt(wb, &self.write_opts)?;
        Ok(self.install(name, meta, n, now, |s| s.live.lock().kv = kv))
    }

    /// Changes a stream's state mode: the old state is removed, and a
    /// stream with history starts building the new one in the background.
    /// Setting the same mode again only stores the new profile.
    fn set_state(
        &mut self,
        name: &str,
        mode: StateMode,
        profile: Option<String>,
    ) -> Result<StateStatus> {
        let s = self
            .shared
            .streams
            .read()
            .get(name)
            .cloned()
            .ok_or(Error::NotFound)?;
        let (closed, seq, old, tail) = {
            let l = s.live.lock();
            if l.deleted || l.soft_deleted {
                return Err(Error::NotFound);
            }
            (
                l.closed,
                l.last_stream_seq.clone(),
                l.kv.clone(),
                l.next_offset,
            )
        };
        state::check_mode(&s.config.content_type, mode)?;
        if mode != StateMode::None && s.live.lock().head > 0 {
            // The state is built from the whole history, which is gone.
            return Err(Error::Invalid(
                "the stream's oldest records were trimmed: it cannot keep state".into(),
            ));
        }
        let mut wb = WriteBatch::default();
        let mut kv = if old.mode == mode {
            old.clone()
        } else {
            state::stage_mode_change(&self.shared, &mut wb, s.id, &old, mode, tail)
        };
        crate::touch::stage_profile(
            &self.shared,
            &mut wb,
            s.id,
            old.profile.as_deref(),
            profile.as_deref(),
            tail,
        );
        kv.profile = profile.map(std::sync::Arc::from);
        let meta = s.meta(closed, seq, &kv);
        wb.put_cf(&self.shared.cf(CF_STREAMS), name.as_bytes(), meta.encode());
        self.shared.db.write_opt(wb, &self.write_opts)?;
        let status = kv.status();
        let (building, generation) = (kv.building, kv.generation);
        s.live.lock().kv = kv;
        self.shared.touch.note_changed();
        if building {
            state::spawn_builder(Arc::clone(&self.shared), self.tx.clone(), s, generation);
        }
        Ok(status)
    }

    /// Makes a stream whose creation was just written visible by name and
    /// consumes its id; `prepare` sets up in-memory state before it is shared.
    pub(crate) fn install(
        &mut self,
        name: &str,
        meta: StreamMeta,
        next_offset: u64,
        now: u64,
        prepare: impl FnOnce(&StreamState),
    ) -> CreateOutcome {
        self.next_id = meta.id + 1;
        let state = Arc::new(StreamState::new(name, meta, next_offset, now));
        prepare(&state);
        let info = state.info();
        self.shared
            .streams
            .write()
            .insert(Arc::clone(&state.name), state);
        CreateOutcome {
            created: true,
            info,
        }
    }

    /// Ends every live follower: no batch will be published any more.
    fn end_followers(&self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let streams: Vec<_> = self.shared.streams.read().values().cloned().collect();
        for s in streams {
            hub::end_all_shutdown(&mut s.live.lock());
        }
    }

    pub(crate) fn delete(&self, name: &str, only_id: Option<u64>) -> Result<()> {
        let Some(s) = self.shared.streams.read().get(name).cloned() else {
            return Err(Error::NotFound);
        };
        if only_id.is_some_and(|id| id != s.id) {
            return Err(Error::NotFound);
        }
        if crate::fork::soft_delete_if_forked(self, &s)? {
            self.shared.touch.note_changed();
            return Ok(());
        }
        let mut wb = WriteBatch::default();
        wb.delete_cf(&self.shared.cf(CF_STREAMS), name.as_bytes());
        let (lo, hi) = stream_range(s.id);
        for cf in PER_STREAM_CFS {
            wb.delete_range_cf(&self.shared.cf(cf), lo, hi);
        }
        // Mark the stream deleted before its keys vanish, so a reader that
        // finds data missing below the tail can tell a delete from corruption.
        s.live.lock().deleted = true;
        if let Err(e) = self.shared.db.write_opt(wb, &self.write_opts) {
            s.live.lock().deleted = false;
            return Err(e.into());
        }
        self.shared.streams.write().remove(name);
        self.shared.file_cache.forget(s.id);
        for cf in PER_STREAM_CFS {
            self.shared.reclaim.queue(cf, &lo, &hi);
        }
        hub::end_all_deleted(&mut s.live.lock());
        crate::fork::release_parent(self, &s);
        self.shared.touch.note_changed();
        Ok(())
    }
}
