//! Consistent reads of a stream's state. A [`View`] is a RocksDB snapshot
//! plus the fence it is consistent at: the applied-through marker read from
//! the same snapshot. Because the commit thread writes the marker in the
//! same `WriteBatch` as the group's records and rows, the rows a view sees
//! are exactly the state after every record below the fence and none above.
//! A view is only handed out once the stream's published tail has reached
//! its fence (the group may be written and not yet published for a few
//! microseconds), so a follower can start at the fence right away.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, ReadOptions, SnapshotWithThreadMode, DB};

use super::filter::Filter;
use super::kv::{self, Marker, StateKey, StateRow};
use super::StateMode;
use crate::error::{Error, Result};
use crate::keys::CF_KV;
use crate::shared::Shared;
use crate::stream::StreamState;

/// Most rows a filtered page examines before it returns with a cursor, so
/// a selective filter over a large state cannot hold a request for long.
const MAX_EXAMINED_PER_PAGE: usize = 65_536;

/// A request for one page of a stream's state.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// Only rows matching this filter.
    pub filter: Option<Filter>,
    /// Only rows of this State Protocol `type`.
    pub entity: Option<String>,
    /// Only rows whose key (the State Protocol `key`, or the record key) starts with these bytes.
    pub prefix: Option<Vec<u8>>,
    /// Continue after this cursor (a previous page's `next`).
    pub after: Option<Vec<u8>>,
    /// Most rows to return (at least 1 is used).
    pub limit: usize,
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// Rows in key order.
    pub rows: Vec<StateRow>,
    /// Cursor for the next page, `None` at the end.
    pub next: Option<Vec<u8>>,
    /// The offset the page is consistent at: the state after every record below it.
    pub fence: u64,
}

/// The answer to a get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateGet {
    /// The row, if the key has a value.
    pub row: Option<StateRow>,
    /// The offset the answer is consistent at.
    pub fence: u64,
    /// The stream's tail when the read was made (at least `fence`).
    pub tail: u64,
}

/// A consistent view of one stream's state.
pub(crate) struct View {
    // Declared before `shared` so the snapshot is released while the
    // database it borrows is certainly alive.
    snap: SnapshotWithThreadMode<'static, DB>,
    shared: Arc<Shared>,
    sid: u64,
    fence: u64,
    tail: u64,
    mode: StateMode,
}

impl View {
    /// Opens a view of `stream`'s state as of now.
    pub fn open(shared: &Arc<Shared>, stream: &StreamState) -> Result<View> {
        if stream.live.lock().kv.mode == StateMode::None {
            return Err(Error::NotStateStream);
        }
        loop {
            // SAFETY: the snapshot borrows `shared.db`; the view keeps an Arc
            // of `shared` and drops the snapshot first (field order), so the
            // database outlives the snapshot.
            let snap: SnapshotWithThreadMode<'static, DB> =
                unsafe { std::mem::transmute(shared.db.snapshot()) };
            let marker = match snap.get_cf(shared.cf(CF_KV), kv::marker_key(stream.id))? {
                Some(v) => Marker::decode(&v)?,
                None => return Err(Error::NotStateStream),
            };
            let (tail, deleted) = {
                let l = stream.live.lock();
                (l.next_offset, l.deleted)
            };
            if deleted {
                return Err(Error::NotFound);
            }
            if marker.mode == StateMode::None {
                return Err(Error::NotStateStream);
            }
            if marker.building {
                return Err(Error::StateBuilding {
                    done: marker.applied,
                    total: tail,
                });
            }
            if marker.applied <= tail {
                return Ok(View {
                    snap,
                    shared: Arc::clone(shared),
                    sid: stream.id,
                    fence: marker.applied,
                    tail,
                    mode: marker.mode,
                });
            }
            // Written but not yet published: the commit thread is between
            // its write and taking the stream lock.
            drop(snap);
            std::thread::yield_now();
        }
    }

    /// The offset this view is consistent at.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The stream's mode as the rows were written.
    pub fn mode(&self) -> StateMode {
        self.mode
    }

    /// One row's value.
    pub fn get(&self, key: &StateKey) -> Result<StateGet> {
        let k = kv::row_key(self.sid, &key.encode());
        let row = match self.snap.get_cf(self.shared.cf(CF_KV), k)? {
            Some(v) => {
                let (offset, value) = kv::decode_value(&v)?;
                Some(StateRow {
                    key: key.clone(),
                    value: bytes::Bytes::copy_from_slice(value),
                    offset,
                })
            }
            None => None,
        };
        Ok(StateGet {
            row,
            fence: self.fence,
            tail: self.tail,
        })
    }

