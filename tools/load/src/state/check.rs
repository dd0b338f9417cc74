//! A subscriber's materialized state and the end-of-run check that it
//! equals a `Scan` of the stream with the subscriber's filter.
//!
//! Rows are kept compactly: the key's index, the offset that wrote the
//! row and a 64-bit hash of the value. Comparing offsets as well as values
//! catches a delivery that carried the right bytes from the wrong write.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use weir_net::proto::WireRow;

use super::data::key_of;

/// One materialized row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Offset of the record that wrote it.
    pub offset: u64,
    /// [`value_hash`] of its value.
    pub hash: u64,
}

/// A subscriber's copy of its rows, by key index.
#[derive(Debug, Default, Clone)]
pub struct Materialized {
    rows: HashMap<u32, Row, BuildHasherDefault<KeyHasher>>,
    /// Rows whose key is not one of the workload's (never expected).
    pub foreign: u64,
}

impl Materialized {
    /// Sets key `key` to a value written at `offset`.
    pub fn upsert(&mut self, key: u32, value: &[u8], offset: u64) {
        let row = Row {
            offset,
            hash: value_hash(value),
        };
        self.rows.insert(key, row);
    }

    /// Removes key `key`; whether it was present.
    pub fn delete(&mut self, key: u32) -> bool {
        self.rows.remove(&key).is_some()
    }

    /// Empties the state (a `Reset`).
    pub fn clear(&mut self) {
        self.rows.clear();
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Applies a snapshot or scan row (foreign keys are counted, not kept).
    pub fn apply_row(&mut self, row: &WireRow) {
        match key_of(&row.key) {
            Some(k) => self.upsert(k, &row.value, row.offset),
            None => self.foreign += 1,
        }
    }
}

/// The first way a materialized state differs from the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The key (its index), or `None` for a row with a foreign key.
    pub key: Option<u32>,
    /// What the subscriber holds for it.
    pub ours: Option<Row>,
    /// What the scan holds: offset and value text.
    pub scan: Option<(u64, String)>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(key) = self.key else {
            return write!(f, "a row with a key the workload never wrote");
        };
        write!(f, "key {}: subscriber ", super::data::key_name(key))?;
        match self.ours {
            Some(r) => write!(f, "holds the row of offset {}", r.offset)?,
            None => write!(f, "lacks it")?,
        }
        match &self.scan {
            Some((o, v)) => {
                let v: String = v.chars().take(60).collect();
                write!(f, ", scan has the row of offset {o} ({v})")
            }
            None => write!(f, ", scan lacks it"),
        }
    }
}

/// Compares `state` with the rows of a scan. Only scan rows written at or
/// after `since` are expected (0 with a snapshot; without one the
/// subscriber knows only the rows changed after it started).
pub fn compare(state: &Materialized, scan: &[WireRow], since: u64) -> Result<(), Difference> {
    if state.foreign > 0 {
        return Err(Difference {
            key: None,
            ours: None,
            scan: None,
        });
    }
    let mut expected = 0;
    for row in scan.iter().filter(|r| r.offset >= since) {
        let Some(key) = key_of(&row.key) else {
            return Err(Difference {
                key: None,
                ours: None,
                scan: None,
            });
        };
        expected += 1;
        let want = Row {
            offset: row.offset,
            hash: value_hash(&row.value),
        };
        let ours = state.rows.get(&key).copied();
        if ours != Some(want) {
            return Err(Difference {
                key: Some(key),
                ours,
                scan: Some((row.offset, String::from_utf8_lossy(&row.value).into_owned())),
            });
        }
    }
    if state.rows.len() != expected {
        // Something held that the scan does not have: find the first.
        let in_scan: std::collections::HashSet<u32> = scan
            .iter()
            .filter(|r| r.offset >= since)
            .filter_map(|r| key_of(&r.key))
            .collect();
        let mut extra: Vec<(&u32, &Row)> = state
            .rows
            .iter()
            .filter(|(k, _)| !in_scan.contains(k))
            .collect();
        extra.sort_unstable_by_key(|(k, _)| **k);
        if let Some((k, r)) = extra.first() {
            return Err(Difference {
                key: Some(**k),
                ours: Some(**r),
                scan: None,
            });
        }
    }
    Ok(())
}

/// A fast 64-bit hash of a value (equality check only, not adversarial).
pub fn value_hash(v: &[u8]) -> u64 {
    let mut h = KeyHasher::default();
    h.write(v);
    h.write_usize(v.len());
    h.finish()
}

/// A multiply-rotate hasher: keys are small integers and values are
/// trusted, so SipHash's cost buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // A final mix so that low bits depend on every input bit.
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_net::proto::WireKey;

    fn row(i: u32, value: &str, offset: u64) -> WireRow {
        WireRow {
            key: WireKey::Entity {
                entity: super::super::data::ENTITY.into(),
                key: super::super::data::key_name(i),
            },
            value: value.as_bytes().to_vec(),
            offset,
        }
    }

    fn state_of(rows: &[WireRow]) -> Materialized {
        let mut m = Materialized::default();
        rows.iter().for_each(|r| m.apply_row(r));
        m
    }

    #[test]
    fn equal_states_pass() {
        let scan = [row(1, r#"{"g":1}"#, 10), row(2, r#"{"g":1}"#, 11)];
        assert_eq!(compare(&state_of(&scan), &scan, 0), Ok(()));
    }

    #[test]
    fn a_wrong_value_is_flagged() {
        let scan = [row(1, r#"{"g":1,"s":5}"#, 10), row(2, r#"{"g":1}"#, 11)];
        let mut ours = state_of(&scan);
        // The subscriber missed the last write of key 1 and holds an older one.
        ours.upsert(1, br#"{"g":1,"s":4}"#, 10);
        let d = compare(&ours, &scan, 0).unwrap_err();
        assert_eq!(d.key, Some(1));
        assert!(d.to_string().contains("k000001"), "{d}");
    }

    #[test]
    fn a_stale_offset_is_flagged_even_with_the_same_value() {
        let scan = [row(1, r#"{"g":1}"#, 10)];
        let mut ours = Materialized::default();
        ours.upsert(1, br#"{"g":1}"#, 9);
        assert_eq!(compare(&ours, &scan, 0).unwrap_err().key, Some(1));
    }

    #[test]
    fn missing_and_extra_rows_are_flagged() {
        let scan = [row(1, "{}", 10), row(2, "{}", 11)];
        let mut ours = state_of(&scan);
        ours.delete(2);
        let d = compare(&ours, &scan, 0).unwrap_err();
        assert_eq!((d.key, d.ours), (Some(2), None));
        let mut ours = state_of(&scan);
        ours.upsert(3, b"{}", 12);
        let d = compare(&ours, &scan, 0).unwrap_err();
        assert_eq!((d.key, d.scan), (Some(3), None));
    }

    #[test]
    fn without_a_snapshot_only_later_rows_are_expected() {
        let scan = [row(1, "{}", 5), row(2, "{}", 11)];
        let ours = state_of(&scan[1..]);
        assert_eq!(compare(&ours, &scan, 10), Ok(()));
        assert!(compare(&ours, &scan, 0).is_err());
    }
}
