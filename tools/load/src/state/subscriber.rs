//! One state subscriber: subscribes with its filter (and a snapshot),
//! materializes its rows from the snapshot and then from every change, and
//! judges each delivery against the writer's ledger: the key must be the
//! one the change at that offset wrote, the operation must be what the
//! change means for this subscriber's group (it entered or stayed: upsert;
//! it left: delete), offsets must only grow. Change latency is receive time
//! minus the send time of the change at the delivered offset.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{oneshot, watch};
use weir_net::client::StateItem;
use weir_net::proto::ChangeOp;
use weir_storage::Batch;

use super::check::Materialized;
use super::data::{key_of, parse_key, ENTITY};
use super::door::Door;
use super::ledger::{Entry, Ledger};
use super::{Clock, StateModeArg};

/// Latencies buffered before they are merged into a shared histogram.
const FLUSH: usize = 256;

/// What every subscriber shares.
pub(crate) struct Ctx {
    pub stream: String,
    pub mode: StateModeArg,
    pub snapshot: bool,
    pub ledger: Arc<Ledger>,
    pub clock: Clock,
    /// Change latencies (µs), sharded so subscribers rarely meet on a lock.
    pub latency: Vec<Mutex<Histogram<u64>>>,
}

/// What the run watches while a subscriber runs.
#[derive(Default)]
pub(crate) struct Progress {
    /// Deliveries of changes (offsets from the ledger's base on).
    pub received: AtomicU64,
    /// The snapshot's fence, once it is complete.
    pub fence: AtomicU64,
}

/// A subscriber's snapshot: how long it took and how many rows it held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub nanos: u64,
    pub rows: u64,
}

/// What a subscriber ends with.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub group: Option<u8>,
    pub state: Materialized,
    pub snapshot: Option<Snapshot>,
    /// Deliveries of changes.
    pub received: u64,
    /// Deliveries whose offset did not grow (repeated or out of order).
    pub out_of_order: u64,
    /// Deliveries that are not what the change at their offset means here.
    pub wrong: u64,
    pub first_wrong: Option<String>,
    /// Deliveries at offsets no acknowledged change explains.
    pub unexplained: u64,
    /// Why the subscription ended early.
    pub error: Option<String>,
}

/// The operation of one delivery, as far as judging it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Upsert,
    Delete,
    Reset,
}

/// A delivery that arrived before its append's acknowledgement.
struct Pending {
    offset: u64,
    recv_ns: u64,
    op: Op,
    key: Option<u32>,
}

/// A subscriber at work.
struct Sub {
    ctx: Arc<Ctx>,
    index: usize,
    progress: Arc<Progress>,
    out: Outcome,
    /// The last delivered offset.
    last: Option<u64>,
    pending: VecDeque<Pending>,
    latencies: Vec<u64>,
}

/// Runs subscriber `index` of `group` (`None`: unfiltered) until `stop`.
/// `ready` is told when its snapshot is complete (or the subscription
/// failed before).
pub(crate) async fn run(
    door: Door,
    index: usize,
    group: Option<u8>,
    ctx: Arc<Ctx>,
    progress: Arc<Progress>,
    ready: oneshot::Sender<Result<Option<Snapshot>, String>>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let filter = group.map(|g| format!(r#"{{"field":"g","op":"eq","value":{g}}}"#));
    let mut sub = Sub {
        ctx: ctx.clone(),
        index,
        progress,
        out: Outcome {
            group,
            ..Outcome::default()
        },
        last: None,
        pending: VecDeque::new(),
        latencies: Vec::with_capacity(FLUSH),
    };
    let began = ctx.clock.now();
    let mut items = match door.subscribe(&ctx.stream, ctx.snapshot, filter) {
        Ok(s) => s,
        Err(e) => {
            let e = format!("{e:#}");
            let _ = ready.send(Err(e.clone()));
            sub.out.error = Some(e);
            return sub.out;
        }
    };
    let mut ready = Some(ready);
    if !ctx.snapshot {
        // Nothing marks the registration; the run settles before writing.
        let _ = ready.take().map(|r| r.send(Ok(None)));
    }
    let mut snapshot_rows = 0u64;
    loop {
        let item = tokio::select! {
            biased;
            item = items.next() => item,
            _ = stop.changed() => break,
        };
        let item = match item {
            Some(Ok(i)) => i,
            Some(Err(e)) => {
                sub.out.error = Some(format!("{e:#}"));
                break;
            }
            None => {
                sub.out.error = Some("the subscription ended".into());
                break;
            }
        };
        match item {
            StateItem::Snapshot(rows) => {
                snapshot_rows += rows.len() as u64;
                rows.iter().for_each(|r| sub.out.state.apply_row(r));
            }
            StateItem::SnapshotDone { fence, rows } => {
                let s = Snapshot {
                    nanos: ctx.clock.now().saturating_sub(began),
                    rows,
                };
                if rows != snapshot_rows {
                    sub.wrong(format!(
                        "SnapshotDone counts {rows} rows, {snapshot_rows} arrived"
                    ));
                }
                sub.out.snapshot = Some(s);
                sub.progress.fence.store(fence, Ordering::Relaxed);
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(Some(s)));
                }
            }
            StateItem::Change(c) => {
                let now = ctx.clock.now();
                let key = c.key.as_ref().and_then(key_of);
                if c.key.is_some() && key.is_none() {
                    sub.out.state.foreign += 1;
                }
                let op = match c.op {
                    ChangeOp::Upsert => {
                        if let (Some(k), Some(v)) = (key, &c.value) {
                            sub.out.state.upsert(k, v, c.offset);
                        }
                        Op::Upsert
                    }
                    ChangeOp::Delete => {
                        if let Some(k) = key {
                            sub.out.state.delete(k);
                        }
                        Op::Delete
                    }
                    ChangeOp::Reset => {
                        sub.out.state.clear();
                        Op::Reset
                    }
                };
                sub.delivered(c.offset, op, key, now);
            }
            StateItem::Records(batch) => {
                let now = ctx.clock.now();
                sub.apply_records(&batch, now);
            }
        }
    }
    if let Some(r) = ready.take() {
        let why = sub.out.error.clone().unwrap_or("stopped".into());
        let _ = r.send(Err(why));
    }
    sub.finish();
    sub.out
}

