//! `Message`: what a frame says, one variant per opcode, and how each body
//! is laid out. Control bodies are one bincode value ([`super::control`]);
//! `Append` is a length-prefixed control part followed by a record batch;
//! `Data` is a batch descriptor followed by the stored batch bytes; `Ping`,
//! `Pong` and `Deleted` have empty bodies.

use bytes::{BufMut, Bytes, BytesMut};
use weir_storage::Batch;

use super::batch;
use super::control::{self, ControlError};
use super::encode::EncodeError;
use super::error::WireError;
use super::frame::MIN_LENGTH;
use super::opcode::Opcode;
use super::replies::{
    Appended, Created, EndOfStream, ReadDone, Resume, StreamInfo, Subscribed, Unsubscribed, Welcome,
};
use super::requests::{
    Append, AppendMeta, Create, Delete, Head, Hello, Read, Subscribe, Unsubscribe,
};
use super::state::{
    Change, Get, GetResult, Scan, ScanPage, Snapshot, SnapshotDone, StateInfo, StateSubscribed,
    SubscribeState, WireStateMode,
};
use super::touch::{ActivateTemplates, TemplatesActivated, Wait, WaitResult};

/// Every message of protocol versions 1 and 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Client greeting and version negotiation (`0x01`).
    Hello(Hello),
    /// Liveness probe; answered by `Pong` (`0x02`).
    Ping,
    /// Create a stream (`0x03`).
    Create(Create),
    /// Describe a stream (`0x04`).
    Head(Head),
    /// Delete a stream (`0x05`).
    Delete(Delete),
    /// Append records (`0x06`).
    Append(Append),
    /// Read records from an offset (`0x07`).
    Read(Read),
    /// Follow a stream (`0x08`).
    Subscribe(Subscribe),
    /// Stop a subscription (`0x09`).
    Unsubscribe(Unsubscribe),
    /// Version 2: one key's value (`0x0a`).
    Get(Get),
    /// Version 2: one page of a stream's state (`0x0b`).
    Scan(Scan),
    /// Version 2: a state snapshot, then its changes (`0x0c`).
    SubscribeState(SubscribeState),
    /// Version 2: wait for a touch (`0x0d`).
    Wait(Wait),
    /// Version 2: declare live-query templates (`0x0e`).
    ActivateTemplates(ActivateTemplates),
    /// The server accepted `Hello` (`0x81`).
    Welcome(Welcome),
    /// Reply to `Ping` (`0x82`).
    Pong,
    /// Reply to `Create` (`0x83`).
    Created(Created),
    /// Reply to `Head` (`0x84`).
    Info(StreamInfo),
    /// Reply to `Delete` (`0x85`).
    Deleted,
    /// Reply to `Append` (`0x86`).
    Appended(Appended),
    /// Final reply to `Read` (`0x87`).
    ReadDone(ReadDone),
    /// Reply to `Subscribe` (`0x88`).
    Subscribed(Subscribed),
    /// Reply to `Unsubscribe` (`0x89`).
    Unsubscribed(Unsubscribed),
    /// Version 2: reply to `Get` (`0x8a`).
    GetResult(GetResult),
    /// Version 2: reply to `Scan` (`0x8b`).
    ScanPage(ScanPage),
    /// Version 2: reply to `SubscribeState` (`0x8c`).
    StateSubscribed(StateSubscribed),
    /// Version 2: reply to `Wait` (`0x8d`).
    WaitResult(WaitResult),
    /// Version 2: reply to `ActivateTemplates` (`0x8e`).
    TemplatesActivated(TemplatesActivated),
    /// Visible records of one batch, for a `Read` or a subscription (`0x90`).
    Data(Batch),
    /// The server ended a subscription; resume from an offset (`0x91`).
    Resume(Resume),
    /// A subscription delivered its closed stream to the end (`0x92`).
    EndOfStream(EndOfStream),
    /// Version 2: rows of a state snapshot (`0x93`).
    Snapshot(Snapshot),
    /// Version 2: a state snapshot is complete (`0x94`).
    SnapshotDone(SnapshotDone),
    /// Version 2: one filtered state change (`0x95`).
    Change(Change),
    /// A request failed, or the connection is in trouble (`0xff`).
    Error(WireError),
}

