//! # weir-net
//!
//! Weir's network doors over the storage engine: the HTTP Durable Streams
//! API ([`http`]). The binary protocol over QUIC and WebSocket arrives with
//! later work.

pub mod http;
/// Weir's binary protocol as a sans-IO codec: frames, messages and their encoding.
pub mod proto;
/// The transport-independent server side of a binary-protocol connection.
pub mod session;
/// The QUIC door: the binary protocol over quinn.
pub mod quic;
/// A Rust client of the binary protocol over QUIC.
pub mod client;
