//! One WebSocket connection: reads messages and hands their frames to the
//! session, pings the peer, watches the timeouts and the server's shutdown,
//! and closes with the code that says why (see [`super::codes`]).
//!
//! The reader handles one message at a time, in order, like a QUIC request
//! stream: a request is started before the next message is read, so
//! pipelined requests apply in the order sent. The watchdog and the
//! shutdown signal are polled in the same task alongside the reader, so a
//! reader stuck waiting for send budget (a peer that does not read) is still
//! timed out.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::SplitStream;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use weir_storage::Engine;

use super::codes;
use super::json::{self, Parsed};
use super::sink::{write_loop, Mode, Shared, Ws, WsSink, WsTransport};
use super::WsConfig;
use crate::proto::{decode_frame, DecodeError, ErrorKind, Message, WireError, CONNECTION_ID};
use crate::session::{signalled, ConnStats, Flow, Session};

/// How long the writer may take to flush the close frame, and how long the
/// server then keeps reading (and discarding) so that the peer sees the
/// close before the socket goes away.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

type WsSession = Session<WsTransport>;

/// Why the connection ends: the close code and reason to send.
struct End {
    code: u16,
    reason: &'static str,
}

impl End {
    const fn new(code: u16, reason: &'static str) -> Self {
        End { code, reason }
    }
}

/// When the peer was last heard from, as milliseconds since `start`;
/// shared by the reader and the watchdog (atomics, so the connection's
/// future stays `Send`).
struct Heard {
    start: Instant,
    at_ms: AtomicU64,
}

impl Heard {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.at_ms.load(Ordering::Relaxed))
    }
}

