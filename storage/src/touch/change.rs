//! Canonical changes of stored State Protocol records (touches.md §1.2):
//! one change per insert, update or delete; control records and records
//! of another shape give none.

use serde_json::Value;

/// The operation of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeOp {
    Insert,
    Update,
    Delete,
}

/// One canonical change: `before` is `old_value` and `after` is `value`,
/// each only when the record has the property.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub entity: String,
    pub key: String,
    pub op: ChangeOp,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The change a stored record stands for, if any.
pub(crate) fn canonical_change(payload: &[u8]) -> Option<Change> {
    let Value::Object(mut m) = serde_json::from_slice::<Value>(payload).ok()? else {
        return None;
    };
    let op = match m.get("headers")?.get("operation")?.as_str()? {
        "insert" => ChangeOp::Insert,
        "update" => ChangeOp::Update,
        "delete" => ChangeOp::Delete,
        _ => return None,
    };
    let entity = m.get("type")?.as_str()?.to_string();
    let key = m.get("key")?.as_str()?.to_string();
    Some(Change {
        entity,
        key,
        op,
        before: m.remove("old_value"),
        after: m.remove("value"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_non_changes() {
        let c = canonical_change(
            br#"{"type":"posts","key":"1","value":{"a":1},"old_value":null,"headers":{"operation":"update"}}"#,
        )
        .unwrap();
        assert_eq!(c.op, ChangeOp::Update);
        assert_eq!(c.before, Some(Value::Null), "present even when null");
        assert!(canonical_change(br#"{"headers":{"control":"reset"}}"#).is_none());
        assert!(canonical_change(b"not json").is_none());
        let d = canonical_change(br#"{"type":"p","key":"1","headers":{"operation":"delete"}}"#)
            .unwrap();
        assert!(d.after.is_none() && d.before.is_none());
    }
}
