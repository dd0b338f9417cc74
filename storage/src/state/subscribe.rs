//! Snapshot-then-changes: the state at fence F, read page by page from a
//! RocksDB snapshot, then every record at offset ≥ F through an ordinary
//! [`Follower`] starting at F. Nothing of the live stream is buffered while
//! the snapshot is sent, however long that takes: the follower starts only
//! when the snapshot is done and catches up from storage, exactly like any
//! follower that starts behind the tail. A slow subscriber is therefore
//! never reset and never loses a change.
//!
//! A filtered subscription turns records into membership changes: a row
//! that starts or keeps matching is an upsert, one that stops matching or is
//! deleted is a delete, a row that never matched sends nothing. To know
//! whether a change leaves the set, the subscription remembers the rows it
//! has sent, as 128-bit digests of their keys (16 bytes and a slot of a hash
//! set per matching row, up to [`MAX_TRACKED_MEMBERS`]; two keys with one
//! digest, odds below 2^-88 at the cap, would cost only an extra delete of a
//! row the reader does not hold). The changes a batch carries are derived
//! once for all subscriptions that receive it (`changes.rs`); each
//! subscription only evaluates its filter. A subscription that starts from an offset
//! instead of a snapshot, or outgrows the cap, cannot know what its reader
//! holds, and sends a delete for every non-matching change: a superset that
//! a reader applying deletes of absent rows as no-ops gets right.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::changes::{member_id, Changes, FilterKey, Kind, MemberId};
use super::filter::Filter;
use super::kv::{StateKey, StateRow};
use super::view::StateSnapshot;
use super::StateMode;
use crate::batch::Batch;
use crate::error::Result;
use crate::follow::Follower;
use crate::shared::Shared;

/// Most row keys a filtered subscription remembers (see the module docs).
pub const MAX_TRACKED_MEMBERS: usize = 1 << 20;

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
    /// Filtered changes (never empty).
    Changes(Vec<StateChange>),
}

enum Phase {
    Snapshot(Box<StateSnapshot>, Option<Follower>),
    Follow(Follower),
    Done,
}

/// An async stream of [`StateEvent`]s (see [`crate::Engine::subscribe_state`]).
pub struct StateSubscription {
    /// Where the open-subscriptions gauge lives (`None`: a stateless reader).
    shared: Option<Arc<Shared>>,
    phase: Phase,
    filter: Option<(Filter, FilterKey)>,
    mode: StateMode,
    chunk_bytes: usize,
    /// The rows the reader holds; `None` when unknown.
    members: Option<Members>,
}

/// Member ids are digests already: hashing them again would only cost time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 ids are hashed; this keeps the trait total anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = id as u64;
    }
}

type Members = HashSet<MemberId, BuildHasherDefault<IdHasher>>;

impl StateSubscription {
    pub(crate) fn with_snapshot(
        snapshot: StateSnapshot,
        follower: Follower,
        req: &SubscribeState,
    ) -> Self {
        let shared = Some(Arc::clone(follower.shared()));
        opened(&shared);
        StateSubscription {
            shared,
            mode: snapshot.mode(),
            phase: Phase::Snapshot(Box::new(snapshot), Some(follower)),
            filter: keyed(&req.filter),
            chunk_bytes: chunk(req.chunk_bytes),
            members: Some(Members::default()),
        }
    }

    pub(crate) fn from_offset(follower: Follower, mode: StateMode, req: &SubscribeState) -> Self {
        let shared = Some(Arc::clone(follower.shared()));
        opened(&shared);
        StateSubscription {
            shared,
            phase: Phase::Follow(follower),
            filter: keyed(&req.filter),
            mode,
            chunk_bytes: chunk(req.chunk_bytes),
            members: None,
        }
    }

    /// The offset of the next change this subscription will deliver (after
    /// the snapshot: its fence), to resume from after a reconnect.
    pub fn next_offset(&self) -> Option<u64> {
        match &self.phase {
            Phase::Snapshot(s, _) => Some(s.fence()),
            Phase::Follow(f) => Some(f.next_offset()),
            Phase::Done => None,
        }
    }

    fn remember(&mut self, id: MemberId) {
        if let Some(m) = &mut self.members {
            if m.len() >= MAX_TRACKED_MEMBERS {
                self.members = None; // degrade to the documented superset
            } else {
                m.insert(id);
            }
        }
    }

    /// Whether a change that does not match must be sent as a delete.
    fn forget(&mut self, id: MemberId) -> bool {
        match &mut self.members {
            Some(m) => m.remove(&id),
            None => true,
        }
    }

    fn convert(&mut self, filter: &(Filter, FilterKey), batch: &Batch) -> Vec<StateChange> {
        let changes = Changes::of(batch, self.mode);
        let range = changes.range(batch);
        if range.is_empty() {
            return Vec::new();
        }
        let matched = changes.matched(&filter.1, &filter.0);
        let mut out = Vec::new();
        for i in range {
            let e = &changes.entries()[i];
            let offset = e.offset;
            match &e.kind {
                Kind::Reset => {
                    if let Some(m) = &mut self.members {
                        m.clear();
                    }
                    out.push(StateChange::Reset { offset });
                }
                Kind::Put(row) => {
                    if matched[i] {
                        self.remember(row.id);
                        out.push(StateChange::Upsert(StateRow {
                            key: row.key.clone(),
                            value: row.value.clone(),
                            offset,
                        }));
                    } else if self.forget(row.id) {
                        out.push(StateChange::Delete {
                            key: row.key.clone(),
                            offset,
                        });
                    }
                }
                Kind::Delete { id, key } => {
                    if self.forget(*id) {
                        out.push(StateChange::Delete {
                            key: key.clone(),
                            offset,
                        });
                    }
                }
            }
        }
        out
    }
}

/// A subscription's filter with the key that shares its evaluations.
fn keyed(filter: &Option<Filter>) -> Option<(Filter, FilterKey)> {
    filter.as_ref().map(|f| (f.clone(), FilterKey::of(f)))
}

fn opened(shared: &Option<Arc<Shared>>) {
    if let Some(s) = shared {
        s.stats.state_subscriptions.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for StateSubscription {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.stats.state_subscriptions.fetch_sub(1, Ordering::Relaxed);
        }
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
                            this.remember(member_id(&r.key.encode()));
                        }
                    }
                    return Poll::Ready(Some(Ok(StateEvent::Snapshot(rows))));
                }
                Phase::Follow(f) => {
                    let batch = match Pin::new(f).poll_next(cx) {
                        Poll::Pending => return Poll::Pending,
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
                    let changes = this.convert(&filter, &batch);
                    this.filter = Some(filter);
                    if !changes.is_empty() {
                        return Poll::Ready(Some(Ok(StateEvent::Changes(changes))));
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
    let mut sub = StateSubscription {
        shared: None,
        phase: Phase::Done,
        filter: None,
        mode,
        chunk_bytes: 0,
        members: None,
    };
    sub.convert(&(filter.clone(), FilterKey::of(filter)), batch)
}

/// Subscriptions move between executor threads.
#[allow(dead_code)]
fn assert_send(s: StateSubscription) -> impl Send {
    s
}
