//! The decoder: bytes in, frames out, for any transport. It takes bytes as
//! they arrive (a frame may span many reads, a read may hold many frames),
//! answers `Ok(None)` while a frame is incomplete, and rejects a length
//! prefix above its limit as soon as the prefix is readable: it never
//! reserves the claimed size, so a hostile prefix costs nothing. Every body
//! is bounds-checked; garbage yields an error, never a panic.
//!
//! Errors come in two classes. Fatal ones (a bad length prefix) lose the
//! framing, so the decoder keeps returning the same error and the connection
//! must close. The others concern one complete frame, which is consumed: the
//! receiver answers with an `Error` frame for its request id and goes on.

use bytes::{Bytes, BytesMut};

use super::error::{ErrorKind, WireError};
use super::frame::{
    clamp_max_frame, Frame, CONNECTION_ID, DEFAULT_MAX_FRAME, MAX_VERSION, MIN_LENGTH, MIN_VERSION,
    PREFIX_LEN,
};
use super::message::Message;
use super::opcode::Opcode;

/// Incremental frame decoder for one direction of one connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame: u32,
    failed: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder {
    /// A decoder that accepts length prefixes up to `max_frame` (clamped to
    /// the range the protocol allows); announce the same value in `Hello`
    /// or `Welcome`.
    pub fn new(max_frame: u32) -> Self {
        Decoder {
            max_frame: clamp_max_frame(max_frame),
            failed: None,
        }
    }

    /// The frame limit this decoder enforces.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Takes the next complete frame off the front of `src`, which the
    /// caller fills from its transport. `Ok(None)`: more bytes are needed
    /// (nothing is consumed). The frame's body shares `src`'s allocation.
    /// The signature matches `tokio_util::codec::Decoder::decode`.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if src.len() < PREFIX_LEN {
            return Ok(None);
        }
        let length = u32::from_le_bytes(src[..PREFIX_LEN].try_into().expect("4 bytes"));
        if let Err(e) = check_length(length, self.max_frame) {
            self.failed = Some(e.clone());
            return Err(e);
        }
        let total = PREFIX_LEN + length as usize;
        if src.len() < total {
            return Ok(None);
        }
        parse(src.split_to(total).freeze()).map(Some)
    }
}

/// Decodes a buffer that holds exactly one frame, for transports that
/// deliver whole messages (one frame per WebSocket binary message).
pub fn decode_frame(buf: Bytes, max_frame: u32) -> Result<Frame, DecodeError> {
    if buf.len() < PREFIX_LEN {
        return Err(DecodeError::LengthMismatch {
            length: None,
            actual: buf.len(),
        });
    }
    let length = u32::from_le_bytes(buf[..PREFIX_LEN].try_into().expect("4 bytes"));
    check_length(length, clamp_max_frame(max_frame))?;
    if buf.len() - PREFIX_LEN != length as usize {
        return Err(DecodeError::LengthMismatch {
            length: Some(length),
            actual: buf.len() - PREFIX_LEN,
        });
    }
    parse(buf)
}

pub(super) fn check_length(length: u32, max_frame: u32) -> Result<(), DecodeError> {
    if length > max_frame {
        return Err(DecodeError::FrameTooLarge { length, max_frame });
    }
    if length < MIN_LENGTH {
        return Err(DecodeError::FrameTooShort { length });
    }
    Ok(())
}

