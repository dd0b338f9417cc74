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
use crate::record::Record;

/// A request in the queue with the permits it holds (its place, its bytes).
pub(crate) struct Queued {
    cmd: Command,
    _permit: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl Queued {
    /// Takes the request out, giving its permits back at once (the commit
    /// group it joins is bounded by `max_group_bytes`).
    pub fn into_cmd(self) -> Command {
        self.cmd
    }
}

/// The sending side of the commit queue. Cheap to clone.
#[derive(Clone)]
pub(crate) struct CommitQueue {
    tx: Sender<Queued>,
    permits: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    bytes_limit: usize,
}

/// Memory a queued request's records hold: each `Record` and its bytes.
fn memory(cmd: &Command) -> usize {
    let records: &[Record] = match cmd {
        Command::Append { req, .. } => &req.records,
        Command::Create { records, .. } => records,
        Command::Fork { req, .. } => &req.records,
        _ => return 0,
    };
    records.iter().fold(0, |n, r| {
        n + std::mem::size_of::<Record>() + r.payload.len() + r.key.as_ref().map_or(0, |k| k.len())
    })
}

impl CommitQueue {
    /// A queue of at most `capacity` waiting requests holding at most
    /// `bytes` of records, and its receiver.
    pub fn new(capacity: usize, bytes: usize) -> (CommitQueue, Receiver<Queued>) {
        let (tx, rx) = channel::unbounded();
        let bytes_limit = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let q = CommitQueue {
            tx,
            permits: Arc::new(Semaphore::new(capacity.max(1))),
            bytes: Arc::new(Semaphore::new(bytes_limit)),
            bytes_limit,
        };
        (q, rx)
    }

    /// The byte permits `cmd` needs: its records' memory, at most the
    /// whole budget.
    fn weight(&self, cmd: &Command) -> u32 {
        memory(cmd).min(self.bytes_limit) as u32
    }

    /// Waits for a place and for `weight` bytes.
    async fn reserve(&self, weight: u32) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let place = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        let bytes = Arc::clone(&self.bytes)
            .acquire_many_owned(weight)
            .await
            .ok()?;
        Some((place, bytes))
    }

    /// Queues `cmd`, waiting asynchronously for room. Returns false when
    /// the commit thread is gone.
    pub async fn send(&self, cmd: Command) -> bool {
        match self.reserve(self.weight(&cmd)).await {
            Some(p) => self.push(cmd, Some(p)),
            None => false,
        }
    }

    /// Queues `cmd` from one of the engine's own threads, blocking it
    /// until there is room.
    pub fn send_blocking(&self, cmd: Command) -> bool {
        match futures::executor::block_on(self.reserve(self.weight(&cmd))) {
            Some(p) => self.push(cmd, Some(p)),
            None => false,
        }
    }

    /// Queues `cmd` if there is room now; drops it otherwise.
    pub fn try_send(&self, cmd: Command) -> bool {
        let place = Arc::clone(&self.permits).try_acquire_owned();
        let bytes = Arc::clone(&self.bytes).try_acquire_many_owned(self.weight(&cmd));
        match (place, bytes) {
            (Ok(place), Ok(bytes)) => self.push(cmd, Some((place, bytes))),
            _ => false,
        }
    }

    /// Bytes of records waiting now.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.bytes_limit - self.bytes.available_permits()
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

    fn push(
        &self,
        cmd: Command,
        permit: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    ) -> bool {
        self.tx
            .send(Queued {
                cmd,
                _permit: permit,
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_requests_are_bounded_by_bytes() {
        let (q, rx) = CommitQueue::new(100, 1000);
        let first = q.reserve(800).await.unwrap();
        assert_eq!(q.held_bytes(), 800);
        let second = tokio::spawn({
            let q = q.clone();
            async move { q.reserve(300).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(
            !second.is_finished(),
            "a full byte budget makes the sender wait"
        );
        drop(first);
        second.await.unwrap().unwrap();
        // The largest request is clamped to the whole budget: it waits for
        // an empty queue instead of forever.
        let big = Command::Shutdown;
        assert_eq!(q.weight(&big), 0);
        let all = q.reserve(q.bytes_limit as u32).await.unwrap();
        assert_eq!(q.held_bytes(), 1000);
        drop((all, rx));
    }
}
