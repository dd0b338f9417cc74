//! Crash test: a child process appends in `sync` mode from several threads
//! and logs every acknowledged append to a side file; the parent kills it
//! with SIGKILL at random moments, reopens the same data directory and checks
//! that every acknowledged record is there, at its acknowledged offset, with
//! its payload, and that the idempotent-producer state survived with it.
//!
//! The child is this test binary re-executed with `WEIR_CRASH_DIR` set,
//! running only the (otherwise ignored and inert) `child_main` test.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_storage::{
    AppendRequest, Durability, Engine, EngineConfig, Error, ProducerTag, Record, StreamConfig,
};

const THREADS: usize = 4;
const ROUNDS: u64 = 32;
const SHARED: &str = "shared";
const READY: &str = "WEIR-CRASH-CHILD-READY";

// ---------------------------------------------------------------------------
// shared helpers

/// A small deterministic PRNG (splitmix64); no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// FNV-1a over the payloads of one append, each followed by its length so
/// that record boundaries count.
fn hash_payloads<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for p in payloads {
        p.iter().copied().for_each(&mut eat);
        (p.len() as u32)
            .to_le_bytes()
            .into_iter()
            .for_each(&mut eat);
    }
    h
}

fn own_stream(t: usize) -> String {
    format!("own-{t}")
}

fn producer_id(t: usize) -> String {
    format!("p{t}")
}

fn stream_names() -> Vec<String> {
    let mut v: Vec<String> = (0..THREADS).map(own_stream).collect();
    v.push(SHARED.to_string());
    v
}

fn stream_config() -> StreamConfig {
    StreamConfig::new("application/octet-stream")
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        durability: Durability::Sync,
        block_cache_bytes: 8 << 20,
        ..EngineConfig::default()
    }
}

/// One acknowledged append as logged by the child.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    stream: String,
    first_offset: u64,
    count: u64,
    producer: String,
    epoch: u64,
    seq: u64,
    hash: u64,
}

impl Ack {
    fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {:016x}\n",
            self.stream,
            self.first_offset,
            self.count,
            self.producer,
            self.epoch,
            self.seq,
            self.hash
        )
    }

    fn parse(line: &str) -> Ack {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 7, "malformed side-file line {line:?}");
        Ack {
            stream: f[0].to_string(),
            first_offset: f[1].parse().unwrap(),
            count: f[2].parse().unwrap(),
            producer: f[3].to_string(),
            epoch: f[4].parse().unwrap(),
            seq: f[5].parse().unwrap(),
            hash: u64::from_str_radix(f[6], 16).unwrap(),
        }
    }
}

/// The payload of record `i` of the append (stream, producer, epoch, seq):
/// self-describing, so the parent can attribute every stored record.
fn payload(stream: &str, producer: &str, epoch: u64, seq: u64, i: u64, filler: usize) -> Vec<u8> {
    let mut p = format!("{stream}|{producer}|{epoch}|{seq}|{i}|").into_bytes();
    p.extend(std::iter::repeat_n(b'a' + (seq % 26) as u8, filler));
    p
}

fn parse_payload(p: &[u8]) -> (String, String, u64, u64, u64) {
    let s = std::str::from_utf8(p).expect("payload is UTF-8");
    let f: Vec<&str> = s.splitn(6, '|').collect();
    assert_eq!(f.len(), 6, "foreign record {s:?}");
    (
        f[0].to_string(),
        f[1].to_string(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
        f[4].parse().unwrap(),
    )
}

// ---------------------------------------------------------------------------
// the child

#[test]
#[ignore = "the crash test's child process; run by `kill_and_recover`"]
fn child_main() {
    let Ok(dir) = std::env::var("WEIR_CRASH_DIR") else {
        return;
    };
    let round: u64 = std::env::var("WEIR_CRASH_ROUND").unwrap().parse().unwrap();
    // Never outlive the parent (its end of stdin closes when it dies), and
    // never run unboundedly even if it hangs: the parent kills well before.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(2);
    });
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(3);
    });
    let dir = PathBuf::from(dir);
    let engine = Engine::open(dir.join("data"), engine_config()).expect("child: open");
    for name in stream_names() {
        engine
            .create_stream(&name, stream_config())
            .expect("child: create");
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("acks.log"))
        .expect("child: side file");
    let log = Arc::new(Mutex::new(log));
    println!("{READY}");
    std::io::stdout().flush().unwrap();

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = engine.clone();
            let log = Arc::clone(&log);
            std::thread::spawn(move || append_forever(&engine, &log, round, t))
        })
        .collect();
    for h in threads {
        h.join().expect("child: appender panicked");
    }
}

