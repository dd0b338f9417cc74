//! Live fan-out: the commit thread pushes each committed batch into every
//! follower's bounded lock-free queue and wakes it. It never waits on a
//! follower; one whose queue is full is dropped from the live set and
//! continues from storage (see `follow.rs`), so memory stays bounded and
//! nobody else slows down.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
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

/// One follower's live inbox.
pub(crate) struct Subscriber {
    pub queue: ArrayQueue<Batch>,
    pub waker: AtomicWaker,
    /// Set when the queue overflowed and the subscriber left the live set.
    pub lagged: AtomicBool,
    end: AtomicU8,
}

impl Subscriber {
    pub fn new(capacity: usize) -> Self {
        Subscriber {
            queue: ArrayQueue::new(capacity.max(1)),
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

    fn finish(&self, why: End) {
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
}

/// Tells every subscriber that the engine stopped publishing.
pub(crate) fn end_all_shutdown(live: &mut Live) {
    for s in live.subscribers.drain(..) {
        s.finish(End::ShutDown);
    }
}

/// Removes one subscriber (a follower that was dropped).
pub(crate) fn unsubscribe(live: &mut Live, sub: &Arc<Subscriber>) {
    live.subscribers.retain(|s| !Arc::ptr_eq(s, sub));
}
