//! Memory of idle touch waiters in process: RSS before and after N fine
//! waits (3 keys each, one template) are registered on one touch stream and
//! parked, divided by N. This is what a waiter costs the engine (its
//! journal entries, its hot interest and its future), without any door's
//! connection or request state; the HTTP figure is in bench/compare/touch.
//!
//! `cargo bench -p weir-bench --bench waiters [-- N]` (default 10,000).

use std::alloc::{GlobalAlloc, Layout};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::{Context, Poll};

use futures::executor::block_on;
use futures::task::noop_waker_ref;
use weir_storage::touch::request::parse_wait;
use weir_storage::{Engine, StateMode, StreamConfig, WaitOutcome};

mod memory;
use memory::{count_arg, rss_bytes};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// mimalloc, counting the bytes held (as requested, before its rounding):
/// RSS moves with mimalloc's delayed page purging by hundreds of bytes per
/// waiter from run to run, the held bytes do not.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HELD.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        HELD.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

type Wait = Pin<Box<dyn Future<Output = weir_storage::Result<WaitOutcome>> + Send>>;

fn main() {
    let n = count_arg(10_000);
    let (e, _dir, _) = memory::engine();
    e.create_stream("t", StreamConfig::new("application/json"))
        .unwrap();
    let profile = r#"{"kind":"state-protocol","touch":{"enabled":true}}"#;
    block_on(e.set_state_mode("t", StateMode::StateProtocol, Some(profile.into()))).unwrap();
    let template = serde_json::json!({"entity": "users", "fields": [{"name": "tenant", "encoding": "string"}]});
    let activation = e.touch_activate("t", &[template], None).unwrap();
    let tid = activation.activated[0].template_id.clone();
    let mut cx = Context::from_waker(noop_waker_ref());
    // Warm the allocator and the journal's indexes with a first set.
    let warm: Vec<Wait> = (0..1000).map(|i| park(&e, &tid, i, &mut cx)).collect();
    drop(warm);
    // The bench's own list of futures is allocated first: not a waiter's cost.
    let mut waits: Vec<Wait> = Vec::with_capacity(n);
    let (before, list) = (rss_bytes(), HELD.load(Ordering::Relaxed));
    waits.extend((0..n).map(|i| park(&e, &tid, i, &mut cx)));
    let (parked, held) = (rss_bytes(), HELD.load(Ordering::Relaxed));
    let rss = (parked.saturating_sub(before)) as f64 / n as f64;
    let heap = (held - list) as f64 / n as f64;
    println!("waiters: {n} (3 fine keys each over 1,000 tuples, one template)");
    println!("idle waiter in process: {heap:.0} bytes of heap each (RSS: {rss:.0})");
    println!(
        "of which the wait's future: {} bytes",
        std::mem::size_of_val(&*waits[0])
    );
    drop(waits);
    e.shutdown();
}

/// A fine wait on three watch keys of waiter `i`, polled until it is parked.
fn park(e: &Engine, tid: &str, i: usize, cx: &mut Context<'_>) -> Wait {
    let keys: Vec<String> = (0..3)
        .map(|k| format!("{:016x}", (i * 3 + k) % 1000 + 1))
        .collect();
    let body = serde_json::json!({
        "cursor": "now",
        "keys": keys,
        "interestMode": "fine",
        "templateIdsUsed": [tid],
        "timeoutMs": 600_000,
    });
    let req = parse_wait(body.to_string().as_bytes()).unwrap();
    let mut w: Wait = Box::pin(e.touch_wait("t", req));
    assert!(
        matches!(w.as_mut().poll(cx), Poll::Pending),
        "the wait answered at once"
    );
    w
}
