//! The JSON form of the protocol's messages, for hand-written browser
//! clients (PROTOCOL.md, "WebSocket"). A request parses into the same
//! [`Frame`] a binary message decodes to, so the session cannot tell the
//! two apart; a reply is the encoded frame read back and written as JSON.
//! Text that is not a JSON object is refused as malformed framing; an
//! object that is not a valid request is answered with `Error` under its
//! `id`, like a binary frame whose body does not decode.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use weir_storage::{Batch, Record};

use super::json_state::{self, JsonGet, JsonScan, JsonSubscribeState};
use super::{json_offsets, json_touch};
use crate::proto::{
    decode_frame, Append, Create, Delete, Encoded, ErrorKind, Frame, Head, Hello, Message,
    Producer, Read, ResumeReason, StreamInfo, Subscribe, SubscribeFrom, Unsubscribe, WireError,
    DEFAULT_MAX_FRAME, MAX_MAX_FRAME, MIN_VERSION, VERSION,
};

/// Content type of a stream created without one.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Byte budget of a `read` without `max_bytes`.
const DEFAULT_READ_BYTES: u32 = 1 << 20;

/// What a text message turned out to be.
#[derive(Debug)]
pub(super) enum Parsed {
    /// A request, ready for the session.
    Frame(Frame),
    /// A JSON object that is not a valid request: answer under `id` and go on.
    Invalid {
        /// The object's `id`, or 0 when it has none.
        id: u32,
        /// The error to answer with.
        error: WireError,
    },
    /// Not a JSON object at all: answer under id 0 and close.
    Malformed(WireError),
}

fn malformed(why: impl std::fmt::Display) -> WireError {
    WireError::new(ErrorKind::MalformedFrame, why.to_string())
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    Hello {
        min_version: Option<u8>,
        max_version: Option<u8>,
        max_frame: Option<u32>,
        #[serde(default)]
        client: String,
        auth_token: Option<String>,
    },
    Ping,
    Create {
        stream: String,
        content_type: Option<String>,
        ttl_secs: Option<u64>,
        expires_at_ms: Option<u64>,
        state: Option<String>,
    },
    Head {
        stream: String,
    },
    Delete {
        stream: String,
    },
    Append {
        stream: String,
        #[serde(default)]
        records: Vec<JsonRecord>,
        producer: Option<Producer>,
        #[serde(default)]
        close: bool,
    },
    Read {
        stream: String,
        from: Option<Value>,
        max_bytes: Option<u32>,
    },
    Subscribe {
        stream: String,
        from: Option<Value>,
    },
    Unsubscribe {
        subscription: u32,
    },
    Get(JsonGet),
    Scan(JsonScan),
    SubscribeState(JsonSubscribeState),
}

#[derive(Deserialize)]
struct JsonRecord {
    key: Option<String>,
    key_b64: Option<String>,
    payload: Option<String>,
    payload_b64: Option<String>,
}

impl JsonRecord {
    fn into_record(self) -> Result<Record, String> {
        let key = match (self.key, self.key_b64) {
            (Some(_), Some(_)) => return Err("a record has both key and key_b64".into()),
            (Some(k), None) => Some(Bytes::from(k)),
            (None, Some(k)) => Some(b64(&k, "key_b64")?),
            (None, None) => None,
        };
        let payload = match (self.payload, self.payload_b64) {
            (Some(p), None) => Bytes::from(p),
            (None, Some(p)) => b64(&p, "payload_b64")?,
            _ => return Err("a record needs exactly one of payload and payload_b64".into()),
        };
        Ok(Record {
            key,
            payload,
            tombstone: false,
        })
    }
}

pub(super) fn b64(text: &str, field: &str) -> Result<Bytes, String> {
    B64.decode(text)
        .map(Bytes::from)
        .map_err(|e| format!("{field} is not base64: {e}"))
}