/// A State Protocol message as the writer writes them.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(rename = "type", borrow)]
    entity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    headers: Headers<'a>,
}

#[derive(Deserialize, Default)]
struct Headers<'a> {
    #[serde(borrow)]
    operation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    control: Option<Cow<'a, str>>,
}

impl Sub {
    /// Applies unfiltered deliveries: stored records, read as the
    /// stream's mode says.
    fn apply_records(&mut self, batch: &Batch, now: u64) {
        for r in batch.iter() {
            let (op, key) = match self.ctx.mode {
                StateModeArg::Keyed => {
                    let Some(k) = r.key else { continue };
                    let key = parse_key(k);
                    match (key, r.tombstone) {
                        (Some(i), true) => {
                            self.out.state.delete(i);
                        }
                        (Some(i), false) => self.out.state.upsert(i, r.payload, r.offset),
                        (None, _) => self.out.state.foreign += 1,
                    }
                    (if r.tombstone { Op::Delete } else { Op::Upsert }, key)
                }
                StateModeArg::StateProtocol => {
                    let Ok(m) = serde_json::from_slice::<Message>(r.payload) else {
                        self.wrong(format!("offset {}: not a State Protocol message", r.offset));
                        continue;
                    };
                    if m.headers.control.as_deref() == Some("reset") {
                        self.out.state.clear();
                        (Op::Reset, None)
                    } else if m.headers.control.is_some() {
                        continue;
                    } else {
                        let key = match (m.entity.as_deref(), m.key.as_deref()) {
                            (Some(ENTITY), Some(k)) => parse_key(k.as_bytes()),
                            _ => None,
                        };
                        let Some(i) = key else {
                            self.out.state.foreign += 1;
                            continue;
                        };
                        match (m.headers.operation.as_deref(), m.value) {
                            (Some("delete"), _) => {
                                self.out.state.delete(i);
                                (Op::Delete, key)
                            }
                            (_, Some(v)) => {
                                self.out.state.upsert(i, v.get().as_bytes(), r.offset);
                                (Op::Upsert, key)
                            }
                            (_, None) => continue,
                        }
                    }
                }
            };
            self.delivered(r.offset, op, key, now);
        }
    }

    /// Counts and judges one delivery received at `recv_ns`.
    fn delivered(&mut self, offset: u64, op: Op, key: Option<u32>, recv_ns: u64) {
        if self.last.is_some_and(|l| offset <= l) {
            self.out.out_of_order += 1;
        }
        self.last = Some(offset);
        let ledger = &self.ctx.ledger;
        if offset >= ledger.base() {
            self.out.received += 1;
            self.progress.received.fetch_add(1, Ordering::Relaxed);
        }
        self.settle_pending(false);
        let p = Pending {
            offset,
            recv_ns,
            op,
            key,
        };
        if !self.pending.is_empty() {
            self.pending.push_back(p);
            return;
        }
        match self.ctx.ledger.get(offset) {
            Some(e) => self.judge(&p, e),
            None if self.ctx.ledger.beyond(offset) => self.out.unexplained += 1,
            None => self.pending.push_back(p),
        }
    }

    /// Judges waiting deliveries whose acknowledgement has come (all of
    /// them at the end, when whatever is still unacknowledged never will be).
    fn settle_pending(&mut self, last: bool) {
        while let Some(p) = self.pending.front() {
            match self.ctx.ledger.get(p.offset) {
                Some(e) => {
                    let p = self.pending.pop_front().expect("front");
                    self.judge(&p, e);
                }
                None if last => {
                    self.pending.pop_front();
                    self.out.unexplained += 1;
                }
                None => break,
            }
        }
    }

