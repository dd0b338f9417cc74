//! Feeds arbitrary bytes to the binary protocol decoders, cut into reads of
//! arbitrary sizes, and checks that they never panic, never loop, that the
//! chunk decoder yields exactly what the buffer decoder yields, and that
//! every frame accepted encodes back to a frame that decodes the same.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weir_net::proto::{decode_frame, ChunkDecoder, Decoder, Encoder, MIN_MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    // A small limit keeps every accepted frame within the fuzzer's memory.
    let limit = MIN_MAX_FRAME * 4;
    let step = usize::from(step).max(1);
    let mut decoder = Decoder::new(limit);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    'feed: for chunk in input.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) if e.is_fatal() => break 'feed,
                Err(e) => {
                    let _ = e.to_wire();
                }
            }
            assert!(buf.len() < before, "the decoder made no progress");
        }
    }
    let mut chunked = ChunkDecoder::new(limit);
    let mut again = Vec::new();
    'chunks: for chunk in input.chunks(step) {
        chunked.push(bytes::Bytes::copy_from_slice(chunk));
        loop {
            match chunked.next_frame() {
                Ok(Some(frame)) => again.push(frame),
                Ok(None) => break,
                Err(e) if e.is_fatal() => break 'chunks,
                Err(_) => {}
            }
        }
    }
    assert_eq!(again, frames, "the two decoders disagree");
    let _ = decode_frame(bytes::Bytes::copy_from_slice(input), limit);
    for frame in frames {
        // Version-2 frames (state requests, and the grown `Create`, `Info`
        // and `Created` bodies) re-encode in their own version.
        let encoder = Encoder::new(limit).with_version(frame.version);
        if let Ok(encoded) = encoder.encode(&frame) {
            let again = decode_frame(encoded.to_bytes(), limit).expect("re-encoded frame decodes");
            // `Hello`, `Welcome` and `Error` are always written as version 1.
            assert_eq!((again.request_id, again.message), (frame.request_id, frame.message));
        }
    }
});