/// Parses one text message into a request frame.
pub(super) fn request(text: &str) -> Parsed {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Parsed::Malformed(malformed(format!("not JSON: {e}"))),
    };
    let Some(obj) = value.as_object() else {
        return Parsed::Malformed(malformed("a message must be a JSON object"));
    };
    // A missing id is 0, which the session refuses as a request id; an id
    // of another type is a mistyped member, refused like any other.
    let id = match obj.get("id") {
        None => 0,
        Some(v) => match v.as_u64().and_then(|i| u32::try_from(i).ok()) {
            Some(i) => i,
            None => {
                return Parsed::Invalid {
                    id: 0,
                    error: malformed(format!(
                        "id must be an integer from 0 to 4294967295, got {v}"
                    )),
                }
            }
        },
    };
    let invalid = |why: String| Parsed::Invalid {
        id,
        error: malformed(why),
    };
    // The touch requests carry an open document beside the envelope, which
    // the tagged enum below cannot express.
    let touch = match obj.get("type").and_then(Value::as_str) {
        Some("wait") => Some(json_touch::wait(obj).map(Message::Wait)),
        Some("activate_templates") => {
            Some(json_touch::activate(obj).map(Message::ActivateTemplates))
        }
        _ => None,
    };
    if let Some(m) = touch {
        return match m {
            Ok(m) => Parsed::Frame(Frame::new(id, m)),
            Err(why) => invalid(why),
        };
    }
    let req: Request = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => return invalid(format!("invalid request: {e}")),
    };
    match message(req) {
        Ok(m) => Parsed::Frame(Frame::new(id, m)),
        Err(why) => invalid(why),
    }
}

fn message(req: Request) -> Result<Message, String> {
    Ok(match req {
        Request::Hello {
            min_version,
            max_version,
            max_frame,
            client,
            auth_token,
        } => Message::Hello(Hello {
            min_version: min_version.unwrap_or(MIN_VERSION),
            // Version 1 unless asked: JSON clients written for it see no change.
            max_version: max_version.unwrap_or(VERSION),
            max_frame: max_frame.unwrap_or(DEFAULT_MAX_FRAME),
            client,
            auth_token,
        }),
        Request::Ping => Message::Ping,
        Request::Create {
            stream,
            content_type,
            ttl_secs,
            expires_at_ms,
            state,
        } => Message::Create(Create {
            stream,
            content_type: content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            ttl_secs,
            expires_at_ms,
            state: match state {
                None => None,
                Some(s) => Some(
                    weir_storage::StateMode::parse(&s)
                        .ok_or("state must be none, keyed or state-protocol")?
                        .into(),
                ),
            },
        }),
        Request::Head { stream } => Message::Head(Head { stream }),
        Request::Delete { stream } => Message::Delete(Delete { stream }),
        Request::Append {
            stream,
            records,
            producer,
            close,
        } => Message::Append(Append {
            stream,
            producer,
            close,
            records: records
                .into_iter()
                .map(JsonRecord::into_record)
                .collect::<Result<_, _>>()?,
        }),
        Request::Read {
            stream,
            from,
            max_bytes,
        } => Message::Read(Read {
            stream,
            from: match from {
                None => 0,
                Some(v) => json_offsets::at(&v, "from")?,
            },
            max_bytes: max_bytes.unwrap_or(DEFAULT_READ_BYTES),
        }),
        Request::Subscribe { stream, from } => {
            let from = match from.as_ref().map(|v| json_offsets::from(v, "from")) {
                None => SubscribeFrom::Start,
                Some(Ok(json_offsets::Position::Start)) => SubscribeFrom::Start,
                Some(Ok(json_offsets::Position::Now)) => SubscribeFrom::Now,
                Some(Ok(json_offsets::Position::At(o))) => SubscribeFrom::Offset(o),
                Some(Err(why)) => return Err(why),
            };
            Message::Subscribe(Subscribe { stream, from })
        }
        Request::Unsubscribe { subscription } => Message::Unsubscribe(Unsubscribe { subscription }),
        Request::Get(g) => Message::Get(g.into_get()?),
        Request::Scan(s) => Message::Scan(s.into_scan()?),
        Request::SubscribeState(s) => Message::SubscribeState(s.into_subscribe()?),
    })
}

/// The JSON text of a frame the session encoded for this connection.
pub(super) fn reply(frame: &Encoded) -> String {
    let value = match decode_frame(frame.to_bytes(), MAX_MAX_FRAME) {
        Ok(f) => {
            let mut v = reply_value(&f);
            json_offsets::annotate(&mut v);
            v
        }
        // Cannot happen for frames the server encoded itself; say so rather
        // than send nothing.
        Err(e) => {
            let err = WireError::new(ErrorKind::Internal, format!("cannot show reply: {e}"));
            error_value(0, &err)
        }
    };
    value.to_string()
}