/// Parses one whole frame (length prefix included, already checked).
pub(super) fn parse(frame: Bytes) -> Result<Frame, DecodeError> {
    let version = frame[4];
    let byte = frame[5];
    let request_id = u32::from_le_bytes(frame[6..10].try_into().expect("4 bytes"));
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion {
            version,
            request_id,
        });
    }
    let opcode = Opcode::in_version(byte, version).ok_or(DecodeError::UnknownOpcode {
        opcode: byte,
        request_id,
    })?;
    let message = Message::read_body(
        opcode,
        version,
        frame.slice(PREFIX_LEN + MIN_LENGTH as usize..),
    )
    .map_err(|reason| DecodeError::Malformed {
        opcode,
        request_id,
        reason,
    })?;
    Ok(Frame {
        version,
        request_id,
        message,
    })
}

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fatal: the length prefix exceeds the decoder's limit.
    FrameTooLarge {
        /// The length prefix read.
        length: u32,
        /// The decoder's limit.
        max_frame: u32,
    },
    /// Fatal: the length prefix is too small to hold version, opcode and request id.
    FrameTooShort {
        /// The length prefix read.
        length: u32,
    },
    /// Fatal: a whole-message buffer does not hold exactly the frame its
    /// prefix announces (`length` is `None` when even the prefix is missing).
    LengthMismatch {
        /// The length prefix read, if any.
        length: Option<u32>,
        /// The bytes that follow the prefix.
        actual: usize,
    },
    /// The frame's version is not one this decoder speaks.
    UnsupportedVersion {
        /// The version byte read.
        version: u8,
        /// The frame's request id.
        request_id: u32,
    },
    /// The frame's opcode is not defined.
    UnknownOpcode {
        /// The opcode byte read.
        opcode: u8,
        /// The frame's request id.
        request_id: u32,
    },
    /// The frame's body does not decode as its opcode says.
    Malformed {
        /// The frame's opcode.
        opcode: Opcode,
        /// The frame's request id.
        request_id: u32,
        /// What is wrong with the body.
        reason: String,
    },
}

impl DecodeError {
    /// Whether framing is lost and the connection must close.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::FrameTooLarge { .. }
                | DecodeError::FrameTooShort { .. }
                | DecodeError::LengthMismatch { .. }
        )
    }

    /// The request id to answer with an `Error` frame ([`CONNECTION_ID`]
    /// when the frame's header could not be read).
    pub fn request_id(&self) -> u32 {
        match self {
            DecodeError::UnsupportedVersion { request_id, .. }
            | DecodeError::UnknownOpcode { request_id, .. }
            | DecodeError::Malformed { request_id, .. } => *request_id,
            _ => CONNECTION_ID,
        }
    }

    /// The `Error` frame body that reports this to the peer.
    pub fn to_wire(&self) -> WireError {
        let kind = match self {
            DecodeError::FrameTooLarge { max_frame, .. } => ErrorKind::FrameTooLarge {
                max_frame: *max_frame,
            },
            DecodeError::FrameTooShort { .. }
            | DecodeError::LengthMismatch { .. }
            | DecodeError::Malformed { .. } => ErrorKind::MalformedFrame,
            DecodeError::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion {
                min_version: MIN_VERSION,
                max_version: MAX_VERSION,
            },
            DecodeError::UnknownOpcode { opcode, .. } => {
                ErrorKind::UnknownOpcode { opcode: *opcode }
            }
        };
        WireError::new(kind, self.to_string())
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::FrameTooLarge { length, max_frame } => {
                write!(f, "frame length {length} exceeds the limit of {max_frame}")
            }
            DecodeError::FrameTooShort { length } => {
                write!(f, "frame length {length} is shorter than the {MIN_LENGTH}-byte header")
            }
            DecodeError::LengthMismatch { length: None, actual } => {
                write!(f, "message of {actual} bytes is shorter than a length prefix")
            }
            DecodeError::LengthMismatch {
                length: Some(length),
                actual,
            } => write!(f, "frame length {length} but the message holds {actual} bytes"),
            DecodeError::UnsupportedVersion { version, .. } => write!(
                f,
                "protocol version {version} is not supported (supported: {MIN_VERSION}..={MAX_VERSION})"
            ),
            DecodeError::UnknownOpcode { opcode, .. } => write!(f, "unknown opcode {opcode:#04x}"),
            DecodeError::Malformed { opcode, reason, .. } => write!(f, "malformed {opcode:?} frame: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}
