//! In-memory state of one open stream, shared by the commit thread (the only
//! writer), readers and followers. The mutex is held only for short critical
//! sections: reading the tail, publishing a committed group, registering a
//! follower, so the fence between catch-up and live delivery is exact.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::hub::Subscriber;
use crate::meta::{StreamConfig, StreamInfo, StreamMeta};
use crate::producer::ProducerState;

/// Immutable identity of a stream plus its mutable live part.
pub(crate) struct StreamState {
    pub name: Arc<str>,
    pub id: u64,
    pub config: StreamConfig,
    pub created_at_ms: u64,
    /// Last read or append, for sliding TTLs. Not persisted: on open every
    /// stream counts as accessed at open time, so a restart never shortens a TTL.
    pub last_access_ms: AtomicU64,
    pub live: Mutex<Live>,
}

/// The part of a stream the commit thread changes.
pub(crate) struct Live {
    pub next_offset: u64,
    pub closed: bool,
    pub last_stream_seq: Option<Vec<u8>>,
    pub producers: HashMap<String, ProducerState>,
    pub subscribers: Vec<Arc<Subscriber>>,
    /// Filtered state subscriptions at the tail, one group per distinct
    /// filter, converted once per commit (`state/fanout.rs`).
    pub state_groups: crate::state::Groups,
    pub deleted: bool,
    /// Where a fork's inherited records live (`None` for a plain stream).
    pub fork: Option<Arc<crate::fork::ForkLink>>,
    /// Number of live forks whose link names this stream as their parent.
    pub children: u32,
    /// Deleted while forks still read it: data kept, name reserved, reads refused.
    pub soft_deleted: bool,
    /// The stream's key-value state mode and progress (see `state/`).
    pub kv: crate::state::KvStatus,
    /// The first offset still stored: records below it were dropped by
    /// retention (`retention.rs`).
    pub head: u64,
}

impl StreamState {
    pub fn new(name: &str, meta: StreamMeta, next_offset: u64, now_ms: u64) -> Self {
        StreamState {
            name: Arc::from(name),
            id: meta.id,
            config: meta.config,
            created_at_ms: meta.created_at_ms,
            last_access_ms: AtomicU64::new(now_ms),
            live: Mutex::new(Live {
                next_offset,
                closed: meta.closed,
                last_stream_seq: meta.last_stream_seq,
                producers: HashMap::new(),
                subscribers: Vec::new(),
                state_groups: Default::default(),
                deleted: false,
                fork: None,
                children: 0,
                soft_deleted: false,
                kv: crate::state::KvStatus {
                    mode: meta.state,
                    profile: meta.profile.map(Arc::from),
                    ..Default::default()
                },
                head: 0,
            }),
        }
    }

    /// Whether the stream's TTL or absolute expiry has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        if let Some(at) = self.config.expires_at_ms {
            if now_ms >= at {
                return true;
            }
        }
        if let Some(ttl) = self.config.ttl_secs {
            let last = self.last_access_ms.load(Ordering::Relaxed);
            if now_ms >= last.saturating_add(ttl.saturating_mul(1000)) {
                return true;
            }
        }
        false
    }

    /// Extends a sliding TTL.
    pub fn touch(&self, now_ms: u64) {
        self.last_access_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Metadata to persist given the live part's mutable fields.
    pub fn meta(
        &self,
        closed: bool,
        last_stream_seq: Option<Vec<u8>>,
        kv: &crate::state::KvStatus,
    ) -> StreamMeta {
        StreamMeta {
            id: self.id,
            config: self.config.clone(),
            created_at_ms: self.created_at_ms,
            closed,
            last_stream_seq,
            state: kv.mode,
            profile: kv.profile.as_deref().map(str::to_string),
        }
    }

    /// Public description of the stream as of now.
    pub fn info(&self) -> StreamInfo {
        let live = self.live.lock();
        StreamInfo {
            name: self.name.to_string(),
            id: self.id,
            config: self.config.clone(),
            created_at_ms: self.created_at_ms,
            next_offset: live.next_offset,
            closed: live.closed,
            last_stream_seq: live.last_stream_seq.clone(),
            state: live.kv.status(),
        }
    }
}
