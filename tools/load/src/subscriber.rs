//! One subscriber task: follows one stream, checks every record it gets
//! into its ledger, and measures end-to-end latency from the send time
//! embedded in the payload.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::watch;

use crate::ledger::{Ledger, SubLedger};
use crate::record;
use crate::stats::{self, Stats};
use crate::transport::Subscribed;

/// Runs until `stop` turns true.
pub async fn run(
    stats: Arc<Stats>,
    ledger: Arc<Ledger>,
    me: Arc<SubLedger>,
    mut sub: Subscribed,
    record_size: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut e2e = stats::histogram();
    loop {
        let item = tokio::select! {
            item = sub.records.next() => item,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(item) = item else { break };
        match item {
            Err(e) => {
                stats.subscribe_errors.fetch_add(1, Ordering::Relaxed);
                stats.error(&e);
            }
            Ok(delivery) => {
                let now = stats.now();
                let n = delivery.len() as u64;
                // Records of one append share their send time: one
                // histogram entry per run of equal times, with its count.
                let mut same: Option<(u64, u64)> = None;
                let decoded = delivery.iter().map(|(offset, payload)| {
                    let d = record::decode(payload, record_size);
                    if let Some(d) = d.filter(|d| stats.after_warmup(d.sent_nanos)) {
                        match &mut same {
                            Some((t, n)) if *t == d.sent_nanos => *n += 1,
                            _ => {
                                if let Some((t, n)) = same.replace((d.sent_nanos, 1)) {
                                    stats::record_us_n(&mut e2e, now.saturating_sub(t), n);
                                }
                            }
                        }
                    }
                    (offset, d)
                });
                ledger.deliver(&me, decoded);
                if let Some((t, n)) = same {
                    stats::record_us_n(&mut e2e, now.saturating_sub(t), n);
                }
                stats.delivered.fetch_add(n, Ordering::Relaxed);
                if stats.in_window(now) {
                    stats.measured_delivered.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }
    Stats::merge(&stats.e2e, &e2e);
}
