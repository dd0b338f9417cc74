//! The outbound queue of one WebSocket connection: the messages its
//! requests and subscriptions send, in wire order, for the writer task.
//!
//! A plain `VecDeque` under a lock rather than a tokio channel: the channel
//! allocates a 32-slot block (about 3 KiB of `Out`) for every connection at
//! its creation and keeps it however idle the connection is, while this
//! queue holds nothing until a message waits and gives its room back when it
//! runs empty. Bytes are bounded by the send budget (see `sink.rs`), not
//! here. One consumer (the writer); a ping request is a flag beside the
//! queue, answered before the messages waiting.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Room kept when the queue runs empty; a larger one is freed.
const KEEP: usize = 8;

/// What the writer takes next.
pub(super) enum Next<T> {
    /// Send a ping.
    Ping,
    /// Write this message.
    Item(T),
    /// Every sender is gone and nothing is left.
    Done,
}

/// A connection's outbound queue.
pub(super) struct Queue<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    ping: AtomicBool,
}

struct State<T> {
    items: VecDeque<T>,
    /// The writer stopped: sends fail.
    closed: bool,
    /// The senders are gone: the writer ends once the queue is empty.
    finished: bool,
}

impl<T> Queue<T> {
    /// An empty queue; it allocates nothing until a message waits.
    pub(super) fn new() -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                finished: false,
            }),
            ready: Notify::new(),
            ping: AtomicBool::new(false),
        }
    }

    /// Queues `item` behind everything queued; gives it back if the writer
    /// has stopped.
    pub(super) fn push(&self, item: T) -> Result<(), T> {
        {
            let mut s = self.state.lock();
            if s.closed {
                return Err(item);
            }
            s.items.push_back(item);
        }
        // One consumer: a stored permit covers a writer not yet waiting.
        self.ready.notify_one();
        Ok(())
    }

    /// Asks the writer for a ping (at most one waits at a time).
    pub(super) fn ping(&self) {
        if !self.ping.swap(true, Ordering::AcqRel) {
            self.ready.notify_one();
        }
    }

    /// No sender will push again: the writer ends once the queue is empty.
    pub(super) fn finish(&self) {
        self.state.lock().finished = true;
        self.ready.notify_one();
    }

    /// Whether no message waits.
    pub(super) fn is_empty(&self) -> bool {
        self.state.lock().items.is_empty()
    }

    /// Refuses further messages and returns those still queued.
    pub(super) fn close(&self) -> VecDeque<T> {
        let mut s = self.state.lock();
        s.closed = true;
        std::mem::take(&mut s.items)
    }

    /// The next thing to do: a ping first, then the oldest message.
    pub(super) async fn next(&self) -> Next<T> {
        loop {
            if self.ping.swap(false, Ordering::AcqRel) {
                return Next::Ping;
            }
            {
                let mut s = self.state.lock();
                if let Some(item) = s.items.pop_front() {
                    if s.items.is_empty() && s.items.capacity() > KEEP {
                        s.items.shrink_to(KEEP);
                    }
                    return Next::Item(item);
                }
                if s.finished {
                    return Next::Done;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// The writer's hold on its queue: when the writer stops for any reason
/// (its task aborted included), the queue refuses further messages and
/// drops those waiting, giving their send budget back at once rather than
/// when the last sender goes away.
pub(super) struct Consumer<T>(pub(super) std::sync::Arc<Queue<T>>);

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        drop(self.0.close());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn now<T>(q: &Queue<T>) -> Option<Next<T>> {
        q.next().now_or_never()
    }

    #[test]
    fn order_pings_first_and_the_end() {
        let q = Queue::new();
        assert!(now(&q).is_none(), "an empty queue waits");
        q.push(1).unwrap();
        q.push(2).unwrap();
        q.ping();
        q.ping();
        assert!(matches!(now(&q), Some(Next::Ping)));
        assert!(matches!(now(&q), Some(Next::Item(1))));
        q.finish();
        assert!(
            matches!(now(&q), Some(Next::Item(2))),
            "finish keeps what is queued"
        );
        assert!(matches!(now(&q), Some(Next::Done)));
    }

    #[test]
    fn a_closed_queue_refuses_and_gives_back() {
        let q = Queue::new();
        q.push(1).unwrap();
        assert_eq!(q.close().into_iter().collect::<Vec<_>>(), vec![1]);
        assert_eq!(q.push(2), Err(2));
        assert!(q.is_empty());
    }

    #[test]
    fn room_is_given_back_when_the_queue_runs_empty() {
        let q = Queue::new();
        for i in 0..1000 {
            q.push(i).unwrap();
        }
        for _ in 0..1000 {
            assert!(matches!(now(&q), Some(Next::Item(_))));
        }
        assert!(q.state.lock().items.capacity() <= KEEP);
    }

    #[test]
    fn a_stopped_writer_releases_what_waits() {
        let q = std::sync::Arc::new(Queue::new());
        let item = std::sync::Arc::new(());
        q.push(std::sync::Arc::clone(&item)).unwrap();
        drop(Consumer(std::sync::Arc::clone(&q)));
        assert_eq!(
            std::sync::Arc::strong_count(&item),
            1,
            "the queued item was dropped"
        );
        assert!(q.push(item).is_err(), "a stopped writer's queue refuses");
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_push() {
        let q = std::sync::Arc::new(Queue::new());
        let w = tokio::spawn({
            let q = std::sync::Arc::clone(&q);
            async move { matches!(q.next().await, Next::Item(7)) }
        });
        tokio::task::yield_now().await;
        q.push(7).unwrap();
        assert!(w.await.unwrap());
    }
}
