//! What changed when: the writer records, per tenant, when each change was
//! sent, and waiters look up the change that explains an answer. Each tenant keeps its most recent changes only (a waiter asks
//! about the last seconds), so memory stays bounded however long the run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;

use super::setup::Http;
use super::Window;

/// Changes remembered per tenant.
const HISTORY: usize = 64;

/// Recent changes of every tenant, as the times they were sent.
pub(crate) struct Ledger {
    tenants: Vec<Mutex<VecDeque<Duration>>>,
}

impl Ledger {
    pub(crate) fn new(tenants: usize) -> Self {
        Ledger {
            tenants: (0..tenants).map(|_| Mutex::new(VecDeque::new())).collect(),
        }
    }

    /// The number of tenants.
    pub(crate) fn len(&self) -> usize {
        self.tenants.len()
    }

    fn record(&self, tenant: usize, sent: Duration) {
        let mut q = self.tenants[tenant].lock().unwrap();
        if q.len() == HISTORY {
            q.pop_front();
        }
        q.push_back(sent);
    }

    /// When the first change, among `tenants`, sent at or after `since` was
    /// sent; `None` when there was none.
    pub(crate) fn first_since(&self, tenants: &[usize], since: Duration) -> Option<Duration> {
        tenants
            .iter()
            .filter_map(|t| {
                let q = self.tenants[*t].lock().unwrap();
                q.iter().find(|sent| **sent >= since).copied()
            })
            .min()
    }
}

/// Appends in flight at once: enough for the rate at any fsync latency.
const IN_FLIGHT: usize = 256;

/// Inserts one post per change for a pseudo-random tenant, at `rate`
/// changes per second in appends of `per_append` changes, until aborted.
/// With one change per append, a change's acknowledgement is its own
/// commit; larger appends give the load the shape of a writer that batches
/// (and reach servers whose appends are slow).
pub(crate) async fn write_changes(
    http: Http,
    stream: String,
    rate: f64,
    per_append: usize,
    ledger: Arc<Ledger>,
    window: Arc<Window>,
    counted: Arc<AtomicU64>,
) {
    let per_append = per_append.max(1);
    let period = Duration::from_secs_f64(per_append as f64 / rate.max(0.001));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut n: u64 = 0;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    loop {
        tick.tick().await;
        let mut tenants = Vec::with_capacity(per_append);
        let mut rows = Vec::with_capacity(per_append);
        for _ in 0..per_append {
            n += 1;
            // xorshift: a fixed, even spread of tenants.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let tenant = (rng % ledger.len() as u64) as usize;
            tenants.push(tenant);
            rows.push(json!({"type": "posts", "key": format!("p{n}"),
                "value": {"tenantId": format!("t{tenant}"), "title": "load"},
                "headers": {"operation": "insert"}}));
        }
        let body = serde_json::Value::Array(rows).to_string();
        let Ok(permit) = gate.clone().acquire_owned().await else {
            return;
        };
        let (http, stream, ledger, window, counted) = (
            http.clone(),
            stream.clone(),
            ledger.clone(),
            window.clone(),
            counted.clone(),
        );
        tokio::spawn(async move {
            // Recorded before the append: a touch may answer before the ack.
            let sent = window.now();
            for &t in &tenants {
                ledger.record(t, sent);
            }
            let ok = http.append(&stream, &body).await.is_ok();
            if ok && window.inside(window.now()) {
                counted.fetch_add(tenants.len() as u64, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
}
