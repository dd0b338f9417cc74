//! QUIC transport parameters, chosen for a server that fans committed
//! batches out to many subscribers and must keep each connection's memory
//! bounded whatever its peer does. The defaults were compared against their
//! alternatives with `bench/compare/quic_settings` (figures in
//! `bench/RESULTS.md`, "QUIC transport settings"): GSO is worth 40 % of
//! fan-out throughput, CUBIC beats BBR by 15–22 %, and the windows change
//! nothing measurable within the memory bound they exist for.

use std::sync::Arc;
use std::time::Duration;

use quinn::{congestion, IdleTimeout, TransportConfig, VarInt};

/// Congestion controller of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Congestion {
    /// CUBIC (RFC 9438): quinn's default and the best-tested controller; it
    /// shares a path fairly with TCP traffic.
    #[default]
    Cubic,
    /// NewReno (RFC 9002): the conservative reference controller.
    #[serde(rename = "newreno")]
    NewReno,
    /// BBR (quinn's implementation is marked experimental): higher
    /// throughput on lossy long-distance paths, less fair to others.
    Bbr,
}

/// The transport parameters of the QUIC door and client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSettings {
    /// Concurrent client-opened bidirectional (request) streams per
    /// connection. Every request lives on such a stream, so this bounds the
    /// request state a client can make the server hold. quinn allocates the
    /// state of every one of them when a connection opens (about 85 bytes
    /// each): 64 cost an idle connection 5 KiB, 256 cost it 22 KiB.
    pub max_request_streams: u32,
    /// Concurrent server-opened unidirectional (subscription) streams a
    /// client accepts. Used by the client; the server never lets clients
    /// open unidirectional streams.
    pub max_subscription_streams: u32,
    /// Bytes a peer may send on one stream ahead of the reader. 1 MiB keeps
    /// a 10 ms loopback/LAN round trip at ~800 Mbit/s per stream while
    /// holding little per stream.
    pub stream_receive_window: u32,
    /// Bytes a peer may send on the whole connection ahead of the reader:
    /// the bound on what a client can make the server buffer.
    pub receive_window: u32,
    /// Bytes the sender keeps unacknowledged or unsent per connection: the
    /// bound on what quinn buffers for a slow client (the fan-out side's
    /// memory bound; subscription writers wait beyond it).
    pub send_window: u64,
    /// Close a connection the peer has not acknowledged for this long (dead
    /// peers). The session's own idle timeout handles live but quiet ones.
    pub max_idle_timeout: Duration,
    /// Keep-alive interval (client side), well below the idle timeout so
    /// a quiet subscription is not mistaken for a dead peer.
    pub keep_alive: Option<Duration>,
    /// Congestion controller.
    pub congestion: Congestion,
    /// Hand the kernel several packets per system call (UDP GSO) where the
    /// platform supports it.
    pub segmentation_offload: bool,
    /// Interleave the streams that have data to send frame by frame
    /// (quinn's send fairness) instead of sending each stream's queued data
    /// before the next one's. Off by default: on fan-out, fairness cuts
    /// every subscriber's batch into pieces spread over many packets, which
    /// the receiver must reassemble, and cost 25–30 % of delivered
    /// records/s (`bench/RESULTS.md`, QUIC transport settings). The price
    /// of leaving it off: a large `Read` answer queued on a connection goes
    /// out whole before a subscription frame queued after it on the same
    /// connection (its size is bounded by the read's byte budget).
    pub send_fairness: bool,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            max_request_streams: 64,
            max_subscription_streams: 1024,
            stream_receive_window: 1 << 20,
            receive_window: 16 << 20,
            send_window: 8 << 20,
            max_idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(10)),
            congestion: Congestion::Cubic,
            segmentation_offload: true,
            send_fairness: false,
        }
    }
}

impl TransportSettings {
    fn base(&self) -> TransportConfig {
        let mut t = TransportConfig::default();
        t.stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(self.receive_window))
            .send_window(self.send_window)
            .send_fairness(self.send_fairness)
            .max_idle_timeout(IdleTimeout::try_from(self.max_idle_timeout).ok())
            // The protocol has no use for datagrams; do not buffer any.
            .datagram_receive_buffer_size(None)
            .enable_segmentation_offload(self.segmentation_offload);
        let factory: Arc<dyn congestion::ControllerFactory + Send + Sync> = match self.congestion {
            Congestion::Cubic => Arc::new(congestion::CubicConfig::default()),
            Congestion::NewReno => Arc::new(congestion::NewRenoConfig::default()),
            Congestion::Bbr => Arc::new(congestion::BbrConfig::default()),
        };
        t.congestion_controller_factory(factory);
        t
    }

    /// Server side: clients open request streams only.
    pub(crate) fn server(&self) -> TransportConfig {
        let mut t = self.base();
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.max_request_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            // The server answers; keep-alives are the client's business.
            .keep_alive_interval(None);
        t
    }

    /// Client side: the server opens subscription streams only.
    pub(crate) fn client(&self) -> TransportConfig {
        let mut t = self.base();
        t.max_concurrent_bidi_streams(VarInt::from_u32(0))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_subscription_streams))
            .keep_alive_interval(self.keep_alive);
        t
    }
}
