//! Response and request bodies.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;

/// The body type of every response: a full buffer or a stream (SSE).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A body holding `b`.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
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
