//! The touch journal of one stream, sans-IO: touches gather in an open
//! bucket; a flush (which the shell schedules `coalesce_ms` after the
//! bucket opened) turns the bucket into the next generation, stamps the
//! bloom filter and the exact lane, and names the waiters it wakes.
//! Generations advance only at flush, so a cursor never covers half a
//! bucket. A flushed bucket is a value the shell persists, and a journal
//! can be restored from the persisted epoch, generation and buckets, which
//! is how cursors survive a restart (see ARCHITECTURE.md, "Touches").

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use super::bloom::Bloom;
use super::exact::Exact;
use super::keys;

/// Journal settings (the profile's `touch.memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalConfig {
    pub bucket_ms: u64,
    pub filter_pow2: u32,
    pub k: u32,
    pub pending_max_keys: u64,
    pub key_index_max_keys: u32,
}

/// A flushed bucket, as persisted and restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlushedBucket {
    pub generation: u32,
    /// Sorted, without duplicates.
    pub key_ids: Vec<u32>,
    /// Sorted, without duplicates.
    pub routing_keys: Vec<u64>,
    pub overflow: bool,
    pub max_source_offset: u64,
    pub start_ms: u64,
    pub flush_ms: u64,
}

const BUCKET_VERSION: u8 = 1;

impl FlushedBucket {
    /// version, generation u32, overflow u8, max offset u64, start u64,
    /// flush u64, key count u32, keys u32…, routing count u32, routing u64…
    /// (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(38 + 4 * self.key_ids.len() + 8 * self.routing_keys.len());
        b.push(BUCKET_VERSION);
        b.extend_from_slice(&self.generation.to_le_bytes());
        b.push(u8::from(self.overflow));
        b.extend_from_slice(&self.max_source_offset.to_le_bytes());
        b.extend_from_slice(&self.start_ms.to_le_bytes());
        b.extend_from_slice(&self.flush_ms.to_le_bytes());
        b.extend_from_slice(&(self.key_ids.len() as u32).to_le_bytes());
        for k in &self.key_ids {
            b.extend_from_slice(&k.to_le_bytes());
        }
        b.extend_from_slice(&(self.routing_keys.len() as u32).to_le_bytes());
        for k in &self.routing_keys {
            b.extend_from_slice(&k.to_le_bytes());
        }
        b
    }

    /// Decodes a stored bucket; `None` when the bytes are not one.
    pub fn decode(b: &[u8]) -> Option<FlushedBucket> {
        let mut r = Reader(b);
        if r.take(1)?[0] != BUCKET_VERSION {
            return None;
        }
        let generation = r.u32()?;
        let overflow = match r.take(1)?[0] {
            0 => false,
            1 => true,
            _ => return None,
        };
        let max_source_offset = r.u64()?;
        let start_ms = r.u64()?;
        let flush_ms = r.u64()?;
        let n = r.u32()? as usize;
        if n > r.0.len() / 4 {
            return None;
        }
        let key_ids = (0..n).map(|_| r.u32()).collect::<Option<Vec<_>>>()?;
        let m = r.u32()? as usize;
        if m != r.0.len() / 8 || r.0.len() % 8 != 0 {
            return None;
        }
        let routing_keys = (0..m).map(|_| r.u64()).collect::<Option<Vec<_>>>()?;
        Some(FlushedBucket {
            generation,
            key_ids,
            routing_keys,
            overflow,
            max_source_offset,
            start_ms,
            flush_ms,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Some(h)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// A registered waiter's handle.
pub(crate) type WaiterId = u64;

/// What a waiter waits for.
pub(crate) struct Waiter {
    // Boxed slices, not vectors: a parked waiter never grows its lists, and
    // at 10,000 waiters each pointer-sized field counts.
    /// Key ids matched through the key index or the bloom filter.
    pub key_ids: Box<[u32]>,
    /// Exact routing keys (an exact wait); matched by full 64-bit key.
    pub exact_keys: Box<[u64]>,
    /// An exact wait's template-key ids, matched like key ids.
    pub fallback_ids: Box<[u32]>,
    /// Only generations after this one wake the waiter.
    pub after_generation: u32,
    pub deadline_ms: u64,
}

/// The bucket that woke a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wake {
    pub generation: u32,
    pub bucket_max_source_offset: u64,
    pub flush_at_ms: u64,
    pub bucket_start_ms: u64,
}

/// The outcome of a flush.
pub(crate) struct Flush {
    pub bucket: FlushedBucket,
    pub woken: Vec<(WaiterId, Wake)>,
}

/// A resolved cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    Gen(u32),
    Stale,
}

/// The last flush, which answers immediate waits describe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LastFlush {
    pub max_source_offset: Option<u64>,
    pub flush_at_ms: u64,
    pub bucket_start_ms: u64,
}

