//! Idle keep-alive connections hold no HTTP machinery.
//!
//! hyper allocates its read buffer, its write buffer and the slot for the
//! request future when it starts serving a connection, and keeps them until
//! the connection closes: about 25 KiB for a keep-alive connection that
//! answered one request and then waits, or for one that was opened and never
//! spoke. A broadcast deployment holds many such connections. So a plain
//! (non-TLS) connection is served in turns: no hyper connection exists until
//! the socket is readable; once hyper has served what came and the
//! connection has been quiet for [`QUIET`] (no bytes moved, no request in
//! flight, no response body streaming, nothing waiting to be written), the
//! hyper connection is ended *without* closing the socket, its buffers are
//! freed, and bytes it had read but not parsed are kept for the next turn.
//! The client sees one keep-alive connection throughout.
//!
//! Ending a turn uses hyper's graceful shutdown, which closes a connection
//! that is idle between requests at once; the checks above make sure it is
//! (a request in progress would instead be answered with `Connection:
//! close`). The socket's shutdown that hyper then asks for is skipped.
//!
//! TLS connections are served in one turn (`server.rs`): rustls holds its
//! own buffers and may hold decrypted bytes the socket no longer shows.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body as _, Frame, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::service::service_fn;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::body::Body;
use super::io::HttpIo;
use super::router::{handle, Ctx};
use super::stall::StallLimit;

/// How long a connection must be quiet before its HTTP state is freed.
/// Checked once per period, so a turn ends between one and two periods
/// after the last byte. A busy connection pays one timer wake-up per period.
pub const QUIET: Duration = Duration::from_secs(1);

/// Turns ended because their connection was quiet, by every connection of
/// this process.
static QUIET_TURNS: AtomicU64 = AtomicU64::new(0);

/// How many times a plain HTTP connection of this process has freed its
/// HTTP state because it was quiet (see the module documentation).
pub fn quiet_turns() -> u64 {
    QUIET_TURNS.load(Ordering::Relaxed)
}

/// What the turn's watcher knows about the connection, updated by its I/O
/// and its service (all on the connection's task; atomics only because
/// hyper wants its parts `Send`).
#[derive(Default)]
struct Activity {
    /// Reads and writes that moved bytes.
    moves: AtomicU64,
    /// Requests whose answer or streaming body is not finished.
    in_flight: AtomicUsize,
    /// The last write had to wait: hyper still holds bytes to send.
    write_waiting: AtomicBool,
    /// The turn is ending: hyper's shutdown of the socket is skipped.
    ending: AtomicBool,
}

/// Serves a plain HTTP/1.1 connection in turns until it closes (see the
/// module documentation), or until `stop` lets its request in flight finish.
pub(super) async fn serve(
    ctx: Arc<Ctx>,
    tcp: TcpStream,
    stall: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::default());
    let mut io = StallLimit::new(HttpIo::new(tcp), stall);
    let mut unparsed = Bytes::new();
    loop {
        if unparsed.is_empty() {
            // A peek, not `readable()`: tokio reports a new socket readable
            // before anything arrived, and a turn started for nothing
            // allocates all of hyper's state.
            let mut probe = [0u8; 1];
            tokio::select! {
                r = io.get_ref().tcp().peek(&mut probe) => match r {
                    Ok(n) if n > 0 => {}
                    _ => return, // closed by the peer, or failed
                },
                () = crate::session::signalled(&mut stop) => return,
            }
        }
        match turn(&ctx, io, unparsed, &activity, &mut stop).await {
            Some((i, rest)) => (io, unparsed) = (i, rest),
            None => return,
        }
    }
}

