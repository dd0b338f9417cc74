//! One waiter: waits on its tenants' watch keys, over HTTP or QUIC, and
//! waits again with the returned cursor after every answer, measuring how
//! long after the change that explains it each touched answer came.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::{json, Value};
use weir_net::client::Client;
use weir_net::proto::WireWaitStatus;
use weir_storage::touch::keys;

use super::ledger::Ledger;
use super::setup::Http;
use super::{Counts, TouchConfig, Window};
use crate::target::Scheme;

/// A change sent this long before a wait began may still explain its
/// answer (bucket flushes, the cursor's age).
const SLACK: Duration = Duration::from_secs(1);

/// Pause after a failed wait.
const RETRY: Duration = Duration::from_millis(200);

/// How waiters reach the server.
#[derive(Clone)]
enum Door {
    Http(Http),
    /// QUIC connections, shared round-robin by the waiters.
    Quic(Arc<Vec<Client>>),
}

/// What every waiter shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    door: Door,
    stream: String,
    template_id: u64,
    keys_per_wait: usize,
    timeout_ms: u64,
}

/// Waiters per QUIC connection.
const WAITERS_PER_CONNECTION: usize = 500;

impl Ctx {
    pub(crate) async fn connect(
        config: &TouchConfig,
        stream: &str,
        template_id: String,
    ) -> anyhow::Result<Ctx> {
        let door = match config.target.scheme {
            Scheme::Quic => {
                let n = config.waiters.div_ceil(WAITERS_PER_CONNECTION).max(1);
                let mut clients = Vec::with_capacity(n);
                for _ in 0..n {
                    clients.push(crate::transport::quic::connect_client(&config.target).await?);
                }
                Door::Quic(Arc::new(clients))
            }
            _ => Door::Http(Http::new(&config.target.authority)),
        };
        Ok(Ctx {
            door,
            stream: stream.to_string(),
            template_id: keys::parse_hex16(&template_id).context("template id is hex")?,
            keys_per_wait: config.keys_per_wait,
            timeout_ms: config.wait_timeout_ms,
        })
    }
}

/// One answer, door-neutral.
enum Answer {
    Touched(String),
    Timeout(String),
    Stale(String),
}

async fn wait_once(ctx: &Ctx, i: usize, doc: &Value) -> anyhow::Result<Answer> {
    match &ctx.door {
        Door::Http(http) => {
            let path = format!("/v1/stream/{}/touch/wait", ctx.stream);
            let limit = Duration::from_millis(ctx.timeout_ms) + Duration::from_secs(30);
            let (status, v) = http
                .call(Method::POST, &path, doc.to_string(), limit)
                .await?;
            anyhow::ensure!(status == 200, "wait: HTTP {status} {v}");
            let cursor = v["cursor"].as_str().unwrap_or("now").to_string();
            Ok(if v["stale"] == json!(true) {
                Answer::Stale(cursor)
            } else if v["touched"] == json!(true) {
                Answer::Touched(cursor)
            } else {
                Answer::Timeout(cursor)
            })
        }
        Door::Quic(clients) => {
            let w = clients[i % clients.len()].wait(&ctx.stream, doc).await?;
            Ok(match w.status {
                WireWaitStatus::Touched => Answer::Touched(w.cursor),
                WireWaitStatus::Timeout => Answer::Timeout(w.cursor),
                WireWaitStatus::Stale => Answer::Stale(w.cursor),
            })
        }
    }
}

/// Runs waiter `i` until aborted.
pub(crate) async fn run(
    ctx: Ctx,
    i: usize,
    ledger: Arc<Ledger>,
    counts: Arc<Counts>,
    latency: Arc<Mutex<Histogram<u64>>>,
    window: Arc<Window>,
) {
    // Tenants i, i + stride, ...: every tenant is waited on about equally.
    let stride = (ledger.len() / ctx.keys_per_wait).max(1);
    let tenants: Vec<usize> = (0..ctx.keys_per_wait)
        .map(|k| (i + k * stride) % ledger.len())
        .collect();
    let watch: Vec<String> = tenants
        .iter()
        .map(|t| keys::hex16(keys::watch_key(ctx.template_id, &[&format!("t{t}")])))
        .collect();
    let template = keys::hex16(ctx.template_id);
    let mut cursor = "now".to_string();
    let mut ready = false;
    loop {
        let began = window.now();
        let doc = json!({"cursor": cursor, "keys": watch, "templateIdsUsed": [template],
                         "interestMode": "fine", "timeoutMs": ctx.timeout_ms});
        let answer = match wait_once(&ctx, i, &doc).await {
            Ok(a) => a,
            Err(_) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if !ready {
            ready = true;
            counts.ready.fetch_add(1, Ordering::Relaxed);
        }
        let at = window.now();
        let counted = window.inside(at);
        cursor = match answer {
            Answer::Touched(c) => {
                if counted {
                    counts.touched.fetch_add(1, Ordering::Relaxed);
                    if let Some(sent) = ledger.first_since(&tenants, began) {
                        let us = at.saturating_sub(sent).as_micros() as u64;
                        let _ = latency.lock().unwrap().record(us.max(1));
                    } else if ledger
                        .first_since(&tenants, began.saturating_sub(SLACK))
                        .is_none()
                    {
                        // Nothing of ours changed: a false wake. (A change
                        // just before the wait explains an immediate answer,
                        // which has no latency to measure.)
                        counts.false_wakes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                c
            }
            Answer::Timeout(c) => {
                if counted {
                    counts.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                c
            }
            Answer::Stale(c) => {
                if counted {
                    counts.stale.fetch_add(1, Ordering::Relaxed);
                }
                c
            }
        };
    }
}