/// Journal fields of the meta route.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JournalMeta {
    pub bucket_ms: u64,
    pub coalesce_ms: u64,
    pub filter_size: u64,
    pub k: u32,
    pub pending_keys: u64,
    pub overflow_buckets: u64,
    pub active_waiters: u64,
    pub bucket_max_source_offset_seq: Option<u64>,
    pub last_flush_at_ms: u64,
    pub flush_interval_ms_max_last_10s: u64,
    pub flush_interval_ms_p95_last_10s: u64,
}

/// Interval statistics, reset when `live.metrics` takes them.
pub(crate) use super::metrics::tick::JournalIntervalStats as IntervalStats;

/// Monotonic totals of the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct JournalTotals {
    pub flushes: u64,
    pub notify_wakeups: u64,
    pub notify_wake_ms_sum: u64,
    pub notify_wake_ms_max: u64,
    pub timeouts_fired: u64,
    pub timeout_sweep_ms_sum: u64,
}

struct Entry {
    waiter: Waiter,
    /// Indexed per key id (and routing key); otherwise broad.
    indexed: bool,
}

#[derive(Default)]
struct Pending {
    key_ids: HashSet<u32>,
    routing: HashSet<u64>,
    overflow: bool,
    max_offset: u64,
    start_ms: u64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.key_ids.is_empty() && !self.overflow
    }
}

/// One stream's journal.
pub(crate) struct Journal {
    cfg: JournalConfig,
    epoch: u64,
    generation: u32,
    coalesce_ms: u64,
    /// Cursors below this generation are older than the retained history.
    floor: u32,
    /// Generations strictly between `lo` and `hi`, skipped at a restart:
    /// cursors there are stale (`hi` itself is the first one handed out).
    gap: Option<(u32, u32)>,
    bloom: Bloom,
    exact: Exact,
    pending: Pending,
    last: LastFlush,
    overflow_buckets: u64,
    last_overflow_generation: Option<u32>,
    waiters: HashMap<WaiterId, Entry>,
    by_key: HashMap<u32, Listed>,
    by_routing: HashMap<u64, Listed>,
    broad: HashSet<WaiterId>,
    deadlines: BinaryHeap<Reverse<(u64, WaiterId)>>,
    next_id: WaiterId,
    /// (flush time, interval since the previous flush), the last 10 s.
    intervals: VecDeque<(u64, u64)>,
    stats: IntervalStats,
    totals: JournalTotals,
}

/// Flush delay once the batch being processed reaches the tail: Prisma
/// waits 10 ms (and measures lag before the batch, so one new row already
/// means 50 ms); Weir flushes at once, since a flush is one unsynced
/// RocksDB write and a waiter's latency is what touches are for.
pub(crate) const CAUGHT_UP_FLUSH_MS: u64 = 1;

/// The flush delay for the open bucket: short when waiters wait and the
/// processor has caught up (`lag`: the backlog left after the batch), the
/// full bucket when nobody waits or it lags.
pub(crate) fn adaptive_coalesce_ms(bucket_ms: u64, has_waiters: bool, lag: u64) -> u64 {
    if !has_waiters {
        bucket_ms
    } else if lag == 0 {
        bucket_ms.min(CAUGHT_UP_FLUSH_MS)
    } else if lag <= 5000 {
        bucket_ms.min(50)
    } else {
        bucket_ms
    }
}

