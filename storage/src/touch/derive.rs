//! The fine keys one change gives for one template (touches.md §1.5 step
//! 2): watch keys for any row-content change in a tuple, membership keys
//! when rows enter or leave a tuple, projected-field keys when a scalar
//! non-template field changes inside one tuple.

use serde_json::{Map, Value};

use super::change::{Change, ChangeOp};
use super::config::OnMissingBefore;
use super::encode::{encode, Encoding};
use super::keys;

/// An active template as the processor uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    /// The template id.
    pub id: u64,
    /// The entity (State Protocol `type`).
    pub entity: String,
    /// The fields, sorted by name, with their encodings.
    pub fields: Vec<(String, Encoding)>,
    /// Changes at offsets below this are never touched (no backfill).
    pub active_from: u64,
}

/// The encoded argument tuple of a row image, or `None` when a field is
/// missing, null or cannot take its encoding.
pub fn args_of(image: &Value, t: &TemplateSpec) -> Option<Vec<String>> {
    let obj = image.as_object()?;
    t.fields
        .iter()
        .map(|(name, enc)| encode(*enc, obj.get(name)?))
        .collect()
}

fn refs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn is_scalar(v: Option<&Value>) -> bool {
    matches!(
        v,
        None | Some(Value::Null | Value::String(_) | Value::Bool(_) | Value::Number(_))
    )
}

fn is_template_field(t: &TemplateSpec, name: &str) -> bool {
    t.fields.iter().any(|(f, _)| f == name)
}

fn projected_changed(
    t: &TemplateSpec,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    args: &[&str],
    out: &mut Vec<u64>,
) {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        if is_template_field(t, name) {
            continue;
        }
        let (b, a) = (before.get(name.as_str()), after.get(name.as_str()));
        if is_scalar(b) && is_scalar(a) && b != a {
            out.push(keys::projected_field_key(t.id, name, args));
        }
    }
}