fn reply_value(f: &Frame) -> Value {
    let id = f.request_id;
    match &f.message {
        Message::Welcome(w) => json!({
            "type": "welcome", "id": id, "version": w.version,
            "max_frame": w.max_frame, "server": w.server,
        }),
        Message::Pong => json!({"type": "pong", "id": id}),
        Message::Created(c) => json!({
            "type": "created", "id": id, "created": c.created, "info": info(&c.info),
        }),
        Message::Info(i) => json!({"type": "info", "id": id, "info": info(i)}),
        Message::Deleted => json!({"type": "deleted", "id": id}),
        Message::Appended(a) => json!({
            "type": "appended", "id": id, "first_offset": a.first_offset,
            "next_offset": a.next_offset, "duplicate": a.duplicate, "closed": a.closed,
            "producer": a.producer.map(|(epoch, seq)| json!({"epoch": epoch, "seq": seq})),
        }),
        Message::ReadDone(r) => json!({
            "type": "read_done", "id": id, "next_offset": r.next_offset,
            "tail": r.tail, "closed": r.closed,
        }),
        Message::Subscribed(s) => json!({"type": "subscribed", "id": id, "fence": s.fence}),
        Message::Unsubscribed(u) => json!({
            "type": "unsubscribed", "id": id, "next_offset": u.next_offset,
        }),
        Message::Data(b) => json!({"type": "data", "id": id, "records": records(b)}),
        Message::Resume(r) => json!({
            "type": "resume", "id": id, "offset": r.offset,
            "reason": match r.reason {
                ResumeReason::Lagging => "lagging",
                ResumeReason::ShuttingDown => "shutting_down",
            },
        }),
        Message::EndOfStream(e) => json!({
            "type": "end_of_stream", "id": id, "next_offset": e.next_offset,
        }),
        Message::GetResult(g) => json_state::get_result(id, g),
        Message::ScanPage(p) => json_state::scan_page(id, p),
        Message::StateSubscribed(s) => json!({
            "type": "state_subscribed", "id": id, "mode": json_state::mode_name(s.mode),
        }),
        Message::Snapshot(s) => json!({
            "type": "snapshot", "id": id, "rows": json_state::rows(&s.rows),
        }),
        Message::SnapshotDone(d) => json!({
            "type": "snapshot_done", "id": id, "fence": d.fence, "rows": d.rows,
        }),
        Message::Change(c) => json_state::change(id, c),
        Message::WaitResult(w) => json_touch::wait_result(id, w),
        Message::TemplatesActivated(t) => json_touch::templates_activated(id, t),
        Message::Error(e) => error_value(id, e),
        // Requests are never sent by the server.
        other => error_value(
            id,
            &WireError::new(
                ErrorKind::Internal,
                format!("no JSON form for {:?}", other.opcode()),
            ),
        ),
    }
}

fn info(i: &StreamInfo) -> Value {
    let mut v = json!({
        "stream": i.stream, "content_type": i.content_type, "ttl_secs": i.ttl_secs,
        "expires_at_ms": i.expires_at_ms, "created_at_ms": i.created_at_ms,
        "next_offset": i.next_offset, "closed": i.closed,
    });
    // Only version 2 carries the state; a version-1 client sees no change.
    if let Some(s) = &i.state {
        v["state"] = json_state::state_info(s);
    }
    v
}

/// The visible records of a `Data` batch; text stays text, other bytes go
/// as base64 under a `_b64` name.
fn records(b: &Batch) -> Vec<Value> {
    b.iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("offset".into(), r.offset.into());
            o.insert("time_ms".into(), r.append_time_ms.into());
            if let Some(k) = r.key {
                put_bytes(&mut o, "key", k);
            }
            if r.tombstone {
                o.insert("tombstone".into(), true.into());
            }
            put_bytes(&mut o, "payload", r.payload);
            Value::Object(o)
        })
        .collect()
}

pub(super) fn put_bytes(o: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => o.insert(name.into(), s.into()),
        Err(_) => o.insert(format!("{name}_b64"), B64.encode(bytes).into()),
    };
}

