//! `POST /v1/stream/{name}/touch/wait`: a long-lived request answered when
//! a key is touched after the cursor, at the timeout, or at once when the
//! cursor is stale. A client that goes away gets no answer and is counted
//! nowhere (hyper drops this future, which removes the waiter).

use hyper::body::Incoming;
use hyper::Request;
use serde_json::Value;
use weir_storage::touch::request::parse_wait;
use weir_storage::WaitOutcome;

use crate::proto::WaitResult;

use super::super::body::read_limited;
use super::super::reply::Reply;
use super::super::router::Ctx;
use super::{bad, engine_error, ok, MAX_BODY};

pub async fn handle(ctx: &Ctx, req: Request<Incoming>, stream: &str) -> Reply {
    let body =
        match read_limited(req.into_body(), MAX_BODY, ctx.config.body_pace, &ctx.intake).await {
            Ok((b, _hold)) => b,
            Err(e) => return e.reply(MAX_BODY),
        };
    let wait = match parse_wait(&body) {
        Ok(w) => w,
        Err(m) => return bad(&m),
    };
    // A one-frame body is a slice of the connection's read buffer: held for
    // the whole wait it would pin that buffer (8 KiB or more) while hyper
    // reads on into a new one.
    drop(body);
    let mut stop = ctx.stop.clone();
    let outcome = tokio::select! {
        r = ctx.engine.touch_wait(stream, wait) => r,
        // Shutting down: answer like a timeout so the client waits again
        // (on the restarted server, where its cursor is still valid).
        _ = stop.wait_for(|s| *s) => return bad("server is shutting down"),
    };
    match outcome {
        Ok(o) => ok(&outcome_json(&o)),
        Err(e) => engine_error(&e),
    }
}

/// The response body of a wait outcome (touches.md §1.8 "Responses"),
/// rendered by the one function every door uses.
pub fn outcome_json(o: &WaitOutcome) -> Value {
    WaitResult::from(o).to_json()
}
