//! The decoder facing broken or hostile input: incomplete frames wait,
//! oversized and undersized prefixes are refused at once, unknown versions
//! and opcodes and malformed bodies are reported with their request id, and
//! no input makes it panic.

use bytes::{BufMut, Bytes, BytesMut};

use super::samples::frames;
use crate::proto::*;

fn header(length: u32, version: u8, opcode: u8, id: u32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u32_le(length);
    b.put_u8(version);
    b.put_u8(opcode);
    b.put_u32_le(id);
    b
}

#[test]
fn truncated_at_every_position_needs_more_and_consumes_nothing() {
    for (frame, wire) in frames() {
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut decoder = Decoder::default();
            assert_eq!(
                decoder.decode(&mut buf),
                Ok(None),
                "{:?} cut at {cut}",
                frame.message.opcode()
            );
            assert_eq!(buf.len(), cut);
            // The rest arrives: the same decoder finishes the frame.
            buf.extend_from_slice(&wire[cut..]);
            assert_eq!(decoder.decode(&mut buf).unwrap().as_ref(), Some(&frame));
        }
    }
}

#[test]
fn truncated_whole_messages_are_refused() {
    for (_, wire) in frames() {
        for cut in 0..wire.len() {
            let e = decode_frame(wire.slice(..cut), DEFAULT_MAX_FRAME).unwrap_err();
            assert!(e.is_fatal(), "{e}");
        }
        let mut long = BytesMut::from(&wire[..]);
        long.put_u8(0);
        assert!(matches!(
            decode_frame(long.freeze(), DEFAULT_MAX_FRAME),
            Err(DecodeError::LengthMismatch { .. })
        ));
    }
}

#[test]
fn oversized_prefix_is_refused_from_the_prefix_alone() {
    let mut decoder = Decoder::new(MIN_MAX_FRAME);
    let mut buf = BytesMut::new();
    buf.put_u32_le(MIN_MAX_FRAME + 1);
    let e = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        e,
        DecodeError::FrameTooLarge {
            length: MIN_MAX_FRAME + 1,
            max_frame: MIN_MAX_FRAME
        }
    );
    assert!(e.is_fatal());
    assert_eq!(e.request_id(), CONNECTION_ID);
    assert_eq!(
        e.to_wire().kind,
        ErrorKind::FrameTooLarge {
            max_frame: MIN_MAX_FRAME
        }
    );
    // Nothing was reserved for the claimed size, and the decoder stays failed.
    assert!(buf.capacity() < 1024);
    buf.clear();
    buf.extend_from_slice(
        &Encoder::default()
            .encode(&Frame::new(1, Message::Ping))
            .unwrap()
            .to_bytes(),
    );
    assert_eq!(decoder.decode(&mut buf), Err(e));

    let mut buf = BytesMut::new();
    buf.put_u32_le(u32::MAX);
    assert!(Decoder::default().decode(&mut buf).unwrap_err().is_fatal());
    assert!(decode_frame(Bytes::from_static(&[0xff; 10]), DEFAULT_MAX_FRAME).is_err());
}

#[test]
fn the_limit_is_inclusive() {
    let max = MIN_MAX_FRAME;
    let records = vec![weir_storage::Record::new(vec![7u8; 60_000])];
    let append = |extra: usize| {
        let mut r = records.clone();
        r[0].payload = vec![7u8; 60_000 + extra].into();
        Frame::new(
            1,
            Message::Append(Append {
                stream: "s".into(),
                producer: None,
                close: false,
                records: r,
            }),
        )
    };
    let base = Encoder::new(max).encode(&append(0)).unwrap().wire_len() - PREFIX_LEN;
    let fits = append(max as usize - base);
    let wire = Encoder::new(max).encode(&fits).unwrap().to_bytes();
    assert_eq!(wire.len() - PREFIX_LEN, max as usize);
    assert_eq!(
        Decoder::new(max)
            .decode(&mut BytesMut::from(&wire[..]))
            .unwrap(),
        Some(fits)
    );
    let over = append(max as usize - base + 1);
    assert!(matches!(
        Encoder::new(max).encode(&over),
        Err(EncodeError::FrameTooLarge { .. })
    ));
    let mut buf = BytesMut::new();
    buf.put_u32_le(max + 1);
    assert!(Decoder::new(max).decode(&mut buf).is_err());
}

