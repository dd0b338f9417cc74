//! Criterion benchmarks of the Weir storage engine against raw RocksDB.
//!
//! Every append case is measured three times, back to back, on fresh data
//! directories, so that the engine's overhead shows as a ratio against RocksDB
//! on the same machine in the same run:
//!
//! * `engine`: `Engine::append` of one request of `batch` records of 100 B.
//! * `raw_puts`: one RocksDB `WriteBatch` holding `batch` puts of 100 B, one
//!   per record (the reference: the same records per `WriteBatch`).
//! * `raw_value`: one RocksDB `WriteBatch` holding one put of the `batch`
//!   records' bytes concatenated, which is what the engine stores (one value
//!   per append), so it isolates the engine's own overhead.
//!
//! Both raw variants use a fresh DB opened with the engine's options and the
//! sync flag of the durability mode. `append_concurrent` submits many
//! `append_async` requests at once to show group commit; `read_catchup` reads
//! a whole stream back from SST files, next to a raw iterator scan.
//!
//! Results are in records per second (`Throughput::Elements`); every record
//! carries 100 B of payload, so MB/s is records/s × 100 / 10⁶.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use futures::future::join_all;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options,
    ReadOptions, WriteBatch, WriteOptions, DB,
};
use tempfile::TempDir;
use weir_storage::{
    AppendRequest, Durability, Engine, EngineConfig, Record, StreamConfig, ALL_CFS,
};

// The engine is measured with the allocator the server ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Payload size of every record, as the issue specifies.
const RECORD_BYTES: usize = 100;
/// Distinct payloads cycled through. A multiple of every batch size, so that
/// one batch is always a contiguous slice of the pool (the `raw_value` case
/// puts it without copying, as cheaply as RocksDB allows).
const POOL_RECORDS: u64 = 8_000;
/// Records per append request (and per raw `WriteBatch`).
const BATCHES: [usize; 3] = [1, 100, 1000];
/// Streams the appends rotate over.
const STREAMS: [usize; 2] = [1, 1000];
/// Requests in flight at once in the group-commit cases.
const INFLIGHT: usize = 64;
/// Records per append in the group-commit cases.
const CONCURRENT_BATCHES: [usize; 2] = [1, 100];
/// Records in the stream read back by the catch-up cases (10 MB of payload).
const READ_RECORDS: u64 = 100_000;
/// Records per stored append in the catch-up cases: one value per record and
/// one value per 1000 records bracket what a reader meets.
const READ_BATCHES: [usize; 2] = [1, 1000];
/// Byte budget of one `Engine::read` call, as a follower's default catch-up read.
const READ_BUDGET: usize = 1 << 20;
/// Column family holding record batches in the engine (see `keys.rs`).
const CF_WAL: &str = "wal";

/// The durability mode as it appears in benchmark ids.
fn mode_name(d: Durability) -> &'static str {
    match d {
        Durability::Sync => "sync",
        Durability::Buffered => "buffered",
    }
}

/// Deterministic, incompressible payloads, so that LZ4 cannot flatter either
/// side and every run writes the same bytes.
struct Payloads {
    data: Bytes,
}

impl Payloads {
    fn new() -> Self {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut data = Vec::with_capacity(POOL_RECORDS as usize * RECORD_BYTES);
        while data.len() < POOL_RECORDS as usize * RECORD_BYTES {
            // xorshift64: cheap, and good enough to defeat LZ4.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        data.truncate(POOL_RECORDS as usize * RECORD_BYTES);
        Payloads {
            data: Bytes::from(data),
        }
    }

    /// Payload of global record number `n` (a shared slice, no copy).
    fn record(&self, n: u64) -> Bytes {
        let at = (n % POOL_RECORDS) as usize * RECORD_BYTES;
        self.data.slice(at..at + RECORD_BYTES)
    }

    /// The concatenated payloads of records `first..first + count`; `first` is
    /// a multiple of `count`, which divides the pool, so this never wraps.
    fn run(&self, first: u64, count: usize) -> &[u8] {
        let at = (first % POOL_RECORDS) as usize * RECORD_BYTES;
        &self.data[at..at + count * RECORD_BYTES]
    }

    fn request(&self, first: u64, count: usize) -> AppendRequest {
        AppendRequest {
            records: (0..count as u64)
                .map(|i| Record::new(self.record(first + i)))
                .collect(),
            ..Default::default()
        }
    }
}

/// Where the next append goes: appends rotate over the streams, so every
/// stream advances by `batch` records every `streams` appends.
struct Cursor {
    streams: usize,
    batch: usize,
    turn: u64,
}

/// One append's placement.
struct Slot {
    /// Stream index, `0..streams`.
    stream: usize,
    /// Global record number of its first record (picks the payloads).
    record: u64,
    /// Offset of its first record within the stream (the raw key).
    offset: u64,
}

impl Cursor {
    fn new(streams: usize, batch: usize) -> Self {
        Cursor {
            streams,
            batch,
            turn: 0,
        }
    }

