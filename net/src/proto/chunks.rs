//! Frames out of the chunks a byte-stream transport hands over (a QUIC
//! stream's `read_chunk`), copying only what has to be joined. A frame that
//! lies whole inside one chunk is a slice of that chunk; a frame that spans
//! chunks is collected into one buffer sized from its length prefix, so it
//! is copied once and, up to 256 KiB, never regrown. Larger frames grow as
//! their bytes arrive, so a hostile prefix that claims the frame limit
//! reserves no more than that before the bytes exist.
//!
//! [`Decoder::decode`](super::Decoder::decode) over a growing `BytesMut`
//! copies every byte and shares its buffer between the frames cut from it,
//! which at fan-out rates cost the load generator a fifth of its CPU in
//! copies and refcount traffic.

use bytes::{Buf, Bytes, BytesMut};

use super::decode::{check_length, parse, DecodeError};
use super::frame::{clamp_max_frame, Frame, PREFIX_LEN};

/// The most a frame's buffer is sized beyond the bytes already received.
const RESERVE_AHEAD: usize = 256 << 10;

/// Incremental decoder for one direction of one stream, fed whole chunks.
#[derive(Debug)]
pub struct ChunkDecoder {
    max_frame: u32,
    failed: Option<DecodeError>,
    /// The unread rest of the last pushed chunk.
    chunk: Bytes,
    /// The start of a frame that straddles chunks.
    partial: BytesMut,
}

impl ChunkDecoder {
    /// A decoder that accepts length prefixes up to `max_frame` (clamped to
    /// the range the protocol allows).
    pub fn new(max_frame: u32) -> Self {
        ChunkDecoder {
            max_frame: clamp_max_frame(max_frame),
            failed: None,
            chunk: Bytes::new(),
            partial: BytesMut::new(),
        }
    }

    /// Hands over the next chunk of the stream. Call [`Self::next_frame`]
    /// until it answers `Ok(None)` first; a chunk pushed earlier is still
    /// decoded in order, at the price of a copy.
    pub fn push(&mut self, chunk: Bytes) {
        if self.chunk.is_empty() {
            self.chunk = chunk;
            return;
        }
        let mut joined = BytesMut::with_capacity(self.chunk.len() + chunk.len());
        joined.extend_from_slice(&self.chunk);
        joined.extend_from_slice(&chunk);
        self.chunk = joined.freeze();
    }

    /// Bytes allocated for the frame being collected (tests bound it).
    #[cfg(test)]
    pub(crate) fn held_capacity(&self) -> usize {
        self.partial.capacity()
    }

    /// Whether no bytes of an incomplete frame are held.
    pub fn is_empty(&self) -> bool {
        self.chunk.is_empty() && self.partial.is_empty()
    }

    /// The error for a stream that ended with the held bytes: a frame cut
    /// short. `None` when nothing is held.
    pub fn truncated(&self) -> Option<DecodeError> {
        if self.is_empty() {
            return None;
        }
        let held = self.partial.len() + self.chunk.len();
        let mut prefix = [0u8; PREFIX_LEN];
        let from_partial = self.partial.len().min(PREFIX_LEN);
        prefix[..from_partial].copy_from_slice(&self.partial[..from_partial]);
        let from_chunk = (PREFIX_LEN - from_partial).min(self.chunk.len());
        prefix[from_partial..from_partial + from_chunk].copy_from_slice(&self.chunk[..from_chunk]);
        let length = (held >= PREFIX_LEN).then(|| u32::from_le_bytes(prefix));
        Some(DecodeError::LengthMismatch {
            length,
            actual: held.saturating_sub(PREFIX_LEN),
        })
    }

    /// The next complete frame, or `Ok(None)` when the held bytes end inside
    /// one. Errors follow [`Decoder::decode`](super::Decoder::decode): a fatal
    /// one (bad length prefix) repeats forever, any other consumed its frame.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.partial.is_empty() {
            return self.cut_from_chunk();
        }
        // Complete the prefix, then the frame, from the chunk.
        if self.partial.len() < PREFIX_LEN {
            self.take_into_partial(PREFIX_LEN - self.partial.len());
            if self.partial.len() < PREFIX_LEN {
                return Ok(None);
            }
        }
        let prefix = prefix_of(&self.partial);
        let total = self.frame_total(prefix)?;
        self.reserve_for(total);
        self.take_into_partial(total - self.partial.len());
        if self.partial.len() < total {
            return Ok(None);
        }
        parse(std::mem::take(&mut self.partial).freeze()).map(Some)
    }

    /// Decodes straight out of the chunk when the frame lies inside it.
    fn cut_from_chunk(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.chunk.len() < PREFIX_LEN {
            let rest = std::mem::take(&mut self.chunk);
            self.partial.extend_from_slice(&rest);
            return Ok(None);
        }
        let total = self.frame_total(prefix_of(&self.chunk))?;
        if self.chunk.len() >= total {
            return parse(self.chunk.split_to(total)).map(Some);
        }
        self.reserve_for(total);
        let rest = std::mem::take(&mut self.chunk);
        self.partial.extend_from_slice(&rest);
        Ok(None)
    }

    /// The whole frame's size from its prefix; a bad prefix is fatal.
    fn frame_total(&mut self, length: u32) -> Result<usize, DecodeError> {
        if let Err(e) = check_length(length, self.max_frame) {
            self.failed = Some(e.clone());
            return Err(e);
        }
        Ok(PREFIX_LEN + length as usize)
    }

    /// Room for the rest of a `total`-byte frame, within [`RESERVE_AHEAD`].
    fn reserve_for(&mut self, total: usize) {
        let missing = total - self.partial.len();
        self.partial.reserve(missing.min(RESERVE_AHEAD));
    }

    fn take_into_partial(&mut self, want: usize) {
        let n = want.min(self.chunk.len());
        self.partial.extend_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
    }
}

/// The length prefix at the front of `bytes` (which holds at least one).
fn prefix_of(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[..PREFIX_LEN].try_into().expect("a 4-byte prefix"))
}
