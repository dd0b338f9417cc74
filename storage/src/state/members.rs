//! What a filtered reader holds, and how a batch's changes become its
//! membership changes. A row that starts or keeps matching is an upsert, one
//! that stops matching or is deleted is a delete, a row that never matched
//! sends nothing. To know whether a change leaves the set, a reader that
//! began with a snapshot remembers the rows it holds as 128-bit digests of
//! their keys (16 bytes and a hash-set slot per matching row, up to
//! [`MAX_TRACKED_MEMBERS`]; two keys with one digest, odds below 2^-88 at
//! the cap, would cost only an extra delete of a row the reader does not
//! hold). A reader that started from an offset, or outgrew the cap, cannot
//! know what it holds, and gets a delete for every non-matching change: a
//! superset that a reader applying deletes of absent rows as no-ops gets
//! right.
//!
//! The result depends only on the filter and on the set held before the
//! batch, so every exact reader of one filter at one offset holds the same
//! set: that is what lets `fanout.rs` convert once for a whole group.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use super::changes::{Changes, FilterKey, Kind, MemberId};
use super::filter::Filter;
use super::kv::StateRow;
use super::subscribe::StateChange;
use super::StateMode;
use crate::batch::Batch;

/// Most row keys a filtered subscription remembers (see the module docs).
pub const MAX_TRACKED_MEMBERS: usize = 1 << 20;

/// Member ids are digests already: hashing them again would only cost time.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

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

type Set = HashSet<MemberId, BuildHasherDefault<IdHasher>>;

/// The rows a filtered reader holds: exact, or unknown (`None`).
#[derive(Clone, Default)]
pub(crate) struct Members(Option<Set>);

impl Members {
    /// An exact, empty set (a reader about to receive a snapshot).
    pub fn exact() -> Members {
        Members(Some(Set::default()))
    }

    /// A set nobody knows (a reader that started from an offset).
    pub fn unknown() -> Members {
        Members(None)
    }

    /// Whether the set is known row by row.
    pub fn is_exact(&self) -> bool {
        self.0.is_some()
    }

    /// Rows known to be held (0 when unknown).
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, HashSet::len)
    }

    /// Notes that the reader now holds the row `id`.
    pub fn remember(&mut self, id: MemberId) {
        if let Some(m) = &mut self.0 {
            if m.len() >= MAX_TRACKED_MEMBERS {
                self.0 = None; // degrade to the documented superset
            } else {
                m.insert(id);
            }
        }
    }

    /// Whether a change that makes row `id` not match must be sent as a
    /// delete (and forgets the row).
    fn forget(&mut self, id: MemberId) -> bool {
        match &mut self.0 {
            Some(m) => m.remove(&id),
            None => true,
        }
    }

    fn clear(&mut self) {
        if let Some(m) = &mut self.0 {
            m.clear();
        }
    }

    /// The membership changes of `batch` (of a stream in `mode`) for a
    /// reader holding this set with `filter` (`key` shares its evaluation
    /// with equal filters); the set moves past them.
    pub fn convert(
        &mut self,
        batch: &Batch,
        mode: StateMode,
        filter: &Filter,
        key: &FilterKey,
    ) -> Vec<StateChange> {
        let changes = Changes::of(batch, mode);
        let range = changes.range(batch);
        if range.is_empty() {
            return Vec::new();
        }
        let matched = changes.matched(key, filter);
        let mut out = Vec::new();
        for i in range {
            let e = &changes.entries()[i];
            let offset = e.offset;
            match &e.kind {
                Kind::Reset => {
                    self.clear();
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
