//! A bounded on-disk copy of recently committed large batches, in plain
//! files mapped into memory, so that a read can return bytes that are also a
//! known region of a file. A network layer can then give those bytes to the
//! kernel with `sendfile` (see [`file_region`]) instead of copying them
//! through user space: the copy out of RocksDB and the socket write's copy
//! are what a catch-up read of large records spends most of its CPU on.
//!
//! RocksDB stays the only source of truth. The cache is filled after a
//! group is committed and published, by its own thread, never fsynced, and
//! emptied when the engine opens; a batch that is not (or no longer) in it is
//! read from RocksDB as before. Batches are immutable once committed and
//! stream ids are never reused, so a cached copy can never be stale.
//!
//! Layout: one directory `file-cache/` in the data directory; files
//! ("segments") of up to `SEGMENT_BYTES` each hold batches of one stream at
//! page-aligned positions. The oldest segment is dropped first when the
//! cache holds more than its byte bound or `MAX_SEGMENTS` files.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use memmap2::{Mmap, MmapOptions};
use parking_lot::{Mutex, RwLock};

use crate::batch::Batch;

/// Name of the cache's directory inside the data directory.
pub(crate) const DIR_NAME: &str = "file-cache";
/// Largest capacity of one segment file; a larger batch gets a segment of
/// its own. Smaller caches use smaller segments (a sixteenth of the bound,
/// at least 1 MiB), since eviction drops a whole segment at a time.
const SEGMENT_BYTES: usize = 64 << 20;
/// Most segment files (and so open descriptors and mappings) at once.
const MAX_SEGMENTS: usize = 256;
/// Batches queued for the writer thread; more are simply not cached.
const QUEUE: usize = 256;
/// Bytes of batches queued for the writer thread (they stay referenced
/// until written); more are simply not cached.
const QUEUE_BYTES: usize = 64 << 20;
/// Batch positions are page-aligned so that a mapping could start at any.
const ALIGN: usize = 4096;

/// Where the kernel can find bytes returned by a read: an open file and the
/// offset in it of the first byte. Holding it keeps the file open.
pub struct FileRegion {
    segment: Arc<Segment>,
    offset: u64,
}

impl FileRegion {
    /// The file's descriptor, valid while this region lives.
    pub fn fd(&self) -> RawFd {
        self.segment.file.as_raw_fd()
    }

    /// Offset in the file of the first byte of the slice it was found for.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// The file region holding exactly the bytes of `bytes`, if they lie in a
/// cache segment: a sender may then write the region with `sendfile`
/// instead of copying the memory. The answer is only about where the bytes
/// are; they are the same bytes either way.
pub fn file_region(bytes: &[u8]) -> Option<FileRegion> {
    let start = bytes.as_ptr() as usize;
    let (base, segment) = {
        let maps = MAPPINGS.read();
        let (&base, (len, seg)) = maps.range(..=start).next_back()?;
        if start + bytes.len() > base + len {
            return None;
        }
        (base, seg.clone())
    };
    // Upgraded only after the lock is released: if this were the last strong
    // reference, dropping it would take the write lock in `Segment::drop`.
    let segment = segment.upgrade()?;
    Some(FileRegion {
        segment,
        offset: (start - base) as u64,
    })
}

/// Every live segment mapping by start address, with its length, for
/// [`file_region`].
static MAPPINGS: RwLock<BTreeMap<usize, (usize, Weak<Segment>)>> = RwLock::new(BTreeMap::new());

/// One cache file, mapped whole. Unlinked when evicted; its descriptor and
/// mapping live until the last `Bytes` that points into it is dropped.
struct Segment {
    file: File,
    map: Mmap,
}

impl Drop for Segment {
    fn drop(&mut self) {
        // Before the mapping goes away, so no lookup can find its address.
        MAPPINGS.write().remove(&(self.map.as_ptr() as usize));
    }
}

/// Owner of the memory behind a cached batch's `Bytes`.
struct Slice {
    segment: Arc<Segment>,
    at: usize,
    len: usize,
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        assert!(self.at + self.len <= self.segment.map.len());
        // SAFETY: in bounds (checked above) of a mapping that lives as long
        // as `self.segment`. Built from the pointer rather than by slicing
        // the whole map, so that no reference covers the ranges the writer
        // is still filling; this range was written before it was indexed and
        // is never written again.
        unsafe { std::slice::from_raw_parts(self.segment.map.as_ptr().add(self.at), self.len) }
    }
}

