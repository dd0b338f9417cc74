//! # weir-net
//!
//! Weir's network doors over the storage engine: the HTTP Durable Streams
//! API ([`http`]), and Weir's binary protocol ([`proto`], served by
//! [`session`]) over QUIC ([`quic`]) and WebSocket ([`ws`], on the HTTP port).

pub mod auth;
/// A Rust client of the binary protocol over QUIC.
pub mod client;
pub mod door_metrics;
pub mod http;
/// Weir's binary protocol as a sans-IO codec: frames, messages and their encoding.
pub mod proto;
/// The QUIC door: the binary protocol over quinn.
pub mod quic;
/// The transport-independent server side of a binary-protocol connection.
pub mod session;
/// The WebSocket door: the binary protocol (and its JSON form) on the HTTP port.
pub mod ws;
