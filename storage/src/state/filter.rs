//! The filter language of state subscriptions and scans (see
//! `specs/gateways.md` §3.1).
//!
//! Filters arrive from untrusted clients, so parsing refuses anything it does
//! not fully understand (unknown keys, operators, duplicate keys, wrong member
//! types) instead of guessing, and every size is bounded before work is done.
//! Evaluation is two-valued: a comparison on a missing field, on a value of
//! another JSON type than its operand, or on a row whose value is not JSON is
//! false, and `not` simply negates its child.

// Integrated by the state module.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Number, Value};

/// Deepest nesting allowed; the top node is at depth 1.
pub(crate) const MAX_FILTER_DEPTH: usize = 8;
/// Most nodes (of every kind) in one filter.
pub(crate) const MAX_FILTER_NODES: usize = 64;
/// Longest `in` / `not_in` list.
pub(crate) const MAX_FILTER_LIST: usize = 1024;
/// Largest encoded filter, the size of a control body.
pub(crate) const MAX_FILTER_BYTES: usize = 32 * 1024;

/// A parsed, validated filter. Cheap to evaluate, Clone + Debug + PartialEq.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
    // Cached because callers ask once per row to decide whether to parse JSON.
    needs_value: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Field { path: Path, op: Op },
    KeyPrefix(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
struct Path {
    // Kept verbatim so that `to_json` echoes exactly what the client sent.
    text: String,
    segments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(Value),
    Ne(Value),
    Lt(Value),
    Lte(Value),
    Gt(Value),
    Gte(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Exists,
    IsNull,
    Prefix(String),
}

/// Filter errors are plain sentences; this keeps each refusal on one line.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(format!($($arg)*))
    };
}

const KINDS: [&str; 5] = ["and", "or", "not", "field", "key_prefix"];
const OPS: [&str; 11] = [
    "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "exists", "is_null", "prefix",
];

impl Filter {
    /// Parses the JSON text of a filter, enforcing every limit. The size is
    /// checked before decoding and duplicate object keys are refused.
    pub fn parse_bytes(text: &[u8]) -> Result<Filter, String> {
        if text.len() > MAX_FILTER_BYTES {
            bail!(
                "filter: {} bytes, larger than the limit of {MAX_FILTER_BYTES} bytes",
                text.len()
            );
        }
        let Strict(value) =
            serde_json::from_slice(text).map_err(|e| format!("filter: not valid JSON ({e})"))?;
        Filter::parse(&value)
    }

    /// Parses an already-decoded JSON value, enforcing every limit except the
    /// byte size.
    pub fn parse(value: &Value) -> Result<Filter, String> {
        let root = Parser { nodes: 0 }.node(value, 1, "")?;
        Ok(Filter::from_root(root))
    }

    /// A filter matching keys starting with `prefix` only. A prefix that is
    /// not UTF-8 is echoed by `to_json` with replacement characters.
    pub fn key_prefix(prefix: impl Into<Vec<u8>>) -> Filter {
        Filter::from_root(Node::KeyPrefix(prefix.into()))
    }

    /// Whether the filter looks at values at all (false when it is only key
    /// prefixes), so callers can skip JSON parsing.
    pub fn needs_value(&self) -> bool {
        self.needs_value
    }

    /// Evaluates against one row: its key bytes and its value parsed as JSON
    /// (None when the value is not JSON, which makes every field node false).
    pub fn matches(&self, key: &[u8], value: Option<&Value>) -> bool {
        self.root.eval(key, value)
    }

    /// Back to canonical JSON (for echoing / storing); `parse` of the result
    /// gives an equal filter.
    pub fn to_json(&self) -> Value {
        self.root.to_json()
    }

    fn from_root(root: Node) -> Filter {
        let needs_value = root.needs_value();
        Filter { root, needs_value }
    }
}

struct Parser {
    nodes: usize,
}

