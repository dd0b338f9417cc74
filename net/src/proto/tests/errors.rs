//! Error codes: each kind's code is what goes on the wire, codes are dense
//! and unique, and every engine error survives the trip to a client.

use bytes::BytesMut;
use weir_storage::Error as StorageError;

use super::samples::error_kinds;
use crate::proto::control;
use crate::proto::*;

#[test]
fn codes_are_the_wire_tags_dense_and_unique() {
    let kinds = error_kinds();
    for (i, kind) in kinds.iter().enumerate() {
        assert_eq!(kind.code() as usize, i, "{kind:?}");
        let mut out = BytesMut::new();
        control::encode(&WireError::new(kind.clone(), ""), &mut out).unwrap();
        assert_eq!(out[0] as u16, kind.code(), "{kind:?}");
    }
    assert_eq!(kinds.len(), 25);
}

fn storage_errors() -> Vec<StorageError> {
    vec![
        StorageError::NotFound,
        StorageError::ConfigConflict,
        StorageError::Closed { next_offset: 5 },
        StorageError::ContentTypeMismatch {
            expected: "a/b".into(),
            got: "c/d".into(),
        },
        StorageError::StreamSeqRegression {
            last: b"b".to_vec(),
            received: b"a".to_vec(),
        },
        StorageError::StaleEpoch { current: 3 },
        StorageError::SequenceGap {
            expected: 1,
            received: 4,
        },
        StorageError::EpochMustStartAtZero { received: 2 },
        StorageError::EmptyAppend,
        StorageError::OffsetOutOfRange { offset: 9, tail: 4 },
        StorageError::Invalid("stream name must be 1..=1024 bytes".into()),
        StorageError::ShutDown,
        StorageError::Storage("IO error: disk full".into()),
        StorageError::Corrupt("batch at offset 3: no records".into()),
    ]
}

#[test]
fn every_storage_error_round_trips_through_the_wire() {
    for e in storage_errors() {
        let wire = WireError::from(&e);
        assert!(wire.kind.code() >= 10, "{e:?} maps to a protocol code");
        let mut out = BytesMut::new();
        control::encode(&wire, &mut out).unwrap();
        let back: WireError = control::decode(&out).unwrap();
        assert_eq!(back.to_storage(), Some(e.clone()));
        assert!(!back.message.is_empty());
    }
}

#[test]
fn protocol_kinds_are_not_storage_errors() {
    for kind in error_kinds().into_iter().filter(|k| k.code() < 10) {
        assert_eq!(WireError::new(kind, "x").to_storage(), None);
    }
}

#[test]
fn long_fields_are_cut_on_character_boundaries() {
    let long = "\u{e9}".repeat(MAX_ERROR_FIELD); // two bytes per character
    let e = WireError::from(&StorageError::ContentTypeMismatch {
        expected: long.clone(),
        got: long.clone(),
    });
    let ErrorKind::ContentTypeMismatch { expected, got } = &e.kind else {
        panic!("wrong kind")
    };
    assert_eq!(expected.len(), MAX_ERROR_FIELD);
    assert_eq!(got.len(), MAX_ERROR_FIELD);
    assert!(e.message.len() <= MAX_ERROR_FIELD);
    let seq = WireError::from(&StorageError::StreamSeqRegression {
        last: vec![1; 5000],
        received: vec![2; 5000],
    });
    // Even the largest error the engine can produce fits a control message.
    let mut out = BytesMut::new();
    control::encode(&seq, &mut out).unwrap();
    control::encode(&e, &mut out).unwrap();
    let odd = WireError::new(ErrorKind::Invalid, format!("a{long}"));
    assert_eq!(odd.message.len(), MAX_ERROR_FIELD - 1);
}

#[test]
fn decode_errors_map_to_their_kinds() {
    let cases = [
        (
            DecodeError::FrameTooLarge {
                length: 9,
                max_frame: 8,
            },
            1,
        ),
        (DecodeError::FrameTooShort { length: 2 }, 0),
        (
            DecodeError::LengthMismatch {
                length: Some(3),
                actual: 4,
            },
            0,
        ),
        (
            DecodeError::UnsupportedVersion {
                version: 9,
                request_id: 1,
            },
            2,
        ),
        (
            DecodeError::UnknownOpcode {
                opcode: 0x55,
                request_id: 1,
            },
            3,
        ),
        (
            DecodeError::Malformed {
                opcode: Opcode::Read,
                request_id: 1,
                reason: "x".into(),
            },
            0,
        ),
    ];
    for (e, code) in cases {
        let wire = e.to_wire();
        assert_eq!(wire.kind.code(), code, "{e}");
        assert_eq!(wire.message, e.to_string());
    }
}

#[test]
fn a_full_disk_is_a_storage_error_that_says_so() {
    let e = StorageError::NoSpace("IO error: No space left on device".into());
    let wire = WireError::from(&e);
    assert_eq!(wire.kind, ErrorKind::Storage);
    assert!(
        wire.message.starts_with("storage full: "),
        "{}",
        wire.message
    );
    assert!(wire.message.contains("writes resume once space is freed"));
}
