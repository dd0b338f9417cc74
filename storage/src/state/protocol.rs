//! Append-time validation of Durable Streams State Protocol messages.
//!
//! The rules come from touches.md §1.2 and derived-streams.md §6. Wherever
//! they leave a detail open, Prisma Streams 0.1.11 (`@prisma/streams-server`,
//! run under Bun 1.4.5) was probed over HTTP and its answer was taken, since
//! clients may match on its 400 messages:
//! - the order of the checks, hence which message wins when several apply;
//! - "non-empty" means non-blank under JavaScript's `String.prototype.trim`;
//! - `"value": null` counts as carrying a value, also for insert and update;
//! - duplicate keys: the last value counts, but the first position decides
//!   which unknown key is reported; integer-like keys ("0", "42") are
//!   reported before all others, smallest first, as `Object.keys` lists them;
//! - timestamps pass the regex, then the checks of `Date.parse`: day up to 31
//!   in every month, `24:00:00` with a zero fraction, zone hours up to 23;
//! - offsets: `-1` or 26 Crockford base-32 characters (any case, the aliases
//!   O/I/L, never U). Weir's own `16 digits _ 16 digits` form is accepted too;
//!   `now` is refused, as by the reference, because it names no position.
//!
//! A JSON array body is split by the caller; the reference then reports the
//! first failing element with the same message as alone, without its index.
//!
//! Where Rust cannot follow JavaScript exactly: a lone surrogate escape is
//! accepted, as there, but decodes to U+FFFD (what JavaScript's UTF-8 encoder
//! writes too); bytes that are not UTF-8 inside `value` make "invalid JSON".
//! `Message` compares values by their JSON text, as `RawValue` has no `==`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One validated State Protocol message.
#[derive(Debug, Clone)]
pub(crate) enum Message<'a> {
    /// insert / update / delete of (entity, key). `value` is the raw JSON text of `value` (None for delete or when absent).
    Change {
        entity: Cow<'a, str>,
        key: Cow<'a, str>,
        op: Op,
        value: Option<&'a RawValue>,
    },
    /// A control message.
    Control(Control),
}

// `RawValue` has no `PartialEq`, so values compare by their JSON text.
impl PartialEq for Message<'_> {
    fn eq(&self, other: &Self) -> bool {
        type Parts<'s> = Result<(&'s str, &'s str, Op, Option<&'s str>), Control>;
        fn parts<'s>(m: &'s Message<'_>) -> Parts<'s> {
            match m {
                Message::Change {
                    entity,
                    key,
                    op,
                    value,
                } => Ok((entity, key, *op, value.map(RawValue::get))),
                Message::Control(c) => Err(*c),
            }
        }
        parts(self) == parts(other)
    }
}

/// The operation of a change message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Insert,
    Update,
    Delete,
}

/// The kind of a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    SnapshotStart,
    SnapshotEnd,
    Reset,
}

const INVALID_JSON: &str = "invalid JSON";
const NOT_OBJECT: &str = "state-protocol records must be JSON objects";
const HEADERS_NOT_OBJECT: &str = "state-protocol record.headers must be an object";
const MIXED: &str = "state-protocol record.headers cannot mix control and operation";
const NEITHER: &str = "state-protocol record.headers must contain operation or control";
const BAD_TYPE: &str = "state-protocol record.type must be a non-empty string";
const BAD_KEY: &str = "state-protocol record.key must be a non-empty string";
const BAD_OPERATION: &str =
    "state-protocol record.headers.operation must be insert, update, or delete";
const BAD_TXID: &str = "state-protocol record.headers.txid must be a non-empty string";
const BAD_TIMESTAMP: &str =
    "state-protocol record.headers.timestamp must be a valid RFC 3339 timestamp";
const BAD_CONTROL: &str =
    "state-protocol record.headers.control must be snapshot-start, snapshot-end, or reset";
const BAD_OFFSET: &str =
    "state-protocol record.headers.offset must be a valid stream offset string";