/// Where a node sits in the filter, as a JSON pointer, for error messages.
fn at(loc: &str) -> String {
    if loc.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("at {loc}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Parser {
    fn node(&mut self, v: &Value, depth: usize, loc: &str) -> Result<Node, String> {
        // Both checks come before any recursion or allocation, so a hostile
        // filter costs at most MAX_FILTER_NODES node visits.
        if depth > MAX_FILTER_DEPTH {
            bail!("filter: nested deeper than {MAX_FILTER_DEPTH} levels");
        }
        self.nodes += 1;
        if self.nodes > MAX_FILTER_NODES {
            bail!("filter: more than {MAX_FILTER_NODES} nodes");
        }
        let Value::Object(obj) = v else {
            bail!(
                "filter: node {} must be an object, not {}",
                at(loc),
                type_name(v)
            );
        };
        let mut present = KINDS.iter().filter(|k| obj.contains_key(**k));
        let kind = match (present.next(), present.next()) {
            (Some(k), None) => *k,
            (None, _) => bail!("filter: node {} has none of the keys {KINDS:?}", at(loc)),
            (Some(a), Some(b)) => bail!("filter: node {} mixes \"{a}\" and \"{b}\"", at(loc)),
        };
        let allowed: &[&str] = if kind == "field" {
            &["field", "op", "value"]
        } else {
            &[kind]
        };
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            bail!("filter: unknown key \"{k}\" in \"{kind}\" node {}", at(loc));
        }
        let member = &obj[kind];
        match (kind, member) {
            ("and" | "or", Value::Array(list)) => {
                if list.is_empty() {
                    bail!("filter: \"{kind}\" {} must not be empty", at(loc));
                }
                let mut children = Vec::with_capacity(list.len().min(MAX_FILTER_NODES));
                for (i, child) in list.iter().enumerate() {
                    children.push(self.node(child, depth + 1, &format!("{loc}/{kind}/{i}"))?);
                }
                Ok(if kind == "and" {
                    Node::And(children)
                } else {
                    Node::Or(children)
                })
            }
            ("not", _) => Ok(Node::Not(Box::new(self.node(
                member,
                depth + 1,
                &format!("{loc}/not"),
            )?))),
            ("key_prefix", Value::String(s)) => Ok(Node::KeyPrefix(s.as_bytes().to_vec())),
            ("field", Value::String(text)) => field(obj, text),
            ("and" | "or", _) => bail!("filter: \"{kind}\" {} must be an array of nodes", at(loc)),
            _ => bail!(
                "filter: \"{kind}\" {} must be a string, not {}",
                at(loc),
                type_name(member)
            ),
        }
    }
}

fn field(obj: &Map<String, Value>, text: &str) -> Result<Node, String> {
    let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        bail!("filter: field path \"{text}\" has an empty segment");
    }
    let name = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => bail!(
            "filter: \"op\" at field \"{text}\" must be a string, not {}",
            type_name(other)
        ),
        None => bail!("filter: field \"{text}\" has no \"op\""),
    };
    if !OPS.contains(&name) {
        bail!("filter: unknown operator \"{name}\" at field \"{text}\"");
    }
    let at_field = format!("operator \"{name}\" at field \"{text}\"");
    let op = match (name, obj.get("value")) {
        ("exists" | "is_null", Some(_)) => bail!("filter: {at_field} takes no \"value\""),
        ("exists", None) => Op::Exists,
        ("is_null", None) => Op::IsNull,
        (_, None) => bail!("filter: {at_field} needs a \"value\""),
        ("eq", Some(v)) => Op::Eq(v.clone()),
        ("ne", Some(v)) => Op::Ne(v.clone()),
        ("lt", Some(v @ (Value::Number(_) | Value::String(_)))) => Op::Lt(v.clone()),
        ("lte", Some(v @ (Value::Number(_) | Value::String(_)))) => Op::Lte(v.clone()),
        ("gt", Some(v @ (Value::Number(_) | Value::String(_)))) => Op::Gt(v.clone()),
        ("gte", Some(v @ (Value::Number(_) | Value::String(_)))) => Op::Gte(v.clone()),
        ("lt" | "lte" | "gt" | "gte", Some(v)) => {
            bail!(
                "filter: {at_field} needs a number or string value, not {}",
                type_name(v)
            )
        }
        ("in" | "not_in", Some(Value::Array(list))) if list.len() > MAX_FILTER_LIST => {
            bail!(
                "filter: {at_field} has {} values, more than {MAX_FILTER_LIST}",
                list.len()
            )
        }
        ("in", Some(Value::Array(list))) => Op::In(list.clone()),
        ("not_in", Some(Value::Array(list))) => Op::NotIn(list.clone()),
        ("in" | "not_in", Some(v)) => bail!(
            "filter: {at_field} needs an array value, not {}",
            type_name(v)
        ),
        ("prefix", Some(Value::String(s))) => Op::Prefix(s.clone()),
        (_, Some(v)) => bail!(
            "filter: {at_field} needs a string value, not {}",
            type_name(v)
        ),
    };
    Ok(Node::Field {
        path: Path {
            text: text.to_owned(),
            segments,
        },
        op,
    })
}

