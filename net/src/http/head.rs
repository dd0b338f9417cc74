//! HEAD: stream metadata without a body. Never extends a sliding TTL.

use hyper::StatusCode;

use super::errors;
use super::reply::Reply;
use super::rfc3339::format_ms;
use super::router::Ctx;

/// Answers HEAD on a stream.
pub fn handle(ctx: &Ctx, name: &str) -> Reply {
    match ctx.engine.head(name) {
        Err(e) => errors::reply(&e).body(super::body::empty()),
        Ok(info) => {
            let mut r = Reply::new(StatusCode::OK)
                .header("content-type", &info.config.content_type)
                .next_offset(info.next_offset)
                .closed(info.closed)
                .header("cache-control", "no-store");
            if let Some(ttl) = info.config.ttl_secs {
                r = r.header("stream-ttl", ttl.to_string());
            }
            if let Some(at) = info.config.expires_at_ms {
                r = r.header("stream-expires-at", format_ms(at));
            }
            if info.state.mode != weir_storage::StateMode::None {
                r = r.header("stream-state", info.state.mode.as_str());
                if let Some(done) = info.state.building {
                    r = r.header(
                        "stream-state-progress",
                        format!("{done}/{}", info.next_offset),
                    );
                }
            }
            r
        }
    }
}
