//! The chunk decoder: the same frames as the buffer decoder however the
//! bytes are cut, whole-in-a-chunk frames without a copy, and the same
//! errors for bad prefixes and truncated streams.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use super::samples::{batch_at, frames};
use crate::proto::*;

/// Every frame `ChunkDecoder` yields for `wire` cut at `points` (sorted).
fn through_chunks(wire: &Bytes, points: &[usize]) -> Vec<Frame> {
    let mut d = ChunkDecoder::new(DEFAULT_MAX_FRAME);
    let mut out = Vec::new();
    let mut from = 0;
    for &to in points.iter().chain(std::iter::once(&wire.len())) {
        d.push(wire.slice(from..to));
        from = to;
        while let Some(f) = d.next_frame().unwrap() {
            out.push(f);
        }
    }
    assert!(d.is_empty(), "bytes left over");
    assert_eq!(d.truncated(), None);
    out
}

fn all_samples() -> (Vec<Frame>, Bytes) {
    let mut wire = BytesMut::new();
    let mut want = Vec::new();
    for (f, w) in frames() {
        wire.extend_from_slice(&w);
        want.push(f);
    }
    (want, wire.freeze())
}

#[test]
fn every_sample_in_one_chunk_and_byte_by_byte() {
    let (want, wire) = all_samples();
    assert_eq!(through_chunks(&wire, &[]), want);
    let every: Vec<usize> = (1..wire.len()).collect();
    assert_eq!(through_chunks(&wire, &every), want);
}

#[test]
fn a_frame_inside_one_chunk_is_not_copied() {
    let frame = Frame::new(9, Message::Data(batch_at(5)));
    let wire = Encoder::default().encode(&frame).unwrap().to_bytes();
    let mut d = ChunkDecoder::new(DEFAULT_MAX_FRAME);
    d.push(wire.clone());
    let Some(Frame {
        message: Message::Data(b),
        ..
    }) = d.next_frame().unwrap()
    else {
        panic!("expected the data frame");
    };
    let (inner, outer) = (b.raw().as_ptr() as usize, wire.as_ptr() as usize);
    assert!(inner >= outer && inner + b.raw().len() <= outer + wire.len());
}

#[test]
fn a_chunk_pushed_before_the_last_was_drained_keeps_its_order() {
    let (want, wire) = all_samples();
    let mut d = ChunkDecoder::new(DEFAULT_MAX_FRAME);
    let mid = wire.len() / 2;
    d.push(wire.slice(..mid));
    d.push(wire.slice(mid..));
    let mut got = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        got.push(f);
    }
    assert_eq!(got, want);
}

#[test]
fn an_oversized_prefix_is_fatal_before_its_body_arrives() {
    let mut d = ChunkDecoder::new(MIN_MAX_FRAME);
    d.push(Bytes::copy_from_slice(
        &(MIN_MAX_FRAME + 1).to_le_bytes()[..3],
    ));
    assert_eq!(d.next_frame(), Ok(None));
    d.push(Bytes::copy_from_slice(
        &(MIN_MAX_FRAME + 1).to_le_bytes()[3..],
    ));
    let e = d.next_frame().unwrap_err();
    assert!(e.is_fatal(), "{e}");
    d.push(Bytes::from_static(&[0; 64]));
    assert_eq!(d.next_frame().unwrap_err(), e, "the framing stays lost");
}

#[test]
fn a_stream_that_ends_inside_a_frame_is_reported() {
    let (_, wire) = all_samples();
    let mut d = ChunkDecoder::new(DEFAULT_MAX_FRAME);
    let first = frames()[0].1.len();
    d.push(wire.slice(..first + 6));
    assert!(d.next_frame().unwrap().is_some());
    assert_eq!(d.next_frame(), Ok(None));
    let length = u32::from_le_bytes(wire[first..first + 4].try_into().unwrap());
    assert_eq!(
        d.truncated(),
        Some(DecodeError::LengthMismatch {
            length: Some(length),
            actual: 2
        })
    );
    let mut short = ChunkDecoder::new(DEFAULT_MAX_FRAME);
    short.push(Bytes::from_static(&[1, 0]));
    assert_eq!(short.next_frame(), Ok(None));
    assert_eq!(
        short.truncated(),
        Some(DecodeError::LengthMismatch {
            length: None,
            actual: 0
        })
    );
}

#[test]
fn a_malformed_frame_is_consumed_and_decoding_goes_on() {
    let (f, good) = frames().remove(0);
    let mut bad = good.to_vec();
    bad[4] = 0; // no such version
    let mut wire = bad;
    wire.extend_from_slice(&good);
    let mut d = ChunkDecoder::new(DEFAULT_MAX_FRAME);
    d.push(Bytes::from(wire));
    let e = d.next_frame().unwrap_err();
    assert!(!e.is_fatal());
    assert_eq!(d.next_frame(), Ok(Some(f)));
}

proptest! {
    #[test]
    fn any_cut_yields_the_frames_the_buffer_decoder_yields(
        picks in vec(0usize..64, 1..12),
        cuts in vec(any::<usize>(), 0..24),
    ) {
        let samples = frames();
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for p in picks {
            let (f, w) = &samples[p % samples.len()];
            wire.extend_from_slice(w);
            want.push(f.clone());
        }
        let wire = wire.freeze();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        prop_assert_eq!(through_chunks(&wire, &points), want);
    }

    #[test]
    fn random_chunks_decode_as_the_buffer_decoder_does(
        chunks in vec(vec(any::<u8>(), 0..64), 0..16),
    ) {
        let mut buffered = Decoder::new(MIN_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut want = Vec::new();
        'feed: for c in &chunks {
            buf.extend_from_slice(c);
            loop {
                match buffered.decode(&mut buf) {
                    Ok(Some(f)) => want.push(f),
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => break 'feed,
                    Err(_) => {}
                }
            }
        }
        let mut d = ChunkDecoder::new(MIN_MAX_FRAME);
        let mut got = Vec::new();
        'chunks: for c in chunks {
            d.push(Bytes::from(c));
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => break 'chunks,
                    Err(_) => {}
                }
            }
        }
        let _ = d.truncated();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_hostile_prefix_reserves_little_before_its_bytes_arrive() {
    // A prefix claiming a 16 MiB frame, followed by a trickle of bytes.
    let mut d = ChunkDecoder::new(DEFAULT_MAX_FRAME);
    let mut head = DEFAULT_MAX_FRAME.to_le_bytes().to_vec();
    head.extend_from_slice(&[1, 2, 3, 4]);
    d.push(Bytes::from(head));
    assert_eq!(d.next_frame(), Ok(None));
    assert!(
        d.held_capacity() <= 256 << 10,
        "reserved {} bytes for 8 received",
        d.held_capacity()
    );
}

#[test]
fn a_frame_larger_than_the_reserve_is_collected_across_many_chunks() {
    let big = crate::proto::batch::build(
        3,
        1_700_000_000_000,
        &[
            weir_storage::Record::new(vec![9u8; 700 << 10]),
            weir_storage::Record::keyed("k", vec![1u8; 300 << 10]),
        ],
    )
    .unwrap();
    let frame = Frame::new(4, Message::Data(big));
    let wire = Encoder::default().encode(&frame).unwrap().to_bytes();
    let cuts: Vec<usize> = (1..wire.len()).step_by(1200).collect();
    assert_eq!(through_chunks(&wire, &cuts), vec![frame]);
}
