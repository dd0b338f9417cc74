//! The connection type hyper serves: a TCP stream whose vectored writes send
//! large slices that lie in the storage engine's file cache with `sendfile`,
//! so a catch-up read's payload goes from the page cache to the socket
//! without being copied through this process. Every other write is a plain
//! `writev`. The bytes on the wire are the same either way; only who copies
//! them differs.

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use tokio::io::Interest;
use tokio::net::TcpStream;
use weir_storage::{file_region, FileRegion};

/// Slices shorter than this are written from memory: looking them up and a
/// syscall of their own would cost more than copying them.
const SENDFILE_MIN: usize = 16 << 10;
/// Most bytes one `sendfile` call offers.
const SENDFILE_MAX: usize = 256 << 10;

/// Bytes written with `sendfile` by every connection of this process.
static SENT_FROM_FILES: AtomicU64 = AtomicU64::new(0);

/// How many response bytes this process has sent straight from the file
/// cache with `sendfile` (the rest went through `writev`).
pub fn sendfile_bytes() -> u64 {
    SENT_FROM_FILES.load(Ordering::Relaxed)
}

/// Sets the TCP congestion control of `socket` to `name`. Set on the
/// listener, it is inherited by every connection accepted from it.
pub fn set_congestion(socket: &impl AsRawFd, name: &str) -> io::Result<()> {
    // SAFETY: the descriptor is open, and the option value is `name`'s bytes
    // with their exact length, as TCP_CONGESTION expects.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    Err(io::Error::new(
        e.kind(),
        format!("cannot use TCP congestion control {name:?} (see net.ipv4.tcp_available_congestion_control): {e}"),
    ))
}

/// A served HTTP connection (see the module documentation).
pub struct HttpIo {
    inner: TokioIo<TcpStream>,
}

impl HttpIo {
    /// Wraps an accepted connection.
    pub fn new(tcp: TcpStream) -> Self {
        HttpIo {
            inner: TokioIo::new(tcp),
        }
    }

    /// The TCP stream, for waiting on its readiness.
    pub fn tcp(&self) -> &TcpStream {
        self.inner.inner()
    }

    /// Sends up to `len` bytes of `region` straight from its file.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        region: &FileRegion,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let tcp = self.inner.inner();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            let sent = tcp.try_io(Interest::WRITABLE, || {
                let mut offset = region.offset() as libc::off_t;
                // SAFETY: both descriptors are open for the call (the region
                // holds its file) and `offset` is a valid local.
                let n = unsafe {
                    libc::sendfile(
                        tcp.as_raw_fd(),
                        region.fd(),
                        &mut offset,
                        len.min(SENDFILE_MAX),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Ok(n) => {
                    SENT_FROM_FILES.fetch_add(n as u64, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Read for HttpIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl Write for HttpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Memory slices before the first file-backed one go out together;
        // the file-backed one is sent by the next call, on its own.
        let cached = bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= SENDFILE_MIN)
            .find_map(|(i, b)| file_region(b).map(|r| (i, r)));
        match cached {
            Some((0, region)) => match ready!(self.poll_sendfile(cx, &region, bufs[0].len())) {
                Ok(n) if n > 0 => Poll::Ready(Ok(n)),
                Err(e) if e.raw_os_error() != Some(libc::EINVAL) => Poll::Ready(Err(e)),
                // Nothing sent (the file ended early) or EINVAL (a socket
                // sendfile cannot write to; never expected for TCP): the
                // same bytes from memory.
                _ => Pin::new(&mut self.inner).poll_write(cx, &bufs[0]),
            },
            Some((i, _)) => Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..i]),
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