impl Journal {
    /// A new journal at generation 0.
    pub fn new(cfg: JournalConfig, epoch: u64, _now_ms: u64) -> Journal {
        Journal {
            cfg,
            epoch,
            generation: 0,
            coalesce_ms: cfg.bucket_ms,
            floor: 0,
            gap: None,
            bloom: Bloom::new(cfg.filter_pow2, cfg.k),
            exact: Exact::new(cfg.bucket_ms),
            pending: Pending::default(),
            last: LastFlush::default(),
            overflow_buckets: 0,
            last_overflow_generation: None,
            waiters: HashMap::new(),
            by_key: HashMap::new(),
            by_routing: HashMap::new(),
            broad: HashSet::new(),
            deadlines: BinaryHeap::new(),
            next_id: 1,
            intervals: VecDeque::new(),
            stats: IntervalStats::default(),
            totals: JournalTotals::default(),
        }
    }

    /// A journal restored after a restart: the persisted epoch, the last
    /// persisted generation and the retained buckets (oldest first). New
    /// generations start `jump` past the persisted one.
    pub fn restore(
        cfg: JournalConfig,
        epoch: u64,
        generation: u32,
        buckets: impl IntoIterator<Item = FlushedBucket>,
        jump: u32,
        now_ms: u64,
    ) -> Journal {
        let mut j = Journal::new(cfg, epoch, now_ms);
        let mut first = None;
        for b in buckets {
            first.get_or_insert(b.generation);
            for &k in &b.key_ids {
                j.bloom.stamp(k, b.generation);
            }
            j.exact
                .push(b.generation, b.routing_keys.iter().copied(), b.overflow);
            if b.overflow {
                j.last_overflow_generation = Some(b.generation);
            }
            j.last = LastFlush {
                max_source_offset: Some(b.max_source_offset),
                flush_at_ms: b.flush_ms,
                bucket_start_ms: b.start_ms,
            };
        }
        j.floor = first.map_or(generation, |g| g.saturating_sub(1));
        j.generation = generation.wrapping_add(jump);
        if jump > 0 {
            j.gap = Some((generation, j.generation));
        }
        j
    }

    /// The journal's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current (last flushed) generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// `"<epoch hex>:<generation>"`.
    pub fn cursor(&self) -> String {
        cursor_text(self.epoch, self.generation)
    }

    /// Distinct keys in the open bucket.
    pub fn pending_keys(&self) -> usize {
        self.pending.key_ids.len()
    }

    /// Registered waiters.
    pub fn active_waiters(&self) -> usize {
        self.waiters.len()
    }

    /// The last flush (bucket fields of immediate answers).
    pub fn last_flush(&self) -> LastFlush {
        self.last
    }

    /// Sets the flush delay of buckets opened from now on.
    pub fn set_coalesce_ms(&mut self, ms: u64) {
        self.coalesce_ms = ms.min(self.cfg.bucket_ms).max(1);
    }

    /// Adds a touch to the open bucket. Returns the flush time when this
    /// touch opened the bucket (the shell must flush then).
    pub fn touch(
        &mut self,
        key_id: u32,
        routing: Option<u64>,
        source_offset: u64,
        now_ms: u64,
    ) -> Option<u64> {
        let opened = self.pending.is_empty();
        if opened {
            self.pending.start_ms = now_ms;
            self.pending.max_offset = source_offset;
        }
        self.pending.max_offset = self.pending.max_offset.max(source_offset);
        let full = self.pending.key_ids.len() as u64 >= self.cfg.pending_max_keys;
        if full && !self.pending.key_ids.contains(&key_id) {
            self.pending.overflow = true;
        } else if !self.pending.overflow {
            self.pending.key_ids.insert(key_id);
            if let Some(r) = routing {
                self.pending.routing.insert(r);
            }
        }
        opened.then_some(now_ms + self.coalesce_ms)
    }

