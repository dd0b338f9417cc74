//! The state changes of one stored batch, derived once and shared by every
//! filtered subscription that receives the batch. A filtered fan-out used to
//! parse each record once per subscription (1,000 subscriptions: 1,000
//! parses of every record, half the server's time); now the first
//! subscription to see a live batch derives its changes into the batch's
//! memo and the others read them: keys decoded, values as slices of the
//! stored bytes, and each value's JSON parsed at most once, the first time a
//! filter that reads values asks. Each distinct filter is evaluated once
//! per batch too: subscriptions with equal filters (their canonical JSON)
//! share one vector of results.
//!
//! Batches read back from storage (a subscription catching up) have no memo
//! slot; each reader derives its own, as it reads its own copy anyway.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use bytes::Bytes;
use serde_json::Value;

use super::filter::Filter;
use super::kv::StateKey;
use super::ops::{self, Op};
use super::StateMode;
use crate::batch::Batch;

/// A 128-bit digest of an encoded state key: what filtered subscriptions
/// remember of the rows they sent (16 bytes a row instead of the key).
pub(crate) type MemberId = u128;

/// The member id of an encoded state key.
pub(crate) fn member_id(encoded_key: &[u8]) -> MemberId {
    xxhash_rust::xxh3::xxh3_128(encoded_key)
}

/// The changes of a whole stored batch, in offset order.
pub(crate) struct Changes {
    mode: StateMode,
    entries: Vec<Entry>,
    /// Per distinct filter, whether each entry's row matches it.
    matched: Mutex<Vec<(FilterKey, Arc<[bool]>)>>,
}

/// A filter's identity for sharing its results: its canonical JSON, with a
/// digest to compare cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterKey {
    digest: u64,
    text: Arc<str>,
}

impl FilterKey {
    /// The key of `filter`.
    pub fn of(filter: &Filter) -> FilterKey {
        let text: Arc<str> = filter.to_json().to_string().into();
        FilterKey {
            digest: xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
            text,
        }
    }
}

/// One change, at an absolute offset.
pub(crate) struct Entry {
    pub offset: u64,
    pub kind: Kind,
}

/// What one record does to the state.
pub(crate) enum Kind {
    /// Sets a row.
    Put(Row),
    /// Removes a row.
    Delete { id: MemberId, key: StateKey },
    /// Clears the whole state.
    Reset,
}

/// A row a record sets.
pub(crate) struct Row {
    pub id: MemberId,
    pub key: StateKey,
    pub value: Bytes,
    json: OnceLock<Option<Value>>,
}

impl Row {
    /// Whether the row, with its new value, matches `filter`.
    pub fn matches(&self, filter: &Filter) -> bool {
        if !filter.needs_value() {
            return filter.matches(self.key.key_bytes(), None);
        }
        let json = self
            .json
            .get_or_init(|| serde_json::from_slice(&self.value).ok());
        filter.matches(self.key.key_bytes(), json.as_ref())
    }
}

impl Changes {
    /// The changes of `batch`'s stored records for a stream in `mode`,
    /// from the batch's memo when another subscription derived them already.
    pub fn of(batch: &Batch, mode: StateMode) -> Arc<Changes> {
        let shared = batch.memo(|| Changes::derive(&batch.whole(), mode));
        if shared.mode == mode {
            shared
        } else {
            // Only a subscription opened before a mode change sees this.
            Arc::new(Changes::derive(&batch.whole(), mode))
        }
    }

    /// The positions in [`Changes::entries`] of the records `batch` shows
    /// (it may be a slice of the stored batch these changes come from).
    pub fn range(&self, batch: &Batch) -> Range<usize> {
        let (from, to) = (batch.first_offset(), batch.next_offset());
        let start = self.entries.partition_point(|e| e.offset < from);
        let end = self.entries.partition_point(|e| e.offset < to);
        start..end
    }

