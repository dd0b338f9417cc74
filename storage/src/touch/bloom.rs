//! The time-stamped bloom filter of the journal: each slot holds the last
//! generation that stamped it, so "touched since generation g" is "every
//! slot of the key is newer than g". False positives only.
//!
//! The slots live in pages of 1,024 allocated on their first stamp. Prisma's
//! default filter is 2^22 slots (16 MiB); allocated whole, the pages its
//! first stamps touch were backed by transparent huge pages, so every touch
//! stream that had seen a change held about 10 MiB (bench/RESULTS.md). A
//! stream now holds 4 KiB per page its keys reach.

/// Slots per page (4 KiB of u32).
const PAGE: usize = 1024;

/// A bloom filter of `2^pow2` u32 generation slots with `k` positions per key.
pub(crate) struct Bloom {
    pow2: u32,
    k: u32,
    pages: Vec<Option<Box<[u32; PAGE]>>>,
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
            pages: Vec::new(),
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
        self.pages.iter().flatten().count() * PAGE * 4
            + self.pages.capacity() * std::mem::size_of::<Option<Box<[u32; PAGE]>>>()
    }

    fn slot(&self, p: usize) -> u32 {
        self.pages
            .get(p / PAGE)
            .and_then(Option::as_ref)
            .map_or(0, |page| page[p % PAGE])
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
        if self.pages.is_empty() {
            let pages = (1usize << self.pow2).div_ceil(PAGE);
            self.pages.resize_with(pages, || None);
        }
        let pos: Vec<usize> = self.positions(key_id).collect();
        for p in pos {
            let page = self.pages[p / PAGE].get_or_insert_with(|| Box::new([0; PAGE]));
            page[p % PAGE] = generation;
        }
    }

    /// Whether `key_id` may have been touched in a generation after `since`.
    pub fn maybe_touched_since(&self, key_id: u32, since: u32) -> bool {
        if self.pages.is_empty() {
            return false;
        }
        self.positions(key_id)
            .map(|p| self.slot(p))
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
    fn a_large_filter_holds_only_the_pages_its_keys_reach() {
        let mut b = Bloom::new(22, 4);
        b.stamp(7, 1);
        b.stamp(8, 1);
        // 8 positions at most, each in one 4 KiB page, plus the page table.
        assert!(
            b.allocated_bytes() <= 8 * 4096 + 4096 * 8,
            "{}",
            b.allocated_bytes()
        );
        assert!(b.maybe_touched_since(7, 0) && b.maybe_touched_since(8, 0));
        assert!(!b.maybe_touched_since(7, 1));
    }

    #[test]
    fn the_murmur_finalizer_matches_its_reference() {
        assert_eq!(fmix32(0), 0);
        assert_eq!(fmix32(1), 0x514e_28b7);
    }
}
