//! The exact lane of the journal: the 64-bit routing keys of each recent
//! flushed generation, so an exact wait (1–16 literal keys) can be answered
//! without bloom false positives while its history is retained.

use std::collections::{HashSet, VecDeque};

/// Routing keys per generation, for the newest `capacity` generations.
pub(crate) struct Exact {
    capacity: usize,
    gens: VecDeque<(u32, HashSet<u64>, bool)>,
}

impl Exact {
    /// Keeps max(16, ceil(15000 / bucket_ms)) generations: a 15 s window.
    pub fn new(bucket_ms: u64) -> Exact {
        let window = 15_000u64.div_ceil(bucket_ms.max(1));
        Exact {
            capacity: window.max(16) as usize,
            gens: VecDeque::new(),
        }
    }

    /// Records a flushed generation.
    pub fn push(&mut self, generation: u32, keys: impl IntoIterator<Item = u64>, overflow: bool) {
        self.gens
            .push_back((generation, keys.into_iter().collect(), overflow));
        while self.gens.len() > self.capacity {
            self.gens.pop_front();
        }
    }

    /// Whether one of `keys` was touched in a generation after `since` up to
    /// `current`: `Some(false)` only when every such generation is retained
    /// without overflow; `None` (unknown) on a gap, overflow or old history.
    pub fn touched_since_any(&self, keys: &[u64], since: u32, current: u32) -> Option<bool> {
        if since >= current {
            return Some(false);
        }
        let mut seen = 0u64;
        let mut unknown = false;
        for (g, set, overflow) in self
            .gens
            .iter()
            .filter(|(g, _, _)| *g > since && *g <= current)
        {
            let _ = g;
            seen += 1;
            if keys.iter().any(|k| set.contains(k)) {
                return Some(true);
            }
            unknown |= *overflow;
        }
        if unknown || seen != u64::from(current - since) {
            return None;
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no_and_unknown() {
        let mut e = Exact::new(100);
        e.push(1, [10], false);
        e.push(2, [20], false);
        assert_eq!(e.touched_since_any(&[20], 0, 2), Some(true));
        assert_eq!(e.touched_since_any(&[30], 0, 2), Some(false));
        assert_eq!(e.touched_since_any(&[10], 1, 2), Some(false));
        assert_eq!(e.touched_since_any(&[10], 2, 2), Some(false));
        // Generation 4 without 3: a gap.
        e.push(4, [40], false);
        assert_eq!(e.touched_since_any(&[99], 1, 4), None);
        e.push(5, [], true);
        assert_eq!(e.touched_since_any(&[99], 4, 5), None, "overflow");
    }

    #[test]
    fn history_is_bounded() {
        let mut e = Exact::new(1000);
        for g in 1..=40 {
            e.push(g, [u64::from(g)], false);
        }
        assert_eq!(e.touched_since_any(&[1], 0, 40), None, "too old");
        assert_eq!(e.touched_since_any(&[40], 30, 40), Some(true));
    }
}
