//! Request dispatch: `/v1/stream/{name}` by method, the reserved `__ds`
//! subscription API, CORS preflights, and the WebSocket upgrade at `/v1/ws`.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;
use weir_storage::Engine;

use super::body::Body;
use super::config::HttpConfig;
use super::reply::Reply;
use super::subscriptions::Subscriptions;
use super::{append, cors, create, delete, head, query, read};

/// Prefix of every stream URL.
pub const STREAM_PREFIX: &str = "/v1/stream/";

/// What every handler shares.
pub struct Ctx {
    /// The storage engine.
    pub engine: Engine,
    /// HTTP tunables.
    pub config: HttpConfig,
    /// Turns `true` when the server is shutting down: live reads end early.
    pub stop: watch::Receiver<bool>,
    /// The reserved subscription API's state.
    pub subs: Arc<Subscriptions>,
    /// Connection slots of the WebSocket door (upgraded connections).
    pub ws_slots: Arc<super::limit::Slots>,
    /// Request counters and the `/metrics` registry.
    pub metrics: Arc<super::metrics::Metrics>,
    /// Read-response bytes held across connections (see `output.rs`).
    pub output: Arc<super::output::OutputBudget>,
    /// Request-body and split-record bytes held across connections (see
    /// `intake.rs`).
    pub intake: Arc<super::intake::IntakeBudget>,
}

/// hyper's service entry point.
pub async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let name = route_name(req.method(), req.uri().path());
    let metrics = Arc::clone(&ctx.metrics);
    let reply = route(ctx, req).await;
    metrics.count(name, reply.status());
    Ok(reply.into_response())
}

/// The bounded route label of a request (never the stream's name).
fn route_name(method: &Method, path: &str) -> &'static str {
    if !path.starts_with(STREAM_PREFIX) {
        return match path {
            super::metrics::PATH => "metrics",
            super::health::HEALTHZ | super::health::READYZ => "health",
            crate::ws::PATH => "websocket",
            _ => "other",
        };
    }
    if path.ends_with("/_profile") {
        return "profile";
    }
    if path.ends_with("/_state") {
        return "state";
    }
    if path.ends_with("/touch/wait") {
        return "touch_wait";
    }
    if path.ends_with("/touch/meta") {
        return "touch_meta";
    }
    if path.ends_with("/touch/templates/activate") {
        return "touch_activate";
    }
    if path[STREAM_PREFIX.len()..].starts_with("__ds/") {
        return "subscriptions";
    }
    match *method {
        Method::PUT => "create",
        Method::POST => "append",
        Method::GET => "read",
        Method::HEAD => "head",
        Method::DELETE => "delete",
        _ => "other",
    }
}

async fn route(ctx: Arc<Ctx>, mut req: Request<Incoming>) -> Reply {
    if req.method() == Method::OPTIONS {
        let mut r = Reply::new(StatusCode::NO_CONTENT);
        cors::preflight(req.headers(), r.headers_mut());
        return r;
    }
    let path = req.uri().path().to_string();
    if let Some(auth) = &ctx.config.auth {
        match super::auth::check(auth, req.method(), &path, req.headers()) {
            Err(r) => return super::auth::refusal(r),
            Ok(Some(expiry)) => {
                req.extensions_mut().insert(expiry);
            }
            Ok(None) => {}
        }
    }
    if path == crate::ws::PATH {
        let (engine, stop) = (ctx.engine.clone(), ctx.stop.clone());
        let (mut reply, headers) =
            match crate::ws::accept(req, engine, &ctx.config.ws, stop, &ctx.ws_slots) {
                Ok(h) => (Reply::new(StatusCode::SWITCHING_PROTOCOLS), h),
                Err(r) => (Reply::error(r.status, r.reason), r.headers),
            };
        reply.headers_mut().extend(headers);
        return reply;
    }
    if let Some(r) = super::health::handle(&ctx, &path) {
        return r;
    }
    if path == super::metrics::PATH {
        let accept = req.headers().get(hyper::header::ACCEPT);
        return ctx.metrics.reply(accept.and_then(|v| v.to_str().ok()));
    }
    let Some(rest) = path.strip_prefix(STREAM_PREFIX) else {
        return Reply::error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    if let Some(sub) = rest.strip_prefix("__ds/") {
        return super::subscriptions::route(&ctx, req, sub).await;
    }
    let Some(name) = query::decode(rest, false) else {
        return Reply::error(StatusCode::BAD_REQUEST, "malformed stream path");
    };
    if name.is_empty() {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "a stream name is required: /v1/stream/{name}",
        );
    }
    // A stream's sub-resources; names ending in these segments are reserved.
    if let Some((stream, op)) = super::touch::split(&name) {
        return super::touch::handle(&ctx, req, stream, op).await;
    }
    if let Some(stream) = name.strip_suffix("/_profile").filter(|s| !s.is_empty()) {
        return super::profile::handle(&ctx, req, stream).await;
    }
    if let Some(stream) = name.strip_suffix("/_state").filter(|s| !s.is_empty()) {
        return match *req.method() {
            Method::GET => super::state::handle(&ctx, stream, req.uri().query()).await,
            _ => Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "GET, OPTIONS"),
        };
    }
    match *req.method() {
        Method::PUT => create::handle(&ctx, req, &name).await,
        Method::POST => append::handle(&ctx, req, &name).await,
        Method::GET => read::handle(&ctx, req, &name).await,
        Method::HEAD => head::handle(&ctx, &name),
        Method::DELETE => delete::handle(&ctx, &name).await,
        _ => Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            .header("allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    }
}
