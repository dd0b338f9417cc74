//! Offsets in the JSON form: requests take an offset as a number (the
//! binary protocol's record offset) or as the HTTP door's 33-character
//! text (`Stream-Next-Offset`), and replies carry both: every offset
//! member `x` is followed by `x_text`, the same position in the HTTP
//! notation, so a client can move between the doors without converting.

use serde_json::{Map, Value};

use crate::http::{format_offset, parse_offset, OffsetParam};

/// Members that hold offsets, in replies and in their `info`, records and rows.
const OFFSET_MEMBERS: [&str; 5] = ["offset", "first_offset", "next_offset", "tail", "fence"];

/// Where a request starts: `-1` / `"start"`, `"now"`, or an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
    Start,
    Now,
    At(u64),
}

/// Reads an offset member: a number, or an offset in either notation.
pub(super) fn from(v: &Value, member: &str) -> Result<Position, String> {
    let expected = || {
        format!(
            "{member} must be an offset (a number, or the HTTP door's text such as \
             0000000000000000_0000000000000042), \"start\" or -1, or \"now\""
        )
    };
    match v {
        Value::Number(n) if n.as_i64() == Some(-1) => Ok(Position::Start),
        Value::Number(n) => n.as_u64().map(Position::At).ok_or_else(expected),
        Value::String(s) if s == "start" => Ok(Position::Start),
        Value::String(s) => match parse_offset(s) {
            Some(OffsetParam::Start) => Ok(Position::Start),
            Some(OffsetParam::Now) => Ok(Position::Now),
            Some(OffsetParam::At(o)) => Ok(Position::At(o)),
            None => Err(expected()),
        },
        _ => Err(expected()),
    }
}

/// An offset member that must name a position (`-1` and `"start"` are 0).
pub(super) fn at(v: &Value, member: &str) -> Result<u64, String> {
    match from(v, member)? {
        Position::Start => Ok(0),
        Position::At(o) => Ok(o),
        Position::Now => Err(format!("{member} must be a position here, not \"now\"")),
    }
}

fn add_texts(o: &mut Map<String, Value>) {
    for m in OFFSET_MEMBERS {
        if let Some(n) = o.get(m).and_then(Value::as_u64) {
            o.insert(format!("{m}_text"), Value::String(format_offset(n)));
        }
    }
}

/// Adds the `_text` twin of every offset member of a reply.
pub(super) fn annotate(v: &mut Value) {
    let Some(o) = v.as_object_mut() else {
        return;
    };
    add_texts(o);
    if let Some(info) = o.get_mut("info").and_then(Value::as_object_mut) {
        add_texts(info);
    }
    for list in ["records", "rows"] {
        if let Some(items) = o.get_mut(list).and_then(Value::as_array_mut) {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                add_texts(item);
            }
        }
    }
    if let Some(row) = o.get_mut("row").and_then(Value::as_object_mut) {
        add_texts(row);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn both_notations_are_read_and_written() {
        assert_eq!(from(&json!(5), "from").unwrap(), Position::At(5));
        assert_eq!(from(&json!(-1), "from").unwrap(), Position::Start);
        assert_eq!(from(&json!("now"), "from").unwrap(), Position::Now);
        assert_eq!(
            from(&json!("0000000000000000_0000000000000007"), "from").unwrap(),
            Position::At(7)
        );
        assert!(from(&json!("7"), "from").unwrap_err().contains("HTTP door"));
        assert!(from(&json!(true), "from").is_err());
        assert!(at(&json!("now"), "from").is_err());
        let mut v = json!({"type": "appended", "next_offset": 3,
                           "records": [{"offset": 2}], "info": {"next_offset": 3}});
        annotate(&mut v);
        assert_eq!(v["next_offset_text"], json!(format_offset(3)));
        assert_eq!(v["records"][0]["offset_text"], json!(format_offset(2)));
        assert_eq!(v["info"]["next_offset_text"], json!(format_offset(3)));
    }
}
