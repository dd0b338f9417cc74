//! Building the state of a stream that already has history (state turned on
//! later, or a fork of a state stream). A builder thread reads the log in
//! chunks, derives each chunk's changes off the commit thread, and hands
//! them to the commit thread as one small command per chunk; the commit
//! thread writes a chunk only if it continues exactly where the state is
//! (same mode generation, same applied offset), so a stale builder can never
//! write. Appends keep flowing meanwhile and write no state; the build ends
//! in the group where a chunk reaches the staged tail, and from then on
//! appends write state inline.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::ops::{self, Op};
use crate::commit::queue::CommitQueue;
use crate::commit::Command;
use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::stream::StreamState;

/// Record bytes one chunk reads; the commit thread writes a chunk's changes
/// in about the time of an append of this size.
const CHUNK_BYTES: usize = 1 << 20;

/// One chunk of a build: the changes of records `[from, to)`.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub generation: u64,
    pub from: u64,
    pub to: u64,
    /// Changes with absolute offsets (`at` is the record's offset).
    pub ops: Vec<Op>,
}

/// What the commit thread made of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkOutcome {
    /// Written, and the state has reached the tail: the build is over.
    Done,
    /// Written; more history remains.
    More,
    /// Not written: the state moved on (a newer mode, or a deleted stream).
    Stale,
}

/// Starts a builder for `stream` in mode generation `generation`, from the
/// state's current applied offset.
pub(crate) fn spawn_builder(
    shared: Arc<Shared>,
    tx: CommitQueue,
    stream: Arc<StreamState>,
    generation: u64,
) {
    let name = format!("weir-state-{}", stream.id);
    let keep = Arc::clone(&shared);
    let handle = std::thread::Builder::new().name(name).spawn(move || {
        if let Err(e) = run(&shared, &tx, &stream, generation) {
            match e {
                Error::ShutDown | Error::NotFound => {}
                e => tracing::error!(stream = %stream.name, error = %e, "state build failed"),
            }
        }
    });
    match handle {
        Ok(h) => keep.builders.lock().push(h),
        Err(e) => tracing::error!(error = %e, "cannot start a state builder thread"),
    }
}

fn run(
    shared: &Shared,
    tx: &CommitQueue,
    stream: &Arc<StreamState>,
    generation: u64,
) -> Result<()> {
    let (mode, mut from) = {
        let l = stream.live.lock();
        if l.kv.generation != generation || !l.kv.building {
            return Ok(());
        }
        (l.kv.mode, l.kv.applied)
    };
    loop {
        if shared.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::ShutDown);
        }
        let (tail, deleted) = {
            let l = stream.live.lock();
            (l.next_offset, l.deleted)
        };
        if deleted {
            return Err(Error::NotFound);
        }
        let batches = crate::fork::read_stream(shared, stream, from, tail, CHUNK_BYTES)?;
        let mut ops = Vec::new();
        let mut to = from;
        for b in &batches {
            let base = b.first_offset();
            let derived =
                ops::derive_lenient(mode, b.iter().map(|r| (r.key, r.payload, r.tombstone)));
            ops.extend(derived.into_iter().map(|op| shift(op, base)));
            to = b.next_offset();
        }
        let (reply, rx) = futures::channel::oneshot::channel();
        let chunk = Chunk {
            generation,
            from,
            to,
            ops,
        };
        if !tx.send_blocking(Command::StateChunk {
            stream: Arc::clone(stream),
            chunk,
            reply,
        }) {
            return Err(Error::ShutDown);
        }
        match futures::executor::block_on(rx) {
            Ok(Ok(ChunkOutcome::Done | ChunkOutcome::Stale)) => return Ok(()),
            Ok(Ok(ChunkOutcome::More)) => from = to,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::ShutDown),
        }
    }
}

fn shift(op: Op, base: u64) -> Op {
    match op {
        Op::Put { at, key, value } => Op::Put {
            at: at + base,
            key,
            value,
        },
        Op::Delete { at, key } => Op::Delete { at: at + base, key },
        Op::Reset { at } => Op::Reset { at: at + base },
    }
}

/// Joins finished builder threads (all of them when the engine stops).
pub(crate) fn join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.join();
    }
}