    /// One page of rows in key order.
    pub fn scan(&self, req: &ScanRequest) -> Result<ScanPage> {
        let protocol = self.mode == StateMode::StateProtocol;
        let (lo, hi) = kv::rows_range(self.sid);
        let mut lower = lo.to_vec();
        let mut upper = hi.to_vec();
        let mut scope = Vec::new();
        if let (true, Some(entity)) = (protocol, &req.entity) {
            scope = kv::entity_prefix(entity);
        }
        if !protocol {
            if let Some(p) = &req.prefix {
                scope = p.clone();
            }
        }
        if !scope.is_empty() {
            lower = kv::row_key(self.sid, &scope);
            upper = prefix_end(&lower).unwrap_or(upper);
        }
        let start = match &req.after {
            Some(c) => {
                let mut k = kv::row_key(self.sid, c);
                k.push(0); // the smallest key after the cursor
                k.max(lower.clone())
            }
            None => lower.clone(),
        };
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(upper);
        let iter = self.snap.iterator_cf_opt(
            self.shared.cf(CF_KV),
            opts,
            IteratorMode::From(&start, Direction::Forward),
        );
        let limit = req.limit.max(1);
        let mut rows = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let mut more = false;
        for (examined, item) in iter.enumerate() {
            let (k, v) = item?;
            let Some(sk) = kv::state_key_of(self.sid, &k) else {
                break;
            };
            if rows.len() >= limit || examined >= MAX_EXAMINED_PER_PAGE {
                more = true;
                break;
            }
            last = Some(sk.to_vec());
            let key = StateKey::decode(sk, protocol)?;
            if protocol {
                if let Some(p) = &req.prefix {
                    if !key.key_bytes().starts_with(p) {
                        continue;
                    }
                }
            }
            let (offset, value) = kv::decode_value(&v)?;
            if let Some(f) = &req.filter {
                if !matches(f, &key, value) {
                    continue;
                }
            }
            rows.push(StateRow {
                key,
                value: bytes::Bytes::copy_from_slice(value),
                offset,
            });
        }
        Ok(ScanPage {
            rows,
            next: if more { last } else { None },
            fence: self.fence,
        })
    }
}

/// Whether a row passes `filter`; values are parsed only when the filter
/// looks at them, and a value that is not JSON only passes key prefixes.
pub(crate) fn matches(filter: &Filter, key: &StateKey, value: &[u8]) -> bool {
    if !filter.needs_value() {
        return filter.matches(key.key_bytes(), None);
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(value).ok();
    filter.matches(key.key_bytes(), parsed.as_ref())
}

/// The smallest key greater than every key starting with `p`, if any.
fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A snapshot of a stream's whole state, read in pages: the first half of
/// snapshot-then-changes. It holds a RocksDB snapshot (old versions of
/// changed rows are kept until it is dropped), not the rows themselves.
pub struct StateSnapshot {
    view: View,
    filter: Option<Filter>,
    cursor: Option<Vec<u8>>,
    done: bool,
    sent: u64,
}

impl StateSnapshot {
    pub(crate) fn new(view: View, filter: Option<Filter>) -> Self {
        StateSnapshot {
            view,
            filter,
            cursor: None,
            done: false,
            sent: 0,
        }
    }

    /// The offset the snapshot is consistent at: changes follow from here.
    pub fn fence(&self) -> u64 {
        self.view.fence()
    }

    /// The stream's state mode (how to read row keys).
    pub fn mode(&self) -> StateMode {
        self.view.mode()
    }

    /// Rows handed out so far.
    pub fn rows_sent(&self) -> u64 {
        self.sent
    }

    /// The next rows in key order, about `max_bytes` of keys and values
    /// (at least one row when any is left); empty once the snapshot is done.
    pub fn next_rows(&mut self, max_bytes: usize) -> Result<Vec<StateRow>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while !self.done && (bytes < max_bytes || out.is_empty()) {
            let page = self.view.scan(&ScanRequest {
                filter: self.filter.clone(),
                after: self.cursor.clone(),
                limit: 256,
                ..Default::default()
            })?;
            self.cursor = page.next.clone();
            self.done = page.next.is_none();
            for r in page.rows {
                bytes += r.key.key_bytes().len() + r.value.len() + 16;
                out.push(r);
            }
            if out.is_empty() && self.done {
                break;
            }
        }
        self.sent += out.len() as u64;
        Ok(out)
    }

    /// Whether every row has been handed out.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl View {
    /// An iterator over this view's snapshot (for checks that read raw rows).
    pub(crate) fn iter_opt<'a>(
        &'a self,
        cf: &rocksdb::ColumnFamily,
        opts: ReadOptions,
        mode: IteratorMode,
    ) -> rocksdb::DBIteratorWithThreadMode<'a, DB> {
        self.snap.iterator_cf_opt(cf, opts, mode)
    }
}
