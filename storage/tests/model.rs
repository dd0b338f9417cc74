//! Model-based test: random sequences of operations, including restarts of
//! the engine on the same directory, must agree with a trivial in-memory
//! model of streams (a map of name to records and a closed flag).

use std::collections::BTreeMap;

use proptest::prelude::*;
use weir_storage::{
    AppendRequest, Durability, Engine, EngineConfig, Error, FollowFrom, Record, StreamConfig,
};

const NAMES: [&str; 3] = ["a", "b", "c/d"];
// Arbitrary payloads: neither type has content rules (those are tested in
// the engine's `rules` module and the doors' matrix test).
const TYPES: [&str; 2] = ["application/octet-stream", "text/plain"];

#[derive(Debug, Clone)]
enum Op {
    Create {
        name: usize,
        ty: usize,
    },
    Append {
        name: usize,
        records: Vec<(Option<Vec<u8>>, Vec<u8>)>,
        close: bool,
    },
    Read {
        name: usize,
        from: u64,
        max_bytes: usize,
    },
    Close {
        name: usize,
    },
    Delete {
        name: usize,
    },
    Reopen,
}

fn record() -> impl Strategy<Value = (Option<Vec<u8>>, Vec<u8>)> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4)),
        proptest::collection::vec(any::<u8>(), 0..24),
    )
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        3 => (name.clone(), prop_oneof![4 => Just(0usize), 1 => Just(1usize)]).prop_map(|(name, ty)| Op::Create { name, ty }),
        8 => (name.clone(), proptest::collection::vec(record(), 0..6), proptest::bool::weighted(0.08))
            .prop_map(|(name, records, close)| Op::Append { name, records, close }),
        5 => (name.clone(), 0u64..24, prop_oneof![Just(0usize), 1usize..64, Just(1usize << 20)])
            .prop_map(|(name, from, max_bytes)| Op::Read { name, from, max_bytes }),
        1 => name.clone().prop_map(|name| Op::Close { name }),
        1 => name.prop_map(|name| Op::Delete { name }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Default)]
struct ModelStream {
    ty: usize,
    records: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    closed: bool,
}

fn open(dir: &std::path::Path) -> Engine {
    let cfg = EngineConfig {
        durability: Durability::Buffered,
        block_cache_bytes: 8 << 20,
        ..EngineConfig::default()
    };
    Engine::open(dir, cfg).expect("open engine")
}

fn to_records(v: &[(Option<Vec<u8>>, Vec<u8>)]) -> Vec<Record> {
    v.iter()
        .map(|(k, p)| Record {
            key: k.clone().map(Into::into),
            payload: p.clone().into(),
            tombstone: false,
        })
        .collect()
}

