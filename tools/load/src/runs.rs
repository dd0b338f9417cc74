//! A compact map from record keys to record identities for the loss and
//! duplicate check. A producer's records get consecutive offsets *and*
//! consecutive identities, so the map is kept as runs `(first key, first
//! identity, length)`: following one producer's stream costs a handful of runs
//! however many records it delivers, and adding a record at the end of the
//! last run (the live case) is a comparison, not a hash insert. With a
//! thousand subscribers each checking every record, that is what keeps the
//! load generator from measuring itself.

use std::collections::BTreeMap;

/// Keys mapped to identities, stored as runs where both step by one (not
/// always maximal: a run inserted whole is not merged with its neighbours).
#[derive(Debug, Default, Clone)]
pub struct RunSet {
    /// First key of a run -> (first identity, length).
    runs: BTreeMap<u64, (u64, u64)>,
    /// Keys in the set.
    len: u64,
}

/// How two run sets relate, key by key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Diff {
    /// Keys only in the first set.
    pub only_first: u64,
    /// Keys only in the second set.
    pub only_second: u64,
    /// Keys in both with different identities.
    pub different: u64,
    /// Keys in both with the same identity.
    pub same: u64,
}

impl RunSet {
    /// Number of keys.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The identity stored under `key`.
    pub fn get(&self, key: u64) -> Option<u64> {
        let (&k0, &(id0, n)) = self.runs.range(..=key).next_back()?;
        (key - k0 < n).then(|| id0 + (key - k0))
    }

    /// Adds the `n` keys from `key` mapped to identities from `id`; returns
    /// how many were already present (and left unchanged). Continuing the
    /// last run, as a live subscriber does, costs one lookup.
    pub fn insert_run(&mut self, key: u64, id: u64, n: u64) -> u64 {
        if let Some((&k0, run)) = self.runs.last_key_value() {
            if k0 + run.1 == key && run.0.wrapping_add(run.1) == id {
                if let Some(r) = self.runs.get_mut(&k0) {
                    r.1 += n;
                    self.len += n;
                    return 0;
                }
            }
        }
        // A run that overlaps nothing (a batch that arrived out of order)
        // still goes in whole.
        let prev_end = self
            .runs
            .range(..=key)
            .next_back()
            .map_or(0, |(&k, &(_, len))| k + len);
        let next_start = self.runs.range(key..).next().map_or(u64::MAX, |(&k, _)| k);
        if n > 0 && prev_end <= key && key + n <= next_start {
            self.runs.insert(key, (id, n));
            self.len += n;
            return 0;
        }
        (0..n).filter(|&i| !self.insert(key + i, id + i)).count() as u64
    }

    /// Adds `key -> id`; returns false (and changes nothing) if `key` is
    /// already present, whatever its identity.
    pub fn insert(&mut self, key: u64, id: u64) -> bool {
        let prev = self
            .runs
            .range(..=key)
            .next_back()
            .map(|(&k, &(i, n))| (k, i, n));
        if let Some((k0, _, n)) = prev {
            if key - k0 < n {
                return false;
            }
        }
        self.len += 1;
        // Joins the previous run when it ends right here with the matching identity.
        let joins_prev = prev.filter(|&(k0, i0, n)| k0 + n == key && i0.wrapping_add(n) == id);
        let next = self.runs.get(&(key.wrapping_add(1))).copied();
        let joins_next = next.filter(|&(i1, _)| id.checked_add(1) == Some(i1));
        match (joins_prev, joins_next) {
            (Some((k0, i0, n)), Some((_, n1))) => {
                self.runs.remove(&(key + 1));
                self.runs.insert(k0, (i0, n + 1 + n1));
            }
            (Some((k0, i0, n)), None) => {
                self.runs.insert(k0, (i0, n + 1));
            }
            (None, Some((_, n1))) => {
                self.runs.remove(&(key + 1));
                self.runs.insert(key, (id, n1 + 1));
            }
            (None, None) => {
                self.runs.insert(key, (id, 1));
            }
        }
        true
    }

    /// The runs in key order, keeping only keys at or above `from`.
    fn runs_from(&self, from: u64) -> Vec<(u64, u64, u64)> {
        let mut out: Vec<(u64, u64, u64)> = Vec::new();
        if let Some((&k0, &(i0, n))) = self.runs.range(..from).next_back() {
            if k0 + n > from {
                out.push((from, i0 + (from - k0), n - (from - k0)));
            }
        }
        out.extend(self.runs.range(from..).map(|(&k, &(i, n))| (k, i, n)));
        out
    }

