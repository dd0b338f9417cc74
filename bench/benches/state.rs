//! Criterion benchmarks of state streams: the cost of keeping key-value
//! state with every commit, as the throughput of the same appends to a
//! plain stream and to a state stream, measured back to back in one run.
//!
//! * `plain_json` / `state_protocol`: 100-record appends of State Protocol
//!   changes of about 100 bytes over 10,000 keys, to a plain JSON stream and
//!   to a `state-protocol` stream (validation, derivation and one `kv` put
//!   per record more).
//! * `plain_keyed` / `keyed`: 100-record appends of 100-byte payloads with
//!   keys over 10,000 keys, to a plain stream and to a `keyed` stream.
//!
//! Requests are submitted `INFLIGHT` at a time so that group commit works
//! as it does under load. Results are records per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use futures::future::join_all;
use weir_storage::{
    AppendRequest, Durability, Engine, EngineConfig, Record, StateMode, StreamConfig,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: u64 = 10_000;
const BATCH: usize = 100;
const INFLIGHT: usize = 16;

/// A State Protocol change of about 100 bytes for record number `n`.
fn change(n: u64) -> Record {
    let op = if n < KEYS { "insert" } else { "update" };
    Record::new(format!(
        r#"{{"type":"row","key":"k{:05}","value":{{"n":{n},"pad":"{:024}"}},"headers":{{"operation":"{op}"}}}}"#,
        n % KEYS,
        n
    ))
}

/// A keyed record of 100 bytes of payload for record number `n`.
fn keyed(n: u64) -> Record {
    Record::keyed(format!("k{:05}", n % KEYS), format!("{n:0100}"))
}

/// A case: its name, the stream's content type and state mode, and how its records are made.
type Case = (&'static str, &'static str, StateMode, fn(u64) -> Record);

fn main() {
    let mut c = Criterion::default().without_plots().configure_from_args();
    for durability in [Durability::Buffered, Durability::Sync] {
        let mode = match durability {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        };
        let mut g = c.benchmark_group(format!("state_append_{mode}"));
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(4));
        g.throughput(Throughput::Elements((INFLIGHT * BATCH) as u64));
        let cases: [Case; 4] = [
            ("plain_json", "application/json", StateMode::None, change),
            (
                "state_protocol",
                "application/json",
                StateMode::StateProtocol,
                change,
            ),
            (
                "plain_keyed",
                "application/octet-stream",
                StateMode::None,
                keyed,
            ),
            ("keyed", "application/octet-stream", StateMode::Keyed, keyed),
        ];
        for (name, ct, state, make) in cases {
            let dir = tempfile::tempdir().expect("temp dir");
            let engine = Engine::open(
                dir.path(),
                EngineConfig {
                    durability,
                    ..Default::default()
                },
            )
            .expect("open engine");
            futures::executor::block_on(engine.create_stream_in_mode(
                "s",
                StreamConfig::new(ct),
                state,
                vec![],
                false,
            ))
            .expect("create");
            let mut n = 0u64;
            g.bench_function(
                BenchmarkId::new(name, format!("batch={BATCH}/inflight={INFLIGHT}")),
                |b| {
                    b.iter_custom(|iters| {
                        let rounds: Vec<Vec<AppendRequest>> = (0..iters)
                            .map(|_| {
                                (0..INFLIGHT)
                                    .map(|_| AppendRequest {
                                        records: (0..BATCH)
                                            .map(|_| {
                                                n += 1;
                                                make(n)
                                            })
                                            .collect(),
                                        ..Default::default()
                                    })
                                    .collect()
                            })
                            .collect();
                        let start = Instant::now();
                        for round in rounds {
                            let all =
                                join_all(round.into_iter().map(|r| engine.append_async("s", r)));
                            for r in futures::executor::block_on(all) {
                                black_box(r.expect("append"));
                            }
                        }
                        start.elapsed()
                    });
                },
            );
        }
        g.finish();
    }
    c.final_summary();
}