/// Stored bytes the engine accounts a record for: a 4-byte tag, key, payload.
fn stored_len(r: &(Option<Vec<u8>>, Vec<u8>)) -> usize {
    4 + r.0.as_ref().map_or(0, Vec::len) + r.1.len()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Some(open(dir.path()));
    let mut model: BTreeMap<&str, ModelStream> = BTreeMap::new();

    for (step, op) in ops.into_iter().enumerate() {
        let e = engine.as_ref().unwrap();
        match op {
            Op::Create { name, ty } => {
                let n = NAMES[name];
                let got = e.create_stream(n, StreamConfig::new(TYPES[ty]));
                match model.get(n) {
                    None => {
                        let out = got.map_err(|e| {
                            TestCaseError::fail(format!("step {step}: create {n}: {e}"))
                        })?;
                        prop_assert!(out.created);
                        prop_assert_eq!(out.info.next_offset, 0);
                        model.insert(
                            n,
                            ModelStream {
                                ty,
                                ..Default::default()
                            },
                        );
                    }
                    Some(s) if s.ty == ty => {
                        let out = got.map_err(|e| {
                            TestCaseError::fail(format!("step {step}: create {n}: {e}"))
                        })?;
                        prop_assert!(!out.created);
                        prop_assert_eq!(out.info.next_offset, s.records.len() as u64);
                        prop_assert_eq!(out.info.closed, s.closed);
                    }
                    Some(_) => prop_assert_eq!(got.map(|_| ()), Err(Error::ConfigConflict)),
                }
            }
            Op::Append {
                name,
                records,
                close,
            } => {
                let n = NAMES[name];
                let req = AppendRequest {
                    records: to_records(&records),
                    close,
                    ..Default::default()
                };
                let got = e.append(n, req);
                match model.get_mut(n) {
                    None => prop_assert_eq!(got, Err(Error::NotFound), "step {}", step),
                    // Checked before the stream's state, closed or not.
                    Some(_) if records.is_empty() && !close => {
                        prop_assert_eq!(got, Err(Error::EmptyAppend), "step {}", step)
                    }
                    Some(s) if s.closed => {
                        if records.is_empty() && close {
                            let r =
                                got.map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
                            prop_assert!(r.closed);
                            prop_assert_eq!(r.next_offset, s.records.len() as u64);
                        } else {
                            prop_assert_eq!(
                                got,
                                Err(Error::Closed {
                                    next_offset: s.records.len() as u64
                                }),
                                "step {}",
                                step
                            );
                        }
                    }
                    Some(s) => {
                        let r = got.map_err(|e| {
                            TestCaseError::fail(format!("step {step}: append: {e}"))
                        })?;
                        let first = s.records.len() as u64;
                        prop_assert_eq!(r.first_offset, first, "step {}", step);
                        prop_assert_eq!(r.next_offset, first + records.len() as u64);
                        prop_assert!(!r.duplicate);
                        prop_assert_eq!(r.closed, close);
                        s.records.extend(records);
                        s.closed = close;
                    }
                }
            }
            Op::Close { name } => {
                let n = NAMES[name];
                let got = e.append(
                    n,
                    AppendRequest {
                        close: true,
                        ..Default::default()
                    },
                );
                match model.get_mut(n) {
                    None => prop_assert_eq!(got, Err(Error::NotFound)),
                    Some(s) => {
                        let r = got
                            .map_err(|e| TestCaseError::fail(format!("step {step}: close: {e}")))?;
                        prop_assert!(r.closed);
                        prop_assert_eq!(r.next_offset, s.records.len() as u64);
                        s.closed = true;
                    }
                }
            }
            Op::Read {
                name,
                from,
                max_bytes,
            } => {
                let n = NAMES[name];
                let got = e.read(n, from, max_bytes);
                let Some(s) = model.get(n) else {
                    prop_assert!(
                        matches!(got, Err(Error::NotFound)),
                        "step {}: {:?}",
                        step,
                        got.map(|_| ())
                    );
                    continue;
                };
                let tail = s.records.len() as u64;
                if from > tail {
                    prop_assert!(
                        matches!(got, Err(Error::OffsetOutOfRange { offset, tail: t }) if offset == from && t == tail),
                        "step {}: {:?}",
                        step,
                        got.map(|_| ())
                    );
                    continue;
                }
                let r = got.map_err(|e| TestCaseError::fail(format!("step {step}: read: {e}")))?;
                prop_assert_eq!(r.tail, tail);
                prop_assert_eq!(r.closed, s.closed);
                let flat: Vec<(u64, Option<Vec<u8>>, Vec<u8>)> = r
                    .batches
                    .iter()
                    .flat_map(|b| {
                        b.iter()
                            .map(|x| (x.offset, x.key.map(<[u8]>::to_vec), x.payload.to_vec()))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                prop_assert_eq!(r.next_offset, from + flat.len() as u64);
                if from < tail {
                    prop_assert!(
                        !flat.is_empty(),
                        "step {}: read below the tail returned nothing",
                        step
                    );
                }
                for (i, (o, k, p)) in flat.iter().enumerate() {
                    let want = &s.records[from as usize + i];
                    prop_assert_eq!(*o, from + i as u64);
                    prop_assert_eq!(k, &want.0, "step {} offset {}", step, o);
                    prop_assert_eq!(p, &want.1, "step {} offset {}", step, o);
                }
                // The budget: every record but the last fits within it (the
                // last one may be the single record a read always returns).
                let sizes: Vec<usize> = (0..flat.len())
                    .map(|i| stored_len(&s.records[from as usize + i]))
                    .collect();
                if sizes.len() > 1 {
                    let but_last: usize = sizes[..sizes.len() - 1].iter().sum();
                    prop_assert!(
                        but_last < max_bytes,
                        "step {}: {:?} over budget {}",
                        step,
                        sizes,
                        max_bytes
                    );
                }
                // A read stops short only when the budget is reached or
                // exceeded: otherwise it must reach the tail.
                let total: usize = sizes.iter().sum();
                if r.next_offset < tail {
                    let next = stored_len(&s.records[r.next_offset as usize]);
                    prop_assert!(
                        total + next > max_bytes,
                        "step {}: read stopped at {} with {} of {} bytes used",
                        step,
                        r.next_offset,
                        total,
                        max_bytes
                    );
                }
            }
            Op::Delete { name } => {
                let n = NAMES[name];
                let got = e.delete_stream(n);
                if model.remove(n).is_some() {
                    prop_assert_eq!(got, Ok(()), "step {}", step);
                } else {
                    prop_assert_eq!(got, Err(Error::NotFound), "step {}", step);
                }
            }
            Op::Reopen => {
                drop(engine.take());
                engine = Some(open(dir.path()));
            }
        }
        check_heads(engine.as_ref().unwrap(), &model, step)?;
    }

    // Final full check, including after one more restart and through a
    // follower (which must end, since every stream it follows is closed).
    drop(engine.take());
    let e = open(dir.path());
    check_heads(&e, &model, usize::MAX)?;
    for (n, s) in &model {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let r = e.read(n, from, 100).unwrap();
            for b in &r.batches {
                all.extend(
                    b.iter()
                        .map(|x| (x.key.map(<[u8]>::to_vec), x.payload.to_vec())),
                );
            }
            if r.up_to_date() {
                break;
            }
            from = r.next_offset;
        }
        prop_assert_eq!(&all, &s.records, "stream {}", n);
        e.append(
            n,
            AppendRequest {
                close: true,
                ..Default::default()
            },
        )
        .unwrap();
        let mut f = e.follow(n, FollowFrom::Start).unwrap();
        let followed = futures::executor::block_on(async {
            use futures::StreamExt;
            let mut out = Vec::new();
            while let Some(b) = f.next().await {
                let b = b.unwrap();
                out.extend(
                    b.iter()
                        .map(|x| (x.key.map(<[u8]>::to_vec), x.payload.to_vec())),
                );
            }
            out
        });
        prop_assert_eq!(&followed, &s.records, "followed stream {}", n);
    }
    Ok(())
}

fn check_heads(
    e: &Engine,
    model: &BTreeMap<&str, ModelStream>,
    step: usize,
) -> Result<(), TestCaseError> {
    for n in NAMES {
        match (model.get(n), e.head(n)) {
            (None, Err(Error::NotFound)) => {}
            (Some(s), Ok(h)) => {
                prop_assert_eq!(
                    h.next_offset,
                    s.records.len() as u64,
                    "step {} stream {}",
                    step,
                    n
                );
                prop_assert_eq!(h.closed, s.closed, "step {} stream {}", step, n);
                prop_assert_eq!(&h.config.content_type, TYPES[s.ty]);
                prop_assert_eq!(e.tail(n).unwrap(), (s.records.len() as u64, s.closed));
            }
            (m, h) => {
                return Err(TestCaseError::fail(format!(
                    "step {step} stream {n}: model has {:?}, engine has {:?}",
                    m.map(|s| s.records.len()),
                    h.map(|h| h.next_offset)
                )))
            }
        }
    }
    let listed: Vec<String> = e
        .list_streams(None, 100)
        .into_iter()
        .map(|i| i.name)
        .collect();
    let want: Vec<String> = model.keys().map(|n| n.to_string()).collect();
    prop_assert_eq!(listed, want, "step {}", step);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
