//! Weir's binary protocol (spec: `net/PROTOCOL.md`) as a sans-IO codec: no
//! sockets, no runtime, so the QUIC and WebSocket doors, the load generator
//! and tests all share one implementation and a fuzzer can drive it.
//!
//! A [`Frame`] is a request id and a [`Message`]. The [`Encoder`] turns it
//! into an [`Encoded`] head plus a shared tail (the stored bytes of a record
//! batch, forwarded without copying); the [`Decoder`] turns bytes, as they
//! arrive, back into frames.
//!
//! ```
//! use bytes::BytesMut;
//! use weir_net::proto::{Decoder, Encoder, Frame, Message, Read};
//!
//! let read = Read { stream: "orders".into(), from: 0, max_bytes: 1 << 16 };
//! let frame = Frame::new(7, Message::Read(read));
//! let wire = Encoder::default().encode(&frame).unwrap().to_bytes();
//!
//! let mut decoder = Decoder::default();
//! let mut buf = BytesMut::new();
//! buf.extend_from_slice(&wire[..5]);
//! assert_eq!(decoder.decode(&mut buf).unwrap(), None); // a partial frame waits
//! buf.extend_from_slice(&wire[5..]);
//! assert_eq!(decoder.decode(&mut buf).unwrap(), Some(frame));
//! ```

#![warn(missing_docs)]

pub mod batch;
mod chunks;
mod control;
mod decode;
mod encode;
mod error;
mod frame;
mod message;
mod opcode;
mod replies;
mod requests;
mod state;
mod touch;

#[cfg(test)]
mod tests;

pub use chunks::ChunkDecoder;
pub use control::MAX_CONTROL_LEN;
pub use decode::{decode_frame, DecodeError, Decoder};
pub use encode::{EncodeError, Encoded, Encoder};
pub use error::{ErrorKind, WireError, MAX_ERROR_FIELD};
pub use frame::{
    clamp_max_frame, Frame, CONNECTION_ID, DEFAULT_MAX_FRAME, HEADER_LEN, MAX_MAX_FRAME,
    MAX_VERSION, MIN_LENGTH, MIN_MAX_FRAME, MIN_VERSION, PREFIX_LEN, STATE_VERSION, VERSION,
};
pub use message::Message;
pub use opcode::Opcode;
pub use replies::{
    Appended, Created, EndOfStream, ReadDone, Resume, ResumeReason, StreamInfo, Subscribed,
    Unsubscribed, Welcome,
};
pub use requests::{
    Append, Create, Delete, Head, Hello, Producer, Read, Subscribe, SubscribeFrom, Unsubscribe,
};
pub use state::{
    Change, ChangeOp, Get, GetResult, Scan, ScanPage, Snapshot, SnapshotDone, StateInfo,
    StateSubscribed, SubscribeState, WireKey, WireRow, WireStateMode,
};
pub use touch::{
    ActivateTemplates, ActivatedTemplate, DeniedTemplate, TemplatesActivated, Wait, WaitResult,
    WireWaitStatus,
};
