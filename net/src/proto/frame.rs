//! The frame: the unit every transport carries. A fixed little-endian header
//! (length prefix, version, opcode, request id) followed by an opcode-specific
//! body. The length prefix comes first so a reader can tell where a frame ends
//! without understanding it, and the request id lets responses of pipelined
//! requests interleave and complete out of order.
//!
//! ```text
//! u32 length       bytes after this field: 6 + body length
//! u8  version      protocol version the frame is encoded in
//! u8  opcode       what the body holds (see `Opcode`)
//! u32 request_id   chosen by the client; 0 = the connection itself
//! ..  body
//! ```

use super::message::Message;

/// The base protocol version: `Hello`, `Welcome` and `Error` are always
/// framed in it, and encoders use it until a newer one is negotiated.
pub const VERSION: u8 = 1;

/// The version that adds state requests (`Get`, `Scan`, `SubscribeState`).
pub const STATE_VERSION: u8 = 2;

/// Oldest protocol version this codec accepts (versions are negotiated in `Hello`).
pub const MIN_VERSION: u8 = 1;

/// Newest protocol version this codec accepts.
pub const MAX_VERSION: u8 = 2;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Bytes of the whole fixed header, length prefix included.
pub const HEADER_LEN: usize = PREFIX_LEN + 1 + 1 + 4;

/// Smallest value of the length prefix: version, opcode and request id.
pub const MIN_LENGTH: u32 = (HEADER_LEN - PREFIX_LEN) as u32;

/// Frame limit (largest length prefix) a peer gets unless it announces another.
pub const DEFAULT_MAX_FRAME: u32 = 16 << 20;

/// Smallest frame limit a peer may announce, so every control message fits.
pub const MIN_MAX_FRAME: u32 = 64 << 10;

/// Largest frame limit a peer may announce; keeps lengths far from `u32::MAX`.
pub const MAX_MAX_FRAME: u32 = 1 << 30;

/// Request id reserved for frames about the connection rather than a request.
pub const CONNECTION_ID: u32 = 0;

/// One decoded (or to-be-encoded) frame: the request it belongs to and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The version byte the frame was decoded from ([`VERSION`] for frames
    /// built here); an [`crate::proto::Encoder`] writes its own version.
    pub version: u8,
    /// The request this frame starts, answers or continues.
    pub request_id: u32,
    /// What the frame says.
    pub message: Message,
}

impl Frame {
    /// A frame of `message` for request `request_id`.
    pub fn new(request_id: u32, message: Message) -> Self {
        Frame {
            version: VERSION,
            request_id,
            message,
        }
    }

    /// The same frame marked as being of `version`.
    pub fn with_version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }
}

/// Clamps an announced frame limit into `[MIN_MAX_FRAME, MAX_MAX_FRAME]`.
pub fn clamp_max_frame(max_frame: u32) -> u32 {
    max_frame.clamp(MIN_MAX_FRAME, MAX_MAX_FRAME)
}
