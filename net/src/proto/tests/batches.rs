//! Record batches: the stored bytes travel without copies in both
//! directions, partial batches are compacted only when that saves bytes,
//! and every damaged descriptor or layout is refused.

use bytes::{BufMut, Bytes, BytesMut};
use weir_storage::Record;

use super::samples::batch_at;
use crate::proto::batch::{self, DATA_HEAD_LEN, LAYOUT_HEADER_LEN};
use crate::proto::*;

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (i, o) = (inner.as_ptr() as usize, outer.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

#[test]
fn data_frames_share_the_stored_bytes() {
    let b = batch_at(3);
    let enc = Encoder::default()
        .encode(&Frame::new(1, Message::Data(b.clone())))
        .unwrap();
    assert_eq!(enc.tail().as_ptr(), b.raw().as_ptr());
    assert_eq!(enc.head().len(), HEADER_LEN + DATA_HEAD_LEN);
    // Fan-out: many subscribers, one copy of the payloads.
    for id in 2..10 {
        let e = Encoder::default()
            .encode(&Frame::new(id, Message::Data(b.clone())))
            .unwrap();
        assert_eq!(e.tail().as_ptr(), b.raw().as_ptr());
    }
}

#[test]
fn decoded_data_and_appends_borrow_the_read_buffer() {
    let b = batch_at(3);
    let wire = Encoder::default()
        .encode(&Frame::new(1, Message::Data(b)))
        .unwrap()
        .to_bytes();
    let Message::Data(got) = decode_frame(wire.clone(), DEFAULT_MAX_FRAME)
        .unwrap()
        .message
    else {
        panic!("not data")
    };
    assert!(within(got.raw(), &wire));

    let append = Append {
        stream: "s".into(),
        producer: None,
        close: false,
        records: vec![Record::keyed("key", "payload"), Record::new("p2")],
    };
    let wire = Encoder::default()
        .encode(&Frame::new(1, Message::Append(append)))
        .unwrap()
        .to_bytes();
    let Message::Append(got) = decode_frame(wire.clone(), DEFAULT_MAX_FRAME)
        .unwrap()
        .message
    else {
        panic!("not append")
    };
    for r in &got.records {
        assert!(within(&r.payload, &wire));
        assert!(r.key.as_ref().is_none_or(|k| within(k, &wire)));
    }
}

#[test]
fn build_and_records_are_inverse() {
    let recs = vec![
        Record::new("a"),
        Record::keyed("", ""),
        Record::keyed("k", "v"),
        Record::new(""),
    ];
    let b = batch::build(100, 5, &recs).unwrap();
    assert_eq!(
        (b.first_offset(), b.next_offset(), b.append_time_ms()),
        (100, 104, 5)
    );
    assert_eq!(batch::records(&b), recs);
    assert_eq!(batch::build(0, 0, &[]), Err(EncodeError::EmptyBatch));
}

#[test]
fn for_wire_keeps_whole_batches_and_compacts_mostly_hidden_ones() {
    let recs: Vec<Record> = (0..100).map(|i| Record::new(vec![i as u8; 100])).collect();
    let b = batch::build(1000, 42, &recs).unwrap();
    let same = batch::for_wire(&b, DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(same.raw().as_ptr(), b.raw().as_ptr());
    // Most of the batch visible: still zero-copy.
    let most = b.skip_to(1010).unwrap();
    assert_eq!(
        batch::for_wire(&most, DEFAULT_MAX_FRAME)
            .unwrap()
            .raw()
            .as_ptr(),
        b.raw().as_ptr()
    );
    // Two records out of a hundred: compacted to just them.
    let two = b.skip_to(1050).unwrap().truncate(2);
    let c = batch::for_wire(&two, DEFAULT_MAX_FRAME).unwrap();
    assert_ne!(c.raw().as_ptr(), b.raw().as_ptr());
    assert_eq!(c.raw().len(), LAYOUT_HEADER_LEN + 2 * (4 + 4 + 100));
    assert_eq!(
        (c.first_offset(), c.next_offset(), c.append_time_ms()),
        (1050, 1052, 42)
    );
    assert!(c.iter().zip(two.iter()).all(|(x, y)| x == y));
    // A whole batch above the peer's limit is compacted to what is visible...
    let small = MIN_MAX_FRAME;
    let big: Vec<Record> = (0..10).map(|_| Record::new(vec![0u8; 10_000])).collect();
    let big = batch::build(0, 0, &big).unwrap();
    let part = big.fit(30_000);
    let c = batch::for_wire(&part, small).unwrap();
    assert_eq!(c.len(), part.len());
    assert!(Encoder::new(small)
        .encode(&Frame::new(1, Message::Data(c)))
        .is_ok());
    // ...and refused when even that does not fit.
    assert!(matches!(
        batch::for_wire(&big, small),
        Err(EncodeError::FrameTooLarge { max_frame, .. }) if max_frame == small
    ));
    assert!(matches!(
        Encoder::new(small).encode(&Frame::new(1, Message::Data(big))),
        Err(EncodeError::FrameTooLarge { .. })
    ));
}

fn data_body(base: u64, start: u32, end: u32, layout: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u32_le(MIN_LENGTH + (DATA_HEAD_LEN + layout.len()) as u32);
    buf.put_u8(VERSION);
    buf.put_u8(Opcode::Data as u8);
    buf.put_u32_le(4);
    buf.put_u64_le(base);
    buf.put_u32_le(start);
    buf.put_u32_le(end);
    buf.put_slice(layout);
    buf.freeze()
}

#[test]
fn damaged_data_frames_are_malformed() {
    let layout = batch_at(0).raw().clone(); // 4 records
    let ok = data_body(7, 1, 3, &layout);
    let Message::Data(b) = decode_frame(ok, DEFAULT_MAX_FRAME).unwrap().message else {
        panic!("not data")
    };
    assert_eq!((b.first_offset(), b.next_offset()), (8, 10));

    let bad = |body: Bytes| {
        let e = decode_frame(body, DEFAULT_MAX_FRAME).unwrap_err();
        assert!(
            matches!(e, DecodeError::Malformed { request_id: 4, .. }),
            "{e}"
        );
    };
    bad(data_body(0, 2, 2, &layout)); // empty range
    bad(data_body(0, 3, 2, &layout)); // reversed
    bad(data_body(0, 0, 5, &layout)); // past the end
    bad(data_body(u64::MAX - 2, 0, 1, &layout)); // offsets overflow
    bad(data_body(0, 0, 1, &layout[..layout.len() - 1])); // cut layout
    bad(data_body(0, 0, 1, &[])); // no layout
    let mut trailing = layout.to_vec();
    trailing.push(0);
    bad(data_body(0, 0, 1, &trailing));
    let mut version = layout.to_vec();
    version[0] = 2;
    bad(data_body(0, 0, 1, &version));
    // Descriptor itself cut short.
    let mut short = BytesMut::new();
    short.put_u32_le(MIN_LENGTH + 8);
    short.put_u8(VERSION);
    short.put_u8(Opcode::Data as u8);
    short.put_u32_le(4);
    short.put_u64_le(0);
    bad(short.freeze());
}

#[test]
fn damaged_append_bodies_are_malformed() {
    let frame = |body: &[u8]| {
        let mut buf = BytesMut::new();
        buf.put_u32_le(MIN_LENGTH + body.len() as u32);
        buf.put_u8(VERSION);
        buf.put_u8(Opcode::Append as u8);
        buf.put_u32_le(8);
        buf.put_slice(body);
        decode_frame(buf.freeze(), DEFAULT_MAX_FRAME)
    };
    assert!(frame(&[1, 0]).is_err()); // no room for the length prefix
    assert!(frame(&[9, 0, 0, 0, 0]).is_err()); // control part overruns
    assert!(frame(&[0xff, 0xff, 0xff, 0xff]).is_err());
    // A valid control part followed by a damaged batch.
    let mut body = vec![4, 0, 0, 0, 1, b's', 0, 0];
    assert!(frame(&body).is_ok());
    body.extend_from_slice(&[1, 0, 0, 0, 0]);
    assert!(matches!(
        frame(&body),
        Err(DecodeError::Malformed { request_id: 8, .. })
    ));
}