impl Message {
    /// The opcode that announces this message.
    pub fn opcode(&self) -> Opcode {
        match self {
            Message::Hello(_) => Opcode::Hello,
            Message::Ping => Opcode::Ping,
            Message::Create(_) => Opcode::Create,
            Message::Head(_) => Opcode::Head,
            Message::Delete(_) => Opcode::Delete,
            Message::Append(_) => Opcode::Append,
            Message::Read(_) => Opcode::Read,
            Message::Subscribe(_) => Opcode::Subscribe,
            Message::Unsubscribe(_) => Opcode::Unsubscribe,
            Message::Welcome(_) => Opcode::Welcome,
            Message::Pong => Opcode::Pong,
            Message::Created(_) => Opcode::Created,
            Message::Info(_) => Opcode::Info,
            Message::Deleted => Opcode::Deleted,
            Message::Appended(_) => Opcode::Appended,
            Message::ReadDone(_) => Opcode::ReadDone,
            Message::Subscribed(_) => Opcode::Subscribed,
            Message::Unsubscribed(_) => Opcode::Unsubscribed,
            Message::Data(_) => Opcode::Data,
            Message::Resume(_) => Opcode::Resume,
            Message::EndOfStream(_) => Opcode::EndOfStream,
            Message::Get(_) => Opcode::Get,
            Message::Scan(_) => Opcode::Scan,
            Message::SubscribeState(_) => Opcode::SubscribeState,
            Message::GetResult(_) => Opcode::GetResult,
            Message::ScanPage(_) => Opcode::ScanPage,
            Message::StateSubscribed(_) => Opcode::StateSubscribed,
            Message::Wait(_) => Opcode::Wait,
            Message::ActivateTemplates(_) => Opcode::ActivateTemplates,
            Message::WaitResult(_) => Opcode::WaitResult,
            Message::TemplatesActivated(_) => Opcode::TemplatesActivated,
            Message::Snapshot(_) => Opcode::Snapshot,
            Message::SnapshotDone(_) => Opcode::SnapshotDone,
            Message::Change(_) => Opcode::Change,
            Message::Error(_) => Opcode::Error,
        }
    }

