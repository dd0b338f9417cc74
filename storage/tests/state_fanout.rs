//! Filtered state subscriptions at the tail share one conversion per filter
//! (`state/fanout.rs`): they must still receive exactly the changes that
//! enter, stay in or leave their filter, including a subscription that stops
//! reading, overflows its inbox, goes on alone from storage and joins again.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use futures::FutureExt;
use weir_storage::{
    Filter, ScanRequest, StateChange, StateEvent, StateKey, StateMode, StateSubscription,
    SubscribeState,
};

const GROUPS: u32 = 4;
const KEYS: u32 = 200;

/// Sets row `k` in group `g`; `n` makes every value distinct, so a missed
/// upsert shows.
fn put(k: u32, g: u32, n: u32) -> Record {
    Record::new(format!(
        r#"{{"type":"t","key":"k{k}","value":{{"g":{g},"n":{n}}},"headers":{{"operation":"update"}}}}"#
    ))
}

fn del(k: u32) -> Record {
    Record::new(format!(
        r#"{{"type":"t","key":"k{k}","headers":{{"operation":"delete"}}}}"#
    ))
}

fn filter(g: u32) -> Filter {
    Filter::parse_bytes(format!(r#"{{"field":"g","op":"eq","value":{g}}}"#).as_bytes()).unwrap()
}

fn create(engine: &Engine) {
    let json = StreamConfig::new("application/json");
    let mode = StateMode::StateProtocol;
    futures::executor::block_on(engine.create_stream_in_mode("s", json, mode, vec![], false))
        .unwrap();
}

fn append(engine: &Engine, records: Vec<Record>) -> u64 {
    engine
        .append(
            "s",
            AppendRequest {
                records,
                ..Default::default()
            },
        )
        .unwrap()
        .next_offset
}

/// What one subscriber holds, checked change by change.
struct Reader {
    group: u32,
    sub: StateSubscription,
    rows: BTreeMap<StateKey, Bytes>,
    next: u64,
}

impl Reader {
    fn apply(&mut self, ev: StateEvent) {
        match ev {
            StateEvent::Snapshot(rows) => {
                for r in rows {
                    self.rows.insert(r.key, r.value);
                }
            }
            StateEvent::SnapshotDone { fence, .. } => self.next = fence,
            StateEvent::Records(_) => panic!("a filtered subscription sends changes"),
            StateEvent::Changes(cs) => {
                assert!(!cs.is_empty(), "no empty deliveries");
                for c in cs.iter() {
                    assert!(c.offset() >= self.next, "in order, never twice");
                    self.next = c.offset() + 1;
                    match c {
                        StateChange::Upsert(r) => {
                            let g = format!(r#"{{"g":{},"#, self.group);
                            assert!(
                                r.value.starts_with(g.as_bytes()),
                                "only matching rows enter"
                            );
                            self.rows.insert(r.key.clone(), r.value.clone());
                        }
                        StateChange::Delete { key, .. } => {
                            // Exact readers are never told to drop a row they lack.
                            assert!(self.rows.remove(key).is_some(), "delete of {key:?}");
                        }
                        StateChange::Reset { .. } => self.rows.clear(),
                    }
                }
            }
        }
    }

    /// Takes every event that is ready without waiting.
    fn drain(&mut self) {
        while let Some(ev) = self.sub.next().now_or_never() {
            self.apply(ev.expect("open").expect("no error"));
        }
    }
}

fn expected(engine: &Engine, g: u32) -> BTreeMap<StateKey, Bytes> {
    let page = engine
        .state_scan(
            "s",
            &ScanRequest {
                filter: Some(filter(g)),
                limit: 10_000,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(page.next.is_none());
    page.rows.into_iter().map(|r| (r.key, r.value)).collect()
}

#[test]
fn grouped_subscriptions_get_exact_changes_and_a_stalled_one_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    // Small inboxes, so that the reader that stops reading overflows soon.
    let engine = open_with(&dir, |c| c.follower_queue = 4);
    create(&engine);
    append(&engine, (0..KEYS).map(|k| put(k, k % GROUPS, 0)).collect());

    let mut readers: Vec<Reader> = (0..12)
        .map(|i| Reader {
            group: i % GROUPS,
            sub: engine
                .subscribe_state(
                    "s",
                    SubscribeState {
                        filter: Some(filter(i % GROUPS)),
                        snapshot: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            rows: BTreeMap::new(),
            next: 0,
        })
        .collect();
    for r in &mut readers {
        r.drain();
        assert_eq!(r.rows, expected(&engine, r.group), "the snapshot");
    }
    assert_eq!(
        engine.live_followers("s"),
        12,
        "all caught up and in groups"
    );

    // Moves between filters, deletes, re-inserts and one reset; reader 11
    // stops reading after the reset.
    let mut seed = 7u64;
    let mut tail = 0;
    for round in 0..300u32 {
        let mut batch = Vec::new();
        for i in 0..5 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (seed >> 33) as u32 % KEYS;
            let g = (seed >> 20) as u32 % (GROUPS + 1);
            batch.push(if g == GROUPS {
                del(k)
            } else {
                put(k, g, round * 10 + i)
            });
        }
        // Every batch gives every group something to deliver.
        for g in 0..GROUPS {
            batch.push(put(round % KEYS, g, round * 10 + 5 + g));
        }
        if round == 100 {
            batch.push(Record::new(r#"{"headers":{"control":"reset"}}"#));
        }
        tail = append(&engine, batch);
        let reading = if round < 150 { 12 } else { 11 };
        for r in &mut readers[..reading] {
            r.drain();
        }
    }
    for r in &mut readers[..11] {
        assert_eq!(
            r.rows,
            expected(&engine, r.group),
            "reader of group {}",
            r.group
        );
        assert_eq!(r.sub.next_offset(), Some(tail));
    }

    // The stalled reader left its group when its inbox filled, and now
    // reads the rest from storage with the rows it held.
    let last = &mut readers[11];
    futures::executor::block_on(async {
        while last.sub.next_offset() != Some(tail) {
            let ev = last.sub.next().await.expect("open").expect("no error");
            last.apply(ev);
        }
    });
    last.drain();
    assert_eq!(last.rows, expected(&engine, last.group));

    // Caught up again, it joins its group again: one more change reaches it.
    let k = (0..KEYS).find(|k| {
        !last
            .rows
            .keys()
            .any(|r| r.key_bytes() == format!("k{k}").as_bytes())
    });
    let k = k.expect("some key is not in the group");
    append(&engine, vec![put(k, last.group, 1)]);
    futures::executor::block_on(async {
        let ev = last.sub.next().await.expect("open").expect("no error");
        last.apply(ev);
    });
    assert_eq!(last.rows, expected(&engine, last.group));
    for r in &mut readers[..11] {
        r.drain();
        assert_eq!(r.rows, expected(&engine, r.group));
    }
    assert_eq!(engine.live_followers("s"), 12);

    // A dropped subscription leaves its group.
    readers.truncate(5);
    assert_eq!(engine.live_followers("s"), 5);
}

#[test]
fn grouped_subscriptions_end_with_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine);
    append(&engine, vec![put(1, 0, 0)]);
    let mut sub = engine
        .subscribe_state(
            "s",
            SubscribeState {
                filter: Some(filter(0)),
                snapshot: true,
                ..Default::default()
            },
        )
        .unwrap();
    while sub.next().now_or_never().is_some() {}
    assert_eq!(engine.live_followers("s"), 1);
    engine.delete_stream("s").unwrap();
    let end = futures::executor::block_on(sub.next());
    assert!(
        matches!(end, Some(Err(Error::NotFound))),
        "a deleted stream ends its grouped subscriptions: {end:?}"
    );
}
