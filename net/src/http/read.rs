//! GET: catch-up reads (and dispatch to long-poll and SSE). A response holds
//! at most the configured byte budget of stored batches, never the whole
//! stream; clients page with `Stream-Next-Offset`.

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use weir_storage::Batch;

use super::body::full;
use super::offsets::{parse_offset, OffsetParam};
use super::reply::Reply;
use super::router::Ctx;
use super::{errors, headers, json, long_poll, query, sse};

/// Cache policy of a chunk that does not reach the tail: its bytes never change.
const CACHE_HISTORICAL: &str = "public, max-age=60, stale-while-revalidate=300";
/// Cache policy of a chunk that reaches the tail: may grow, revalidate by ETag.
const CACHE_TAIL: &str = "no-cache";

/// The response body for `batches` of a stream in JSON mode or not.
pub fn render(batches: &[Batch], json_mode: bool) -> Bytes {
    if json_mode {
        return json::array(batches.iter().flat_map(|b| b.iter().map(|r| r.payload)));
    }
    if let [b] = batches {
        if b.len() == 1 {
            return b.payload_bytes(0).unwrap_or_default();
        }
    }
    let mut out = BytesMut::with_capacity(batches.iter().map(Batch::data_len).sum());
    for b in batches {
        for r in b.iter() {
            out.extend_from_slice(r.payload);
        }
    }
    out.freeze()
}

/// Entity tag of a read of stream `id` covering `[from, to)`; a closed tail
/// is part of the answer, so it is part of the tag.
pub fn etag(id: u64, from: u64, to: u64, closed: bool) -> String {
    format!("\"{id}:{from}:{to}{}\"", if closed { ":c" } else { "" })
}

/// Whether `If-None-Match` names `tag` (or `*`).
fn not_modified(h: &HeaderMap, tag: &str) -> bool {
    headers::text(h, "if-none-match")
        .ok()
        .flatten()
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == tag || t == "*" || t.strip_prefix("W/") == Some(tag))
        })
}

/// Answers GET on a stream.
pub async fn handle(ctx: &Ctx, req: Request<Incoming>, name: &str) -> Reply {
    let bad = |e: String| Reply::error(StatusCode::BAD_REQUEST, e);
    let pairs = match query::pairs(req.uri().query()) {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let (offset, live, cursor) = match (
        query::single(&pairs, "offset"),
        query::single(&pairs, "live"),
        query::single(&pairs, "cursor"),
    ) {
        (Ok(o), Ok(l), Ok(c)) => (o, l, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad(e),
    };
    let offset = match offset.map(parse_offset) {
        None => None,
        Some(Some(o)) => Some(o),
        Some(None) => return bad("malformed offset".into()),
    };
    match live {
        None => catch_up(
            ctx,
            req.headers(),
            name,
            offset.unwrap_or(OffsetParam::Start),
        ),
        Some(mode @ ("long-poll" | "sse")) => {
            let Some(offset) = offset else {
                return bad("live reads need an offset".into());
            };
            if mode == "sse" {
                sse::handle(ctx, name, offset, cursor)
            } else {
                long_poll::handle(ctx, name, offset, cursor).await
            }
        }
        Some(_) => bad("live must be long-poll or sse".into()),
    }
}

fn catch_up(ctx: &Ctx, h: &HeaderMap, name: &str, offset: OffsetParam) -> Reply {
    let info = match ctx.engine.head(name) {
        Ok(i) => i,
        Err(e) => return errors::reply(&e),
    };
    let json_mode = json::is_json(&info.config.content_type);
    let from = match offset {
        OffsetParam::Start => 0,
        OffsetParam::At(o) => o,
        OffsetParam::Now => {
            // A read at the tail: no data, but it is a read (extends a TTL).
            let r = match ctx
                .engine
                .tail(name)
                .and_then(|(tail, _)| ctx.engine.read(name, tail, 0))
            {
                Ok(r) => r,
                Err(e) => return errors::reply(&e),
            };
            let body = if json_mode {
                Bytes::from_static(b"[]")
            } else {
                Bytes::new()
            };
            return Reply::new(StatusCode::OK)
                .header("content-type", &info.config.content_type)
                .next_offset(r.next_offset)
                .up_to_date(true)
                .closed(r.closed)
                .header("cache-control", "no-store")
                .body(full(body));
        }
    };
    let r = match ctx.engine.read(name, from, ctx.config.read_budget_bytes) {
        Ok(r) => r,
        Err(e) => return errors::reply(&e),
    };
    let up = r.up_to_date();
    let closed = r.closed && up;
    let tag = etag(info.id, from, r.next_offset, closed);
    let reply = |status| {
        Reply::new(status)
            .header("content-type", &info.config.content_type)
            .next_offset(r.next_offset)
            .up_to_date(up)
            .closed(closed)
            .header("etag", &tag)
            .header(
                "cache-control",
                if up { CACHE_TAIL } else { CACHE_HISTORICAL },
            )
    };
    if not_modified(h, &tag) {
        return reply(StatusCode::NOT_MODIFIED);
    }
    reply(StatusCode::OK).body(full(render(&r.batches, json_mode)))
}
