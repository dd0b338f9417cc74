//! Live-query templates: client-declared shapes of fine live queries (an
//! entity and one to three equality fields with encodings), stored per
//! stream in the `templates` column family. Activation is idempotent and
//! rate limited, caps evict the least recently seen, fine waits heartbeat
//! them and an inactivity GC retires the unused (touches.md §2).
//!
//! - `row.rs`: the stored row and its strict check;
//! - `decl.rs`: declarations from JSON (route checks, canonical form);
//! - `bucket.rs`: the activation token bucket;
//! - `registry.rs`: one stream's templates: activate, heartbeat, GC;
//! - `time.rs`: ISO-8601 timestamps of lifecycle events.

pub mod bucket;
pub mod decl;
pub mod registry;
pub mod row;
pub mod time;