    /// Appends the body to `out` and returns the bytes that follow it
    /// without being copied (the stored batch of `Data`, else empty).
    /// `max_frame` is the peer's frame limit, checked before a large batch
    /// of records is copied in; `version` picks the body of messages whose
    /// layout grew in version 2.
    pub(crate) fn write_body(
        &self,
        out: &mut BytesMut,
        max_frame: u32,
        version: u8,
    ) -> Result<Bytes, EncodeError> {
        let v2 = version >= 2;
        match self {
            Message::Create(m) if v2 => control::encode(&(m, &m.state), out)?,
            Message::Info(m) if v2 => control::encode(&(m, m.state.unwrap_or_default()), out)?,
            Message::Created(m) if v2 => {
                control::encode(&(m.created, &m.info, m.info.state.unwrap_or_default()), out)?
            }
            Message::Get(m) => control::encode(m, out)?,
            Message::Scan(m) => control::encode(m, out)?,
            Message::SubscribeState(m) => control::encode(m, out)?,
            Message::GetResult(m) => control::encode_rows(m, out)?,
            Message::ScanPage(m) => control::encode_rows(m, out)?,
            Message::StateSubscribed(m) => control::encode(m, out)?,
            // Documents are bounded by the frame limit (and 1 MiB), as rows are.
            Message::Wait(m) => control::encode_rows(m, out)?,
            Message::ActivateTemplates(m) => control::encode_rows(m, out)?,
            Message::WaitResult(m) => control::encode(m, out)?,
            Message::TemplatesActivated(m) => control::encode_rows(m, out)?,
            Message::Snapshot(m) => control::encode_rows(m, out)?,
            Message::SnapshotDone(m) => control::encode(m, out)?,
            Message::Change(m) => control::encode_rows(m, out)?,
            Message::Ping | Message::Pong | Message::Deleted => {}
            Message::Hello(m) => control::encode(m, out)?,
            Message::Create(m) => control::encode(m, out)?,
            Message::Head(m) => control::encode(m, out)?,
            Message::Delete(m) => control::encode(m, out)?,
            Message::Append(m) => write_append(m, out, max_frame)?,
            Message::Read(m) => control::encode(m, out)?,
            Message::Subscribe(m) => control::encode(m, out)?,
            Message::Unsubscribe(m) => control::encode(m, out)?,
            Message::Welcome(m) => control::encode(m, out)?,
            Message::Created(m) => control::encode(m, out)?,
            Message::Info(m) => control::encode(m, out)?,
            Message::Appended(m) => control::encode(m, out)?,
            Message::ReadDone(m) => control::encode(m, out)?,
            Message::Subscribed(m) => control::encode(m, out)?,
            Message::Unsubscribed(m) => control::encode(m, out)?,
            Message::Data(b) => return batch::write_data(out, b),
            Message::Resume(m) => control::encode(m, out)?,
            Message::EndOfStream(m) => control::encode(m, out)?,
            Message::Error(m) => control::encode(m, out)?,
        }
        Ok(Bytes::new())
    }

    /// Decodes the body of a frame of `version` with opcode `op` (defined
    /// in that version); the error says why the body is malformed.
    pub(crate) fn read_body(op: Opcode, version: u8, body: Bytes) -> Result<Message, String> {
        let c = |e: ControlError| e.to_string();
        let v2 = version >= 2;
        Ok(match op {
            Opcode::Create if v2 => {
                let (mut m, state): (Create, Option<WireStateMode>) =
                    control::decode(&body).map_err(c)?;
                m.state = state;
                Message::Create(m)
            }
            Opcode::Info if v2 => {
                let (mut m, state): (StreamInfo, StateInfo) = control::decode(&body).map_err(c)?;
                m.state = Some(state);
                Message::Info(m)
            }
            Opcode::Created if v2 => {
                let (created, mut info, state): (bool, StreamInfo, StateInfo) =
                    control::decode(&body).map_err(c)?;
                info.state = Some(state);
                Message::Created(Created { created, info })
            }
            Opcode::Get => Message::Get(control::decode(&body).map_err(c)?),
            Opcode::Scan => Message::Scan(control::decode(&body).map_err(c)?),
            Opcode::SubscribeState => Message::SubscribeState(control::decode(&body).map_err(c)?),
            Opcode::GetResult => Message::GetResult(control::decode_rows(&body).map_err(c)?),
            Opcode::ScanPage => Message::ScanPage(control::decode_rows(&body).map_err(c)?),
            Opcode::StateSubscribed => Message::StateSubscribed(control::decode(&body).map_err(c)?),
            Opcode::Wait => Message::Wait(control::decode_rows(&body).map_err(c)?),
            Opcode::ActivateTemplates => {
                Message::ActivateTemplates(control::decode_rows(&body).map_err(c)?)
            }
            Opcode::WaitResult => Message::WaitResult(control::decode(&body).map_err(c)?),
            Opcode::TemplatesActivated => {
                Message::TemplatesActivated(control::decode_rows(&body).map_err(c)?)
            }
            Opcode::Snapshot => Message::Snapshot(control::decode_rows(&body).map_err(c)?),
            Opcode::SnapshotDone => Message::SnapshotDone(control::decode(&body).map_err(c)?),
            Opcode::Change => Message::Change(control::decode_rows(&body).map_err(c)?),
            Opcode::Ping | Opcode::Pong | Opcode::Deleted => {
                if !body.is_empty() {
                    return Err(format!(
                        "{op:?} has an empty body, got {} bytes",
                        body.len()
                    ));
                }
                match op {
                    Opcode::Ping => Message::Ping,
                    Opcode::Pong => Message::Pong,
                    _ => Message::Deleted,
                }
            }
            Opcode::Hello => Message::Hello(control::decode(&body).map_err(c)?),
            Opcode::Create => Message::Create(control::decode(&body).map_err(c)?),
            Opcode::Head => Message::Head(control::decode(&body).map_err(c)?),
            Opcode::Delete => Message::Delete(control::decode(&body).map_err(c)?),
            Opcode::Append => Message::Append(read_append(body)?),
            Opcode::Read => Message::Read(control::decode(&body).map_err(c)?),
            Opcode::Subscribe => Message::Subscribe(control::decode(&body).map_err(c)?),
            Opcode::Unsubscribe => Message::Unsubscribe(control::decode(&body).map_err(c)?),
            Opcode::Welcome => Message::Welcome(control::decode(&body).map_err(c)?),
            Opcode::Created => Message::Created(control::decode(&body).map_err(c)?),
            Opcode::Info => Message::Info(control::decode(&body).map_err(c)?),
            Opcode::Appended => Message::Appended(control::decode(&body).map_err(c)?),
            Opcode::ReadDone => Message::ReadDone(control::decode(&body).map_err(c)?),
            Opcode::Subscribed => Message::Subscribed(control::decode(&body).map_err(c)?),
            Opcode::Unsubscribed => Message::Unsubscribed(control::decode(&body).map_err(c)?),
            Opcode::Data => Message::Data(batch::read_data(body)?),
            Opcode::Resume => Message::Resume(control::decode(&body).map_err(c)?),
            Opcode::EndOfStream => Message::EndOfStream(control::decode(&body).map_err(c)?),
            Opcode::Error => Message::Error(control::decode(&body).map_err(c)?),
        })
    }
}

