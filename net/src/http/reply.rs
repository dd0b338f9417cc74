//! Building responses: status, the protocol headers, and short plain-text errors.

use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use super::body::{empty, full, Body};
use super::cors;
use super::offsets::format_offset;

/// A response under construction; every response gets the common headers.
pub struct Reply {
    res: Response<Body>,
}

impl Reply {
    /// A reply with `status` and no body.
    pub fn new(status: StatusCode) -> Self {
        let mut res = Response::new(empty());
        *res.status_mut() = status;
        cors::add_common(res.headers_mut());
        Reply { res }
    }

    /// A plain-text error reply.
    pub fn error(status: StatusCode, reason: impl std::fmt::Display) -> Self {
        Reply::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(full(format!("{reason}\n")))
    }

    /// A JSON reply.
    pub fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        Reply::new(status)
            .header("content-type", "application/json")
            .body(full(value.to_string()))
    }

    /// A JSON body with the headers Prisma Streams' JSON routes send
    /// (charset, `no-store`, `nosniff`): profiles, touches, and the errors
    /// of State Protocol streams, so its clients see what they expect.
    pub fn prisma_json(status: StatusCode, value: &serde_json::Value) -> Self {
        Reply::json(status, value)
            .header("content-type", "application/json; charset=utf-8")
            .header("cache-control", "no-store")
            .header("x-content-type-options", "nosniff")
    }

    /// Prisma Streams' error envelope, `{"error": {"code", "message"}}`.
    pub fn prisma_error(status: StatusCode, code: &str, message: &str) -> Self {
        Reply::prisma_json(
            status,
            &serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }

    /// The reply's status.
    pub fn status(&self) -> StatusCode {
        self.res.status()
    }

    /// Sets a header; values that are not valid header text are dropped
    /// (they only ever come from stored, already validated data).
    pub fn header(mut self, name: &'static str, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.res
                .headers_mut()
                .insert(HeaderName::from_static(name), v);
        }
        self
    }

    /// Sets `Stream-Next-Offset`.
    pub fn next_offset(self, offset: u64) -> Self {
        self.header("stream-next-offset", format_offset(offset))
    }

    /// Sets `Stream-Closed: true` when `closed`.
    pub fn closed(self, closed: bool) -> Self {
        if closed {
            self.header("stream-closed", "true")
        } else {
            self
        }
    }

    /// Sets `Stream-Up-To-Date: true` when `up_to_date`.
    pub fn up_to_date(self, up_to_date: bool) -> Self {
        if up_to_date {
            self.header("stream-up-to-date", "true")
        } else {
            self
        }
    }

    /// Sets the body.
    pub fn body(mut self, body: Body) -> Self {
        *self.res.body_mut() = body;
        self
    }

    /// Mutable access to the headers.
    pub fn headers_mut(&mut self) -> &mut hyper::HeaderMap {
        self.res.headers_mut()
    }

    /// The finished response.
    pub fn into_response(self) -> Response<Body> {
        self.res
    }
}