/// Parses one record's payload; the error is the exact client-facing message.
pub(crate) fn parse(payload: &[u8]) -> Result<Message<'_>, String> {
    // Checked by hand rather than through `deserialize_any`, which would fail
    // on a lone surrogate in a top-level string that JavaScript accepts.
    if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let valid = serde_json::from_slice::<IgnoredAny>(payload).is_ok();
        return Err(if valid { NOT_OBJECT } else { INVALID_JSON }.to_owned());
    }
    let invalid = |_| INVALID_JSON.to_owned();
    let mut de = serde_json::Deserializer::from_slice(payload);
    let record = de
        .deserialize_map(ObjVisitor(&RECORD_KEYS))
        .map_err(invalid)?;
    de.end().map_err(invalid)?;
    let headers = match record.slots[HEADERS] {
        // Only the last `headers` counts; re-reading it (it is small) keeps a
        // non-object `headers` a validation error rather than a parse error.
        Some((_, raw)) if raw.get().starts_with('{') => {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            de.deserialize_map(ObjVisitor(&HEADER_KEYS))
                .map_err(invalid)?
        }
        _ => return Err(HEADERS_NOT_OBJECT.to_owned()),
    };
    validate(&record, &headers)
}

const RECORD_KEYS: [&str; 5] = ["type", "key", "value", "old_value", "headers"];
const TYPE: usize = 0;
const KEY: usize = 1;
const VALUE: usize = 2;
const OLD_VALUE: usize = 3;
const HEADERS: usize = 4;
const HEADER_KEYS: [&str; 5] = ["operation", "txid", "timestamp", "control", "offset"];
const OPERATION: usize = 0;
const TXID: usize = 1;
const TIMESTAMP: usize = 2;
const CONTROL: usize = 3;
const OFFSET: usize = 4;

/// A value and the position of the first entry with its key: JavaScript
/// objects keep the last value but the first insertion order.
type Slot<'a> = Option<(usize, &'a RawValue)>;

/// One JSON object: its known keys by index in the key list, and the other
/// keys only as far as needed to name the one `Object.keys` lists first.
struct Obj<'a> {
    slots: [Slot<'a>; 5],
    first_other: Option<(usize, Cow<'a, str>)>,
    least_index: Option<(u32, Cow<'a, str>)>,
}

impl Obj<'_> {
    /// The first key not in `allowed`, known or not.
    fn first_unsupported(&self, names: &[&'static str; 5], allowed: &[usize]) -> Option<&str> {
        if let Some((_, name)) = &self.least_index {
            return Some(name);
        }
        let known = (0..5).filter(|i| !allowed.contains(i));
        let known = known.filter_map(|i| Some((self.slots[i]?.0, names[i])));
        let other = self
            .first_other
            .as_ref()
            .map(|(pos, name)| (*pos, name.as_ref()));
        let first = other.into_iter().chain(known).min_by_key(|&(pos, _)| pos);
        first.map(|(_, name)| name)
    }

    fn text(&self, i: usize) -> Option<Cow<'_, str>> {
        text(self.slots[i]?.1)
    }
}

/// The value of an array-index key, which JavaScript orders before the rest.
fn array_index(name: &str) -> Option<u32> {
    let canonical = name == "0" || (!name.is_empty() && !name.starts_with('0'));
    if !canonical || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse::<u32>().ok().filter(|&i| i != u32::MAX)
}

struct ObjVisitor(&'static [&'static str; 5]);

impl<'de> Visitor<'de> for ObjVisitor {
    type Value = Obj<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut obj = Obj {
            slots: [None; 5],
            first_other: None,
            least_index: None,
        };
        let mut pos = 0;
        while let Some(Name(name)) = map.next_key()? {
            if let Some(i) = self.0.iter().position(|k| *k == name) {
                let first = obj.slots[i].map_or(pos, |s| s.0);
                obj.slots[i] = Some((first, map.next_value()?));
            } else {
                map.next_value::<IgnoredAny>()?;
                if let Some(i) = array_index(&name) {
                    if obj.least_index.as_ref().is_none_or(|(j, _)| i < *j) {
                        obj.least_index = Some((i, name));
                    }
                } else if obj.first_other.is_none() {
                    obj.first_other = Some((pos, name));
                }
            }
            pos += 1;
        }
        Ok(obj)
    }
}

