//! One QUIC connection: accepts request streams, feeds their frames to the
//! session, writes answers back on the same stream through a bounded queue,
//! and opens one unidirectional stream per subscription.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use weir_storage::Engine;

use super::{codes, QuicConfig, ALPN};
use crate::proto::{ChunkDecoder, Encoded};
use crate::session::{
    signalled, ConnStats, Flow, FrameSink, Session, SessionConfig, SinkClosed, SubscriptionSink,
    Transport,
};

/// Frames queued per request stream (on top of the connection's byte budget).
const REPLY_QUEUE: usize = 32;

/// Largest chunk read from a request stream at once.
const READ_CHUNK: usize = 64 << 10;

/// How long a closing path waits for a final `Error` frame to be acknowledged.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

pub(super) struct Ctx {
    pub engine: Engine,
    pub config: Arc<QuicConfig>,
    pub session: Arc<SessionConfig>,
    pub stop: watch::Receiver<bool>,
    pub registry: Arc<Mutex<Vec<Weak<ConnStats>>>>,
}

type QuicSession = Session<QuicTransport>;

/// Serves one connection until it closes.
pub(super) async fn handle(incoming: quinn::Incoming, ctx: Ctx) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "QUIC handshake failed");
            return;
        }
    };
    let alpn = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol);
    if alpn.as_deref() != Some(ALPN) {
        conn.close(VarInt::from_u32(codes::BAD_ALPN), b"ALPN weir/1 required");
        return;
    }
    let stats = Arc::new(ConnStats::for_door(Arc::clone(
        crate::door_metrics::DoorMetrics::of(&ctx.engine).door(crate::door_metrics::Door::Quic),
    )));
    ctx.registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arc::downgrade(&stats));
    let cap = ctx
        .config
        .send_buffer_bytes
        .clamp(1 << 16, u32::MAX as usize);
    let transport = QuicTransport {
        conn: conn.clone(),
        stats: Arc::clone(&stats),
        budget: Arc::new(Semaphore::new(cap)),
        cap,
    };
    let session = Session::new(ctx.engine, ctx.session, transport, stats, ctx.stop.clone());
    let (close_tx, mut close_rx) = mpsc::channel::<()>(1);
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            bi = conn.accept_bi() => match bi {
                Ok((send, recv)) => {
                    // On the connection's task too (no task per request
                    // stream): a packet carrying many streams' requests
                    // wakes one task, which reads them all.
                    let stream = request_stream(Arc::clone(&session), send, recv, close_tx.clone());
                    session.run_on_connection(stream);
                }
                Err(_) => break, // closed by the peer, idle, or lost
            },
            Some(()) = close_rx.recv() => {
                conn.close(VarInt::from_u32(codes::PROTOCOL), b"protocol error");
                break;
            }
            () = session.idle() => {
                conn.close(VarInt::from_u32(codes::IDLE), b"idle");
                break;
            }
            () = signalled(&mut stop) => {
                // Subscriptions end themselves with Resume(ShuttingDown);
                // give them and the requests in flight the grace period.
                let grace = ctx.config.shutdown_grace;
                let drained = async {
                    while session.in_flight() > 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                let _ = timeout(grace, drained).await;
                conn.close(VarInt::from_u32(codes::SHUTDOWN), b"shutting down");
                break;
            }
        }
    }
    session.close();
}

/// Reads the frames of one request stream in order and hands them to the
/// session; its answers go back on the same stream.
async fn request_stream(
    session: Arc<QuicSession>,
    send: SendStream,
    mut recv: RecvStream,
    close: mpsc::Sender<()>,
) {
    let t = session.transport();
    let (tx, rx) = mpsc::channel(REPLY_QUEUE);
    // The writer runs on the connection's background task, beside the
    // answers it writes (see `Session::run_on_connection`); it hands the
    // stream back when it ends, for a fatal error's last flush.
    let (writer_done, writer) = oneshot::channel();
    let stats = Arc::clone(session.stats());
    session.run_on_connection(async move {
        let _ = writer_done.send(write_replies(send, rx, stats).await);
    });
    let mut reply = Reply {
        tx,
        budget: Arc::clone(&t.budget),
        cap: t.cap,
        stats: Arc::clone(session.stats()),
    };
    let mut decoder = ChunkDecoder::new(session.config().max_frame);
    let mut fatal = false;
    'read: loop {
        loop {
            let flow = match decoder.next_frame() {
                Ok(Some(frame)) => session.on_frame(frame, &mut reply).await,
                Ok(None) => break,
                Err(e) => session.on_decode_error(e, &mut reply).await,
            };
            if flow == Flow::Close {
                fatal = true;
                break 'read;
            }
        }
        match recv.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => decoder.push(chunk.bytes),
            Ok(None) => {
                if let Some(e) = decoder.truncated() {
                    // The stream ended inside a frame: the framing is lost.
                    session.on_decode_error(e, &mut reply).await;
                    fatal = true;
                }
                break;
            }
            Err(_) => break, // reset by the peer, or the connection is gone
        }
    }
    drop(reply);
    if fatal {
        let _ = recv.stop(VarInt::from_u32(codes::PROTOCOL));
        // Let the final Error reach the peer before the connection closes.
        if let Ok(Ok(send)) = timeout(FLUSH_WAIT, writer).await {
            let _ = timeout(FLUSH_WAIT, send.stopped()).await;
        }
        let _ = close.send(()).await;
    }
}