impl Node {
    fn eval(&self, key: &[u8], value: Option<&Value>) -> bool {
        match self {
            Node::And(children) => children.iter().all(|n| n.eval(key, value)),
            Node::Or(children) => children.iter().any(|n| n.eval(key, value)),
            Node::Not(child) => !child.eval(key, value),
            Node::KeyPrefix(prefix) => key.starts_with(prefix),
            Node::Field { path, op } => value
                .and_then(|v| path.resolve(v))
                .is_some_and(|x| op.test(x)),
        }
    }

    fn needs_value(&self) -> bool {
        match self {
            Node::And(children) | Node::Or(children) => children.iter().any(Node::needs_value),
            Node::Not(child) => child.needs_value(),
            Node::Field { .. } => true,
            Node::KeyPrefix(_) => false,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Node::And(c) => json!({ "and": c.iter().map(Node::to_json).collect::<Value>() }),
            Node::Or(c) => json!({ "or": c.iter().map(Node::to_json).collect::<Value>() }),
            Node::Not(c) => json!({ "not": c.to_json() }),
            Node::KeyPrefix(p) => json!({ "key_prefix": String::from_utf8_lossy(p) }),
            Node::Field { path, op } => {
                let (name, operand) = op.parts();
                let mut node = json!({ "field": path.text, "op": name });
                if let Some(operand) = operand {
                    node["value"] = operand;
                }
                node
            }
        }
    }
}

impl Path {
    fn resolve<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(root, |v, seg| match v {
            Value::Object(m) => m.get(seg),
            Value::Array(a) if seg.bytes().all(|b| b.is_ascii_digit()) => {
                seg.parse::<usize>().ok().and_then(|i| a.get(i))
            }
            _ => None,
        })
    }
}

impl Op {
    /// The operator's name and its `value` member, as they are written in JSON.
    fn parts(&self) -> (&'static str, Option<Value>) {
        match self {
            Op::Eq(v) => ("eq", Some(v.clone())),
            Op::Ne(v) => ("ne", Some(v.clone())),
            Op::Lt(v) => ("lt", Some(v.clone())),
            Op::Lte(v) => ("lte", Some(v.clone())),
            Op::Gt(v) => ("gt", Some(v.clone())),
            Op::Gte(v) => ("gte", Some(v.clone())),
            Op::In(list) => ("in", Some(Value::Array(list.clone()))),
            Op::NotIn(list) => ("not_in", Some(Value::Array(list.clone()))),
            Op::Exists => ("exists", None),
            Op::IsNull => ("is_null", None),
            Op::Prefix(p) => ("prefix", Some(Value::String(p.clone()))),
        }
    }

    fn test(&self, x: &Value) -> bool {
        match self {
            Op::Eq(v) => json_eq(x, v),
            Op::Ne(v) => ne(x, v),
            Op::Lt(v) => compare(x, v) == Some(Ordering::Less),
            Op::Lte(v) => matches!(compare(x, v), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt(v) => compare(x, v) == Some(Ordering::Greater),
            Op::Gte(v) => matches!(compare(x, v), Some(Ordering::Greater | Ordering::Equal)),
            Op::In(list) => list.iter().any(|v| json_eq(x, v)),
            // `not_in [a, b]` is exactly `and(ne a, ne b)`, so a member of
            // another type than the field makes it false, like `ne` does.
            Op::NotIn(list) => list.iter().all(|v| ne(x, v)),
            Op::Exists => true,
            Op::IsNull => x.is_null(),
            Op::Prefix(p) => x.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        }
    }
}

/// A type mismatch is false for `ne` too: "not equal" is only asserted
/// between values that could have been equal.
fn ne(x: &Value, v: &Value) -> bool {
    std::mem::discriminant(x) == std::mem::discriminant(v) && !json_eq(x, v)
}

fn compare(x: &Value, v: &Value) -> Option<Ordering> {
    match (x, v) {
        (Value::Number(a), Value::Number(b)) => cmp_numbers(a, b),
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        _ => None,
    }
}

/// Integers compare exactly (f64 loses precision above 2^53); anything
/// involving a float compares as f64.
fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    fn int(n: &Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// Structural equality where numbers compare by value, so `1` equals `1.0`
/// (serde_json's own `==` would tell them apart).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q)))
        }
        _ => a == b,
    }
}

