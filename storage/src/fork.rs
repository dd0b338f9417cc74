//! Forks: a stream that starts as a copy of another stream's first records
//! without copying them. A fork keeps a *lineage*, the list of (stream id,
//! offset range) segments its inherited records live in, and stores only its
//! own appends under its own id from the fork point on. Offsets continue the
//! source's numbering, so a reader of the fork sees one dense offset space.
//!
//! Lifetime: a fork holds a reference on its direct parent. Deleting (or
//! expiring) a stream that forks still reference *soft-deletes* it: its data
//! stays for the forks, its name stays reserved (create answers
//! [`Error::NameReserved`]), and every other operation answers [`Error::Gone`]. When
//! the last fork of a soft-deleted stream is deleted, the stream is removed
//! for good, which in turn releases its own parent (cascading collection).
//!
//! Persistence, in the `forks` column family (per-stream, so a hard delete's
//! range delete removes it): `sid ‖ 'L'` holds the link, `sid ‖ 'D'` marks a
//! soft delete. Child counts are derived from the links on open.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{ReadOptions, WriteBatch, DB};

use crate::batch::{self, Batch};
use crate::clock::now_ms;
use crate::codec::{Reader, Writer};
use crate::commit::write::{Effect, Install, Write};
use crate::commit::{Command, CreateOutcome};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keys::{parse_wal_key, wal_key, CF_FORKS, CF_STREAMS, CF_WAL, NEXT_ID_KEY};
use crate::meta::{media_type, validate_name, StreamConfig, StreamMeta};
use crate::read::read_range;
use crate::record::Record;
use crate::shared::Shared;
use crate::stream::StreamState;

/// Most forks a chain may stack above a plain stream: a fork of a fork
/// that is already this deep is refused with [`Error::Invalid`]. Every
/// ancestor that holds records costs a read of its own storage range (an
/// iterator and a seek, and one stored value decoded) on a read crossing
/// its part, and deleting a chain collects its soft-deleted ancestors one
/// level at a time; the cap keeps both bounded whatever a client builds.
pub const MAX_FORK_DEPTH: usize = 32;

/// How far into the append at the fork offset a fork reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubOffset {
    /// Fork exactly at the offset.
    #[default]
    None,
    /// Also inherit this many more records of the stored batch at the offset
    /// (JSON streams, where one append is stored as one record per message).
    Records(u64),
    /// Also inherit the first this-many payload bytes of the record at the
    /// offset, materialized as the fork's own first record (byte streams).
    Bytes(u64),
}

impl SubOffset {
    fn amount(self) -> u64 {
        match self {
            SubOffset::None => 0,
            SubOffset::Records(n) | SubOffset::Bytes(n) => n,
        }
    }
}

/// A request to create `name` as a fork of `source`.
#[derive(Debug, Clone, Default)]
pub struct ForkRequest {
    /// Name of the stream to fork.
    pub source: String,
    /// Offset to fork at (records before it are inherited); the source's tail when `None`.
    pub offset: Option<u64>,
    /// Reach into the append at the fork offset.
    pub sub_offset: SubOffset,
    /// Content type; inherited from the source when `None`, and must match its media type.
    pub content_type: Option<String>,
    /// Sliding TTL; when neither this nor `expires_at_ms` is given, the source's expiry is inherited.
    pub ttl_secs: Option<u64>,
    /// Absolute expiry in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// Records appended to the fork right after the inherited part.
    pub records: Vec<Record>,
    /// Create the fork already closed.
    pub close: bool,
}

/// One contiguous run of inherited offsets and the stream id storing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub sid: u64,
    pub start: u64,
    pub end: u64,
}

/// What a fork remembers about where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForkLink {
    pub parent_name: String,
    pub parent_id: u64,
    /// Inherited segments in offset order, covering `[0, own_start)` without gaps.
    pub lineage: Vec<Segment>,
    /// First offset stored under the fork's own id.
    pub own_start: u64,
    /// The fork offset as resolved at creation, and the sub-offset amount,
    /// kept so an identical re-create is recognized as idempotent.
    pub fork_offset: u64,
    pub sub_amount: u64,
}

const LINK_VERSION: u8 = 1;

