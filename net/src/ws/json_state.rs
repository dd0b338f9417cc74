//! JSON forms of the version-2 state messages (PROTOCOL.md 9.1): `get`,
//! `scan` and `subscribe_state` requests, and the rows, pages, snapshot
//! chunks and changes they are answered with. Bytes follow the convention
//! of the version-1 forms: UTF-8 text as a string, anything else base64
//! under a `_b64` name.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::json::{b64, put_bytes};
use crate::proto::{
    Change, ChangeOp, Get, GetResult, Scan, ScanPage, StateInfo, SubscribeState, WireKey, WireRow,
    WireStateMode,
};

/// `get`: `key` or `key_b64`, and `entity` for a State Protocol stream.
#[derive(Deserialize)]
pub(super) struct JsonGet {
    stream: String,
    entity: Option<String>,
    key: Option<String>,
    key_b64: Option<String>,
}

/// `scan`: every member optional but `stream`.
#[derive(Deserialize)]
pub(super) struct JsonScan {
    stream: String,
    filter: Option<Value>,
    entity: Option<String>,
    prefix: Option<String>,
    prefix_b64: Option<String>,
    after: Option<String>,
    after_b64: Option<String>,
    #[serde(default)]
    limit: u32,
}

/// `subscribe_state`: `snapshot` (false), `filter`, `from`.
#[derive(Deserialize)]
pub(super) struct JsonSubscribeState {
    stream: String,
    #[serde(default)]
    snapshot: bool,
    filter: Option<Value>,
    from: Option<Value>,
}

fn text_or_b64(
    text: Option<String>,
    b64_text: Option<String>,
    name: &str,
) -> Result<Option<Vec<u8>>, String> {
    match (text, b64_text) {
        (Some(_), Some(_)) => Err(format!("both {name} and {name}_b64")),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(t)) => Ok(Some(b64(&t, &format!("{name}_b64"))?.to_vec())),
        (None, None) => Ok(None),
    }
}

impl JsonGet {
    pub(super) fn into_get(self) -> Result<Get, String> {
        let key = text_or_b64(self.key, self.key_b64, "key")?.ok_or("get needs a key")?;
        let key = match self.entity {
            None => WireKey::Keyed(key),
            Some(entity) => WireKey::Entity {
                entity,
                key: String::from_utf8(key).map_err(|_| "a State Protocol key is text")?,
            },
        };
        Ok(Get {
            stream: self.stream,
            key,
        })
    }
}

impl JsonScan {
    pub(super) fn into_scan(self) -> Result<Scan, String> {
        Ok(Scan {
            stream: self.stream,
            filter: self.filter.map(|f| f.to_string()),
            entity: self.entity,
            prefix: text_or_b64(self.prefix, self.prefix_b64, "prefix")?,
            after: text_or_b64(self.after, self.after_b64, "after")?,
            limit: self.limit,
        })
    }
}

impl JsonSubscribeState {
    pub(super) fn into_subscribe(self) -> Result<SubscribeState, String> {
        Ok(SubscribeState {
            stream: self.stream,
            snapshot: self.snapshot,
            filter: self.filter.map(|f| f.to_string()),
            from: self
                .from
                .map(|v| super::json_offsets::at(&v, "from"))
                .transpose()?,
        })
    }
}

/// The name of a state mode in JSON (as in the HTTP door's `Stream-State`).
pub(super) fn mode_name(m: WireStateMode) -> &'static str {
    weir_storage::StateMode::from(m).as_str()
}

/// `{"mode", "building"}`, the `state` member of a version-2 `info`.
pub(super) fn state_info(s: &StateInfo) -> Value {
    json!({"mode": mode_name(s.mode), "building": s.building})
}

fn put_key(o: &mut Map<String, Value>, k: &WireKey) {
    match k {
        WireKey::Keyed(b) => put_bytes(o, "key", b),
        WireKey::Entity { entity, key } => {
            o.insert("entity".into(), entity.clone().into());
            o.insert("key".into(), key.clone().into());
        }
    }
}

