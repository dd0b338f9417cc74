//! # weir-load
//!
//! Weir's load generator as a library (the `weir-load` binary is a thin CLI
//! over it, and integration tests call it directly). It drives a server over
//! a [`transport::Transport`] (HTTP Durable Streams, or Weir's binary
//! protocol over QUIC or WebSocket), runs producers and
//! subscribers on streams it creates under `weir-load/<run-id>/`, and
//! reports throughput, append-ack and end-to-end latency percentiles, and a
//! per-offset loss, duplicate and mismatch check.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use weir_load::{run, LoadConfig, Target};
//! let outcome = run(LoadConfig::new(Target::parse("http://127.0.0.1:4437")?)).await?;
//! println!("{}", outcome.report.summary());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod catchup;
pub mod cli;
pub mod config;
pub mod idle;
pub mod ledger;
pub mod plot;
pub mod procstat;
pub mod producer;
pub mod progress;
pub mod record;
pub mod report;
pub mod runner;
pub mod runs;
pub mod state;
pub mod stats;
pub mod subscriber;
pub mod target;
pub mod touch;
pub mod transport;

pub use config::{CheckBy, LiveMode, LoadConfig, StartFrom};
pub use report::{Latency, Report};
pub use runner::{run, Outcome};
pub use target::{Scheme, Target};
