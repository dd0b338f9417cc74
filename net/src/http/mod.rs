//! The HTTP door: the Durable Streams protocol over hyper 1.x.
//!
//! Streams live at `/v1/stream/{name}` (a name may contain `/`). One file per
//! concept: [`serve`] runs the listener, `router` dispatches a request to
//! `create` (PUT), `append` (POST), `read` (GET catch-up), `long_poll`, `sse`,
//! `head` and `delete`; `offsets`, `json`, `headers`, `cursor` and `cors` hold
//! the wire rules they share; `subscriptions` is the reserved `__ds` API.
//! State streams add `profile` (`_profile`, Prisma Streams' profile
//! document), `state` (`_state`, pages of key-value state) and `snapshot`
//! (a read with `snapshot=true`).
//!
//! Offsets on the wire are the record offset as a 32-digit zero-padded
//! decimal split by `_` after the 16th digit (see `offsets.rs`): fixed width,
//! lexicographically ordered, stable across restarts.

mod append;
mod auth;
mod body;
mod config;
mod cors;
mod create;
mod cursor;
mod delete;
mod errors;
mod filtered;
mod head;
mod headers;
mod health;
mod hibernate;
mod intake;
mod io;
mod json;
mod limit;
mod long_poll;
mod metrics;
mod offsets;
mod ops;
mod output;
mod process;
mod profile;
mod query;
mod read;
mod reply;
mod rfc3339;
mod router;
mod server;
mod snapshot;
mod sse;
mod stall;
mod state;
mod subscriptions;
mod text004;
mod tls;
mod touch;

pub use body::BodyPace;
pub use config::HttpConfig;
pub use hibernate::{quiet_turns, QUIET};
pub use io::{sendfile_bytes, set_congestion};
pub use limit::Slots;
pub use offsets::{format_offset, parse_offset, OffsetParam};
pub use server::{serve, serve_with_ops};
pub use tls::{tls_server_config, TlsServerConfig};
