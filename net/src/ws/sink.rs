//! The sending side of one WebSocket connection. Every request and every
//! subscription of the connection sends through one [`WsSink`] into one
//! queue drained by one writer task, because a WebSocket is one ordered
//! byte stream: the queue's order is the wire order, so a subscription's
//! frames stay in order and `Unsubscribed` follows its last `Data`.
//!
//! The queue is bounded in bytes by a semaphore of
//! [`WsConfig::send_buffer_bytes`](super::WsConfig::send_buffer_bytes)
//! permits: a message holds permits for its length until the writer hands
//! it to the socket. When the peer reads slowly, senders wait here; a
//! subscription task waiting here stops polling its engine follower, whose
//! queue then overflows and falls back to storage (storage/src/follow.rs),
//! so neither the engine nor this connection buffers without bound. The
//! semaphore is fair (first come, first served), so one busy subscription
//! cannot starve the others of the same connection.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::SplitSink;
use futures::SinkExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::budget::{Charge, OutputBudget};
use super::json;
use super::queue::{Consumer, Next, Queue};
use crate::proto::Encoded;
use crate::session::{ConnStats, FrameSink, SinkClosed, SubscriptionSink, Transport};

/// The socket of an accepted connection.
pub(super) type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// The write half the writer task owns.
pub(super) type WsWrite = SplitSink<Ws, WsMessage>;

/// Which kind of message a connection speaks, fixed by its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Binary messages, one protocol frame each.
    Binary = 1,
    /// Text messages holding the JSON form.
    Json = 2,
}

/// A message for the writer task.
pub(super) enum Out {
    /// A message with its share of the send budget, released once written.
    Message {
        msg: WsMessage,
        len: usize,
        _permit: OwnedSemaphorePermit,
        _charge: Charge,
    },
    /// The close frame; the writer sends it after everything queued before
    /// and stops.
    Close(CloseFrame),
}

/// State shared by every sink of a connection.
pub(super) struct Shared {
    queue: Arc<Queue<Out>>,
    budget: Arc<Semaphore>,
    cap: usize,
    stats: Arc<ConnStats>,
    mode: AtomicU8,
    output: Arc<OutputBudget>,
    evicted: AtomicBool,
    evict_released: AtomicBool,
    evicted_share: AtomicUsize,
    evict_signal: Notify,
    /// When the writer last handed a message to the socket, in
    /// milliseconds since the connection opened.
    last_write: Arc<LastWrite>,
}

/// When a connection's writer last made progress; shared by the writer
/// (which owns no [`Shared`], so that the queue can end) and the budget.
#[derive(Debug)]
pub(super) struct LastWrite {
    opened: std::time::Instant,
    at_ms: AtomicU64,
}

impl LastWrite {
    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the writer has gone without writing a message.
    pub(super) fn stalled(&self) -> std::time::Duration {
        let at = std::time::Duration::from_millis(self.at_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(at)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.release_eviction();
        // The last sender is gone: the writer ends once the queue drains.
        self.queue.finish();
    }
}

impl Shared {
    /// The shared state and its queue, for the writer. The queue is
    /// unbounded in messages but bounded in bytes by the budget, which
    /// every message acquires before it is queued.
    pub(super) fn new(
        send_buffer_bytes: usize,
        stats: Arc<ConnStats>,
        output: Arc<OutputBudget>,
    ) -> (Arc<Self>, Arc<Queue<Out>>) {
        let queue = Arc::new(Queue::new());
        // At least 64 KiB so that a control message never waits alone; at
        // most what a semaphore call can ask for.
        let cap = send_buffer_bytes.clamp(1 << 16, u32::MAX as usize);
        let shared = Shared {
            queue: Arc::clone(&queue),
            budget: Arc::new(Semaphore::new(cap)),
            cap,
            stats,
            mode: AtomicU8::new(0),
            output,
            evicted: AtomicBool::new(false),
            evict_released: AtomicBool::new(false),
            evicted_share: AtomicUsize::new(0),
            last_write: Arc::new(LastWrite {
                opened: std::time::Instant::now(),
                at_ms: AtomicU64::new(0),
            }),
            evict_signal: Notify::new(),
        };
        let shared = Arc::new(shared);
        shared.output.register(&shared);
        (shared, queue)
    }

    /// Asks the writer to send a ping before what is queued.
    pub(super) fn ping(&self) {
        self.queue.ping();
    }

    /// The connection's own send buffer in bytes.
    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// How long this connection's writer has gone without writing.
    pub(super) fn stalled(&self) -> std::time::Duration {
        self.last_write.stalled()
    }

    /// The progress record the writer task keeps up to date.
    pub(super) fn last_write(&self) -> Arc<LastWrite> {
        Arc::clone(&self.last_write)
    }

    /// Bytes queued on this connection and not yet handed to the socket.
    pub(super) fn backlog(&self) -> usize {
        self.cap - self.budget.available_permits().min(self.cap)
    }

    /// Whether the server-wide budget closed this connection.
    pub(super) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Asks the connection to close for the server-wide budget; `share` is
    /// its backlog, which the budget counts as being released.
    pub(super) fn evict(&self, share: usize) {
        self.evicted_share.store(share, Ordering::Release);
        self.evicted.store(true, Ordering::Release);
        self.evict_signal.notify_one();
    }