/// Pushes the fine routing keys of `change` for template `t` onto `out`.
/// `Err` carries Prisma's message when `onMissingBefore` is `error` and an
/// update has no usable `old_value`.
pub fn fine_keys(
    change: &Change,
    t: &TemplateSpec,
    on_missing: OnMissingBefore,
    out: &mut Vec<u64>,
) -> Result<(), String> {
    let after = change.after.as_ref().and_then(|v| args_of(v, t));
    let before = change.before.as_ref().and_then(|v| args_of(v, t));
    match change.op {
        ChangeOp::Insert => {
            if let Some(a) = after {
                out.push(keys::watch_key(t.id, &refs(&a)));
                out.push(keys::membership_key(t.id, &refs(&a)));
            }
        }
        ChangeOp::Delete => {
            if let Some(b) = before {
                out.push(keys::watch_key(t.id, &refs(&b)));
                out.push(keys::membership_key(t.id, &refs(&b)));
            }
        }
        ChangeOp::Update => match before {
            Some(b) => {
                out.push(keys::watch_key(t.id, &refs(&b)));
                if let Some(a) = &after {
                    out.push(keys::watch_key(t.id, &refs(a)));
                }
                match &after {
                    Some(a) if *a != b => {
                        out.push(keys::membership_key(t.id, &refs(&b)));
                        out.push(keys::membership_key(t.id, &refs(a)));
                    }
                    Some(a) => {
                        if let (Some(Value::Object(bo)), Some(Value::Object(ao))) =
                            (&change.before, &change.after)
                        {
                            projected_changed(t, bo, ao, &refs(a), out);
                        }
                    }
                    None => out.push(keys::membership_key(t.id, &refs(&b))),
                }
            }
            None => match on_missing {
                OnMissingBefore::Coarse => {}
                OnMissingBefore::SkipBefore => {
                    if let Some(a) = after {
                        let a = refs(&a);
                        out.push(keys::watch_key(t.id, &a));
                        out.push(keys::membership_key(t.id, &a));
                        if let Some(Value::Object(ao)) = &change.after {
                            let mut names: Vec<&String> = ao.keys().collect();
                            names.sort();
                            for name in names {
                                if !is_template_field(t, name) && is_scalar(ao.get(name.as_str())) {
                                    out.push(keys::projected_field_key(t.id, name, &a));
                                }
                            }
                        }
                    }
                }
                OnMissingBefore::Error => {
                    let what = if change.before.is_none() {
                        "missing old_value for update"
                    } else {
                        "old_value missing required fields for update"
                    };
                    return Err(format!(
                        "{what} (entity={}, templateId={})",
                        change.entity,
                        keys::hex16(t.id)
                    ));
                }
            },
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn posts() -> TemplateSpec {
        TemplateSpec {
            id: keys::template_id("posts", &["tenantId"]),
            entity: "posts".into(),
            fields: vec![("tenantId".into(), Encoding::String)],
            active_from: 0,
        }
    }

    fn change(op: ChangeOp, before: Option<Value>, after: Option<Value>) -> Change {
        Change {
            entity: "posts".into(),
            key: "1".into(),
            op,
            before,
            after,
        }
    }

    fn keys_of(c: &Change, m: OnMissingBefore) -> Vec<String> {
        let mut out = Vec::new();
        fine_keys(c, &posts(), m, &mut out).unwrap();
        out.into_iter().map(keys::hex16).collect()
    }

    #[test]
    fn an_insert_gives_the_golden_watch_and_membership_keys() {
        let c = change(ChangeOp::Insert, None, Some(json!({"tenantId": "t1"})));
        assert_eq!(
            keys_of(&c, OnMissingBefore::Coarse),
            vec!["f9ae463d06fcf3fc", "998c7dcd3c0ca6c5"]
        );
    }

    #[test]
    fn a_partition_move_touches_both_memberships() {
        let c = change(
            ChangeOp::Update,
            Some(json!({"tenantId": "t1"})),
            Some(json!({"tenantId": "t2"})),
        );
        let k = keys_of(&c, OnMissingBefore::Coarse);
        assert!(k.contains(&"998c7dcd3c0ca6c5".to_string()));
        assert!(k.contains(&"1e2eb8465e0fc10e".to_string()));
        assert!(k.contains(&"f9ae463d06fcf3fc".to_string()));
    }

    #[test]
    fn an_in_partition_update_touches_projected_fields_not_membership() {
        let t = posts();
        let c = change(
            ChangeOp::Update,
            Some(json!({"tenantId": "t1", "title": "a", "tags": [1], "same": 1})),
            Some(json!({"tenantId": "t1", "title": "b", "tags": [2], "same": 1})),
        );
        let k = keys_of(&c, OnMissingBefore::Coarse);
        let title = keys::hex16(keys::projected_field_key(t.id, "title", &["t1"]));
        assert_eq!(
            k,
            vec![
                "f9ae463d06fcf3fc".to_string(),
                "f9ae463d06fcf3fc".to_string(),
                title
            ]
        );
        assert!(!k.contains(&"998c7dcd3c0ca6c5".to_string()));
    }

    #[test]
    fn updates_without_old_value_follow_on_missing_before() {
        let c = change(
            ChangeOp::Update,
            None,
            Some(json!({"tenantId": "t1", "x": 1})),
        );
        assert!(keys_of(&c, OnMissingBefore::Coarse).is_empty());
        let skip = keys_of(&c, OnMissingBefore::SkipBefore);
        assert_eq!(skip.len(), 3, "watch, membership, projected x");
        let mut out = Vec::new();
        let e = fine_keys(&c, &posts(), OnMissingBefore::Error, &mut out).unwrap_err();
        assert_eq!(
            e,
            "missing old_value for update (entity=posts, templateId=0af3814da0aea55f)"
        );
    }

    #[test]
    fn unencodable_tuples_give_nothing() {
        let c = change(ChangeOp::Insert, None, Some(json!({"tenantId": null})));
        assert!(keys_of(&c, OnMissingBefore::Coarse).is_empty());
    }
}