    /// Compares the keys of `self` at or above `from` with every key of
    /// `other`, in time proportional to the number of runs.
    pub fn diff(&self, from: u64, other: &RunSet) -> Diff {
        let a = self.runs_from(from);
        let b = other.runs_from(0);
        let mut d = Diff::default();
        let (mut i, mut j) = (0, 0);
        // Cursors inside the current runs: (key, identity, keys left).
        let mut ca = a.first().copied();
        let mut cb = b.first().copied();
        loop {
            match (ca, cb) {
                (None, None) => break,
                (Some((_, _, n)), None) => {
                    d.only_first += n;
                    i += 1;
                    ca = a.get(i).copied();
                }
                (None, Some((_, _, n))) => {
                    d.only_second += n;
                    j += 1;
                    cb = b.get(j).copied();
                }
                (Some((ka, ia, na)), Some((kb, ib, nb))) => {
                    let m = if ka < kb {
                        let m = na.min(kb - ka);
                        d.only_first += m;
                        m
                    } else if kb < ka {
                        let m = nb.min(ka - kb);
                        d.only_second += m;
                        m
                    } else {
                        let m = na.min(nb);
                        // Both runs step by one, so equal starts stay equal.
                        if ia == ib {
                            d.same += m;
                        } else {
                            d.different += m;
                        }
                        m
                    };
                    if ka <= kb {
                        ca = advance(&a, &mut i, (ka, ia, na), m);
                    }
                    if kb <= ka {
                        cb = advance(&b, &mut j, (kb, ib, nb), m);
                    }
                }
            }
        }
        d
    }
}

/// Moves a cursor `m` keys forward, onto the next run when this one ends.
fn advance(
    runs: &[(u64, u64, u64)],
    idx: &mut usize,
    (k, id, n): (u64, u64, u64),
    m: u64,
) -> Option<(u64, u64, u64)> {
    if m < n {
        Some((k + m, id + m, n - m))
    } else {
        *idx += 1;
        runs.get(*idx).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn consecutive_records_share_one_run() {
        let mut s = RunSet::default();
        for k in 0..1000 {
            assert!(s.insert(k, 5000 + k));
        }
        assert_eq!(s.runs.len(), 1);
        assert!(!s.insert(10, 5010), "present keys are refused");
        assert!(!s.insert(10, 1), "whatever their identity");
        assert_eq!(s.get(999), Some(5999));
        assert_eq!(s.get(1000), None);
        // A gap filled later merges both sides into one run again.
        assert!(s.insert(1001, 6001));
        assert!(s.insert(1000, 6000));
        assert_eq!((s.runs.len(), s.len()), (1, 1002));
        // Runs continuing the last one extend it; others go key by key.
        assert_eq!(s.insert_run(1002, 6002, 10), 0);
        assert_eq!(s.insert_run(1005, 6005, 10), 7);
        assert_eq!(s.insert_run(2000, 1, 3), 0);
        assert_eq!((s.runs.len(), s.len()), (2, 1018));
        assert_eq!(s.get(1014), Some(6014));
    }

    #[test]
    fn diff_counts_missing_extra_and_mismatched_keys() {
        let mut acked = RunSet::default();
        let mut seen = RunSet::default();
        for k in 0..10 {
            acked.insert(k, 100 + k);
        }
        for k in [0, 1, 2, 4, 11] {
            seen.insert(k, 100 + k);
        }
        seen.insert(5, 7);
        let d = acked.diff(0, &seen);
        assert_eq!(
            d,
            Diff {
                only_first: 5,
                only_second: 1,
                different: 1,
                same: 4
            }
        );
        // Keys below `from` are not expected.
        assert_eq!(acked.diff(6, &seen).only_first, 4);
    }

    proptest! {
        #[test]
        fn agrees_with_a_hash_map(
            a in proptest::collection::vec((0u64..64, 0u64..3), 0..80),
            b in proptest::collection::vec((0u64..64, 0u64..3), 0..80),
            from in 0u64..64,
        ) {
            // Identities mostly follow the key (runs form), sometimes not.
            let build = |v: &[(u64, u64)]| {
                let mut s = RunSet::default();
                let mut m = HashMap::new();
                for &(k, skew) in v {
                    let id = 1000 + k + if skew == 2 { 7 } else { 0 };
                    if skew == 1 {
                        // A run of three keys at once.
                        let fresh = (0..3).filter(|i| !m.contains_key(&(k + i))).count() as u64;
                        prop_assert_eq!(s.insert_run(k, id, 3), 3 - fresh);
                        for i in 0..3 {
                            m.entry(k + i).or_insert(id + i);
                        }
                    } else {
                        let fresh = !m.contains_key(&k);
                        prop_assert_eq!(s.insert(k, id), fresh);
                        m.entry(k).or_insert(id);
                    }
                }
                prop_assert_eq!(s.len(), m.len() as u64);
                for (k, id) in &m {
                    prop_assert_eq!(s.get(*k), Some(*id));
                }
                Ok((s, m))
            };
            let (sa, ma) = build(&a)?;
            let (sb, mb) = build(&b)?;
            let mut want = Diff::default();
            for (k, id) in ma.iter().filter(|(k, _)| **k >= from) {
                match mb.get(k) {
                    None => want.only_first += 1,
                    Some(x) if x == id => want.same += 1,
                    Some(_) => want.different += 1,
                }
            }
            want.only_second = mb.keys().filter(|k| !ma.contains_key(k) || **k < from).count() as u64;
            prop_assert_eq!(sa.diff(from, &sb), want);
        }
    }
}
