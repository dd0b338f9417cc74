//! Name-level changes on the commit thread: create, fork, state-mode
//! change, delete (hard, soft, cascading), trim and shutdown. Each is
//! planned here (or by `crate::fork` / `crate::retention`) as one
//! [`Write`] and written by [`Committer::write`], after the pending group.

use std::sync::Arc;

use rocksdb::WriteBatch;

use super::write::{Effect, Install, Mark, Write};
use super::{Committer, CreateOutcome};
use crate::batch;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::fork::{self, ForkPlan, ForkRequest};
use crate::hub;
use crate::keys::{
    stream_range, wal_key, CF_FORKS, CF_STREAMS, CF_WAL, NEXT_ID_KEY, PER_STREAM_CFS,
};
use crate::meta::{StreamConfig, StreamMeta};
use crate::record::Record;
use crate::state::{self, StateMode, StateStatus};
use crate::stream::StreamState;

impl Committer {
    pub(super) fn create(
        &mut self,
        name: &str,
        config: StreamConfig,
        mode: StateMode,
        records: Vec<Record>,
        close: bool,
    ) -> Result<CreateOutcome> {
        let now = now_ms();
        let existing = self.shared.stream(name);
        if let Some(s) = existing {
            if fork::pins_name(&s, now) {
                return Err(Error::NameReserved);
            }
            if !s.is_expired(now) {
                // A create that names no state mode matches any: the mode
                // may have been set after creation.
                let mode_differs = mode != StateMode::None && s.live.lock().kv.mode != mode;
                if s.config != config || mode_differs {
                    return Err(Error::ConfigConflict);
                }
                return Ok(CreateOutcome {
                    created: false,
                    info: s.info(),
                });
            }
            self.delete(name, Some(s.id))?;
        }
        let id = self.next_id;
        let meta = StreamMeta {
            id,
            config,
            created_at_ms: now,
            closed: close,
            last_stream_seq: None,
            state: mode,
            profile: None,
        };
        let mut wb = WriteBatch::default();
        wb.put_cf(self.shared.cf(CF_STREAMS), name.as_bytes(), meta.encode());
        let kv = state::stage_create(&self.shared, &mut wb, id, mode, &records);
        wb.put_cf(
            self.shared.cf(CF_STREAMS),
            NEXT_ID_KEY,
            (id + 1).to_le_bytes(),
        );
        let n = records.len() as u64;
        if n > 0 {
            wb.put_cf(
                self.shared.cf(CF_WAL),
                wal_key(id, 0),
                batch::encode(&records, now),
            );
        }
        let mut w = Write::new(wb);
        w.effects.push(Effect::Install(Box::new(Install {
            name: name.to_string(),
            meta,
            next_offset: n,
            kv,
            fork: None,
            source: None,
        })));
        self.write(w)?;
        Ok(self.installed(name))
    }

    pub(super) fn fork(&mut self, name: &str, req: &ForkRequest) -> Result<CreateOutcome> {
        loop {
            match fork::plan(&self.shared, self.next_id, name, req)? {
                ForkPlan::Exists(out) => return Ok(out),
                // An expired stream of that name goes first (then the
                // plan is made again: the name is free).
                ForkPlan::ReplaceExpired(id) => self.delete(name, Some(id))?,
                ForkPlan::New(w) => {
                    self.write(w)?;
                    return Ok(self.installed(name));
                }
            }
        }
    }

