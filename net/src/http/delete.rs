//! DELETE: removes a stream (soft-deletes it while forks still read it).

use hyper::StatusCode;

use super::errors;
use super::reply::Reply;
use super::router::Ctx;

/// Answers DELETE on a stream.
pub async fn handle(ctx: &Ctx, name: &str) -> Reply {
    match ctx.engine.delete_stream_async(name).await {
        Ok(()) => Reply::new(StatusCode::NO_CONTENT),
        Err(e) => errors::reply(&e),
    }
}
