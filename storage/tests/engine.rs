//! Behaviour tests of the engine's public API: what an embedding application
//! (and the network doors) rely on. Every test opens its own data directory.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use weir_storage::{
    now_ms, AppendRequest, AppendResult, Durability, Engine, EngineConfig, Error, FollowFrom,
    Follower, ProducerTag, ReadResult, Record, StreamConfig,
};

// ---------------------------------------------------------------------------
// helpers

fn open(dir: &tempfile::TempDir) -> Engine {
    Engine::open(dir.path(), EngineConfig::default()).expect("open engine")
}

fn open_with(dir: &tempfile::TempDir, f: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut cfg = EngineConfig::default();
    f(&mut cfg);
    Engine::open(dir.path(), cfg).expect("open engine")
}

fn json() -> StreamConfig {
    StreamConfig::new("application/json")
}

fn recs(payloads: &[&str]) -> Vec<Record> {
    payloads
        .iter()
        .map(|p| Record::new(p.to_string()))
        .collect()
}

fn req(payloads: &[&str]) -> AppendRequest {
    AppendRequest {
        records: recs(payloads),
        ..Default::default()
    }
}

fn tagged(payloads: &[&str], id: &str, epoch: u64, seq: u64) -> AppendRequest {
    AppendRequest {
        records: recs(payloads),
        producer: Some(ProducerTag {
            id: id.to_string(),
            epoch,
            seq,
        }),
        ..Default::default()
    }
}

fn close_req() -> AppendRequest {
    AppendRequest {
        close: true,
        ..Default::default()
    }
}

/// (offset, key, payload) of every record of a read result.
fn flatten(r: &ReadResult) -> Vec<(u64, Option<Vec<u8>>, Vec<u8>)> {
    r.batches
        .iter()
        .flat_map(|b| {
            b.iter()
                .map(|x| (x.offset, x.key.map(<[u8]>::to_vec), x.payload.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every record of a stream, read to the tail in bounded steps, as (offset, payload).
fn read_all(e: &Engine, name: &str) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let r = e.read(name, from, 4096).expect("read");
        let recs = flatten(&r);
        for (o, _, p) in &recs {
            out.push((*o, p.clone()));
        }
        if r.up_to_date() {
            assert_eq!(r.next_offset, r.tail);
            return out;
        }
        assert!(!recs.is_empty(), "a read below the tail returned nothing");
        from = r.next_offset;
    }
}

fn payloads(v: &[(u64, Vec<u8>)]) -> Vec<String> {
    v.iter()
        .map(|(_, p)| String::from_utf8(p.clone()).unwrap())
        .collect()
}

fn assert_dense_from(v: &[(u64, Vec<u8>)], first: u64) {
    for (i, (o, _)) in v.iter().enumerate() {
        assert_eq!(*o, first + i as u64, "offsets are not dense");
    }
}

// ---------------------------------------------------------------------------
// create

#[test]
fn create_is_idempotent_and_conflicts_on_a_different_config() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);

    let first = e.create_stream("s", json()).unwrap();
    assert!(first.created);
    assert_eq!(first.info.name, "s");
    assert_eq!(first.info.next_offset, 0);
    assert!(!first.info.closed);

    e.append("s", req(&["1", "2"])).unwrap();
    let again = e.create_stream("s", json()).unwrap();
    assert!(!again.created, "same config must be an idempotent create");
    assert_eq!(again.info.id, first.info.id);
    assert_eq!(
        again.info.next_offset, 2,
        "an idempotent create must not reset the stream"
    );

    assert_eq!(
        e.create_stream("s", StreamConfig::new("text/plain")),
        Err(Error::ConfigConflict)
    );
    let mut ttl = json();
    ttl.ttl_secs = Some(60);
    assert_eq!(e.create_stream("s", ttl), Err(Error::ConfigConflict));
    assert_eq!(e.head("s").unwrap().next_offset, 2);
}

#[test]
fn create_rejects_invalid_names_and_configs() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    assert!(matches!(
        e.create_stream("", json()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.create_stream("a\0b", json()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.create_stream(&"x".repeat(1025), json()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.create_stream("s", StreamConfig::new("")),
        Err(Error::Invalid(_))
    ));
    let mut both = json();
    both.ttl_secs = Some(1);
    both.expires_at_ms = Some(now_ms() + 60_000);
    assert!(matches!(e.create_stream("s", both), Err(Error::Invalid(_))));
    assert!(e.list_streams(None, 10).is_empty());
    assert_eq!(e.head("s"), Err(Error::NotFound));
}

#[test]
fn create_with_initial_records_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    let out = futures::executor::block_on(e.create_stream_with(
        "s",
        json(),
        recs(&["a", "b", "c"]),
        true,
    ))
    .unwrap();
    assert!(out.created);
    assert_eq!(out.info.next_offset, 3);
    assert!(out.info.closed);
    assert_eq!(payloads(&read_all(&e, "s")), ["a", "b", "c"]);
    assert_eq!(
        e.append("s", req(&["d"])),
        Err(Error::Closed { next_offset: 3 })
    );
}

#[test]
fn list_streams_pages_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    for n in ["c", "a", "d", "b"] {
        e.create_stream(n, json()).unwrap();
    }
    let names =
        |v: Vec<weir_storage::StreamInfo>| v.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(names(e.list_streams(None, 10)), ["a", "b", "c", "d"]);
    assert_eq!(names(e.list_streams(None, 2)), ["a", "b"]);
    assert_eq!(names(e.list_streams(Some("b"), 10)), ["c", "d"]);
    assert_eq!(names(e.list_streams(Some("d"), 10)), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// append and read

#[test]
fn append_offsets_are_dense_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    let mut expect = 0u64;
    for n in [1usize, 3, 1, 5, 2] {
        let p: Vec<String> = (0..n).map(|i| format!("{expect}-{i}")).collect();
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        let res = e.append("s", req(&p)).unwrap();
        assert_eq!(
            res,
            AppendResult {
                first_offset: expect,
                next_offset: expect + n as u64,
                duplicate: false,
                closed: false,
                producer: None,
            }
        );
        expect += n as u64;
    }
    assert_eq!(e.tail("s").unwrap(), (12, false));
    assert_eq!(e.head("s").unwrap().next_offset, 12);
    let all = read_all(&e, "s");
    assert_eq!(all.len(), 12);
    assert_dense_from(&all, 0);
    assert_eq!(
        (all[3].1.as_slice(), all[4].1.as_slice()),
        (&b"1-2"[..], &b"4-0"[..])
    );
}

#[test]
fn empty_append_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    assert_eq!(
        e.append("s", AppendRequest::default()),
        Err(Error::EmptyAppend)
    );
    assert_eq!(e.tail("s").unwrap(), (0, false));
}

#[test]
fn append_to_a_missing_stream_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    assert_eq!(e.append("nope", req(&["x"])), Err(Error::NotFound));
    assert!(matches!(e.read("nope", 0, 100), Err(Error::NotFound)));
    assert!(matches!(
        e.follow("nope", FollowFrom::Start),
        Err(Error::NotFound)
    ));
}

