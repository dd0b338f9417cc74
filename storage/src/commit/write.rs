//! The one write-and-publish path. Every mutation the commit thread makes
//! (a group of appends, a create, a fork, a state change, a delete, a soft
//! delete, a trim) is planned as a [`Write`]: one `WriteBatch`, the
//! in-memory marks that must be visible *before* it is written, and the
//! effects that become visible *after* it is durable. [`Committer::write`]
//! is the only place that writes a batch, so a failed write always undoes
//! its marks and publishes nothing, and every committed change is
//! announced to the engine's commit hooks in commit order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rocksdb::WriteBatch;

use super::group::Staged;
use super::Committer;
use crate::error::{Error, Result};
use crate::hub;
use crate::meta::StreamMeta;
use crate::shared::Committed;
use crate::state::KvStatus;
use crate::stream::StreamState;

/// One planned write: the batch and what it changes in memory.
#[derive(Default)]
pub(crate) struct Write {
    pub wb: WriteBatch,
    pub marks: Vec<Mark>,
    pub effects: Vec<Effect>,
}

/// An in-memory change made before the batch is written, so that readers
/// never look for keys the batch removes; undone if the write fails.
pub(crate) enum Mark {
    /// The stream is being deleted: missing data below its tail is a
    /// delete, not corruption.
    Deleted(Arc<StreamState>),
    /// The stream's head moves from `old` to `new` (a trim).
    Head {
        stream: Arc<StreamState>,
        old: u64,
        new: u64,
    },
}

/// An in-memory change made once the batch is durable.
pub(crate) enum Effect {
    /// A group's staged appends: live state, followers, caches, touch.
    Publish(Staged),
    /// A new stream becomes visible by name (create, fork).
    Install(Box<Install>),
    /// A stream's state mode or profile changed.
    SetKv {
        stream: Arc<StreamState>,
        kv: KvStatus,
    },
    /// A stream with forks is deleted in name only; its data stays.
    SoftDeleted(Arc<StreamState>),
    /// A stream and its keys are gone.
    Deleted(Arc<StreamState>),
    /// A fork of this stream was deleted: one child fewer.
    Released(Arc<StreamState>),
    /// A trim dropped `[from, to)` of a stream's `wal` keys.
    Trimmed {
        stream: Arc<StreamState>,
        from: u64,
        to: u64,
    },
}

/// A stream created by a write.
pub(crate) struct Install {
    pub name: String,
    pub meta: StreamMeta,
    pub next_offset: u64,
    pub kv: KvStatus,
    pub fork: Option<Arc<crate::fork::ForkLink>>,
    /// A fork's source gains a child.
    pub source: Option<Arc<StreamState>>,
}

impl Write {
    /// A write of `wb` with no in-memory changes yet.
    pub fn new(wb: WriteBatch) -> Write {
        Write {
            wb,
            ..Write::default()
        }
    }
}