/// Serves one upgraded connection until it closes.
pub(super) async fn serve(
    ws: Ws,
    engine: Engine,
    config: Arc<WsConfig>,
    mut stop: watch::Receiver<bool>,
    token: Option<String>,
) {
    let (write, mut read) = ws.split();
    let stats = Arc::new(ConnStats::for_door(Arc::clone(
        crate::door_metrics::DoorMetrics::of(&engine).door(crate::door_metrics::Door::Ws),
    )));
    let (shared, queue) = Shared::new(
        config.send_buffer_bytes,
        Arc::clone(&stats),
        Arc::clone(&config.output_budget),
    );
    let mut writer = tokio::spawn(write_loop(
        write,
        queue,
        Arc::clone(&stats),
        shared.last_write(),
    ));
    let transport = WsTransport {
        shared: Arc::clone(&shared),
    };
    let session = Session::new(
        engine,
        Arc::new(config.session_config()),
        transport,
        stats,
        stop.clone(),
    );
    session.set_transport_token(token);
    let heard = Heard {
        start: Instant::now(),
        at_ms: AtomicU64::new(0),
    };
    let mut reply = WsSink {
        shared: Arc::clone(&shared),
    };
    let mut writer_done = false;
    let end = tokio::select! {
        biased;
        () = signalled(&mut stop) => {
            // Subscriptions end themselves with Resume(ShuttingDown); stop
            // reading and give them and the requests in flight the grace
            // period before the close.
            let grace = session.config().shutdown_grace;
            let drained = async {
                while session.in_flight() > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let _ = timeout(grace, drained).await;
            End::new(codes::GOING_AWAY, "server shutting down")
        }
        _ = &mut writer => {
            writer_done = true;
            End::new(codes::NORMAL, "connection lost")
        }
        end = watchdog(&heard, &shared, &config) => end,
        () = shared.evicted() => End::new(codes::POLICY, "too slow: server send budget exceeded"),
        () = session.idle() => End::new(codes::NORMAL, "idle"),
        // A panic while handling a message is a server bug; contain it to
        // this connection and tell the peer with 1011 rather than drop it.
        end = AssertUnwindSafe(read_loop(&session, &mut read, &shared, &heard, &mut reply))
            .catch_unwind() => end.unwrap_or(End::new(codes::INTERNAL, "internal error")),
    };
    drop(reply);
    session.close();
    // Senders still waiting for budget give up; what is queued is written
    // before the close frame.
    shared.close_budget();
    if writer_done {
        shared.release_eviction();
        return;
    }
    if shared.is_evicted() {
        // The peer is not reading: its queue, and the close behind it,
        // would never drain. Dropping the writer releases the queue now.
        writer.abort();
        let _ = writer.await;
        shared.release_eviction();
        return;
    }
    shared.close(end.code, end.reason);
    let write = match timeout(CLOSE_WAIT, &mut writer).await {
        Ok(Ok(Some(w))) => w,
        Ok(_) => return,
        Err(_) => {
            // The peer does not read: nothing more can reach it.
            writer.abort();
            return;
        }
    };
    if let Ok(ws) = read.reunite(write) {
        linger(ws).await;
    }
}

/// Ends the write side and discards what the peer still sends until it
/// closes its side (or a short wait passes). Closing a socket with unread
/// input makes the kernel reset the connection, and a reset can destroy the
/// close frame and the final `Error` before the peer reads them.
async fn linger(ws: Ws) {
    let mut io = ws.into_inner();
    let _ = io.shutdown().await;
    let mut buf = vec![0u8; 16 << 10];
    let _ = timeout(CLOSE_WAIT, async {
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Pings the peer every `ping_interval` and resolves once nothing has been
/// heard from it for `idle_timeout`.
async fn watchdog(heard: &Heard, shared: &Shared, config: &WsConfig) -> End {
    let every = config.ping_every();
    let mut next_ping = Instant::now() + every;
    loop {
        let dead_at = heard.last() + config.idle_timeout;
        let now = Instant::now();
        if now >= dead_at {
            return End::new(codes::POLICY, "no answer to pings");
        }
        if now >= next_ping {
            // At most one ping waits; a second request joins it.
            shared.ping();
            next_ping = now + every;
        }
        tokio::time::sleep_until(next_ping.min(dead_at)).await;
    }
}

/// Reads messages until the connection must close, and says why.
async fn read_loop(
    session: &Arc<WsSession>,
    read: &mut SplitStream<Ws>,
    shared: &Shared,
    heard: &Heard,
    reply: &mut WsSink,
) -> End {
    let max_frame = session.config().max_frame;
    loop {
        let msg = match read.next().await {
            None => return End::new(codes::NORMAL, "connection lost"),
            Some(Ok(m)) => m,
            Some(Err(e)) => return read_failed(session, reply, e).await,
        };
        heard.touch();
        let flow = match msg {
            WsMessage::Binary(b) => {
                if !shared.set_mode(Mode::Binary) {
                    return End::new(
                        codes::UNSUPPORTED_DATA,
                        "binary message on a JSON connection",
                    );
                }
                match decode_frame(b, max_frame) {
                    Ok(frame) => session.on_frame(frame, reply).await,
                    Err(e @ DecodeError::FrameTooLarge { .. }) => {
                        session.on_decode_error(e, reply).await;
                        return End::new(codes::TOO_BIG, "frame too large");
                    }
                    Err(e) => session.on_decode_error(e, reply).await,
                }
            }
            WsMessage::Text(t) => {
                if !shared.set_mode(Mode::Json) {
                    return End::new(
                        codes::UNSUPPORTED_DATA,
                        "text message on a binary connection",
                    );
                }
                match json::request(t.as_str()) {
                    // JSON has no version byte: it speaks the negotiated one.
                    Parsed::Frame(frame) => {
                        let frame = frame.with_version(session.version());
                        session.on_frame(frame, reply).await
                    }
                    Parsed::Invalid { id, error } => {
                        session.stats().frame_in();
                        let _ = session.send(reply, id, Message::Error(error)).await;
                        Flow::Continue
                    }
                    Parsed::Malformed(error) => {
                        let _ = session
                            .send(reply, CONNECTION_ID, Message::Error(error))
                            .await;
                        Flow::Close
                    }
                }
            }
            WsMessage::Close(_) => return End::new(codes::NORMAL, "closed by the client"),
            // Pings are answered by the WebSocket layer; pongs only prove
            // the peer is alive.
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => Flow::Continue,
        };
        if flow == Flow::Close {
            return End::new(codes::PROTOCOL_ERROR, "protocol error");
        }
    }
}

/// Maps a failed read to the close that explains it, telling the peer with
/// an `Error` first where the protocol has a code for it.
async fn read_failed(session: &Arc<WsSession>, reply: &mut WsSink, e: WsError) -> End {
    let (end, err) = match e {
        WsError::Capacity(c) => {
            let max_frame = session.config().max_frame;
            let kind = ErrorKind::FrameTooLarge { max_frame };
            (
                End::new(codes::TOO_BIG, "message too large"),
                Some(WireError::new(kind, c.to_string())),
            )
        }
        WsError::Utf8(why) => (
            End::new(codes::INVALID_PAYLOAD, "text is not UTF-8"),
            Some(WireError::new(ErrorKind::MalformedFrame, why)),
        ),
        WsError::Protocol(p) => {
            tracing::debug!(error = %p, "WebSocket protocol error");
            (
                End::new(codes::PROTOCOL_ERROR, "WebSocket protocol error"),
                None,
            )
        }
        // The socket is gone (reset, or closed without a close frame).
        _ => (End::new(codes::NORMAL, "connection lost"), None),
    };
    if let Some(err) = err {
        let _ = session
            .send(reply, CONNECTION_ID, Message::Error(err))
            .await;
    }
    end
}
