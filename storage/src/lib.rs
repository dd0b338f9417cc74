//! # weir-storage
//!
//! Weir's embeddable engine: named, durable streams of key-value records on
//! RocksDB. Appends go through one commit thread that groups concurrent
//! requests into one `WriteBatch` and one fsync; reads slice stored batches
//! without re-encoding; followers get every record after a fence offset
//! exactly once, first from storage and then live. Large committed batches
//! are also copied into a bounded file cache, so that a network layer can
//! send them with `sendfile` (see [`file_region`]). No sockets here: the
//! network doors live in `weir-net`.
//!
//! ```
//! use futures::StreamExt;
//! use weir_storage::{AppendRequest, Engine, EngineConfig, FollowFrom, Record, StreamConfig};
//!
//! # fn main() -> Result<(), weir_storage::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open(dir.path(), EngineConfig::default())?;
//! engine.create_stream("orders", StreamConfig::new("application/json"))?;
//!
//! let res = engine.append("orders", AppendRequest {
//!     records: vec![Record::keyed("order-1", r#"{"total":3}"#), Record::new(r#"{"total":5}"#)],
//!     ..Default::default()
//! })?;
//! assert_eq!((res.first_offset, res.next_offset), (0, 2));
//!
//! let read = engine.read("orders", 1, 1 << 20)?;
//! assert_eq!(read.batches[0].get(0).unwrap().payload, br#"{"total":5}"#);
//!
//! // Follow from the start: the two stored records, then live appends.
//! let mut follower = engine.follow("orders", FollowFrom::Start)?;
//! engine.append("orders", AppendRequest { records: vec![Record::new("{}")], ..Default::default() })?;
//! futures::executor::block_on(async {
//!     let mut seen = 0;
//!     while seen < 3 {
//!         seen += follower.next().await.unwrap()?.len();
//!     }
//!     Ok::<_, weir_storage::Error>(())
//! })?;
//! # Ok(()) }
//! ```

mod batch;
mod clock;
mod codec;
mod commit;
mod config;
mod engine;
mod error;
mod file_cache;
mod follow;
mod fork;
mod hub;
mod keys;
mod meta;
mod producer;
mod read;
mod read_pool;
mod reclaim;
mod record;
mod retention;
mod rules;
mod shared;
mod state;
mod stats;
mod stream;
pub mod templates;
pub mod touch;
mod write_health;

pub use batch::Batch;
pub use clock::now_ms;
pub use commit::{AppendRequest, AppendResult, CreateOutcome, Pending};
pub use config::{Durability, EngineConfig, MAX_NAME_LEN, MAX_STREAM_SEQ_LEN};
pub use engine::Engine;
pub use error::{Error, Result};
pub use file_cache::{file_region, FileRegion};
pub use follow::{FollowFrom, Follower};
pub use fork::{ForkRequest, SubOffset, MAX_FORK_DEPTH};
pub use keys::ALL_CFS;
pub use meta::{media_type, StreamConfig, StreamInfo};
pub use producer::ProducerTag;
pub use read::ReadResult;
pub use record::{Record, RecordRef};
pub use rules::{check_json, is_json, MAX_JSON_DEPTH};
pub use shared::{CommitHook, Committed};
pub use state::{
    changes_of, ChangeList, Filter, ScanPage, ScanRequest, StateChange, StateEvent, StateGet,
    StateKey, StateMode, StateRow, StateSnapshot, StateStatus, StateSubscription, SubscribeState,
    VerifyReport, MAX_TRACKED_MEMBERS,
};
pub use stats::{EngineStats, HistogramSnapshot};
pub use touch::{
    ActivatedTemplate, Activation, TouchMode, WaitOutcome, WaitRequest, WaitStatus,
    LIVE_METRICS_STREAM,
};
pub use write_health::WriteFault;
