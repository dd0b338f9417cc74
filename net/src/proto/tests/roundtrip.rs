//! Every sample message survives encode then decode, however the bytes are
//! cut into reads, and several frames in one buffer come out in order.

use std::collections::HashSet;

use bytes::{Buf, BytesMut};

use super::samples::{encoder_for, frames, messages};
use crate::proto::*;

#[test]
fn samples_cover_every_opcode() {
    let seen: HashSet<Opcode> = messages().iter().map(Message::opcode).collect();
    for op in Opcode::ALL {
        assert!(seen.contains(&op), "no sample for {op:?}");
    }
}

#[test]
fn opcodes_round_trip_and_partition() {
    for op in Opcode::ALL {
        assert_eq!(Opcode::from_u8(op as u8), Some(op));
        let is_reply = matches!(
            op,
            Opcode::Data
                | Opcode::Resume
                | Opcode::EndOfStream
                | Opcode::Snapshot
                | Opcode::SnapshotDone
                | Opcode::Change
                | Opcode::Error
        ) || Opcode::ALL
            .iter()
            .any(|r| r.is_request() && (*r as u8 | 0x80) == op as u8);
        assert_eq!(op.is_request(), !is_reply, "{op:?}");
    }
    let defined = (0..=255u8)
        .filter(|b| Opcode::from_u8(*b).is_some())
        .count();
    assert_eq!(defined, Opcode::ALL.len());
}

#[test]
fn every_message_round_trips() {
    for (frame, wire) in frames() {
        let mut buf = BytesMut::from(&wire[..]);
        let got = Decoder::default().decode(&mut buf).unwrap();
        assert_eq!(got.as_ref(), Some(&frame));
        assert!(
            buf.is_empty(),
            "{:?} left bytes behind",
            frame.message.opcode()
        );
        assert_eq!(
            decode_frame(wire.clone(), DEFAULT_MAX_FRAME).unwrap(),
            frame
        );
    }
}

#[test]
fn header_fields_are_where_the_spec_says() {
    for (frame, wire) in frames() {
        assert_eq!(
            u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize,
            wire.len() - 4
        );
        assert_eq!(wire[4], frame.version);
        assert_eq!(wire[5], frame.message.opcode() as u8);
        assert_eq!(
            u32::from_le_bytes(wire[6..10].try_into().unwrap()),
            frame.request_id
        );
    }
}

#[test]
fn vectored_parts_equal_the_contiguous_frame() {
    for (frame, wire) in frames() {
        let enc = encoder_for(&frame).encode(&frame).unwrap();
        assert_eq!(enc.wire_len(), wire.len());
        let mut buf = enc.into_buf();
        assert_eq!(buf.copy_to_bytes(wire.len()), wire);
    }
}

#[test]
fn byte_at_a_time_feeding_yields_each_frame_once() {
    let all = frames();
    let stream: Vec<u8> = all.iter().flat_map(|(_, w)| w.iter().copied()).collect();
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in stream {
        buf.extend_from_slice(&[byte]);
        while let Some(f) = decoder.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    let want: Vec<Frame> = all.into_iter().map(|(f, _)| f).collect();
    assert_eq!(got, want);
}

#[test]
fn one_buffer_of_many_frames_decodes_in_order() {
    let all = frames();
    let mut buf = BytesMut::new();
    for (_, w) in &all {
        buf.extend_from_slice(w);
    }
    let mut decoder = Decoder::default();
    for (frame, _) in &all {
        assert_eq!(decoder.decode(&mut buf).unwrap().as_ref(), Some(frame));
    }
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
}

#[test]
fn version_two_opcodes_are_unknown_in_version_one() {
    for op in Opcode::ALL.into_iter().filter(|op| op.since() == 2) {
        let f = frames()
            .into_iter()
            .find(|(f, _)| f.message.opcode() == op)
            .unwrap();
        let mut wire = f.1.to_vec();
        wire[4] = VERSION;
        assert_eq!(
            decode_frame(wire.into(), DEFAULT_MAX_FRAME),
            Err(DecodeError::UnknownOpcode {
                opcode: op as u8,
                request_id: f.0.request_id
            })
        );
        assert!(matches!(
            Encoder::default().encode(&f.0),
            Err(EncodeError::NotInVersion { .. })
        ));
    }
}

#[test]
fn handshake_frames_stay_version_one() {
    let enc = Encoder::default().with_version(STATE_VERSION);
    for m in messages() {
        let op = m.opcode();
        if !matches!(op, Opcode::Hello | Opcode::Welcome | Opcode::Error) {
            continue;
        }
        let wire = enc.encode(&Frame::new(1, m)).unwrap().to_bytes();
        assert_eq!(wire[4], VERSION, "{op:?}");
    }
}
