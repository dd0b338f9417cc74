//! Snapshot-then-changes: the state at fence F, read page by page from a
//! RocksDB snapshot, then every record at offset ≥ F through an ordinary
//! [`Follower`] starting at F. Nothing of the live stream is buffered while
//! the snapshot is sent, however long that takes: the follower starts only
//! when the snapshot is done and catches up from storage, exactly like any
//! follower that starts behind the tail. A slow subscriber is therefore
//! never reset and never loses a change.
//!
//! A filtered subscription turns records into membership changes
//! (`members.rs`). While it reads storage it converts each batch itself,
//! from the changes derived once per batch for everyone (`changes.rs`); once
//! it reaches the tail it joins the stream's group for its filter
//! (`fanout.rs`), which the commit thread converts once per batch for all
//! its members, and it leaves the group again if it falls behind.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::changes::{member_id, FilterKey};
use super::fanout::{GroupKey, Slot};
use super::filter::Filter;
use super::kv::{StateKey, StateRow};
use super::list::ChangeList;
use super::members::Members;
use super::view::StateSnapshot;
use super::StateMode;
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::follow::{FollowFrom, Follower};
use crate::hub::End;
use crate::shared::Shared;
use crate::stream::StreamState;

/// Record and key bytes of one snapshot event.
const SNAPSHOT_CHUNK_BYTES: usize = 256 << 10;

/// What a state subscription asks for.
#[derive(Debug, Clone, Default)]
pub struct SubscribeState {
    /// Only rows matching this filter (changes become membership changes).
    pub filter: Option<Filter>,
    /// Start with a snapshot of the current state, then changes from its fence.
    pub snapshot: bool,
    /// Without a snapshot: changes from this offset (the tail when `None`).
    pub from: Option<u64>,
    /// Bytes of rows per snapshot event (a default when 0).
    pub chunk_bytes: usize,
}

/// One membership change of a filtered subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// The row matches (now or still) with this value.
    Upsert(StateRow),
    /// The row left the set, or was deleted.
    Delete {
        /// The row's identity.
        key: StateKey,
        /// Offset of the record that removed it.
        offset: u64,
    },
    /// A State Protocol `reset`: the whole state was cleared at this offset.
    Reset {
        /// Offset of the reset record.
        offset: u64,
    },
}

impl StateChange {
    /// The offset of the record this change comes from.
    pub fn offset(&self) -> u64 {
        match self {
            StateChange::Upsert(r) => r.offset,
            StateChange::Delete { offset, .. } | StateChange::Reset { offset } => *offset,
        }
    }
}

/// What a state subscription yields, in this order: snapshot pages (if a
/// snapshot was asked for), one `SnapshotDone`, then changes.
#[derive(Debug, Clone)]
pub enum StateEvent {
    /// Rows of the snapshot, in key order.
    Snapshot(Vec<StateRow>),
    /// The snapshot is complete: it was the state below `fence`, and changes
    /// follow from `fence`.
    SnapshotDone {
        /// The snapshot's fence.
        fence: u64,
        /// Rows the snapshot held.
        rows: u64,
    },
    /// Unfiltered changes: the stored records, as followers get them.
    Records(Batch),
    /// Filtered changes (never empty), shared with the other subscriptions
    /// of the same filter that receive them.
    Changes(ChangeList),
}

enum Phase {
    Snapshot(Box<StateSnapshot>, Option<Follower>),
    Follow(Follower),
    Grouped(Grouped),
    Done,
}

/// A subscription whose filter's group converts for it (`fanout.rs`).
struct Grouped {
    slot: Arc<Slot>,
    key: GroupKey,
    stream: Arc<StreamState>,
    /// The offset after the last delivery taken from the inbox.
    next: u64,
}

/// An async stream of [`StateEvent`]s (see [`crate::Engine::subscribe_state`]).
pub struct StateSubscription {
    /// Where the open-subscriptions gauge lives.
    shared: Arc<Shared>,
    phase: Phase,
    filter: Option<(Filter, FilterKey)>,
    mode: StateMode,
    chunk_bytes: usize,
    /// The rows the reader holds (handed to its group while it is in one).
    members: Members,
}

