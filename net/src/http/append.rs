//! POST: append to a stream, optionally closing it (`Stream-Closed: true`,
//! with or without a final body), with `Stream-Seq` ordering and idempotent
//! producer headers. `Stream-Seq` is scoped per stream (any writer's value
//! must sort after the last accepted one); producer deduplication is checked
//! before it, so a retried request is a 204, not a sequence conflict.
//! `Stream-Key` (a Weir extension) sets the record key of every record the
//! request appends; `Stream-Tombstone: true` with a key and an empty body
//! appends one tombstone, which deletes the key on a `keyed` state stream.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use weir_storage::{media_type, AppendRequest, Record};

use super::body::read_limited;
use super::reply::Reply;
use super::router::Ctx;
use super::{errors, headers, json};

fn bad(reason: impl std::fmt::Display) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, reason)
}

/// Answers POST on a stream.
pub async fn handle(ctx: &Ctx, req: Request<Incoming>, name: &str) -> Reply {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let parsed = (|| -> Result<_, String> {
        Ok((
            headers::text(h, "content-type")?.map(str::to_string),
            headers::flag(h, "stream-closed")?,
            headers::text(h, "stream-seq")?.map(|s| s.as_bytes().to_vec()),
            headers::producer(h)?,
            headers::text(h, "stream-key")?.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            headers::flag(h, "stream-tombstone")?,
        ))
    })();
    let (content_type, close, stream_seq, producer, key, tombstone) = match parsed {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    if let Some(len) = headers::text(h, "content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > ctx.config.max_append_bytes as u64 {
            return Reply::error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
    }
    let limit = ctx.config.max_append_bytes;
    let (body, mut hold) = match read_limited(body, limit, ctx.config.body_pace, &ctx.intake).await
    {
        Ok(b) => b,
        Err(e) => return e.reply(limit),
    };

    let mut state_protocol = false;
    let records = if tombstone {
        // A tombstone deletes its key's value in a keyed state stream; it
        // carries no payload, so a body would be silently dropped data.
        let Some(key) = key.clone() else {
            return bad("Stream-Tombstone needs a Stream-Key");
        };
        if !body.is_empty() {
            return bad("a Stream-Tombstone append has an empty body");
        }
        // On a JSON stream every record, tombstones too, is read back as a
        // JSON value, so its empty payload is stored as `null`.
        let mut t = Record::tombstone(key);
        if ctx
            .engine
            .head(name)
            .is_ok_and(|i| json::is_json(&i.config.content_type))
        {
            t.payload = Bytes::from_static(b"null");
        }
        vec![t]
    } else if body.is_empty() {
        if !close {
            return bad("empty append body (send Stream-Closed: true to close)");
        }
        // Close-only: the content type is irrelevant, nothing is written.
        Vec::new()
    } else {
        let Some(ct) = content_type.as_deref() else {
            return bad("Content-Type is required on append");
        };
        let info = match ctx.engine.head(name) {
            Ok(i) => i,
            Err(e) => return errors::reply(&e),
        };
        state_protocol = info.state.mode == weir_storage::StateMode::StateProtocol;
        if media_type(ct) != media_type(&info.config.content_type) {
            return Reply::error(
                StatusCode::CONFLICT,
                format!(
                    "content type {} does not match the stream's {}",
                    media_type(ct),
                    media_type(&info.config.content_type)
                ),
            );
        }
        let is_json = json::is_json(&info.config.content_type);
        let count = match ctx.intake.grow_for_records(&mut hold, is_json, &body).await {
            Ok(n) => n,
            Err(r) => return r.reply(),
        };
        if is_json {
            match json::records(&body, key.as_ref(), count) {
                Ok(r) if r.is_empty() => return bad("empty JSON array appends nothing"),
                Ok(r) => r,
                Err(e) => return bad(e),
            }
        } else {
            vec![Record {
                key,
                payload: body,
                tombstone: false,
            }]
        }
    };
    // `Stream-Key` is stored with every record, so a JSON array of tiny
    // elements would multiply a short body by the key length (issue 16):
    // what the append stores, not what was sent, must fit the body limit.
    let stored = records.iter().fold(0u64, |n, r: &Record| {
        n + r.payload.len() as u64 + r.key.as_ref().map_or(0, |k| k.len() as u64)
    });
    if stored > ctx.config.max_append_bytes as u64 {
        return Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "append would store {stored} bytes of keys and payloads (Stream-Key is stored \
                 with each of the {} records), more than the {}-byte limit",
                records.len(),
                ctx.config.max_append_bytes
            ),
        );
    }
    let close_only = records.is_empty();
    let has_producer = producer.is_some();
    let req = AppendRequest {
        content_type: if close_only { None } else { content_type },
        records,
        stream_seq,
        producer,
        close,
    };
    let outcome = ctx.engine.append_async(name, req).await;
    // The records were held until the engine committed them.
    drop(hold);
    match outcome {
        // Prisma's clients read a State Protocol stream's refusals from its
        // JSON envelope.
        Err(weir_storage::Error::Invalid(m)) if state_protocol => {
            Reply::prisma_error(StatusCode::BAD_REQUEST, "bad_request", &m)
        }
        Err(e) => errors::reply(&e),
        Ok(res) => {
            // With producer headers a new write is 200 and a retry 204; a
            // close-only request and producer-less appends are 204.
            let status = if has_producer && !res.duplicate && !close_only {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            };
            let mut r = Reply::new(status)
                .next_offset(res.next_offset)
                .closed(res.closed);
            if let Some((epoch, seq)) = res.producer {
                r = r
                    .header("producer-epoch", epoch.to_string())
                    .header("producer-seq", seq.to_string());
            }
            r
        }
    }
}
