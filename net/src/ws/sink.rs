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

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::SplitSink;
use futures::SinkExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::json;
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
    },
    /// The close frame; the writer sends it after everything queued before
    /// and stops.
    Close(CloseFrame),
}

/// State shared by every sink of a connection.
pub(super) struct Shared {
    tx: mpsc::UnboundedSender<Out>,
    budget: Arc<Semaphore>,
    cap: usize,
    stats: Arc<ConnStats>,
    mode: AtomicU8,
}

impl Shared {
    /// The shared state and the receiving end of its queue. The queue is
    /// unbounded as a channel but bounded in bytes by the budget, which
    /// every message acquires before it is queued.
    pub(super) fn new(
        send_buffer_bytes: usize,
        stats: Arc<ConnStats>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        // At least 64 KiB so that a control message never waits alone; at
        // most what a semaphore call can ask for.
        let cap = send_buffer_bytes.clamp(1 << 16, u32::MAX as usize);
        let shared = Shared {
            tx,
            budget: Arc::new(Semaphore::new(cap)),
            cap,
            stats,
            mode: AtomicU8::new(0),
        };
        (Arc::new(shared), rx)
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
        let _ = self.tx.send(Out::Close(frame));
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
        let msg = if s.json() {
            WsMessage::text(json::reply(&frame))
        } else {
            WsMessage::Binary(frame.to_bytes())
        };
        let len = msg.len();
        // A message larger than the whole budget takes all of it and goes
        // alone, rather than never.
        let permits = len.clamp(1, s.cap) as u32;
        let permit = Arc::clone(&s.budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| SinkClosed)?;
        s.stats.queued(len);
        let out = Out::Message {
            msg,
            len,
            _permit: permit,
        };
        s.tx.send(out).map_err(|_| {
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
    mut rx: mpsc::UnboundedReceiver<Out>,
    mut pings: mpsc::Receiver<()>,
    stats: Arc<ConnStats>,
) -> Option<WsWrite> {
    loop {
        let ok = tokio::select! {
            biased;
            Some(()) = pings.recv() => ws.feed(WsMessage::Ping(Bytes::new())).await.is_ok(),
            out = rx.recv() => match out {
                Some(Out::Message { msg, len, _permit }) => {
                    let ok = ws.feed(msg).await.is_ok();
                    stats.written(len);
                    ok
                }
                Some(Out::Close(frame)) => {
                    let _ = ws.send(WsMessage::Close(Some(frame))).await;
                    return Some(ws);
                }
                None => return Some(ws),
            },
        };
        let ok = ok && (!rx.is_empty() || ws.flush().await.is_ok());
        if !ok {
            // Refuse further messages and release what is queued.
            rx.close();
            while let Some(out) = rx.recv().await {
                if let Out::Message { len, .. } = out {
                    stats.discarded(len);
                }
            }
            return None;
        }
    }
}
