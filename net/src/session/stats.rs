//! Per-connection counters, cheap enough to update on every frame. The
//! buffered-bytes gauge is what bounds and demonstrates a connection's
//! memory: bytes of frames the session has encoded that the transport has
//! not yet taken (QUIC's own send buffer is bounded separately by its send
//! window).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::door_metrics::{DoorCounters, Gauge, SubscriptionKind};

/// Counters of one connection, which also feed its door's (see
/// [`ConnStats::for_door`]).
#[derive(Debug, Default)]
pub struct ConnStats {
    /// The door's counters this connection adds to (`None` in unit tests).
    door: Option<Arc<DoorCounters>>,
    buffered: AtomicUsize,
    peak_buffered: AtomicUsize,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    data_frames_out: AtomicU64,
    errors_out: AtomicU64,
}

impl ConnStats {
    /// Counters of one connection of a door whose totals are `door`.
    pub fn for_door(door: Arc<DoorCounters>) -> ConnStats {
        ConnStats {
            door: Some(door),
            ..ConnStats::default()
        }
    }

    /// Counts the connection open until the guard drops.
    pub(crate) fn connection(&self) -> Option<Gauge> {
        self.door.as_ref().map(|d| d.connection())
    }

    /// Counts a subscription open until the guard drops.
    pub(crate) fn subscription(&self, kind: SubscriptionKind) -> Option<Gauge> {
        self.door.as_ref().map(|d| d.subscription(kind))
    }

    /// A request frame with this opcode arrived.
    pub(crate) fn request(&self, opcode: u8) {
        if let Some(d) = &self.door {
            d.request(opcode);
        }
    }

    fn door_buffered(&self, delta: i64) {
        if let Some(d) = &self.door {
            d.buffered(delta);
        }
    }

    /// Bytes of encoded frames waiting for the transport right now.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// The highest value [`ConnStats::buffered_bytes`] reached.
    pub fn peak_buffered_bytes(&self) -> usize {
        self.peak_buffered.load(Ordering::Relaxed)
    }

    /// Frames received from the peer.
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    /// Frames handed to the transport.
    pub fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Relaxed)
    }

    /// `Data` frames handed to the transport.
    pub fn data_frames_out(&self) -> u64 {
        self.data_frames_out.load(Ordering::Relaxed)
    }

    /// `Error` frames sent.
    pub fn errors_out(&self) -> u64 {
        self.errors_out.load(Ordering::Relaxed)
    }

    /// Records that `bytes` of a frame were queued towards the transport.
    pub fn queued(&self, bytes: usize) {
        let now = self.buffered.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak_buffered.fetch_max(now, Ordering::Relaxed);
        self.door_buffered(bytes as i64);
    }

    /// Records that `bytes` of a queued frame were taken by the transport.
    pub fn written(&self, bytes: usize) {
        self.buffered.fetch_sub(bytes, Ordering::Relaxed);
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.door_buffered(-(bytes as i64));
    }

    /// Records that `bytes` of a queued frame were dropped unsent (the
    /// channel closed).
    pub fn discarded(&self, bytes: usize) {
        self.buffered.fetch_sub(bytes, Ordering::Relaxed);
        self.door_buffered(-(bytes as i64));
    }

    pub(crate) fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn data_out(&self) {
        self.data_frames_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error_out(&self, code: u16) {
        self.errors_out.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = &self.door {
            d.error(code);
        }
    }
}
