//! Property tests: any message decodes to itself however its bytes are
//! split, and no input, random or a damaged real frame, panics the decoder.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use weir_storage::{Batch, Record};

use crate::proto::batch;
use crate::proto::*;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn records(min: usize) -> impl Strategy<Value = Vec<Record>> {
    vec(
        (of(vec(any::<u8>(), 0..8)), vec(any::<u8>(), 0..40)),
        min..6,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .map(|(k, p)| Record {
                key: k.map(Bytes::from),
                payload: Bytes::from(p),
                tombstone: false,
            })
            .collect()
    })
}

/// A batch seen through an arbitrary non-empty sub-range.
fn data_batch() -> impl Strategy<Value = Batch> {
    (
        records(1),
        0..u64::MAX - 8,
        any::<u64>(),
        any::<usize>(),
        any::<usize>(),
    )
        .prop_map(|(recs, base, time, skip, take)| {
            let b = batch::build(base, time, &recs).unwrap();
            let b = b.skip_to(base + (skip % b.len()) as u64).unwrap();
            b.truncate(1 + take % b.len())
        })
}

fn producer() -> impl Strategy<Value = Option<Producer>> {
    of(
        (text(), any::<u64>(), any::<u64>()).prop_map(|(id, epoch, seq)| Producer {
            id,
            epoch,
            seq,
        }),
    )
}

fn info() -> impl Strategy<Value = StreamInfo> {
    (
        text(),
        text(),
        of(any::<u64>()),
        of(any::<u64>()),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                stream,
                content_type,
                ttl_secs,
                expires_at_ms,
                created_at_ms,
                next_offset,
                closed,
            )| StreamInfo {
                stream,
                content_type,
                ttl_secs,
                expires_at_ms,
                created_at_ms,
                next_offset,
                closed,
                state: None,
            },
        )
}

fn error_kind() -> impl Strategy<Value = ErrorKind> {
    (
        0u8..25,
        any::<u64>(),
        any::<u64>(),
        text(),
        text(),
        vec(any::<u8>(), 0..8),
    )
        .prop_map(|(code, a, b, s, t, v)| match code {
            0 => ErrorKind::MalformedFrame,
            1 => ErrorKind::FrameTooLarge {
                max_frame: a as u32,
            },
            2 => ErrorKind::UnsupportedVersion {
                min_version: a as u8,
                max_version: b as u8,
            },
            3 => ErrorKind::UnknownOpcode { opcode: a as u8 },
            4 => ErrorKind::UnexpectedMessage { opcode: a as u8 },
            5 => ErrorKind::BadRequestId,
            6 => ErrorKind::UnknownSubscription,
            7 => ErrorKind::Unauthorized,
            8 => ErrorKind::Busy,
            9 => ErrorKind::Internal,
            10 => ErrorKind::NotFound,
            11 => ErrorKind::ConfigConflict,
            12 => ErrorKind::Closed { next_offset: a },
            13 => ErrorKind::ContentTypeMismatch {
                expected: s,
                got: t,
            },
            14 => ErrorKind::StreamSeqRegression {
                last: v.clone(),
                received: v.into_iter().rev().collect(),
            },
            15 => ErrorKind::StaleEpoch { current: a },
            16 => ErrorKind::SequenceGap {
                expected: a,
                received: b,
            },
            17 => ErrorKind::EpochMustStartAtZero { received: a },
            18 => ErrorKind::EmptyAppend,
            19 => ErrorKind::OffsetOutOfRange { offset: a, tail: b },
            20 => ErrorKind::Invalid,
            21 => ErrorKind::ShutDown,
            22 => ErrorKind::Storage,
            23 => ErrorKind::Corrupt,
            _ => ErrorKind::Forbidden,
        })
}