    fn next_slot(&mut self) -> Slot {
        let t = self.turn;
        self.turn += 1;
        Slot {
            stream: (t % self.streams as u64) as usize,
            record: t * self.batch as u64,
            offset: t / self.streams as u64 * self.batch as u64,
        }
    }
}

/// The engine's `wal` key layout, so raw RocksDB sorts and compares the same keys.
fn wal_key(sid: u64, offset: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&sid.to_be_bytes());
    k[8..].copy_from_slice(&offset.to_be_bytes());
    k
}

/// Stream ids start at 1 in the engine; raw keys use the same ids.
fn sid(stream: usize) -> u64 {
    stream as u64 + 1
}

/// Stream names sort like their indices, as in a real multi-stream load.
fn stream_name(i: usize) -> String {
    format!("s{i:04}")
}

/// An engine on a fresh directory with `streams` empty streams.
struct EngineFixture {
    engine: Engine,
    names: Vec<String>,
    // Dropped after the engine (field order), which closes RocksDB first.
    _dir: TempDir,
}

impl EngineFixture {
    fn new(durability: Durability, streams: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let names: Vec<String> = (0..streams).map(stream_name).collect();
        // Each create is its own fsynced group; creating 1000 streams in sync
        // mode would cost seconds of setup per case, so create them buffered
        // and reopen in the mode under test.
        {
            let setup = open_engine(dir.path(), Durability::Buffered);
            for n in &names {
                setup
                    .create_stream(n, StreamConfig::new("application/octet-stream"))
                    .expect("create stream");
            }
            setup.shutdown();
        }
        EngineFixture {
            engine: open_engine(dir.path(), durability),
            names,
            _dir: dir,
        }
    }
}

/// Opens with production defaults except durability, so the numbers hold for a
/// real server.
fn open_engine(path: &Path, durability: Durability) -> Engine {
    Engine::open(
        path,
        EngineConfig {
            durability,
            ..Default::default()
        },
    )
    .expect("open engine")
}

/// A fresh RocksDB opened exactly as `weir-storage`'s `open_db` opens the
/// engine's (same column families, table, compression, write buffer and DB
/// options), so raw and engine numbers differ only by the engine's own work.
/// Keep in sync with storage/src/engine.rs.
struct RawDb {
    db: DB,
    write_opts: WriteOptions,
    _dir: TempDir,
}

impl RawDb {
    fn new(durability: Durability) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = Cache::new_lru_cache(EngineConfig::default().block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_block_size(32 << 10);
        let cf_opts = |write_buffer: usize| {
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_write_buffer_size(write_buffer);
            o.set_level_compaction_dynamic_level_bytes(true);
            o
        };
        let cfs: Vec<_> = ALL_CFS
            .iter()
            .map(|name| {
                let wb = if *name == CF_WAL { 128 << 20 } else { 16 << 20 };
                ColumnFamilyDescriptor::new(*name, cf_opts(wb))
            })
            .collect();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(512 << 20);
        let db = DB::open_cf_descriptors(&opts, dir.path(), cfs).expect("open raw rocksdb");
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(durability == Durability::Sync);
        RawDb {
            db,
            write_opts,
            _dir: dir,
        }
    }

    fn wal(&self) -> &ColumnFamily {
        self.db.cf_handle(CF_WAL).expect("wal column family")
    }

    /// One `WriteBatch` with one put per record.
    fn write_puts(&self, p: &Payloads, slot: &Slot, batch: usize) {
        let cf = self.wal();
        let mut wb = WriteBatch::default();
        for i in 0..batch as u64 {
            let at = (slot.record + i) % POOL_RECORDS * RECORD_BYTES as u64;
            let v = &p.data[at as usize..at as usize + RECORD_BYTES];
            wb.put_cf(cf, wal_key(sid(slot.stream), slot.offset + i), v);
        }
        self.db.write_opt(wb, &self.write_opts).expect("raw write");
    }

    /// One `WriteBatch` with one put of all the records' bytes.
    fn write_value(&self, p: &Payloads, slot: &Slot, batch: usize) {
        let mut wb = WriteBatch::default();
        wb.put_cf(
            self.wal(),
            wal_key(sid(slot.stream), slot.offset),
            p.run(slot.record, batch),
        );
        self.db.write_opt(wb, &self.write_opts).expect("raw write");
    }
}

