//! The offline check behind `weir verify`: for every state stream, recompute
//! its state from its log, in memory, and compare it row by row with the
//! `kv` column family as of one view. Meant for a stopped server (an open
//! engine on the data directory); on a live one it is still exact, because
//! the log is replayed only up to the view's fence.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{IteratorMode, ReadOptions};

use super::kv::{self, StateKey};
use super::ops::{self, Op};
use super::view::View;
use crate::error::Result;
use crate::keys::CF_KV;
use crate::shared::Shared;
use crate::stream::StreamState;

/// Most differences reported per stream; the count is always exact.
const MAX_REPORTED: usize = 20;

/// What `verify` found for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The stream's name.
    pub stream: String,
    /// The fence the comparison was made at.
    pub fence: u64,
    /// Rows in the stored state.
    pub rows: u64,
    /// Number of rows that disagree (missing, extra, or different).
    pub differences: u64,
    /// Descriptions of the first differences.
    pub details: Vec<String>,
    /// Set instead of a comparison when the state could not be checked
    /// (still being built, for example).
    pub skipped: Option<String>,
}

/// Checks one stream's state against its log.
pub(crate) fn verify_stream(shared: &Arc<Shared>, stream: &StreamState) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        stream: stream.name.to_string(),
        fence: 0,
        rows: 0,
        differences: 0,
        details: Vec::new(),
        skipped: None,
    };
    let view = match View::open(shared, stream) {
        Ok(v) => v,
        Err(e @ crate::Error::StateBuilding { .. }) => {
            report.skipped = Some(e.to_string());
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    report.fence = view.fence();
    let expected = replay(shared, stream, &view)?;
    let stored = stored_rows(shared, stream.id, &view)?;
    report.rows = stored.len() as u64;
    let protocol = view.mode() == super::StateMode::StateProtocol;
    let show = |k: &[u8]| match StateKey::decode(k, protocol) {
        Ok(StateKey::Entity { entity, key }) => format!("({entity:?}, {key:?})"),
        _ => format!("{:?}", String::from_utf8_lossy(k)),
    };
    let note = |report: &mut VerifyReport, text: String| {
        report.differences += 1;
        if report.details.len() < MAX_REPORTED {
            report.details.push(text);
        }
    };
    for (k, (off, val)) in &expected {
        match stored.get(k) {
            None => note(
                &mut report,
                format!("{} missing (written at offset {off})", show(k)),
            ),
            Some((soff, sval)) if soff != off || sval != val => note(
                &mut report,
                format!(
                    "{}: stored offset {soff} value {} bytes, log says offset {off} value {} bytes",
                    show(k),
                    sval.len(),
                    val.len()
                ),
            ),
            Some(_) => {}
        }
    }
    for (k, (soff, _)) in &stored {
        if !expected.contains_key(k) {
            note(
                &mut report,
                format!("{} stored (offset {soff}) but absent from the log", show(k)),
            );
        }
    }
    Ok(report)
}

type Rows = BTreeMap<Vec<u8>, (u64, Bytes)>;

fn replay(shared: &Shared, stream: &StreamState, view: &View) -> Result<Rows> {
    let mut rows = Rows::new();
    let mut at = 0u64;
    while at < view.fence() {
        let batches = crate::fork::read_stream(shared, stream, at, view.fence(), 4 << 20)?;
        if batches.is_empty() {
            break;
        }
        for b in batches {
            let base = b.first_offset();
            let derived = ops::derive_lenient(
                view.mode(),
                b.iter().map(|r| (r.key, r.payload, r.tombstone)),
            );
            for op in derived {
                match op {
                    Op::Put { at, key, value } => {
                        rows.insert(key, (base + at, value));
                    }
                    Op::Delete { key, .. } => {
                        rows.remove(&key);
                    }
                    Op::Reset { .. } => rows.clear(),
                }
            }
            at = b.next_offset();
        }
    }
    Ok(rows)
}

fn stored_rows(shared: &Shared, sid: u64, view: &View) -> Result<Rows> {
    let (lo, hi) = kv::rows_range(sid);
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(hi.to_vec());
    let mut rows = Rows::new();
    for item in view.iter_opt(
        shared.cf(CF_KV),
        opts,
        IteratorMode::From(&lo, rocksdb::Direction::Forward),
    ) {
        let (k, v) = item?;
        let Some(sk) = kv::state_key_of(sid, &k) else {
            break;
        };
        let (off, val) = kv::decode_value(&v)?;
        rows.insert(sk.to_vec(), (off, Bytes::copy_from_slice(val)));
    }
    Ok(rows)
}