impl ForkLink {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(LINK_VERSION)
            .bytes(self.parent_name.as_bytes())
            .u64(self.parent_id)
            .u64(self.own_start)
            .u64(self.fork_offset)
            .u64(self.sub_amount)
            .u64(self.lineage.len() as u64);
        for s in &self.lineage {
            w.u64(s.sid).u64(s.start).u64(s.end);
        }
        w.finish()
    }

    fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "fork link");
        if r.u8()? != LINK_VERSION {
            return Err(Error::Corrupt("unknown fork link version".into()));
        }
        let parent_name = r.string()?;
        let parent_id = r.u64()?;
        let own_start = r.u64()?;
        let fork_offset = r.u64()?;
        let sub_amount = r.u64()?;
        let n = r.u64()?;
        if n > 1 << 20 {
            return Err(Error::Corrupt("fork lineage too long".into()));
        }
        let mut lineage = Vec::with_capacity(n as usize);
        for _ in 0..n {
            lineage.push(Segment {
                sid: r.u64()?,
                start: r.u64()?,
                end: r.u64()?,
            });
        }
        Ok(ForkLink {
            parent_name,
            parent_id,
            lineage,
            own_start,
            fork_offset,
            sub_amount,
        })
    }
}

fn link_key(sid: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&sid.to_be_bytes());
    k[8] = b'L';
    k
}

pub(crate) fn dead_key(sid: u64) -> [u8; 9] {
    let mut k = link_key(sid);
    k[8] = b'D';
    k
}

/// The segments a reader of `s` walks: inherited ones, then its own.
fn segments(s: &StreamState) -> Vec<Segment> {
    let link = s.live.lock().fork.clone();
    match link {
        None => vec![Segment {
            sid: s.id,
            start: 0,
            end: u64::MAX,
        }],
        Some(l) => {
            let mut v = l.lineage.clone();
            v.push(Segment {
                sid: s.id,
                start: l.own_start,
                end: u64::MAX,
            });
            v
        }
    }
}

/// Reads `[from, tail)` of `s` like `read_range`, following a fork's lineage
/// into its ancestors' storage for inherited offsets.
pub(crate) fn read_stream(
    shared: &Shared,
    s: &StreamState,
    from: u64,
    tail: u64,
    budget: usize,
) -> Result<Vec<Batch>> {
    let segs = segments(s);
    if segs.len() == 1 {
        // Retention may have dropped the oldest batches: start at the head
        // (retention.rs), and again if a trim moved it during the read.
        let mut from = from.max(s.live.lock().head);
        loop {
            if from >= tail {
                return Ok(Vec::new());
            }
            match read_range(shared, s.id, from, tail, budget) {
                Err(Error::Corrupt(_)) if s.live.lock().head > from => {
                    from = s.live.lock().head;
                }
                r => return r,
            }
        }
    }
    let mut out = Vec::new();
    let mut at = from;
    let mut used = 0usize;
    for seg in segs {
        if at >= tail || used >= budget {
            break;
        }
        if at < seg.start || at >= seg.end {
            continue;
        }
        let hi = seg.end.min(tail);
        for b in read_range(shared, seg.sid, at, hi, budget - used)? {
            // An ancestor's batch may run past the inherited range (a fork
            // inside a JSON append): cut it at the segment's end.
            let b = if b.next_offset() > hi {
                b.truncate((hi - b.first_offset()) as usize)
            } else {
                b
            };
            used += b.data_len();
            at = b.next_offset();
            out.push(b);
        }
        if at < hi {
            break; // budget spent inside this segment
        }
    }
    Ok(out)
}