#[test]
fn keys_and_payloads_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    let records = vec![
        Record::keyed("k1", "v1"),
        Record::new(""),
        Record::keyed("", "empty key"),
        Record::new(vec![0u8, 255, 7]),
    ];
    e.append(
        "s",
        AppendRequest {
            records,
            ..Default::default()
        },
    )
    .unwrap();
    let r = e.read("s", 0, 1 << 20).unwrap();
    let got = flatten(&r);
    assert_eq!(
        got,
        vec![
            (0, Some(b"k1".to_vec()), b"v1".to_vec()),
            (1, None, vec![]),
            (2, Some(vec![]), b"empty key".to_vec()),
            (3, None, vec![0, 255, 7]),
        ]
    );
    let before = now_ms();
    assert!(r.batches[0].append_time_ms() <= before);
    assert!(r.batches[0].append_time_ms() > 0);
}

#[test]
fn read_from_the_middle_of_a_batch_slices_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    e.append("s", req(&["a0", "a1"])).unwrap();
    e.append("s", req(&["b0", "b1", "b2", "b3", "b4"])).unwrap(); // offsets 2..7
    e.append("s", req(&["c0"])).unwrap(); // offset 7

    let r = e.read("s", 4, 1 << 20).unwrap();
    assert_eq!(r.batches[0].first_offset(), 4);
    assert_eq!(r.batches[0].len(), 3);
    assert_eq!(
        flatten(&r)
            .into_iter()
            .map(|(o, _, p)| (o, p))
            .collect::<Vec<_>>(),
        vec![
            (4, b"b2".to_vec()),
            (5, b"b3".to_vec()),
            (6, b"b4".to_vec()),
            (7, b"c0".to_vec())
        ]
    );
    assert_eq!((r.next_offset, r.tail, r.closed), (8, 8, false));
    assert!(r.up_to_date());

    // From the last record of a batch.
    let r = e.read("s", 6, 1 << 20).unwrap();
    assert_eq!(r.batches[0].first_offset(), 6);
    assert_eq!(r.record_count(), 2);
}