/// An object key, decoded the way JavaScript sees it (see [`from_wtf8`]).
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Bytes, not str: serde_json then keeps lone surrogates instead of failing.
        d.deserialize_bytes(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(Name(String::from_utf8_lossy(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(Name(Cow::Owned(from_wtf8(v.to_vec()))))
    }
}

/// Turns serde_json's WTF-8 (lone surrogates kept as 3-byte sequences) into
/// UTF-8 with one U+FFFD per lone surrogate, as JavaScript's UTF-8 encoder
/// does; so keys hash like the reference's and never fail to parse.
fn from_wtf8(mut bytes: Vec<u8>) -> String {
    let mut i = 0;
    while i + 2 < bytes.len() {
        if bytes[i] == 0xED && (0xA0..=0xBF).contains(&bytes[i + 1]) {
            bytes[i..i + 3].copy_from_slice("\u{FFFD}".as_bytes());
            i += 3;
        } else {
            i += 1;
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The decoded text of a JSON string value; `None` for any other JSON value.
fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let json = raw.get();
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    Name::deserialize(&mut de).ok().map(|n| n.0)
}

fn unsupported(path: &str, name: &str) -> String {
    format!("state-protocol {path}.{name} is not supported")
}

// Same order of checks as the reference, so the same message wins.
fn validate<'a>(r: &Obj<'a>, h: &Obj<'a>) -> Result<Message<'a>, String> {
    let control = match (h.slots[CONTROL].is_some(), h.slots[OPERATION].is_some()) {
        (true, true) => return Err(MIXED.to_owned()),
        (false, false) => return Err(NEITHER.to_owned()),
        (control, _) => control,
    };
    let (allowed, header_allowed): (&[usize], &[usize]) = match control {
        true => (&[HEADERS], &[CONTROL, OFFSET]),
        false => (
            &[TYPE, KEY, VALUE, OLD_VALUE, HEADERS],
            &[OPERATION, TXID, TIMESTAMP],
        ),
    };
    if let Some(name) = r.first_unsupported(&RECORD_KEYS, allowed) {
        return Err(unsupported("record", name));
    }
    if let Some(name) = h.first_unsupported(&HEADER_KEYS, header_allowed) {
        return Err(unsupported("record.headers", name));
    }
    if control {
        let control = match h.text(CONTROL).as_deref() {
            Some("snapshot-start") => Control::SnapshotStart,
            Some("snapshot-end") => Control::SnapshotEnd,
            Some("reset") => Control::Reset,
            _ => return Err(BAD_CONTROL.to_owned()),
        };
        if h.slots[OFFSET].is_some() && !h.text(OFFSET).is_some_and(|s| is_offset(&s)) {
            return Err(BAD_OFFSET.to_owned());
        }
        return Ok(Message::Control(control));
    }
    let non_blank = |obj: &Obj<'a>, i: usize| {
        obj.slots[i]
            .and_then(|s| text(s.1))
            .filter(|s| !is_blank(s))
    };
    let entity = non_blank(r, TYPE).ok_or(BAD_TYPE)?;
    let key = non_blank(r, KEY).ok_or(BAD_KEY)?;
    let (op, name) = match h.text(OPERATION).as_deref() {
        Some("insert") => (Op::Insert, "insert"),
        Some("update") => (Op::Update, "update"),
        Some("delete") => (Op::Delete, "delete"),
        _ => return Err(BAD_OPERATION.to_owned()),
    };
    let value = r.slots[VALUE].map(|s| s.1);
    if op != Op::Delete && value.is_none() {
        return Err(format!("state-protocol {name} records must include value"));
    }
    if h.slots[TXID].is_some() && non_blank(h, TXID).is_none() {
        return Err(BAD_TXID.to_owned());
    }
    if h.slots[TIMESTAMP].is_some() && !h.text(TIMESTAMP).is_some_and(|s| is_timestamp(&s)) {
        return Err(BAD_TIMESTAMP.to_owned());
    }
    let value = value.filter(|_| op != Op::Delete);
    Ok(Message::Change {
        entity,
        key,
        op,
        value,
    })
}

/// Whether `String.prototype.trim` would leave nothing: Rust's White_Space
/// set differs from JavaScript's only by U+0085 (not JS) and U+FEFF (JS).
fn is_blank(s: &str) -> bool {
    s.chars()
        .all(|c| (c.is_whitespace() && c != '\u{85}') || c == '\u{FEFF}')
}

/// The reference's regex `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$`
/// followed by the field ranges its `Date.parse` enforces.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(i, c)| b.get(i) == Some(&c)) || num(0, 4).is_none() {
        return false;
    }
    let (Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2))
    else {
        return false;
    };
    let mut rest = &b[19..];
    let mut zero_fraction = true;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let n = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        zero_fraction = after_dot[..n].iter().all(|&c| c == b'0');
        rest = &after_dot[n..];
    }
    let zone_ok = match rest {
        b"Z" => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
            };
            matches!((two(*h1, *h2), two(*m1, *m2)), (Some(h), Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    };
    let end_of_day = hour == 24 && minute == 0 && second == 0 && zero_fraction;
    zone_ok
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && minute <= 59
        && second <= 59
        && (hour <= 23 || end_of_day)
}

