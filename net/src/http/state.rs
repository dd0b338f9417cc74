//! `GET /v1/stream/{name}/_state` (a Weir extension): a page of a state
//! stream's key-value state, consistent at one offset.
//!
//! ```text
//! {"fence": OFFSET, "rows": [{"type", "key", "value", "offset"}, …], "next": CURSOR|null}
//! ```
//!
//! Query parameters: `type` and `key` for one row of a State Protocol
//! stream (`key` alone on a keyed stream), `type` alone for one entity
//! type, `prefix` (of the key), `filter` (a JSON filter), `after` (the
//! `next` of the previous page) and `limit` (1..=10,000, default 1,000).
//! Offsets are in the HTTP door's offset format. Rows of keyed streams
//! have no `type`; their keys are strings when they are UTF-8 and
//! `key_b64` (standard base64) otherwise; their values are JSON on JSON
//! streams, strings when UTF-8, and `value_b64` otherwise.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyper::StatusCode;
use weir_storage::{Filter, ScanRequest, StateKey, StateMode, StateRow};

use super::body::full;
use super::errors;
use super::offsets::format_offset;
use super::query;
use super::reply::Reply;
use super::router::Ctx;

const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 10_000;

/// Answers GET on a stream's `_state` resource.
pub async fn handle(ctx: &Ctx, name: &str, raw_query: Option<&str>) -> Reply {
    let bad = |e: String| Reply::error(StatusCode::BAD_REQUEST, e);
    let pairs = match query::pairs(raw_query) {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let get = |k| query::single(&pairs, k);
    let (entity, key, prefix, filter, after, limit) = match (
        get("type"),
        get("key"),
        get("prefix"),
        get("filter"),
        get("after"),
        get("limit"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f)) => (a, b, c, d, e, f),
        (Err(e), ..)
        | (_, Err(e), ..)
        | (_, _, Err(e), ..)
        | (_, _, _, Err(e), ..)
        | (_, _, _, _, Err(e), _)
        | (.., Err(e)) => return bad(e),
    };
    let info = match ctx.engine.head(name) {
        Ok(i) => i,
        Err(e) => return errors::reply(&e),
    };
    let mode = info.state.mode;
    let json_values = super::json::is_json(&info.config.content_type);
    if let Some(k) = key {
        let key = match (mode, entity) {
            (StateMode::StateProtocol, Some(t)) => StateKey::Entity {
                entity: t.to_string(),
                key: k.to_string(),
            },
            (StateMode::StateProtocol, None) => {
                return bad("a State Protocol stream's rows are named by type and key".into())
            }
            _ => StateKey::Keyed(bytes::Bytes::copy_from_slice(k.as_bytes())),
        };
        return match ctx.engine.state_get_async(name, key).await {
            Ok(g) => page(
                &g.row.into_iter().collect::<Vec<_>>(),
                g.fence,
                None,
                json_values,
            ),
            Err(e) => errors::reply(&e),
        };
    }
    let limit = match limit.map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return bad(format!("limit must be an integer in 1..={MAX_LIMIT}")),
    };
    let filter = match filter.map(|f| Filter::parse_bytes(f.as_bytes())) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return bad(e),
    };
    let after = match after.map(hex_decode) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => return bad("after must be the next cursor of a previous page".into()),
    };
    let req = ScanRequest {
        filter,
        entity: entity.map(str::to_string),
        prefix: prefix.map(|p| p.as_bytes().to_vec()),
        after,
        limit,
    };
    match ctx.engine.state_scan_async(name, req).await {
        Ok(p) => page(&p.rows, p.fence, p.next.as_deref(), json_values),
        Err(e) => errors::reply(&e),
    }
}

fn page(rows: &[StateRow], fence: u64, next: Option<&[u8]>, json_values: bool) -> Reply {
    let mut out = String::with_capacity(64 + rows.len() * 64);
    out.push_str("{\"fence\":");
    out.push_str(&quote(&format_offset(fence)));
    out.push_str(",\"rows\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        row_json(&mut out, r, json_values);
    }
    out.push_str("],\"next\":");
    match next {
        Some(c) => out.push_str(&quote(&hex_encode(c))),
        None => out.push_str("null"),
    }
    out.push('}');
    Reply::new(StatusCode::OK)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .next_offset(fence)
        .body(full(out))
}

/// Appends one row as JSON. Values of JSON streams are stored as validated
/// JSON text, so they are copied in as they are.
pub fn row_json(out: &mut String, r: &StateRow, json_values: bool) {
    out.push('{');
    match &r.key {
        StateKey::Entity { entity, key } => {
            out.push_str("\"type\":");
            out.push_str(&quote(entity));
            out.push_str(",\"key\":");
            out.push_str(&quote(key));
        }
        StateKey::Keyed(k) => match std::str::from_utf8(k) {
            Ok(s) => {
                out.push_str("\"key\":");
                out.push_str(&quote(s));
            }
            Err(_) => {
                out.push_str("\"key_b64\":");
                out.push_str(&quote(&B64.encode(k)));
            }
        },
    }
    match (json_values, std::str::from_utf8(&r.value)) {
        (true, Ok(v)) => {
            out.push_str(",\"value\":");
            out.push_str(v);
        }
        (false, Ok(v)) => {
            out.push_str(",\"value\":");
            out.push_str(&quote(v));
        }
        (_, Err(_)) => {
            out.push_str(",\"value_b64\":");
            out.push_str(&quote(&B64.encode(&r.value)));
        }
    }
    out.push_str(",\"offset\":");
    out.push_str(&quote(&format_offset(r.offset)));
    out.push('}');
}

/// A string as a JSON string literal.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// Appends one State Protocol change message for a row of (`type`, `key`):
/// with `value` (JSON text) for `insert` and `update`, without for `delete`.
/// Keys of other kinds write nothing: only State Protocol streams get here.
pub fn change_message(out: &mut String, key: &StateKey, value: Option<&[u8]>, operation: &str) {
    let StateKey::Entity { entity, key } = key else {
        return;
    };
    out.push_str("{\"type\":");
    out.push_str(&quote(entity));
    out.push_str(",\"key\":");
    out.push_str(&quote(key));
    if let Some(v) = value {
        out.push_str(",\"value\":");
        out.push_str(&String::from_utf8_lossy(v));
    }
    out.push_str(",\"headers\":{\"operation\":\"");
    out.push_str(operation);
    out.push_str("\"}}");
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = vec![0u8, 1, 0xFF, 0x7F];
        assert_eq!(hex_decode(&hex_encode(&c)), Some(c));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }
}
