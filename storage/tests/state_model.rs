//! Model-based test of state streams: random keyed puts and tombstones,
//! State Protocol changes and resets, forks, deletes, mode changes and
//! restarts must leave every stream's state equal to an in-memory model
//! (a map of state key to value per stream), and `verify_state` clean.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use weir_storage::{ForkRequest, ScanRequest, StateKey, StateMode};

const NAMES: [&str; 3] = ["a", "b", "f"];
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];

#[derive(Debug, Clone)]
enum Op {
    /// Keyed put (`Some(value)`) or tombstone (`None`) on a keyed stream.
    Keyed {
        name: usize,
        changes: Vec<(usize, Option<u8>)>,
    },
    /// State Protocol changes on the JSON stream; `None` key is a reset.
    Protocol {
        changes: Vec<(Option<usize>, Option<u8>)>,
    },
    /// Fork stream `name` into "f".
    Fork {
        name: usize,
    },
    Delete {
        name: usize,
    },
    /// Turn keyed state off and on again (rebuilds from history).
    Rebuild {
        name: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let keyed_change = (0..KEYS.len(), proptest::option::weighted(0.8, any::<u8>()));
    let proto_change = (
        proptest::option::weighted(0.95, 0..KEYS.len()),
        proptest::option::weighted(0.8, any::<u8>()),
    );
    prop_oneof![
        8 => (name.clone(), proptest::collection::vec(keyed_change, 1..6))
            .prop_map(|(name, changes)| Op::Keyed { name, changes }),
        6 => proptest::collection::vec(proto_change, 1..6).prop_map(|changes| Op::Protocol { changes }),
        1 => name.clone().prop_map(|name| Op::Fork { name }),
        1 => name.clone().prop_map(|name| Op::Delete { name }),
        1 => name.prop_map(|name| Op::Rebuild { name }),
        1 => Just(Op::Reopen),
    ]
}

type Model = BTreeMap<String, BTreeMap<StateKey, Bytes>>;

fn key(k: &str) -> StateKey {
    StateKey::Keyed(Bytes::copy_from_slice(k.as_bytes()))
}

fn ent(k: &str) -> StateKey {
    StateKey::Entity {
        entity: "t".into(),
        key: k.into(),
    }
}

fn ensure(engine: &Engine, model: &mut Model, name: &str) {
    if !model.contains_key(name) {
        futures::executor::block_on(engine.create_stream_in_mode(
            name,
            opaque(),
            StateMode::Keyed,
            vec![],
            false,
        ))
        .unwrap();
        model.insert(name.to_string(), BTreeMap::new());
    }
}

fn rows(engine: &Engine, name: &str) -> BTreeMap<StateKey, Bytes> {
    for _ in 0..4000 {
        if engine.head(name).unwrap().state.building.is_none() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let page = engine
        .state_scan(
            name,
            &ScanRequest {
                limit: 10_000,
                ..Default::default()
            },
        )
        .unwrap();
    page.rows.into_iter().map(|r| (r.key, r.value)).collect()
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = open(&dir);
    let mut model = Model::new();
    // The source of the live fork "f": deleting it would only soft-delete it.
    let mut fork_parent: Option<&str> = None;
    futures::executor::block_on(engine.create_stream_in_mode(
        "p",
        StreamConfig::new("application/json"),
        StateMode::StateProtocol,
        vec![],
        false,
    ))
    .unwrap();
    model.insert("p".into(), BTreeMap::new());
    for op in ops {
        match op {
            Op::Keyed { name, changes } => {
                let name = NAMES[name];
                ensure(&engine, &mut model, name);
                let m = model.get_mut(name).unwrap();
                let records = changes
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => {
                            m.insert(key(KEYS[*k]), Bytes::from(vec![*v]));
                            Record::keyed(KEYS[*k], vec![*v])
                        }
                        None => {
                            m.remove(&key(KEYS[*k]));
                            Record::tombstone(KEYS[*k])
                        }
                    })
                    .collect();
                engine
                    .append(
                        name,
                        AppendRequest {
                            records,
                            ..Default::default()
                        },
                    )
                    .unwrap();
            }
            Op::Protocol { changes } => {
                let m = model.get_mut("p").unwrap();
                let records = changes
                    .iter()
                    .map(|(k, v)| match (k, v) {
                        (None, _) => {
                            m.clear();
                            Record::new(r#"{"headers":{"control":"reset"}}"#)
                        }
                        (Some(k), Some(v)) => {
                            m.insert(ent(KEYS[*k]), Bytes::from(v.to_string()));
                            Record::new(format!(
                                r#"{{"type":"t","key":"{}","value":{v},"headers":{{"operation":"upsert"}}}}"#,
                                KEYS[*k]
                            )
                            .replace("upsert", "insert"))
                        }
                        (Some(k), None) => {
                            m.remove(&ent(KEYS[*k]));
                            Record::new(format!(
                                r#"{{"type":"t","key":"{}","headers":{{"operation":"delete"}}}}"#,
                                KEYS[*k]
                            ))
                        }
                    })
                    .collect();
                engine
                    .append(
                        "p",
                        AppendRequest {
                            records,
                            ..Default::default()
                        },
                    )
                    .unwrap();
            }
            Op::Fork { name } => {
                let src = NAMES[name];
                if src == "f" || !model.contains_key(src) || model.contains_key("f") {
                    continue;
                }
                let req = ForkRequest {
                    source: src.into(),
                    ..Default::default()
                };
                futures::executor::block_on(engine.fork_stream("f", req)).unwrap();
                fork_parent = Some(src);
                let copy = model[src].clone();
                model.insert("f".into(), copy);
            }
            Op::Delete { name } => {
                let name = NAMES[name];
                if fork_parent == Some(name) && model.contains_key("f") {
                    continue;
                }
                if name == "f" {
                    fork_parent = None;
                }
                if model.remove(name).is_some() {
                    engine.delete_stream(name).unwrap();
                }
            }
            Op::Rebuild { name } => {
                let name = NAMES[name];
                if model.contains_key(name) {
                    let set = |m| {
                        futures::executor::block_on(engine.set_state_mode(name, m, None)).unwrap()
                    };
                    set(StateMode::None);
                    set(StateMode::Keyed);
                }
            }
            Op::Reopen => {
                engine.shutdown();
                drop(engine);
                engine = open(&dir);
            }
        }
        for (name, expect) in &model {
            let got = match engine.head(name) {
                Ok(_) => rows(&engine, name),
                Err(e) => panic!("{name}: {e}"),
            };
            assert_eq!(&got, expect, "state of {name}");
        }
    }
    for r in engine.verify_state().unwrap() {
        assert_eq!(r.differences, 0, "{}: {:?}", r.stream, r.details);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn state_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
