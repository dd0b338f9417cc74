//! What a stream accepts, checked in the engine so that every writer (the
//! HTTP door, the binary protocol over QUIC and WebSocket, in-process
//! callers) is held to the same rules with the same error. The checks are
//! stateless per record, so they run on the caller's thread before the
//! request reaches the commit thread.
//!
//! Today's rule: on a JSON stream (`application/json`) every record is
//! exactly one JSON value, nested at most [`MAX_JSON_DEPTH`] levels. Later
//! content rules (the State Protocol of state streams) belong here too.

use serde::de::IgnoredAny;

use crate::error::{Error, Result};
use crate::meta::media_type;
use crate::record::Record;

/// Deepest nesting of arrays and objects a JSON record may have. Common JSON
/// parsers (browsers' `JSON.parse` aside) refuse or overflow far below the
/// 100,000 levels a client could otherwise store, so the limit protects
/// readers as much as the server; it is the WebSocket JSON door's limit too.
pub const MAX_JSON_DEPTH: usize = 128;

/// Whether a content type makes a stream a JSON stream.
pub fn is_json(content_type: &str) -> bool {
    media_type(content_type) == "application/json"
}

/// Checks `records` against the rules of a stream with `content_type`.
/// One bad record rejects the whole append: nothing of it is written.
pub(crate) fn check_records(content_type: &str, records: &[Record]) -> Result<()> {
    if !is_json(content_type) {
        return Ok(());
    }
    for (i, r) in records.iter().enumerate() {
        check_json(&r.payload).map_err(|why| {
            Error::Invalid(if records.len() == 1 {
                format!("invalid JSON record on a JSON stream: {why}")
            } else {
                format!(
                    "invalid JSON in record {i} of {} on a JSON stream: {why}",
                    records.len()
                )
            })
        })?;
    }
    Ok(())
}

/// [`check_records`] for a stream whose state mode parses every record in
/// full anyway (State Protocol): only the depth limit is checked here, so
/// the hot path parses each record once.
pub(crate) fn check_records_in(
    content_type: &str,
    mode: crate::state::StateMode,
    records: &[Record],
) -> Result<()> {
    if mode != crate::state::StateMode::StateProtocol {
        return check_records(content_type, records);
    }
    for r in records {
        let depth = json_depth(&r.payload);
        if depth > MAX_JSON_DEPTH {
            return Err(Error::Invalid(format!(
                "invalid JSON record on a JSON stream: nested {depth} levels deep, \
                 more than the {MAX_JSON_DEPTH} allowed"
            )));
        }
    }
    Ok(())
}

/// Checks that `payload` is one JSON value within the depth limit.
pub fn check_json(payload: &[u8]) -> std::result::Result<(), String> {
    // The depth scan runs first so the parser never recurses deeper than
    // the limit on hostile input.
    let depth = json_depth(payload);
    if depth > MAX_JSON_DEPTH {
        return Err(format!(
            "nested {depth} levels deep, more than the {MAX_JSON_DEPTH} allowed"
        ));
    }
    serde_json::from_slice::<IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The deepest nesting of `[` and `{` outside strings. Linear, and exact on
/// valid JSON; on invalid input it is only a bound for the parser that follows.
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(payloads: &[&str]) -> Vec<Record> {
        payloads
            .iter()
            .map(|p| Record::new(p.to_string()))
            .collect()
    }

    #[test]
    fn json_streams_take_one_value_per_record() {
        let ct = "application/json; charset=utf-8";
        assert!(check_records(ct, &recs(&[r#"{"a":1}"#, "[1,2]", " 7 ", "\"s\"", "null"])).is_ok());
        for bad in ["not json", "", "1 2", "{\"a\":", "[1,]", "{} {}"] {
            let e = check_records(ct, &recs(&[r#"{"a":1}"#, bad])).unwrap_err();
            assert!(
                matches!(e, Error::Invalid(ref m) if m.contains("record 1 of 2")),
                "{bad}: {e}"
            );
        }
        assert!(check_records("text/plain", &recs(&["not json"])).is_ok());
    }

    #[test]
    fn depth_is_limited_and_strings_do_not_count() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(check_json(ok.as_bytes()).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        assert!(check_json(deep.as_bytes())
            .unwrap_err()
            .contains("129 levels"));
        let hostile = "[".repeat(100_000);
        assert!(check_json(hostile.as_bytes()).is_err());
        let in_string = format!("\"{}\\\"{}\"", "[".repeat(500), "{".repeat(500));
        assert!(check_json(in_string.as_bytes()).is_ok());
        assert_eq!(json_depth(br#"{"a":[{"b":"]]]"}]}"#), 3);
    }
}
