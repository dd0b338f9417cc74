//! `POST /v1/stream/{name}/touch/templates/activate`: declares live-query
//! templates. Route-level shape errors reject the whole request; each
//! template is then activated, refreshed or denied on its own.

use hyper::body::Incoming;
use hyper::Request;
use weir_storage::templates::decl::parse_activate_body;

use crate::proto::TemplatesActivated;

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
    // The stream must be touch-enabled before the body is judged.
    let default_ttl = match ctx.engine.touch_default_ttl(stream) {
        Ok(t) => t,
        Err(e) => return engine_error(&e),
    };
    let (templates, ttl) = match parse_activate_body(&body, default_ttl) {
        Ok(p) => p,
        Err(m) => return bad(&m),
    };
    match ctx.engine.touch_activate(stream, &templates, Some(ttl)) {
        Ok(a) => ok(&TemplatesActivated::from(&a).to_json()),
        Err(e) => engine_error(&e),
    }
}
