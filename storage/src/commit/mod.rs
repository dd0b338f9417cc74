//! The commit thread: the engine's only writer. It drains every pending
//! request from the commit queue and turns each into staged writes:
//!
//! - appends and state-build chunks are staged into one *group* against the
//!   stream state earlier requests of the same group left (`group.rs`);
//! - creates, forks, state-mode changes, deletes and trims are planned on
//!   their own (`lifecycle.rs`, `crate::fork`, `crate::retention`), each
//!   after the pending group is written, so name-level changes never
//!   interleave with staged appends.
//!
//! Every plan is a [`write::Write`] and goes through the one write path,
//! [`Committer::write`]: one RocksDB `WriteBatch` (one fsync in `sync`
//! mode), then the in-memory effects in order (live state, followers,
//! caches, touch, new or removed streams), then the engine's commit hooks.
//! Only after that are the requests answered.

mod group;
mod lifecycle;
pub(crate) mod queue;
pub(crate) mod write;

use std::sync::Arc;

use crossbeam::channel::Receiver;
use futures::channel::oneshot;
use rocksdb::WriteOptions;

use crate::config::Durability;
use crate::error::Result;
use crate::meta::{StreamConfig, StreamInfo};
use crate::producer::ProducerTag;
use crate::record::Record;
use crate::shared::Shared;
use crate::state::{self, ChunkOutcome, StateMode, StateStatus};
use crate::stream::StreamState;
use group::Group;
use queue::{CommitQueue, Queued};

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

/// The outcome of a request the commit thread has queued: resolves once
/// the write holding it is durable (or failed). Dropping it does not
/// withdraw the request.
#[must_use = "the request is queued; await this to learn its outcome"]
pub struct Pending<T>(pub(crate) oneshot::Receiver<Result<T>>);

impl<T> std::future::Future for Pending<T> {
    type Output = Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(crate::error::Error::ShutDown)))
    }
}

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

pub(crate) struct Committer {
    pub(crate) shared: Arc<Shared>,
    rx: Receiver<Queued>,
    /// For state builders, which talk to this thread through the same queue.
    pub(crate) tx: CommitQueue,
    pub(crate) next_id: u64,
    pub(crate) write_opts: WriteOptions,
}

impl Committer {
    pub fn new(shared: Arc<Shared>, rx: Receiver<Queued>, tx: CommitQueue, next_id: u64) -> Self {
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

    /// The next request; while writes fail, waits at most a probe interval
    /// for it and probes the disk when none comes (see `write_health.rs`).
    /// `None` once every sender is gone.
    fn next_request(&mut self) -> Option<Queued> {
        use crossbeam::channel::RecvTimeoutError;
        loop {
            if !self.shared.health.is_faulted() {
                return self.rx.recv().ok();
            }
            match self.rx.recv_timeout(crate::write_health::PROBE_INTERVAL) {
                Ok(q) => return Some(q),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => self.probe(),
            }
        }
    }

    /// Retries the disk with a write that changes nothing: the stream-id
    /// counter rewritten with the value it already holds. It goes through
    /// the one write path, so its success clears the fault like any other.
    fn probe(&mut self) {
        let mut wb = rocksdb::WriteBatch::default();
        wb.put_cf(
            &self.shared.cf(crate::keys::CF_STREAMS),
            crate::keys::NEXT_ID_KEY,
            self.next_id.to_le_bytes(),
        );
        let _ = self.write(write::Write::new(wb));
    }

    /// Runs until a `Shutdown` command or until every sender is gone.
    pub fn run(mut self) {
        while let Some(first) = self.next_request() {
            let mut group = Group::default();
            // Taking a request out of the queue gives its permit back.
            let mut next = Some(first.into_cmd());
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append {
                        stream,
                        req,
                        ops,
                        reply,
                    } => group.append(&self, &stream, req, ops, reply),
                    Command::StateChunk {
                        stream,
                        chunk,
                        reply,
                    } => group.chunk(&self, &stream, &chunk, reply),
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
                        let _ = reply.send(self.fork(&name, &req));
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
                next = self.rx.try_recv().ok().map(Queued::into_cmd);
            }
            self.flush(&mut group);
        }
    }
}
