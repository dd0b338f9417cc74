//! The storage read pool: a few threads of the engine's own that run
//! catch-up reads (RocksDB iterators, decoding, copies of up to a read
//! budget), so the doors' async runtime threads never wait on storage. A
//! follower or a door hands a read over and awaits its answer; the number
//! of threads bounds how many reads run at once, and every queued read
//! belongs to one waiting reader (a follower has at most one in flight).

use std::future::Future;

use crossbeam::channel::{self, Sender};
use futures::channel::oneshot;
use futures::FutureExt;

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of reader threads fed by one queue. The threads end when
/// the pool is dropped (with the engine's shared state, after its last
/// reader), once the reads already queued are done.
pub(crate) struct ReadPool {
    tx: Sender<Job>,
}

impl ReadPool {
    /// Starts `threads` reader threads (at least one).
    pub fn start(threads: usize) -> Result<ReadPool> {
        let (tx, rx) = channel::unbounded::<Job>();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("weir-read-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .map_err(|e| Error::Storage(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(ReadPool { tx })
    }

    /// Runs `read` on a reader thread; the future resolves to its result
    /// (or `ShutDown` when the pool has stopped).
    pub fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + Unpin + 'static {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(read());
        });
        let _ = self.tx.send(job);
        rx.map(|r| r.unwrap_or(Err(Error::ShutDown)))
    }
}
