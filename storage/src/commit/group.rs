//! The group being assembled: appends and state-build chunks staged
//! against each stream's state as earlier requests of the same group left
//! it, then written and published as one [`Write`] by [`Committer::flush`].

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::WriteBatch;

use super::write::{Effect, Write};
use super::{AppendRequest, AppendResult, Committer, Reply};
use crate::batch::{self, Batch};
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::keys::{producer_key, wal_key, CF_PRODUCERS, CF_STREAMS, CF_WAL};
use crate::meta::media_type;
use crate::producer::{self, ProducerCheck, ProducerState};
use crate::state::{self, ChunkOutcome, KvStatus, StateMode};
use crate::stream::StreamState;

/// Per-stream state as staged by the appends of the current group.
pub(crate) struct Staged {
    pub stream: Arc<StreamState>,
    pub next_offset: u64,
    pub closed: bool,
    pub last_stream_seq: Option<Vec<u8>>,
    pub producers: HashMap<String, ProducerState>,
    pub batches: Vec<Batch>,
    pub meta_dirty: bool,
    pub deleted: bool,
    pub kv: KvStatus,
}

/// The group being assembled.
#[derive(Default)]
pub(crate) struct Group {
    pub wb: WriteBatch,
    staged: HashMap<u64, Staged>,
    order: Vec<u64>,
    replies: Vec<(Reply<AppendResult>, Result<AppendResult>)>,
    chunk_replies: Vec<(Reply<ChunkOutcome>, ChunkOutcome)>,
    pub bytes: usize,
}

impl Group {
    /// Stages an append and keeps its answer for when the group is written.
    pub fn append(
        &mut self,
        c: &Committer,
        stream: &Arc<StreamState>,
        req: AppendRequest,
        ops: Option<state::ops::Ops>,
        reply: Reply<AppendResult>,
    ) {
        self.bytes += batch::encoded_len(&req.records);
        let res = c.stage_append(self, stream, req, ops);
        self.replies.push((reply, res));
    }

    /// Stages one chunk of a background state build.
    pub fn chunk(
        &mut self,
        c: &Committer,
        stream: &Arc<StreamState>,
        chunk: &state::Chunk,
        reply: Reply<ChunkOutcome>,
    ) {
        let st = Committer::staged(&mut self.staged, &mut self.order, stream);
        let outcome = if st.deleted {
            ChunkOutcome::Stale
        } else {
            let tail = st.next_offset;
            state::stage_chunk(&c.shared, &mut self.wb, &mut st.kv, stream.id, chunk, tail)
        };
        self.chunk_replies.push((reply, outcome));
    }
}

