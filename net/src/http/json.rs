//! JSON mode: an `application/json` stream stores one record per message.
//! An append body that is a JSON array is flattened exactly one level (each
//! element is a message); any other JSON value is one message. Messages are
//! stored as the exact bytes the client sent (validated, never re-encoded),
//! and reads return them as one JSON array.

use bytes::{Bytes, BytesMut};
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use weir_storage::Record;

/// Whether a content type selects JSON mode: the engine's rule, so every door agrees.
pub use weir_storage::is_json;

/// Splits a JSON body into messages. `Err` if it is not valid JSON. An empty
/// array yields no messages (the caller decides whether that is allowed).
#[cfg(test)]
pub fn messages(body: &Bytes) -> Result<Vec<Bytes>, String> {
    records(body, None, 0).map(|r| r.into_iter().map(|r| r.payload).collect())
}

/// Splits a JSON body into one record per message, each with `key`, straight
/// into a vector of `capacity` (the message count, when the caller knows
/// it): an array of millions of tiny elements builds no second list.
pub fn records(body: &Bytes, key: Option<&Bytes>, capacity: usize) -> Result<Vec<Record>, String> {
    let record = |part: &RawValue| Record {
        key: key.cloned(),
        payload: slice_of(body, part.get()),
        tombstone: false,
    };
    if !is_array(body) {
        let v: &RawValue =
            serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        return Ok(vec![record(v)]);
    }
    struct Split<F> {
        record: F,
        capacity: usize,
    }
    impl<'de, F: Fn(&RawValue) -> Record> Visitor<'de> for Split<F> {
        type Value = Vec<Record>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Record>, A::Error> {
            let mut out = Vec::with_capacity(self.capacity);
            while let Some(part) = seq.next_element::<&RawValue>()? {
                out.push((self.record)(part));
            }
            Ok(out)
        }
    }
    let invalid = |e: serde_json::Error| format!("invalid JSON: {e}");
    let mut de = serde_json::Deserializer::from_slice(body);
    let out = de
        .deserialize_seq(Split { record, capacity })
        .map_err(invalid)?;
    de.end().map_err(invalid)?;
    Ok(out)
}

/// How many messages `records` will split a body into, without allocating
/// per element, so the records' memory can be reserved before they are
/// built. `None` if the body is not valid JSON (the split then says why).
pub fn message_count(body: &[u8]) -> Option<usize> {
    if !is_array(body) {
        return Some(1);
    }
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let n = de.deserialize_seq(Count).ok()?;
    de.end().ok()?;
    Some(n)
}

/// Whether a body is a JSON array (flattened one level) rather than one message.
fn is_array(body: &[u8]) -> bool {
    body.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[')
}

/// The sub-slice of `body` that `part` borrows from, without copying.
fn slice_of(body: &Bytes, part: &str) -> Bytes {
    body.slice_ref(part.as_bytes())
}

/// Renders stored messages as one JSON array: `[m1,m2,...]`.
pub fn array<'a>(messages: impl Iterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.extend_from_slice(b"[");
    for (i, m) in messages.enumerate() {
        if i > 0 {
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(m);
    }
    out.extend_from_slice(b"]");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(s: &str) -> Result<Vec<String>, String> {
        messages(&Bytes::from(s.to_string())).map(|v| {
            v.iter()
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect()
        })
    }

    #[test]
    fn flattens_one_level() {
        assert_eq!(msgs(r#"{"a":1}"#).unwrap(), vec![r#"{"a":1}"#]);
        assert_eq!(
            msgs(r#"[{"a":1}, {"b":2}]"#).unwrap(),
            vec![r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert_eq!(msgs("[[1,2],[3,4]]").unwrap(), vec!["[1,2]", "[3,4]"]);
        assert_eq!(msgs("[[[1,2,3]]]").unwrap(), vec!["[[1,2,3]]"]);
        assert_eq!(msgs(" 42 ").unwrap(), vec!["42"]);
        assert!(msgs("[]").unwrap().is_empty());
        assert!(msgs("{ invalid json }").is_err());
        assert!(msgs("").is_err());
        assert!(msgs("[1,").is_err());
        assert!(msgs("1 2").is_err());
    }

    #[test]
    fn renders_arrays() {
        let v: Vec<&[u8]> = vec![b"1", b"{}"];
        assert_eq!(&array(v.into_iter())[..], b"[1,{}]");
        assert_eq!(&array(std::iter::empty())[..], b"[]");
    }

    #[test]
    fn counts_what_the_split_yields() {
        assert_eq!(message_count(b" [1, [2,3], {\"a\":[4]}, \"]\"] "), Some(4));
        assert_eq!(message_count(b"[]"), Some(0));
        assert_eq!(message_count(br#"{"a":1}"#), Some(1));
        assert_eq!(message_count(b"[1,"), None);
        assert_eq!(message_count(b"[1] 2"), None);
    }
}
