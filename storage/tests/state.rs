//! State streams through the engine's public API: keyed and State Protocol
//! state kept with every commit, reads at one fence, snapshot-then-changes
//! subscriptions (plain and filtered), building from history, forks,
//! deletes, restarts and the offline check.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use weir_storage::{
    Filter, ScanRequest, StateChange, StateEvent, StateKey, StateMode, StateRow, SubscribeState,
};

fn json() -> StreamConfig {
    StreamConfig::new("application/json")
}

fn create(engine: &Engine, name: &str, config: StreamConfig, mode: StateMode) {
    futures::executor::block_on(engine.create_stream_in_mode(name, config, mode, vec![], false))
        .unwrap();
}

fn append(engine: &Engine, name: &str, records: Vec<Record>) -> Result<AppendResult, Error> {
    engine.append(
        name,
        AppendRequest {
            records,
            ..Default::default()
        },
    )
}

fn change(t: &str, k: &str, op: &str, v: Option<&str>) -> Record {
    let value = v.map(|v| format!(",\"value\":{v}")).unwrap_or_default();
    Record::new(format!(
        r#"{{"type":"{t}","key":"{k}"{value},"headers":{{"operation":"{op}"}}}}"#
    ))
}

fn ent(t: &str, k: &str) -> StateKey {
    StateKey::Entity {
        entity: t.into(),
        key: k.into(),
    }
}

fn keyed(k: &str) -> StateKey {
    StateKey::Keyed(Bytes::copy_from_slice(k.as_bytes()))
}

fn all_rows(engine: &Engine, name: &str) -> (Vec<StateRow>, u64) {
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = engine
            .state_scan(
                name,
                &ScanRequest {
                    after: after.clone(),
                    limit: 7,
                    ..Default::default()
                },
            )
            .unwrap();
        rows.extend(page.rows);
        match page.next {
            Some(n) => after = Some(n),
            None => return (rows, page.fence),
        }
    }
}

fn wait_built(engine: &Engine, name: &str) {
    for _ in 0..2000 {
        if engine.head(name).unwrap().state.building.is_none() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("state of {name} never finished building");
}

fn verify_clean(engine: &Engine) {
    for r in engine.verify_state().unwrap() {
        assert_eq!(r.differences, 0, "{}: {:?}", r.stream, r.details);
        assert!(r.skipped.is_none(), "{r:?}");
    }
}

#[test]
fn keyed_state_follows_puts_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine, "k", opaque(), StateMode::Keyed);
    append(
        &engine,
        "k",
        vec![
            Record::keyed("a", "1"),
            Record::keyed("b", "2"),
            Record::new("no key: no state"),
            Record::keyed("a", "3"),
        ],
    )
    .unwrap();
    append(&engine, "k", vec![Record::tombstone("b")]).unwrap();
    let g = engine.state_get("k", &keyed("a")).unwrap();
    let row = g.row.unwrap();
    assert_eq!(
        (&row.value[..], row.offset, g.fence, g.tail),
        (&b"3"[..], 3, 5, 5)
    );
    assert!(engine.state_get("k", &keyed("b")).unwrap().row.is_none());
    let (rows, fence) = all_rows(&engine, "k");
    assert_eq!(fence, 5);
    assert_eq!(rows.len(), 1);
    // Tombstones are refused where they mean nothing.
    engine.create_stream("plain", opaque()).unwrap();
    assert!(matches!(
        append(&engine, "plain", vec![Record::tombstone("x")]),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        engine.state_get("plain", &keyed("a")).unwrap_err(),
        Error::NotStateStream
    );
    verify_clean(&engine);
}

