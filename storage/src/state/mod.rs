//! Key-value state of state streams: per stream, the current value of every
//! state key and the offset that wrote it, kept in the `kv` column family in
//! the same `WriteBatch` as the log records that change it, so state and log
//! never disagree (see ARCHITECTURE.md, "State streams").
//!
//! The commit thread touches this module through three calls: [`stage`]
//! writes an append's changes, [`stage_chunk`] writes a chunk of a
//! background build, [`finish`] writes the stream's applied-through marker
//! once per commit group. The changes themselves ([`ops::Ops`]) are derived
//! and validated on the caller's thread, so the commit thread only copies
//! bytes into the batch.
//!
//! - `mode.rs`: the modes and the per-stream status the commit thread stages;
//! - `ops.rs`: records to key-value changes (State Protocol or keyed);
//! - `protocol.rs`: State Protocol message validation;
//! - `kv.rs`: key and value layouts of the `kv` column family;
//! - `view.rs`: consistent reads at one fence (get, scan, snapshots);
//! - `filter.rs`: the filter language of scans and subscriptions;
//! - `changes.rs`: a batch's changes, derived once for all subscriptions;
//! - `members.rs`: the rows a filtered reader holds, and its membership changes;
//! - `fanout.rs`: caught-up filtered subscriptions, converted once per filter;
//! - `list.rs`: a delivered list of changes, shared, with a memo for doors;
//! - `build.rs`: building the state of a stream with history;
//! - `subscribe.rs`: snapshot-then-changes subscriptions;
//! - `verify.rs`: the offline check of state against log.

mod api;
mod build;
mod changes;
mod fanout;
pub(crate) mod filter;
pub(crate) mod kv;
mod list;
mod members;
mod mode;
pub(crate) mod ops;
pub(crate) mod protocol;
mod subscribe;
mod verify;
mod view;

pub use filter::Filter;
pub use kv::{StateKey, StateRow};
pub use list::ChangeList;
pub use members::MAX_TRACKED_MEMBERS;
pub use mode::{StateMode, StateStatus};
pub use subscribe::{changes_of, StateChange, StateEvent, StateSubscription, SubscribeState};
pub use verify::VerifyReport;
pub use view::{ScanPage, ScanRequest, StateGet, StateSnapshot};

pub(crate) use build::{join_all as join_builders, spawn_builder, Chunk, ChunkOutcome};
pub(crate) use fanout::Groups;
pub(crate) use mode::KvStatus;

use rocksdb::WriteBatch;

use crate::keys::CF_KV;
use crate::record::Record;
use crate::shared::Shared;

/// Writes the state changes of one staged append whose first record gets
/// offset `first`. `ops` were derived on the caller's thread for the mode
/// it saw; if the mode changed since, they are derived again here, leniently
/// (a record that is not a valid change leaves the state alone, as in a
/// build from history). While the state is being built nothing is written:
/// the builder will reach these records in the log.
pub(crate) fn stage(
    shared: &Shared,
    wb: &mut WriteBatch,
    kv: &KvStatus,
    sid: u64,
    first: u64,
    records: &[Record],
    ops: Option<&ops::Ops>,
) {
    if kv.mode == StateMode::None || kv.building {
        return;
    }
    let cf = shared.cf(CF_KV);
    match ops {
        Some(o) if o.mode == kv.mode => kv::write_ops(wb, cf, sid, first, &o.ops),
        _ => {
            let derived = ops::derive_lenient(
                kv.mode,
                records
                    .iter()
                    .map(|r| (r.key.as_deref(), &r.payload[..], r.tombstone)),
            );
            kv::write_ops(wb, cf, sid, first, &derived);
        }
    }
}