/// Where one cached batch is.
struct Entry {
    segment: Arc<Segment>,
    /// Sequence number of the segment, for eviction.
    seq: u64,
    at: usize,
    len: usize,
    next_offset: u64,
}

/// What readers look up: per stream id, cached batches by base offset.
#[derive(Default)]
struct Index {
    streams: HashMap<u64, BTreeMap<u64, Entry>>,
}

/// Work for the writer thread, in the commit thread's order.
enum Job {
    Store { sid: u64, batch: Batch },
    Forget { sid: u64 },
}

/// The cache handle owned by the engine.
pub(crate) struct FileCache {
    index: Arc<Mutex<Index>>,
    /// Bytes of the batches in the writer's queue.
    queued: Arc<AtomicUsize>,
    min_batch_bytes: usize,
    tx: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl FileCache {
    /// A cache in `data_dir` holding at most `max_bytes` of batches of at
    /// least `min_batch_bytes` each; `max_bytes == 0` disables it. Whatever
    /// an earlier run left in the directory is removed.
    pub fn open(data_dir: &Path, max_bytes: u64, min_batch_bytes: usize) -> io::Result<FileCache> {
        let dir = data_dir.join(DIR_NAME);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let index = Arc::new(Mutex::new(Index::default()));
        let queued = Arc::new(AtomicUsize::new(0));
        if max_bytes == 0 {
            return Ok(FileCache {
                index,
                queued,
                min_batch_bytes,
                tx: None,
                writer: None,
                dir,
            });
        }
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = channel::bounded(QUEUE);
        let writer = Writer {
            index: Arc::clone(&index),
            queued: Arc::clone(&queued),
            dir: dir.clone(),
            max_bytes,
            segment_bytes: ((max_bytes / 16).min(SEGMENT_BYTES as u64) as usize)
                .max(1 << 20)
                .next_multiple_of(ALIGN),
            open: HashMap::new(),
            order: VecDeque::new(),
            total: 0,
            next_seq: 0,
        };
        let writer = std::thread::Builder::new()
            .name("weir-file-cache".into())
            .spawn(move || writer.run(rx))?;
        Ok(FileCache {
            index,
            queued,
            min_batch_bytes,
            tx: Some(tx),
            writer: Some(writer),
            dir,
        })
    }

    /// Offers a committed, published batch of stream `sid`. Small batches
    /// are not cached, and neither is anything while the writer is behind:
    /// the commit thread never waits for the cache.
    pub fn offer(&self, sid: u64, batch: &Batch) {
        let Some(tx) = &self.tx else { return };
        let len = batch.raw().len();
        if len < self.min_batch_bytes || !batch.is_whole() {
            return;
        }
        // Only the commit thread adds, so the check and the add cannot race
        // with another offer; the writer only subtracts.
        if self.queued.load(Ordering::Acquire) + len > QUEUE_BYTES {
            return;
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        let job = Job::Store {
            sid,
            batch: batch.clone(),
        };
        if let Err(e) = tx.try_send(job) {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            if let TrySendError::Disconnected(_) = e {
                tracing::warn!("file cache writer stopped");
            }
        }
    }

    /// Drops every cached batch of stream `sid` (its data was deleted).
    /// Queued behind the stream's earlier batches, so none of them can
    /// reappear afterwards.
    pub fn forget(&self, sid: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Forget { sid });
        }
    }