/// A frame waiting for its request stream, holding its share of the
/// connection's send budget.
struct Queued {
    frame: Encoded,
    _permit: OwnedSemaphorePermit,
}

/// Writes the queued answers of one request stream; finishes the stream
/// once every handle to the queue is gone (the client finished its side and
/// every request of the stream was answered).
async fn write_replies(
    mut send: SendStream,
    mut rx: mpsc::Receiver<Queued>,
    stats: Arc<ConnStats>,
) -> SendStream {
    while let Some(q) = rx.recv().await {
        let len = q.frame.wire_len();
        let ok = write_frame(&mut send, &q.frame).await.is_ok();
        stats.written(len);
        if !ok {
            // The peer stopped the stream: refuse further answers and
            // release what is queued.
            rx.close();
            while let Some(q) = rx.recv().await {
                stats.discarded(q.frame.wire_len());
            }
            return send;
        }
    }
    let _ = send.finish();
    send
}

/// One vectored write of a frame's head and its shared tail.
async fn write_frame(send: &mut SendStream, frame: &Encoded) -> Result<(), quinn::WriteError> {
    if frame.tail().is_empty() {
        return send.write_all_chunks(&mut [frame.head().clone()]).await;
    }
    let mut chunks: [Bytes; 2] = [frame.head().clone(), frame.tail().clone()];
    send.write_all_chunks(&mut chunks).await
}

/// The session's view of a QUIC connection.
pub(crate) struct QuicTransport {
    conn: quinn::Connection,
    stats: Arc<ConnStats>,
    /// Bytes of answers the connection may have queued (the per-connection
    /// send buffer); subscriptions write directly and are bounded by their
    /// stream's flow control instead.
    budget: Arc<Semaphore>,
    cap: usize,
}

impl Transport for QuicTransport {
    type Reply = Reply;
    type Subscription = SubStream;

    async fn open_subscription(&self) -> Result<SubStream, SinkClosed> {
        let send = self.conn.open_uni().await.map_err(|_| SinkClosed)?;
        Ok(SubStream {
            send,
            stats: Arc::clone(&self.stats),
        })
    }
}

/// The answer channel of one request stream.
#[derive(Clone)]
pub(crate) struct Reply {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    cap: usize,
    stats: Arc<ConnStats>,
}

impl FrameSink for Reply {
    async fn send(&mut self, frame: Encoded) -> Result<(), SinkClosed> {
        let len = frame.wire_len();
        // A frame larger than the whole budget takes all of it, so it
        // still goes, alone.
        let permits = len.clamp(1, self.cap) as u32;
        let permit = Arc::clone(&self.budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| SinkClosed)?;
        self.stats.queued(len);
        let queued = Queued {
            frame,
            _permit: permit,
        };
        self.tx.send(queued).await.map_err(|_| {
            self.stats.discarded(len);
            SinkClosed
        })
    }
}

/// A subscription's unidirectional stream.
pub(crate) struct SubStream {
    send: SendStream,
    stats: Arc<ConnStats>,
}

impl FrameSink for SubStream {
    async fn send(&mut self, frame: Encoded) -> Result<(), SinkClosed> {
        let len = frame.wire_len();
        self.stats.queued(len);
        let r = write_frame(&mut self.send, &frame).await;
        self.stats.written(len);
        r.map_err(|_| SinkClosed)
    }
}

impl SubscriptionSink for SubStream {
    async fn finish(mut self) {
        if self.send.finish().is_ok() {
            // Wait (bounded) until the peer has everything, so that an
            // answer sent after this (Unsubscribed) or a connection close
            // cannot overtake the stream's last frames.
            let _ = timeout(Duration::from_secs(5), self.send.stopped()).await;
        }
    }

    fn abort(mut self) {
        let _ = self.send.reset(VarInt::from_u32(codes::ABORTED));
    }

    fn peer_gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        // The stream is never finished while this is awaited, so it only
        // resolves on STOP_SENDING or a lost connection.
        let stopped = self.send.stopped();
        async move {
            let _ = stopped.await;
        }
    }
}