    /// Every entry, in offset order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries of the records `batch` shows.
    #[cfg(test)]
    pub fn within<'a>(&'a self, batch: &Batch) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries[self.range(batch)].iter()
    }

    /// Whether each entry's row matches `filter` (false for deletes and
    /// resets), computed once per batch for all subscriptions whose
    /// filters have `key`.
    pub fn matched(&self, key: &FilterKey, filter: &Filter) -> Arc<[bool]> {
        let mut all = self.matched.lock();
        if let Some((_, m)) = all.iter().find(|(k, _)| k == key) {
            return Arc::clone(m);
        }
        let m: Arc<[bool]> = self
            .entries
            .iter()
            .map(|e| matches!(&e.kind, Kind::Put(row) if row.matches(filter)))
            .collect();
        all.push((key.clone(), Arc::clone(&m)));
        m
    }

    fn derive(whole: &Batch, mode: StateMode) -> Changes {
        let protocol = mode == StateMode::StateProtocol;
        let base = whole.first_offset();
        let mut entries = Vec::with_capacity(whole.len());
        for (i, r) in whole.iter().enumerate() {
            let payload = whole.payload_bytes(i).expect("index in range");
            let Some(op) = ops::lenient_op_shared(mode, i as u64, r.key, &payload, r.tombstone)
            else {
                continue;
            };
            let offset = base + i as u64;
            let kind = match op {
                Op::Reset { .. } => Kind::Reset,
                // A key that does not decode cannot have been sent to
                // anyone, so its changes are nobody's business.
                Op::Put { key, value, .. } => match StateKey::decode(&key, protocol) {
                    Ok(k) => Kind::Put(Row {
                        id: member_id(&key),
                        key: k,
                        value,
                        json: OnceLock::new(),
                    }),
                    Err(_) => continue,
                },
                Op::Delete { key, .. } => match StateKey::decode(&key, protocol) {
                    Ok(k) => Kind::Delete {
                        id: member_id(&key),
                        key: k,
                    },
                    Err(_) => continue,
                },
            };
            entries.push(Entry { offset, kind });
        }
        Changes {
            mode,
            entries,
            matched: Mutex::new(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn batch(base: u64, payloads: &[&str]) -> Batch {
        let recs: Vec<Record> = payloads
            .iter()
            .map(|p| Record::new(p.to_string()))
            .collect();
        Batch::from_encoded(base, Bytes::from(crate::batch::encode(&recs, 0))).with_memo()
    }

    const PUT_A: &str =
        r#"{"type":"t","key":"a","value":{"g":1},"headers":{"operation":"insert"}}"#;
    const PUT_B: &str =
        r#"{"type":"t","key":"b","value":{"g":2},"headers":{"operation":"update"}}"#;
    const DEL_A: &str = r#"{"type":"t","key":"a","headers":{"operation":"delete"}}"#;

    #[test]
    fn clones_share_one_derivation_and_slices_see_their_records() {
        let b = batch(10, &[PUT_A, "not json", PUT_B, DEL_A]);
        let first = Changes::of(&b, StateMode::StateProtocol);
        let again = Changes::of(&b.clone(), StateMode::StateProtocol);
        assert!(Arc::ptr_eq(&first, &again), "a clone derives nothing again");

        let offsets: Vec<u64> = first.within(&b).map(|e| e.offset).collect();
        assert_eq!(offsets, [10, 12, 13], "the invalid record changes nothing");
        let tail = b.skip_to(12).unwrap();
        let sliced = Changes::of(&tail, StateMode::StateProtocol);
        assert!(Arc::ptr_eq(&first, &sliced));
        let offsets: Vec<u64> = sliced.within(&tail).map(|e| e.offset).collect();
        assert_eq!(offsets, [12, 13]);
        assert!(matches!(
            &sliced.within(&tail).last().unwrap().kind,
            Kind::Delete { key: StateKey::Entity { key, .. }, .. } if key == "a"
        ));
    }

    #[test]
    fn rows_match_on_their_parsed_value_and_ids_follow_keys() {
        let b = batch(0, &[PUT_A, PUT_B, DEL_A]);
        let c = Changes::of(&b, StateMode::StateProtocol);
        let f = Filter::parse_bytes(br#"{"field":"g","op":"eq","value":1}"#).unwrap();
        let e: Vec<&Entry> = c.within(&b).collect();
        let (Kind::Put(a), Kind::Put(bb), Kind::Delete { id, .. }) =
            (&e[0].kind, &e[1].kind, &e[2].kind)
        else {
            panic!("put, put, delete");
        };
        assert!(a.matches(&f));
        assert!(!bb.matches(&f));
        assert_eq!(a.id, *id, "a delete names the row its put set");
        assert_ne!(a.id, bb.id);
    }

    #[test]
    fn equal_filters_share_one_evaluation() {
        let b = batch(0, &[PUT_A, PUT_B, DEL_A]);
        let c = Changes::of(&b, StateMode::StateProtocol);
        let one = Filter::parse_bytes(br#"{"field":"g","op":"eq","value":1}"#).unwrap();
        let same = Filter::parse_bytes(br#"{ "op":"eq", "value":1, "field":"g" }"#).unwrap();
        let other = Filter::parse_bytes(br#"{"field":"g","op":"eq","value":2}"#).unwrap();
        let m1 = c.matched(&FilterKey::of(&one), &one);
        let m2 = c.matched(&FilterKey::of(&same), &same);
        assert!(Arc::ptr_eq(&m1, &m2), "an equal filter reuses the results");
        assert_eq!(&m1[..], [true, false, false]);
        assert_eq!(
            &c.matched(&FilterKey::of(&other), &other)[..],
            [false, true, false]
        );
    }

    #[test]
    fn a_different_mode_derives_its_own() {
        let b = batch(0, &[PUT_A]);
        let protocol = Changes::of(&b, StateMode::StateProtocol);
        let keyed = Changes::of(&b, StateMode::Keyed);
        assert_eq!(protocol.within(&b).count(), 1);
        assert_eq!(
            keyed.within(&b).count(),
            0,
            "keyed: records without a key change nothing"
        );
    }
}
