//! Retention: dropping a stream's oldest records. A trim removes whole
//! batches below a cut and moves the stream's *head* (its first stored
//! offset) there; offsets keep their numbers, and a read from below the
//! head starts at the head, as a Durable Streams read from `-1` does.
//!
//! The head is not stored anywhere: on open it is the base of the stream's
//! first `wal` key, as the tail is derived from its last one, so the two
//! can never disagree with the data. Trims run on the commit thread, the
//! only writer of `wal`. The head moves (a mark of the write) before the
//! delete is written, so a concurrent reader clamps to the new head and
//! never looks for a batch being deleted.
//!
//! Only plain streams are trimmed: a state stream is rebuilt from its whole
//! history and a fork reads its source's, so trimming either would lose
//! data that is still needed (`live.metrics`, the one stream trimmed
//! today, is plain).

use std::sync::Arc;

use rocksdb::{WriteBatch, DB};

use crate::commit::write::{Effect, Mark, Write};
use crate::commit::{Command, Committer};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keys::{parse_wal_key, wal_key, CF_WAL};
use crate::state::StateMode;
use crate::stream::StreamState;

/// The head of stream `sid` as recorded in the `wal` column family: the
/// base of its first batch, or 0 when it has none.
pub(crate) fn recover_head(db: &DB, sid: u64) -> Result<u64> {
    let mut it = crate::read::stream_wal(db, sid)?;
    it.seek_to_first();
    let head = match it.key() {
        Some(k) if it.valid() => {
            parse_wal_key(k)
                .ok_or_else(|| Error::Corrupt("malformed wal key".into()))?
                .1
        }
        _ => 0,
    };
    it.status()?;
    Ok(head)
}

/// The base of the batch of stream `sid` that holds `offset`.
fn batch_base(db: &DB, sid: u64, offset: u64) -> Result<Option<u64>> {
    let mut it = crate::read::stream_wal(db, sid)?;
    it.seek_for_prev(wal_key(sid, offset));
    let base = match it.key() {
        Some(k) if it.valid() => parse_wal_key(k).map(|(_, b)| b),
        _ => None,
    };
    it.status()?;
    Ok(base)
}

impl Committer {
    /// Drops the batches of `s` wholly below the one holding `before`,
    /// always keeping the newest batch; returns the new head.
    pub(crate) fn trim(&mut self, s: &Arc<StreamState>, before: u64) -> Result<u64> {
        let (head, tail) = {
            let l = s.live.lock();
            if l.deleted || l.soft_deleted {
                return Err(Error::NotFound);
            }
            if l.fork.is_some() || l.children > 0 || l.kv.mode != StateMode::None {
                return Err(Error::Invalid(
                    "only plain streams are trimmed (no state, not forked, no forks)".into(),
                ));
            }
            (l.head, l.next_offset)
        };
        // The newest batch stays, so a stream with records never looks empty.
        let before = before.min(tail.saturating_sub(1));
        if before <= head {
            return Ok(head);
        }
        let db = &self.shared.db;
        let Some(cut) = batch_base(db, s.id, before)?.filter(|c| *c > head) else {
            return Ok(head);
        };
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(
            self.shared.cf(CF_WAL),
            wal_key(s.id, head),
            wal_key(s.id, cut),
        );
        let mut w = Write::new(wb);
        w.marks.push(Mark::Head {
            stream: Arc::clone(s),
            old: head,
            new: cut,
        });
        w.effects.push(Effect::Trimmed {
            stream: Arc::clone(s),
            from: head,
            to: cut,
        });
        self.write(w)?;
        Ok(cut)
    }
}

impl Engine {
    /// Drops the oldest records of a plain stream: every batch wholly below
    /// the one holding offset `before` (the newest batch is always kept).
    /// Returns the new head, the first offset still stored; reads from
    /// below it start there.
    pub async fn trim_before(&self, name: &str, before: u64) -> Result<u64> {
        let stream = self.lookup(name)?;
        self.submit(|reply| Command::Trim {
            stream,
            before,
            reply: Some(reply),
        })
        .await
        .await
    }

    /// The first offset a stream still stores (0 unless it was trimmed).
    pub fn head_offset(&self, name: &str) -> Result<u64> {
        Ok(self.lookup(name)?.live.lock().head)
    }
}
