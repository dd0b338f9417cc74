//! Template declarations from JSON: the route-level shape checks of the
//! activation body and a wait's `declareTemplates` (one bad shape rejects
//! the request), and the canonical form of one declaration (a bad one is
//! denied on its own, as `0000000000000000`).

use serde_json::Value;

use crate::touch::defaults::{MAX_TEMPLATES_PER_REQUEST, MAX_TEMPLATE_FIELDS};
use crate::touch::encode::Encoding;
use crate::touch::keys;

/// A valid declaration in canonical form: fields sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decl {
    /// The template id of (entity, sorted field names).
    pub id: u64,
    /// The trimmed entity.
    pub entity: String,
    /// Sorted, trimmed field names.
    pub fields: Vec<String>,
    /// The encodings aligned with `fields`.
    pub encodings: Vec<Encoding>,
}

/// Checks the shape of a declaration array (`path` names it in messages).
pub fn check_shapes(a: &[Value], path: &str) -> Result<(), String> {
    if a.is_empty() {
        return Err(format!("{path} must be a non-empty array"));
    }
    if a.len() > MAX_TEMPLATES_PER_REQUEST {
        return Err(format!("{path} too large (max 256)"));
    }
    let invalid = || format!("{path} contains invalid template definitions");
    for t in a {
        let entity = t
            .get("entity")
            .and_then(Value::as_str)
            .map_or("", str::trim);
        let Some(fields) = t.get("fields").and_then(Value::as_array) else {
            return Err(invalid());
        };
        if entity.is_empty() || fields.is_empty() || fields.len() > MAX_TEMPLATE_FIELDS {
            return Err(invalid());
        }
        if fields.iter().any(|f| {
            f.get("name")
                .and_then(Value::as_str)
                .map_or("", str::trim)
                .is_empty()
        }) {
            return Err(invalid());
        }
    }
    Ok(())
}

/// An inactivity TTL: absent → `None`, a non-negative number → floored.
pub fn parse_ttl(v: Option<&Value>, path: &str) -> Result<Option<u64>, String> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f.is_finite() && f >= 0.0) => {
            Ok(Some(n.as_f64().unwrap_or(0.0).floor() as u64))
        }
        Some(_) => Err(format!("{path} must be a non-negative number (ms)")),
    }
}

/// Parses an activation body: the declarations and the TTL (default given).
pub fn parse_activate_body(body: &[u8], default_ttl_ms: u64) -> Result<(Vec<Value>, u64), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "activate body must be valid JSON".to_string())?;
    let Some(a) = v.get("templates").and_then(Value::as_array) else {
        return Err("activate.templates must be a non-empty array".into());
    };
    check_shapes(a, "activate.templates")?;
    let ttl = parse_ttl(v.get("inactivityTtlMs"), "activate.inactivityTtlMs")?;
    Ok((a.clone(), ttl.unwrap_or(default_ttl_ms)))
}

/// The canonical form of one declaration, or `None` when it is invalid
/// (empty entity, 0 or more than 3 fields, an empty or duplicate name, an
/// unknown encoding).
pub fn canonicalize(v: &Value) -> Option<Decl> {
    let entity = v.get("entity")?.as_str()?.trim();
    let raw = v.get("fields")?.as_array()?;
    if entity.is_empty() || raw.is_empty() || raw.len() > MAX_TEMPLATE_FIELDS {
        return None;
    }
    let mut fields: Vec<(String, Encoding)> = Vec::with_capacity(raw.len());
    for f in raw {
        let name = f.get("name")?.as_str()?.trim();
        let enc = Encoding::parse(f.get("encoding")?.as_str()?)?;
        if name.is_empty() || fields.iter().any(|(n, _)| n == name) {
            return None;
        }
        fields.push((name.to_string(), enc));
    }
    fields.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    Some(Decl {
        id: keys::template_id(entity, &names),
        entity: entity.to_string(),
        fields: fields.iter().map(|(n, _)| n.clone()).collect(),
        encodings: fields.iter().map(|(_, e)| *e).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn route_messages() {
        let e = |b: &str| parse_activate_body(b.as_bytes(), 5).unwrap_err();
        assert_eq!(e("x"), "activate body must be valid JSON");
        assert_eq!(e("{}"), "activate.templates must be a non-empty array");
        assert_eq!(
            e(r#"{"templates":[]}"#),
            "activate.templates must be a non-empty array"
        );
        assert_eq!(
            e(r#"{"templates":[{"entity":" ","fields":[{"name":"a"}]}]}"#),
            "activate.templates contains invalid template definitions"
        );
        assert_eq!(
            e(r#"{"templates":[{"entity":"e","fields":[{"name":"a"}]}],"inactivityTtlMs":"1"}"#),
            "activate.inactivityTtlMs must be a non-negative number (ms)"
        );
        let (t, ttl) = parse_activate_body(
            br#"{"templates":[{"entity":"e","fields":[{"name":"a"}]}],"inactivityTtlMs":9.7}"#,
            5,
        )
        .unwrap();
        assert_eq!((t.len(), ttl), (1, 9));
    }

    #[test]
    fn canonical_ids_ignore_field_order_and_encodings() {
        let a = canonicalize(&json!({"entity": "public.todos", "fields": [
            {"name": "userId", "encoding": "string"}, {"name": "status", "encoding": "string"},
            {"name": "tenantId", "encoding": "int64"}]}))
        .unwrap();
        assert_eq!(keys::hex16(a.id), "ddd2330fdab379da");
        assert_eq!(a.fields, vec!["status", "tenantId", "userId"]);
        assert_eq!(a.encodings[1], Encoding::Int64);
        assert!(canonicalize(&json!({"entity": "e", "fields": [
            {"name": "a", "encoding": "string"}, {"name": "a", "encoding": "bool"}]}))
        .is_none());
        assert!(
            canonicalize(&json!({"entity": "e", "fields": [{"name": "a", "encoding": "x"}]}))
                .is_none()
        );
    }
}