/// One hyper connection over `io`: returns the socket and the bytes read but
/// not parsed if it ended because it was quiet, None if the connection is
/// over (closed, failed, upgraded to a WebSocket, or shut down).
async fn turn(
    ctx: &Arc<Ctx>,
    io: StallLimit<HttpIo>,
    unparsed: Bytes,
    activity: &Arc<Activity>,
    stop: &mut watch::Receiver<bool>,
) -> Option<(StallLimit<HttpIo>, Bytes)> {
    let svc = {
        let (ctx, activity) = (Arc::clone(ctx), Arc::clone(activity));
        service_fn(move |req| {
            let busy = Busy::start(&activity);
            let ctx = Arc::clone(&ctx);
            // The router's future is made inside the block: made outside and
            // moved in, it took room twice (6.4 KiB instead of 3.5, in the
            // slot hyper keeps per connection).
            async move {
                let mut res = handle(ctx, req).await?;
                if res.body().size_hint().exact().is_none() {
                    // A streaming body (SSE) keeps the request in flight
                    // until hyper has sent its end and dropped it.
                    let body = std::mem::take(res.body_mut());
                    *res.body_mut() = Body::new(Streaming { body, _busy: busy });
                }
                Ok::<_, std::convert::Infallible>(res)
            }
        })
    };
    activity.ending.store(false, Ordering::Relaxed);
    let watched = Watched {
        inner: io,
        unparsed,
        activity: Arc::clone(activity),
    };
    // Boxed, so that this task's own allocation stays small while it waits
    // for the socket between turns.
    let mut conn = Box::new(super::server::http_connection(watched, svc));
    let mut every = tokio::time::interval(QUIET);
    every.reset();
    let mut seen = activity.moves.load(Ordering::Relaxed);
    let mut stopping = false;
    let r = loop {
        tokio::select! {
            r = &mut *conn => break r,
            _ = every.tick() => {
                let moves = activity.moves.load(Ordering::Relaxed);
                let quiet = moves == seen
                    && activity.in_flight.load(Ordering::Relaxed) == 0
                    && !activity.write_waiting.load(Ordering::Relaxed);
                seen = moves;
                if quiet && !stopping && !activity.ending.load(Ordering::Relaxed) {
                    activity.ending.store(true, Ordering::Relaxed);
                    Pin::new(&mut *conn).graceful_shutdown();
                }
            }
            () = crate::session::signalled(stop), if !stopping => {
                // Finish the request in flight, then close.
                stopping = true;
                activity.ending.store(false, Ordering::Relaxed);
                Pin::new(&mut *conn).graceful_shutdown();
            }
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "connection ended with an error");
        return None;
    }
    if !activity.ending.load(Ordering::Relaxed) {
        return None;
    }
    let parts = conn.into_parts()?;
    QUIET_TURNS.fetch_add(1, Ordering::Relaxed);
    // What hyper read but did not parse comes before what it never read.
    // Copied: hyper's `read_buf` is a slice of its whole read buffer, and
    // keeping it (even empty) would keep that buffer.
    let rest = if parts.read_buf.is_empty() && parts.io.unparsed.is_empty() {
        Bytes::new()
    } else {
        let mut b = BytesMut::with_capacity(parts.read_buf.len() + parts.io.unparsed.len());
        b.extend_from_slice(&parts.read_buf);
        b.extend_from_slice(&parts.io.unparsed);
        b.freeze()
    };
    Some((parts.io.inner, rest))
}

/// Counts a request as in flight until dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(a))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A streaming response body that keeps its request in flight.
struct Streaming {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Streaming {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket as one turn's hyper connection sees it: the previous turn's
/// unparsed bytes first, every move counted, and no shutdown when the turn
/// ends because it was quiet.
struct Watched {
    inner: StallLimit<HttpIo>,
    unparsed: Bytes,
    activity: Arc<Activity>,
}

impl Watched {
    fn wrote(&self, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        let waiting = r.is_pending();
        self.activity
            .write_waiting
            .store(waiting, Ordering::Relaxed);
        if !waiting {
            self.activity.moves.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl Read for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let r = if self.unparsed.is_empty() {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        } else {
            let n = self.unparsed.len().min(buf.remaining());
            buf.put_slice(&self.unparsed[..n]);
            self.unparsed.advance(n);
            Poll::Ready(Ok(()))
        };
        if r.is_ready() {
            self.activity.moves.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl Write for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.ending.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
