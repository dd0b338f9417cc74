//! The encoder: a frame becomes a small owned head (header and body) and a
//! shared tail (a stored record batch, or nothing). A transport writes both
//! with one vectored write, so a batch fanned out to many subscribers costs
//! each of them a fresh 26-byte head and a reference count, never a copy.

use bytes::buf::Chain;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::control::{ControlError, MAX_CONTROL_LEN};
use super::frame::{clamp_max_frame, Frame, DEFAULT_MAX_FRAME, PREFIX_LEN, VERSION};
use super::opcode::Opcode;

/// Encodes frames for a peer that accepts frames up to a given limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    max_frame: u32,
    version: u8,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new(DEFAULT_MAX_FRAME)
    }
}

impl Encoder {
    /// An encoder for a peer whose frame limit (largest length prefix) is
    /// `max_frame`, clamped to the range the protocol allows.
    pub fn new(max_frame: u32) -> Self {
        Encoder {
            max_frame: clamp_max_frame(max_frame),
            version: VERSION,
        }
    }

    /// The same encoder for the negotiated protocol `version`.
    pub fn with_version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// The protocol version this encoder writes.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The peer's frame limit this encoder enforces.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Encodes `frame`, or says why it cannot be sent to this peer.
    pub fn encode(&self, frame: &Frame) -> Result<Encoded, EncodeError> {
        let op = frame.message.opcode();
        if op.since() > self.version {
            return Err(EncodeError::NotInVersion {
                opcode: op as u8,
                version: self.version,
            });
        }
        // Any two peers must be able to negotiate, or learn why they cannot.
        let version = match op {
            Opcode::Hello | Opcode::Welcome | Opcode::Error => VERSION,
            _ => self.version,
        };
        let mut head = BytesMut::with_capacity(64);
        head.put_u32_le(0); // length, patched below
        head.put_u8(version);
        head.put_u8(op as u8);
        head.put_u32_le(frame.request_id);
        let tail = frame
            .message
            .write_body(&mut head, self.max_frame, version)?;
        let length = head.len() - PREFIX_LEN + tail.len();
        if length > self.max_frame as usize {
            return Err(EncodeError::FrameTooLarge {
                length,
                max_frame: self.max_frame,
            });
        }
        head[..PREFIX_LEN].copy_from_slice(&(length as u32).to_le_bytes());
        Ok(Encoded {
            head: head.freeze(),
            tail,
        })
    }
}

/// One encoded frame: `head` then `tail` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    head: Bytes,
    tail: Bytes,
}

impl Encoded {
    /// A frame already encoded whole (a copy of a shared encoding with its
    /// own request id).
    pub(crate) fn whole(frame: Bytes) -> Encoded {
        Encoded {
            head: frame,
            tail: Bytes::new(),
        }
    }

    /// Header and body bytes owned by this frame.
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// Bytes that follow the head, shared with a stored batch (empty for
    /// frames without one).
    pub fn tail(&self) -> &Bytes {
        &self.tail
    }

    /// Total bytes on the wire, length prefix included.
    pub fn wire_len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// The frame as one `Buf` over both parts, for `write_all_buf` or a
    /// vectored write; nothing is copied.
    pub fn into_buf(self) -> Chain<Bytes, Bytes> {
        self.head.chain(self.tail)
    }

    /// The frame as one contiguous buffer, for transports that need one
    /// (a WebSocket message). Copies only when the frame has a tail.
    pub fn to_bytes(&self) -> Bytes {
        if self.tail.is_empty() {
            return self.head.clone();
        }
        let mut out = BytesMut::with_capacity(self.wire_len());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.tail);
        out.freeze()
    }
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The frame's length prefix would be `length`, above the peer's limit.
    FrameTooLarge {
        /// The length prefix the frame would need.
        length: usize,
        /// The peer's frame limit.
        max_frame: u32,
    },
    /// A control message encodes to more than the control limit.
    ControlTooLarge {
        /// Its encoded length.
        length: usize,
    },
    /// A batch must hold at least one record.
    EmptyBatch,
    /// The records exceed what a batch's 32-bit index can address.
    BatchTooLarge,
    /// The control encoder refused a value (not expected for this crate's types).
    Control(String),
    /// The message does not exist in the encoder's protocol version.
    NotInVersion {
        /// The message's opcode.
        opcode: u8,
        /// The encoder's version.
        version: u8,
    },
}

impl From<ControlError> for EncodeError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::TooLarge(length) => EncodeError::ControlTooLarge { length },
            ControlError::Codec(why) => EncodeError::Control(why),
        }
    }
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::FrameTooLarge { length, max_frame } => {
                write!(
                    f,
                    "frame of {length} bytes exceeds the peer's limit of {max_frame}"
                )
            }
            EncodeError::ControlTooLarge { length } => {
                write!(
                    f,
                    "control message of {length} bytes exceeds {MAX_CONTROL_LEN}"
                )
            }
            EncodeError::EmptyBatch => write!(f, "a record batch needs at least one record"),
            EncodeError::BatchTooLarge => write!(f, "records exceed the 4 GiB a batch can index"),
            EncodeError::Control(why) => write!(f, "control message: {why}"),
            EncodeError::NotInVersion { opcode, version } => {
                write!(
                    f,
                    "opcode {opcode:#04x} is not defined in version {version}"
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}
