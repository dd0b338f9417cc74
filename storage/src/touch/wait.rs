//! `Engine::touch_wait`: Prisma's wait algorithm (touches.md §1.8). The
//! future is runtime-agnostic: the deadline lives in the journal's heap and
//! the touch thread resolves it, so dropping the future (a client abort)
//! removes the waiter and releases its hot interest without an answer.

use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::{self, Either, FutureExt};

use super::journal::{cursor_text, Since, Waiter, WaiterId};
use super::keys;
use super::metrics::counters::WaitOutcome as WaitResult;
use super::processor::TouchMode;
use super::request::{Interest, WaitRequest};
use super::stream::{TouchStream, WaitEnd};
use crate::clock::now_ms;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    /// A key of the wait was touched after its cursor.
    Touched,
    /// The timeout passed without a touch.
    Timeout,
    /// The cursor is from another epoch (or older than the retained history).
    Stale,
}

/// The answer to a wait, with every field of Prisma's response.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    /// Touched, timeout or stale.
    pub status: WaitStatus,
    /// The cursor to wait with next.
    pub cursor: String,
    /// The journal's epoch (16 hex characters).
    pub epoch: String,
    /// The journal's generation.
    pub generation: u32,
    /// `fineKey`, `templateKey` or `tableKey`.
    pub effective_wait_kind: &'static str,
    /// The largest source offset of the bucket that answered (`"-1"` before any flush).
    pub bucket_max_source_offset_seq: String,
    /// When that bucket was flushed.
    pub flush_at_ms: u64,
    /// When that bucket opened.
    pub bucket_start_ms: u64,
}

/// The most keys a fine wait may register as hot; bigger waits are broad.
const HOT_MAX_KEYS_PER_WAIT: usize = super::defaults::HOT_INTEREST_MAX_KEYS_PER_WAIT;