/// Writes one chunk of a background build covering records `[from, to)`.
/// A stale chunk (the mode changed, or another chunk already covered it)
/// writes nothing.
pub(crate) fn stage_chunk(
    shared: &Shared,
    wb: &mut WriteBatch,
    kv: &mut KvStatus,
    sid: u64,
    chunk: &build::Chunk,
    staged_tail: u64,
) -> ChunkOutcome {
    if !kv.building || kv.generation != chunk.generation || kv.applied != chunk.from {
        return ChunkOutcome::Stale;
    }
    kv::write_ops(wb, shared.cf(CF_KV), sid, 0, &chunk.ops);
    kv.applied = chunk.to;
    if chunk.to >= staged_tail {
        kv.building = false;
        ChunkOutcome::Done
    } else {
        ChunkOutcome::More
    }
}

/// Writes the applied-through marker of a state stream at the end of a
/// commit group: every snapshot that sees this group's records sees the
/// marker too, which is what makes a snapshot's fence exact.
pub(crate) fn finish(shared: &Shared, wb: &mut WriteBatch, kv: &mut KvStatus, sid: u64, tail: u64) {
    if kv.mode == StateMode::None {
        return;
    }
    if !kv.building {
        kv.applied = tail;
    }
    wb.put_cf(shared.cf(CF_KV), kv::marker_key(sid), kv.marker().encode());
}

/// Refuses a mode a stream of `content_type` cannot have.
pub(crate) fn check_mode(content_type: &str, mode: StateMode) -> crate::error::Result<()> {
    if mode == StateMode::StateProtocol && !crate::rules::is_json(content_type) {
        return Err(crate::error::Error::Invalid(
            "state-protocol profile requires application/json stream content-type".into(),
        ));
    }
    Ok(())
}

/// Writes the initial state of a stream created with `records` in `mode`
/// and returns its status.
pub(crate) fn stage_create(
    shared: &Shared,
    wb: &mut WriteBatch,
    sid: u64,
    mode: StateMode,
    records: &[Record],
) -> KvStatus {
    let mut kv = KvStatus {
        mode,
        ..Default::default()
    };
    if mode != StateMode::None {
        stage(shared, wb, &kv, sid, 0, records, None);
        finish(shared, wb, &mut kv, sid, records.len() as u64);
    }
    kv
}

/// Writes the switch of a stream with `tail` records from `old` to `mode`:
/// the old rows and marker go, and a stream with history is marked as
/// building (the caller starts the builder once this is written).
pub(crate) fn stage_mode_change(
    shared: &Shared,
    wb: &mut WriteBatch,
    sid: u64,
    old: &KvStatus,
    mode: StateMode,
    tail: u64,
) -> KvStatus {
    let cf = shared.cf(CF_KV);
    let (lo, hi) = kv::rows_range(sid);
    wb.delete_range_cf(cf, lo, hi);
    wb.delete_cf(cf, kv::marker_key(sid));
    let mut kv = KvStatus {
        mode,
        generation: old.generation + 1,
        building: mode != StateMode::None && tail > 0,
        applied: 0,
        profile: old.profile.clone(),
    };
    finish(shared, wb, &mut kv, sid, tail);
    kv
}

/// Loads each state stream's marker into its live status on open.
pub(crate) fn recover(
    db: &rocksdb::DB,
    by_id: &std::collections::HashMap<u64, std::sync::Arc<crate::stream::StreamState>>,
) -> crate::error::Result<()> {
    let cf = db.cf_handle(CF_KV).expect("created at open");
    for s in by_id.values() {
        let mut live = s.live.lock();
        if live.kv.mode == StateMode::None {
            continue;
        }
        match db.get_cf(&cf, kv::marker_key(s.id))? {
            Some(v) => {
                let m = kv::Marker::decode(&v)?;
                live.kv.applied = m.applied;
                live.kv.building = m.building;
                live.kv.generation = m.generation;
            }
            // A mode without a marker cannot be written; rebuild rather than trust it.
            None => {
                live.kv.applied = 0;
                live.kv.building = true;
            }
        }
    }
    Ok(())
}
