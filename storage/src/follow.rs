//! Following a stream: catch-up from storage, then live batches from the hub,
//! with every record delivered exactly once and in order.
//!
//! The follower tracks the next offset it owes its reader. It reads storage
//! until it reaches the published tail, then registers in the live set under
//! the stream's lock only if the tail is still where it read up to: that is
//! the fence, and the commit thread publishes under the same lock, so every
//! later batch reaches the queue. Batches are also trimmed by offset, so a
//! record can never be delivered twice. If the live queue overflows, the
//! follower drains what it has, returns to storage from its next offset, and
//! registers again.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use crate::batch::Batch;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::hub::{self, End, Subscriber};
use crate::shared::Shared;
use crate::stream::StreamState;

/// Where a follower starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowFrom {
    /// The first record of the stream.
    Start,
    /// A given offset (at most the tail).
    Offset(u64),
    /// The tail at registration: only records appended afterwards.
    Now,
}

/// An async stream of committed batches of one stream, from a fence offset
/// on, without gap or duplicate. It ends (`None`) when a closed stream has
/// been read to its end, and yields `Err(NotFound)` once if the stream is
/// deleted. Catch-up reads, bounded by `EngineConfig::follower_read_bytes`,
/// run on the engine's reader threads (`read_pool.rs`), never in `poll_next`.
pub struct Follower {
    shared: Arc<Shared>,
    stream: Arc<StreamState>,
    fence: u64,
    next: u64,
    sub: Option<Arc<Subscriber>>,
    pending: VecDeque<Batch>,
    /// The catch-up read in flight on a reader thread, if any.
    reading: Option<Reading>,
    done: bool,
}

type Reading = Pin<Box<dyn std::future::Future<Output = Result<Vec<Batch>>> + Send>>;

impl Follower {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn new(
        shared: Arc<Shared>,
        stream: Arc<StreamState>,
        from: FollowFrom,
    ) -> Result<Self> {
        let tail = stream.live.lock().next_offset;
        let fence = match from {
            FollowFrom::Start => 0,
            FollowFrom::Now => tail,
            FollowFrom::Offset(o) if o <= tail => o,
            FollowFrom::Offset(o) => return Err(Error::OffsetOutOfRange { offset: o, tail }),
        };
        Ok(Follower {
            shared,
            stream,
            fence,
            next: fence,
            sub: None,
            pending: VecDeque::new(),
            reading: None,
            done: false,
        })
    }

    /// The offset the follower started at.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The offset of the next record this follower will yield.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Whether a catch-up read is in flight: a poll that answered `Pending`
    /// then did not mean "caught up", only "wait for storage".
    pub fn is_reading(&self) -> bool {
        self.reading.is_some()
    }

    /// Name of the followed stream.
    pub fn stream_name(&self) -> &str {
        &self.stream.name
    }

    /// The followed stream.
    pub(crate) fn stream(&self) -> &Arc<StreamState> {
        &self.stream
    }

    /// Runs `f` under the stream's lock if this follower has delivered
    /// everything up to the tail and nothing more is queued for it: the
    /// point at which a reader may hand its place to another mechanism
    /// without gap or duplicate. `None` otherwise (or for a closed or
    /// deleted stream).
    pub(crate) fn at_tail<R>(&self, f: impl FnOnce(&mut crate::stream::Live) -> R) -> Option<R> {
        if self.done || self.reading.is_some() || !self.pending.is_empty() {
            return None;
        }
        let sub = self.sub.as_ref()?;
        let mut live = self.stream.live.lock();
        let idle =
            sub.queue.is_empty() && !sub.lagged.load(Ordering::Acquire) && sub.end() == End::Open;
        if live.deleted || live.closed || live.next_offset != self.next || !idle {
            return None;
        }
        Some(f(&mut live))
    }