#[test]
fn read_at_the_tail_is_empty_and_past_the_tail_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    let r = e.read("s", 0, 100).unwrap();
    assert!(r.batches.is_empty());
    assert_eq!((r.next_offset, r.tail), (0, 0));
    assert!(matches!(
        e.read("s", 1, 100),
        Err(Error::OffsetOutOfRange { offset: 1, tail: 0 })
    ));

    e.append("s", req(&["a", "b", "c"])).unwrap();
    let r = e.read("s", 3, 100).unwrap();
    assert!(r.batches.is_empty());
    assert_eq!((r.next_offset, r.tail), (3, 3));
    assert!(matches!(
        e.read("s", 4, 100),
        Err(Error::OffsetOutOfRange { offset: 4, tail: 3 })
    ));
    assert!(matches!(
        e.read("s", u64::MAX, 100),
        Err(Error::OffsetOutOfRange { tail: 3, .. })
    ));
    assert!(matches!(
        e.follow("s", FollowFrom::Offset(4)),
        Err(Error::OffsetOutOfRange { offset: 4, tail: 3 })
    ));
}

#[test]
fn read_returns_at_least_one_record_even_over_budget() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    let big = "x".repeat(1000);
    e.append("s", req(&[&big, &big])).unwrap();
    for budget in [0usize, 1, 10, 999] {
        let r = e.read("s", 0, budget).unwrap();
        assert_eq!(r.record_count(), 1, "budget {budget}");
        assert_eq!(r.next_offset, 1);
        assert!(!r.up_to_date());
    }
    let r = e.read("s", 1, 0).unwrap();
    assert_eq!((r.record_count(), r.next_offset), (1, 2));
    assert!(r.up_to_date());
}

/// Bytes one returned record accounts for (the engine counts its stored form:
/// a 4-byte tag, the key and the payload).
fn returned_bytes(r: &ReadResult) -> usize {
    r.batches.iter().map(|b| b.data_len()).sum()
}

#[test]
fn read_respects_the_byte_budget_within_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    // Ten 100-byte payloads in one batch: each record is 104 stored bytes.
    let p = "y".repeat(100);
    let many: Vec<&str> = (0..10).map(|_| p.as_str()).collect();
    e.append("s", req(&many)).unwrap();
    for (budget, want) in [
        (104usize, 1usize),
        (207, 1),
        (208, 2),
        (520, 5),
        (1039, 9),
        (1040, 10),
        (1 << 20, 10),
    ] {
        let r = e.read("s", 0, budget).unwrap();
        assert_eq!(r.record_count(), want, "budget {budget}");
        assert!(returned_bytes(&r) <= budget);
    }
    // Paging with a small budget visits every record exactly once.
    let mut from = 0;
    let mut seen = 0;
    while from < 10 {
        let r = e.read("s", from, 250).unwrap();
        assert_eq!(r.batches[0].first_offset(), from);
        assert!(returned_bytes(&r) <= 250);
        seen += r.record_count();
        from = r.next_offset;
    }
    assert_eq!(seen, 10);
}

/// A read may return more than one record only if they all fit the budget:
/// the "at least one record" allowance is for the first record of the
/// response, not for the first record of every stored batch it crosses.
#[test]
fn read_respects_the_byte_budget_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    e.append("s", req(&["small"])).unwrap(); // 9 stored bytes
    let big = "z".repeat(1000);
    e.append("s", req(&[&big])).unwrap(); // 1004 stored bytes
    let r = e.read("s", 0, 100).unwrap();
    assert!(
        r.record_count() == 1 || returned_bytes(&r) <= 100,
        "read of budget 100 returned {} records, {} bytes",
        r.record_count(),
        returned_bytes(&r)
    );
}

// ---------------------------------------------------------------------------
// close, content type, Stream-Seq

#[test]
fn closed_stream_rejects_appends_and_close_again_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    let res = e
        .append(
            "s",
            AppendRequest {
                records: recs(&["last"]),
                close: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (res.first_offset, res.next_offset, res.closed),
        (0, 1, true)
    );
    assert_eq!(e.tail("s").unwrap(), (1, true));
    assert!(e.head("s").unwrap().closed);

    assert_eq!(
        e.append("s", req(&["more"])),
        Err(Error::Closed { next_offset: 1 })
    );
    assert_eq!(
        e.append(
            "s",
            AppendRequest {
                records: recs(&["more"]),
                close: true,
                ..Default::default()
            }
        ),
        Err(Error::Closed { next_offset: 1 })
    );
    for _ in 0..2 {
        let again = e.append("s", close_req()).unwrap();
        assert!(again.closed);
        assert!(!again.duplicate);
        assert_eq!((again.first_offset, again.next_offset), (1, 1));
    }
    let r = e.read("s", 0, 1 << 20).unwrap();
    assert!(r.closed);
    assert_eq!(payloads(&read_all(&e, "s")), ["last"]);
}

#[test]
fn close_without_records_closes_an_open_stream() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    e.append("s", req(&["a"])).unwrap();
    let res = e.append("s", close_req()).unwrap();
    assert_eq!(
        (res.first_offset, res.next_offset, res.closed),
        (1, 1, true)
    );
    assert_eq!(
        e.append("s", req(&["b"])),
        Err(Error::Closed { next_offset: 1 })
    );
}