    /// Flushes the open bucket into the next generation and wakes the
    /// waiters it matches; `None` when nothing is pending.
    pub fn flush(&mut self, now_ms: u64) -> Option<Flush> {
        if self.pending.is_empty() {
            return None;
        }
        let p = std::mem::take(&mut self.pending);
        let generation = self.generation.wrapping_add(1);
        self.generation = generation;
        let mut key_ids: Vec<u32> = p.key_ids.into_iter().collect();
        key_ids.sort_unstable();
        let mut routing_keys: Vec<u64> = p.routing.into_iter().collect();
        routing_keys.sort_unstable();
        for &k in &key_ids {
            self.bloom.stamp(k, generation);
        }
        self.exact
            .push(generation, routing_keys.iter().copied(), p.overflow);
        if p.overflow {
            self.overflow_buckets += 1;
            self.last_overflow_generation = Some(generation);
        }
        if self.last.flush_at_ms > 0 {
            self.intervals
                .push_back((now_ms, now_ms.saturating_sub(self.last.flush_at_ms)));
        }
        while self
            .intervals
            .front()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > 10_000)
        {
            self.intervals.pop_front();
        }
        self.last = LastFlush {
            max_source_offset: Some(p.max_offset),
            flush_at_ms: now_ms,
            bucket_start_ms: p.start_ms,
        };
        let wake = Wake {
            generation,
            bucket_max_source_offset: p.max_offset,
            flush_at_ms: now_ms,
            bucket_start_ms: p.start_ms,
        };
        let bucket = FlushedBucket {
            generation,
            key_ids,
            routing_keys,
            overflow: p.overflow,
            max_source_offset: p.max_offset,
            start_ms: p.start_ms,
            flush_ms: now_ms,
        };
        let ids = self.matching(&bucket);
        let mut woken = Vec::with_capacity(ids.len());
        for id in ids {
            if self.remove_waiter(id) {
                woken.push((id, wake));
            }
        }
        // Prisma counts a notifying flush only when it woke someone.
        if !woken.is_empty() {
            self.stats.notify_flushes += 1;
            self.stats.notify_wakeups += woken.len() as u64;
            self.totals.notify_wakeups += woken.len() as u64;
        }
        self.totals.flushes += 1;
        Some(Flush { bucket, woken })
    }

    fn matching(&self, b: &FlushedBucket) -> Vec<WaiterId> {
        let due = |id: &WaiterId| {
            self.waiters
                .get(id)
                .is_some_and(|e| e.waiter.after_generation < b.generation)
        };
        if b.overflow {
            // Lossy but never a false negative: everybody re-runs.
            return self.waiters.keys().copied().filter(|id| due(id)).collect();
        }
        let mut out: HashSet<WaiterId> = HashSet::new();
        for r in &b.routing_keys {
            if let Some(l) = self.by_routing.get(r) {
                out.extend(l.ids.iter().filter(|id| due(id)));
            }
        }
        for k in &b.key_ids {
            if let Some(l) = self.by_key.get(k) {
                out.extend(l.ids.iter().filter(|id| due(id)));
            }
        }
        for id in &self.broad {
            let Some(e) = self.waiters.get(id) else {
                continue;
            };
            if !due(id) {
                continue;
            }
            let after = e.waiter.after_generation;
            if e.waiter
                .key_ids
                .iter()
                .any(|&k| self.bloom.maybe_touched_since(k, after))
            {
                out.insert(*id);
            }
        }
        let mut v: Vec<_> = out.into_iter().collect();
        v.sort_unstable();
        v
    }

    /// Resolves a wait's cursor (`None` = `"now"`).
    pub fn resolve(&self, cursor: Option<(u64, u32)>) -> Since {
        let Some((epoch, g)) = cursor else {
            return Since::Gen(self.generation);
        };
        if epoch != self.epoch {
            return Since::Stale;
        }
        if let Some((lo, hi)) = self.gap {
            if g > lo && g < hi {
                return Since::Stale;
            }
        }
        if g < self.floor {
            return Since::Stale;
        }
        Since::Gen(g.min(self.generation))
    }

    /// Whether any of `ids` may have been touched after `since`.
    pub fn maybe_touched_since_any(&self, ids: &[u32], since: u32) -> bool {
        if self.last_overflow_generation.is_some_and(|o| since < o) {
            return true;
        }
        ids.iter()
            .any(|&k| self.bloom.maybe_touched_since(k, since))
    }

    /// The exact answer for routing keys, `None` when history is incomplete.
    pub fn exact_touched_since_any(&self, keys: &[u64], since: u32) -> Option<bool> {
        self.exact.touched_since_any(keys, since, self.generation)
    }

    /// Registers a waiter.
    pub fn add_waiter(&mut self, w: Waiter) -> WaiterId {
        let id = self.next_id;
        self.next_id += 1;
        let indexed =
            !w.exact_keys.is_empty() || w.key_ids.len() <= self.cfg.key_index_max_keys as usize;
        if indexed {
            for &k in w.key_ids.iter().chain(&w.fallback_ids) {
                self.by_key.entry(k).or_default().ids.push(id);
            }
            for &r in &w.exact_keys {
                self.by_routing.entry(r).or_default().ids.push(id);
            }
        } else {
            self.broad.insert(id);
        }
        self.deadlines.push(Reverse((w.deadline_ms, id)));
        self.waiters.insert(id, Entry { waiter: w, indexed });
        id
    }

    /// Removes a waiter (answered or abandoned); false if it was gone.
    pub fn remove_waiter(&mut self, id: WaiterId) -> bool {
        let Some(e) = self.waiters.remove(&id) else {
            return false;
        };
        if e.indexed {
            for k in e.waiter.key_ids.iter().chain(&e.waiter.fallback_ids) {
                unindex(&mut self.by_key, *k, &self.waiters);
            }
            for r in &e.waiter.exact_keys {
                unindex(&mut self.by_routing, *r, &self.waiters);
            }
        } else {
            self.broad.remove(&id);
        }
        if self.deadlines.len() > 64 && self.deadlines.len() > 2 * self.waiters.len() {
            let live = &self.waiters;
            self.deadlines
                .retain(|Reverse((_, id))| live.contains_key(id));
        }
        true
    }

    /// The earliest deadline of a registered waiter.
    pub fn next_deadline(&mut self) -> Option<u64> {
        while let Some(Reverse((d, id))) = self.deadlines.peek().copied() {
            if self.waiters.contains_key(&id) {
                return Some(d);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Removes and returns every waiter whose deadline is at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<WaiterId> {
        let mut out = Vec::new();
        while let Some(Reverse((d, id))) = self.deadlines.peek().copied() {
            if d > now_ms {
                break;
            }
            self.deadlines.pop();
            if self
                .waiters
                .get(&id)
                .is_some_and(|e| e.waiter.deadline_ms == d)
                && self.remove_waiter(id)
            {
                out.push(id);
            }
        }
        if !out.is_empty() {
            self.stats.timeout_sweeps += 1;
            self.stats.timeouts_fired += out.len() as u64;
            self.totals.timeouts_fired += out.len() as u64;
        }
        out
    }

    /// Records how long waking a flush's waiters took (the shell measures
    /// it: the core has no clock of its own).
    pub fn note_wake_ms(&mut self, ms: u64) {
        self.stats.notify_wake_ms_sum += ms;
        self.stats.notify_wake_ms_max = self.stats.notify_wake_ms_max.max(ms);
        self.totals.notify_wake_ms_sum += ms;
        self.totals.notify_wake_ms_max = self.totals.notify_wake_ms_max.max(ms);
    }

    /// Records how long a timeout sweep that fired took.
    pub fn note_sweep_ms(&mut self, ms: u64) {
        self.stats.timeout_sweep_ms_sum += ms;
        self.stats.timeout_sweep_ms_max = self.stats.timeout_sweep_ms_max.max(ms);
        self.totals.timeout_sweep_ms_sum += ms;
    }

    /// Takes (and resets) the interval statistics.
    pub fn take_interval_stats(&mut self) -> IntervalStats {
        let mut s = std::mem::take(&mut self.stats);
        s.heap_size = self.deadlines.len() as u64;
        s
    }

    /// The monotonic totals.
    pub fn totals(&self) -> JournalTotals {
        self.totals
    }

    /// The journal fields of meta.
    pub fn meta(&self, _now_ms: u64) -> JournalMeta {
        let mut iv: Vec<u64> = self.intervals.iter().map(|(_, i)| *i).collect();
        iv.sort_unstable();
        let p95 = if iv.is_empty() {
            0
        } else {
            iv[((iv.len() - 1) as f64 * 0.95).floor() as usize]
        };
        JournalMeta {
            bucket_ms: self.cfg.bucket_ms,
            coalesce_ms: self.coalesce_ms,
            filter_size: self.bloom.size(),
            k: self.bloom.k(),
            pending_keys: self.pending.key_ids.len() as u64,
            overflow_buckets: self.overflow_buckets,
            active_waiters: self.waiters.len() as u64,
            bucket_max_source_offset_seq: self.last.max_source_offset,
            last_flush_at_ms: self.last.flush_at_ms,
            flush_interval_ms_max_last_10s: iv.last().copied().unwrap_or(0),
            flush_interval_ms_p95_last_10s: p95,
        }
    }
}

/// A cursor's text, `"<epoch hex>:<generation>"` (what [`Journal::resolve`] reads back).
pub(crate) fn cursor_text(epoch: u64, generation: u32) -> String {
    format!("{}:{generation}", keys::hex16(epoch))
}

/// The waiters indexed under one key. Removal is lazy: a removed waiter's
/// id stays in the list (lookups skip ids no longer in `waiters`) until the
/// stale ids are half of it, then one pass drops them all. Every fine wait
/// also carries its template's key, so one key can list every waiter of a
/// stream; removing ids one by one made each answer a scan of that list
/// (at 10,000 waiters, a tenth of the server's time).
#[derive(Default)]
struct Listed {
    ids: Vec<WaiterId>,
    stale: usize,
}

/// Notes that one waiter listed under `k` was removed from `live`.
fn unindex<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Listed>,
    k: K,
    live: &HashMap<WaiterId, Entry>,
) {
    let Some(l) = map.get_mut(&k) else {
        return;
    };
    l.stale += 1;
    if 2 * l.stale >= l.ids.len() {
        l.ids.retain(|id| live.contains_key(id));
        l.stale = 0;
        if l.ids.is_empty() {
            map.remove(&k);
        } else if l.ids.capacity() > 4 * l.ids.len() {
            l.ids.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> JournalConfig {
        JournalConfig {
            bucket_ms: 100,
            filter_pow2: 16,
            k: 4,
            pending_max_keys: 100,
            key_index_max_keys: 32,
        }
    }

    fn waiter(keys: &[u32], after: u32) -> Waiter {
        Waiter {
            key_ids: keys.into(),
            exact_keys: Box::default(),
            fallback_ids: Box::default(),
            after_generation: after,
            deadline_ms: 10_000,
        }
    }

    #[test]
    fn a_flush_wakes_matching_waiters_only() {
        let mut j = Journal::new(cfg(), 7, 0);
        let a = j.add_waiter(waiter(&[1], 0));
        let b = j.add_waiter(waiter(&[2], 0));
        assert_eq!(j.touch(1, None, 5, 10), Some(110));
        assert_eq!(j.touch(3, None, 6, 20), None, "bucket already open");
        let f = j.flush(110).unwrap();
        assert_eq!(f.bucket.generation, 1);
        assert_eq!(f.bucket.key_ids, vec![1, 3]);
        assert_eq!(f.bucket.max_source_offset, 6);
        assert_eq!(f.woken.iter().map(|w| w.0).collect::<Vec<_>>(), vec![a]);
        assert_eq!(j.active_waiters(), 1);
        assert!(j.remove_waiter(b));
        assert!(j.flush(200).is_none(), "nothing pending");
        assert_eq!(j.cursor(), format!("{}:1", keys::hex16(7)));
    }

    #[test]
    fn a_settled_cursor_does_not_see_its_own_bucket() {
        let mut j = Journal::new(cfg(), 7, 0);
        j.touch(1, None, 0, 0);
        j.flush(10);
        let since = match j.resolve(Some((7, j.generation()))) {
            Since::Gen(g) => g,
            Since::Stale => panic!("stale"),
        };
        assert!(!j.maybe_touched_since_any(&[1], since));
        assert!(j.maybe_touched_since_any(&[1], since - 1));
    }

    #[test]
    fn overflow_wakes_everyone() {
        let mut c = cfg();
        c.pending_max_keys = 2;
        let mut j = Journal::new(c, 1, 0);
        let a = j.add_waiter(waiter(&[99], 0));
        for k in 0..5 {
            j.touch(k, None, 0, 0);
        }
        let f = j.flush(10).unwrap();
        assert!(f.bucket.overflow);
        assert_eq!(f.woken[0].0, a);
        assert!(j.maybe_touched_since_any(&[12345], 0));
        assert_eq!(j.meta(10).overflow_buckets, 1);
    }

    #[test]
    fn broad_and_exact_waiters() {
        let mut c = cfg();
        c.key_index_max_keys = 2;
        let mut j = Journal::new(c, 1, 0);
        let broad = j.add_waiter(waiter(&[1, 2, 3, 4], 0));
        let exact = j.add_waiter(Waiter {
            key_ids: Box::default(),
            exact_keys: Box::new([0xaaaa_0000_0000_0005]),
            fallback_ids: Box::default(),
            after_generation: 0,
            deadline_ms: 10_000,
        });
        j.touch(5, Some(0xbbbb_0000_0000_0005), 0, 0);
        let f = j.flush(10).unwrap();
        assert!(f.woken.is_empty(), "same key id, other routing key");
        j.touch(4, None, 0, 20);
        j.touch(5, Some(0xaaaa_0000_0000_0005), 0, 20);
        let f = j.flush(30).unwrap();
        let ids: Vec<_> = f.woken.iter().map(|w| w.0).collect();
        assert_eq!(ids, vec![broad, exact]);
        assert_eq!(
            j.exact_touched_since_any(&[0xaaaa_0000_0000_0005], 1),
            Some(true)
        );
        assert_eq!(j.exact_touched_since_any(&[0xcccc], 0), Some(false));
    }

    #[test]
    fn deadlines_expire_in_order_and_removed_waiters_do_not() {
        let mut j = Journal::new(cfg(), 1, 0);
        let mut w = waiter(&[1], 0);
        w.deadline_ms = 50;
        let a = j.add_waiter(w);
        let mut w = waiter(&[1], 0);
        w.deadline_ms = 20;
        let b = j.add_waiter(w);
        let mut w = waiter(&[1], 0);
        w.deadline_ms = 30;
        let c = j.add_waiter(w);
        j.remove_waiter(c);
        assert_eq!(j.next_deadline(), Some(20));
        assert_eq!(j.expire(40), vec![b]);
        assert_eq!(j.expire(60), vec![a]);
        assert_eq!(j.next_deadline(), None);
        assert_eq!(j.take_interval_stats().timeouts_fired, 2);
        assert_eq!(j.take_interval_stats().timeouts_fired, 0, "reset");
    }

    #[test]
    fn restore_keeps_cursors_and_marks_old_and_lost_ones_stale() {
        let mut j = Journal::new(cfg(), 9, 0);
        let mut buckets = Vec::new();
        for g in 1..=3u32 {
            j.touch(g, None, u64::from(g), 0);
            buckets.push(j.flush(u64::from(g) * 10).unwrap().bucket);
        }
        let encoded: Vec<_> = buckets.iter().map(FlushedBucket::encode).collect();
        let decoded: Vec<_> = encoded
            .iter()
            .map(|b| FlushedBucket::decode(b).unwrap())
            .collect();
        assert_eq!(decoded, buckets);
        // Only generations 2 and 3 retained.
        let r = Journal::restore(cfg(), 9, 3, decoded[1..].to_vec(), 1000, 100);
        assert_eq!(r.generation(), 1003);
        assert_eq!(r.resolve(Some((9, 1))), Since::Gen(1));
        assert!(r.maybe_touched_since_any(&[3], 1), "key 3 after cursor 1");
        assert!(!r.maybe_touched_since_any(&[3], 3));
        assert_eq!(r.resolve(Some((9, 0))), Since::Stale, "older than history");
        assert_eq!(r.resolve(Some((9, 4))), Since::Stale, "inside the gap");
        assert_eq!(r.resolve(Some((8, 3))), Since::Stale, "other epoch");
        assert_eq!(r.resolve(Some((9, 5000))), Since::Gen(1003), "clamped");
    }

    #[test]
    fn bucket_decoding_rejects_damage() {
        let b = FlushedBucket {
            generation: 1,
            key_ids: vec![1, 2],
            routing_keys: vec![3],
            overflow: false,
            max_source_offset: 4,
            start_ms: 5,
            flush_ms: 6,
        };
        let e = b.encode();
        for cut in 0..e.len() {
            assert!(FlushedBucket::decode(&e[..cut]).is_none(), "cut {cut}");
        }
        let mut long = e.clone();
        long.push(0);
        assert!(FlushedBucket::decode(&long).is_none());
    }
}
