//! Exact bytes of every version-2 frame, as PROTOCOL.md shows them.

use weir_storage::Record;

use crate::proto::batch;
use crate::proto::*;

fn wire(id: u32, m: Message) -> Vec<u8> {
    let f = Frame::new(id, m).with_version(STATE_VERSION);
    let enc = Encoder::default().with_version(STATE_VERSION);
    let bytes = enc.encode(&f).unwrap().to_bytes();
    assert_eq!(decode_frame(bytes.clone(), DEFAULT_MAX_FRAME).unwrap(), f);
    bytes.to_vec()
}

fn keyed() -> WireKey {
    WireKey::Keyed(b"k".to_vec())
}

fn entity() -> WireKey {
    WireKey::Entity {
        entity: "u".into(),
        key: "1".into(),
    }
}

#[test]
fn get() {
    let m = Message::Get(Get {
        stream: "s".into(),
        key: keyed(),
    });
    #[rustfmt::skip]
    let want = [
        11, 0, 0, 0, 2, 0x0a, 1, 0, 0, 0,
        1, b's',                      // stream "s"
        0, 1, b'k',                   // key: Keyed (tag 0), bytes "k"
    ];
    assert_eq!(wire(1, m), want);
    let m = Message::Get(Get {
        stream: "s".into(),
        key: entity(),
    });
    #[rustfmt::skip]
    let want = [
        13, 0, 0, 0, 2, 0x0a, 1, 0, 0, 0,
        1, b's',
        1, 1, b'u', 1, b'1',          // key: Entity (tag 1), entity "u", key "1"
    ];
    assert_eq!(wire(1, m), want);
}

#[test]
fn get_result() {
    let m = Message::GetResult(GetResult {
        row: Some(WireRow {
            key: keyed(),
            value: b"v".to_vec(),
            offset: 3,
        }),
        fence: 4,
        tail: 9,
    });
    #[rustfmt::skip]
    let want = [
        15, 0, 0, 0, 2, 0x8a, 1, 0, 0, 0,
        1, 0, 1, b'k', 1, b'v', 3,    // Some(row: key, value "v", offset 3)
        4, 9,                         // fence 4, tail 9
    ];
    assert_eq!(wire(1, m), want);
}

#[test]
fn scan_and_page() {
    let m = Message::Scan(Scan {
        stream: "s".into(),
        filter: Some("{}".into()),
        entity: None,
        prefix: Some(b"a".to_vec()),
        after: None,
        limit: 300,
    });
    #[rustfmt::skip]
    let want = [
        20, 0, 0, 0, 2, 0x0b, 2, 0, 0, 0,
        1, b's',
        1, 2, b'{', b'}',             // filter Some("{}")
        0,                            // entity None
        1, 1, b'a',                   // prefix Some("a")
        0,                            // after None
        0xfb, 0x2c, 0x01,             // limit 300
    ];
    assert_eq!(wire(2, m), want);
    let m = Message::ScanPage(ScanPage {
        rows: vec![WireRow {
            key: keyed(),
            value: b"v".to_vec(),
            offset: 3,
        }],
        next: Some(b"k".to_vec()),
        fence: 4,
    });
    #[rustfmt::skip]
    let want = [
        17, 0, 0, 0, 2, 0x8b, 2, 0, 0, 0,
        1,                            // one row
        0, 1, b'k', 1, b'v', 3,
        1, 1, b'k',                   // next Some("k")
        4,                            // fence 4
    ];
    assert_eq!(wire(2, m), want);
}

