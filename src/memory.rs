//! Idle workers give freed memory back to the system.
//!
//! mimalloc keeps the pages a thread freed for that thread's next
//! allocations and returns them to the system only as the thread goes on
//! allocating. A server thread that goes quiet after a burst (a thousand
//! keep-alive connections that each served a request and then freed their
//! HTTP buffers, `net/src/http/hibernate.rs`) would hold the burst's peak
//! resident for as long as it stays quiet. So a tokio worker that is about
//! to park collects its heap, at most once per [`EVERY`]; a busy worker
//! parks often and pays one clock read for each.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Least time between two collections by one worker.
pub const EVERY: Duration = Duration::from_secs(1);

thread_local! {
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Called by each tokio worker before it parks.
pub fn on_worker_park() {
    let now = Instant::now();
    let due = LAST.with(|last| match last.get() {
        Some(t) if now.duration_since(t) < EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    if due {
        // SAFETY: mi_collect only walks and trims the calling thread's own
        // heap; it takes no pointers and is safe to call at any time.
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}
