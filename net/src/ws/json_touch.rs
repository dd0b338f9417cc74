//! JSON forms of the version-2 touch messages (PROTOCOL.md 9.1): `wait`
//! and `activate_templates` carry the members of the HTTP routes' documents
//! beside `type`, `id` and `stream`, and their answers carry the members of
//! the HTTP responses beside `type` and `id`. A client can therefore move
//! between the doors without renaming a field.

use serde_json::{Map, Value};

use crate::proto::{ActivateTemplates, TemplatesActivated, Wait, WaitResult};

/// The members of a request object that belong to the envelope, not to
/// the document.
const ENVELOPE: [&str; 3] = ["type", "id", "stream"];

fn document(obj: &Map<String, Value>) -> Result<(String, String), String> {
    let stream = match obj.get("stream") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("stream must be a string".into()),
        None => return Err("missing field `stream`".into()),
    };
    let doc: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !ENVELOPE.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((stream, Value::Object(doc).to_string()))
}

/// `wait`: `stream` and the wait document's members.
pub(super) fn wait(obj: &Map<String, Value>) -> Result<Wait, String> {
    let (stream, request) = document(obj)?;
    Ok(Wait { stream, request })
}

/// `activate_templates`: `stream`, `templates` and `inactivityTtlMs`.
pub(super) fn activate(obj: &Map<String, Value>) -> Result<ActivateTemplates, String> {
    let (stream, request) = document(obj)?;
    Ok(ActivateTemplates { stream, request })
}

fn with_envelope(kind: &str, id: u32, body: Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), kind.into());
    out.insert("id".into(), id.into());
    if let Value::Object(m) = body {
        out.extend(m);
    }
    Value::Object(out)
}

/// `{"type":"wait_result","id",...}` with the HTTP response's members.
pub(super) fn wait_result(id: u32, w: &WaitResult) -> Value {
    with_envelope("wait_result", id, w.to_json())
}

/// `{"type":"templates_activated","id",...}` with the HTTP response's members.
pub(super) fn templates_activated(id: u32, t: &TemplatesActivated) -> Value {
    with_envelope("templates_activated", id, t.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_document_is_every_member_but_the_envelope() {
        let v = json!({"type": "wait", "id": 3, "stream": "s", "keys": ["a"], "timeoutMs": 5});
        let w = wait(v.as_object().unwrap()).unwrap();
        assert_eq!(w.stream, "s");
        let doc: Value = serde_json::from_str(&w.request).unwrap();
        assert_eq!(doc, json!({"keys": ["a"], "timeoutMs": 5}));
    }

    #[test]
    fn a_request_without_a_stream_is_refused() {
        let v = json!({"type": "activate_templates", "id": 3, "templates": []});
        assert!(activate(v.as_object().unwrap()).is_err());
        let v = json!({"type": "wait", "id": 3, "stream": 7});
        assert_eq!(
            wait(v.as_object().unwrap()).unwrap_err(),
            "stream must be a string"
        );
    }
}