    /// The cached batch of stream `sid` holding `offset`, over the cache
    /// file's mapping (so [`file_region`] can locate its bytes).
    pub fn lookup(&self, sid: u64, offset: u64) -> Option<Batch> {
        let (base, raw) = {
            let index = self.index.lock();
            let (&base, e) = index.streams.get(&sid)?.range(..=offset).next_back()?;
            if offset >= e.next_offset {
                return None;
            }
            (base, e.bytes())
        };
        decode(base, raw)
    }

    /// The cached copy of the batch stored at `(sid, base)` whose stored
    /// value is `len` bytes. Values too small to be cached cost no lookup.
    pub fn lookup_exact(&self, sid: u64, base: u64, len: usize) -> Option<Batch> {
        if self.tx.is_none() || len < self.min_batch_bytes {
            return None;
        }
        let raw = {
            let index = self.index.lock();
            let e = index.streams.get(&sid)?.get(&base)?;
            if e.len != len {
                return None;
            }
            e.bytes()
        };
        decode(base, raw)
    }
}

/// Validates a cached copy like a value read from RocksDB. Only a damaged
/// cache file fails, and then the caller reads RocksDB, which has the batch.
fn decode(base: u64, raw: Bytes) -> Option<Batch> {
    match Batch::decode(base, raw) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "file cache copy unreadable; reading RocksDB");
            None
        }
    }
}

impl Entry {
    /// The cached bytes, keeping the segment mapped while they live.
    fn bytes(&self) -> Bytes {
        Bytes::from_owner(Slice {
            segment: Arc::clone(&self.segment),
            at: self.at,
            len: self.len,
        })
    }
}