#[test]
fn content_type_must_match_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    let with_ct = |ct: &str| AppendRequest {
        records: recs(&["{}"]),
        content_type: Some(ct.to_string()),
        ..Default::default()
    };
    assert_eq!(
        e.append("s", with_ct("text/plain")),
        Err(Error::ContentTypeMismatch {
            expected: "application/json".into(),
            got: "text/plain".into()
        })
    );
    assert_eq!(
        e.tail("s").unwrap().0,
        0,
        "a rejected append must not write"
    );
    // Only the media type counts: case and parameters are ignored.
    assert_eq!(
        e.append("s", with_ct("Application/JSON; charset=utf-8"))
            .unwrap()
            .first_offset,
        0
    );
    assert_eq!(
        e.append("s", with_ct("application/json"))
            .unwrap()
            .first_offset,
        1
    );
}

#[test]
fn stream_seq_must_strictly_increase_bytewise() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    let with_seq = |s: &str| AppendRequest {
        records: recs(&[s]),
        stream_seq: Some(s.as_bytes().to_vec()),
        ..Default::default()
    };
    e.append("s", with_seq("5")).unwrap();
    let regress = |last: &str, got: &str| Error::StreamSeqRegression {
        last: last.as_bytes().to_vec(),
        received: got.as_bytes().to_vec(),
    };
    assert_eq!(e.append("s", with_seq("5")), Err(regress("5", "5")));
    assert_eq!(e.append("s", with_seq("4")), Err(regress("5", "4")));
    // Byte-wise, not numeric: "10" sorts before "5".
    assert_eq!(e.append("s", with_seq("10")), Err(regress("5", "10")));
    e.append("s", with_seq("6")).unwrap();
    // Appends without a Stream-Seq are not checked and do not reset it.
    e.append("s", req(&["plain"])).unwrap();
    assert_eq!(e.append("s", with_seq("6")), Err(regress("6", "6")));
    assert_eq!(e.head("s").unwrap().last_stream_seq, Some(b"6".to_vec()));
    assert_eq!(payloads(&read_all(&e, "s")), ["5", "6", "plain"]);
}

// ---------------------------------------------------------------------------
// idempotent producers

#[test]
fn producer_duplicate_returns_the_original_result_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    e.append("s", req(&["x"])).unwrap();
    let first = e.append("s", tagged(&["a", "b"], "p", 0, 0)).unwrap();
    assert_eq!(
        first,
        AppendResult {
            first_offset: 1,
            next_offset: 3,
            duplicate: false,
            closed: false,
            producer: Some((0, 0)),
        }
    );
    for retry in [
        tagged(&["a", "b"], "p", 0, 0),
        tagged(&["other", "body"], "p", 0, 0),
    ] {
        let dup = e.append("s", retry).unwrap();
        assert_eq!(
            dup,
            AppendResult {
                first_offset: 1,
                next_offset: 3,
                duplicate: true,
                closed: false,
                producer: Some((0, 0)),
            }
        );
    }
    assert_eq!(e.tail("s").unwrap().0, 3);
    assert_eq!(payloads(&read_all(&e, "s")), ["x", "a", "b"]);

    // The next seq is written; the duplicate answer now follows it.
    let second = e.append("s", tagged(&["c"], "p", 0, 1)).unwrap();
    assert_eq!(
        (second.first_offset, second.next_offset, second.duplicate),
        (3, 4, false)
    );
    let dup = e.append("s", tagged(&["c"], "p", 0, 1)).unwrap();
    assert_eq!(
        (dup.first_offset, dup.next_offset, dup.duplicate),
        (3, 4, true)
    );
    assert_eq!(e.tail("s").unwrap().0, 4);
}