#[test]
fn state_subscription_frames() {
    let m = Message::SubscribeState(SubscribeState {
        stream: "s".into(),
        snapshot: true,
        filter: None,
        from: Some(5),
    });
    assert_eq!(
        wire(9, m),
        [12, 0, 0, 0, 2, 0x0c, 9, 0, 0, 0, 1, b's', 1, 0, 1, 5]
    );
    let m = Message::StateSubscribed(StateSubscribed {
        mode: WireStateMode::Keyed,
    });
    assert_eq!(wire(9, m), [7, 0, 0, 0, 2, 0x8c, 9, 0, 0, 0, 1]);
    let m = Message::Snapshot(Snapshot {
        rows: vec![WireRow {
            key: entity(),
            value: b"{}".to_vec(),
            offset: 2,
        }],
    });
    #[rustfmt::skip]
    let want = [
        16, 0, 0, 0, 2, 0x93, 9, 0, 0, 0,
        1,                            // one row
        1, 1, b'u', 1, b'1',          // Entity "u" "1"
        2, b'{', b'}', 2,             // value "{}", offset 2
    ];
    assert_eq!(wire(9, m), want);
    let m = Message::SnapshotDone(SnapshotDone {
        fence: 300,
        rows: 2,
    });
    assert_eq!(
        wire(9, m),
        [10, 0, 0, 0, 2, 0x94, 9, 0, 0, 0, 0xfb, 0x2c, 0x01, 2]
    );
}

#[test]
fn changes() {
    let m = Message::Change(Change {
        offset: 5,
        op: ChangeOp::Upsert,
        key: Some(keyed()),
        value: Some(b"v".to_vec()),
    });
    assert_eq!(
        wire(9, m),
        [15, 0, 0, 0, 2, 0x95, 9, 0, 0, 0, 5, 0, 1, 0, 1, b'k', 1, 1, b'v']
    );
    let m = Message::Change(Change {
        offset: 6,
        op: ChangeOp::Delete,
        key: Some(keyed()),
        value: None,
    });
    assert_eq!(
        wire(9, m),
        [13, 0, 0, 0, 2, 0x95, 9, 0, 0, 0, 6, 1, 1, 0, 1, b'k', 0]
    );
    let m = Message::Change(Change {
        offset: 7,
        op: ChangeOp::Reset,
        key: None,
        value: None,
    });
    assert_eq!(wire(9, m), [10, 0, 0, 0, 2, 0x95, 9, 0, 0, 0, 7, 2, 0, 0]);
}

#[test]
fn create_and_info_carry_the_state() {
    let m = Message::Create(Create {
        stream: "s".into(),
        content_type: "t".into(),
        ttl_secs: None,
        expires_at_ms: None,
        state: Some(WireStateMode::StateProtocol),
    });
    assert_eq!(
        wire(3, m),
        [14, 0, 0, 0, 2, 0x03, 3, 0, 0, 0, 1, b's', 1, b't', 0, 0, 1, 2]
    );
    let info = StreamInfo {
        stream: "s".into(),
        content_type: "t".into(),
        ttl_secs: None,
        expires_at_ms: None,
        created_at_ms: 1,
        next_offset: 2,
        closed: false,
        state: Some(StateInfo {
            mode: WireStateMode::Keyed,
            building: Some(1),
        }),
    };
    #[rustfmt::skip]
    let want = [
        18, 0, 0, 0, 2, 0x84, 4, 0, 0, 0,
        1, b's', 1, b't', 0, 0, 1, 2, 0, // the version-1 fields
        1, 1, 1,                         // mode Keyed, building Some(1)
    ];
    assert_eq!(wire(4, Message::Info(info.clone())), want);
    let m = Message::Created(Created {
        created: true,
        info: info.clone(),
    });
    let mut want_created = vec![19, 0, 0, 0, 2, 0x83, 4, 0, 0, 0, 1];
    want_created.extend_from_slice(&want[10..]);
    assert_eq!(wire(4, m), want_created);
    // A version-1 peer gets the version-1 body: the state is left out.
    let v1 = Encoder::default()
        .encode(&Frame::new(4, Message::Info(info)))
        .unwrap()
        .to_bytes();
    assert_eq!(
        v1[..],
        [15, 0, 0, 0, 1, 0x84, 4, 0, 0, 0, 1, b's', 1, b't', 0, 0, 1, 2, 0]
    );
}

