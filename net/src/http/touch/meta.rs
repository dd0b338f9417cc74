//! `GET /v1/stream/{name}/touch/meta[?settle=flush&timeoutMs=]`: the
//! journal and processor state of a touch stream. With `settle=flush` it
//! polls every 25 ms until nothing is pending and the processor has caught
//! up, or the timeout passes, and answers either way.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use weir_storage::touch::defaults::SETTLE_POLL_MS;
use weir_storage::touch::request::parse_meta_query;

use super::super::offsets::format_offset;
use super::super::query;
use super::super::reply::Reply;
use super::super::router::Ctx;
use super::{bad, engine_error, ok};

pub async fn handle(ctx: &Ctx, req: Request<Incoming>, stream: &str) -> Reply {
    let params = match query::pairs(req.uri().query()) {
        Ok(p) => p,
        Err(m) => return bad(&m),
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (settle, timeout_ms) = match parse_meta_query(get("settle"), get("timeoutMs")) {
        Ok(p) => p,
        Err(m) => return bad(&m),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let mut meta = match ctx.engine.touch_meta(stream) {
            Ok(m) => m,
            Err(e) => return engine_error(&e),
        };
        if let Some(v) = meta.get_mut("walScannedThrough") {
            // The engine gives the offset as a number; clients get it in the
            // HTTP door's offset notation.
            if let Some(o) = v.as_u64() {
                *v = format_offset(o).into();
            }
        }
        let settled = meta
            .get("settled")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if !settle || settled || tokio::time::Instant::now() >= deadline {
            return ok(&meta);
        }
        let step = Duration::from_millis(SETTLE_POLL_MS);
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + step)).await;
    }
}
