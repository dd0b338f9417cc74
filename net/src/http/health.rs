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
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let (status, text) = match path {
        HEALTHZ => (StatusCode::OK, "ok\n".to_string()),
        READYZ if *ctx.stop.borrow() => (unavailable, "draining\n".to_string()),
        READYZ if !ctx.engine.is_running() => (unavailable, "storage engine stopped\n".into()),
        READYZ => match ctx.engine.write_fault() {
            // Reads still work, but a balancer should send writers elsewhere.
            Some(f) if f.no_space => (
                unavailable,
                "disk full: writes fail until space is freed (reads work)\n".into(),
            ),
            Some(f) => (unavailable, format!("writes failing: {}\n", f.message)),
            None => (StatusCode::OK, "ready\n".to_string()),
        },
        _ => return None,
    };
    Some(
        Reply::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .header("cache-control", "no-store")
            .body(full(text)),
    )
}
