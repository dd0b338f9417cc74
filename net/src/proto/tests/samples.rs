//! Hand-picked messages: every opcode at least once, with the edge cases
//! (empty strings, absent options, keyless and empty-keyed records, a batch
//! seen through a sub-range, every error kind).

use bytes::Bytes;
use weir_storage::{Batch, Record};

use crate::proto::batch;
use crate::proto::*;

/// A stored-layout batch at `base` with keyed, keyless and empty records.
pub fn batch_at(base: u64) -> Batch {
    batch::build(
        base,
        1_700_000_000_000,
        &[
            Record::new("alpha"),
            Record::keyed("k1", ""),
            Record::keyed("", "gamma"),
            Record::new(""),
        ],
    )
    .unwrap()
}

/// Every error kind, with non-trivial fields.
pub fn error_kinds() -> Vec<ErrorKind> {
    vec![
        ErrorKind::MalformedFrame,
        ErrorKind::FrameTooLarge { max_frame: 1 << 20 },
        ErrorKind::UnsupportedVersion {
            min_version: 1,
            max_version: 3,
        },
        ErrorKind::UnknownOpcode { opcode: 0x42 },
        ErrorKind::UnexpectedMessage { opcode: 0x81 },
        ErrorKind::BadRequestId,
        ErrorKind::UnknownSubscription,
        ErrorKind::Unauthorized,
        ErrorKind::Busy,
        ErrorKind::Internal,
        ErrorKind::NotFound,
        ErrorKind::ConfigConflict,
        ErrorKind::Closed { next_offset: 12 },
        ErrorKind::ContentTypeMismatch {
            expected: "application/json".into(),
            got: "text/plain".into(),
        },
        ErrorKind::StreamSeqRegression {
            last: b"0009".to_vec(),
            received: b"0002".to_vec(),
        },
        ErrorKind::StaleEpoch { current: 4 },
        ErrorKind::SequenceGap {
            expected: 6,
            received: 9,
        },
        ErrorKind::EpochMustStartAtZero { received: 3 },
        ErrorKind::EmptyAppend,
        ErrorKind::OffsetOutOfRange {
            offset: 99,
            tail: 10,
        },
        ErrorKind::Invalid,
        ErrorKind::ShutDown,
        ErrorKind::Storage,
        ErrorKind::Corrupt,
        ErrorKind::Forbidden,
    ]
}