/// A stream offset either server writes: `-1`, the reference's 26 Crockford
/// base-32 characters, or Weir's 33-character decimal form.
fn is_offset(s: &str) -> bool {
    let b = s.as_bytes();
    let crockford = |c: &u8| c.is_ascii_alphanumeric() && !matches!(c, b'u' | b'U');
    let weir =
        b.len() == 33 && b[16] == b'_' && b[..16].iter().chain(&b[17..]).all(u8::is_ascii_digit);
    s == "-1" || (b.len() == 26 && b.iter().all(crockford)) || weir
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a table of `payload => expected message` lines; `ok` means accepted.
    fn check(table: &str) {
        for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (payload, want) = line.rsplit_once(" => ").expect(line);
            match parse(payload.as_bytes()) {
                Ok(_) => assert_eq!(want, "ok", "{payload}"),
                Err(got) => assert_eq!(got, want, "{payload}"),
            }
        }
    }

    fn change(payload: &str) -> (String, String, Op, Option<String>) {
        match parse(payload.as_bytes()) {
            Ok(Message::Change {
                entity,
                key,
                op,
                value,
            }) => (
                entity.into(),
                key.into(),
                op,
                value.map(|v| v.get().to_owned()),
            ),
            other => panic!("{payload}: {other:?}"),
        }
    }

    #[test]
    fn valid_changes() {
        let c = change(
            r#"{"type":"t","key":"k","value":{"a":[1, 2]},"headers":{"operation":"insert"}}"#,
        );
        assert_eq!(
            c,
            (
                "t".into(),
                "k".into(),
                Op::Insert,
                Some(r#"{"a":[1, 2]}"#.into())
            )
        );
        for v in ["null", "0", "-1.5e3", r#""s""#, "[]", "true", "{}"] {
            for op in ["insert", "update"] {
                let p = format!(
                    r#"{{"type":"t","key":"k","value":{v},"headers":{{"operation":"{op}"}}}}"#
                );
                assert_eq!(change(&p).3.as_deref(), Some(v), "{p}");
            }
        }
        let p = r#"{"headers":{"txid":"x","timestamp":"2024-01-01T00:00:00Z","operation":"update"},
            "old_value":1,"value":2,"key":"k","type":"t"}"#;
        assert_eq!(
            change(p),
            ("t".into(), "k".into(), Op::Update, Some("2".into()))
        );
        // Deletes never carry a value, even when the record has one.
        let p =
            r#"{"type":"t","key":"k","value":1,"old_value":{},"headers":{"operation":"delete"}}"#;
        assert_eq!(change(p), ("t".into(), "k".into(), Op::Delete, None));
        // Blanks around the text are kept; the last duplicate wins.
        let p = r#" {"type":" t ","key":"","key":"k\u0000","headers":{"operation":"delete"}} "#;
        assert_eq!(change(p).0, " t ");
        assert_eq!(change(p).1, "k\0");
    }

    #[test]
    fn escapes_are_decoded() {
        let p = r#"{"t\u0079pe":"a\"b\\c\/\u00e9\ud83d\ude00","key":"line\n","headers":{"\u006fperation":"del\u0065te"}}"#;
        let (entity, key, op, _) = change(p);
        assert_eq!(
            (entity.as_str(), key.as_str(), op),
            ("a\"b\\c/é😀", "line\n", Op::Delete)
        );
        // Lone surrogates pass, as in JavaScript, and become U+FFFD.
        let p = r#"{"type":"\ud800x\udc00","key":"k","headers":{"operation":"delete"}}"#;
        assert_eq!(change(p).0, "\u{FFFD}x\u{FFFD}");
        let p = r#"{"\ud800":1,"headers":{"control":"reset"}}"#;
        assert_eq!(
            parse(p.as_bytes()).unwrap_err(),
            "state-protocol record.\u{FFFD} is not supported"
        );
        let p = r#"{"type":"t","key":"k","value":"\udc00","headers":{"operation":"insert"}}"#;
        assert_eq!(change(p).3.as_deref(), Some(r#""\udc00""#));
        // Unescaped text is borrowed from the payload.
        let p = br#"{"type":"t","key":"k","headers":{"operation":"delete"}}"#;
        let Ok(Message::Change { entity, key, .. }) = parse(p) else {
            panic!()
        };
        assert!(matches!(
            (entity, key),
            (Cow::Borrowed("t"), Cow::Borrowed("k"))
        ));
    }

    #[test]
    fn valid_controls() {
        let reset = Ok(Message::Control(Control::Reset));
        assert_eq!(
            parse(br#"{"headers":{"control":"snapshot-start"}}"#),
            Ok(Message::Control(Control::SnapshotStart))
        );
        assert_eq!(
            parse(br#"{"headers":{"control":"snapshot-end"}}"#),
            Ok(Message::Control(Control::SnapshotEnd))
        );
        assert_eq!(parse(br#"{"headers":{"control":"re\u0073et"}}"#), reset);
        for offset in [
            "-1",
            "00000000000000000000000000",
            "zzzzzzzzzzzzzzzzzzzzzzzzzz",
            "OILoil00000000000000000000",
            "0000000000000000_0000000000000042",
        ] {
            let p = format!(r#"{{"headers":{{"offset":"{offset}","control":"reset"}}}}"#);
            assert_eq!(parse(p.as_bytes()), reset, "{offset}");
        }
    }

    // Every line below was answered the same way by the reference server.
    #[test]
    fn rejected_with_the_reference_messages() {
        check(
            r#"
            1 => state-protocol records must be JSON objects
            "\ud800" => state-protocol records must be JSON objects
            [{"headers":{"control":"reset"}}] => state-protocol records must be JSON objects
            null => state-protocol records must be JSON objects
            {} => state-protocol record.headers must be an object
            {"type":"t"} => state-protocol record.headers must be an object
            {"headers":null} => state-protocol record.headers must be an object
            {"headers":[]} => state-protocol record.headers must be an object
            {"headers":"\ud800"} => state-protocol record.headers must be an object
            {"headers":{"control":"reset"},"headers":1} => state-protocol record.headers must be an object
            {"headers":{}} => state-protocol record.headers must contain operation or control
            {"headers":{"x":1}} => state-protocol record.headers must contain operation or control
            {"headers":{"operation":"delete","control":"reset"}} => state-protocol record.headers cannot mix control and operation
            {"headers":{"control":null,"operation":null},"x":1} => state-protocol record.headers cannot mix control and operation
            {"key":"k","headers":{"operation":"delete"}} => state-protocol record.type must be a non-empty string
            {"type":"","key":"k","headers":{"operation":"delete"}} => state-protocol record.type must be a non-empty string
            {"type":"\t\n\r\u000b\u000c \u00a0\u2028\u3000\ufeff","key":"k","headers":{"operation":"delete"}} => state-protocol record.type must be a non-empty string
            {"type":1,"key":"k","headers":{"operation":"delete"}} => state-protocol record.type must be a non-empty string
            {"type":"t","type":"","key":"k","headers":{"operation":"delete"}} => state-protocol record.type must be a non-empty string
            {"type":"","type":"t","key":"k","headers":{"operation":"delete"}} => ok
            {"type":"\u0085","key":"k","headers":{"operation":"delete"}} => ok
            {"type":"t","key":" ","headers":{"operation":"delete"}} => state-protocol record.key must be a non-empty string
            {"type":"t","key":5,"headers":{"operation":"delete"}} => state-protocol record.key must be a non-empty string
            {"type":"t","key":"k","headers":{"operation":"upsert"}} => state-protocol record.headers.operation must be insert, update, or delete
            {"type":"t","key":"k","headers":{"operation":null,"txid":""}} => state-protocol record.headers.operation must be insert, update, or delete
            {"type":"t","key":"k","old_value":1,"headers":{"operation":"insert"}} => state-protocol insert records must include value
            {"type":"t","key":"k","headers":{"operation":"update","txid":""}} => state-protocol update records must include value
            {"type":"t","key":"k","headers":{"operation":"delete","txid":""}} => state-protocol record.headers.txid must be a non-empty string
            {"type":"t","key":"k","headers":{"operation":"delete","txid":" "}} => state-protocol record.headers.txid must be a non-empty string
            {"type":"t","key":"k","headers":{"operation":"delete","txid":1}} => state-protocol record.headers.txid must be a non-empty string
            {"type":"t","key":"k","headers":{"operation":"delete","txid":null}} => state-protocol record.headers.txid must be a non-empty string
            {"type":"t","key":"k","headers":{"operation":"delete","timestamp":1}} => state-protocol record.headers.timestamp must be a valid RFC 3339 timestamp
            {"headers":{"control":"up-to-date"}} => state-protocol record.headers.control must be snapshot-start, snapshot-end, or reset
            {"headers":{"control":null}} => state-protocol record.headers.control must be snapshot-start, snapshot-end, or reset
            {"headers":{"control":"reset","control":"bad"}} => state-protocol record.headers.control must be snapshot-start, snapshot-end, or reset
            {"headers":{"control":"bad","control":"reset"}} => ok
            {"headers":{"control":"reset","offset":"now"}} => state-protocol record.headers.offset must be a valid stream offset string
            {"headers":{"control":"reset","offset":""}} => state-protocol record.headers.offset must be a valid stream offset string
            {"headers":{"control":"reset","offset":5}} => state-protocol record.headers.offset must be a valid stream offset string
            {"headers":{"control":"reset","offset":null}} => state-protocol record.headers.offset must be a valid stream offset string
            {"headers":{"control":"reset","offset":"-1 "}} => state-protocol record.headers.offset must be a valid stream offset string
            {"headers":{"control":"reset","offset":"OILoil0000000000000000000U"}} => state-protocol record.headers.offset must be a valid stream offset string
            {"headers":{"control":"reset","offset":"0000000000000000-0000000000000042"}} => state-protocol record.headers.offset must be a valid stream offset string
            {"type":"t","key":"k","headers":{"operation":"delete"}}x => invalid JSON
            not json => invalid JSON
        "#,
        );
    }

    #[test]
    fn unknown_keys_in_object_keys_order() {
        check(
            r#"
            {"type":"t","key":"k","headers":{"operation":"delete"},"extra":1} => state-protocol record.extra is not supported
            {"extra":1,"type":"","key":"k","headers":{"operation":"insert"}} => state-protocol record.extra is not supported
            {"__proto__":1,"type":"t","key":"k","headers":{"operation":"delete"}} => state-protocol record.__proto__ is not supported
            {"type":"t","key":"k","headers":{"operation":"delete","lsn":1}} => state-protocol record.headers.lsn is not supported
            {"headers":{"operation":"delete","offset":"x","txid":1}} => state-protocol record.headers.offset is not supported
            {"headers":{"control":"reset"},"type":"t","aa":1} => state-protocol record.type is not supported
            {"headers":{"control":"reset"},"aa":1,"type":"t","aa":2} => state-protocol record.aa is not supported
            {"old_value":1,"headers":{"control":"reset"},"aa":1} => state-protocol record.old_value is not supported
            {"aa":1,"headers":{"control":"reset"},"zz":1,"aa":2} => state-protocol record.aa is not supported
            {"headers":{"control":"reset","timestamp":"x","txid":1}} => state-protocol record.headers.timestamp is not supported
            {"headers":{"control":"bad","x":1}} => state-protocol record.headers.x is not supported
            {"a":1,"headers":{"control":"reset","b":2}} => state-protocol record.a is not supported
            {"zz":1,"5":1,"3":1,"headers":{"control":"reset"}} => state-protocol record.3 is not supported
            {"zz":1,"05":1,"-1":1,"4294967295":1,"headers":{"control":"reset"}} => state-protocol record.zz is not supported
            {"zz":1,"4294967294":1,"headers":{"control":"reset"}} => state-protocol record.4294967294 is not supported
            {"type":"t","key":"k","headers":{"x":2,"operation":"delete","0":1}} => state-protocol record.headers.0 is not supported
            {"type":"t","key":"k","headers":{"operation":"delete"},"headers":{"control":"reset"}} => state-protocol record.type is not supported
        "#,
        );
    }

    #[test]
    fn timestamps() {
        let ok = "2024-01-01T00:00:00Z 2024-01-01T00:00:00.5+01:00 2024-01-01T00:00:00.123456789+05:30
            2024-01-01T00:00:00-00:00 2024-01-01T00:00:00+23:59 2024-01-01T00:00:00-23:59 0000-01-01T00:00:00Z
            9999-12-31T23:59:59.999999999-23:59 2024-02-30T00:00:00Z 2024-04-31T00:00:00Z 2024-01-01T24:00:00Z
            2024-01-01T24:00:00.000000000+01:00 1969-12-31T23:59:59Z";
        let bad = r"2024-01-01T00:00:00.1234567890Z 2024-01-01T00:00:00z 2024-01-01t00:00:00Z 2024-01-01_00:00:00Z
            2024-01-01T00:00:00 2024-13-01T00:00:00Z 2024-00-01T00:00:00Z 2024-01-00T00:00:00Z 2024-01-32T00:00:00Z
            2024-01-01T24:00:01Z 2024-01-01T24:00:00.000000001Z 2024-01-01T25:00:00Z 2024-01-01T23:60:00Z
            2024-01-01T23:59:60Z 2024-01-01T00:00:00+24:00 2024-01-01T00:00:00+00:60 2024-01-01T00:00:00.Z
            ２024-01-01T00:00:00Z 2024-01-01T00:00:00Z\n 2024-1-01T00:00:00Z +02024-01-01T00:00:00Z
            2024-01-01T00:00:00+0100 2024-01-01T00:00:00+01:00Z x";
        let mut table = String::new();
        for (list, want) in [(ok, "ok"), (bad, BAD_TIMESTAMP)] {
            for t in list.split_whitespace() {
                let p = format!(
                    r#"{{"type":"t","key":"k","headers":{{"operation":"delete","timestamp":"{t}"}}}}"#
                );
                table += &format!("{p} => {want}\n");
            }
        }
        check(&table);
    }

    #[test]
    fn deep_values_and_hostile_bytes() {
        let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        let p = format!(
            r#"{{"type":"t","key":"k","value":{deep},"headers":{{"operation":"insert"}}}}"#
        );
        assert_eq!(change(&p).3, Some(deep));
        let hostile: [&[u8]; 6] = [
            b"{\"type\":\"\xff\",\"key\":\"k\",\"headers\":{\"operation\":\"delete\"}}",
            b"\xff",
            b"",
            b"{\"a\":\"\\u12\"}",
            b"{\"headers\":{\"control\":\"reset\"",
            b"{\"\\ud800\\u",
        ];
        for p in hostile {
            let _ = parse(p);
        }
        assert_eq!(parse(b""), Err(INVALID_JSON.to_owned()));
    }
}
