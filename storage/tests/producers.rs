//! Behaviour tests of idempotent producers: deduplication, sequence gaps,
//! epochs and fencing.

mod common;

use common::*;

// idempotent producers

#[test]
fn producer_duplicate_returns_the_original_result_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();

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
    e.create_stream("s1", opaque()).unwrap();
    e.create_stream("s2", opaque()).unwrap();
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
    e.create_stream("s", opaque()).unwrap();
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