#[test]
fn tombstone_record() {
    let b = batch::build(7, 9, &[Record::tombstone("k")]).unwrap();
    #[rustfmt::skip]
    let want = [
        44, 0, 0, 0, 2, 0x90, 3, 0, 0, 0,
        7, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 1, 0, 0, 0,
        1, 1, 0, 0, 0,
        9, 0, 0, 0, 0, 0, 0, 0,
        5, 0, 0, 0,
        2, 0, 0, 0x80, b'k',          // key tag 2 with bit 31 set: tombstone of "k"
    ];
    assert_eq!(wire(3, Message::Data(b)), want);
}

#[test]
fn size_bounds_hold() {
    let enc = Encoder::default().with_version(STATE_VERSION);
    for m in super::samples::v2_messages() {
        let body = enc.encode(&Frame::new(1, m.clone())).unwrap().wire_len() - 10;
        match &m {
            Message::Change(c) => assert!(c.wire_len() >= body, "{m:?}"),
            Message::Snapshot(s) => {
                let rows: usize = s.rows.iter().map(WireRow::wire_len).sum();
                assert!(rows + 9 >= body, "{m:?}");
            }
            _ => {}
        }
    }
}

#[test]
fn wait() {
    let m = Message::Wait(Wait {
        stream: "s".into(),
        request: "{}".into(),
    });
    #[rustfmt::skip]
    let want = [
        11, 0, 0, 0, 2, 0x0d, 9, 0, 0, 0,
        1, b's',                      // stream "s"
        2, b'{', b'}',                // the wait document as JSON text
    ];
    assert_eq!(wire(9, m), want);
}

#[test]
fn wait_result() {
    let m = Message::WaitResult(WaitResult {
        status: WireWaitStatus::Timeout,
        cursor: "c".into(),
        epoch: "e".into(),
        generation: 2,
        effective_wait_kind: "fineKey".into(),
        bucket_max_source_offset_seq: "-1".into(),
        flush_at_ms: 300,
        bucket_start_ms: 5,
    });
    #[rustfmt::skip]
    let want = [
        27, 0, 0, 0, 2, 0x8d, 9, 0, 0, 0,
        1,                            // status: Timeout (tag 1)
        1, b'c',                      // cursor
        1, b'e',                      // epoch
        2,                            // generation
        7, b'f', b'i', b'n', b'e', b'K', b'e', b'y',
        2, b'-', b'1',                // bucketMaxSourceOffsetSeq
        0xfb, 0x2c, 0x01,             // flushAtMs 300
        5,                            // bucketStartMs
    ];
    assert_eq!(wire(9, m), want);
}

#[test]
fn activate_templates() {
    let m = Message::ActivateTemplates(ActivateTemplates {
        stream: "s".into(),
        request: "{}".into(),
    });
    let want = [11, 0, 0, 0, 2, 0x0e, 9, 0, 0, 0, 1, b's', 2, b'{', b'}'];
    assert_eq!(wire(9, m), want);
    let m = Message::TemplatesActivated(TemplatesActivated {
        activated: vec![ActivatedTemplate {
            template_id: "t".into(),
            active_from_touch_offset: "c".into(),
        }],
        denied: vec![DeniedTemplate {
            template_id: "0".into(),
            reason: "invalid".into(),
        }],
        max_active_templates_per_stream: 2,
        max_active_templates_per_entity: 1,
    });
    #[rustfmt::skip]
    let want = [
        24, 0, 0, 0, 2, 0x8e, 9, 0, 0, 0,
        1, 1, b't', 1, b'c',          // activated: one (templateId, activeFrom)
        1, 1, b'0',                   // denied: one, templateId "0"
        7, b'i', b'n', b'v', b'a', b'l', b'i', b'd',
        2, 1,                         // the two caps
    ];
    assert_eq!(wire(9, m), want);
}