/// `Append` body: `u32 meta_len | meta | batch` where the batch is absent
/// for an append without records. The explicit length lets a peer in any
/// language find the batch without decoding the control part.
fn write_append(m: &Append, out: &mut BytesMut, max_frame: u32) -> Result<(), EncodeError> {
    let records_len = batch::append_len(&m.records).ok_or(EncodeError::BatchTooLarge)?;
    let at = out.len();
    out.put_u32_le(0);
    let meta = AppendMeta {
        stream: m.stream.clone(),
        producer: m.producer.clone(),
        close: m.close,
    };
    control::encode(&meta, out)?;
    let meta_len = out.len() - at - 4;
    let length = MIN_LENGTH as usize + 4 + meta_len + records_len;
    if length > max_frame as usize {
        // Refuse before copying what may be megabytes of payloads.
        out.truncate(at);
        return Err(EncodeError::FrameTooLarge { length, max_frame });
    }
    out[at..at + 4].copy_from_slice(&(meta_len as u32).to_le_bytes());
    batch::write_append(out, &m.records);
    Ok(())
}

fn read_append(body: Bytes) -> Result<Append, String> {
    if body.len() < 4 {
        return Err("append body shorter than its length prefix".into());
    }
    let meta_len = u32::from_le_bytes(body[0..4].try_into().expect("4 bytes")) as usize;
    let rest = body.len() - 4;
    if meta_len > rest {
        return Err(format!(
            "append control part of {meta_len} bytes overruns the body of {rest}"
        ));
    }
    let meta: AppendMeta = control::decode(&body[4..4 + meta_len]).map_err(|e| e.to_string())?;
    let records = batch::read_append(body.slice(4 + meta_len..))
        .map_err(|e| format!("append records: {e}"))?;
    Ok(Append {
        stream: meta.stream,
        producer: meta.producer,
        close: meta.close,
        records,
    })
}