/// The stored batch of `s` holding `offset`, seen from `offset` and cut at
/// the end of the segment holding it; `None` at or past the tail.
fn batch_at(db: &DB, s: &StreamState, offset: u64, tail: u64) -> Result<Option<Batch>> {
    if offset >= tail {
        return Ok(None);
    }
    let Some(seg) = segments(s)
        .into_iter()
        .find(|g| g.start <= offset && offset < g.end)
    else {
        return Ok(None);
    };
    let cf = db
        .cf_handle(CF_WAL)
        .ok_or_else(|| Error::Corrupt("missing wal column family".into()))?;
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(wal_key(seg.sid, 0).to_vec());
    opts.set_iterate_upper_bound(wal_key(seg.sid, seg.end.min(tail)).to_vec());
    let mut it = db.raw_iterator_cf_opt(&cf, opts);
    it.seek_for_prev(wal_key(seg.sid, offset));
    let found = match (it.key(), it.value()) {
        (Some(k), Some(v)) if it.valid() => {
            let (_, base) =
                parse_wal_key(k).ok_or_else(|| Error::Corrupt("malformed wal key".into()))?;
            Batch::decode(base, Bytes::copy_from_slice(v))?.skip_to(offset)
        }
        _ => None,
    };
    it.status()?;
    let end = seg.end.min(tail);
    Ok(found.map(|b| {
        if b.next_offset() > end {
            b.truncate((end - b.first_offset()) as usize)
        } else {
            b
        }
    }))
}

/// How many forks stand between `s` and the plain stream its chain starts
/// from (0 for a plain stream), following parent links by name. An
/// ancestor that no longer resolves (never expected: a parent with forks is
/// only soft-deleted) ends the walk; the walk itself stops past the cap.
fn depth(shared: &Shared, s: &StreamState) -> usize {
    let mut link = s.live.lock().fork.clone();
    let mut depth = 0;
    while let Some(l) = link {
        depth += 1;
        if depth > MAX_FORK_DEPTH {
            break;
        }
        let parent = shared.streams.read().get(l.parent_name.as_str()).cloned();
        link = match parent {
            Some(p) if p.id == l.parent_id => p.live.lock().fork.clone(),
            _ => None,
        };
    }
    depth
}

/// Whether an existing stream keeps its name from being created again: a
/// soft-deleted stream, or an expired one that forks still read.
pub(crate) fn pins_name(s: &StreamState, now: u64) -> bool {
    let l = s.live.lock();
    l.soft_deleted || (l.children > 0 && s.is_expired(now))
}

/// The parent `s` was forked from, if it still stands, and whether `s` is
/// the last fork keeping it (soft-deleted and with no other child): then a
/// hard delete of `s` collects the parent too.
pub(crate) fn parent_of(shared: &Shared, s: &StreamState) -> Option<(Arc<StreamState>, bool)> {
    let link = s.live.lock().fork.clone()?;
    let parent = shared.stream(&link.parent_name);
    let p = parent.filter(|p| p.id == link.parent_id)?;
    let last = {
        let l = p.live.lock();
        l.children <= 1 && l.soft_deleted
    };
    Some((p, last))
}

/// Soft-deleted streams no fork reads any more (left by a crash between a
/// fork's delete and its parent's collection, before both were one write):
/// the engine deletes them when it opens.
pub(crate) fn orphans<'a>(
    streams: impl Iterator<Item = &'a Arc<StreamState>>,
) -> Vec<(String, u64)> {
    streams
        .filter(|s| {
            let l = s.live.lock();
            l.soft_deleted && l.children == 0
        })
        .map(|s| (s.name.to_string(), s.id))
        .collect()
}

/// Attaches fork links and soft-delete marks to recovered streams.
pub(crate) fn recover(db: &DB, by_id: &HashMap<u64, Arc<StreamState>>) -> Result<()> {
    let cf = db.cf_handle(CF_FORKS).expect("created at open");
    for item in db.iterator_cf(&cf, rocksdb::IteratorMode::Start) {
        let (k, v) = item?;
        if k.len() != 9 {
            return Err(Error::Corrupt("malformed fork key".into()));
        }
        let sid = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
        let Some(s) = by_id.get(&sid) else { continue };
        match k[8] {
            b'L' => {
                let link = ForkLink::decode(&v)?;
                if let Some(p) = by_id.get(&link.parent_id) {
                    p.live.lock().children += 1;
                }
                let mut l = s.live.lock();
                l.next_offset = l.next_offset.max(link.own_start);
                // A fork's own records start at its fork point; its head is
                // its source's business (forks are never trimmed).
                l.head = 0;
                l.fork = Some(Arc::new(link));
            }
            b'D' => s.live.lock().soft_deleted = true,
            _ => return Err(Error::Corrupt("unknown fork key kind".into())),
        }
    }
    Ok(())
}