    /// Resolves once [`Shared::evict`] was called.
    pub(super) async fn evicted(&self) {
        self.evict_signal.notified().await;
    }

    /// Tells the server-wide budget, once, that this evicted connection's
    /// queue is gone, so that it may close another. Called when the
    /// connection ends, and at the latest when its state is dropped.
    pub(super) fn release_eviction(&self) {
        if self.is_evicted() && !self.evict_released.swap(true, Ordering::AcqRel) {
            self.output
                .evicted_released(self.evicted_share.load(Ordering::Acquire));
        }
    }

    /// Fixes the connection's mode on its first message; false when a
    /// message of the other kind arrives later.
    pub(super) fn set_mode(&self, mode: Mode) -> bool {
        match self
            .mode
            .compare_exchange(0, mode as u8, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(current) => current == mode as u8,
        }
    }

    fn json(&self) -> bool {
        self.mode.load(Ordering::Acquire) == Mode::Json as u8
    }

    /// Refuses further messages: waiting and later senders get
    /// [`SinkClosed`]. Messages already queued are still written.
    pub(super) fn close_budget(&self) {
        self.budget.close();
    }

    /// Queues the close frame behind everything already queued.
    pub(super) fn close(&self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = self.queue.push(Out::Close(frame));
    }
}

/// The session's view of a WebSocket connection: every channel the session
/// asks for is the one socket.
pub(crate) struct WsTransport {
    pub(super) shared: Arc<Shared>,
}

impl Transport for WsTransport {
    type Reply = WsSink;
    type Subscription = WsSink;

    async fn open_subscription(&self) -> Result<WsSink, SinkClosed> {
        Ok(WsSink {
            shared: Arc::clone(&self.shared),
        })
    }
}

/// A handle to the connection's send queue; requests and subscriptions
/// each hold one.
#[derive(Clone)]
pub(crate) struct WsSink {
    pub(super) shared: Arc<Shared>,
}

impl FrameSink for WsSink {
    async fn send(&mut self, frame: Encoded) -> Result<(), SinkClosed> {
        let s = &self.shared;
        // Budget first, then the copy into a message: a sender waiting for
        // budget holds only the shared stored batch, not a copy of its own.
        let acquire = |n: usize| {
            // A message larger than the whole budget takes all of it and
            // goes alone, rather than never.
            let permits = n.clamp(1, s.cap) as u32;
            Arc::clone(&s.budget).acquire_many_owned(permits)
        };
        let estimate = frame.wire_len();
        let mut permit = acquire(estimate).await.map_err(|_| SinkClosed)?;
        let msg = if s.json() {
            WsMessage::text(json::reply(&frame))
        } else {
            WsMessage::Binary(frame.to_bytes())
        };
        drop(frame);
        let len = msg.len();
        let held = estimate.clamp(1, s.cap);
        if len.clamp(1, s.cap) > held {
            // The JSON form is longer than the binary estimate.
            let more = acquire(len.clamp(1, s.cap) - held).await;
            permit.merge(more.map_err(|_| SinkClosed)?);
        }
        s.stats.queued(len);
        let out = Out::Message {
            msg,
            len,
            _permit: permit,
            _charge: s.output.charge(len),
        };
        s.queue.push(out).map_err(|_| {
            s.stats.discarded(len);
            SinkClosed
        })
    }
}

impl SubscriptionSink for WsSink {
    async fn finish(self) {
        // Everything this subscription sent is queued ahead of whatever is
        // sent after this returns, on the same ordered socket: nothing to
        // wait for.
    }

    fn abort(self) {
        // Frames are queued whole, never partly written, so there is no
        // broken frame to cut off; the connection's close drops the rest.
    }

    fn peer_gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Subscriptions share the socket; a client ends one with
        // `Unsubscribe`, and a closed socket ends the session as a whole.
        std::future::pending()
    }
}

/// Writes queued messages and pings to the socket until the close frame
/// (returning the write half, for a lingering close) or a write failure
/// (`None`: the peer is gone). Flushes whenever the queue runs empty, so
/// small messages written back to back share system calls.
pub(super) async fn write_loop(
    mut ws: WsWrite,
    queue: Arc<Queue<Out>>,
    stats: Arc<ConnStats>,
    progress: Arc<LastWrite>,
) -> Option<WsWrite> {
    // Released however this ends, an aborted task included, as a channel's
    // receiver would be.
    let consumer = Consumer(queue);
    let queue = &consumer.0;
    loop {
        let ok = match queue.next().await {
            Next::Ping => ws.feed(WsMessage::Ping(Bytes::new())).await.is_ok(),
            Next::Item(Out::Message {
                msg,
                len,
                _permit,
                _charge,
            }) => {
                let ok = ws.feed(msg).await.is_ok();
                stats.written(len);
                progress.touch();
                ok
            }
            Next::Item(Out::Close(frame)) => {
                let _ = ws.send(WsMessage::Close(Some(frame))).await;
                return Some(ws);
            }
            Next::Done => return Some(ws),
        };
        let ok = ok && (!queue.is_empty() || ws.flush().await.is_ok());
        if !ok {
            // Refuse further messages and release what is queued.
            for out in queue.close() {
                if let Out::Message { len, .. } = out {
                    stats.discarded(len);
                }
            }
            return None;
        }
    }
}