impl StateSubscription {
    pub(crate) fn with_snapshot(
        snapshot: StateSnapshot,
        follower: Follower,
        req: &SubscribeState,
    ) -> Self {
        let shared = opened(follower.shared());
        StateSubscription {
            shared,
            mode: snapshot.mode(),
            phase: Phase::Snapshot(Box::new(snapshot), Some(follower)),
            filter: keyed(&req.filter),
            chunk_bytes: chunk(req.chunk_bytes),
            members: Members::exact(),
        }
    }

    pub(crate) fn from_offset(follower: Follower, mode: StateMode, req: &SubscribeState) -> Self {
        let shared = opened(follower.shared());
        StateSubscription {
            shared,
            phase: Phase::Follow(follower),
            filter: keyed(&req.filter),
            mode,
            chunk_bytes: chunk(req.chunk_bytes),
            members: Members::unknown(),
        }
    }

    /// The offset of the next change this subscription will deliver (after
    /// the snapshot: its fence), to resume from after a reconnect.
    pub fn next_offset(&self) -> Option<u64> {
        match &self.phase {
            Phase::Snapshot(s, _) => Some(s.fence()),
            Phase::Follow(f) => Some(f.next_offset()),
            Phase::Grouped(g) => {
                // Read before the inbox: a publish stores it after pushing.
                let through = g.slot.through();
                Some(if g.slot.inbox.queue.is_empty() {
                    through.max(g.next)
                } else {
                    g.next
                })
            }
            Phase::Done => None,
        }
    }

    /// Moves a caught-up filtered subscription into its filter's group; the
    /// follower it no longer needs is returned to be dropped (outside the
    /// stream's lock, which dropping it takes).
    fn join_group(&mut self) -> Option<Follower> {
        let (filter, key) = self.filter.as_ref()?;
        let Phase::Follow(f) = &self.phase else {
            return None;
        };
        let group = GroupKey {
            filter: key.clone(),
            mode: self.mode,
            exact: self.members.is_exact(),
        };
        let capacity = f.shared().config.follower_queue;
        let members = &mut self.members;
        let slot = f.at_tail(|live| {
            let held = std::mem::take(members);
            let at = live.next_offset;
            (
                live.state_groups
                    .join(group.clone(), filter, held, at, capacity),
                at,
            )
        })?;
        let (slot, next) = slot;
        let stream = Arc::clone(f.stream());
        let Phase::Follow(f) = std::mem::replace(
            &mut self.phase,
            Phase::Grouped(Grouped {
                slot,
                key: group,
                stream,
                next,
            }),
        ) else {
            unreachable!("checked above");
        };
        Some(f)
    }

    /// One step of a grouped subscription; `None` means "look again".
    fn poll_grouped(&mut self, cx: &mut Context<'_>) -> Option<Poll<Option<Result<StateEvent>>>> {
        let Phase::Grouped(g) = &mut self.phase else {
            return None;
        };
        if let Some(d) = g.slot.inbox.queue.pop() {
            g.next = d.through;
            return Some(Poll::Ready(Some(Ok(StateEvent::Changes(
                d.changes.clone(),
            )))));
        }
        if g.slot.inbox.lagged.load(Ordering::Acquire) {
            // The group let it go: on alone from storage, with its rows.
            let h = g
                .slot
                .take_handoff()
                .expect("a handoff comes with the flag");
            let shared = Arc::clone(&self.shared);
            let stream = Arc::clone(&g.stream);
            self.members = h.members;
            return Some(
                match Follower::new(shared, stream, FollowFrom::Offset(h.from)) {
                    Ok(f) => {
                        self.phase = Phase::Follow(f);
                        return None;
                    }
                    Err(e) => {
                        self.phase = Phase::Done;
                        Poll::Ready(Some(Err(e)))
                    }
                },
            );
        }
        let end = g.slot.inbox.end();
        if end == End::Open {
            g.slot.inbox.waker.register(cx.waker());
            let inbox = &g.slot.inbox;
            if inbox.queue.is_empty()
                && !inbox.lagged.load(Ordering::Acquire)
                && inbox.end() == End::Open
            {
                return Some(Poll::Pending);
            }
            return None;
        }
        self.leave_group();
        self.phase = Phase::Done;
        Some(Poll::Ready(match end {
            End::Deleted => Some(Err(Error::NotFound)),
            End::ShutDown => Some(Err(Error::ShutDown)),
            _ => None,
        }))
    }