#[test]
fn undersized_prefix_is_fatal() {
    for length in 0..MIN_LENGTH {
        let mut buf = BytesMut::new();
        buf.put_u32_le(length);
        let e = Decoder::default().decode(&mut buf).unwrap_err();
        assert_eq!(e, DecodeError::FrameTooShort { length });
        assert!(e.is_fatal());
    }
}

#[test]
fn unknown_version_is_reported_and_skipped() {
    for version in [0u8, 3, 0x7f, 0xff] {
        let mut buf = header(MIN_LENGTH, version, Opcode::Ping as u8, 77);
        buf.extend_from_slice(
            &Encoder::default()
                .encode(&Frame::new(3, Message::Pong))
                .unwrap()
                .to_bytes(),
        );
        let mut decoder = Decoder::default();
        let e = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(
            e,
            DecodeError::UnsupportedVersion {
                version,
                request_id: 77
            }
        );
        assert!(!e.is_fatal());
        assert_eq!(e.request_id(), 77);
        assert_eq!(
            e.to_wire().kind,
            ErrorKind::UnsupportedVersion {
                min_version: MIN_VERSION,
                max_version: MAX_VERSION
            }
        );
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Some(Frame::new(3, Message::Pong))
        );
    }
}

#[test]
fn every_undefined_opcode_is_reported_and_skipped() {
    for byte in 0..=255u8 {
        if Opcode::from_u8(byte).is_some() {
            continue;
        }
        let mut buf = header(MIN_LENGTH + 3, VERSION, byte, 5);
        buf.put_slice(b"abc");
        buf.extend_from_slice(
            &Encoder::default()
                .encode(&Frame::new(6, Message::Ping))
                .unwrap()
                .to_bytes(),
        );
        let mut decoder = Decoder::default();
        let e = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(
            e,
            DecodeError::UnknownOpcode {
                opcode: byte,
                request_id: 5
            }
        );
        assert_eq!(e.to_wire().kind, ErrorKind::UnknownOpcode { opcode: byte });
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Some(Frame::new(6, Message::Ping))
        );
    }
}

#[test]
fn empty_bodies_must_be_empty() {
    for op in [Opcode::Ping, Opcode::Pong, Opcode::Deleted] {
        let mut buf = header(MIN_LENGTH + 1, VERSION, op as u8, 1);
        buf.put_u8(0);
        assert!(matches!(
            Decoder::default().decode(&mut buf),
            Err(DecodeError::Malformed { opcode, request_id: 1, .. }) if opcode == op
        ));
    }
}

#[test]
fn trailing_bytes_after_a_control_body_are_malformed() {
    for (frame, wire) in frames() {
        if matches!(
            frame.message,
            Message::Data(_) | Message::Ping | Message::Pong | Message::Deleted
        ) {
            continue;
        }
        if let Message::Append(a) = &frame.message {
            if !a.records.is_empty() {
                continue; // bytes after a batch are checked by the batch tests
            }
        }
        let mut buf = BytesMut::from(&wire[..]);
        buf.put_u8(0);
        let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) + 1;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        let e = Decoder::default().decode(&mut buf).unwrap_err();
        assert!(
            matches!(e, DecodeError::Malformed { .. }),
            "{:?}: {e}",
            frame.message.opcode()
        );
        assert_eq!(e.request_id(), frame.request_id);
        assert_eq!(e.to_wire().kind, ErrorKind::MalformedFrame);
    }
}

#[test]
fn every_opcode_rejects_a_truncated_body() {
    for (frame, wire) in frames() {
        let body = wire.len() - HEADER_LEN;
        for keep in 0..body {
            if keep == 0
                && matches!(
                    frame.message,
                    Message::Ping | Message::Pong | Message::Deleted
                )
            {
                continue;
            }
            let mut buf = BytesMut::from(&wire[..HEADER_LEN + keep]);
            buf[..4].copy_from_slice(&(MIN_LENGTH + keep as u32).to_le_bytes());
            let got = Decoder::default().decode(&mut buf);
            // A shorter body may still be valid (e.g. a shorter string
            // prefix); it must never decode to the original frame.
            if let Ok(Some(f)) = got {
                assert_ne!(f, frame);
            }
        }
    }
}