#[test]
fn producer_sequence_gap_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();

    // An unknown producer must start at 0.
    assert_eq!(
        e.append("s", tagged(&["a"], "p", 0, 3)),
        Err(Error::EpochMustStartAtZero { received: 3 })
    );
    e.append("s", tagged(&["a"], "p", 0, 0)).unwrap();
    assert_eq!(
        e.append("s", tagged(&["b"], "p", 0, 2)),
        Err(Error::SequenceGap {
            expected: 1,
            received: 2
        })
    );
    e.append("s", tagged(&["b"], "p", 0, 1)).unwrap();

    // A new epoch must start at 0, then fences the old one.
    assert_eq!(
        e.append("s", tagged(&["c"], "p", 1, 2)),
        Err(Error::EpochMustStartAtZero { received: 2 })
    );
    let res = e.append("s", tagged(&["c"], "p", 1, 0)).unwrap();
    assert_eq!(res.producer, Some((1, 0)));
    assert_eq!(
        e.append("s", tagged(&["old"], "p", 0, 2)),
        Err(Error::StaleEpoch { current: 1 })
    );
    assert_eq!(
        e.append("s", tagged(&["old"], "p", 0, 1)),
        Err(Error::StaleEpoch { current: 1 })
    );

    // Producers are independent of each other.
    e.append("s", tagged(&["q"], "q", 7, 0)).unwrap();
    e.append("s", tagged(&["d"], "p", 1, 1)).unwrap();

    // Rejected appends wrote nothing.
    assert_eq!(payloads(&read_all(&e, "s")), ["a", "b", "c", "q", "d"]);

    // Invalid producer ids.
    assert!(matches!(
        e.append("s", tagged(&["z"], "", 0, 0)),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.append("s", tagged(&["z"], &"p".repeat(257), 0, 0)),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn producer_state_is_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s1", json()).unwrap();
    e.create_stream("s2", json()).unwrap();
    e.append("s1", tagged(&["a"], "p", 0, 0)).unwrap();
    let on_s2 = e.append("s2", tagged(&["a"], "p", 0, 0)).unwrap();
    assert!(!on_s2.duplicate);
    assert_eq!(e.tail("s2").unwrap().0, 1);
}

#[test]
fn producer_retries_in_one_commit_group_are_deduplicated() {
    // Many concurrent submissions of the same tags: each seq is written once.
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    e.create_stream("s", json()).unwrap();
    futures::executor::block_on(async {
        for seq in 0..20u64 {
            let futs: Vec<_> = (0..8)
                .map(|_| e.append_async("s", tagged(&[&format!("{seq}")], "p", 0, seq)))
                .collect();
            let results = futures::future::join_all(futs).await;
            let written: Vec<_> = results
                .iter()
                .map(|r| r.as_ref().unwrap())
                .filter(|r| !r.duplicate)
                .collect();
            assert_eq!(
                written.len(),
                1,
                "seq {seq} written {} times",
                written.len()
            );
            for r in &results {
                let r = r.as_ref().unwrap();
                assert_eq!((r.first_offset, r.next_offset), (seq, seq + 1));
            }
        }
    });
    let all = read_all(&e, "s");
    assert_eq!(all.len(), 20);
    assert_eq!(
        payloads(&all),
        (0..20).map(|i| i.to_string()).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// delete

#[test]
fn delete_removes_the_stream_and_a_recreated_one_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
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
        e.create_stream(n, json()).unwrap();
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

// ---------------------------------------------------------------------------
// expiry

fn fast_reaper(c: &mut EngineConfig) {
    c.expiry_interval = Duration::from_millis(20);
}

#[test]
fn stream_with_expiry_in_the_past_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    let mut cfg = json();
    cfg.expires_at_ms = Some(now_ms() - 1_000);
    e.create_stream("gone", cfg.clone()).unwrap();
    e.create_stream("kept", json()).unwrap();
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
    let mut later = json();
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
    let mut cfg = json();
    cfg.expires_at_ms = Some(now_ms() + 1_000);
    e.create_stream("s", cfg.clone()).unwrap();
    e.append("s", req(&["a"])).unwrap();
    assert_eq!(e.head("s").unwrap().next_offset, 1);
    // Wait until the deadline has certainly passed (by the engine's clock).
    while now_ms() <= cfg.expires_at_ms.unwrap() {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(e.head("s"), Err(Error::NotFound));
    assert_eq!(e.append("s", req(&["b"])), Err(Error::NotFound));
    // Recreating with the same name gives an empty stream at offset 0.
    let out = e.create_stream("s", json()).unwrap();
    assert!(out.created);
    assert_eq!(e.append("s", req(&["c"])).unwrap().first_offset, 0);
    assert_eq!(payloads(&read_all(&e, "s")), ["c"]);
}

#[test]
fn stream_with_a_ttl_expires_after_idling_and_is_removed_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    let mut cfg = json();
    cfg.ttl_secs = Some(1);
    e.create_stream("t", cfg).unwrap();
    e.create_stream("forever", json()).unwrap();
    e.append("t", tagged(&["a"], "p", 0, 0)).unwrap();
    let last_access = now_ms();
    assert_eq!(e.head("t").unwrap().next_offset, 1);

    // Idle past the TTL.
    while now_ms() < last_access + 1_300 {
        std::thread::sleep(Duration::from_millis(50));
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
    let mut cfg = json();
    cfg.ttl_secs = Some(1);
    let out = e.create_stream("t", cfg).unwrap();
    assert!(out.created);
    assert_eq!(out.info.next_offset, 0);
    // No producer state survived either.
    assert!(!e.append("t", tagged(&["x"], "p", 0, 0)).unwrap().duplicate);
}

#[test]
fn ttl_slides_with_reads_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    let mut cfg = json();
    cfg.ttl_secs = Some(1);
    e.create_stream("t", cfg).unwrap();
    // Touch the stream every 200 ms for well over one TTL: it stays alive.
    let start = now_ms();
    let mut i = 0;
    while now_ms() < start + 2_000 {
        if i % 2 == 0 {
            e.append("t", req(&["x"]))
                .expect("a touched stream must not expire");
        } else {
            e.read("t", 0, 10)
                .expect("a touched stream must not expire");
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(e.head("t").is_ok());
}

// ---------------------------------------------------------------------------
// recovery

#[test]
fn reopen_restores_records_tails_flags_and_producers() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("open", json()).unwrap();
    e.create_stream("closed", StreamConfig::new("text/plain"))
        .unwrap();
    e.create_stream("empty", json()).unwrap();
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
        let created = e.create_stream(&format!("new-{round}"), json()).unwrap();
        assert!(created.created);
        assert!(created.info.id > *ids.iter().max().unwrap() + round);
    }
}

#[test]
fn reopen_after_buffered_appends_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    e.create_stream("s", json()).unwrap();
    for i in 0..100 {
        e.append("s", req(&[&i.to_string()])).unwrap();
    }
    e.shutdown();
    assert_eq!(e.append("s", req(&["late"])), Err(Error::ShutDown));
    assert_eq!(
        e.create_stream("t", json()).map(|_| ()),
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
    assert!(Engine::open(dir.path(), EngineConfig::default()).is_err());
    drop(e);
    drop(open(&dir));
}

// ---------------------------------------------------------------------------
// follow

/// Drains a follower until it ends (`None`) or yields an error, returning
/// every record as (offset, payload) and the error, if any. A hang past a
/// generous guard fails the test instead of blocking the suite.
async fn drain(mut f: Follower) -> (Vec<(u64, Vec<u8>)>, Option<Error>) {
    let mut out = Vec::new();
    let work = async {
        while let Some(item) = f.next().await {
            match item {
                Ok(b) => {
                    assert!(!b.is_empty(), "followers never yield empty batches");
                    out.extend(b.iter().map(|r| (r.offset, r.payload.to_vec())));
                }
                Err(e) => {
                    // After an error the follower ends.
                    assert!(
                        f.next().await.is_none(),
                        "a follower must end after an error"
                    );
                    return Some(e);
                }
            }
        }
        None
    };
    let err = tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("follower did not end (hung)");
    (out, err)
}

/// Starts `writers` threads that each append `appends` batches of 1..=4
/// records with unique payloads to `name`, then closes the stream once all
/// are done. Returns the join handle of the closing thread.
fn spawn_appenders(
    e: &Engine,
    name: &str,
    writers: usize,
    appends: usize,
) -> std::thread::JoinHandle<()> {
    let e = e.clone();
    let name = name.to_string();
    std::thread::spawn(move || {
        let hs: Vec<_> = (0..writers)
            .map(|w| {
                let e = e.clone();
                let name = name.clone();
                std::thread::spawn(move || {
                    for i in 0..appends {
                        let n = 1 + (w + i) % 4;
                        let p: Vec<String> = (0..n).map(|j| format!("w{w}-{i}-{j}")).collect();
                        let p: Vec<&str> = p.iter().map(String::as_str).collect();
                        e.append(&name, req(&p)).expect("append");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("appender panicked");
        }
        e.append(&name, close_req()).expect("close");
    })
}

fn check_follow_result(all: &[(u64, Vec<u8>)], fence: u64, got: &[(u64, Vec<u8>)], label: &str) {
    let want: Vec<_> = all.iter().filter(|(o, _)| *o >= fence).cloned().collect();
    assert_eq!(got.len(), want.len(), "{label}: wrong number of records");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{label}: record {i} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_get_every_record_exactly_once_under_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    e.create_stream("s", json()).unwrap();
    for i in 0..10 {
        e.append("s", req(&[&format!("pre-{i}")])).unwrap();
    }
    let from_start = e.follow("s", FollowFrom::Start).unwrap();
    let from_offset = e.follow("s", FollowFrom::Offset(7)).unwrap();
    let from_now = e.follow("s", FollowFrom::Now).unwrap();
    let at_tail = e.follow("s", FollowFrom::Offset(10)).unwrap();
    assert_eq!(
        (from_start.fence(), from_offset.fence(), from_now.fence()),
        (0, 7, 10)
    );

    let tasks: Vec<_> = [from_start, from_offset, from_now, at_tail]
        .into_iter()
        .map(|f| tokio::spawn(drain(f)))
        .collect();
    let appenders = spawn_appenders(&e, "s", 3, 300);
    // Followers that join while appends are running.
    let mut late = Vec::new();
    for k in 0..5u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let f = e.follow("s", FollowFrom::Now).unwrap();
        let fence = f.fence();
        late.push((fence, tokio::spawn(drain(f))));
        let f = e.follow("s", FollowFrom::Offset(k * 3)).unwrap();
        late.push((k * 3, tokio::spawn(drain(f))));
    }
    tokio::task::spawn_blocking(move || appenders.join().unwrap())
        .await
        .unwrap();

    let all = read_all(&e, "s");
    assert_dense_from(&all, 0);
    assert_eq!(all.len(), 10 + extra_records(3, 300));
    let fences = [0u64, 7, 10, 10];
    for (t, fence) in tasks.into_iter().zip(fences) {
        let (got, err) = t.await.unwrap();
        assert_eq!(err, None);
        check_follow_result(&all, fence, &got, &format!("follower from {fence}"));
    }
    for (fence, t) in late {
        let (got, err) = t.await.unwrap();
        assert_eq!(err, None);
        check_follow_result(&all, fence, &got, &format!("late follower from {fence}"));
    }
}

/// Records appended by `spawn_appenders(_, _, writers, appends)`.
fn extra_records(writers: usize, appends: usize) -> usize {
    (0..writers)
        .map(|w| (0..appends).map(|i| 1 + (w + i) % 4).sum::<usize>())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_queue_overflows_still_gets_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| {
        c.durability = Durability::Buffered;
        c.follower_queue = 2;
        c.follower_read_bytes = 64; // small catch-up reads, so catch-up interleaves with live appends
    });
    e.create_stream("s", json()).unwrap();
    let mut slow = e.follow("s", FollowFrom::Start).unwrap();
    let fast = tokio::spawn(drain(e.follow("s", FollowFrom::Start).unwrap()));
    let appenders = spawn_appenders(&e, "s", 3, 400);

    // A deliberately slow consumer: it pauses every few batches, so the
    // commit thread overflows its two-batch queue again and again.
    let mut got = Vec::new();
    let mut batches = 0u64;
    let slow_work = async {
        while let Some(item) = slow.next().await {
            let b = item.expect("follower error");
            got.extend(b.iter().map(|r| (r.offset, r.payload.to_vec())));
            batches += 1;
            if batches == 1 {
                // One long stall early on, while the appenders are busy.
                tokio::time::sleep(Duration::from_millis(50)).await;
            } else if batches.is_multiple_of(8) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), slow_work)
        .await
        .expect("slow follower hung");
    tokio::task::spawn_blocking(move || appenders.join().unwrap())
        .await
        .unwrap();

    let all = read_all(&e, "s");
    assert_eq!(all.len(), extra_records(3, 400));
    check_follow_result(&all, 0, &got, "slow follower");
    let (fast_got, err) = fast.await.unwrap();
    assert_eq!(err, None);
    check_follow_result(&all, 0, &fast_got, "fast follower");
    // Every payload is unique, so exactly-once also means no repeated payload.
    let distinct: HashSet<_> = got.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(distinct.len(), got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_a_closed_stream_ends_after_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    e.append("s", req(&["a", "b"])).unwrap();
    e.append(
        "s",
        AppendRequest {
            records: recs(&["c"]),
            close: true,
            ..Default::default()
        },
    )
    .unwrap();

    // Already closed: catch-up then end.
    let (got, err) = drain(e.follow("s", FollowFrom::Start).unwrap()).await;
    assert_eq!(err, None);
    assert_eq!(payloads(&got), ["a", "b", "c"]);
    let (got, err) = drain(e.follow("s", FollowFrom::Offset(2)).unwrap()).await;
    assert_eq!((payloads(&got), err), (vec!["c".to_string()], None));
    let (got, err) = drain(e.follow("s", FollowFrom::Now).unwrap()).await;
    assert_eq!((got.len(), err), (0, None));

    // Closed while the follower is live.
    e.create_stream("live", json()).unwrap();
    let mut f = e.follow("live", FollowFrom::Start).unwrap();
    e.append("live", req(&["1"])).unwrap();
    let b = f.next().await.unwrap().unwrap();
    assert_eq!(b.get(0).unwrap().payload, b"1");
    // The follower is now waiting live; close with final records, and with an
    // empty close after that.
    let waiter = tokio::spawn(drain(f));
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.append(
        "live",
        AppendRequest {
            records: recs(&["2", "3"]),
            close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let (got, err) = waiter.await.unwrap();
    assert_eq!(err, None);
    assert_eq!(got, vec![(1, b"2".to_vec()), (2, b"3".to_vec())]);

    // An empty close also ends a live follower.
    e.create_stream("empty-close", json()).unwrap();
    let f = e.follow("empty-close", FollowFrom::Now).unwrap();
    let waiter = tokio::spawn(drain(f));
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.append("empty-close", close_req()).unwrap();
    let (got, err) = waiter.await.unwrap();
    assert_eq!((got.len(), err), (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_a_deleted_stream_yields_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);

    // Deleted before the first poll.
    e.create_stream("a", json()).unwrap();
    e.append("a", req(&["x"])).unwrap();
    let f = e.follow("a", FollowFrom::Start).unwrap();
    e.delete_stream("a").unwrap();
    let (got, err) = drain(f).await;
    assert!(got.is_empty(), "records of a deleted stream were delivered");
    assert_eq!(err, Some(Error::NotFound));

    // Deleted while the follower waits live, after it got the stored records.
    e.create_stream("b", json()).unwrap();
    e.append("b", req(&["1", "2"])).unwrap();
    let mut f = e.follow("b", FollowFrom::Start).unwrap();
    let mut seen = 0;
    while seen < 2 {
        seen += f.next().await.unwrap().unwrap().len();
    }
    let waiter = tokio::spawn(drain(f));
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.delete_stream("b").unwrap();
    let (got, err) = waiter.await.unwrap();
    assert!(got.is_empty());
    assert_eq!(err, Some(Error::NotFound));

    // A follower of the old stream does not see a recreated one.
    e.create_stream("c", json()).unwrap();
    let f = e.follow("c", FollowFrom::Now).unwrap();
    e.delete_stream("c").unwrap();
    e.create_stream("c", json()).unwrap();
    e.append("c", req(&["new"])).unwrap();
    let (got, err) = drain(f).await;
    assert!(got.is_empty());
    assert_eq!(err, Some(Error::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_an_expired_stream_yields_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    let mut cfg = json();
    cfg.expires_at_ms = Some(now_ms() + 1_000);
    e.create_stream("s", cfg).unwrap();
    e.append("s", req(&["a"])).unwrap();
    // The reaper removes the stream once its deadline passes; the follower,
    // waiting live, is told.
    let (got, err) = drain(e.follow("s", FollowFrom::Start).unwrap()).await;
    assert_eq!(payloads(&got), ["a"]);
    assert_eq!(err, Some(Error::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_followers_share_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    e.create_stream("s", json()).unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| tokio::spawn(drain(e.follow("s", FollowFrom::Start).unwrap())))
        .collect();
    let appenders = spawn_appenders(&e, "s", 2, 200);
    tokio::task::spawn_blocking(move || appenders.join().unwrap())
        .await
        .unwrap();
    let all = read_all(&e, "s");
    for (i, t) in tasks.into_iter().enumerate() {
        let (got, err) = t.await.unwrap();
        assert_eq!(err, None);
        check_follow_result(&all, 0, &got, &format!("follower {i}"));
    }
}

/// A read or a follower racing a delete of its stream sees the stream's
/// records or `NotFound`, never another error.
#[test]
fn reads_racing_a_delete_see_records_or_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    let mut unexpected = Vec::new();
    for round in 0..300 {
        e.create_stream("s", json()).unwrap();
        for i in 0..4 {
            e.append("s", req(&[&format!("{i}a"), &format!("{i}b")]))
                .unwrap();
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|k| {
                let e = e.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut errors = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let res = if k == 0 {
                            e.read("s", 3, 1 << 20).map(|r| r.record_count())
                        } else {
                            match e.follow("s", FollowFrom::Start) {
                                Ok(mut f) => futures::executor::block_on(async {
                                    match f.next().await {
                                        Some(Ok(b)) => Ok(b.len()),
                                        Some(Err(err)) => Err(err),
                                        None => Ok(0),
                                    }
                                }),
                                Err(err) => Err(err),
                            }
                        };
                        match res {
                            Ok(_) | Err(Error::NotFound) => {}
                            Err(err) => errors.push(format!("{}: {err}", ["read", "follow"][k])),
                        }
                    }
                    errors
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(200));
        e.delete_stream("s").unwrap();
        std::thread::sleep(Duration::from_micros(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            for err in r.join().unwrap() {
                unexpected.push(format!("round {round}: {err}"));
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected errors, e.g. {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
}

#[test]
fn shutdown_ends_a_follower_waiting_live() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", json()).unwrap();
    e.append("s", req(&["1"])).unwrap();
    let mut f = e.follow("s", FollowFrom::Start).unwrap();
    futures::executor::block_on(async {
        assert_eq!(f.next().await.unwrap().unwrap().len(), 1);
    });
    let waiter = std::thread::spawn(move || futures::executor::block_on(f.next()));
    std::thread::sleep(Duration::from_millis(50)); // likely waiting live by now
    e.shutdown();
    let got = waiter.join().unwrap();
    assert!(matches!(got, Some(Err(Error::ShutDown))), "{got:?}");
    // A follower created after shutdown cannot go live either.
    let mut late = e.follow("s", FollowFrom::Now).unwrap();
    let got = futures::executor::block_on(late.next());
    assert!(matches!(got, Some(Err(Error::ShutDown))), "{got:?}");
}
