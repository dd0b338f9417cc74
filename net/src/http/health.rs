//! `GET /healthz` (liveness) and `GET /readyz` (readiness), for load
//! balancers and orchestrators. Liveness answers 200 while the process
//! serves HTTP at all; readiness answers 200 only while the storage engine
//! commits and the server is not draining, and 503 otherwise, so a balancer
//! stops sending traffic before the doors close.

use hyper::StatusCode;

use super::body::full;
use super::reply::Reply;
use super::router::Ctx;

/// Liveness path.
pub const HEALTHZ: &str = "/healthz";
/// Readiness path.
pub const READYZ: &str = "/readyz";

/// Answers a health path, or `None` if `path` is not one.
pub fn handle(ctx: &Ctx, path: &str) -> Option<Reply> {
    let (status, text) = match path {
        HEALTHZ => (StatusCode::OK, "ok\n"),
        READYZ if *ctx.stop.borrow() => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        READYZ if !ctx.engine.is_running() => {
            (StatusCode::SERVICE_UNAVAILABLE, "storage engine stopped\n")
        }
        READYZ => (StatusCode::OK, "ready\n"),
        _ => return None,
    };
    Some(
        Reply::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .header("cache-control", "no-store")
            .body(full(text)),
    )
}
