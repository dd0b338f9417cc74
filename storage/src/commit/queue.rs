//! The commit queue: how requests reach the commit thread. It is bounded by
//! permits, not by the channel: a request takes a permit before it is
//! queued and gives it back when the commit thread takes it out. Async
//! callers (the doors) wait for a permit without blocking their runtime
//! thread; the engine's own threads (state builders, the reaper, the touch
//! thread) wait on their own threads; a best-effort request (the removal of
//! an expired stream noticed by a read) is dropped when the queue is full.

use std::sync::Arc;

use crossbeam::channel::{self, Receiver, Sender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Command;

/// A request in the queue with the permit it holds.
pub(crate) struct Queued {
    cmd: Command,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Queued {
    /// Takes the request out, giving its permit back at once.
    pub fn into_cmd(self) -> Command {
        self.cmd
    }
}

/// The sending side of the commit queue. Cheap to clone.
#[derive(Clone)]
pub(crate) struct CommitQueue {
    tx: Sender<Queued>,
    permits: Arc<Semaphore>,
}

impl CommitQueue {
    /// A queue of at most `capacity` waiting requests, and its receiver.
    pub fn new(capacity: usize) -> (CommitQueue, Receiver<Queued>) {
        let (tx, rx) = channel::unbounded();
        let q = CommitQueue {
            tx,
            permits: Arc::new(Semaphore::new(capacity.max(1))),
        };
        (q, rx)
    }

    /// Queues `cmd`, waiting asynchronously for room. Returns false when
    /// the commit thread is gone.
    pub async fn send(&self, cmd: Command) -> bool {
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            return false;
        };
        self.push(cmd, Some(permit))
    }

    /// Queues `cmd` from one of the engine's own threads, blocking it
    /// until there is room.
    pub fn send_blocking(&self, cmd: Command) -> bool {
        match futures::executor::block_on(Arc::clone(&self.permits).acquire_owned()) {
            Ok(permit) => self.push(cmd, Some(permit)),
            Err(_) => false,
        }
    }

    /// Queues `cmd` if there is room now; drops it otherwise.
    pub fn try_send(&self, cmd: Command) -> bool {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => self.push(cmd, Some(permit)),
            Err(_) => false,
        }
    }

    /// Queues the shutdown request, which must get through however full
    /// the queue is.
    pub fn send_shutdown(&self) {
        let _ = self.push(Command::Shutdown, None);
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    fn push(&self, cmd: Command, permit: Option<OwnedSemaphorePermit>) -> bool {
        self.tx
            .send(Queued {
                cmd,
                _permit: permit,
            })
            .is_ok()
    }
}