/// At least one message per opcode.
pub fn messages() -> Vec<Message> {
    let b = batch_at(40);
    let mut out = vec![
        Message::Hello(Hello {
            min_version: 1,
            max_version: 1,
            max_frame: DEFAULT_MAX_FRAME,
            client: "weir-load/0.1".into(),
            auth_token: None,
        }),
        Message::Hello(Hello {
            min_version: 1,
            max_version: 2,
            max_frame: MIN_MAX_FRAME,
            client: String::new(),
            auth_token: Some("tok\u{e9}n".into()),
        }),
        Message::Ping,
        Message::Create(Create {
            stream: "orders/eu".into(),
            content_type: "application/json".into(),
            ttl_secs: Some(3600),
            expires_at_ms: None,
            state: None,
        }),
        Message::Head(Head {
            stream: "orders".into(),
        }),
        Message::Delete(Delete {
            stream: "orders".into(),
        }),
        Message::Append(Append {
            stream: "orders".into(),
            producer: Some(Producer {
                id: "p-1".into(),
                epoch: 2,
                seq: u64::MAX,
            }),
            close: false,
            records: vec![
                Record::keyed("order-1", r#"{"total":3}"#),
                Record::new(r#"{"total":5}"#),
                Record::keyed("", ""),
            ],
        }),
        Message::Append(Append {
            stream: "orders".into(),
            producer: None,
            close: true,
            records: vec![],
        }),
        Message::Read(Read {
            stream: "orders".into(),
            from: 1 << 40,
            max_bytes: u32::MAX,
        }),
        Message::Subscribe(Subscribe {
            stream: "orders".into(),
            from: SubscribeFrom::Start,
        }),
        Message::Subscribe(Subscribe {
            stream: "orders".into(),
            from: SubscribeFrom::Now,
        }),
        Message::Subscribe(Subscribe {
            stream: "orders".into(),
            from: SubscribeFrom::Offset(17),
        }),
        Message::Unsubscribe(Unsubscribe { subscription: 9 }),
        Message::Welcome(Welcome {
            version: 1,
            max_frame: DEFAULT_MAX_FRAME,
            server: "weir/0.1.0".into(),
        }),
        Message::Pong,
        Message::Created(Created {
            created: true,
            info: info(),
        }),
        Message::Info(info()),
        Message::Deleted,
        Message::Appended(Appended {
            first_offset: 10,
            next_offset: 13,
            duplicate: false,
            closed: false,
            producer: Some((2, 7)),
        }),
        Message::Appended(Appended {
            first_offset: 0,
            next_offset: 0,
            duplicate: true,
            closed: true,
            producer: None,
        }),
        Message::ReadDone(ReadDone {
            next_offset: 44,
            tail: 50,
            closed: false,
        }),
        Message::Subscribed(Subscribed { fence: 40 }),
        Message::Unsubscribed(Unsubscribed { next_offset: 44 }),
        Message::Data(b.clone()),
        Message::Data(b.skip_to(41).unwrap().truncate(2)),
        Message::Data(b.skip_to(43).unwrap()),
        Message::Data(batch_at(u64::MAX - 4)),
        Message::Resume(Resume {
            offset: 44,
            reason: ResumeReason::Lagging,
        }),
        Message::Resume(Resume {
            offset: 0,
            reason: ResumeReason::ShuttingDown,
        }),
        Message::EndOfStream(EndOfStream { next_offset: 50 }),
    ];
    for kind in error_kinds() {
        out.push(Message::Error(WireError::new(kind, "something happened")));
    }
    out.extend(
        v2_messages()
            .into_iter()
            .filter(|m| m.opcode().since() == 2),
    );
    out
}

fn info() -> StreamInfo {
    StreamInfo {
        stream: "orders".into(),
        content_type: "application/json".into(),
        ttl_secs: None,
        expires_at_ms: Some(1_800_000_000_000),
        created_at_ms: 1_700_000_000_000,
        next_offset: 50,
        closed: true,
        state: None,
    }
}

fn row(key: WireKey, value: &str, offset: u64) -> WireRow {
    WireRow {
        key,
        value: value.as_bytes().to_vec(),
        offset,
    }
}

/// Messages of version 2, and the version-1 messages whose body grew in it.
pub fn v2_messages() -> Vec<Message> {
    let keyed = WireKey::Keyed(b"k1".to_vec());
    let entity = WireKey::Entity {
        entity: "user".into(),
        key: "u\0".into(),
    };
    let state = Some(StateInfo {
        mode: WireStateMode::StateProtocol,
        building: Some(7),
    });
    vec![
        Message::Create(Create {
            stream: "users".into(),
            content_type: "application/json".into(),
            ttl_secs: None,
            expires_at_ms: None,
            state: Some(WireStateMode::StateProtocol),
        }),
        Message::Create(Create {
            stream: "plain".into(),
            content_type: "text/plain".into(),
            ttl_secs: None,
            expires_at_ms: Some(9),
            state: None,
        }),
        Message::Info(StreamInfo { state, ..info() }),
        Message::Created(Created {
            created: false,
            info: StreamInfo {
                state: Some(StateInfo::default()),
                ..info()
            },
        }),
        Message::Get(Get {
            stream: "kv".into(),
            key: keyed.clone(),
        }),
        Message::Get(Get {
            stream: "users".into(),
            key: entity.clone(),
        }),
        Message::GetResult(GetResult {
            row: Some(row(keyed.clone(), "v", 3)),
            fence: 4,
            tail: 9,
        }),
        Message::GetResult(GetResult {
            row: None,
            fence: 0,
            tail: 0,
        }),
        Message::Scan(Scan {
            stream: "users".into(),
            filter: Some(r#"{"eq":["/name","ann"]}"#.into()),
            entity: Some("user".into()),
            prefix: Some(vec![0, 0xff]),
            after: Some(b"u1".to_vec()),
            limit: 500,
        }),
        Message::Scan(Scan {
            stream: "kv".into(),
            filter: None,
            entity: None,
            prefix: None,
            after: None,
            limit: 0,
        }),
        Message::ScanPage(ScanPage {
            rows: vec![row(keyed.clone(), "", 1), row(entity.clone(), "{}", 2)],
            next: Some(b"u\0".to_vec()),
            fence: 3,
        }),
        Message::ScanPage(ScanPage {
            rows: vec![],
            next: None,
            fence: 0,
        }),
        Message::SubscribeState(SubscribeState {
            stream: "users".into(),
            snapshot: true,
            filter: Some("{}".into()),
            from: None,
        }),
        Message::SubscribeState(SubscribeState {
            stream: "kv".into(),
            snapshot: false,
            filter: None,
            from: Some(300),
        }),
        Message::StateSubscribed(StateSubscribed {
            mode: WireStateMode::Keyed,
        }),
        Message::Snapshot(Snapshot {
            rows: vec![row(entity.clone(), "{\"a\":1}", 5)],
        }),
        Message::SnapshotDone(SnapshotDone {
            fence: 300,
            rows: 70_000,
        }),
        Message::Change(Change {
            offset: 301,
            op: ChangeOp::Upsert,
            key: Some(entity.clone()),
            value: Some(b"{}".to_vec()),
        }),
        Message::Change(Change {
            offset: 302,
            op: ChangeOp::Delete,
            key: Some(keyed),
            value: None,
        }),
        Message::Change(Change {
            offset: 303,
            op: ChangeOp::Reset,
            key: None,
            value: None,
        }),
        Message::Wait(Wait {
            stream: "users".into(),
            request: r#"{"cursor":"now","keys":["a"],"timeoutMs":1000}"#.into(),
        }),
        Message::WaitResult(WaitResult {
            status: WireWaitStatus::Touched,
            cursor: "00000000000000ab:7".into(),
            epoch: "00000000000000ab".into(),
            generation: 7,
            effective_wait_kind: "fineKey".into(),
            bucket_max_source_offset_seq: "41".into(),
            flush_at_ms: 1_700_000_000_100,
            bucket_start_ms: 1_700_000_000_000,
        }),
        Message::WaitResult(WaitResult {
            status: WireWaitStatus::Stale,
            cursor: "00000000000000ab:0".into(),
            epoch: "00000000000000ab".into(),
            generation: 0,
            effective_wait_kind: "tableKey".into(),
            bucket_max_source_offset_seq: "-1".into(),
            flush_at_ms: 0,
            bucket_start_ms: 0,
        }),
        Message::ActivateTemplates(ActivateTemplates {
            stream: "users".into(),
            request: r#"{"templates":[]}"#.into(),
        }),
        Message::TemplatesActivated(TemplatesActivated {
            activated: vec![ActivatedTemplate {
                template_id: "0123456789abcdef".into(),
                active_from_touch_offset: "00000000000000ab:7".into(),
            }],
            denied: vec![DeniedTemplate {
                template_id: "0000000000000000".into(),
                reason: "invalid".into(),
            }],
            max_active_templates_per_stream: 2048,
            max_active_templates_per_entity: 256,
        }),
    ]
}

/// The encoder a sample frame is written with: its own version.
pub fn encoder_for(f: &Frame) -> Encoder {
    Encoder::default().with_version(f.version)
}

/// Every sample encoded, each with a distinct request id.
/// Version-1 messages are framed as version 1, the rest (and the version-2
/// forms of `Create`, `Info`, `Created`) as version 2.
pub fn frames() -> Vec<(Frame, Bytes)> {
    let v1 = messages().into_iter().filter(|m| m.opcode().since() == 1);
    let v1 = v1.map(|m| (m, VERSION));
    let v2 = v2_messages().into_iter().map(|m| (m, STATE_VERSION));
    v1.chain(v2)
        .enumerate()
        .map(|(i, (m, v))| {
            let f = Frame::new(i as u32 + 1, m).with_version(v);
            let wire = encoder_for(&f).encode(&f).unwrap().to_bytes();
            (f, wire)
        })
        .collect()
}