impl Committer {
    /// The stream's staged state in this group, staged from its live state
    /// on first use. Takes the group's fields apart so the caller can keep
    /// writing to the batch meanwhile.
    fn staged<'g>(
        staged: &'g mut HashMap<u64, Staged>,
        order: &mut Vec<u64>,
        stream: &Arc<StreamState>,
    ) -> &'g mut Staged {
        match staged.entry(stream.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let live = stream.live.lock();
                order.push(stream.id);
                e.insert(Staged {
                    stream: stream.clone(),
                    next_offset: live.next_offset,
                    closed: live.closed,
                    last_stream_seq: live.last_stream_seq.clone(),
                    producers: HashMap::new(),
                    batches: Vec::new(),
                    meta_dirty: false,
                    deleted: live.deleted,
                    kv: live.kv.clone(),
                })
            }
        }
    }

    fn stage_append(
        &self,
        g: &mut Group,
        stream: &Arc<StreamState>,
        req: AppendRequest,
        ops: Option<state::ops::Ops>,
    ) -> Result<AppendResult> {
        let st = Self::staged(&mut g.staged, &mut g.order, stream);
        if st.deleted {
            return Err(Error::NotFound);
        }
        if let Some(tag) = &req.producer {
            let known = match st.producers.get(&tag.id) {
                Some(s) => Some(*s),
                None => stream.live.lock().producers.get(&tag.id).copied(),
            };
            if let ProducerCheck::Duplicate(s) = producer::check(known.as_ref(), tag)? {
                return Ok(AppendResult {
                    first_offset: s.last_first_offset,
                    next_offset: s.last_next_offset,
                    duplicate: true,
                    closed: st.closed,
                    producer: Some((s.epoch, s.last_seq)),
                });
            }
        }
        if st.closed {
            if req.records.is_empty() && req.close {
                // Closing a closed stream is idempotent.
                return Ok(AppendResult {
                    first_offset: st.next_offset,
                    next_offset: st.next_offset,
                    duplicate: false,
                    closed: true,
                    producer: None,
                });
            }
            return Err(Error::Closed {
                next_offset: st.next_offset,
            });
        }
        if req.records.is_empty() && !req.close {
            return Err(Error::EmptyAppend);
        }
        if let Some(ct) = &req.content_type {
            if media_type(ct) != media_type(&stream.config.content_type) {
                return Err(Error::ContentTypeMismatch {
                    expected: stream.config.content_type.clone(),
                    got: ct.clone(),
                });
            }
        }
        if let (Some(seq), Some(last)) = (&req.stream_seq, &st.last_stream_seq) {
            if seq <= last {
                return Err(Error::StreamSeqRegression {
                    last: last.clone(),
                    received: seq.clone(),
                });
            }
        }

        let first = st.next_offset;
        if !req.records.is_empty() {
            let raw = batch::encode(&req.records, now_ms());
            g.wb.put_cf(&self.shared.cf(CF_WAL), wal_key(stream.id, first), &raw);
            state::stage(
                &self.shared,
                &mut g.wb,
                &st.kv,
                stream.id,
                first,
                &req.records,
                ops.as_ref(),
            );
            let published = Batch::from_encoded(first, Bytes::from(raw));
            st.batches.push(if st.kv.mode == StateMode::None {
                published
            } else {
                published.with_memo()
            });
            st.next_offset += req.records.len() as u64;
        }
        if req.close {
            st.closed = true;
            st.meta_dirty = true;
        }
        if let Some(seq) = req.stream_seq {
            st.last_stream_seq = Some(seq);
            st.meta_dirty = true;
        }
        let mut producer_out = None;
        if let Some(tag) = &req.producer {
            let state = ProducerState {
                epoch: tag.epoch,
                last_seq: tag.seq,
                last_first_offset: first,
                last_next_offset: st.next_offset,
            };
            g.wb.put_cf(
                &self.shared.cf(CF_PRODUCERS),
                producer_key(stream.id, &tag.id),
                state.encode(),
            );
            st.producers.insert(tag.id.clone(), state);
            producer_out = Some((tag.epoch, tag.seq));
        }
        stream.touch(now_ms());
        Ok(AppendResult {
            first_offset: first,
            next_offset: st.next_offset,
            duplicate: false,
            closed: st.closed,
            producer: producer_out,
        })
    }

    /// Writes the group through the one write path and answers its requests.
    pub(crate) fn flush(&mut self, g: &mut Group) {
        let mut g = std::mem::take(g);
        let mut w = Write::new(std::mem::take(&mut g.wb));
        for id in &g.order {
            let mut st = g.staged.remove(id).expect("staged stream");
            state::finish(&self.shared, &mut w.wb, &mut st.kv, *id, st.next_offset);
            if st.meta_dirty {
                let meta = st
                    .stream
                    .meta(st.closed, st.last_stream_seq.clone(), &st.kv);
                w.wb.put_cf(
                    &self.shared.cf(CF_STREAMS),
                    st.stream.name.as_bytes(),
                    meta.encode(),
                );
            }
            w.effects.push(Effect::Publish(st));
        }
        if w.wb.is_empty() && w.effects.is_empty() {
            Self::answer(g, Ok(()));
            return;
        }
        let wrote = !w.wb.is_empty();
        let counts = GroupCounts::of(&w, &g.replies);
        match self.write(w) {
            Ok(took) => {
                if wrote {
                    counts.add(&self.shared.stats, took);
                }
                Self::answer(g, Ok(()));
            }
            Err(e) => Self::answer(g, Err(e)),
        }
    }

    fn answer(g: Group, written: Result<()>) {
        match written {
            Ok(()) => {
                for (reply, res) in g.replies {
                    let _ = reply.send(res);
                }
                for (reply, outcome) in g.chunk_replies {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                for (reply, res) in g.replies {
                    let _ = reply.send(res.and(Err(err.clone())));
                }
                for (reply, _) in g.chunk_replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// What a group adds to the engine's counters, taken before it is written.
struct GroupCounts {
    appends: u64,
    records: u64,
    bytes: u64,
    requests: usize,
}

impl GroupCounts {
    fn of(w: &Write, replies: &[(Reply<AppendResult>, Result<AppendResult>)]) -> GroupCounts {
        let (mut records, mut bytes) = (0u64, 0u64);
        for e in &w.effects {
            if let Effect::Publish(st) = e {
                for b in &st.batches {
                    records += b.len() as u64;
                    bytes += b.raw().len() as u64;
                }
            }
        }
        let appends = replies
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|r| !r.duplicate))
            .count() as u64;
        GroupCounts {
            appends,
            records,
            bytes,
            requests: replies.len(),
        }
    }

    fn add(&self, stats: &crate::stats::Stats, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        stats.appends.fetch_add(self.appends, Relaxed);
        stats.records.fetch_add(self.records, Relaxed);
        stats.bytes.fetch_add(self.bytes, Relaxed);
        stats.groups.fetch_add(1, Relaxed);
        stats.group_size.observe(self.requests as f64);
        stats.write_seconds.observe(took.as_secs_f64());
    }
}
