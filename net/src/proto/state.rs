//! Version-2 messages about a stream's key-value state: `Get`, `Scan` and
//! `SubscribeState` with their answers, and the state part that `Info`,
//! `Created` and `Create` carry in version 2. Each maps onto the engine's
//! state types, so a server answers without restating the engine's rules.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use weir_storage::{StateChange, StateKey, StateMode, StateRow, StateStatus};

/// The state mode of a stream, as version 2 encodes it (tags 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WireStateMode {
    /// No state is kept.
    #[default]
    None,
    /// Keyed records set and tombstones delete their key's value.
    Keyed,
    /// Durable Streams State Protocol messages, keyed by (`type`, `key`).
    StateProtocol,
}

impl From<StateMode> for WireStateMode {
    fn from(m: StateMode) -> Self {
        match m {
            StateMode::None => WireStateMode::None,
            StateMode::Keyed => WireStateMode::Keyed,
            StateMode::StateProtocol => WireStateMode::StateProtocol,
        }
    }
}

impl From<WireStateMode> for StateMode {
    fn from(m: WireStateMode) -> Self {
        match m {
            WireStateMode::None => StateMode::None,
            WireStateMode::Keyed => StateMode::Keyed,
            WireStateMode::StateProtocol => StateMode::StateProtocol,
        }
    }
}

/// The state part of a stream's description in version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StateInfo {
    /// The stream's state mode.
    pub mode: WireStateMode,
    /// While the state is built from history: records below this offset are in it.
    pub building: Option<u64>,
}

impl From<StateStatus> for StateInfo {
    fn from(s: StateStatus) -> Self {
        StateInfo {
            mode: s.mode.into(),
            building: s.building,
        }
    }
}

/// The identity of one state row (tag 0 `Keyed`, tag 1 `Entity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireKey {
    /// A keyed stream's record key.
    Keyed(Vec<u8>),
    /// A State Protocol stream's `type` and `key`.
    Entity {
        /// The message's `type`.
        entity: String,
        /// The message's `key`.
        key: String,
    },
}

impl From<&StateKey> for WireKey {
    fn from(k: &StateKey) -> Self {
        match k {
            StateKey::Keyed(b) => WireKey::Keyed(b.to_vec()),
            StateKey::Entity { entity, key } => WireKey::Entity {
                entity: entity.clone(),
                key: key.clone(),
            },
        }
    }
}

impl From<WireKey> for StateKey {
    fn from(k: WireKey) -> Self {
        match k {
            WireKey::Keyed(b) => StateKey::Keyed(Bytes::from(b)),
            WireKey::Entity { entity, key } => StateKey::Entity { entity, key },
        }
    }
}

/// One row of a stream's state: its key, value and the offset that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRow {
    /// The row's identity.
    pub key: WireKey,
    /// The value: a keyed record's payload, or a State Protocol `value` as JSON text.
    pub value: Vec<u8>,
    /// Offset of the record that wrote the value.
    pub offset: u64,
}

impl From<&StateRow> for WireRow {
    fn from(r: &StateRow) -> Self {
        WireRow {
            key: WireKey::from(&r.key),
            value: r.value.to_vec(),
            offset: r.offset,
        }
    }
}

impl WireKey {
    /// An upper bound of the key's encoded length (varint lengths counted
    /// at their widest), so senders can size frames without encoding.
    pub fn wire_len(&self) -> usize {
        match self {
            WireKey::Keyed(b) => b.len() + 9 + 1,
            WireKey::Entity { entity, key } => entity.len() + key.len() + 18 + 1,
        }
    }
}

impl WireRow {
    /// An upper bound of the bytes this row adds to a `Snapshot` or
    /// `ScanPage` body, so a sender can cut chunks within the peer's frame
    /// limit without encoding twice.
    pub fn wire_len(&self) -> usize {
        self.key.wire_len() + self.value.len() + 9 + 9
    }
}

