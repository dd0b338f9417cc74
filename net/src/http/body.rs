//! Response and request bodies.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Frame, Incoming, SizeHint};

/// The body type of every response: a full buffer or a stream (SSE).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A body holding `b`.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// A body sent as `parts` in order, one frame each. Shared buffers (stored
/// batches) go out without being concatenated into a new one first, and the
/// exact length still gives the response a `Content-Length`.
pub fn chunks(parts: Vec<Bytes>) -> Body {
    let remaining = parts.iter().map(|b| b.len() as u64).sum();
    Chunks {
        parts: parts.into_iter().filter(|b| !b.is_empty()).collect(),
        remaining,
    }
    .boxed_unsync()
}

/// The body behind [`chunks`].
struct Chunks {
    parts: VecDeque<Bytes>,
    remaining: u64,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.pop_front();
        if let Some(b) = &next {
            self.remaining -= b.len() as u64;
        }
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().boxed_unsync()
}

/// Why a request body could not be read.
pub enum ReadError {
    /// Larger than the configured limit: 413.
    TooLarge,
    /// The connection failed mid-body: 400.
    Broken,
}

/// Reads a whole request body of at most `limit` bytes.
pub async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, ReadError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReadError::TooLarge),
        Err(_) => Err(ReadError::Broken),
    }
}
