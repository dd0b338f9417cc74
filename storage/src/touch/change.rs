//! Canonical changes of stored State Protocol records (touches.md §1.2):
//! one change per insert, update or delete; control records and records
//! of another shape give none.
//!
//! A record is read in two steps. [`canonical_head`] borrows the entity,
//! key and operation and only delimits `value` and `old_value`: that is all
//! a table touch needs, and most rows need nothing more. [`Head::full`]
//! parses the two values when a template of the entity asks for fine keys.
//! Parsing every record whole into a JSON tree (maps, strings, numbers) was
//! the processor's largest cost per row.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
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

/// A change's identity, with its values still unparsed.
#[derive(Debug)]
pub(crate) struct Head<'a> {
    pub entity: Cow<'a, str>,
    key: Cow<'a, str>,
    op: ChangeOp,
    before: Option<Member<'a>>,
    after: Option<Member<'a>>,
}

/// A value member: raw text, or already parsed (by the slow reading).
#[derive(Debug)]
enum Member<'a> {
    Raw(&'a RawValue),
    Parsed(Value),
}

impl Member<'_> {
    fn parse(self) -> Value {
        match self {
            // Raw text is valid JSON by construction.
            Member::Raw(r) => serde_json::from_str(r.get()).unwrap_or(Value::Null),
            Member::Parsed(v) => v,
        }
    }
}

/// The record as the first step reads it: unknown members are skipped,
/// `value` and `old_value` kept as raw text (`null` included).
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(rename = "type", borrow, default)]
    entity: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    headers: Option<Headers<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    old_value: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Headers<'a> {
    #[serde(borrow, default)]
    operation: Option<Cow<'a, str>>,
}

/// A member that is present is kept, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The change a stored record stands for, if any, values unparsed.
pub(crate) fn canonical_head(payload: &[u8]) -> Option<Head<'_>> {
    let Ok(s) = serde_json::from_slice::<Shape<'_>>(payload) else {
        // A shape the first step does not take (a member of another type,
        // a repeated member, not an object): the whole-tree reading, which
        // decides exactly as the processor always has.
        return whole(payload);
    };
    let op = operation(s.headers?.operation?.as_ref())?;
    Some(Head {
        entity: s.entity?,
        key: s.key?,
        op,
        before: s.old_value.map(Member::Raw),
        after: s.value.map(Member::Raw),
    })
}

fn operation(name: &str) -> Option<ChangeOp> {
    match name {
        "insert" => Some(ChangeOp::Insert),
        "update" => Some(ChangeOp::Update),
        "delete" => Some(ChangeOp::Delete),
        _ => None,
    }
}

impl Head<'_> {
    /// The whole change, its values parsed.
    pub fn full(self) -> Change {
        Change {
            entity: self.entity.into_owned(),
            key: self.key.into_owned(),
            op: self.op,
            before: self.before.map(Member::parse),
            after: self.after.map(Member::parse),
        }
    }
}

/// The change a stored record stands for, if any.
#[cfg(test)]
pub(crate) fn canonical_change(payload: &[u8]) -> Option<Change> {
    canonical_head(payload).map(Head::full)
}

/// The change a stored record stands for, if any, read whole in one pass:
/// for batches whose rows will mostly need their values (fine touches are
/// being emitted), where reading the identity first would scan each value
/// twice. Also the reading of the records [`canonical_head`] refuses.
pub(crate) fn whole(payload: &[u8]) -> Option<Head<'static>> {
    let Value::Object(mut m) = serde_json::from_slice::<Value>(payload).ok()? else {
        return None;
    };
    let op = operation(m.get("headers")?.get("operation")?.as_str()?)?;
    let entity = m.get("type")?.as_str()?.to_string();
    let key = m.get("key")?.as_str()?.to_string();
    Some(Head {
        entity: Cow::Owned(entity),
        key: Cow::Owned(key),
        op,
        before: m.remove("old_value").map(Member::Parsed),
        after: m.remove("value").map(Member::Parsed),
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
        assert_eq!(c.after, Some(serde_json::json!({"a": 1})));
        assert!(canonical_change(br#"{"headers":{"control":"reset"}}"#).is_none());
        assert!(canonical_change(b"not json").is_none());
        let d = canonical_change(br#"{"type":"p","key":"1","headers":{"operation":"delete"}}"#)
            .unwrap();
        assert!(d.after.is_none() && d.before.is_none());
    }

    #[test]
    fn the_two_step_reading_decides_as_the_whole_tree_does() {
        let cases: [&[u8]; 8] = [
            br#"{"type":"p","key":"1","value":[1,{"x":"y"}],"headers":{"operation":"insert","txid":"9"}}"#,
            br#"{"type":"p\u0073","key":"k\n","headers":{"operation":"insert"}}"#,
            // A repeated member: the last one counts.
            br#"{"type":"a","type":"b","key":"1","headers":{"operation":"insert"}}"#,
            br#"{"type":7,"key":"1","headers":{"operation":"insert"}}"#,
            br#"{"type":"p","key":"1","headers":{"operation":5}}"#,
            br#"{"type":"p","key":"1","headers":"insert"}"#,
            br#"{"type":"p","key":"1","headers":{"operation":"upsert"}}"#,
            br#"[{"type":"p"}]"#,
        ];
        for c in cases {
            let two = canonical_change(c);
            let one = whole(c).map(Head::full);
            assert_eq!(two, one, "{}", String::from_utf8_lossy(c));
        }
        assert_eq!(canonical_change(cases[1]).unwrap().entity, "ps");
        assert_eq!(canonical_change(cases[2]).unwrap().entity, "b");
        assert!(canonical_change(cases[3]).is_none());
    }
}