impl Committer {
    /// Writes `w` (one fsync in `sync` mode) and applies its effects in
    /// order, then announces what changed. On failure its marks are undone
    /// and nothing is published. Returns how long the write took.
    pub(crate) fn write(&mut self, w: Write) -> Result<Duration> {
        let Write { wb, marks, effects } = w;
        for m in &marks {
            m.apply();
        }
        let started = Instant::now();
        let written = if wb.is_empty() {
            Ok(())
        } else {
            #[cfg(test)]
            if self
                .shared
                .fail_writes
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return self.fail(&marks, Error::Storage("injected write failure".into()));
            }
            self.shared.db.write_opt(wb, &self.write_opts)
        };
        let took = started.elapsed();
        if let Err(e) = written {
            return self.fail(&marks, Error::from(e));
        }
        self.shared.health.succeeded();
        let mut committed = Vec::new();
        for e in effects {
            self.apply(e, &mut committed);
        }
        self.shared.announce(&committed);
        Ok(took)
    }

    fn fail(&self, marks: &[Mark], e: Error) -> Result<Duration> {
        // A full disk fails every write until space is freed: say so once
        // (the health does), not once per group.
        if self.shared.health.is_faulted() {
            tracing::debug!(error = %e, "commit write failed");
        } else {
            tracing::error!(error = %e, "commit write failed");
        }
        self.shared.health.failed(&e);
        for m in marks.iter().rev() {
            m.undo();
        }
        self.shared
            .stats
            .failed_groups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(e)
    }

    fn apply(&mut self, e: Effect, committed: &mut Vec<Committed>) {
        let shared = Arc::clone(&self.shared);
        match e {
            Effect::Publish(st) => {
                let mut live = st.stream.live.lock();
                if live.deleted {
                    return;
                }
                live.next_offset = st.next_offset;
                live.closed = st.closed;
                live.last_stream_seq = st.last_stream_seq;
                live.producers.extend(st.producers);
                live.kv = st.kv;
                // O(subscribers) pushes under the lock, nothing more.
                hub::publish(&mut live, &st.batches, st.closed);
                // Filtered state subscriptions: one conversion per filter.
                live.state_groups.publish(&st.batches, st.closed);
                drop(live);
                if !st.batches.is_empty() || st.meta_dirty {
                    committed.push(Committed {
                        stream: Arc::clone(&st.stream.name),
                        next_offset: st.next_offset,
                        closed: st.closed,
                    });
                }
                if !st.batches.is_empty() {
                    shared.touch.note_append(st.stream.id);
                }
                for b in &st.batches {
                    shared.file_cache.offer(st.stream.id, b);
                }
            }
            Effect::Install(i) => {
                let Install {
                    name,
                    meta,
                    next_offset,
                    kv,
                    fork,
                    source,
                } = *i;
                self.next_id = self.next_id.max(meta.id + 1);
                let s = Arc::new(StreamState::new(
                    &name,
                    meta,
                    next_offset,
                    crate::clock::now_ms(),
                ));
                let (building, generation) = (kv.building, kv.generation);
                {
                    let mut live = s.live.lock();
                    live.fork = fork;
                    live.kv = kv;
                }
                if let Some(src) = source {
                    src.live.lock().children += 1;
                }
                shared
                    .streams
                    .write()
                    .insert(Arc::clone(&s.name), Arc::clone(&s));
                committed.push(Committed {
                    stream: Arc::clone(&s.name),
                    next_offset,
                    closed: s.live.lock().closed,
                });
                if building {
                    crate::state::spawn_builder(shared, self.tx.clone(), s, generation);
                }
            }
            Effect::SetKv { stream, kv } => {
                let (building, generation) = (kv.building, kv.generation);
                stream.live.lock().kv = kv;
                shared.touch.note_changed();
                if building {
                    crate::state::spawn_builder(shared, self.tx.clone(), stream, generation);
                }
            }
            Effect::SoftDeleted(s) => {
                let mut live = s.live.lock();
                live.soft_deleted = true;
                hub::end_all_deleted(&mut live);
                drop(live);
                shared.touch.note_changed();
            }
            Effect::Deleted(s) => {
                shared.streams.write().remove(&*s.name);
                shared.file_cache.forget(s.id);
                let (lo, hi) = crate::keys::stream_range(s.id);
                for cf in crate::keys::PER_STREAM_CFS {
                    shared.reclaim.queue(cf, &lo, &hi);
                }
                hub::end_all_deleted(&mut s.live.lock());
                shared.touch.note_changed();
            }
            Effect::Released(p) => {
                let mut l = p.live.lock();
                l.children = l.children.saturating_sub(1);
            }
            Effect::Trimmed { stream, from, to } => {
                // Cached copies of the dropped batches are unreachable
                // (reads clamp to the head) but hold cache space.
                shared.file_cache.forget(stream.id);
                let (lo, hi) = (
                    crate::keys::wal_key(stream.id, from),
                    crate::keys::wal_key(stream.id, to),
                );
                shared.reclaim.queue(crate::keys::CF_WAL, &lo, &hi);
            }
        }
    }
}

