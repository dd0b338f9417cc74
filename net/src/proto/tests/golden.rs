//! Exact bytes of a few frames, as PROTOCOL.md shows them, so that neither a
//! change in bincode's encoding nor in the engine's stored layout can slip
//! onto the wire unnoticed.

use bytes::Bytes;
use weir_storage::{AppendRequest, Engine, EngineConfig, Record, StreamConfig};

use crate::proto::batch;
use crate::proto::*;

fn wire(id: u32, m: Message) -> Vec<u8> {
    let f = Frame::new(id, m);
    let bytes = Encoder::default().encode(&f).unwrap().to_bytes();
    assert_eq!(decode_frame(bytes.clone(), DEFAULT_MAX_FRAME).unwrap(), f);
    bytes.to_vec()
}

#[test]
fn ping() {
    assert_eq!(wire(1, Message::Ping), [6, 0, 0, 0, 1, 0x02, 1, 0, 0, 0]);
}

#[test]
fn read_request() {
    let m = Message::Read(Read {
        stream: "s".into(),
        from: 5,
        max_bytes: 300,
    });
    #[rustfmt::skip]
    let want = [
        12, 0, 0, 0, 1, 0x07, 0x02, 0x01, 0, 0, // header, request id 0x0102
        1, b's',                                // stream: length 1, "s"
        5,                                      // from: varint 5
        0xfb, 0x2c, 0x01,                       // max_bytes: varint 300 (u16 follows)
    ];
    assert_eq!(wire(0x0102, m), want);
}

#[test]
fn error_frame() {
    let m = Message::Error(WireError::new(
        ErrorKind::SequenceGap {
            expected: 6,
            received: 9,
        },
        "gap",
    ));
    assert_eq!(
        wire(5, m),
        [13, 0, 0, 0, 1, 0xff, 5, 0, 0, 0, 16, 6, 9, 3, b'g', b'a', b'p']
    );
}

#[test]
fn append_request() {
    let m = Message::Append(Append {
        stream: "s".into(),
        producer: Some(Producer {
            id: "p".into(),
            epoch: 1,
            seq: 2,
        }),
        close: true,
        records: vec![Record::new("x")],
    });
    #[rustfmt::skip]
    let want = [
        40, 0, 0, 0, 1, 0x06, 4, 0, 0, 0,
        8, 0, 0, 0,                    // control part length
        1, b's', 1, 1, b'p', 1, 2, 1,  // stream "s", Some(producer "p", 1, 2), close
        1, 1, 0, 0, 0,                 // layout version, count 1
        0, 0, 0, 0, 0, 0, 0, 0,        // append time (0 in requests)
        5, 0, 0, 0,                    // end of record 0
        0, 0, 0, 0, b'x',              // no key, payload "x"
    ];
    assert_eq!(wire(4, m), want);
}

#[test]
fn data_frame() {
    let b = batch::build(7, 9, &[Record::keyed("k", "v")]).unwrap();
    #[rustfmt::skip]
    let want = [
        45, 0, 0, 0, 1, 0x90, 3, 0, 0, 0,
        7, 0, 0, 0, 0, 0, 0, 0,        // base offset 7
        0, 0, 0, 0, 1, 0, 0, 0,        // visible records [0, 1)
        1, 1, 0, 0, 0,                 // layout version, count 1
        9, 0, 0, 0, 0, 0, 0, 0,        // append time 9
        6, 0, 0, 0,                    // end of record 0
        2, 0, 0, 0, b'k', b'v',        // key tag 1 + 1, key "k", payload "v"
    ];
    assert_eq!(wire(3, Message::Data(b)), want);
}

/// The engine's stored bytes are the wire layout: an append decoded from a
/// frame, committed, and read back goes out as exactly the bytes this
/// codec's own writer produces for those records.
#[test]
fn engine_batches_go_out_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    engine
        .create_stream("s", StreamConfig::new("application/octet-stream"))
        .unwrap();
    let records = vec![
        Record::keyed("k", "v1"),
        Record::new("v2"),
        Record::keyed("", ""),
    ];
    let frame = Frame::new(
        1,
        Message::Append(Append {
            stream: "s".into(),
            producer: None,
            close: false,
            records: records.clone(),
        }),
    );
    let wire_in = Encoder::default().encode(&frame).unwrap().to_bytes();
    let Message::Append(a) = decode_frame(wire_in, DEFAULT_MAX_FRAME).unwrap().message else {
        panic!("not append")
    };
    let req = AppendRequest {
        records: a.records,
        ..Default::default()
    };
    assert_eq!(engine.append(&a.stream, req).unwrap().next_offset, 3);

    let read = engine.read("s", 1, 1 << 20).unwrap();
    let stored = &read.batches[0];
    let mine = batch::build(0, stored.append_time_ms(), &records).unwrap();
    assert_eq!(stored.raw(), mine.raw());
    let out = Encoder::default()
        .encode(&Frame::new(2, Message::Data(stored.clone())))
        .unwrap();
    assert_eq!(out.tail().as_ptr(), stored.raw().as_ptr());
    let Message::Data(got) = decode_frame(out.to_bytes(), DEFAULT_MAX_FRAME)
        .unwrap()
        .message
    else {
        panic!("not data")
    };
    assert_eq!((got.first_offset(), got.len()), (1, 2));
    assert_eq!(got.payload_bytes(0), Some(Bytes::from_static(b"v2")));
    engine.shutdown();
}