/// Criterion settings shared by every group, bounded so a full run takes minutes.
fn configure(g: &mut BenchmarkGroup<'_, WallTime>, durability: Durability) {
    // Every iteration grows the database, so equal-sized samples (flat) are
    // more honest than criterion's linear ramp, and bound the run time of
    // slow cases (one fsync per append in sync mode).
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    // fsync latency on a shared VM disk swings widely; sync cases get more
    // time so that their medians settle.
    g.measurement_time(Duration::from_secs(match durability {
        Durability::Sync => 5,
        Durability::Buffered => 3,
    }));
}

/// Serial appends: one request at a time, waiting for each to be durable.
fn bench_append(c: &mut Criterion, payloads: &Payloads) {
    for durability in [Durability::Sync, Durability::Buffered] {
        let mut g = c.benchmark_group(format!("append_{}", mode_name(durability)));
        configure(&mut g, durability);
        for streams in STREAMS {
            for batch in BATCHES {
                g.throughput(Throughput::Elements(batch as u64));
                let param = format!("streams={streams}/batch={batch}");

                // Fixtures are built on first call so that a filtered run
                // skips their setup, and live until the case is done.
                let mut fx: Option<(EngineFixture, Cursor)> = None;
                g.bench_function(BenchmarkId::new("engine", &param), |b| {
                    let (f, cur) = fx.get_or_insert_with(|| {
                        (
                            EngineFixture::new(durability, streams),
                            Cursor::new(streams, batch),
                        )
                    });
                    b.iter_custom(|iters| {
                        // Building the request is the client's work, not the engine's.
                        let reqs: Vec<(usize, AppendRequest)> = (0..iters)
                            .map(|_| {
                                let s = cur.next_slot();
                                (s.stream, payloads.request(s.record, batch))
                            })
                            .collect();
                        let start = Instant::now();
                        for (s, req) in reqs {
                            black_box(f.engine.append(&f.names[s], req).expect("append"));
                        }
                        start.elapsed()
                    });
                });
                drop(fx);

                for (name, one_value) in [("raw_puts", false), ("raw_value", true)] {
                    let mut fx: Option<(RawDb, Cursor)> = None;
                    g.bench_function(BenchmarkId::new(name, &param), |b| {
                        let (db, cur) = fx.get_or_insert_with(|| {
                            (RawDb::new(durability), Cursor::new(streams, batch))
                        });
                        b.iter_custom(|iters| {
                            // Filling the WriteBatch copies the bytes, as the
                            // engine's encoding does, so it is timed.
                            let start = Instant::now();
                            for _ in 0..iters {
                                let s = cur.next_slot();
                                if one_value {
                                    db.write_value(payloads, &s, batch);
                                } else {
                                    db.write_puts(payloads, &s, batch);
                                }
                            }
                            start.elapsed()
                        });
                    });
                    drop(fx);
                }
            }
        }
        g.finish();
    }
}

/// Group commit: `INFLIGHT` appends submitted at once with `append_async`;
/// the commit thread writes them as few `WriteBatch`es with one fsync each.
fn bench_append_concurrent(c: &mut Criterion, payloads: &Payloads) {
    for durability in [Durability::Sync, Durability::Buffered] {
        let mut g = c.benchmark_group(format!("append_concurrent_{}", mode_name(durability)));
        configure(&mut g, durability);
        for streams in STREAMS {
            for batch in CONCURRENT_BATCHES {
                g.throughput(Throughput::Elements((INFLIGHT * batch) as u64));
                let param = format!("streams={streams}/batch={batch}/inflight={INFLIGHT}");
                let mut fx: Option<(EngineFixture, Cursor)> = None;
                g.bench_function(BenchmarkId::new("engine", &param), |b| {
                    let (f, cur) = fx.get_or_insert_with(|| {
                        (
                            EngineFixture::new(durability, streams),
                            Cursor::new(streams, batch),
                        )
                    });
                    b.iter_custom(|iters| {
                        let rounds: Vec<Vec<(usize, AppendRequest)>> = (0..iters)
                            .map(|_| {
                                (0..INFLIGHT)
                                    .map(|_| {
                                        let s = cur.next_slot();
                                        (s.stream, payloads.request(s.record, batch))
                                    })
                                    .collect()
                            })
                            .collect();
                        let (engine, names) = (&f.engine, &f.names);
                        let start = Instant::now();
                        for round in rounds {
                            // join_all polls every future once before waiting,
                            // so all requests are queued before the first commit
                            // finishes and the commit thread can group them.
                            let all = join_all(
                                round
                                    .into_iter()
                                    .map(|(s, req)| engine.append_async(&names[s], req)),
                            );
                            for r in futures::executor::block_on(all) {
                                black_box(r.expect("append"));
                            }
                        }
                        start.elapsed()
                    });
                });
                drop(fx);
            }
        }
        g.finish();
    }
}

/// Counts `.sst` files, to check that catch-up reads hit table files rather
/// than the memtable.
fn sst_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read data dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sst"))
        })
        .count()
}

