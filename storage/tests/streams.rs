//! Behaviour tests of creating, appending to and reading streams, and of the
//! append rules (closure, content type, `Stream-Seq`). Every test opens its
//! own data directory.

mod common;

use common::*;

// create

#[test]
fn create_is_idempotent_and_conflicts_on_a_different_config() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);

    let first = e.create_stream("s", opaque()).unwrap();
    assert!(first.created);
    assert_eq!(first.info.name, "s");
    assert_eq!(first.info.next_offset, 0);
    assert!(!first.info.closed);

    e.append("s", req(&["1", "2"])).unwrap();
    let again = e.create_stream("s", opaque()).unwrap();
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
    let mut ttl = opaque();
    ttl.ttl_secs = Some(60);
    assert_eq!(e.create_stream("s", ttl), Err(Error::ConfigConflict));
    assert_eq!(e.head("s").unwrap().next_offset, 2);
}

#[test]
fn create_rejects_invalid_names_and_configs() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    assert!(matches!(
        e.create_stream("", opaque()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.create_stream("a\0b", opaque()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.create_stream(&"x".repeat(1025), opaque()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.create_stream("s", StreamConfig::new("")),
        Err(Error::Invalid(_))
    ));
    let mut both = opaque();
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
        opaque(),
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
        e.create_stream(n, opaque()).unwrap();
    }
    let names =
        |v: Vec<weir_storage::StreamInfo>| v.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(names(e.list_streams(None, 10)), ["a", "b", "c", "d"]);
    assert_eq!(names(e.list_streams(None, 2)), ["a", "b"]);
    assert_eq!(names(e.list_streams(Some("b"), 10)), ["c", "d"]);
    assert_eq!(names(e.list_streams(Some("d"), 10)), Vec::<String>::new());
}

// append and read

#[test]
fn append_offsets_are_dense_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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

// close, content type, Stream-Seq

#[test]
fn closed_stream_rejects_appends_and_close_again_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", StreamConfig::new("application/json"))
        .unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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

#[test]
fn large_values_read_in_place_stay_intact_after_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    let big = |i: u8| -> Vec<u8> { (0..300 << 10).map(|j: u32| (j as u8) ^ i).collect() };
    {
        let e = open(&dir);
        e.create_stream("big", StreamConfig::new("application/octet-stream"))
            .unwrap();
        for i in 0..3 {
            e.append(
                "big",
                AppendRequest {
                    records: vec![Record::new(big(i))],
                    ..Default::default()
                },
            )
            .unwrap();
        }
        e.append("big", req(&["small"])).unwrap();
    }
    // Reopened, the values come from table files, not the memtable.
    let e = open(&dir);
    let held = e.read("big", 0, 64 << 20).unwrap();
    let got: Vec<Vec<u8>> = flatten(&held).into_iter().map(|(_, _, p)| p).collect();
    assert_eq!(got, vec![big(0), big(1), big(2), b"small".to_vec()]);
    e.delete_stream("big").unwrap();
    assert!(e.read("big", 0, 1 << 20).is_err());
    // What a reader holds does not change under it.
    let again: Vec<Vec<u8>> = flatten(&held).into_iter().map(|(_, _, p)| p).collect();
    assert_eq!(again, got);
    drop(held);
    drop(e);
    // Nothing outlives the engine once the reads are dropped.
    let e = open(&dir);
    assert!(e.read("big", 0, 1 << 20).is_err());
}