fn row(r: &WireRow) -> Value {
    let mut o = Map::new();
    put_key(&mut o, &r.key);
    put_bytes(&mut o, "value", &r.value);
    o.insert("offset".into(), r.offset.into());
    Value::Object(o)
}

/// Rows as JSON objects `{"key"|"key_b64", "entity"?, "value"|"value_b64", "offset"}`.
pub(super) fn rows(rows: &[WireRow]) -> Vec<Value> {
    rows.iter().map(row).collect()
}

pub(super) fn get_result(id: u32, g: &GetResult) -> Value {
    json!({
        "type": "get_result", "id": id, "row": g.row.as_ref().map(row),
        "fence": g.fence, "tail": g.tail,
    })
}

pub(super) fn scan_page(id: u32, p: &ScanPage) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), "scan_page".into());
    o.insert("id".into(), id.into());
    o.insert("rows".into(), rows(&p.rows).into());
    match &p.next {
        Some(n) => put_bytes(&mut o, "next", n),
        None => {
            o.insert("next".into(), Value::Null);
        }
    }
    o.insert("fence".into(), p.fence.into());
    Value::Object(o)
}

pub(super) fn change(id: u32, c: &Change) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), "change".into());
    o.insert("id".into(), id.into());
    o.insert("offset".into(), c.offset.into());
    let op = match c.op {
        ChangeOp::Upsert => "upsert",
        ChangeOp::Delete => "delete",
        ChangeOp::Reset => "reset",
    };
    o.insert("op".into(), op.into());
    if let Some(k) = &c.key {
        put_key(&mut o, k);
    }
    if let Some(v) = &c.value {
        put_bytes(&mut o, "value", v);
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::super::json::{request, Parsed};
    use super::*;
    use crate::proto::Message;

    fn parsed(text: &str) -> Message {
        match request(text) {
            Parsed::Frame(f) => f.message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn state_requests_parse() {
        assert_eq!(
            parsed(r#"{"type":"get","id":1,"stream":"s","entity":"user","key":"u1"}"#),
            Message::Get(Get {
                stream: "s".into(),
                key: WireKey::Entity {
                    entity: "user".into(),
                    key: "u1".into()
                }
            })
        );
        assert_eq!(
            parsed(r#"{"type":"get","id":1,"stream":"s","key_b64":"AP8="}"#),
            Message::Get(Get {
                stream: "s".into(),
                key: WireKey::Keyed(vec![0, 0xff])
            })
        );
        let Message::Scan(s) = parsed(
            r#"{"type":"scan","id":2,"stream":"s","filter":{"key_prefix":"a"},"after":"k","limit":5}"#,
        ) else {
            panic!()
        };
        assert_eq!(s.filter.as_deref(), Some(r#"{"key_prefix":"a"}"#));
        assert_eq!((s.after, s.limit), (Some(b"k".to_vec()), 5));
        assert_eq!(
            parsed(r#"{"type":"subscribe_state","id":9,"stream":"s","snapshot":true}"#),
            Message::SubscribeState(SubscribeState {
                stream: "s".into(),
                snapshot: true,
                filter: None,
                from: None
            })
        );
        for bad in [
            r#"{"type":"get","id":3,"stream":"s"}"#,
            r#"{"type":"get","id":3,"stream":"s","key":"a","key_b64":"YQ=="}"#,
            r#"{"type":"create","id":3,"stream":"s","state":"bogus"}"#,
        ] {
            assert!(
                matches!(request(bad), Parsed::Invalid { id: 3, .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn changes_render() {
        let c = Change {
            offset: 4,
            op: ChangeOp::Upsert,
            key: Some(WireKey::Keyed(vec![0xff])),
            value: Some(b"{}".to_vec()),
        };
        assert_eq!(
            change(7, &c),
            json!({"type":"change","id":7,"offset":4,"op":"upsert","key_b64":"/w==","value":"{}"})
        );
        let r = Change {
            offset: 5,
            op: ChangeOp::Reset,
            key: None,
            value: None,
        };
        assert_eq!(
            change(7, &r),
            json!({"type":"change","id":7,"offset":5,"op":"reset"})
        );
    }
}