impl Change {
    /// An upper bound of this change's encoded body length.
    pub fn wire_len(&self) -> usize {
        let key = self.key.as_ref().map_or(0, WireKey::wire_len);
        let value = self.value.as_ref().map_or(0, |v| v.len() + 9);
        9 + 1 + 1 + key + 1 + value
    }
}

/// `Get` (0x0a): one key's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// Name of the stream.
    pub stream: String,
    /// The row wanted.
    pub key: WireKey,
}

/// `GetResult` (0x8a): the row, if present, and the positions the answer holds at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResult {
    /// The row, absent when the key has no value.
    pub row: Option<WireRow>,
    /// The answer is the state of every record below this offset.
    pub fence: u64,
    /// The stream's tail when the answer was read.
    pub tail: u64,
}

/// `Scan` (0x0b): one page of the state in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// Name of the stream.
    pub stream: String,
    /// A filter in the engine's JSON filter language, as JSON text.
    pub filter: Option<String>,
    /// Only rows of this State Protocol `type`.
    pub entity: Option<String>,
    /// Only rows whose key starts with these bytes.
    pub prefix: Option<Vec<u8>>,
    /// Resume after this cursor (a previous page's `next`).
    pub after: Option<Vec<u8>>,
    /// Most rows in the page (the server may lower it; 0 means its default).
    pub limit: u32,
}

/// `ScanPage` (0x8b): rows of a scan and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPage {
    /// Rows in key order.
    pub rows: Vec<WireRow>,
    /// Cursor for the next page; absent on the last page.
    pub next: Option<Vec<u8>>,
    /// The page is the state of every record below this offset.
    pub fence: u64,
}

/// `SubscribeState` (0x0c): a snapshot of the state, then its changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeState {
    /// Name of the stream.
    pub stream: String,
    /// Start with a snapshot of the current state.
    pub snapshot: bool,
    /// Only rows matching this filter (JSON text); changes become membership changes.
    pub filter: Option<String>,
    /// Without a snapshot: changes from this offset (the tail when absent).
    pub from: Option<u64>,
}

/// `StateSubscribed` (0x8c): the state subscription is registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSubscribed {
    /// The stream's state mode, which says how keys and changes read.
    pub mode: WireStateMode,
}

/// `Snapshot` (0x93): rows of a state subscription's snapshot, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Rows of this chunk.
    pub rows: Vec<WireRow>,
}

/// `SnapshotDone` (0x94): the snapshot is complete and changes follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDone {
    /// The snapshot was the state below this offset; changes start here.
    pub fence: u64,
    /// Rows the snapshot held.
    pub rows: u64,
}

/// What a filtered change does to the subscriber's set of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeOp {
    /// The row is (or stays) in the set with a new value.
    Upsert,
    /// The row left the set or was deleted.
    Delete,
    /// The whole state was cleared.
    Reset,
}

/// `Change` (0x95): one membership change of a filtered state subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Offset of the record the change comes from.
    pub offset: u64,
    /// What changed.
    pub op: ChangeOp,
    /// The row's identity (absent for `Reset`).
    pub key: Option<WireKey>,
    /// The new value (only for `Upsert`).
    pub value: Option<Vec<u8>>,
}

impl From<&StateChange> for Change {
    fn from(c: &StateChange) -> Self {
        match c {
            StateChange::Upsert(r) => Change {
                offset: r.offset,
                op: ChangeOp::Upsert,
                key: Some(WireKey::from(&r.key)),
                value: Some(r.value.to_vec()),
            },
            StateChange::Delete { key, offset } => Change {
                offset: *offset,
                op: ChangeOp::Delete,
                key: Some(WireKey::from(key)),
                value: None,
            },
            StateChange::Reset { offset } => Change {
                offset: *offset,
                op: ChangeOp::Reset,
                key: None,
                value: None,
            },
        }
    }
}