impl Mark {
    fn apply(&self) {
        match self {
            Mark::Deleted(s) => s.live.lock().deleted = true,
            Mark::Head { stream, new, .. } => stream.live.lock().head = *new,
        }
    }

    fn undo(&self) {
        match self {
            Mark::Deleted(s) => s.live.lock().deleted = false,
            // The records are still there; readers may see them again.
            Mark::Head { stream, old, .. } => stream.live.lock().head = *old,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use futures::StreamExt;

    use crate::{AppendRequest, Engine, EngineConfig, FollowFrom, Record, StreamConfig};

    fn one(p: &'static str) -> AppendRequest {
        AppendRequest {
            records: vec![Record::new(bytes::Bytes::from_static(p.as_bytes()))],
            ..Default::default()
        }
    }

    /// A failed write fails every request of its group, publishes nothing
    /// and changes nothing; the next write works as if it never happened.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_fails_its_group_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        for s in ["a", "b"] {
            e.create_stream(s, StreamConfig::new("text/plain")).unwrap();
        }
        let mut follower = e.follow("a", FollowFrom::Offset(0)).unwrap();
        e.shared().fail_writes.store(true, Ordering::SeqCst);
        let results = futures::future::join_all(
            (0..8).map(|i| e.append_async(if i % 2 == 0 { "a" } else { "b" }, one("x"))),
        )
        .await;
        assert!(results.iter().all(|r| r.is_err()), "{results:?}");
        assert!(e
            .create_stream("c", StreamConfig::new("text/plain"))
            .is_err());
        assert!(e.delete_stream("b").is_err());
        assert_eq!(e.tail("a").unwrap().0, 0);
        assert_eq!(e.tail("b").unwrap().0, 0);
        assert!(e.head("c").is_err());
        let nothing = tokio::time::timeout(Duration::from_millis(200), follower.next()).await;
        assert!(nothing.is_err(), "a failed write published {nothing:?}");
        // At least one group, the create and the delete.
        assert!(e.stats().failed_groups >= 3);

        e.shared().fail_writes.store(false, Ordering::SeqCst);
        let r = e.append_async("a", one("y")).await.unwrap();
        assert_eq!((r.first_offset, r.next_offset), (0, 1));
        let b = follower.next().await.unwrap().unwrap();
        assert_eq!((b.first_offset(), b.len()), (0, 1));
        assert_eq!(b.get(0).unwrap().payload, b"y");
        e.delete_stream("b").unwrap();
        e.shutdown();
    }

    /// A failed write marks the engine faulted (readiness reads it), and
    /// the commit thread's probe clears the fault once the disk works again,
    /// with no client write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_probe_clears_a_write_fault_without_client_writes() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        e.create_stream("a", StreamConfig::new("text/plain"))
            .unwrap();
        assert_eq!(e.write_fault(), None);
        e.shared().fail_writes.store(true, Ordering::SeqCst);
        assert!(e.append_async("a", one("x")).await.is_err());
        let f = e.write_fault().expect("faulted after a failed write");
        assert!(f.message.contains("injected"), "{f:?}");
        assert!(!f.no_space);
        assert_eq!(e.stats().write_faulted, 1);
        // Probes keep failing while the disk does.
        std::thread::sleep(Duration::from_millis(2_500));
        assert!(e.write_fault().is_some());

        e.shared().fail_writes.store(false, Ordering::SeqCst);
        let started = std::time::Instant::now();
        while e.write_fault().is_some() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the probe never cleared the fault"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(e.stats().write_faulted, 0);
        assert_eq!(e.tail("a").unwrap().0, 0, "the probe writes no record");
        let r = e.append_async("a", one("y")).await.unwrap();
        assert_eq!(r.first_offset, 0);
        e.shutdown();
    }
}
