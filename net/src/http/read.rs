//! GET: catch-up reads (and dispatch to long-poll and SSE). A response holds
//! at most the configured byte budget of stored batches, never the whole
//! stream; clients page with `Stream-Next-Offset`.

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use weir_storage::Batch;

use super::body::{chunks_held, full};
use super::offsets::{parse_offset, OffsetParam};
use super::reply::Reply;
use super::router::Ctx;
use super::{errors, headers, json, long_poll, query, sse};

/// Cache policy of a chunk that does not reach the tail: its bytes never change.
const CACHE_HISTORICAL: &str = "public, max-age=60, stale-while-revalidate=300";
/// Cache policy of a chunk that reaches the tail: may grow, revalidate by ETag.
const CACHE_TAIL: &str = "no-cache";

/// Payloads at least this large are sent as slices of their stored batch;
/// smaller ones are gathered into shared buffers so that a page of small
/// records does not become thousands of tiny frames.
const ZERO_COPY_MIN: usize = 16 << 10;
/// Size a gathering buffer grows to before it becomes its own frame.
const GATHER_BYTES: usize = 64 << 10;

/// The response body for `batches` of a stream in JSON mode or not, as the
/// buffers to send in order (their concatenation is the body).
pub fn render(batches: &[Batch], json_mode: bool) -> Vec<Bytes> {
    if json_mode || single_record(batches) {
        return vec![render_flat(batches, json_mode)];
    }
    let mut parts = Vec::new();
    let mut gather = BytesMut::new();
    for b in batches {
        for i in 0..b.len() {
            let Some(r) = b.get(i) else { break };
            if r.payload.len() >= ZERO_COPY_MIN {
                if !gather.is_empty() {
                    parts.push(gather.split().freeze());
                }
                parts.extend(b.payload_bytes(i));
                continue;
            }
            if gather.capacity() - gather.len() < r.payload.len() {
                if !gather.is_empty() {
                    parts.push(gather.split().freeze());
                }
                gather.reserve(GATHER_BYTES.max(r.payload.len()));
            }
            gather.extend_from_slice(r.payload);
        }
    }
    if !gather.is_empty() {
        parts.push(gather.freeze());
    }
    parts
}

/// Whether `batches` hold exactly one record (a common live answer), which
/// goes out as a slice of its batch whatever its size.
fn single_record(batches: &[Batch]) -> bool {
    matches!(batches, [b] if b.len() == 1)
}

/// [`render`] as one contiguous buffer, for encoders that need the whole
/// text at once (SSE splits it into lines, or base64-encodes it): one copy
/// of the payloads, none for a single record.
pub fn render_flat(batches: &[Batch], json_mode: bool) -> Bytes {
    if json_mode {
        return json::array(batches.iter().flat_map(|b| b.iter().map(|r| r.payload)));
    }
    if single_record(batches) {
        return batches[0].payload_bytes(0).unwrap_or_default();
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
        Some(None) => {
            return bad(
                "malformed offset: use -1 (the start), now (the tail), or an offset exactly as \
                 returned in Stream-Next-Offset (33 characters, like 0000000000000000_0000000000000042)"
                    .into(),
            )
        }
    };
    let (snapshot, filter) = match (
        query::single(&pairs, "snapshot"),
        query::single(&pairs, "filter"),
    ) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    let filter = match filter.map(|f| weir_storage::Filter::parse_bytes(f.as_bytes())) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return bad(e),
    };
    match snapshot {
        None | Some("false") => {}
        Some("true") => {
            if offset.unwrap_or(OffsetParam::Start) != OffsetParam::Start || live.is_some() {
                return bad("snapshot=true is a catch-up read from offset=-1".into());
            }
            return super::snapshot::handle(ctx, name, filter);
        }
        Some(_) => return bad("snapshot must be true or false".into()),
    }
    if let Some(f) = &filter {
        if live.is_some() {
            return bad("filter works on catch-up reads (no live mode yet)".into());
        }
        return super::filtered::handle(ctx, name, offset.unwrap_or(OffsetParam::Start), f).await;
    }
    match live {
        None => {
            catch_up(
                ctx,
                req.headers(),
                name,
                offset.unwrap_or(OffsetParam::Start),
            )
            .await
        }
        Some(mode @ ("long-poll" | "sse")) => {
            let Some(offset) = offset else {
                return bad("live reads need an offset".into());
            };
            // A live read ends when the token it was allowed with expires.
            let expiry = req.extensions().get::<super::auth::TokenExpiry>().copied();
            if mode == "sse" {
                sse::handle(ctx, name, offset, cursor, expiry)
            } else {
                long_poll::handle(ctx, name, offset, cursor, expiry).await
            }
        }
        Some(_) => bad("live must be long-poll or sse".into()),
    }
}

async fn catch_up(ctx: &Ctx, h: &HeaderMap, name: &str, offset: OffsetParam) -> Reply {
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
    // The response's bytes count against the server-wide output budget
    // until its body is handed over: a read waits here, holding nothing,
    // while bodies that clients do not read fill it.
    let mut hold = ctx.output.reserve(ctx.config.read_budget_bytes).await;
    let r = match ctx
        .engine
        .read_async(name, from, ctx.config.read_budget_bytes)
        .await
    {
        Ok(r) => r,
        Err(e) => return errors::reply(&e),
    };
    ctx.output
        .fit(&mut hold, r.batches.iter().map(|b| b.data_len()).sum())
        .await;
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
    reply(StatusCode::OK).body(chunks_held(render(&r.batches, json_mode), hold))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::{AppendRequest, Engine, EngineConfig, Record, StreamConfig};

    /// Payload `i` of the test stream: small and large records mixed.
    fn payload(i: usize) -> Vec<u8> {
        let len = if i.is_multiple_of(3) {
            ZERO_COPY_MIN + i
        } else {
            10 + i
        };
        (0..len).map(|j| (i * 31 + j) as u8).collect()
    }

    #[test]
    fn render_sends_large_payloads_in_place_and_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        engine
            .create_stream("s", StreamConfig::new("application/octet-stream"))
            .unwrap();
        let mut expect = Vec::new();
        for batch in 0..4 {
            let records = (0..5)
                .map(|r| {
                    let p = payload(batch * 5 + r);
                    expect.extend_from_slice(&p);
                    Record::new(p)
                })
                .collect();
            let req = AppendRequest {
                records,
                ..Default::default()
            };
            engine.append("s", req).unwrap();
        }
        let read = engine.read("s", 0, 1 << 30).unwrap();
        assert_eq!(read.record_count(), 20);
        let parts = render(&read.batches, false);
        assert_eq!(parts.concat(), expect);
        assert_eq!(render_flat(&read.batches, false), expect);
        // Every large payload is a slice of a stored batch, not a copy.
        let stored: Vec<_> = read
            .batches
            .iter()
            .map(|b| b.raw().as_ptr_range())
            .collect();
        let in_place = parts
            .iter()
            .filter(|p| stored.iter().any(|r| r.contains(&p.as_ptr())))
            .count();
        assert_eq!(in_place, 7, "payloads 0, 3, …, 18 are large");
        // Small payloads between them are gathered, not sent one by one.
        assert!(parts.len() < 20, "{} parts", parts.len());
    }
}