    fn leave_group(&mut self) {
        if let Phase::Grouped(g) = &self.phase {
            g.stream.live.lock().state_groups.leave(&g.key, &g.slot);
        }
    }
}

/// A subscription's filter with the key that shares its evaluations.
fn keyed(filter: &Option<Filter>) -> Option<(Filter, FilterKey)> {
    filter.as_ref().map(|f| (f.clone(), FilterKey::of(f)))
}

fn opened(shared: &Arc<Shared>) -> Arc<Shared> {
    shared
        .stats
        .state_subscriptions
        .fetch_add(1, Ordering::Relaxed);
    Arc::clone(shared)
}

impl Drop for StateSubscription {
    fn drop(&mut self) {
        self.leave_group();
        self.shared
            .stats
            .state_subscriptions
            .fetch_sub(1, Ordering::Relaxed);
    }
}

fn chunk(n: usize) -> usize {
    if n == 0 {
        SNAPSHOT_CHUNK_BYTES
    } else {
        n
    }
}

impl Stream for StateSubscription {
    type Item = Result<StateEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Snapshot(snap, follower) => {
                    let rows = match snap.next_rows(this.chunk_bytes) {
                        Ok(r) => r,
                        Err(e) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Err(e)));
                        }
                    };
                    if rows.is_empty() {
                        let done = StateEvent::SnapshotDone {
                            fence: snap.fence(),
                            rows: snap.rows_sent(),
                        };
                        let f = follower.take().expect("follower until the snapshot ends");
                        this.phase = Phase::Follow(f);
                        return Poll::Ready(Some(Ok(done)));
                    }
                    if this.filter.is_some() {
                        for r in &rows {
                            this.members.remember(member_id(&r.key.encode()));
                        }
                    }
                    return Poll::Ready(Some(Ok(StateEvent::Snapshot(rows))));
                }
                Phase::Grouped(_) => match this.poll_grouped(cx) {
                    Some(p) => return p,
                    None => continue,
                },
                Phase::Follow(f) => {
                    let batch = match Pin::new(f).poll_next(cx) {
                        Poll::Pending => {
                            if this.join_group().is_some() {
                                continue; // the old follower is dropped here
                            }
                            return Poll::Pending;
                        }
                        Poll::Ready(None) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(None);
                        }
                        Poll::Ready(Some(Err(e))) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Err(e)));
                        }
                        Poll::Ready(Some(Ok(b))) => b,
                    };
                    // Taken out for the call rather than cloned per batch.
                    let Some(filter) = this.filter.take() else {
                        return Poll::Ready(Some(Ok(StateEvent::Records(batch))));
                    };
                    let changes = this
                        .members
                        .convert(&batch, this.mode, &filter.0, &filter.1);
                    this.filter = Some(filter);
                    if !changes.is_empty() {
                        return Poll::Ready(Some(Ok(StateEvent::Changes(ChangeList::new(
                            changes,
                        )))));
                    }
                }
            }
        }
    }
}

/// The membership changes a stateless reader (an HTTP read with a filter)
/// gets for `batch`: upserts of matching rows, and a delete for every other
/// change (it cannot know which rows its client holds).
pub fn changes_of(mode: StateMode, filter: &Filter, batch: &Batch) -> Vec<StateChange> {
    Members::unknown().convert(batch, mode, filter, &FilterKey::of(filter))
}

/// Subscriptions move between executor threads.
#[allow(dead_code)]
fn assert_send(s: StateSubscription) -> impl Send {
    s
}
