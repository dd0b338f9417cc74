//! The file cache of large batches: reads return the same records whether a
//! batch comes from the cache or from RocksDB, cached bytes are locatable in
//! a file, and the cache stays within its bound and forgets deleted streams.

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use weir_storage::{file_region, ForkRequest};

const LARGE: usize = 200 << 10;

/// Payload `i`: distinct bytes, so a record served from the wrong place
/// cannot compare equal.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i * 131 + j * 7 + j / 251) as u8)
        .collect()
}

/// Appends `p` as a batch of its own.
fn append_one(e: &Engine, name: &str, p: &[u8]) {
    let req = AppendRequest {
        records: vec![Record::new(p.to_vec())],
        ..Default::default()
    };
    e.append(name, req).unwrap();
}

fn append_large(e: &Engine, name: &str, count: usize, len: usize) -> Vec<Vec<u8>> {
    e.create_stream(name, StreamConfig::new("application/octet-stream"))
        .unwrap();
    (0..count)
        .map(|i| {
            let p = payload(i, len);
            append_one(e, name, &p);
            p
        })
        .collect()
}

/// The bytes `file_region` says `p` is at, read from the file itself.
fn read_region(p: &[u8]) -> Option<Vec<u8>> {
    let region = file_region(p)?;
    let mut buf = vec![0u8; p.len()];
    // SAFETY: the region keeps its descriptor open; `buf` has `p.len()` bytes.
    let n = unsafe {
        libc::pread(
            region.fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            region.offset() as libc::off_t,
        )
    };
    assert_eq!(n, p.len() as isize, "short read of a cache file");
    Some(buf)
}

/// Every record of `name` in order, and how many were file-backed (each
/// checked to be at the file position `file_region` reports).
fn read_all(e: &Engine, name: &str) -> (Vec<Vec<u8>>, usize) {
    read_all_paged(e, name, 1 << 20)
}

/// The payloads of one read, in order, as the slices the read returned.
fn payloads(r: &ReadResult) -> Vec<bytes::Bytes> {
    r.batches
        .iter()
        .flat_map(|b| (0..b.len()).map(|i| b.payload_bytes(i).unwrap()))
        .collect()
}

fn read_all_paged(e: &Engine, name: &str, budget: usize) -> (Vec<Vec<u8>>, usize) {
    let (mut out, mut in_files, mut at) = (Vec::new(), 0, 0);
    loop {
        let r = e.read(name, at, budget).unwrap();
        for p in payloads(&r) {
            if let Some(from_file) = read_region(&p) {
                assert!(from_file == *p, "file region holds other bytes");
                in_files += 1;
            }
            out.push(p.to_vec());
        }
        at = r.next_offset;
        if r.up_to_date() {
            return (out, in_files);
        }
    }
}

/// Waits (bounded) until `done` holds: the cache is filled by its own thread.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Disk blocks the cache's files really use (they are sparse).
fn cache_disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::read_dir(dir.join("file-cache")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
            .sum(),
        Err(_) => 0,
    }
}

fn cache_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("file-cache")).map_or(0, |d| d.count())
}

#[test]
fn large_batches_are_served_from_files_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    let expect = append_large(&e, "big", 12, LARGE);
    eventually("every batch cached", || read_all(&e, "big").1 == 12);
    let (got, _) = read_all(&e, "big");
    assert_eq!(got, expect);
    // A read starting inside the cache behaves as one from RocksDB does.
    let r = e.read("big", 5, 2 * LARGE + 64).unwrap();
    assert_eq!(r.batches[0].first_offset(), 5);
    assert_eq!(r.record_count(), 2);
    assert_eq!(r.next_offset, 7);
    assert_eq!(r.batches[1].payload_bytes(0).unwrap(), expect[6]);
}

#[test]
fn small_batches_and_a_disabled_cache_stay_out_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    let expect = append_large(&e, "small", 20, 1000);
    // Give the writer time it does not need, then check nothing was cached.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read_all(&e, "small"), (expect, 0));

    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.file_cache_bytes = 0);
    let expect = append_large(&e, "big", 4, LARGE);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read_all(&e, "big"), (expect, 0));
    assert!(!dir.path().join("file-cache").exists());
}

