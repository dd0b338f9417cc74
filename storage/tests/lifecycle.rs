//! Behaviour tests of a stream's lifecycle: delete, expiry and recovery after
//! reopening the data directory.

mod common;

use common::*;
use weir_storage::StateMode;

// delete

#[test]
fn delete_removes_the_stream_and_a_recreated_one_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", opaque()).unwrap();
    let old_id = e.head("s").unwrap().id;
    e.append("s", tagged(&["a", "b", "c"], "p", 0, 0)).unwrap();
    e.append(
        "s",
        AppendRequest {
            records: recs(&["d"]),
            stream_seq: Some(b"9".to_vec()),
            close: true,
            ..Default::default()
        },
    )
    .unwrap();

    e.delete_stream("s").unwrap();
    assert_eq!(e.head("s"), Err(Error::NotFound));
    assert_eq!(e.tail("s"), Err(Error::NotFound));
    assert!(matches!(e.read("s", 0, 100), Err(Error::NotFound)));
    assert_eq!(e.append("s", req(&["x"])), Err(Error::NotFound));
    assert_eq!(e.delete_stream("s"), Err(Error::NotFound));
    assert!(e.list_streams(None, 10).is_empty());

    let created = e
        .create_stream("s", StreamConfig::new("text/plain"))
        .unwrap();
    assert!(created.created);
    assert_ne!(created.info.id, old_id, "stream ids are never reused");
    assert_eq!(created.info.next_offset, 0);
    assert!(!created.info.closed);
    assert_eq!(created.info.last_stream_seq, None);
    let r = e.read("s", 0, 1 << 20).unwrap();
    assert!(r.batches.is_empty());
    assert_eq!(r.tail, 0);

    // The old producer state and Stream-Seq are gone with the old stream.
    let res = e
        .append(
            "s",
            AppendRequest {
                stream_seq: Some(b"1".to_vec()),
                ..tagged(&["new"], "p", 0, 0)
            },
        )
        .unwrap();
    assert!(!res.duplicate);
    assert_eq!((res.first_offset, res.next_offset), (0, 1));

    // And after a restart nothing of the old stream comes back.
    drop(e);
    let e = open(&dir);
    assert_eq!(e.head("s").unwrap().id, created.info.id);
    assert_eq!(payloads(&read_all(&e, "s")), ["new"]);
    assert_eq!(e.head("s").unwrap().config.content_type, "text/plain");
}

#[test]
fn delete_leaves_other_streams_alone() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    for n in ["a", "b", "c"] {
        e.create_stream(n, opaque()).unwrap();
        e.append(n, req(&[n, n])).unwrap();
        e.append(n, tagged(&[n], "p", 0, 0)).unwrap();
    }
    e.delete_stream("b").unwrap();
    drop(e);
    let e = open(&dir);
    assert_eq!(payloads(&read_all(&e, "a")), ["a", "a", "a"]);
    assert_eq!(payloads(&read_all(&e, "c")), ["c", "c", "c"]);
    assert_eq!(e.head("b"), Err(Error::NotFound));
    assert!(e.append("c", tagged(&["c"], "p", 0, 0)).unwrap().duplicate);
}

// expiry

#[test]
fn stream_with_expiry_in_the_past_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    let mut cfg = opaque();
    cfg.expires_at_ms = Some(now_ms() - 1_000);
    e.create_stream("gone", cfg.clone()).unwrap();
    e.create_stream("kept", opaque()).unwrap();
    assert_eq!(e.head("gone"), Err(Error::NotFound));
    assert_eq!(e.append("gone", req(&["x"])), Err(Error::NotFound));
    assert!(matches!(e.read("gone", 0, 10), Err(Error::NotFound)));
    assert!(matches!(
        e.follow("gone", FollowFrom::Start),
        Err(Error::NotFound)
    ));
    assert_eq!(
        e.list_streams(None, 10)
            .into_iter()
            .map(|i| i.name)
            .collect::<Vec<_>>(),
        ["kept"]
    );
    // Creating it again makes a fresh stream.
    let mut later = opaque();
    later.expires_at_ms = Some(now_ms() + 3_600_000);
    let out = e.create_stream("gone", later).unwrap();
    assert!(out.created);
    assert_eq!(out.info.next_offset, 0);
    e.append("gone", req(&["fresh"])).unwrap();
    assert_eq!(payloads(&read_all(&e, "gone")), ["fresh"]);
}

