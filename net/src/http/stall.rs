//! A limit on how long an HTTP connection's writes may make no progress. A
//! client that sends requests but never reads the answers (pipelined GETs,
//! a stuck proxy) would otherwise hold its response bodies, and their share
//! of the output budget, for as long as it keeps the socket open. The clock
//! starts when a write has to wait and stops once the connection has taken
//! [`MIN_PROGRESS`] bytes or its output drained; a client reading at a
//! trickle (a zero-window probe lets a byte through now and then) does not
//! stop it.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::time::Sleep;

/// Bytes a waiting connection must take within the limit to count as reading.
pub const MIN_PROGRESS: usize = 64 << 10;

/// `inner` whose writes fail with `TimedOut` after `limit` without progress.
pub struct StallLimit<I> {
    inner: I,
    limit: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
    /// Bytes written since the clock started.
    progress: usize,
}

impl<I> StallLimit<I> {
    /// Wraps a connection.
    pub fn new(inner: I, limit: Duration) -> Self {
        StallLimit {
            inner,
            limit,
            stalled_since: None,
            progress: 0,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &r {
            if self.stalled_since.is_some() {
                self.progress += n;
                if self.progress >= MIN_PROGRESS {
                    self.stalled_since = None;
                }
            }
        }
        self.check(cx, r)
    }

    fn check<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            return r;
        }
        let limit = self.limit;
        if self.stalled_since.is_none() {
            self.progress = 0;
        }
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer took under 64 KiB of response bytes within the write-stall limit",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: Read + Unpin> Read for StallLimit<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: Write + Unpin> Write for StallLimit<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if r.is_ready() {
            // hyper flushes the connection only once its own buffer drained.
            self.stalled_since = None;
        }
        self.check(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
