//! The WebSocket door: Weir's binary protocol (PROTOCOL.md) on the HTTP
//! port at [`PATH`], upgraded from the HTTP/1.1 server.
//!
//! Each binary message carries exactly one protocol frame; each text message
//! carries the JSON form of one message (PROTOCOL.md, "WebSocket") for
//! hand-written browser clients. A connection speaks the kind of its first
//! message, and the server answers in that kind. Everything the protocol
//! does is the transport-independent [`crate::session`], the same as QUIC;
//! this module maps it onto one socket:
//!
//! - `handshake` checks the upgrade request and answers `101`,
//! - `conn` runs a connection: reading, heartbeats, timeouts and the close,
//! - `sink` is the one writer task of a connection and the bounded queue
//!   every request and subscription of the connection sends through,
//! - `json` translates between frames and their JSON form.
//!
//! Subscriptions are multiplexed on the socket: their `Data` frames carry
//! the `Subscribe`'s request id. A subscriber that stops reading fills its
//! connection's send budget ([`WsConfig::send_buffer_bytes`]); its
//! subscription tasks then wait, the engine drops their followers from the
//! live set when their queues overflow, and they resume from storage once
//! the peer reads again. Other connections never wait for it, and the
//! server's memory for it stays bounded.

#![warn(missing_docs)]

mod budget;
mod conn;
mod handshake;
mod json;
mod json_offsets;
mod json_state;
mod json_touch;
mod queue;
mod sink;

use std::time::Duration;

use crate::proto::{MIN_MAX_FRAME, PREFIX_LEN};
use crate::session::SessionConfig;

pub use budget::OutputBudget;
pub use handshake::{accept, Refused};

/// The URL path of the WebSocket door on the HTTP port.
pub const PATH: &str = "/v1/ws";

/// WebSocket close codes the server sends (RFC 6455 section 7.4.1).
pub mod codes {
    /// The connection ended normally: the client closed it, or it was idle
    /// for the session's idle timeout with nothing in flight.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down; subscriptions ended with
    /// `Resume(ShuttingDown)` first.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol: a binary message that is not exactly one
    /// frame, a handshake violation, an unsupported version, text that is
    /// not JSON. The last message before the close is an `Error` saying why.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A binary message on a JSON connection or a text message on a binary
    /// one.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text message that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// The peer answered no ping for the idle timeout (it is gone or does
    /// not read); usually unseen, since such a peer cannot read the close.
    pub const POLICY: u16 = 1008;
    /// A message larger than the maximum message size, or a frame whose
    /// length prefix exceeds the frame limit. An `Error` `FrameTooLarge`
    /// precedes the close.
    pub const TOO_BIG: u16 = 1009;
    /// The server failed while handling a message (a bug, contained to this
    /// connection); the connection cannot continue.
    pub const INTERNAL: u16 = 1011;
}

/// Tunables of the WebSocket door, carried in
/// [`HttpConfig`](crate::http::HttpConfig); `Default` gives production
/// values.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// How often the server pings a connection. Pings keep proxies from
    /// closing quiet connections and make the peer prove it still reads.
    pub ping_interval: Duration,
    /// A connection whose peer sent nothing (no message, no pong) for this
    /// long is closed: it is gone, or it stopped reading. Keep it a few
    /// ping intervals long.
    pub idle_timeout: Duration,
    /// Largest WebSocket message accepted; a larger one is refused from its
    /// header, before its payload is buffered, and closes the connection
    /// with 1009. The protocol frame limit announced in `Welcome` is the
    /// smaller of this minus the 4-byte length prefix and
    /// `session.max_frame`. At least 64 KiB + 4 (the protocol's minimum).
    pub max_message_bytes: usize,
    /// Bytes of outgoing messages one connection may have queued before its
    /// requests and subscriptions wait (the per-connection send buffer; the
    /// socket writer adds at most one message and a 128 KiB write buffer).
    pub send_buffer_bytes: usize,
    /// Most WebSocket connections open at once; one more upgrade request
    /// is answered `503`.
    pub max_connections: usize,
    /// The server-wide budget of queued outgoing messages, shared by every
    /// connection of the servers given this configuration (clones share
    /// it); past it the connection with the largest backlog is closed with
    /// 1008. Its counters are the door's buffered-output metric. Default
    /// 256 MiB.
    pub output_budget: std::sync::Arc<OutputBudget>,
    /// Protocol limits of every connection (frame limit, requests and
    /// subscriptions in flight, read budget, session idle timeout).
    pub session: SessionConfig,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            max_message_bytes: crate::proto::DEFAULT_MAX_FRAME as usize + PREFIX_LEN,
            send_buffer_bytes: 4 << 20,
            max_connections: 4096,
            output_budget: OutputBudget::new(256 << 20),
            session: SessionConfig::default(),
        }
    }
}

impl WsConfig {
    /// The largest message accepted, raised to the protocol's minimum so
    /// that every control message fits.
    fn max_message(&self) -> usize {
        self.max_message_bytes
            .max(MIN_MAX_FRAME as usize + PREFIX_LEN)
    }

    /// The session limits with the frame limit lowered to fit in one message.
    fn session_config(&self) -> SessionConfig {
        let fits = (self.max_message() - PREFIX_LEN).min(u32::MAX as usize) as u32;
        let mut s = self.session.clone();
        s.max_frame = s.max_frame.min(fits);
        s
    }

    /// Never zero, so timers cannot spin.
    fn ping_every(&self) -> Duration {
        self.ping_interval.max(Duration::from_millis(10))
    }
}
