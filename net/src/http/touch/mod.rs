//! Prisma Streams' touch routes on a stream: `touch/wait`, `touch/meta` and
//! `touch/templates/activate`, one file per operation. Every answer uses
//! Prisma's JSON envelope and headers, and a wrong method is its 400
//! `unsupported method` (not 405), so its clients work unchanged.

mod activate;
mod meta;
mod wait;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};

use super::reply::Reply;
use super::router::Ctx;

/// The route of a path ending in a touch operation: the stream name and
/// the operation, or `None` when the name is not a touch route.
pub fn split(name: &str) -> Option<(&str, Op)> {
    for (suffix, op) in [
        ("/touch/templates/activate", Op::Activate),
        ("/touch/meta", Op::Meta),
        ("/touch/wait", Op::Wait),
    ] {
        if let Some(stream) = name.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            return Some((stream, op));
        }
    }
    None
}

/// A touch operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST touch/wait`.
    Wait,
    /// `GET touch/meta`.
    Meta,
    /// `POST touch/templates/activate`.
    Activate,
}

/// Answers one touch request.
pub async fn handle(ctx: &Ctx, req: Request<Incoming>, stream: &str, op: Op) -> Reply {
    let method_ok = match op {
        Op::Meta => req.method() == Method::GET,
        Op::Wait | Op::Activate => req.method() == Method::POST,
    };
    if !method_ok {
        return bad("unsupported method");
    }
    match op {
        Op::Wait => wait::handle(ctx, req, stream).await,
        Op::Meta => meta::handle(ctx, req, stream).await,
        Op::Activate => activate::handle(ctx, req, stream).await,
    }
}

/// A 200 JSON answer with Prisma's touch headers.
fn ok(body: &Value) -> Reply {
    envelope(StatusCode::OK, body)
}

fn envelope(status: StatusCode, body: &Value) -> Reply {
    Reply::prisma_json(status, body)
}

/// Prisma's 400 envelope.
fn bad(message: &str) -> Reply {
    envelope(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"code": "bad_request", "message": message}}),
    )
}

/// Maps an engine error to Prisma's envelope.
fn engine_error(e: &weir_storage::Error) -> Reply {
    use weir_storage::Error as E;
    let (status, code, message) = match e {
        E::NotFound | E::Gone => (StatusCode::NOT_FOUND, "not_found", "not_found".to_string()),
        E::TouchNotEnabled => (
            StatusCode::NOT_FOUND,
            "not_found",
            "touch not enabled".to_string(),
        ),
        E::Invalid(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
        E::ShutDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "server is shutting down".to_string(),
        ),
        e => (StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    envelope(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// The largest touch request body read (a wait with 1024 keys and 256
/// declared templates stays far below it).
const MAX_BODY: usize = 1 << 20;