impl Drop for FileCache {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        // Nothing in it is needed again: the next open would remove it anyway.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates the file of a segment of `size` bytes and maps it.
fn create_segment(path: &Path, size: usize) -> io::Result<Segment> {
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    // Sparse: disk blocks are used only where batches are written, and the
    // mapping never reaches past the end of the file.
    file.set_len(size as u64)?;
    // SAFETY: the file is private to this process's cache directory and is
    // never truncated while mapped, so the mapping never reaches past its
    // end. Only the writer changes it, with `write_all_at`, and only at
    // ranges not yet indexed: a range readers can see is never written
    // again, and readers only ever form slices of such ranges.
    let map = unsafe { MmapOptions::new().len(size).map(&file)? };
    Ok(Segment { file, map })
}

/// The segment a stream is filling.
struct Open {
    segment: Arc<Segment>,
    seq: u64,
    used: usize,
}

/// A segment in eviction order.
struct Placed {
    seq: u64,
    sid: u64,
    bytes: u64,
    /// Base offsets of the batches it holds, to unindex them.
    bases: Vec<u64>,
    path: PathBuf,
}

/// The writer thread's state: only it creates, fills and evicts segments.
struct Writer {
    index: Arc<Mutex<Index>>,
    queued: Arc<AtomicUsize>,
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: usize,
    open: HashMap<u64, Open>,
    order: VecDeque<Placed>,
    total: u64,
    next_seq: u64,
}

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        // Logged when writes start failing (a full disk fails every one),
        // not once per batch.
        let mut failing = false;
        while let Ok(job) = rx.recv() {
            match job {
                Job::Store { sid, batch } => {
                    let stored = self.store(sid, &batch);
                    self.queued.fetch_sub(batch.raw().len(), Ordering::AcqRel);
                    match stored {
                        // A cache: an uncached batch is read from RocksDB instead.
                        Err(e) if !failing => {
                            tracing::warn!(error = %e, "file cache writes failing; large batches are read from RocksDB");
                            failing = true;
                        }
                        Ok(()) if failing => {
                            tracing::info!("file cache writes succeed again");
                            failing = false;
                        }
                        Err(_) | Ok(()) => {}
                    }
                }
                Job::Forget { sid } => self.forget(sid),
            }
        }
    }

    fn store(&mut self, sid: u64, batch: &Batch) -> io::Result<()> {
        let stored = self.try_store(sid, batch);
        if stored.is_err() {
            // A segment that never received a batch (a full disk fails its
            // first write) is removed, so failures cannot pile up files.
            self.drop_if_empty(sid);
        }
        self.evict();
        stored
    }

    fn try_store(&mut self, sid: u64, batch: &Batch) -> io::Result<()> {
        let raw = batch.raw();
        let len = raw.len();
        let fits = self
            .open
            .get(&sid)
            .is_some_and(|o| o.used + len <= o.segment.map.len());
        if !fits {
            self.start_segment(sid, len)?;
        }
        let open = self.open.get_mut(&sid).expect("segment just started");
        let at = open.used;
        open.segment.file.write_all_at(raw, at as u64)?;
        let padded = len.next_multiple_of(ALIGN);
        open.used += padded;
        let (segment, seq) = (Arc::clone(&open.segment), open.seq);
        let base = batch.base_offset();
        self.index.lock().streams.entry(sid).or_default().insert(
            base,
            Entry {
                segment,
                seq,
                at,
                len,
                next_offset: batch.next_offset(),
            },
        );
        let i = self
            .order
            .binary_search_by_key(&seq, |p| p.seq)
            .expect("an open segment is placed");
        let placed = &mut self.order[i];
        placed.bases.push(base);
        placed.bytes += padded as u64;
        self.total += padded as u64;
        Ok(())
    }

    fn drop_if_empty(&mut self, sid: u64) {
        let Some(seq) = self.open.get(&sid).filter(|o| o.used == 0).map(|o| o.seq) else {
            return;
        };
        if let Ok(i) = self.order.binary_search_by_key(&seq, |p| p.seq) {
            let p = self.order.remove(i).expect("index from binary search");
            self.drop_placed(p);
        }
    }

    /// Starts a new segment for `sid` with room for at least `len` bytes.
    fn start_segment(&mut self, sid: u64, len: usize) -> io::Result<()> {
        // A stream's filled segment stays readable until evicted.
        self.open.remove(&sid);
        let seq = self.next_seq;
        self.next_seq += 1;
        let size = self.segment_bytes.max(len.next_multiple_of(ALIGN));
        let path = self.dir.join(format!("{sid:016x}-{seq:016x}.seg"));
        let segment = match create_segment(&path, size) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        MAPPINGS.write().insert(
            segment.map.as_ptr() as usize,
            (segment.map.len(), Arc::downgrade(&segment)),
        );
        self.open.insert(
            sid,
            Open {
                segment,
                seq,
                used: 0,
            },
        );
        // Sequence numbers grow, so `order` stays sorted by them.
        self.order.push_back(Placed {
            seq,
            sid,
            bytes: 0,
            bases: Vec::new(),
            path,
        });
        Ok(())
    }

    /// Drops the oldest segments until the cache is within its bounds.
    fn evict(&mut self) {
        while self.total > self.max_bytes || self.order.len() > MAX_SEGMENTS {
            let Some(p) = self.order.pop_front() else {
                break;
            };
            self.drop_placed(p);
        }
    }

    fn drop_placed(&mut self, p: Placed) {
        {
            let mut index = self.index.lock();
            if let Some(m) = index.streams.get_mut(&p.sid) {
                for base in &p.bases {
                    if m.get(base).is_some_and(|e| e.seq == p.seq) {
                        m.remove(base);
                    }
                }
                if m.is_empty() {
                    index.streams.remove(&p.sid);
                }
            }
        }
        if self.open.get(&p.sid).is_some_and(|o| o.seq == p.seq) {
            self.open.remove(&p.sid);
        }
        self.total -= p.bytes;
        // Readers still holding its bytes keep the open file; the name goes now.
        if let Err(e) = std::fs::remove_file(&p.path) {
            tracing::warn!(error = %e, path = %p.path.display(), "cannot remove file cache segment");
        }
    }

    fn forget(&mut self, sid: u64) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.order)
            .into_iter()
            .partition(|p| p.sid == sid);
        self.order = kept.into();
        for p in gone {
            self.drop_placed(p);
        }
        self.index.lock().streams.remove(&sid);
    }
}