/// An engine holding one stream of `READ_RECORDS` records in appends of
/// `batch`, reopened so that the data sits in SST files (RocksDB flushes
/// the recovered memtable on open), as it would for a reader catching up
/// on older data.
fn filled_engine(payloads: &Payloads, batch: usize) -> EngineFixture {
    let f = EngineFixture::new(Durability::Buffered, 1);
    let mut cur = Cursor::new(1, batch);
    let appends = READ_RECORDS as usize / batch;
    let mut done = 0;
    while done < appends {
        // Concurrent submission only to make setup quick.
        let n = (appends - done).min(256);
        let reqs: Vec<AppendRequest> = (0..n)
            .map(|_| payloads.request(cur.next_slot().record, batch))
            .collect();
        let all = join_all(
            reqs.into_iter()
                .map(|r| f.engine.append_async(&f.names[0], r)),
        );
        for r in futures::executor::block_on(all) {
            r.expect("fill append");
        }
        done += n;
    }
    let EngineFixture {
        engine,
        names,
        _dir: dir,
    } = f;
    engine.shutdown();
    drop(engine);
    let engine = open_engine(dir.path(), Durability::Buffered);
    assert!(
        sst_files(dir.path()) > 0,
        "recovered data should be flushed to SST files"
    );
    EngineFixture {
        engine,
        names,
        _dir: dir,
    }
}

/// A raw DB holding the same bytes as [`filled_engine`], one value per
/// `batch` records, flushed to SST files.
fn filled_raw(payloads: &Payloads, batch: usize) -> RawDb {
    let db = RawDb::new(Durability::Buffered);
    let mut cur = Cursor::new(1, batch);
    for _ in 0..READ_RECORDS as usize / batch {
        db.write_value(payloads, &cur.next_slot(), batch);
    }
    db.db.flush_cf(db.wal()).expect("flush");
    db
}

/// Catch-up reads of a whole stream from offset 0, against a raw iterator
/// scan of the same values.
fn bench_read(c: &mut Criterion, payloads: &Payloads) {
    let mut g = c.benchmark_group("read_catchup");
    // Reads never fsync.
    configure(&mut g, Durability::Buffered);
    g.throughput(Throughput::Elements(READ_RECORDS));
    for batch in READ_BATCHES {
        let param = format!("records={READ_RECORDS}/batch={batch}");
        let mut fx: Option<EngineFixture> = None;
        g.bench_function(BenchmarkId::new("engine", &param), |b| {
            let f = fx.get_or_insert_with(|| filled_engine(payloads, batch));
            b.iter(|| {
                // Paged like a follower's catch-up: READ_BUDGET per call.
                let (mut from, mut records) = (0u64, 0usize);
                while from < READ_RECORDS {
                    let r = f.engine.read(&f.names[0], from, READ_BUDGET).expect("read");
                    records += r.record_count();
                    from = r.next_offset;
                    black_box(&r.batches);
                }
                assert_eq!(records as u64, READ_RECORDS);
            });
        });
        drop(fx);

        // `raw_scan` only looks at each value in place: the floor. `raw_scan_copy`
        // also copies each value out, as anything that hands the bytes to
        // another thread or socket later must, which is what the engine does.
        let mut fx: Option<RawDb> = None;
        for (name, copy) in [("raw_scan", false), ("raw_scan_copy", true)] {
            g.bench_function(BenchmarkId::new(name, &param), |b| {
                let db = fx.get_or_insert_with(|| filled_raw(payloads, batch));
                b.iter(|| {
                    let mut opts = ReadOptions::default();
                    opts.set_iterate_lower_bound(wal_key(sid(0), 0).to_vec());
                    opts.set_iterate_upper_bound(wal_key(sid(0), READ_RECORDS).to_vec());
                    let mut it = db.db.raw_iterator_cf_opt(db.wal(), opts);
                    it.seek_to_first();
                    let mut bytes = 0usize;
                    while let Some(v) = it.value() {
                        bytes += if copy {
                            black_box(Bytes::copy_from_slice(v)).len()
                        } else {
                            black_box(v).len()
                        };
                        it.next();
                    }
                    it.status().expect("scan");
                    assert_eq!(bytes as u64, READ_RECORDS * RECORD_BYTES as u64);
                });
            });
        }
        drop(fx);
    }
    g.finish();
}

/// Runs every group in one process; a criterion filter argument skips the
/// setup of filtered-out cases (fixtures are built lazily).
fn main() {
    // Plots are skipped: they add minutes of rendering and the numbers are
    // what RESULTS.md records.
    let mut c = Criterion::default().without_plots().configure_from_args();
    let payloads = Payloads::new();
    bench_append(&mut c, &payloads);
    bench_append_concurrent(&mut c, &payloads);
    bench_read(&mut c, &payloads);
    c.final_summary();
}
