//! CORS and browser security headers. Streams are meant to be fetched from
//! any origin (they carry no cookies), so every response allows any origin,
//! exposes the protocol headers to scripts, and tells browsers not to sniff
//! or embed it unexpectedly.

use hyper::header::{HeaderMap, HeaderValue};

/// Protocol headers a browser script may read from responses.
const EXPOSED: &str = "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, \
Stream-TTL, Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, \
Producer-Expected-Seq, Producer-Received-Seq, ETag, Location, Content-Type";

/// Request headers a preflight allows when the browser does not list them.
const ALLOWED: &str = "Content-Type, Authorization, If-None-Match, Stream-Seq, Stream-TTL, \
Stream-Expires-At, Stream-Closed, Stream-Key, Stream-Forked-From, Stream-Fork-Offset, \
Stream-Fork-Sub-Offset, Producer-Id, Producer-Epoch, Producer-Seq";

/// Adds the headers every response carries.
pub fn add_common(h: &mut HeaderMap) {
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(EXPOSED),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
}

/// Headers of a preflight answer; echoes the requested headers when given.
pub fn preflight(req: &HeaderMap, out: &mut HeaderMap) {
    out.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    );
    let allow = req
        .get("access-control-request-headers")
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or(HeaderValue::from_static(ALLOWED));
    out.insert("access-control-allow-headers", allow);
    out.insert("access-control-max-age", HeaderValue::from_static("86400"));
}