fn append_forever(engine: &Engine, log: &Mutex<File>, round: u64, t: usize) {
    let mut rng =
        Rng(round.wrapping_mul(1_000_003) ^ (t as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D));
    let producer = producer_id(t);
    // Each round is a new producer session: a new epoch, seqs from 0.
    let epoch = round;
    let mut seqs: HashMap<String, u64> = HashMap::new();
    loop {
        let stream = if rng.range(0, 2) == 0 {
            SHARED.to_string()
        } else {
            own_stream(t)
        };
        let seq = *seqs.entry(stream.clone()).or_insert(0);
        let count = rng.range(1, 8);
        // One append in sixteen is large enough for the file cache, so kills
        // also land while its writer thread is filling segment files.
        let large = rng.range(0, 15) == 0;
        let payloads: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let filler = if large { 70_000 } else { rng.range(0, 300) };
                payload(&stream, &producer, epoch, seq, i, filler as usize)
            })
            .collect();
        let req = AppendRequest {
            records: payloads.iter().map(|p| Record::new(p.clone())).collect(),
            producer: Some(ProducerTag {
                id: producer.clone(),
                epoch,
                seq,
            }),
            ..Default::default()
        };
        let res = engine.append(&stream, req.clone()).expect("child: append");
        assert!(
            !res.duplicate,
            "child: fresh seq {seq} reported as duplicate"
        );
        assert_eq!(res.next_offset - res.first_offset, count);
        let ack = Ack {
            stream: stream.clone(),
            first_offset: res.first_offset,
            count,
            producer: producer.clone(),
            epoch,
            seq,
            hash: hash_payloads(payloads.iter().map(Vec::as_slice)),
        };
        {
            // One write per line, so a kill leaves at most one partial last line.
            let mut f = log.lock().unwrap();
            f.write_all(ack.line().as_bytes())
                .expect("child: side file write");
            f.flush().expect("child: side file flush");
        }
        // Now and then, a client retry of the acknowledged append.
        if rng.range(0, 9) == 0 {
            let dup = engine.append(&stream, req).expect("child: retry");
            assert!(dup.duplicate, "child: retry of seq {seq} was written again");
            assert_eq!(
                (dup.first_offset, dup.next_offset),
                (res.first_offset, res.next_offset)
            );
        }
        seqs.insert(stream, seq + 1);
    }
}

// ---------------------------------------------------------------------------
// the parent

/// Copies this test binary into `dir`, so the child is exactly the parent's
/// code even if cargo rebuilds (replaces) the binary during the test.
fn child_exe(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let copy = dir.join("crash-child");
    std::fs::copy(&exe, &copy).expect("copy the test binary");
    copy
}