#[test]
fn stream_with_an_absolute_expiry_disappears_when_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    let mut cfg = opaque();
    let at = now_ms() + 1_000;
    cfg.expires_at_ms = Some(at);
    e.create_stream("s", cfg.clone()).unwrap();
    e.append("s", req(&["a"])).unwrap();
    assert_eq!(e.head("s").unwrap().next_offset, 1);
    // Watch it until it disappears: never before the deadline, and at the
    // latest on the first look after it (by the engine's clock, which is
    // read between the clock readings around each look).
    loop {
        let before = now_ms();
        let head = e.head("s");
        let after = now_ms();
        match head {
            Ok(_) => assert!(
                before < at,
                "still there {} ms after its expiry",
                before - at
            ),
            Err(Error::NotFound) => {
                assert!(after >= at, "gone {} ms before its expiry", at - after);
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(e.head("s"), Err(Error::NotFound));
    assert_eq!(e.append("s", req(&["b"])), Err(Error::NotFound));
    // Recreating with the same name gives an empty stream at offset 0.
    let out = e.create_stream("s", opaque()).unwrap();
    assert!(out.created);
    assert_eq!(e.append("s", req(&["c"])).unwrap().first_offset, 0);
    assert_eq!(payloads(&read_all(&e, "s")), ["c"]);
}

#[test]
fn stream_with_a_ttl_expires_after_idling_and_is_removed_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    let mut cfg = opaque();
    cfg.ttl_secs = Some(1);
    e.create_stream("t", cfg).unwrap();
    e.create_stream("forever", opaque()).unwrap();
    // The append is the last access: it happens between these readings.
    let (first, last) = {
        let before = now_ms();
        e.append("t", tagged(&["a"], "p", 0, 0)).unwrap();
        (before, now_ms())
    };
    assert_eq!(e.head("t").unwrap().next_offset, 1);

    // Idle (`head` is no access) until it expires: not before one TTL
    // after the append, and at the latest on the first look after that.
    loop {
        let before = now_ms();
        let head = e.head("t");
        let after = now_ms();
        match head {
            Ok(_) => assert!(
                before < last + 1_000,
                "still there {} ms after its TTL ran out",
                before - last - 1_000
            ),
            Err(Error::NotFound) => {
                assert!(
                    after >= first + 1_000,
                    "expired {} ms before its TTL ran out",
                    first + 1_000 - after
                );
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(e.head("t"), Err(Error::NotFound));
    assert_eq!(e.append("t", req(&["b"])), Err(Error::NotFound));
    assert!(matches!(e.read("t", 0, 10), Err(Error::NotFound)));

    // Dropping the engine drains the commit queue, so the removal queued by
    // the lookups above (or done by the reaper) is on disk: after a restart,
    // which restarts sliding TTLs, the stream must still be gone.
    drop(e);
    let e = open_with(&dir, fast_reaper);
    assert_eq!(e.head("t"), Err(Error::NotFound));
    assert_eq!(e.head("forever").unwrap().next_offset, 0);
    let mut cfg = opaque();
    cfg.ttl_secs = Some(1);
    let out = e.create_stream("t", cfg).unwrap();
    assert!(out.created);
    assert_eq!(out.info.next_offset, 0);
    // No producer state survived either.
    assert!(!e.append("t", tagged(&["x"], "p", 0, 0)).unwrap().duplicate);
}

/// Touches the stream every 50 ms, alternating appends and reads, until it
/// has lived for 2.5 TTLs of 1 s. Each touch is checked against the clock
/// reading taken when the previous touch began (the stream's last access
/// is no earlier): a touch that ends less than a TTL after it must find the
/// stream alive. A touch later than that (a stalled machine) proves
/// nothing, and the attempt starts over with a new stream, so only a TTL
/// that does not slide can fail the test.
#[test]
fn ttl_slides_with_reads_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    for attempt in 0..5 {
        let name = format!("t{attempt}");
        let mut cfg = opaque();
        cfg.ttl_secs = Some(1);
        // The create is the first access.
        let mut previous = now_ms();
        e.create_stream(&name, cfg).unwrap();
        let created = previous;
        let mut i = 0;
        let lived = loop {
            let began = now_ms();
            let r = if i % 2 == 0 {
                e.append(&name, req(&["x"])).map(|_| ())
            } else {
                e.read(&name, 0, 10).map(|_| ())
            };
            let ended = now_ms();
            match r {
                Ok(()) => {}
                Err(Error::NotFound) if ended >= previous + 1_000 => break false,
                Err(err) => panic!(
                    "touch {i} of {name} ended {} ms after the previous one began: {err:?}",
                    ended - previous
                ),
            }
            if ended >= created + 2_500 {
                break true;
            }
            previous = began;
            i += 1;
            std::thread::sleep(Duration::from_millis(50));
        };
        if lived {
            assert!(e.head(&name).is_ok());
            return;
        }
        eprintln!("attempt {attempt}: a touch came a TTL late; starting over");
    }
    panic!("five attempts stalled for a whole TTL between touches");
}

// recovery

#[test]
fn reopen_restores_records_tails_flags_and_producers() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("open", opaque()).unwrap();
    e.create_stream("closed", StreamConfig::new("text/plain"))
        .unwrap();
    e.create_stream("empty", opaque()).unwrap();
    let mut expected = Vec::new();
    let mut last = None;
    for seq in 0..=10u64 {
        let p: Vec<String> = (0..=seq % 3).map(|i| format!("{seq}.{i}")).collect();
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        let res = e.append("open", tagged(&p, "p", 2, seq)).unwrap();
        assert_eq!(res.first_offset, expected.len() as u64);
        expected.extend(p.iter().map(|s| s.to_string()));
        last = Some((
            seq,
            p.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            res,
        ));
    }
    e.append(
        "open",
        AppendRequest {
            stream_seq: Some(b"m".to_vec()),
            ..req(&["seq"])
        },
    )
    .unwrap();
    expected.push("seq".into());
    e.append("closed", tagged(&["c1", "c2"], "q", 0, 0))
        .unwrap();
    e.append("closed", close_req()).unwrap();
    let ids: Vec<u64> = ["open", "closed", "empty"]
        .iter()
        .map(|n| e.head(n).unwrap().id)
        .collect();
    drop(e);

    for round in 0..3 {
        let e = open(&dir);
        let heads: Vec<_> = ["open", "closed", "empty"]
            .iter()
            .map(|n| e.head(n).unwrap())
            .collect();
        assert_eq!(
            heads.iter().map(|h| h.id).collect::<Vec<_>>(),
            ids,
            "round {round}"
        );
        assert_eq!(heads[0].next_offset, expected.len() as u64);
        assert!(!heads[0].closed);
        assert_eq!(heads[0].last_stream_seq, Some(b"m".to_vec()));
        assert_eq!((heads[1].next_offset, heads[1].closed), (2, true));
        assert_eq!(heads[1].config.content_type, "text/plain");
        assert_eq!(heads[2].next_offset, 0);

        let all = read_all(&e, "open");
        assert_dense_from(&all, 0);
        assert_eq!(payloads(&all), expected, "round {round}");
        assert_eq!(payloads(&read_all(&e, "closed")), ["c1", "c2"]);

        // Producer state survived: a retry of the last seq is a duplicate
        // with the original answer, and writes nothing.
        let (seq, body, res) = last.clone().unwrap();
        let body: Vec<&str> = body.iter().map(String::as_str).collect();
        let dup = e.append("open", tagged(&body, "p", 2, seq)).unwrap();
        assert!(dup.duplicate, "round {round}");
        assert_eq!(
            (dup.first_offset, dup.next_offset),
            (res.first_offset, res.next_offset)
        );
        assert_eq!(
            e.append("open", tagged(&["x"], "p", 2, seq + 2)),
            Err(Error::SequenceGap {
                expected: seq + 1,
                received: seq + 2
            })
        );
        assert_eq!(
            e.append("open", tagged(&["x"], "p", 1, 0)),
            Err(Error::StaleEpoch { current: 2 })
        );
        assert!(
            e.append("closed", tagged(&["c1", "c2"], "q", 0, 0))
                .unwrap()
                .duplicate
        );
        // Stream-Seq and the closed flag survived.
        assert!(matches!(
            e.append(
                "open",
                AppendRequest {
                    stream_seq: Some(b"m".to_vec()),
                    ..req(&["again"])
                }
            ),
            Err(Error::StreamSeqRegression { .. })
        ));
        assert_eq!(
            e.append("closed", req(&["x"])),
            Err(Error::Closed { next_offset: 2 })
        );
        assert_eq!(
            e.tail("open").unwrap().0,
            expected.len() as u64,
            "round {round}"
        );

        // Appends after a restart continue at the recovered tail.
        let body = format!("after-{round}");
        let res = e.append("open", tagged(&[&body], "p", 2, seq + 1)).unwrap();
        assert_eq!(
            (res.first_offset, res.duplicate),
            (expected.len() as u64, false)
        );
        expected.push(body.clone());
        last = Some((seq + 1, vec![body], res));
        // A new stream gets an id never used before.
        let created = e.create_stream(&format!("new-{round}"), opaque()).unwrap();
        assert!(created.created);
        assert!(created.info.id > *ids.iter().max().unwrap() + round);
    }
}

#[test]
fn reopen_after_buffered_appends_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    e.create_stream("s", opaque()).unwrap();
    for i in 0..100 {
        e.append("s", req(&[&i.to_string()])).unwrap();
    }
    e.shutdown();
    assert_eq!(e.append("s", req(&["late"])), Err(Error::ShutDown));
    assert_eq!(
        e.create_stream("t", opaque()).map(|_| ()),
        Err(Error::ShutDown)
    );
    // Reads still work after shutdown.
    assert_eq!(read_all(&e, "s").len(), 100);
    drop(e);
    let e = open(&dir);
    let all = read_all(&e, "s");
    assert_dense_from(&all, 0);
    assert_eq!(
        payloads(&all),
        (0..100).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(e.head("t"), Err(Error::NotFound));
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    match Engine::open(dir.path(), EngineConfig::default()) {
        Err(Error::Storage(m)) => assert!(m.contains("in use by another process"), "{m}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second engine opened the directory"),
    }
    drop(e);
    drop(open(&dir));
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[test]
fn deleting_a_stream_gives_its_space_back_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| {
        c.durability = Durability::Buffered;
        c.file_cache_bytes = 0;
    });
    e.create_stream("big", opaque()).unwrap();
    // 48 MiB of incompressible records.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..48 {
        let records = (0..16)
            .map(|_| {
                let bytes: Vec<u8> = (0..65_536)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                Record::new(bytes)
            })
            .collect();
        e.append(
            "big",
            AppendRequest {
                records,
                ..Default::default()
            },
        )
        .unwrap();
    }
    let full = dir_bytes(dir.path());
    assert!(full > 40 << 20, "{full} bytes after writing");
    e.delete_stream("big").unwrap();
    let t = std::time::Instant::now();
    loop {
        let now = dir_bytes(dir.path());
        if now < full / 4 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{now} of {full} bytes still used 30 s after the delete"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// touch after a reopen

/// Touch routes answer from the first request after a reopen: the runtimes
/// open with the engine, not on the touch thread's first pass (a wait sent
/// in that window used to get "touch not enabled").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_streams_answer_at_once_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("app{i}")).collect();
    {
        let e = open(&dir);
        let profile = r#"{"kind":"state-protocol","touch":{"enabled":true}}"#;
        for n in &names {
            e.create_stream(n, StreamConfig::new("application/json"))
                .unwrap();
            e.set_state_mode(n, StateMode::StateProtocol, Some(profile.into()))
                .await
                .unwrap();
        }
        e.shutdown();
    }
    for _ in 0..5 {
        let e = open(&dir);
        for n in &names {
            let meta = e.touch_meta(n).expect("touch is enabled at once");
            assert!(meta["cursor"].is_string(), "{meta}");
        }
        e.shutdown();
    }
}
