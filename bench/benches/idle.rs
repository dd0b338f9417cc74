//! Memory of idle live followers: RSS before and after registering N
//! followers that are live (caught up, waiting for the next batch) on one
//! stream, divided by N. A follower's live queue allocates only as batches
//! arrive, so an idle one should cost its bookkeeping, not its queue bound.
//! One more batch is then published to all of them and drained, and the
//! figure is taken again: the queues give their memory back.
//!
//! `cargo bench -p weir-bench --bench idle [-- N]` (default 20,000).

use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use futures::StreamExt;
use weir_storage::{AppendRequest, Engine, FollowFrom, Record, StreamConfig};

mod memory;
use memory::{count_arg, rss_bytes};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n = count_arg(20_000);
    let (e, _dir, config) = memory::engine();
    let queue = config.follower_queue;
    e.create_stream("s", StreamConfig::new("application/octet-stream"))
        .unwrap();
    let append = |p: &'static str| {
        e.append(
            "s",
            AppendRequest {
                records: vec![Record::new(p)],
                ..Default::default()
            },
        )
        .unwrap()
    };
    append("first");
    let mut cx = Context::from_waker(noop_waker_ref());
    // Warm the allocator and the engine with a first set, then measure.
    let warm: Vec<_> = (0..1000).map(|_| live(&e, &mut cx)).collect();
    drop(warm);
    let before = rss_bytes();
    let mut followers: Vec<_> = (0..n).map(|_| live(&e, &mut cx)).collect();
    let idle = rss_bytes();
    append("second");
    for f in &mut followers {
        match f.poll_next_unpin(&mut cx) {
            Poll::Ready(Some(Ok(b))) => assert_eq!(b.first_offset(), 1),
            other => panic!("expected the second batch, got {other:?}"),
        }
        assert!(f.poll_next_unpin(&mut cx).is_pending());
    }
    let drained = rss_bytes();
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / n as f64;
    println!("followers: {n}, follower_queue bound: {queue}");
    println!("idle live follower: {:.0} bytes each", per(before, idle));
    println!(
        "after one batch delivered and drained: {:.0} bytes each",
        per(before, drained)
    );
    drop(followers);
    e.shutdown();
}

/// A follower from the tail, polled until it is live and waiting.
fn live(e: &Engine, cx: &mut Context<'_>) -> weir_storage::Follower {
    let mut f = e.follow("s", FollowFrom::Offset(1)).unwrap();
    assert!(f.poll_next_unpin(cx).is_pending());
    f
}
