//! Long-poll reads: answer at once when data is there, otherwise wait for the
//! next committed batch (woken by the engine's follower, never a timer poll)
//! up to the configured timeout, then 204.

use futures::{FutureExt, StreamExt};
use hyper::StatusCode;
use weir_storage::{Batch, FollowFrom};

use super::body::chunks;
use super::cursor::next_cursor;
use super::offsets::OffsetParam;
use super::read::{etag, render};
use super::reply::Reply;
use super::router::Ctx;
use super::{errors, json};

/// Answers `GET ?offset=..&live=long-poll`.
pub async fn handle(
    ctx: &Ctx,
    name: &str,
    offset: OffsetParam,
    cursor: Option<&str>,
    expiry: Option<super::auth::TokenExpiry>,
) -> Reply {
    let info = match ctx.engine.head(name) {
        Ok(i) => i,
        Err(e) => return errors::reply(&e),
    };
    let json_mode = json::is_json(&info.config.content_type);
    let cursor = next_cursor(cursor);
    let data = |batches: &[Batch], from: u64, next: u64, up: bool, closed: bool| {
        Reply::new(StatusCode::OK)
            .header("content-type", &info.config.content_type)
            .next_offset(next)
            .up_to_date(up)
            .closed(closed)
            .header("stream-cursor", &cursor)
            .header("etag", etag(info.id, from, next, closed))
            .header("cache-control", "no-cache")
            .body(chunks(render(batches, json_mode)))
    };
    let timeout_reply = |next: u64, closed: bool| {
        Reply::new(StatusCode::NO_CONTENT)
            .next_offset(next)
            .up_to_date(true)
            .closed(closed)
            .header("stream-cursor", &cursor)
            .header("cache-control", "no-store")
    };

    let from = match offset {
        OffsetParam::Now => None,
        OffsetParam::Start => Some(0),
        OffsetParam::At(o) => Some(o),
    };
    if let Some(from) = from {
        let r = match ctx
            .engine
            .read_async(name, from, ctx.config.read_budget_bytes)
            .await
        {
            Ok(r) => r,
            Err(e) => return errors::reply(&e),
        };
        if r.record_count() > 0 {
            let up = r.up_to_date();
            return data(&r.batches, from, r.next_offset, up, r.closed && up);
        }
        if r.closed {
            return timeout_reply(r.next_offset, true);
        }
    }
    let mut follower = match ctx
        .engine
        .follow(name, from.map_or(FollowFrom::Now, FollowFrom::Offset))
    {
        Ok(f) => f,
        Err(e) => return errors::reply(&e),
    };
    let start = follower.next_offset();
    let mut stop = ctx.stop.clone();
    if *stop.borrow() {
        return timeout_reply(start, false);
    }
    let first = tokio::select! {
        item = follower.next() => Some(item),
        _ = tokio::time::sleep(super::auth::live_limit(expiry, ctx.config.long_poll_timeout)) => None,
        _ = stop.changed() => None,
    };
    match first {
        None => timeout_reply(start, ctx.engine.tail(name).is_ok_and(|(_, c)| c)),
        Some(None) => timeout_reply(follower.next_offset(), true),
        Some(Some(Err(e))) => errors::reply(&e),
        Some(Some(Ok(b))) => {
            // Take whatever else is already committed, within the budget, so
            // the answer is up to date when the follower has nothing pending.
            let mut size = b.data_len();
            let mut batches = vec![b];
            let mut up = false;
            let mut closed = false;
            while size < ctx.config.read_budget_bytes {
                let next = match follower.next().now_or_never() {
                    // Nothing ready while a storage read is on its way is
                    // not "up to date": wait for the read.
                    None if follower.is_reading() => Some(follower.next().await),
                    ready => ready,
                };
                match next {
                    None => {
                        up = true;
                        break;
                    }
                    Some(None) => {
                        up = true;
                        closed = true;
                        break;
                    }
                    Some(Some(Err(_))) => break,
                    Some(Some(Ok(b))) => {
                        size += b.data_len();
                        batches.push(b);
                    }
                }
            }
            data(&batches, start, follower.next_offset(), up, closed)
        }
    }
}
