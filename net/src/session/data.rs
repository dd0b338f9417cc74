//! Turning engine batches into `Data` frames for one peer. The common case
//! (a live batch that fits the peer's frame limit) is one frame that shares
//! the stored bytes; a batch too large for the peer is split into runs of
//! records that fit, and a single record that cannot fit fails with
//! `FrameTooLarge`, as the spec says.

use weir_storage::Batch;

use crate::proto::batch::{self, DATA_HEAD_LEN, LAYOUT_HEADER_LEN};
use crate::proto::{ErrorKind, WireError, MIN_LENGTH};

/// The batches to send, in order, so that each fits in one frame within
/// `max_frame` (the peer's limit). Zero-copy unless a split or a compaction
/// is needed (see `proto::batch::for_wire`).
pub(crate) fn wire_parts(b: &Batch, max_frame: u32) -> Result<Vec<Batch>, WireError> {
    if let Ok(whole) = batch::for_wire(b, max_frame) {
        return Ok(vec![whole]);
    }
    // Budget of record bytes per frame: what remains after the headers.
    let room = (max_frame as usize)
        .saturating_sub(MIN_LENGTH as usize + DATA_HEAD_LEN + LAYOUT_HEADER_LEN);
    let mut parts = Vec::new();
    let mut rest = Some(b.clone());
    while let Some(r) = rest {
        let mut part = r.fit(room);
        loop {
            match batch::for_wire(&part, max_frame) {
                Ok(p) => {
                    parts.push(p);
                    break;
                }
                // `fit` ignores the 4-byte index entries: halve until it fits.
                Err(_) if part.len() > 1 => part = part.truncate(part.len() / 2),
                Err(_) => {
                    return Err(WireError::new(
                        ErrorKind::FrameTooLarge { max_frame },
                        format!(
                            "record at offset {} does not fit in a frame of {max_frame} bytes",
                            part.first_offset()
                        ),
                    ))
                }
            }
        }
        rest = r.skip_to(part.next_offset());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::Record;

    #[test]
    fn small_batches_go_whole_and_large_ones_split() {
        let recs: Vec<Record> = (0..100).map(|_| Record::new(vec![7u8; 1000])).collect();
        let b = batch::build(5, 0, &recs).unwrap();
        let whole = wire_parts(&b, 1 << 20).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].raw().as_ptr(), b.raw().as_ptr(), "zero-copy");
        let parts = wire_parts(&b, 64 << 10).unwrap();
        assert!(parts.len() >= 2);
        let mut next = 5;
        for p in &parts {
            assert_eq!(p.first_offset(), next);
            next = p.next_offset();
        }
        assert_eq!(next, 105);
        let huge = batch::build(0, 0, &[Record::new(vec![0u8; 70 << 10])]).unwrap();
        assert!(wire_parts(&huge, 64 << 10).is_err());
    }
}