#[test]
fn huge_claimed_string_length_does_not_allocate() {
    // A Head whose stream name claims u64::MAX bytes, then a few bytes.
    let mut buf = header(MIN_LENGTH + 11, VERSION, Opcode::Head as u8, 2);
    buf.put_u8(253); // bincode varint tag for a following u64
    buf.put_u64_le(u64::MAX);
    buf.put_slice(b"ab");
    let e = Decoder::default().decode(&mut buf).unwrap_err();
    assert!(matches!(e, DecodeError::Malformed { .. }), "{e}");
    // Just above the control limit, but well within the frame.
    let mut buf = header(MIN_LENGTH + 5, VERSION, Opcode::Head as u8, 2);
    buf.put_u8(252);
    buf.put_u32_le(MAX_CONTROL_LEN as u32 + 1);
    assert!(Decoder::default().decode(&mut buf).is_err());
}

#[test]
fn bodies_over_the_control_limit_are_refused() {
    let big = Frame::new(
        1,
        Message::Head(Head {
            stream: "x".repeat(MAX_CONTROL_LEN),
        }),
    );
    assert!(matches!(
        Encoder::default().encode(&big),
        Err(EncodeError::ControlTooLarge { .. })
    ));
    let mut buf = header(
        MIN_LENGTH + MAX_CONTROL_LEN as u32 + 1,
        VERSION,
        Opcode::Head as u8,
        1,
    );
    buf.put_bytes(0, MAX_CONTROL_LEN + 1);
    assert!(matches!(
        Decoder::default().decode(&mut buf),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn invalid_utf8_in_a_string_is_malformed() {
    let mut buf = header(MIN_LENGTH + 3, VERSION, Opcode::Head as u8, 1);
    buf.put_u8(2);
    buf.put_slice(&[0xc3, 0x28]);
    assert!(matches!(
        Decoder::default().decode(&mut buf),
        Err(DecodeError::Malformed { .. })
    ));
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn garbage_never_panics() {
    for seed in 0..2000u64 {
        let bytes = noise(seed, (seed % 97) as usize);
        drain(&bytes);
        // Garbage behind a plausible header reaches every body decoder.
        for op in Opcode::ALL {
            let mut buf = header(MIN_LENGTH + bytes.len() as u32, VERSION, op as u8, 1);
            buf.put_slice(&bytes);
            drain(&buf);
        }
    }
}

#[test]
fn every_single_byte_corruption_is_handled() {
    for (_, wire) in frames() {
        for at in 0..wire.len() {
            for delta in [1u8, 0x80, 0xff] {
                let mut bad = wire.to_vec();
                bad[at] = bad[at].wrapping_add(delta);
                drain(&bad);
                let _ = decode_frame(Bytes::from(bad), DEFAULT_MAX_FRAME);
            }
        }
    }
}

/// Feeds `bytes` to a decoder until it needs more or fails for good.
fn drain(bytes: &[u8]) {
    let mut decoder = Decoder::new(MIN_MAX_FRAME);
    let mut buf = BytesMut::from(bytes);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) if e.is_fatal() => break,
            Err(e) => {
                let _ = e.to_wire();
            }
        }
    }
}

#[test]
fn huge_claimed_byte_field_in_an_error_is_refused() {
    // Error { kind: StreamSeqRegression { last: <claims 2^60 bytes> .. } }
    let mut buf = header(MIN_LENGTH + 11, VERSION, Opcode::Error as u8, 0);
    buf.put_u8(14);
    buf.put_u8(253);
    buf.put_u64_le(1 << 60);
    buf.put_u8(0);
    assert!(matches!(
        Decoder::default().decode(&mut buf),
        Err(DecodeError::Malformed { .. })
    ));
}