    /// Changes a stream's state mode: the old state is removed, and a
    /// stream with history starts building the new one in the background.
    /// Setting the same mode again only stores the new profile.
    pub(super) fn set_state(
        &mut self,
        name: &str,
        mode: StateMode,
        profile: Option<String>,
    ) -> Result<StateStatus> {
        let s = self.shared.stream(name).ok_or(Error::NotFound)?;
        let (closed, seq, old, tail, head) = {
            let l = s.live.lock();
            if l.deleted || l.soft_deleted {
                return Err(Error::NotFound);
            }
            (
                l.closed,
                l.last_stream_seq.clone(),
                l.kv.clone(),
                l.next_offset,
                l.head,
            )
        };
        state::check_mode(&s.config.content_type, mode)?;
        if mode != StateMode::None && head > 0 {
            // The state is built from the whole history, which is gone.
            return Err(Error::Invalid(
                "the stream's oldest records were trimmed: it cannot keep state".into(),
            ));
        }
        let mut wb = WriteBatch::default();
        let mut kv = if old.mode == mode {
            old.clone()
        } else {
            state::stage_mode_change(&self.shared, &mut wb, s.id, &old, mode, tail)
        };
        crate::touch::stage_profile(
            &self.shared,
            &mut wb,
            s.id,
            old.profile.as_deref(),
            profile.as_deref(),
            tail,
        );
        kv.profile = profile.map(Arc::from);
        let meta = s.meta(closed, seq, &kv);
        wb.put_cf(self.shared.cf(CF_STREAMS), name.as_bytes(), meta.encode());
        let status = kv.status();
        let mut w = Write::new(wb);
        w.effects.push(Effect::SetKv { stream: s, kv });
        self.write(w)?;
        Ok(status)
    }

    /// Deletes a stream. One that forks still read is soft-deleted (gone by
    /// name, data kept); a hard delete releases the stream's parent, which
    /// is collected in the same write when it was soft-deleted and this was
    /// its last fork (and so on up the chain).
    pub(crate) fn delete(&mut self, name: &str, only_id: Option<u64>) -> Result<()> {
        let Some(s) = self.shared.stream(name) else {
            return Err(Error::NotFound);
        };
        if only_id.is_some_and(|id| id != s.id) {
            return Err(Error::NotFound);
        }
        let (children, soft) = {
            let l = s.live.lock();
            (l.children, l.soft_deleted)
        };
        if children > 0 {
            if !soft {
                let mut wb = WriteBatch::default();
                wb.put_cf(self.shared.cf(CF_FORKS), fork::dead_key(s.id), []);
                let mut w = Write::new(wb);
                w.effects.push(Effect::SoftDeleted(s));
                self.write(w)?;
            }
            return Ok(());
        }
        // The stream and every soft-deleted ancestor it was the last fork
        // of go in one write: a crash cannot leave an ancestor that nothing
        // reads but nothing can delete either.
        let mut w = Write::new(WriteBatch::default());
        let mut victim = s;
        loop {
            self.stage_hard_delete(&mut w, &victim);
            let Some((parent, last)) = fork::parent_of(&self.shared, &victim) else {
                break;
            };
            if last {
                victim = parent;
            } else {
                w.effects.push(Effect::Released(parent));
                break;
            }
        }
        self.write(w)?;
        Ok(())
    }

    /// Adds the removal of `s` and every key it owns to `w`.
    fn stage_hard_delete(&self, w: &mut Write, s: &Arc<StreamState>) {
        w.wb.delete_cf(self.shared.cf(CF_STREAMS), s.name.as_bytes());
        let (lo, hi) = stream_range(s.id);
        for cf in PER_STREAM_CFS {
            w.wb.delete_range_cf(self.shared.cf(cf), lo, hi);
        }
        w.marks.push(Mark::Deleted(Arc::clone(s)));
        w.effects.push(Effect::Deleted(Arc::clone(s)));
    }

    /// Ends every live follower: no batch will be published any more.
    pub(super) fn end_followers(&self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let streams: Vec<_> = self.shared.streams.read().values().cloned().collect();
        for s in streams {
            hub::end_all_shutdown(&mut s.live.lock());
        }
    }

    /// The answer to a create or fork just installed.
    fn installed(&self, name: &str) -> CreateOutcome {
        let s = self
            .shared
            .stream(name)
            .expect("a stream installed by this thread");
        CreateOutcome {
            created: true,
            info: s.info(),
        }
    }
}