    fn leave_live_set(&mut self) {
        if let Some(sub) = self.sub.take() {
            hub::unsubscribe(&mut self.stream.live.lock(), &sub);
        }
    }

    /// One step of catch-up: a read from storage (started, or finished),
    /// or registration live when caught up. `Ready(Ok(Some(_)))` means
    /// "look again", `Ready(Ok(None))` the end of a closed stream.
    fn catch_up(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<bool>>> {
        if let Some(reading) = &mut self.reading {
            let batches = match reading.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    self.reading = None;
                    r.map_err(|e| crate::engine::deleted_or(&self.stream, e))?
                }
            };
            self.stream.touch(now_ms());
            for b in batches {
                // A read started before a live gap resumed may overlap.
                if let Some(b) = b.skip_to(self.next) {
                    self.next = b.next_offset();
                    self.pending.push_back(b);
                }
            }
            return Poll::Ready(Ok(Some(true)));
        }
        Poll::Ready(self.catch_up_now())
    }

    fn catch_up_now(&mut self) -> Result<Option<bool>> {
        let (tail, closed, deleted) = {
            let l = self.stream.live.lock();
            (l.next_offset, l.closed, l.deleted)
        };
        if deleted {
            return Err(Error::NotFound);
        }
        if self.next < tail {
            let budget = self.shared.config.follower_read_bytes;
            let (shared, stream, from) = (
                Arc::clone(&self.shared),
                Arc::clone(&self.stream),
                self.next,
            );
            let read = self
                .shared
                .reads
                .run(move || crate::fork::read_stream(&shared, &stream, from, tail, budget));
            self.reading = Some(Box::pin(read));
            return Ok(Some(true));
        }
        if closed {
            return Ok(None);
        }
        let mut live = self.stream.live.lock();
        if live.deleted {
            return Err(Error::NotFound);
        }
        if self.shared.stopped.load(Ordering::SeqCst) {
            return Err(Error::ShutDown);
        }
        if live.next_offset != self.next || live.closed {
            return Ok(Some(true)); // moved on meanwhile; read again
        }
        let sub = Arc::new(Subscriber::new(self.shared.config.follower_queue));
        live.subscribers.push(Arc::clone(&sub));
        self.sub = Some(sub);
        Ok(Some(false))
    }
}

impl Stream for Follower {
    type Item = Result<Batch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            if let Some(b) = this.pending.pop_front() {
                this.shared
                    .stats
                    .delivered
                    .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                return Poll::Ready(Some(Ok(b)));
            }
            let Some(sub) = this.sub.clone() else {
                match this.catch_up(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(Some(_))) => continue,
                    Poll::Ready(Ok(None)) => {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Err(e)) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            };
            let mut got = false;
            while let Some(b) = sub.queue.pop() {
                let Some(b) = b.skip_to(this.next) else {
                    continue;
                };
                if b.first_offset() != this.next {
                    // Cannot happen while the fence holds; recover from storage anyway.
                    tracing::warn!(stream = %this.stream.name, "live gap; resuming from storage");
                    this.leave_live_set();
                    got = true;
                    break;
                }
                this.next = b.next_offset();
                this.pending.push_back(b);
                got = true;
                if this.pending.len() >= 64 {
                    break;
                }
            }
            if got {
                continue;
            }
            if sub.lagged.load(Ordering::Acquire) {
                this.shared.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                this.sub = None; // the hub already removed it; catch up from storage
                continue;
            }
            match sub.end() {
                End::Closed => {
                    this.sub = None; // final batches were queued before the end mark
                    continue;
                }
                End::Deleted => {
                    this.sub = None;
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::NotFound)));
                }
                End::ShutDown => {
                    this.sub = None;
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::ShutDown)));
                }
                End::Open => {}
            }
            sub.waker.register(cx.waker());
            if !sub.queue.is_empty() || sub.lagged.load(Ordering::Acquire) || sub.end() != End::Open
            {
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.leave_live_set();
    }
}