/// What the commit thread does for a fork request.
pub(crate) enum ForkPlan {
    /// An identical fork exists already.
    Exists(CreateOutcome),
    /// An expired stream holds the name: delete it, then plan again.
    ReplaceExpired(u64),
    /// The fork's write: its metadata, link and own records in one batch.
    New(Write),
}

/// Runs on the commit thread: validates a fork and plans its write (the
/// thread writes it through its one write path).
pub(crate) fn plan(shared: &Shared, id: u64, name: &str, req: &ForkRequest) -> Result<ForkPlan> {
    let now = now_ms();
    let source = shared
        .streams
        .read()
        .get(req.source.as_str())
        .cloned()
        .filter(|s| !s.is_expired(now))
        .ok_or(Error::NotFound)?;
    let (src_tail, src_dead, mode, src_head) = {
        let l = source.live.lock();
        (l.next_offset, l.soft_deleted, l.kv.mode, l.head)
    };
    if src_dead {
        return Err(Error::ConfigConflict);
    }
    let content_type = req
        .content_type
        .clone()
        .unwrap_or_else(|| source.config.content_type.clone());
    if media_type(&content_type) != media_type(&source.config.content_type) {
        return Err(Error::ConfigConflict);
    }
    let (ttl_secs, expires_at_ms) = if req.ttl_secs.is_none() && req.expires_at_ms.is_none() {
        (source.config.ttl_secs, source.config.expires_at_ms)
    } else {
        (req.ttl_secs, req.expires_at_ms)
    };
    let config = StreamConfig {
        content_type,
        ttl_secs,
        expires_at_ms,
    };
    config.validate()?;
    if depth(shared, &source) >= MAX_FORK_DEPTH {
        return Err(Error::Invalid(format!(
            "{} is already {MAX_FORK_DEPTH} forks deep: a fork chain may be at most \
             {MAX_FORK_DEPTH} forks deep (fork an ancestor instead)",
            req.source
        )));
    }
    let offset = req.offset.unwrap_or(src_tail);
    if offset > src_tail {
        return Err(Error::Invalid(format!(
            "fork offset {offset} is beyond the source's tail {src_tail}"
        )));
    }
    if src_head > 0 {
        return Err(Error::Invalid(format!(
            "{} was trimmed below offset {src_head}: a trimmed stream cannot be forked",
            req.source
        )));
    }

    let existing = shared.streams.read().get(name).cloned();
    if let Some(t) = existing {
        if pins_name(&t, now) {
            return Err(Error::NameReserved);
        }
        if !t.is_expired(now) {
            let link = t.live.lock().fork.clone();
            let same = link.is_some_and(|l| {
                l.parent_id == source.id
                    && req.offset.is_none_or(|o| o == l.fork_offset)
                    && l.sub_amount == req.sub_offset.amount()
            });
            if !same || t.config != config {
                return Err(Error::ConfigConflict);
            }
            return Ok(ForkPlan::Exists(CreateOutcome {
                created: false,
                info: t.info(),
            }));
        }
        return Ok(ForkPlan::ReplaceExpired(t.id));
    }

    // Resolve the sub-offset into the inherited end and an optional
    // materialized partial record.
    let (inherit_end, partial) = match req.sub_offset {
        SubOffset::None | SubOffset::Records(0) | SubOffset::Bytes(0) => (offset, None),
        SubOffset::Records(n) => {
            let b = batch_at(&shared.db, &source, offset, src_tail)?
                .ok_or_else(|| Error::Invalid("sub-offset past the source's tail".into()))?;
            if n > b.len() as u64 {
                return Err(Error::Invalid(format!(
                    "sub-offset {n} exceeds the {} messages of the append",
                    b.len()
                )));
            }
            (offset + n, None)
        }
        SubOffset::Bytes(n) => {
            let b = batch_at(&shared.db, &source, offset, src_tail)?
                .ok_or_else(|| Error::Invalid("sub-offset past the source's tail".into()))?;
            let r = b.get(0).expect("engine batches are never empty");
            if n > r.payload.len() as u64 {
                return Err(Error::Invalid(format!(
                    "sub-offset {n} exceeds the {} bytes of the append",
                    r.payload.len()
                )));
            }
            let rec = Record {
                key: r.key.map(Bytes::copy_from_slice),
                payload: Bytes::copy_from_slice(&r.payload[..n as usize]),
                tombstone: r.tombstone,
            };
            (offset, Some(rec))
        }
    };

    let lineage: Vec<Segment> = segments(&source)
        .into_iter()
        .filter(|g| g.start < inherit_end)
        .map(|g| Segment {
            end: g.end.min(inherit_end),
            ..g
        })
        .collect();
    let link = ForkLink {
        parent_name: req.source.clone(),
        parent_id: source.id,
        lineage,
        own_start: inherit_end,
        fork_offset: offset,
        sub_amount: req.sub_offset.amount(),
    };
    let meta = StreamMeta {
        id,
        config,
        created_at_ms: now,
        closed: req.close,
        last_stream_seq: None,
        state: mode,
        profile: None,
    };
    let mut wb = WriteBatch::default();
    wb.put_cf(&shared.cf(CF_STREAMS), name.as_bytes(), meta.encode());
    wb.put_cf(&shared.cf(CF_STREAMS), NEXT_ID_KEY, (id + 1).to_le_bytes());
    wb.put_cf(&shared.cf(CF_FORKS), link_key(id), link.encode());
    let mut next = inherit_end;
    if let Some(rec) = partial {
        wb.put_cf(
            &shared.cf(CF_WAL),
            wal_key(id, next),
            batch::encode(&[rec], now),
        );
        next += 1;
    }
    if !req.records.is_empty() {
        wb.put_cf(
            &shared.cf(CF_WAL),
            wal_key(id, next),
            batch::encode(&req.records, now),
        );
        next += req.records.len() as u64;
    }
    // A fork of a state stream keeps the same kind of state, built from
    // its history in the background like a stream whose state is turned on.
    let kv = crate::state::stage_mode_change(
        shared,
        &mut wb,
        id,
        &crate::state::KvStatus::default(),
        mode,
        next,
    );
    let mut w = Write::new(wb);
    w.effects.push(Effect::Install(Box::new(Install {
        name: name.to_string(),
        meta,
        next_offset: next,
        kv,
        fork: Some(Arc::new(link)),
        source: Some(source),
    })));
    Ok(ForkPlan::New(w))
}

