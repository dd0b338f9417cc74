//! What the session needs from a transport: somewhere to send the answers of
//! a request, and a way to open a subscription's own ordered channel. QUIC
//! maps these to the request's bidirectional stream and a server-opened
//! unidirectional stream; a WebSocket door would map both onto its one
//! socket. Keeping the session behind these traits is what lets one
//! implementation of the protocol serve every door.

use std::future::Future;

use crate::proto::Encoded;

/// The peer is gone or the channel was closed; nothing more can be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkClosed;

impl std::fmt::Display for SinkClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the channel to the peer is closed")
    }
}

impl std::error::Error for SinkClosed {}

/// An ordered channel of frames towards the peer. `send` resolves once the
/// frame is accepted by the transport's bounded buffers, so a slow peer
/// slows its sender down instead of growing memory.
pub trait FrameSink: Send + 'static {
    /// Queues one encoded frame; waits while the channel's buffer is full.
    fn send(&mut self, frame: Encoded) -> impl Future<Output = Result<(), SinkClosed>> + Send;
}

/// The channel of one subscription: `Subscribed`, its `Data` frames and its
/// terminal frame, then the end.
pub trait SubscriptionSink: FrameSink {
    /// Ends the channel cleanly after everything sent so far is delivered
    /// (or a transport-specific grace period passes).
    fn finish(self) -> impl Future<Output = ()> + Send;
    /// Ends the channel at once, discarding what is not yet delivered; used
    /// when a frame could only be partly written (a hard shutdown).
    fn abort(self);
    /// Resolves when the peer has said it will read no more of this channel
    /// (QUIC: STOP_SENDING, or the connection is lost), so a subscription
    /// with nothing to send does not outlive its reader. A transport whose
    /// peer ends subscriptions with an explicit `Unsubscribe` never resolves it.
    fn peer_gone(&self) -> impl Future<Output = ()> + Send + 'static;
}

/// One connection's transport, as the session sees it.
pub trait Transport: Send + Sync + 'static {
    /// Where the answers of one request go (the stream it arrived on).
    type Reply: FrameSink + Clone + Sync;
    /// A subscription's own channel.
    type Subscription: SubscriptionSink;
    /// Opens a new channel for a subscription; may wait for the peer's
    /// stream credit.
    fn open_subscription(
        &self,
    ) -> impl Future<Output = Result<Self::Subscription, SinkClosed>> + Send;
}
