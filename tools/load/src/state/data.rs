//! The workload's data: key names, fixed-size JSON values carrying their
//! group, the records that write them in either state mode, and the
//! deterministic sequence of changes (the same shape as
//! `bench/compare/state`: key `i` starts in group `i % groups`; a change
//! rewrites the next key of a seeded permutation, moving it to another
//! group with probability `move_prob`).

use weir_net::proto::WireKey;
use weir_storage::Record;

use super::StateModeArg;

/// The State Protocol `type` of every row.
pub(crate) const ENTITY: &str = "kv";

/// The name of key `i`: `k000042`.
pub(crate) fn key_name(i: u32) -> String {
    format!("k{i:06}")
}

/// The index of a key named by [`key_name`].
pub(crate) fn parse_key(name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(b"k")?;
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0')),
    )
}

/// The index of a row's key, when it is one of the workload's.
pub(crate) fn key_of(key: &WireKey) -> Option<u32> {
    match key {
        WireKey::Entity { entity, key } if entity == ENTITY => parse_key(key.as_bytes()),
        WireKey::Entity { .. } => None,
        WireKey::Keyed(b) => parse_key(b),
    }
}

/// A JSON value of `size` bytes (more only when `size` is too small for
/// the fields): `{"g":G,"s":S,"v":"xxx…"}`. `s` makes every write differ.
pub(crate) fn value(group: u8, s: u64, size: usize) -> String {
    let mut v = format!(r#"{{"g":{group},"s":{s},"v":""#);
    let pad = size.saturating_sub(v.len() + 2);
    v.extend(std::iter::repeat_n('x', pad));
    v.push_str("\"}");
    v
}

/// The record that sets key `i` to `value` (`insert` for the initial load).
pub(crate) fn record(mode: StateModeArg, i: u32, value: &str, insert: bool) -> Record {
    match mode {
        StateModeArg::Keyed => Record::keyed(key_name(i), value.to_string()),
        StateModeArg::StateProtocol => {
            let op = if insert { "insert" } else { "update" };
            let key = key_name(i);
            Record::new(format!(
                r#"{{"type":"{ENTITY}","key":"{key}","value":{value},"headers":{{"operation":"{op}"}}}}"#
            ))
        }
    }
}

/// The group key `i` starts in.
pub(crate) fn initial_group(i: u32, groups: u8) -> u8 {
    (i % u32::from(groups)) as u8
}

/// One generated change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    /// Position in the sequence (also the value's `s`).
    pub seq: u64,
    /// The key rewritten.
    pub key: u32,
    /// Its group before.
    pub old_group: u8,
    /// Its group after (differs from `old_group` for a move).
    pub new_group: u8,
}

/// The change sequence. A key changes again only after every other key
/// did, so two changes in flight never touch the same key.
pub(crate) struct Changes {
    perm: Vec<u32>,
    group: Vec<u8>,
    groups: u8,
    move_prob: f64,
    rng: SplitMix,
    seq: u64,
}

impl Changes {
    /// The sequence over `keys` keys in `groups` groups (at least 1).
    pub(crate) fn new(keys: u32, groups: u8, move_prob: f64, seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let mut perm: Vec<u32> = (0..keys).collect();
        for i in (1..perm.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            perm.swap(i, j);
        }
        Changes {
            perm,
            group: (0..keys).map(|i| initial_group(i, groups)).collect(),
            groups,
            move_prob,
            rng,
            seq: 0,
        }
    }

    /// The next change.
    pub(crate) fn next_change(&mut self) -> Change {
        let key = self.perm[(self.seq % self.perm.len() as u64) as usize];
        let old_group = self.group[key as usize];
        let mut new_group = old_group;
        if self.groups > 1 && self.rng.unit() < self.move_prob {
            let hop = 1 + self.rng.next() % (u64::from(self.groups) - 1);
            new_group = ((u64::from(old_group) + hop) % u64::from(self.groups)) as u8;
        }
        self.group[key as usize] = new_group;
        let c = Change {
            seq: self.seq,
            key,
            old_group,
            new_group,
        };
        self.seq += 1;
        c
    }
}

/// A small seeded generator (SplitMix64): reproducible runs without a
/// dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert_eq!(key_name(42), "k000042");
        assert_eq!(parse_key(b"k000042"), Some(42));
        assert_eq!(parse_key(b"k1234567"), Some(1_234_567));
        assert_eq!(parse_key(b"x1"), None);
        assert_eq!(parse_key(b"k"), None);
        let v = value(7, 123, 100);
        assert_eq!(v.len(), 100);
        let j: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!((j["g"].as_u64(), j["s"].as_u64()), (Some(7), Some(123)));
    }

    #[test]
    fn changes_move_about_as_often_as_asked() {
        let mut c = Changes::new(1000, 20, 0.25, 1);
        let mut groups: Vec<u8> = (0..1000).map(|i| initial_group(i, 20)).collect();
        let mut moves = 0;
        let mut seen = std::collections::HashSet::new();
        for round in 0..2 {
            seen.clear();
            for _ in 0..1000 {
                let ch = c.next_change();
                assert!(seen.insert(ch.key), "a key repeats within round {round}");
                // Groups carry over from one change of a key to the next.
                assert_eq!(ch.old_group, groups[ch.key as usize]);
                assert!(ch.new_group < 20);
                groups[ch.key as usize] = ch.new_group;
                if ch.new_group != ch.old_group {
                    moves += 1;
                }
            }
        }
        assert!((400..600).contains(&moves), "{moves}");
    }
}
