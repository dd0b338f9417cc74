//! The reserved subscription API under `/v1/stream/__ds/`: stream-metadata
//! subscriptions that *wake* a consumer when linked streams have data past
//! what it acknowledged.
//!
//! A subscription links streams explicitly (`streams`) or by `pattern`
//! (see `glob.rs`). When a linked stream changes and has data past its
//! acknowledged offset, the subscription opens a *wake* (a generation, an id
//! and a token): a `webhook` subscription POSTs a signed notification (see
//! `signing.rs`; a `{"done":true}` answer acknowledges it at once, otherwise
//! the receiver calls back); a `pull-wake` subscription appends an event to
//! its wake stream and workers `claim`, `ack` and `release` it under a lease.
//! Acknowledging with `done` closes the wake; a later call for a closed
//! generation is fenced (409 `FENCED`). At most one wake is open at a time.
//!
//! Changes arrive through the engine's commit hook (`feed.rs`), so appends
//! from every door wake subscriptions. State is kept in memory:
//! subscriptions do not survive a restart.

mod feed;
mod glob;
mod signing;
mod state;
mod webhook;

pub use feed::watch_commits;
pub use state::Subscriptions;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};

use super::body::{read_limited, ReadError};
use super::headers;
use super::query;
use super::reply::Reply;
use super::router::Ctx;

/// An API error: status, machine-readable code and message.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<(&'static str, String)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    fn reply(self) -> Reply {
        let mut err = json!({ "code": self.code, "message": self.message });
        if let Some((k, v)) = self.extra {
            err[k] = Value::String(v);
        }
        Reply::json(self.status, &json!({ "error": err }))
    }
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such subscription")
}

/// Routes a request whose path follows `/v1/stream/__ds/`.
pub async fn route(ctx: &Ctx, req: Request<Incoming>, path: &str) -> Reply {
    match dispatch(ctx, req, path).await {
        Ok(r) => r,
        Err(e) => e.reply(),
    }
}

async fn body_json(ctx: &Ctx, req: Request<Incoming>) -> Result<Value, ApiError> {
    let body = read_limited(req.into_body(), 1 << 20, ctx.config.body_pace, &ctx.intake).await;
    let (bytes, _hold) = body.map_err(|e| match e {
        ReadError::TooSlow => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            "request body arrived too slowly",
        ),
        ReadError::Refused(super::intake::Refusal::Busy) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "too many request bodies in memory; retry shortly",
        ),
        _ => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            "request body too large",
        ),
    })?;
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", e.to_string()))
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    headers::text(req.headers(), "authorization")
        .ok()
        .flatten()
        .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
}

async fn dispatch(ctx: &Ctx, req: Request<Incoming>, path: &str) -> Result<Reply, ApiError> {
    let subs = &ctx.subs;
    let origin = format!(
        "http://{}",
        headers::text(req.headers(), "host")
            .ok()
            .flatten()
            .unwrap_or("localhost")
    );
    if path == "jwks.json" {
        return Ok(Reply::json(StatusCode::OK, &subs.jwks())
            .header("content-type", "application/jwk-set+json"));
    }
    let Some(rest) = path.strip_prefix("subscriptions/") else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such endpoint",
        ));
    };
    let mut segs = rest.splitn(2, '/');
    let id = segs
        .next()
        .and_then(|s| query::decode(s, false))
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_ID",
                "malformed subscription id",
            )
        })?;
    let tail = segs.next().unwrap_or("");
    let method = req.method().clone();
    match (method, tail) {
        (Method::PUT, "") => {
            let body = body_json(ctx, req).await?;
            let (created, view) = subs.put(&ctx.engine, &id, &body, &origin)?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(Reply::json(status, &view))
        }
        (Method::GET, "") => Ok(Reply::json(
            StatusCode::OK,
            &subs.get(&id).ok_or_else(not_found)?,
        )),
        (Method::DELETE, "") => {
            subs.delete(&id).ok_or_else(not_found)?;
            Ok(Reply::new(StatusCode::NO_CONTENT))
        }
        (Method::POST, "streams") => {
            let body = body_json(ctx, req).await?;
            subs.add_streams(&ctx.engine, &id, &body)?;
            Ok(Reply::new(StatusCode::NO_CONTENT))
        }
        (Method::DELETE, t) if t.starts_with("streams/") => {
            let p = query::decode(&t["streams/".len()..], false)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_PATH",
                        "malformed stream path",
                    )
                })?;
            subs.remove_stream(&id, &p)?;
            Ok(Reply::new(StatusCode::NO_CONTENT))
        }
        (Method::POST, "callback" | "ack") => {
            let token = bearer(&req);
            let body = body_json(ctx, req).await?;
            let next_wake = subs.ack(&ctx.engine, &id, token.as_deref(), &body)?;
            Ok(Reply::json(
                StatusCode::OK,
                &json!({ "ok": true, "next_wake": next_wake }),
            ))
        }
        (Method::POST, "claim") => {
            let body = body_json(ctx, req).await?;
            match subs.claim(&id, &body)? {
                Some(v) => Ok(Reply::json(StatusCode::OK, &v)),
                None => Ok(Reply::new(StatusCode::NO_CONTENT)),
            }
        }
        (Method::POST, "release") => {
            let token = bearer(&req);
            let body = body_json(ctx, req).await?;
            subs.release(&id, token.as_deref(), &body)?;
            Ok(Reply::new(StatusCode::NO_CONTENT))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "method not allowed here",
        )),
    }
}
