//! Opcodes: the byte that says what a frame's body holds. Requests use
//! `0x01..=0x7f`; a direct reply to a request is the request's opcode with
//! the high bit set, so a reader of a hex dump can pair them at a glance.
//! Server-initiated frames about a subscription use `0x90..`, and `0xff` is
//! the error frame.

/// Every opcode of protocol versions 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Client greeting and version negotiation.
    Hello = 0x01,
    /// Liveness probe.
    Ping = 0x02,
    /// Create a stream.
    Create = 0x03,
    /// Describe a stream.
    Head = 0x04,
    /// Delete a stream.
    Delete = 0x05,
    /// Append a batch of records.
    Append = 0x06,
    /// Read records from an offset.
    Read = 0x07,
    /// Follow a stream live.
    Subscribe = 0x08,
    /// Stop a subscription.
    Unsubscribe = 0x09,
    /// Version 2: one key's value.
    Get = 0x0a,
    /// Version 2: one page of a stream's state.
    Scan = 0x0b,
    /// Version 2: a state snapshot, then its changes.
    SubscribeState = 0x0c,
    /// Version 2: wait for a touch.
    Wait = 0x0d,
    /// Version 2: declare live-query templates.
    ActivateTemplates = 0x0e,
    /// Reply to `Hello`.
    Welcome = 0x81,
    /// Reply to `Ping`.
    Pong = 0x82,
    /// Reply to `Create`.
    Created = 0x83,
    /// Reply to `Head`.
    Info = 0x84,
    /// Reply to `Delete`.
    Deleted = 0x85,
    /// Reply to `Append`.
    Appended = 0x86,
    /// Final reply to `Read`, after its data frames.
    ReadDone = 0x87,
    /// Reply to `Subscribe`: the subscription is live from its fence.
    Subscribed = 0x88,
    /// Reply to `Unsubscribe`.
    Unsubscribed = 0x89,
    /// Version 2: reply to `Get`.
    GetResult = 0x8a,
    /// Version 2: reply to `Scan`.
    ScanPage = 0x8b,
    /// Version 2: reply to `SubscribeState`.
    StateSubscribed = 0x8c,
    /// Version 2: reply to `Wait`.
    WaitResult = 0x8d,
    /// Version 2: reply to `ActivateTemplates`.
    TemplatesActivated = 0x8e,
    /// A record batch, for a read or a subscription.
    Data = 0x90,
    /// The server ended a subscription; resume it from an offset.
    Resume = 0x91,
    /// A subscription delivered a closed stream to its end.
    EndOfStream = 0x92,
    /// Version 2: rows of a state subscription's snapshot.
    Snapshot = 0x93,
    /// Version 2: a state subscription's snapshot is complete.
    SnapshotDone = 0x94,
    /// Version 2: one membership change of a filtered state subscription.
    Change = 0x95,
    /// A request failed, or the connection is in trouble.
    Error = 0xff,
}

impl Opcode {
    /// Every opcode, in wire order (used by tests and documentation).
    pub const ALL: [Opcode; 35] = [
        Opcode::Hello,
        Opcode::Ping,
        Opcode::Create,
        Opcode::Head,
        Opcode::Delete,
        Opcode::Append,
        Opcode::Read,
        Opcode::Subscribe,
        Opcode::Unsubscribe,
        Opcode::Get,
        Opcode::Scan,
        Opcode::SubscribeState,
        Opcode::Wait,
        Opcode::ActivateTemplates,
        Opcode::Welcome,
        Opcode::Pong,
        Opcode::Created,
        Opcode::Info,
        Opcode::Deleted,
        Opcode::Appended,
        Opcode::ReadDone,
        Opcode::Subscribed,
        Opcode::Unsubscribed,
        Opcode::GetResult,
        Opcode::ScanPage,
        Opcode::StateSubscribed,
        Opcode::WaitResult,
        Opcode::TemplatesActivated,
        Opcode::Data,
        Opcode::Resume,
        Opcode::EndOfStream,
        Opcode::Snapshot,
        Opcode::SnapshotDone,
        Opcode::Change,
        Opcode::Error,
    ];

    /// The opcode of a wire byte, or `None` for bytes no version defines.
    pub fn from_u8(byte: u8) -> Option<Opcode> {
        Opcode::ALL.iter().copied().find(|op| *op as u8 == byte)
    }

    /// The opcode of a wire byte in a frame of `version`, or `None` when
    /// that version does not define it.
    pub fn in_version(byte: u8, version: u8) -> Option<Opcode> {
        Opcode::from_u8(byte).filter(|op| op.since() <= version)
    }

    /// The first protocol version that defines this opcode.
    pub fn since(self) -> u8 {
        match self {
            Opcode::Get
            | Opcode::Scan
            | Opcode::SubscribeState
            | Opcode::Wait
            | Opcode::ActivateTemplates
            | Opcode::WaitResult
            | Opcode::TemplatesActivated
            | Opcode::GetResult
            | Opcode::ScanPage
            | Opcode::StateSubscribed
            | Opcode::Snapshot
            | Opcode::SnapshotDone
            | Opcode::Change => 2,
            _ => 1,
        }
    }

    /// Whether clients send this opcode (servers send all the others).
    pub fn is_request(self) -> bool {
        (self as u8) < 0x80
    }
}