impl Engine {
    /// Creates `name` as a fork of `req.source`, or confirms an identical
    /// fork exists (`created == false`). A different existing stream, a
    /// content-type mismatch or a soft-deleted source is
    /// [`Error::ConfigConflict`]; a fork offset or sub-offset past the
    /// source's data is [`Error::Invalid`].
    pub async fn fork_stream(&self, name: &str, req: ForkRequest) -> Result<CreateOutcome> {
        validate_name(name)?;
        validate_name(&req.source)?;
        self.validate_records(&req.records)?;
        if !req.records.is_empty() {
            // A fork has its source's media type (checked on the commit
            // thread), so the source's content type decides the rules.
            let source = self.lookup(&req.source)?;
            let content_type = match &req.content_type {
                Some(ct) => ct.clone(),
                None => source.config.content_type.clone(),
            };
            crate::rules::check_records(&content_type, &req.records)?;
            let mode = source.live.lock().kv.mode;
            crate::state::ops::derive(mode, &req.records)?;
        }
        self.submit(|reply| Command::Fork {
            name: name.to_string(),
            req,
            reply,
        })
        .await
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_round_trips() {
        let l = ForkLink {
            parent_name: "a/b".into(),
            parent_id: 3,
            lineage: vec![
                Segment {
                    sid: 1,
                    start: 0,
                    end: 4,
                },
                Segment {
                    sid: 3,
                    start: 4,
                    end: 9,
                },
            ],
            own_start: 9,
            fork_offset: 8,
            sub_amount: 1,
        };
        assert_eq!(ForkLink::decode(&l.encode()).unwrap(), l);
        let enc = l.encode();
        for cut in 0..enc.len() {
            assert!(ForkLink::decode(&enc[..cut]).is_err());
        }
    }
}