impl Engine {
    /// Waits until one of the request's keys is touched after its cursor,
    /// the timeout passes, or the cursor turns out stale.
    ///
    /// The wait is registered when this is called, and the future holds
    /// only what the answer needs, not the request: with 10,000 waiters
    /// that is about 0.1 KiB of future each instead of 0.9.
    pub fn touch_wait(
        &self,
        name: &str,
        req: WaitRequest,
    ) -> impl std::future::Future<Output = Result<WaitOutcome>> + Send + 'static {
        let started = now_ms();
        match self.begin_wait(name, req, started) {
            Err(e) => Either::Left(future::ready(Err(e))),
            Ok(Begun::Done(outcome, done)) => {
                Either::Left(future::ready(Ok(done.finish(outcome, started))))
            }
            Ok(Begun::Parked(p)) => Either::Right(p.wait(started).map(Ok)),
        }
    }

    /// Steps 1–10 of the algorithm: the heartbeats and declarations, the
    /// effective kind and keys, the hot interest, and the journal (an
    /// answer now, or a registered waiter).
    fn begin_wait(&self, name: &str, req: WaitRequest, started: u64) -> Result<Begun> {
        let ts = self.touch_stream(name)?;
        let fine = req.interest == Interest::Fine;
        if fine && !req.template_ids_used.is_empty() {
            let ids: Vec<&str> = req.template_ids_used.iter().map(String::as_str).collect();
            self.heartbeat(&ts, &ids, started)?;
        }
        if let Some(decls) = req.declare_templates.as_ref().and_then(|v| v.as_array()) {
            if !decls.is_empty() {
                let ttl = req
                    .inactivity_ttl_ms
                    .unwrap_or(ts.config.templates.default_inactivity_ttl_ms as u64);
                self.activate_on(&ts, decls, ttl, started)?;
            }
        }
        let raw: Vec<u32> = if !req.key_ids.is_empty() {
            req.key_ids.clone()
        } else {
            req.keys.iter().map(|k| keys::key_id_of_str(k)).collect()
        };
        let template_ids: Vec<u64> = req
            .template_ids_used
            .iter()
            .filter_map(|s| keys::parse_hex16(s.trim()))
            .collect();
        let mode = {
            let p = ts.progress.lock();
            p.state.mode.unwrap_or(if p.state.suppressed {
                TouchMode::CoarseOnly
            } else {
                TouchMode::Fine
            })
        };
        let kind = if !fine {
            Kind::Table
        } else if mode == TouchMode::Restricted && !template_ids.is_empty() {
            Kind::Template
        } else if mode == TouchMode::CoarseOnly && !template_ids.is_empty() {
            Kind::Table
        } else {
            Kind::Fine
        };
        let template_key_ids: Vec<u32> = template_ids
            .iter()
            .map(|&t| keys::key_id(keys::template_key(t)))
            .collect();
        let (mut kind, mut ids) = match kind {
            Kind::Template => (kind, template_key_ids.clone()),
            Kind::Table if !template_ids.is_empty() => {
                let reg = ts.templates.lock();
                let mut v: Vec<u32> = template_ids
                    .iter()
                    .filter_map(|&t| reg.active_entity_of(t))
                    .map(|e| keys::key_id(keys::table_key(e)))
                    .collect();
                v.sort_unstable();
                v.dedup();
                (kind, v)
            }
            Kind::Table => (kind, raw.clone()),
            Kind::Fine => {
                let mut v = raw.clone();
                if !req.exact {
                    v.extend(&template_key_ids);
                }
                (kind, v)
            }
        };
        if ids.is_empty() {
            kind = Kind::Fine;
            ids = raw.clone();
        }
        let exact_keys = if req.exact {
            if !fine {
                return Err(Error::Invalid(
                    "wait.exact requires fine interest while runtime is in fine-key mode".into(),
                ));
            }
            if kind != Kind::Fine {
                return Err(Error::Invalid(
                    "wait.exact requires fine interest while runtime is in fine-key mode".into(),
                ));
            }
            super::request::exact_keys(&req).map_err(Error::Invalid)?
        } else {
            Vec::new()
        };
        let hot_token = {
            let mut hot = ts.hot.lock();
            if fine {
                let hot_keys: &[u32] = if raw.len() <= HOT_MAX_KEYS_PER_WAIT {
                    &raw
                } else {
                    &[]
                };
                hot.register_fine(hot_keys, raw.len() > HOT_MAX_KEYS_PER_WAIT, &template_ids)
            } else {
                hot.register_coarse()
            }
        };
        let done = Finish {
            hot: HotGuard {
                ts: Arc::clone(&ts),
                token: Some(hot_token),
            },
            kind,
            key_count: ids.len() as u64,
        };
        Ok(
            match self.wait_journal(&ts, &req, kind, &ids, &exact_keys, &template_key_ids) {
                Immediate::Done(o) => Begun::Done(o, done),
                Immediate::Wait(rx, waiter) => Begun::Parked(Parked { rx, waiter, done }),
            },
        )
    }

    /// Steps 7–10 of the algorithm under the journal lock: resolve the
    /// cursor, check since-then, or register the waiter.
    fn wait_journal(
        &self,
        ts: &Arc<TouchStream>,
        req: &WaitRequest,
        kind: Kind,
        ids: &[u32],
        exact_keys: &[u64],
        fallback: &[u32],
    ) -> Immediate {
        let mut cell = ts.journal.lock();
        let since = match cell.journal.resolve(req.cursor) {
            Since::Gen(g) => g,
            Since::Stale => {
                return Immediate::Done(outcome_now(&cell.journal, WaitStatus::Stale, kind))
            }
        };
        let touched = if exact_keys.is_empty() {
            cell.journal.maybe_touched_since_any(ids, since)
        } else {
            match cell.journal.exact_touched_since_any(exact_keys, since) {
                Some(true) => true,
                _ if cell.journal.maybe_touched_since_any(fallback, since) => true,
                None => cell.journal.maybe_touched_since_any(ids, since),
                Some(false) => false,
            }
        };
        if touched {
            return Immediate::Done(outcome_now(&cell.journal, WaitStatus::Touched, kind));
        }
        if req.timeout_ms == 0 {
            return Immediate::Done(outcome_now(&cell.journal, WaitStatus::Timeout, kind));
        }
        let (tx, rx) = oneshot::channel();
        let deadline = now_ms() + req.timeout_ms;
        let current = cell.journal.generation();
        let id = cell.journal.add_waiter(Waiter {
            key_ids: ids.into(),
            exact_keys: exact_keys.into(),
            fallback_ids: if exact_keys.is_empty() {
                Box::default()
            } else {
                fallback.into()
            },
            after_generation: current,
            deadline_ms: deadline,
        });
        cell.senders.insert(id, tx);
        drop(cell);
        self.shared().touch.nudge_for_deadline(deadline);
        Immediate::Wait(
            rx,
            WaiterGuard {
                ts: Arc::clone(ts),
                id,
            },
        )
    }

    /// The runtime of a touch-enabled stream, or the error Prisma answers.
    ///
    /// The touch thread opens runtimes after a profile change or a restart;
    /// a request arriving before it has run must not see "not enabled" for
    /// a stream whose stored profile enables touch, so it syncs the hub
    /// itself (once, under the hub's sync lock) and looks again.
    pub(crate) fn touch_stream(&self, name: &str) -> Result<Arc<TouchStream>> {
        let s = self.lookup(name)?;
        let hub = &self.shared().touch;
        let current = |hub: &super::Hub| {
            hub.get(s.id)
                .filter(|t| Arc::ptr_eq(&t.stream, &s) && !t.is_retired())
        };
        if let Some(ts) = current(hub) {
            return Ok(ts);
        }
        let enabled = {
            let l = s.live.lock();
            !(l.deleted || l.soft_deleted)
                && super::enabled_config(l.kv.profile.as_deref()).is_some()
        };
        if !enabled {
            return Err(Error::TouchNotEnabled);
        }
        hub.sync(self.shared(), now_ms());
        current(hub).ok_or(Error::TouchNotEnabled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fine,
    Template,
    Table,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Fine => "fineKey",
            Kind::Template => "templateKey",
            Kind::Table => "tableKey",
        }
    }
}

