//! PUT: create a stream (idempotent: 201 when created, 200 when it exists
//! with the same configuration, 409 otherwise), optionally with an initial
//! body, already closed, or as a fork of another stream.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use weir_storage::{media_type, ForkRequest, Record, StateMode, StreamConfig, SubOffset};

use super::body::read_limited;
use super::headers::{self, strict_uint};
use super::offsets::{parse_offset, OffsetParam};
use super::reply::Reply;
use super::router::{Ctx, STREAM_PREFIX};
use super::{errors, json, query};

/// Content type of a stream created without one.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

fn bad(reason: impl std::fmt::Display) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, reason)
}

/// Normalized content type: trimmed and lower-cased, so creates that differ
/// only in case are the same configuration.
fn normalize(ct: &str) -> String {
    ct.trim().to_ascii_lowercase()
}

/// Turns a body into records for a stream of `content_type`.
pub fn initial_records(
    content_type: &str,
    body: &Bytes,
    key: Option<&Bytes>,
    count: usize,
) -> Result<Vec<Record>, String> {
    if json::is_json(content_type) {
        if body.iter().all(u8::is_ascii_whitespace) {
            Ok(Vec::new())
        } else {
            json::records(body, key, count)
        }
    } else if body.is_empty() {
        Ok(Vec::new())
    } else {
        Ok(vec![Record {
            key: key.cloned(),
            payload: body.clone(),
            tombstone: false,
        }])
    }
}

/// The stream name a `Stream-Forked-From` value names: a stream path
/// (`/v1/stream/a/b`) or a full URL ending in one.
pub(super) fn source_name(v: &str) -> Option<String> {
    let at = v.find(STREAM_PREFIX)?;
    let rest = &v[at + STREAM_PREFIX.len()..];
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    query::decode(rest, false).filter(|n| !n.is_empty())
}

/// Answers PUT on a stream.
pub async fn handle(ctx: &Ctx, req: Request<Incoming>, name: &str) -> Reply {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let parsed = (|| -> Result<_, String> {
        let ct = headers::text(h, "content-type")?.map(normalize);
        let ttl = headers::ttl(h)?;
        let expires = headers::expires_at(h)?;
        if ttl.is_some() && expires.is_some() {
            return Err("Stream-TTL and Stream-Expires-At are mutually exclusive".into());
        }
        let close = headers::flag(h, "stream-closed")?;
        let key = headers::text(h, "stream-key")?.map(|k| Bytes::copy_from_slice(k.as_bytes()));
        let forked_from = headers::text(h, "stream-forked-from")?;
        let state_header = headers::text(h, "stream-state")?;
        let state = match state_header {
            None => StateMode::None,
            Some(v) => {
                StateMode::parse(v).ok_or("Stream-State must be none, keyed or state-protocol")?
            }
        };
        if forked_from.is_some() && state != StateMode::None {
            return Err("a fork keeps its source's state mode; Stream-State is not allowed".into());
        }
        let fork_offset = headers::text(h, "stream-fork-offset")?;
        let sub = headers::text(h, "stream-fork-sub-offset")?;
        if forked_from.is_none() && (fork_offset.is_some() || sub.is_some()) {
            return Err(
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From".into(),
            );
        }
        let fork = match forked_from {
            None => None,
            Some(src) => {
                let source = source_name(src).ok_or("Stream-Forked-From must name a stream URL")?;
                let offset = match fork_offset {
                    None => None,
                    Some(o) => match parse_offset(o) {
                        Some(OffsetParam::At(o)) => Some(o),
                        Some(OffsetParam::Start) => Some(0),
                        Some(OffsetParam::Now) => None,
                        None => return Err("malformed Stream-Fork-Offset".into()),
                    },
                };
                let sub = match sub {
                    None => 0,
                    Some(s) => strict_uint(s)
                        .ok_or("Stream-Fork-Sub-Offset must be a non-negative integer")?,
                };
                if sub > 0 && offset.is_none() {
                    return Err("Stream-Fork-Sub-Offset > 0 needs Stream-Fork-Offset".into());
                }
                Some((source, offset, sub))
            }
        };
        Ok((
            ct,
            ttl,
            expires,
            close,
            key,
            fork,
            state,
            state_header.is_some(),
        ))
    })();
    let (ct, ttl, expires, close, key, fork, state, state_named) = match parsed {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    let limit = ctx.config.max_append_bytes;
    let (body, mut hold) = match read_limited(body, limit, ctx.config.body_pace, &ctx.intake).await
    {
        Ok(b) => b,
        Err(e) => return e.reply(limit),
    };

    let outcome = match fork {
        None => {
            let ct = ct.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
            let count = match ctx
                .intake
                .grow_for_records(&mut hold, json::is_json(&ct), &body)
                .await
            {
                Ok(n) => n,
                Err(r) => return r.reply(),
            };
            let records = match initial_records(&ct, &body, key.as_ref(), count) {
                Ok(r) => r,
                Err(e) => return bad(e),
            };
            let config = StreamConfig {
                content_type: ct,
                ttl_secs: ttl,
                expires_at_ms: expires,
            };
            ctx.engine
                .create_stream_in_mode(name, config, state, records, close)
                .await
        }
        Some((source, offset, sub)) => {
            // The source's content type decides how the body and the
            // sub-offset are read; a missing or soft-deleted source fails here.
            let src = match ctx.engine.head(&source) {
                Ok(info) => info,
                Err(weir_storage::Error::Gone) => {
                    return Reply::error(StatusCode::CONFLICT, "source stream was deleted")
                }
                Err(e) => return errors::reply(&e),
            };
            let effective_ct = ct
                .clone()
                .unwrap_or_else(|| src.config.content_type.clone());
            if media_type(&effective_ct) != media_type(&src.config.content_type) {
                return Reply::error(
                    StatusCode::CONFLICT,
                    "fork content type differs from the source's",
                );
            }
            let is_json = json::is_json(&effective_ct);
            let count = match ctx.intake.grow_for_records(&mut hold, is_json, &body).await {
                Ok(n) => n,
                Err(r) => return r.reply(),
            };
            let records = match initial_records(&effective_ct, &body, key.as_ref(), count) {
                Ok(r) => r,
                Err(e) => return bad(e),
            };
            let sub_offset = match (sub, json::is_json(&effective_ct)) {
                (0, _) => SubOffset::None,
                (n, true) => SubOffset::Records(n),
                (n, false) => SubOffset::Bytes(n),
            };
            let req = ForkRequest {
                source,
                offset,
                sub_offset,
                content_type: ct,
                ttl_secs: ttl,
                expires_at_ms: expires,
                records,
                close,
            };
            ctx.engine.fork_stream(name, req).await
        }
    };
    // The records were held until the engine committed them.
    drop(hold);
    match outcome {
        Err(e) => errors::reply(&e),
        // The engine takes a create without a mode for "any mode" (the mode
        // may have been set later through `_profile`), so an explicit
        // `Stream-State: none` on a stream with state is refused here.
        Ok(out) if !out.created && state_named && out.info.state.mode != state => {
            errors::reply(&weir_storage::Error::ConfigConflict)
        }
        Ok(out) => {
            let status = if out.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut r = Reply::new(status)
                .header("content-type", &out.info.config.content_type)
                .next_offset(out.info.next_offset)
                .closed(out.info.closed);
            if out.created {
                let host = headers::text(h, "host")
                    .ok()
                    .flatten()
                    .unwrap_or("localhost");
                r = r.header("location", format!("http://{host}{}", parts.uri.path()));
            }
            r
        }
    }
}
