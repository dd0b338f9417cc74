//! Response and request bodies.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::StatusCode;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::intake::{IntakeBudget, Refusal};
use super::reply::Reply;

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

/// [`chunks`] whose parts hold `hold` (a share of the output budget) until
/// the last of them is gone: written to the socket by hyper, or dropped
/// unsent with the connection.
pub fn chunks_held(parts: Vec<Bytes>, hold: OwnedSemaphorePermit) -> Body {
    let hold = Arc::new(hold);
    let parts = parts
        .into_iter()
        .map(|bytes| {
            Bytes::from_owner(Held {
                bytes,
                _hold: Arc::clone(&hold),
            })
        })
        .collect();
    chunks(parts)
}

/// A part of a held body: its bytes (the same memory, so `sendfile` still
/// recognises file-cache slices) and the budget they count against.
struct Held {
    bytes: Bytes,
    _hold: Arc<OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
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
    /// The body arrived slower than [`BodyPace`] allows (or stalled): 408,
    /// and the connection is closed.
    TooSlow,
    /// The intake budget had no room for it (503) or never will (413).
    Refused(Refusal),
}

/// How slowly a request body may arrive. A body is read for at most
/// `grace` plus the time its bytes so far would take at `min_rate`, so a
/// client that announces a large body and sends a trickle, or a chunked
/// body that never ends, is cut off instead of holding its connection (and
/// a file descriptor) forever; a body sent at any rate above `min_rate`
/// after the grace is never cut off. The body size limit bounds the total.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    /// Time every body gets whatever its rate.
    pub grace: Duration,
    /// Bytes per second the body must average beyond the grace.
    pub min_rate: u64,
}

impl BodyPace {
    /// When a body that started at `start` and has delivered `received`
    /// bytes must have delivered its next frame.
    fn deadline(&self, start: Instant, received: u64) -> Instant {
        let earned = received as f64 / self.min_rate.max(1) as f64;
        start + self.grace + Duration::from_secs_f64(earned.min(1e9))
    }
}

/// Reads a whole request body of at most `limit` bytes, at the pace `pace`
/// requires, holding its bytes in `intake` as they arrive (not as
/// `Content-Length` announces them: announcing costs a client nothing, so
/// it must not take the budget from clients that send). The returned hold
/// keeps the body's share of the budget; the caller may grow it by what it
/// builds from the body.
pub async fn read_limited(
    mut body: Incoming,
    limit: usize,
    pace: BodyPace,
    intake: &IntakeBudget,
) -> Result<(Bytes, OwnedSemaphorePermit), ReadError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut hold = intake.empty();
    // Time spent waiting for the budget is the server's, not the client's:
    // it moves the pace's start instead of counting against the body.
    let mut start = Instant::now();
    let mut received = 0u64;
    let mut out = BytesMut::new();
    loop {
        let frame = tokio::time::timeout_at(pace.deadline(start, received), body.frame()).await;
        let frame = match frame {
            Err(_) => return Err(ReadError::TooSlow),
            Ok(None) => return Ok((out.freeze(), hold)),
            Ok(Some(Err(_))) => return Err(ReadError::Broken),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we store
        };
        received += data.len() as u64;
        if received > limit as u64 {
            return Err(ReadError::TooLarge);
        }
        let beyond = (received as usize).saturating_sub(hold.num_permits());
        if beyond > 0 {
            let waited = Instant::now();
            intake
                .grow(&mut hold, beyond)
                .await
                .map_err(ReadError::Refused)?;
            start += waited.elapsed();
        }
        if out.is_empty() && body.is_end_stream() {
            return Ok((data, hold)); // the common one-frame body, without a copy
        }
        out.extend_from_slice(&data);
    }
}

impl ReadError {
    /// The answer to a request whose body failed this way.
    pub fn reply(&self, limit: usize) -> Reply {
        match self {
            ReadError::TooLarge => Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {limit} bytes"),
            ),
            ReadError::Broken => {
                Reply::error(StatusCode::BAD_REQUEST, "request body could not be read")
            }
            // hyper cannot reuse a connection whose body was not read to
            // its end; saying so lets the client know it is closed.
            ReadError::TooSlow => Reply::error(
                StatusCode::REQUEST_TIMEOUT,
                "request body arrived too slowly (see body_grace_ms and body_min_rate)",
            )
            .header("connection", "close"),
            ReadError::Refused(r) => r.reply(),
        }
    }
}
