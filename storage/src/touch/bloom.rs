//! The time-stamped bloom filter of the journal: each slot holds the last
//! generation that stamped it, so "touched since generation g" is "every
//! slot of the key is newer than g". False positives only; allocated on the
//! first stamp, so an idle touch stream costs no filter memory.

/// A bloom filter of `2^pow2` u32 generation slots with `k` positions per key.
pub(crate) struct Bloom {
    pow2: u32,
    k: u32,
    slots: Vec<u32>,
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

impl Bloom {
    /// An empty filter (no memory until the first stamp).
    pub fn new(pow2: u32, k: u32) -> Bloom {
        Bloom {
            pow2: pow2.clamp(10, 30),
            k: k.clamp(1, 8),
            slots: Vec::new(),
        }
    }

    /// The number of slots (what meta reports as `filterSize`).
    pub fn size(&self) -> u64 {
        1u64 << self.pow2
    }

    /// Positions per key.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// Bytes allocated.
    #[cfg(test)]
    pub fn allocated_bytes(&self) -> usize {
        self.slots.len() * 4
    }

    fn positions(&self, key_id: u32) -> impl Iterator<Item = usize> {
        let mask = (1u32 << self.pow2).wrapping_sub(1);
        let h1 = key_id;
        let h2 = match fmix32(h1) {
            0 => 0x9e37_79b9,
            h => h,
        };
        (0..self.k).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize)
    }

    /// Records that `key_id` was touched in `generation`.
    pub fn stamp(&mut self, key_id: u32, generation: u32) {
        if self.slots.is_empty() {
            self.slots = vec![0; 1usize << self.pow2];
        }
        let pos: Vec<usize> = self.positions(key_id).collect();
        for p in pos {
            self.slots[p] = generation;
        }
    }

    /// Whether `key_id` may have been touched in a generation after `since`.
    pub fn maybe_touched_since(&self, key_id: u32, since: u32) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        self.positions(key_id)
            .map(|p| self.slots[p])
            .min()
            .is_some_and(|g| g > since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_keys_are_newer_and_others_mostly_not() {
        let mut b = Bloom::new(16, 4);
        assert!(!b.maybe_touched_since(7, 0));
        assert_eq!(b.allocated_bytes(), 0, "lazy allocation");
        b.stamp(7, 3);
        assert!(b.maybe_touched_since(7, 2));
        assert!(!b.maybe_touched_since(7, 3), "not after its own generation");
        let false_positives = (1000..2000u32)
            .filter(|&k| b.maybe_touched_since(k, 0))
            .count();
        assert!(false_positives < 5, "{false_positives}");
    }

    #[test]
    fn the_murmur_finalizer_matches_its_reference() {
        assert_eq!(fmix32(0), 0);
        assert_eq!(fmix32(1), 0x514e_28b7);
    }
}