    fn judge(&mut self, p: &Pending, e: Entry) {
        if p.key != Some(e.key) && p.op != Op::Reset {
            let got = p.key.map_or("a foreign key".into(), super::data::key_name);
            let want = super::data::key_name(e.key);
            self.wrong(format!(
                "offset {}: delivered {got}, the change wrote {want}",
                p.offset
            ));
        } else if let Some(g) = self.out.group {
            // With a snapshot only membership changes come; without one,
            // every change outside the filter is a delete.
            let fits = match p.op {
                Op::Upsert => e.new_group == g,
                Op::Delete if self.ctx.snapshot => e.old_group == g && e.new_group != g,
                Op::Delete => e.new_group != g,
                Op::Reset => false,
            };
            if !fits {
                self.wrong(format!(
                    "offset {}: {:?} for group {g}, the change moved {} from group {} to {}",
                    p.offset,
                    p.op,
                    super::data::key_name(e.key),
                    e.old_group,
                    e.new_group
                ));
            }
        } else if p.op != Op::Upsert {
            self.wrong(format!(
                "offset {}: {:?}, the change was an update",
                p.offset, p.op
            ));
        }
        if self.ctx.clock.measured(e.sent_ns) {
            self.latencies.push(p.recv_ns.saturating_sub(e.sent_ns));
            if self.latencies.len() >= FLUSH {
                self.flush();
            }
        }
    }

    fn wrong(&mut self, why: String) {
        self.out.wrong += 1;
        self.out.first_wrong.get_or_insert(why);
    }

    fn flush(&mut self) {
        let shards = &self.ctx.latency;
        let mut h = shards[self.index % shards.len()]
            .lock()
            .expect("latency lock");
        for ns in self.latencies.drain(..) {
            crate::stats::record_us(&mut h, ns);
        }
    }

    fn finish(&mut self) {
        self.settle_pending(true);
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(group: Option<u8>, ledger: Ledger) -> Sub {
        let clock = Clock::new();
        clock.measure_from.store(0, Ordering::Relaxed);
        let ctx = Ctx {
            stream: "s".into(),
            mode: StateModeArg::StateProtocol,
            snapshot: true,
            ledger: Arc::new(ledger),
            clock,
            latency: vec![Mutex::new(crate::stats::histogram())],
        };
        Sub {
            ctx: Arc::new(ctx),
            index: 0,
            progress: Arc::default(),
            out: Outcome {
                group,
                ..Outcome::default()
            },
            last: None,
            pending: VecDeque::new(),
            latencies: Vec::new(),
        }
    }

    fn entry(key: u32, old_group: u8, new_group: u8) -> Entry {
        Entry {
            sent_ns: 1_000,
            key,
            old_group,
            new_group,
        }
    }

    #[test]
    fn deliveries_are_judged_by_what_the_change_means_for_the_group() {
        let ledger = Ledger::new(10, 8);
        ledger.record(10, entry(1, 3, 3)); // stays in 3
        ledger.record(11, entry(2, 3, 4)); // leaves 3
        ledger.record(12, entry(5, 4, 3)); // enters 3
        ledger.record(13, entry(6, 3, 3)); // stays in 3
        let mut s = sub(Some(3), ledger);
        s.delivered(10, Op::Upsert, Some(1), 5_000);
        s.delivered(11, Op::Delete, Some(2), 5_000);
        s.delivered(12, Op::Upsert, Some(5), 5_000);
        assert_eq!((s.out.wrong, s.out.out_of_order), (0, 0));
        // A delete for a row that stayed, and the same offset again.
        s.delivered(13, Op::Delete, Some(6), 5_000);
        s.delivered(13, Op::Upsert, Some(6), 5_000);
        assert_eq!((s.out.wrong, s.out.out_of_order), (1, 1));
        assert!(s.out.first_wrong.as_deref().unwrap().contains("offset 13"));
        // The wrong key for an offset.
        let ledger = Ledger::new(0, 2);
        ledger.record(0, entry(1, 0, 0));
        let mut s = sub(Some(0), ledger);
        s.delivered(0, Op::Upsert, Some(2), 5_000);
        assert_eq!(s.out.wrong, 1);
    }

    #[test]
    fn a_delivery_ahead_of_its_ack_is_judged_once_the_ack_comes() {
        let ledger = Ledger::new(0, 4);
        let mut s = sub(None, ledger);
        s.delivered(0, Op::Upsert, Some(1), 5_000);
        assert_eq!(s.pending.len(), 1);
        s.ctx.ledger.record(0, entry(1, 0, 0));
        s.delivered(1, Op::Upsert, Some(2), 6_000);
        // Offset 0 settled (and timed: 4 µs); offset 1 still waits.
        assert_eq!(s.pending.len(), 1);
        assert_eq!(s.latencies, vec![4_000]);
        s.finish();
        assert_eq!((s.out.unexplained, s.out.wrong), (1, 0));
    }
}