/// A JSON value decoded with duplicate object keys refused: serde_json keeps
/// the last one silently, which would let `{"op":"eq","op":"ne"}` mean
/// whatever the decoder happens to pick.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(n.into())
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(n.into())
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate key \"{k}\"")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(text: &str) -> Filter {
        Filter::parse_bytes(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }
    fn err(text: &str) -> String {
        Filter::parse_bytes(text.as_bytes()).expect_err(text)
    }
    const ROW: &str = r#"{"n":5,"big":9007199254740993,"u":18446744073709551615,"x":1.5,
        "s":"hello","t":true,"z":null,"a":[10,{"b":"deep"}],"o":{"k":[1,2]},"e":""}"#;
    /// Evaluates `op` with `value` (JSON text, or "" for none) on field `path` of ROW.
    fn m(path: &str, op: &str, value: &str) -> bool {
        let v = if value.is_empty() {
            String::new()
        } else {
            format!(r#","value":{value}"#)
        };
        let row: Value = serde_json::from_str(ROW).unwrap();
        f(&format!(r#"{{"field":"{path}","op":"{op}"{v}}}"#)).matches(b"k", Some(&row))
    }

    #[test]
    fn equality() {
        assert!(m("n", "eq", "5") && m("n", "eq", "5.0") && !m("n", "eq", "6"));
        assert!(m("s", "eq", r#""hello""#) && !m("s", "eq", r#""Hello""#));
        assert!(m("t", "eq", "true") && m("z", "eq", "null") && !m("n", "eq", r#""5""#));
        assert!(m("o", "eq", r#"{"k":[1,2.0]}"#) && !m("o", "eq", r#"{"k":[2,1]}"#));
        assert!(m("a", "eq", r#"[10,{"b":"deep"}]"#) && !m("a", "eq", "[10]"));
        assert!(m("big", "eq", "9007199254740993") && !m("big", "eq", "9007199254740992"));
        assert!(m("n", "ne", "6") && !m("n", "ne", "5") && m("s", "ne", r#""x""#));
        // Type mismatch and missing fields never match, for `ne` too.
        assert!(!m("n", "ne", r#""5""#) && !m("missing", "ne", "1") && !m("z", "ne", "1"));
    }

    #[test]
    fn ordering() {
        assert!(
            m("n", "lt", "6") && !m("n", "lt", "5") && m("n", "lte", "5") && !m("n", "lte", "4")
        );
        assert!(
            m("n", "gt", "4.5")
                && !m("n", "gt", "5")
                && m("n", "gte", "5")
                && !m("n", "gte", "5.1")
        );
        assert!(m("x", "gt", "1") && m("x", "lt", "2"));
        assert!(m("big", "gt", "9007199254740992") && m("u", "gt", "9223372036854775807"));
        assert!(m("s", "gt", r#""hell""#) && m("s", "lt", r#""help""#) && m("s", "lt", r#""i""#));
        assert!(m("e", "lt", r#""a""#) && m("e", "gte", r#""""#));
        // No coercion between strings, numbers and booleans.
        assert!(!m("n", "lt", r#""9""#) && !m("s", "gt", "0") && !m("t", "gt", "0"));
        assert!(!m("z", "lt", "1") && !m("missing", "gte", "0") && !m("o", "gt", "0"));
    }

    #[test]
    fn lists_prefix_exists_null() {
        assert!(m("n", "in", "[1,5.0]") && !m("n", "in", "[1,2]") && !m("n", "in", "[]"));
        assert!(m("s", "in", r#"["a","hello"]"#) && !m("s", "in", "[5]"));
        assert!(m("n", "not_in", "[1,2]") && !m("n", "not_in", "[1,5]") && m("n", "not_in", "[]"));
        assert!(!m("n", "not_in", r#"["a"]"#) && !m("missing", "not_in", "[1]"));
        assert!(!m("missing", "in", "[null]") && m("z", "in", "[null]"));
        assert!(m("s", "prefix", r#""hel""#) && m("s", "prefix", r#""""#));
        assert!(!m("s", "prefix", r#""help""#) && !m("n", "prefix", r#""5""#));
        assert!(m("z", "exists", "") && m("a.1.b", "exists", "") && !m("a.5", "exists", ""));
        assert!(m("z", "is_null", "") && !m("n", "is_null", "") && !m("missing", "is_null", ""));
    }

    #[test]
    fn paths() {
        assert!(m("a.0", "eq", "10") && m("a.1.b", "eq", r#""deep""#) && m("o.k.1", "eq", "2"));
        assert!(!m("a.2", "exists", "") && !m("a.x", "exists", "") && !m("n.0", "exists", ""));
        assert!(!m("a.99999999999999999999999", "exists", "") && !m("s.0", "exists", ""));
        let row = json!({"7": {"8": 1}, "l": [[0, 1]]});
        let filter = f(
            r#"{"and":[{"field":"7.8","op":"eq","value":1},{"field":"l.0.1","op":"eq","value":1}]}"#,
        );
        assert!(filter.matches(b"", Some(&row)));
        for bad in ["", ".a", "a.", "a..b"] {
            let e = err(&format!(r#"{{"field":"{bad}","op":"exists"}}"#));
            assert!(e.contains("empty segment"), "{e}");
        }
    }

    #[test]
    fn logic_and_keys() {
        let row = json!({"n": 5});
        let t = r#"{"field":"n","op":"eq","value":5}"#;
        let fl = r#"{"field":"n","op":"eq","value":6}"#;
        let ev = |s: String| f(&s).matches(b"user/1", Some(&row));
        assert!(ev(format!(r#"{{"and":[{t},{t}]}}"#)) && !ev(format!(r#"{{"and":[{t},{fl}]}}"#)));
        assert!(ev(format!(r#"{{"or":[{fl},{t}]}}"#)) && !ev(format!(r#"{{"or":[{fl}]}}"#)));
        assert!(ev(format!(r#"{{"not":{fl}}}"#)) && !ev(format!(r#"{{"not":{t}}}"#)));
        assert!(ev(
            r#"{"not":{"field":"missing","op":"eq","value":1}}"#.into()
        ));
        assert!(ev(r#"{"key_prefix":"user/"}"#.into()) && !ev(r#"{"key_prefix":"users"}"#.into()));
        // Rows whose value is not JSON: only key prefixes can match.
        let both = f(&format!(r#"{{"and":[{{"key_prefix":"user/"}},{t}]}}"#));
        assert!(
            both.needs_value()
                && !both.matches(b"user/1", None)
                && both.matches(b"user/1", Some(&row))
        );
        let kp = f(r#"{"or":[{"key_prefix":"a"},{"not":{"key_prefix":"b"}}]}"#);
        assert!(!kp.needs_value() && kp.matches(b"c", None) && !kp.matches(b"b", None));
        assert!(!f(r#"{"field":"n","op":"exists"}"#).matches(b"", None));
        assert!(f(r#"{"not":{"field":"n","op":"exists"}}"#).matches(b"", None));
        let raw = Filter::key_prefix(vec![0xff, 0]);
        assert!(
            raw.matches(&[0xff, 0, 1], None) && !raw.matches(&[0xff], None) && !raw.needs_value()
        );
        assert!(Filter::key_prefix("").matches(b"", None));
    }

    #[test]
    fn limits() {
        let leaf = r#"{"field":"n","op":"exists"}"#;
        let nest = |nots: usize| format!("{}{leaf}{}", r#"{"not":"#.repeat(nots), "}".repeat(nots));
        f(&nest(MAX_FILTER_DEPTH - 1));
        assert_eq!(
            err(&nest(MAX_FILTER_DEPTH)),
            "filter: nested deeper than 8 levels"
        );
        let wide = |n: usize| format!(r#"{{"or":[{}]}}"#, vec![leaf; n].join(","));
        f(&wide(MAX_FILTER_NODES - 1));
        assert_eq!(err(&wide(MAX_FILTER_NODES)), "filter: more than 64 nodes");
        let list = |n: usize| {
            format!(
                r#"{{"field":"n","op":"not_in","value":[{}]}}"#,
                vec!["1"; n].join(",")
            )
        };
        f(&list(MAX_FILTER_LIST));
        assert!(err(&list(MAX_FILTER_LIST + 1)).contains("more than 1024"));
        let sized = |n: usize| {
            format!(
                r#"{{"key_prefix":"{}"}}"#,
                "x".repeat(n - r#"{"key_prefix":""}"#.len())
            )
        };
        assert_eq!(sized(MAX_FILTER_BYTES).len(), MAX_FILTER_BYTES);
        f(&sized(MAX_FILTER_BYTES));
        assert!(err(&sized(MAX_FILTER_BYTES + 1)).contains("limit of 32768 bytes"));
        // Deep garbage is stopped by serde_json or by the depth check, never the stack.
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(err(&deep).starts_with("filter: not valid JSON"));
        let mut v = json!({"field":"n","op":"exists"});
        for _ in 0..1000 {
            v = json!({ "not": v });
        }
        assert!(Filter::parse(&v).unwrap_err().contains("deeper"));
    }

    #[test]
    fn refusals() {
        // Each line: filter text, then " | ", then a part of the expected error.
        let cases = r#"{"field":"a.b","op":"like","value":"x"} | filter: unknown operator "like" at field "a.b"
            {"field":"a","op":"EQ","value":1} | unknown operator "EQ"
            {"field":"a","op":"eq","value":1,"x":1} | unknown key "x" in "field" node at the top level
            {"and":[{"key_prefix":"a","or":[]}]} | node at /and/0 mixes "or" and "key_prefix"
            {"not":{"key_prefix":"a","op":"eq"}} | unknown key "op" in "key_prefix" node at /not
            {"and":[{"field":"a","op":"exists"},{}]} | node at /and/1 has none of the keys
            {"and":[]} | "and" at the top level must not be empty
            {"or":[]} | "or" at the top level must not be empty
            {"and":{}} | "and" at the top level must be an array of nodes
            {"or":[1]} | node at /or/0 must be an object, not a number
            {"not":[]} | node at /not must be an object, not an array
            {"key_prefix":1} | "key_prefix" at the top level must be a string, not a number
            {"field":1,"op":"exists"} | "field" at the top level must be a string, not a number
            {"field":"a"} | field "a" has no "op"
            {"field":"a","op":1} | "op" at field "a" must be a string, not a number
            {"field":"a","op":"exists","value":true} | "exists" at field "a" takes no "value"
            {"field":"a","op":"is_null","value":null} | "is_null" at field "a" takes no "value"
            {"field":"a","op":"eq"} | needs a "value"
            {"field":"a","op":"in","value":1} | needs an array value, not a number
            {"field":"a","op":"not_in","value":{}} | needs an array value, not an object
            {"field":"a","op":"prefix","value":1} | needs a string value, not a number
            {"field":"a","op":"lt","value":true} | needs a number or string value, not a boolean
            {"field":"a","op":"gte","value":[1]} | needs a number or string value, not an array
            {"field":"a","op":"eq","value":1,"op":"ne"} | duplicate key "op"
            {"key_prefix":"a"} x | not valid JSON
             | not valid JSON
            [] | node at the top level must be an object, not an array
            null | must be an object, not null"#;
        for line in cases.lines() {
            let (text, want) = line.split_once(" | ").unwrap();
            let text = text.trim();
            let e = err(text);
            assert!(
                e.starts_with("filter: ") && e.contains(want),
                "{text}: {e:?} lacks {want:?}"
            );
        }
    }

    #[test]
    fn to_json_round_trips() {
        let texts = [
            r#"{"and":[{"field":"a.0.b","op":"eq","value":{"x":[1,2.5,null]}},{"not":{"key_prefix":"p/"}}]}"#,
            r#"{"or":[{"field":"n","op":"in","value":[1,"a",null]},{"field":"n","op":"not_in","value":[]}]}"#,
            r#"{"field":"s","op":"prefix","value":"he"}"#,
            r#"{"field":"s","op":"exists"}"#,
            r#"{"field":"s","op":"is_null"}"#,
            r#"{"and":[{"field":"n","op":"lt","value":1},{"field":"n","op":"lte","value":"b"},
                {"field":"n","op":"gt","value":-3},{"field":"n","op":"gte","value":1e3},
                {"field":"n","op":"ne","value":false}]}"#,
        ];
        for text in texts {
            let filter = f(text);
            let echoed = filter.to_json();
            assert_eq!(echoed, serde_json::from_str::<Value>(text).unwrap());
            assert_eq!(Filter::parse(&echoed).unwrap(), filter);
            assert_eq!(f(&echoed.to_string()), filter);
        }
        let kp = Filter::key_prefix("users/");
        assert_eq!(kp.to_json(), json!({"key_prefix": "users/"}));
        assert_eq!(Filter::parse(&kp.to_json()).unwrap(), kp);
    }
}