#[test]
fn the_cache_stays_within_its_bound_and_evicted_batches_come_from_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let bound = 4u64 << 20;
    let e = open_with(&dir, |c| c.file_cache_bytes = bound);
    let expect = append_large(&e, "big", 40, 256 << 10);
    // The newest batch is cached last; once it is, the writer is done.
    eventually("newest batch cached", || {
        let r = e.read("big", 39, 1 << 20).unwrap();
        file_region(&r.batches[0].payload_bytes(0).unwrap()).is_some()
    });
    let used = cache_disk_bytes(dir.path());
    assert!(used <= bound, "cache uses {used} bytes, bound {bound}");
    let (got, in_files) = read_all(&e, "big");
    assert_eq!(got, expect);
    assert!(
        (1..40).contains(&in_files),
        "{in_files} of 40 cached: old ones must be evicted, new ones kept"
    );
}

#[test]
fn deleting_a_stream_removes_its_cache_files_and_open_clears_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    append_large(&e, "gone", 3, LARGE);
    let kept = append_large(&e, "kept", 3, LARGE);
    eventually("both streams cached", || cache_files(dir.path()) == 2);
    e.delete_stream("gone").unwrap();
    eventually("deleted stream's file removed", || {
        cache_files(dir.path()) == 1
    });
    assert_eq!(read_all(&e, "kept"), (kept.clone(), 3));
    e.shutdown();
    drop(e);

    // A crash leaves files behind; the next open starts empty.
    std::fs::create_dir_all(dir.path().join("file-cache")).unwrap();
    std::fs::write(dir.path().join("file-cache/left-over.seg"), b"stale").unwrap();
    let e = open(&dir);
    assert_eq!(cache_files(dir.path()), 0);
    assert_eq!(read_all(&e, "kept"), (kept, 0));
}

#[test]
fn a_page_mixes_cached_and_uncached_batches_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("mixed", StreamConfig::new("application/octet-stream"))
        .unwrap();
    // Large, large, small, large, small: cached, cached, not, cached, not.
    let sizes = [LARGE, LARGE, 500, LARGE, 700];
    let expect: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(i, n))
        .collect();
    for p in &expect {
        append_one(&e, "mixed", p);
    }
    let cached = |at: u64| {
        let r = e.read("mixed", at, 1).unwrap();
        file_region(&r.batches[0].payload_bytes(0).unwrap()).is_some()
    };
    // The last large batch is queued last; once it is cached, all are.
    eventually("large batches cached", || cached(3));
    assert!(cached(0) && cached(1) && !cached(2) && !cached(4));
    // One page over everything: cached batches come from the files even
    // after an uncached one, all in order and without gaps.
    let r = e.read("mixed", 0, 1 << 30).unwrap();
    assert_eq!(r.record_count(), 5);
    assert_eq!(payloads(&r), expect);
    let in_files: Vec<bool> = r
        .batches
        .iter()
        .map(|b| file_region(&b.payload_bytes(0).unwrap()).is_some())
        .collect();
    assert_eq!(in_files, [true, true, false, true, false]);
    // Small pages, each starting wherever the last one stopped.
    assert_eq!(read_all_paged(&e, "mixed", 1).0, expect);
}

#[test]
fn forks_read_their_inherited_batches_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    let expect = append_large(&e, "parent", 6, LARGE);
    eventually("parent cached", || read_all(&e, "parent").1 == 6);
    let req = ForkRequest {
        source: "parent".into(),
        offset: Some(4),
        ..Default::default()
    };
    futures::executor::block_on(e.fork_stream("child", req)).unwrap();
    let own = payload(99, LARGE);
    append_one(&e, "child", &own);
    let mut want = expect[..4].to_vec();
    want.push(own);
    eventually("child's own batch cached", || read_all(&e, "child").1 == 5);
    assert_eq!(read_all(&e, "child"), (want, 5));
}

/// Large stored batches go to blob files, so SST blocks stay small (issue
/// 16, finding 2), and they read back exactly, before and after a reopen.
#[test]
fn large_batches_live_in_blob_files_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    {
        let e = open(&dir);
        e.create_stream("big", opaque()).unwrap();
        e.create_stream("small", opaque()).unwrap();
        e.append(
            "big",
            AppendRequest {
                records: vec![Record::new(big.clone())],
                ..Default::default()
            },
        )
        .unwrap();
        e.append("small", req(&["s"])).unwrap();
        e.flush().unwrap();
        let blobs = e.rocksdb_property_sum("rocksdb.num-blob-files");
        assert!(blobs >= 1, "no blob file after a 2 MiB append and a flush");
        e.shutdown();
    }
    let e = open(&dir);
    let r = e.read("big", 0, 4 << 20).unwrap();
    assert_eq!(r.batches[0].get(0).unwrap().payload, &big[..]);
    assert_eq!(read_all(&e, "small").0, vec![b"s".to_vec()]);
    e.shutdown();
}