enum Immediate {
    Done(WaitOutcome),
    Wait(oneshot::Receiver<WaitEnd>, WaiterGuard),
}

/// What `begin_wait` leaves: an answer now, or a parked waiter.
enum Begun {
    Done(WaitOutcome, Finish),
    Parked(Parked),
}

/// A registered waiter: its answer channel, its journal entry (removed when
/// dropped) and what the answer is counted with.
struct Parked {
    rx: oneshot::Receiver<WaitEnd>,
    waiter: WaiterGuard,
    done: Finish,
}

impl Parked {
    /// Waits for the touch thread's answer and counts it.
    async fn wait(self, started: u64) -> WaitOutcome {
        let Parked { rx, waiter, done } = self;
        let end = rx.await;
        drop(waiter);
        let outcome = match end {
            // The cursor is the waking bucket's generation: a later one
            // could skip touches the client has not been told of.
            Ok(WaitEnd::Touched { wake, epoch }) => WaitOutcome {
                status: WaitStatus::Touched,
                cursor: cursor_text(epoch, wake.generation),
                epoch: keys::hex16(epoch),
                generation: wake.generation,
                effective_wait_kind: done.kind.as_str(),
                bucket_max_source_offset_seq: wake.bucket_max_source_offset.to_string(),
                flush_at_ms: wake.flush_at_ms,
                bucket_start_ms: wake.bucket_start_ms,
            },
            // A dropped sender means the stream's touch runtime was
            // replaced (settings changed) or the engine stopped:
            // answer timeout, which tells the client to wait again.
            Ok(WaitEnd::Timeout) | Err(_) => {
                let cell = done.hot.ts.journal.lock();
                outcome_now(&cell.journal, WaitStatus::Timeout, done.kind)
            }
        };
        done.finish(outcome, started)
    }
}

/// What a wait's end needs: its hot interest (released when this drops;
/// its stream is the wait's), its effective kind and key count (for the
/// counters).
struct Finish {
    hot: HotGuard,
    kind: Kind,
    key_count: u64,
}

impl Finish {
    /// Counts the outcome (and releases the hot interest) and returns it.
    fn finish(self, outcome: WaitOutcome, started: u64) -> WaitOutcome {
        let latency = now_ms().saturating_sub(started);
        let result = match outcome.status {
            WaitStatus::Touched => WaitResult::Touched,
            WaitStatus::Timeout => WaitResult::Timeout,
            WaitStatus::Stale => WaitResult::Stale,
        };
        let ts = &self.hot.ts;
        ts.counters
            .lock()
            .record_wait(self.key_count, result, latency);
        let mut t = ts.totals.lock();
        match outcome.status {
            WaitStatus::Touched => t.wait_touched += 1,
            WaitStatus::Timeout => t.wait_timeout += 1,
            WaitStatus::Stale => t.wait_stale += 1,
        }
        outcome
    }
}

/// An answer that describes the journal's last flush.
fn outcome_now(j: &super::journal::Journal, status: WaitStatus, kind: Kind) -> WaitOutcome {
    let last = j.last_flush();
    WaitOutcome {
        status,
        cursor: j.cursor(),
        epoch: keys::hex16(j.epoch()),
        generation: j.generation(),
        effective_wait_kind: kind.as_str(),
        bucket_max_source_offset_seq: last
            .max_source_offset
            .map_or_else(|| "-1".to_string(), |o| o.to_string()),
        flush_at_ms: last.flush_at_ms,
        bucket_start_ms: last.bucket_start_ms,
    }
}

/// Removes a waiter whose future was dropped before it was answered.
struct WaiterGuard {
    ts: Arc<TouchStream>,
    id: WaiterId,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        let mut cell = self.ts.journal.lock();
        cell.journal.remove_waiter(self.id);
        cell.senders.remove(&self.id);
    }
}

/// Releases a wait's hot interest when it ends, answered or not.
struct HotGuard {
    ts: Arc<TouchStream>,
    token: Option<super::hot::HotToken>,
}

impl Drop for HotGuard {
    fn drop(&mut self) {
        if let Some(t) = self.token.take() {
            self.ts.hot.lock().release(t, now_ms());
        }
    }
}