fn message() -> impl Strategy<Value = Message> {
    let requests = prop_oneof![
        (any::<u8>(), any::<u8>(), any::<u32>(), text(), of(text())).prop_map(
            |(min_version, max_version, max_frame, client, auth_token)| Message::Hello(Hello {
                min_version,
                max_version,
                max_frame,
                client,
                auth_token,
            })
        ),
        Just(Message::Ping),
        (text(), text(), of(any::<u64>()), of(any::<u64>())).prop_map(
            |(stream, content_type, ttl_secs, expires_at_ms)| {
                Message::Create(Create {
                    stream,
                    content_type,
                    ttl_secs,
                    expires_at_ms,
                    state: None,
                })
            }
        ),
        text().prop_map(|stream| Message::Head(Head { stream })),
        text().prop_map(|stream| Message::Delete(Delete { stream })),
        (text(), producer(), any::<bool>(), records(0)).prop_map(
            |(stream, producer, close, records)| {
                Message::Append(Append {
                    stream,
                    producer,
                    close,
                    records,
                })
            }
        ),
        (text(), any::<u64>(), any::<u32>()).prop_map(|(stream, from, max_bytes)| Message::Read(
            Read {
                stream,
                from,
                max_bytes
            }
        )),
        (
            text(),
            prop_oneof![
                Just(SubscribeFrom::Start),
                Just(SubscribeFrom::Now),
                any::<u64>().prop_map(SubscribeFrom::Offset)
            ]
        )
            .prop_map(|(stream, from)| Message::Subscribe(Subscribe { stream, from })),
        any::<u32>().prop_map(|subscription| Message::Unsubscribe(Unsubscribe { subscription })),
    ];
    let replies = prop_oneof![
        (any::<u8>(), any::<u32>(), text()).prop_map(|(version, max_frame, server)| {
            Message::Welcome(Welcome {
                version,
                max_frame,
                server,
            })
        }),
        Just(Message::Pong),
        (any::<bool>(), info())
            .prop_map(|(created, info)| Message::Created(Created { created, info })),
        info().prop_map(Message::Info),
        Just(Message::Deleted),
        (
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            any::<bool>(),
            of((any::<u64>(), any::<u64>()))
        )
            .prop_map(|(first_offset, next_offset, duplicate, closed, producer)| {
                Message::Appended(Appended {
                    first_offset,
                    next_offset,
                    duplicate,
                    closed,
                    producer,
                })
            }),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(next_offset, tail, closed)| {
            Message::ReadDone(ReadDone {
                next_offset,
                tail,
                closed,
            })
        }),
        any::<u64>().prop_map(|fence| Message::Subscribed(Subscribed { fence })),
        any::<u64>().prop_map(|next_offset| Message::Unsubscribed(Unsubscribed { next_offset })),
        data_batch().prop_map(Message::Data),
        (any::<u64>(), any::<bool>()).prop_map(|(offset, lag)| Message::Resume(Resume {
            offset,
            reason: if lag {
                ResumeReason::Lagging
            } else {
                ResumeReason::ShuttingDown
            },
        })),
        any::<u64>().prop_map(|next_offset| Message::EndOfStream(EndOfStream { next_offset })),
        (error_kind(), text())
            .prop_map(|(kind, message)| Message::Error(WireError::new(kind, message))),
    ];
    prop_oneof![requests, replies]
}

proptest! {
    #[test]
    fn decode_inverts_encode(
        m in message(),
        id in any::<u32>(),
        cuts in vec(any::<usize>(), 0..4),
    ) {
        let frame = Frame::new(id, m);
        let wire = Encoder::default().encode(&frame).unwrap().to_bytes();
        prop_assert_eq!(decode_frame(wire.clone(), DEFAULT_MAX_FRAME).unwrap(), frame.clone());

        // The same bytes arriving in arbitrary pieces.
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        points.push(wire.len());
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::new();
        let mut from = 0;
        let mut got = None;
        for to in points {
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            if let Some(f) = decoder.decode(&mut buf).unwrap() {
                prop_assert!(got.is_none());
                got = Some(f);
            }
        }
        prop_assert_eq!(got, Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let mut decoder = Decoder::new(MIN_MAX_FRAME);
        let mut buf = BytesMut::from(&bytes[..]);
        // Stop when more bytes are needed or the framing is lost.
        while match decoder.decode(&mut buf) {
            Ok(frame) => frame.is_some(),
            Err(e) => !e.is_fatal(),
        } {}
        let _ = decode_frame(Bytes::from(bytes), MIN_MAX_FRAME);
    }

    #[test]
    fn damaged_frames_never_panic(
        m in message(),
        hits in vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut wire = Encoder::default().encode(&Frame::new(1, m)).unwrap().to_bytes().to_vec();
        for (at, byte) in hits {
            let at = at % wire.len();
            wire[at] = byte;
        }
        // Keep the prefix honest half of the time so bodies get exercised.
        if wire[0] % 2 == 0 {
            let len = (wire.len() - PREFIX_LEN) as u32;
            wire[..4].copy_from_slice(&len.to_le_bytes());
        }
        let _ = decode_frame(Bytes::from(wire.clone()), DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::from(&wire[..]);
        let _ = Decoder::default().decode(&mut buf);
    }
}