fn spawn_child(exe: &Path, dir: &Path, round: u64) -> Child {
    let stderr = File::create(dir.join(format!("child-{round}.stderr"))).unwrap();
    Command::new(exe)
        .args([
            "child_main",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WEIR_CRASH_DIR", dir)
        .env("WEIR_CRASH_ROUND", round.to_string())
        // The child's lifeline: it exits when this pipe closes, so it can
        // never outlive a parent that died or was killed.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn child")
}

fn child_failed(dir: &Path, round: u64, why: &str) -> ! {
    let mut err = String::new();
    if let Ok(mut f) = File::open(dir.join(format!("child-{round}.stderr"))) {
        let _ = f.read_to_string(&mut err);
    }
    panic!("round {round}: child {why}; its stderr:\n{err}");
}

/// Waits until the child prints its ready line (libtest may print it after
/// its own "test child_main ... "). False if the child's output ended first;
/// a child that neither gets ready nor exits for a minute fails the test.
fn wait_ready(child: &mut Child, dir: &Path, round: u64) -> bool {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = BufReader::new(out);
        let mut line = String::new();
        loop {
            line.clear();
            match out.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(false);
                    return;
                }
                Ok(_) if line.contains(READY) => {
                    let _ = tx.send(true);
                    // Keep reading (and discarding) until the child is gone.
                    let _ = std::io::copy(&mut out, &mut std::io::sink());
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(ready) => ready,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            child_failed(dir, round, "was not ready after a minute");
        }
    }
}

/// Reads the acknowledged appends, first cutting off a partial last line
/// left by a kill in the middle of a write (it was not logged, so it does
/// not count as acknowledged, and the next round must not extend it).
fn read_acks(dir: &Path) -> Vec<Ack> {
    let path = dir.join("acks.log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(complete as u64).unwrap();
    }
    text[..complete].lines().map(Ack::parse).collect()
}

/// What the stored data says about one append.
#[derive(Debug, Clone, Copy)]
struct Stored {
    first_offset: u64,
    count: u64,
    hash: u64,
}

/// The appends found in a stream: producer -> epoch -> seq -> stored append.
type StoredAppends = BTreeMap<String, BTreeMap<u64, BTreeMap<u64, Stored>>>;

/// An append being reassembled from consecutive records: its
/// (producer, epoch, seq), first offset and payloads so far.
type Partial = Option<((String, u64, u64), u64, Vec<Vec<u8>>)>;

/// Verifies one stream's stored records against its acknowledged appends.
fn verify_stream(e: &Engine, name: &str, acks: &[&Ack], round: u64) -> StoredAppends {
    let mut by_producer = StoredAppends::new();
    let head = match e.head(name) {
        Ok(h) => h,
        Err(Error::NotFound) => {
            assert!(
                acks.is_empty(),
                "round {round}: stream {name} with acknowledged appends is gone"
            );
            return by_producer;
        }
        Err(err) => panic!("round {round}: head {name}: {err}"),
    };
    assert!(!head.closed);

    // Walk the stream from 0: offsets must be dense, and records must come in
    // whole appends, each (producer, epoch, seq) at most once.
    let mut next = 0u64;
    let mut cur: Partial = None;
    let finish = |cur: &mut Partial, by_producer: &mut StoredAppends| {
        if let Some(((p, ep, seq), first, recs)) = cur.take() {
            let stored = Stored {
                first_offset: first,
                count: recs.len() as u64,
                hash: hash_payloads(recs.iter().map(Vec::as_slice)),
            };
            let prev = by_producer
                .entry(p.clone())
                .or_default()
                .entry(ep)
                .or_default()
                .insert(seq, stored);
            assert!(
                prev.is_none(),
                "round {round}: {name}: append ({p}, {ep}, {seq}) stored twice: at {} and at {first}",
                prev.unwrap().first_offset
            );
        }
    };
    while next < head.next_offset {
        let r = e
            .read(name, next, 1 << 20)
            .unwrap_or_else(|err| panic!("round {round}: read {name}@{next}: {err}"));
        assert!(r.record_count() > 0);
        for b in &r.batches {
            for rec in b.iter() {
                assert_eq!(rec.offset, next, "round {round}: {name}: offsets not dense");
                next += 1;
                let (s, p, ep, seq, i) = parse_payload(rec.payload);
                assert_eq!(s, name, "round {round}: record of {s} found in {name}");
                let key = (p, ep, seq);
                let continues =
                    matches!(&cur, Some((k, _, recs)) if *k == key && recs.len() as u64 == i);
                if !continues {
                    assert_eq!(
                        i, 0,
                        "round {round}: {name}@{}: append {key:?} is torn",
                        rec.offset
                    );
                    finish(&mut cur, &mut by_producer);
                    cur = Some((key, rec.offset, Vec::new()));
                }
                cur.as_mut().unwrap().2.push(rec.payload.to_vec());
            }
        }
    }
    finish(&mut cur, &mut by_producer);
    assert_eq!(e.tail(name).unwrap().0, next);

    // Per producer: each epoch's seqs are 0..=n without a gap, appends are
    // stored in seq order, and later epochs come after earlier ones.
    for (p, epochs) in &by_producer {
        let mut last_offset = None;
        for (ep, seqs) in epochs {
            for (i, (seq, st)) in seqs.iter().enumerate() {
                assert_eq!(
                    *seq, i as u64,
                    "round {round}: {name}: producer {p} epoch {ep} has a seq gap"
                );
                assert!(
                    last_offset < Some(st.first_offset),
                    "round {round}: {name}: {p} out of order"
                );
                last_offset = Some(st.first_offset);
            }
        }
    }

    // Every acknowledged append is there, where it was acknowledged, intact.
    for a in acks {
        let st = by_producer
            .get(&a.producer)
            .and_then(|m| m.get(&a.epoch))
            .and_then(|m| m.get(&a.seq))
            .unwrap_or_else(|| panic!("round {round}: acknowledged append lost: {a:?}"));
        assert_eq!(
            (st.first_offset, st.count, st.hash),
            (a.first_offset, a.count, a.hash),
            "round {round}: acknowledged append {a:?} stored differently"
        );
    }
    by_producer
}

/// Retries of committed appends must be deduplicated after the restart.
fn verify_dedup(
    e: &Engine,
    name: &str,
    acks: &[&Ack],
    stored: &StoredAppends,
    round: u64,
) -> usize {
    let mut checked = 0;
    let tail = e.tail(name).map(|t| t.0).unwrap_or(0);
    for (p, epochs) in stored {
        let (&cur_epoch, seqs) = epochs.last_key_value().unwrap();
        let (&last_seq, last) = seqs.last_key_value().unwrap();
        let retry = |epoch: u64, seq: u64| {
            e.append(
                name,
                AppendRequest {
                    records: vec![Record::new("retry: must not be written")],
                    producer: Some(ProducerTag {
                        id: p.clone(),
                        epoch,
                        seq,
                    }),
                    ..Default::default()
                },
            )
        };
        // The last acknowledged append of this producer on this stream.
        if let Some(a) = acks.iter().rev().find(|a| &a.producer == p) {
            if a.epoch == cur_epoch {
                let res = retry(a.epoch, a.seq)
                    .unwrap_or_else(|err| panic!("round {round}: retry {a:?}: {err}"));
                assert!(
                    res.duplicate,
                    "round {round}: retry of acknowledged {a:?} was not deduplicated"
                );
                if a.seq == last_seq {
                    assert_eq!(
                        (res.first_offset, res.next_offset),
                        (a.first_offset, a.first_offset + a.count)
                    );
                }
            } else {
                // A later session committed (unacknowledged) appends: the old
                // session is fenced off.
                assert!(a.epoch < cur_epoch);
                assert_eq!(
                    retry(a.epoch, a.seq),
                    Err(Error::StaleEpoch { current: cur_epoch })
                );
            }
            checked += 1;
        }
        // The last committed append of the producer's current session.
        let res =
            retry(cur_epoch, last_seq).unwrap_or_else(|err| panic!("round {round}: retry: {err}"));
        assert!(
            res.duplicate,
            "round {round}: {name}: retry of ({p}, {cur_epoch}, {last_seq}) written"
        );
        assert_eq!(
            (res.first_offset, res.next_offset),
            (last.first_offset, last.first_offset + last.count)
        );
        // And the next seq would be a gap-free continuation (not sent: that
        // would write), while skipping one is refused.
        assert_eq!(
            retry(cur_epoch, last_seq + 2),
            Err(Error::SequenceGap {
                expected: last_seq + 1,
                received: last_seq + 2
            })
        );
    }
    assert_eq!(
        e.tail(name).map(|t| t.0).unwrap_or(0),
        tail,
        "round {round}: retries wrote records"
    );
    checked
}

fn verify(dir: &Path, round: u64) -> (usize, u64) {
    let acks = read_acks(dir);
    let e = Engine::open(dir.join("data"), engine_config())
        .unwrap_or_else(|err| panic!("round {round}: reopen after kill failed: {err}"));
    let mut total_records = 0;
    for name in stream_names() {
        let mine: Vec<&Ack> = acks.iter().filter(|a| a.stream == name).collect();
        let stored = verify_stream(&e, &name, &mine, round);
        verify_dedup(&e, &name, &mine, &stored, round);
        total_records += e.tail(&name).map(|t| t.0).unwrap_or(0);
    }
    drop(e);
    (acks.len(), total_records)
}

#[test]
fn kill_and_recover() {
    let started = Instant::now();
    let seed = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test seed {seed} (set WEIR_CRASH_SEED to repeat the kill schedule)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exe = child_exe(dir);

    let mut last_acks = 0;
    for round in 1..=ROUNDS {
        let mut child = spawn_child(&exe, dir, round);
        // Most rounds kill while appends are in full swing; every fourth
        // kills at a random moment from process start, which may fall in
        // the middle of opening and recovering the data directory.
        let delay = if round.is_multiple_of(4) {
            Duration::from_millis(rng.range(0, 200))
        } else {
            if !wait_ready(&mut child, dir, round) {
                let _ = child.wait();
                child_failed(dir, round, "exited before it was ready");
            }
            Duration::from_millis(rng.range(50, 400))
        };
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            child_failed(dir, round, &format!("exited on its own ({status})"));
        }
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();

        let (acks, records) = verify(dir, round);
        eprintln!(
            "round {round:2}: killed after {:3} ms; {acks} acknowledged appends in all (+{}), {records} records stored",
            delay.as_millis(),
            acks - last_acks
        );
        last_acks = acks;
    }
    assert!(
        last_acks >= ROUNDS as usize,
        "the child acknowledged only {last_acks} appends in {ROUNDS} rounds: the test did not exercise anything"
    );
    eprintln!(
        "crash test done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
