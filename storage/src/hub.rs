//! Live fan-out: the commit thread pushes each committed batch into every
//! follower's bounded lock-free queue and wakes it. It never waits on a
//! follower; one whose queue is full is dropped from the live set and
//! continues from storage (see `follow.rs`), so memory stays bounded and
//! nobody else slows down.
//!
//! A queue allocates as it fills and frees as it drains (crossbeam's
//! `SegQueue`, in blocks of 31 slots, under a length bound): an idle
//! follower holds no slots at all, where a preallocated ring of 1,024
//! would cost about 40 KiB each before any record arrives.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use std::sync::atomic::AtomicUsize;

use crossbeam::queue::SegQueue;
use futures::task::AtomicWaker;

use crate::batch::Batch;
use crate::stream::Live;

/// Why a follower will get no more live batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Open = 0,
    Closed = 1,
    Deleted = 2,
    ShutDown = 3,
}

/// A bounded queue that holds memory only for what it holds.
pub(crate) struct LiveQueue<T = Batch> {
    items: SegQueue<T>,
    len: AtomicUsize,
    capacity: usize,
}

impl<T> LiveQueue<T> {
    fn new(capacity: usize) -> LiveQueue<T> {
        LiveQueue {
            items: SegQueue::new(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    /// Adds `b` unless the queue is full. Only the commit thread pushes
    /// (under the stream lock), so the check and the push cannot race
    /// another push.
    pub fn push(&self, b: T) -> Result<(), T> {
        if self.len.load(Ordering::Acquire) >= self.capacity {
            return Err(b);
        }
        self.len.fetch_add(1, Ordering::AcqRel);
        self.items.push(b);
        Ok(())
    }

    pub fn pop(&self) -> Option<T> {
        let b = self.items.pop()?;
        self.len.fetch_sub(1, Ordering::AcqRel);
        Some(b)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether a push would be refused now.
    pub fn is_full(&self) -> bool {
        self.len.load(Ordering::Acquire) >= self.capacity
    }
}

/// One follower's live inbox (of batches; a state group's members get
/// their changes in one of these too, see `state/fanout.rs`).
pub(crate) struct Subscriber<T = Batch> {
    pub queue: LiveQueue<T>,
    pub waker: AtomicWaker,
    /// Set when the queue overflowed and the subscriber left the live set.
    pub lagged: AtomicBool,
    end: AtomicU8,
}

impl<T> Subscriber<T> {
    pub fn new(capacity: usize) -> Self {
        Subscriber {
            queue: LiveQueue::new(capacity),
            waker: AtomicWaker::new(),
            lagged: AtomicBool::new(false),
            end: AtomicU8::new(End::Open as u8),
        }
    }

    pub fn end(&self) -> End {
        match self.end.load(Ordering::Acquire) {
            1 => End::Closed,
            2 => End::Deleted,
            3 => End::ShutDown,
            _ => End::Open,
        }
    }

    pub(crate) fn finish(&self, why: End) {
        self.end.store(why as u8, Ordering::Release);
        self.waker.wake();
    }
}

/// Delivers `batches` (already durable, in offset order) to every live
/// subscriber. Must be called with the stream's lock held, after `next_offset`
/// was advanced, so that registration and publication are totally ordered.
pub(crate) fn publish(live: &mut Live, batches: &[Batch], closed: bool) {
    live.subscribers.retain(|s| {
        for b in batches {
            if s.queue.push(b.clone()).is_err() {
                s.lagged.store(true, Ordering::Release);
                s.waker.wake();
                return false;
            }
        }
        if closed {
            s.finish(End::Closed);
            return false;
        }
        if !batches.is_empty() {
            s.waker.wake();
        }
        true
    });
}

/// Tells every subscriber that the stream is gone.
pub(crate) fn end_all_deleted(live: &mut Live) {
    for s in live.subscribers.drain(..) {
        s.finish(End::Deleted);
    }
    live.state_groups.end_all(End::Deleted);
}

/// Tells every subscriber that the engine stopped publishing.
pub(crate) fn end_all_shutdown(live: &mut Live) {
    for s in live.subscribers.drain(..) {
        s.finish(End::ShutDown);
    }
    live.state_groups.end_all(End::ShutDown);
}

/// Removes one subscriber (a follower that was dropped).
pub(crate) fn unsubscribe(live: &mut Live, sub: &Arc<Subscriber>) {
    live.subscribers.retain(|s| !Arc::ptr_eq(s, sub));
}

#[cfg(test)]
mod tests {
    use super::LiveQueue;
    use crate::batch::Batch;
    use crate::record::Record;

    fn batch(at: u64) -> Batch {
        let raw = crate::batch::encode(&[Record::new("x")], 0);
        Batch::from_encoded(at, bytes::Bytes::from(raw))
    }

    #[test]
    fn live_queue_keeps_its_bound_and_order() {
        let q = LiveQueue::new(3);
        assert!(q.is_empty());
        for i in 0..3 {
            assert!(q.push(batch(i)).is_ok());
        }
        assert!(q.push(batch(3)).is_err(), "a full queue refuses");
        assert_eq!(q.pop().unwrap().first_offset(), 0);
        assert!(q.push(batch(3)).is_ok(), "room again after a pop");
        let rest: Vec<u64> = std::iter::from_fn(|| q.pop())
            .map(|b| b.first_offset())
            .collect();
        assert_eq!(rest, vec![1, 2, 3]);
        assert!(q.is_empty());
    }
}