/// `{"type": "error", "id", "code", "kind", "message", ...the kind's fields}`.
fn error_value(id: u32, e: &WireError) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), "error".into());
    o.insert("id".into(), id.into());
    o.insert("code".into(), e.kind.code().into());
    // serde writes a unit variant as its name and a struct variant as
    // {name: {fields}}; flatten both into the object.
    match serde_json::to_value(&e.kind) {
        Ok(Value::String(name)) => {
            o.insert("kind".into(), name.into());
        }
        Ok(Value::Object(m)) => {
            for (name, fields) in m {
                o.insert("kind".into(), name.into());
                if let Value::Object(fields) = fields {
                    for (k, v) in fields {
                        o.entry(k).or_insert(v);
                    }
                }
            }
        }
        _ => {}
    }
    o.insert("message".into(), e.message.clone().into());
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Encoder, ReadDone};

    fn text_of(m: Message) -> Value {
        let e = Encoder::default().encode(&Frame::new(3, m)).unwrap();
        serde_json::from_str(&reply(&e)).unwrap()
    }

    #[test]
    fn requests_parse_into_frames() {
        let p = request(
            r#"{"type":"append","id":4,"stream":"s","records":[{"key":"k","payload":"hi"},{"payload_b64":"AAE="}]}"#,
        );
        let Parsed::Frame(f) = p else { panic!("{p:?}") };
        assert_eq!(f.request_id, 4);
        let Message::Append(a) = f.message else {
            panic!()
        };
        assert_eq!(a.records[0], Record::keyed("k", "hi"));
        assert_eq!(a.records[1], Record::new(vec![0u8, 1]));
        let Parsed::Frame(f) = request(r#"{"type":"subscribe","id":5,"stream":"s","from":7}"#)
        else {
            panic!()
        };
        assert_eq!(
            f.message,
            Message::Subscribe(Subscribe {
                stream: "s".into(),
                from: SubscribeFrom::Offset(7)
            })
        );
    }

    #[test]
    fn bad_requests_are_refused_without_panicking() {
        for t in ["", "nul", "[1]", "\"x\"", "{", "1e999999"] {
            assert!(matches!(request(t), Parsed::Malformed(_)), "{t}");
        }
        for t in [
            r#"{"type":"nope","id":9}"#,
            r#"{"type":"append","id":9,"stream":"s","records":[{}]}"#,
            r#"{"type":"append","id":9,"stream":"s","records":[{"payload_b64":"!"}]}"#,
            r#"{"type":"subscribe","id":9,"stream":"s","from":true}"#,
            r#"{"type":"read","id":9,"stream":"s","from":"7"}"#,
            r#"{"type":"read","id":9}"#,
        ] {
            assert!(matches!(request(t), Parsed::Invalid { id: 9, .. }), "{t}");
        }
        // A mistyped id is refused, not read as 0.
        for t in [
            r#"{"type":"ping","id":99999999999}"#,
            r#"{"type":"ping","id":"17"}"#,
            r#"{"type":"head","id":-1,"stream":"s"}"#,
        ] {
            assert!(matches!(request(t), Parsed::Invalid { id: 0, .. }), "{t}");
        }
    }

    #[test]
    fn replies_render_as_json() {
        let v = text_of(Message::ReadDone(ReadDone {
            next_offset: 2,
            tail: 5,
            closed: false,
        }));
        assert_eq!(v["type"], "read_done");
        assert_eq!(v["id"], 3);
        assert_eq!(v["tail"], 5);
        let b =
            crate::proto::batch::build(7, 9, &[Record::keyed("k", "v"), Record::new(vec![0xffu8])])
                .unwrap();
        let v = text_of(Message::Data(b));
        assert_eq!(
            v["records"],
            json!([
                {"offset": 7, "offset_text": crate::http::format_offset(7),
                 "time_ms": 9, "key": "k", "payload": "v"},
                {"offset": 8, "offset_text": crate::http::format_offset(8),
                 "time_ms": 9, "payload_b64": "/w=="},
            ])
        );
        let v = text_of(Message::Error(WireError::new(
            ErrorKind::OffsetOutOfRange { offset: 9, tail: 2 },
            "past",
        )));
        assert_eq!(v["code"], 19);
        assert_eq!(v["kind"], "OffsetOutOfRange");
        assert_eq!(v["offset"], 9);
        assert_eq!(v["message"], "past");
        let v = text_of(Message::Error(WireError::new(ErrorKind::NotFound, "gone")));
        assert_eq!(v["kind"], "NotFound");
    }
}