#[test]
fn state_protocol_appends_are_validated_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine, "s", json(), StateMode::StateProtocol);
    let err = append(
        &engine,
        "s",
        vec![
            change("user", "1", "insert", Some(r#"{"n":1}"#)),
            Record::new(r#"{"type":"user","key":"2","headers":{"operation":"insert"}}"#),
        ],
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::Invalid("state-protocol insert records must include value".into())
    );
    assert_eq!(
        engine.tail("s").unwrap().0,
        0,
        "nothing of a bad request is written"
    );
    // A State Protocol stream must be JSON.
    let bad = futures::executor::block_on(engine.create_stream_in_mode(
        "t",
        opaque(),
        StateMode::StateProtocol,
        vec![],
        false,
    ));
    assert!(matches!(bad, Err(Error::Invalid(ref m)) if m.contains("application/json")));
}

#[test]
fn state_protocol_state_tracks_changes_and_resets() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine, "s", json(), StateMode::StateProtocol);
    append(
        &engine,
        "s",
        vec![
            change("user", "1", "insert", Some(r#"{"n":1}"#)),
            change("user", "2", "insert", Some(r#"{"n":2}"#)),
            change("team", "1", "insert", Some(r#""red""#)),
            change("user", "1", "update", Some(r#"{"n":10}"#)),
            change("user", "2", "delete", None),
        ],
    )
    .unwrap();
    let g = engine.state_get("s", &ent("user", "1")).unwrap();
    assert_eq!(&g.row.unwrap().value[..], br#"{"n":10}"#);
    assert!(engine
        .state_get("s", &ent("user", "2"))
        .unwrap()
        .row
        .is_none());
    let only_teams = engine
        .state_scan(
            "s",
            &ScanRequest {
                entity: Some("team".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(only_teams.rows.len(), 1);
    assert_eq!(only_teams.rows[0].key, ent("team", "1"));
    // A reset clears everything before it, and later changes stay.
    append(
        &engine,
        "s",
        vec![
            Record::new(r#"{"headers":{"control":"reset"}}"#),
            change("user", "9", "insert", Some("{}")),
        ],
    )
    .unwrap();
    let (rows, fence) = all_rows(&engine, "s");
    assert_eq!(fence, 7);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, ent("user", "9"));
    verify_clean(&engine);
}

#[test]
fn filtered_scans_examine_values() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine, "s", json(), StateMode::StateProtocol);
    let records = (0..50)
        .map(|i| {
            change(
                "item",
                &format!("{i:02}"),
                "insert",
                Some(&format!(r#"{{"n":{i}}}"#)),
            )
        })
        .collect();
    append(&engine, "s", records).unwrap();
    let filter = Filter::parse_bytes(br#"{"field":"n","op":"gte","value":45}"#).unwrap();
    let page = engine
        .state_scan(
            "s",
            &ScanRequest {
                filter: Some(filter),
                limit: 100,
                ..Default::default()
            },
        )
        .unwrap();
    let keys: Vec<_> = page
        .rows
        .iter()
        .map(|r| r.key.key_bytes().to_vec())
        .collect();
    assert_eq!(
        keys,
        ["45", "46", "47", "48", "49"].map(|k| k.as_bytes().to_vec())
    );
    let prefixed = engine
        .state_scan(
            "s",
            &ScanRequest {
                prefix: Some(b"1".to_vec()),
                limit: 100,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(prefixed.rows.len(), 10);
}

/// Materializes a subscription's events into a map of key to value.
fn apply(state: &mut BTreeMap<StateKey, Bytes>, next: &mut u64, ev: StateEvent, mode: StateMode) {
    match ev {
        StateEvent::Snapshot(rows) => {
            for r in rows {
                state.insert(r.key, r.value);
            }
        }
        StateEvent::SnapshotDone { fence, .. } => *next = fence,
        StateEvent::Records(b) => {
            assert_eq!(b.first_offset(), *next, "no gap, no duplicate");
            for r in b.iter() {
                let (k, v) = match mode {
                    StateMode::Keyed => (keyed(std::str::from_utf8(r.key.unwrap()).unwrap()), r),
                    _ => unreachable!(),
                };
                if v.tombstone {
                    state.remove(&k);
                } else {
                    state.insert(k, Bytes::copy_from_slice(v.payload));
                }
            }
            *next = b.next_offset();
        }
        StateEvent::Changes(cs) => {
            for c in cs.iter().cloned() {
                assert!(c.offset() >= *next);
                *next = c.offset() + 1;
                match c {
                    StateChange::Upsert(r) => {
                        state.insert(r.key, r.value);
                    }
                    StateChange::Delete { key, .. } => {
                        state.remove(&key);
                    }
                    StateChange::Reset { .. } => state.clear(),
                }
            }
        }
    }
}

#[test]
fn snapshot_then_changes_misses_nothing_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine, "k", opaque(), StateMode::Keyed);
    let keys = 20_000;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let records = chunk
            .iter()
            .map(|i| Record::keyed(format!("key-{i:05}"), format!("v0-{i}")))
            .collect();
        append(&engine, "k", records).unwrap();
    }
    let mut sub = engine
        .subscribe_state(
            "k",
            SubscribeState {
                snapshot: true,
                chunk_bytes: 4096,
                ..Default::default()
            },
        )
        .unwrap();
    let writer = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            for round in 1..=50u32 {
                let mut records: Vec<Record> = (0..100)
                    .map(|j| {
                        let i = (round as usize * 397 + j * 13) % keys;
                        Record::keyed(format!("key-{i:05}"), format!("v{round}-{i}"))
                    })
                    .collect();
                records.push(Record::tombstone(format!("key-{:05}", round * 7)));
                append(&engine, "k", records).unwrap();
            }
        })
    };
    // The writer's records are known in advance: the final tail is too.
    let final_tail = keys as u64 + 50 * 101;
    let mut state = BTreeMap::new();
    let mut next = 0;
    futures::executor::block_on(async {
        while next < final_tail {
            let ev = sub.next().await.expect("subscription open").unwrap();
            apply(&mut state, &mut next, ev, StateMode::Keyed);
        }
    });
    writer.join().unwrap();
    assert_eq!(next, final_tail);
    let (rows, fence) = all_rows(&engine, "k");
    assert_eq!(fence, final_tail);
    let expect: BTreeMap<_, _> = rows.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(state, expect);
    verify_clean(&engine);
}

#[test]
fn filtered_subscriptions_send_membership_changes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine, "s", json(), StateMode::StateProtocol);
    append(
        &engine,
        "s",
        vec![
            change("t", "in", "insert", Some(r#"{"c":"red"}"#)),
            change("t", "out", "insert", Some(r#"{"c":"blue"}"#)),
        ],
    )
    .unwrap();
    let red = Filter::parse_bytes(br#"{"field":"c","op":"eq","value":"red"}"#).unwrap();
    let blue = Filter::parse_bytes(br#"{"field":"c","op":"eq","value":"blue"}"#).unwrap();
    let mut subs: Vec<_> = [red, blue]
        .into_iter()
        .map(|f| {
            engine
                .subscribe_state(
                    "s",
                    SubscribeState {
                        filter: Some(f),
                        snapshot: true,
                        ..Default::default()
                    },
                )
                .unwrap()
        })
        .collect();
    append(
        &engine,
        "s",
        vec![
            change("t", "out", "update", Some(r#"{"c":"red"}"#)), // enters red, leaves blue
            change("t", "in", "update", Some(r#"{"c":"green"}"#)), // leaves red
            change("t", "never", "insert", Some(r#"{"c":"green"}"#)), // nobody
            change("t", "never", "delete", None),                 // nobody
            change("t", "out", "delete", None),                   // red member deleted
        ],
    )
    .unwrap();
    let mut seen = Vec::new();
    futures::executor::block_on(async {
        for sub in subs.iter_mut() {
            let mut events = Vec::new();
            loop {
                match sub.next().await.unwrap().unwrap() {
                    StateEvent::Changes(cs) => {
                        events.extend(cs.iter().cloned());
                        // The second append is one batch, converted at once.
                        if sub.next_offset() == Some(7) {
                            break;
                        }
                    }
                    StateEvent::Snapshot(rows) => {
                        events.extend(rows.into_iter().map(StateChange::Upsert))
                    }
                    _ => {}
                }
            }
            seen.push(events);
        }
    });
    let describe = |cs: &[StateChange]| -> Vec<String> {
        cs.iter()
            .map(|c| match c {
                StateChange::Upsert(r) => format!(
                    "+{}@{}",
                    String::from_utf8_lossy(r.key.key_bytes()),
                    r.offset
                ),
                StateChange::Delete { key, offset } => {
                    format!("-{}@{offset}", String::from_utf8_lossy(key.key_bytes()))
                }
                StateChange::Reset { offset } => format!("reset@{offset}"),
            })
            .collect()
    };
    assert_eq!(describe(&seen[0]), ["+in@0", "+out@2", "-in@3", "-out@6"]);
    assert_eq!(describe(&seen[1]), ["+out@1", "-out@2"]);
}

#[test]
fn turning_state_on_builds_it_from_history_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(&dir);
        engine.create_stream("k", opaque()).unwrap();
        for i in 0..200 {
            let records = (0..50)
                .map(|j| Record::keyed(format!("k{}", (i * 50 + j) % 700), format!("{i}-{j}")))
                .collect();
            append(&engine, "k", records).unwrap();
        }
        let status =
            futures::executor::block_on(engine.set_state_mode("k", StateMode::Keyed, None))
                .unwrap();
        assert_eq!(status.mode, StateMode::Keyed);
        // Appends during the build still land in the state.
        append(&engine, "k", vec![Record::keyed("late", "x")]).unwrap();
        wait_built(&engine, "k");
        let (rows, fence) = all_rows(&engine, "k");
        assert_eq!(fence, 10_001);
        assert_eq!(rows.len(), 701);
        verify_clean(&engine);
    }
    let engine = open(&dir);
    assert_eq!(engine.head("k").unwrap().state.mode, StateMode::Keyed);
    append(&engine, "k", vec![Record::tombstone("late")]).unwrap();
    assert_eq!(all_rows(&engine, "k").0.len(), 700);
    verify_clean(&engine);
    // Turning state off removes it.
    futures::executor::block_on(engine.set_state_mode("k", StateMode::None, None)).unwrap();
    assert_eq!(
        engine.state_scan("k", &ScanRequest::default()).unwrap_err(),
        Error::NotStateStream
    );
}

#[test]
fn forks_have_their_parents_state_at_the_fork_point_plus_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine, "p", opaque(), StateMode::Keyed);
    append(
        &engine,
        "p",
        vec![Record::keyed("a", "1"), Record::keyed("b", "1")],
    )
    .unwrap();
    let fork = weir_storage::ForkRequest {
        source: "p".into(),
        ..Default::default()
    };
    futures::executor::block_on(engine.fork_stream("f", fork)).unwrap();
    append(&engine, "p", vec![Record::keyed("a", "parent-later")]).unwrap();
    append(
        &engine,
        "f",
        vec![Record::tombstone("b"), Record::keyed("c", "fork")],
    )
    .unwrap();
    wait_built(&engine, "f");
    let (rows, _) = all_rows(&engine, "f");
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.key.key_bytes()).to_string(),
                r.value.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".to_string(), Bytes::from("1")),
            ("c".to_string(), Bytes::from("fork"))
        ]
    );
    engine.delete_stream("f").unwrap();
    assert_eq!(
        engine.state_scan("f", &ScanRequest::default()).unwrap_err(),
        Error::NotFound
    );
    verify_clean(&engine);
}

#[test]
fn subscriptions_resume_from_an_offset_without_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    create(&engine, "k", opaque(), StateMode::Keyed);
    append(
        &engine,
        "k",
        vec![Record::keyed("a", "1"), Record::keyed("b", "2")],
    )
    .unwrap();
    let mut sub = engine
        .subscribe_state(
            "k",
            SubscribeState {
                from: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let ev = futures::executor::block_on(sub.next()).unwrap().unwrap();
    match ev {
        StateEvent::Records(b) => assert_eq!((b.first_offset(), b.len()), (1, 1)),
        other => panic!("{other:?}"),
    }
}
