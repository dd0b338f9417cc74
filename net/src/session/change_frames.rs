//! The frames of a delivered list of state changes, encoded once for every
//! subscription that receives the list (the members of one filter's group,
//! on any connection) and kept in the list's memo. Each subscription then
//! copies the bytes and writes its own request id into each frame's header:
//! a memcpy of about a hundred bytes per change instead of a serialization.
//! Peers that negotiated another version or frame limit get their own
//! encoding, kept beside the first.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use weir_storage::ChangeList;

use crate::proto::{Change, Encoded, Encoder, Frame, Message, WireError, HEADER_LEN};

/// Where a frame's request id sits: after the length, version and opcode.
const ID_AT: usize = HEADER_LEN - 4;

/// A list's frames for one (version, frame limit), with request id 0.
pub(crate) struct Prepared {
    bytes: Bytes,
    /// Where each frame starts in `bytes`.
    starts: Vec<usize>,
    /// The offset after the list's last change.
    pub next: u64,
}

type Cache = Mutex<Vec<(u8, u32, Arc<Result<Prepared, WireError>>)>>;

impl Prepared {
    /// The list's frames for `encoder`'s peer: encoded now, or by the first
    /// subscription that asked. A change too large for the peer's frames is
    /// the error `too_large(offset)` names.
    pub fn of(
        list: &ChangeList,
        encoder: &Encoder,
        room: usize,
        too_large: impl Fn(u64) -> WireError,
    ) -> Arc<Result<Prepared, WireError>> {
        let cache = list.memo(Cache::default);
        let mut cache = cache.lock();
        let (version, max_frame) = (encoder.version(), encoder.max_frame());
        if let Some((_, _, p)) = cache
            .iter()
            .find(|(v, m, _)| *v == version && *m == max_frame)
        {
            return Arc::clone(p);
        }
        let p = Arc::new(Prepared::encode(list, encoder, room, too_large));
        cache.push((version, max_frame, Arc::clone(&p)));
        p
    }

    fn encode(
        list: &ChangeList,
        encoder: &Encoder,
        room: usize,
        too_large: impl Fn(u64) -> WireError,
    ) -> Result<Prepared, WireError> {
        let mut bytes = BytesMut::new();
        let mut starts = Vec::with_capacity(list.len());
        let mut next = 0;
        for c in list.iter() {
            let w = Change::from(c);
            if w.wire_len() > room {
                return Err(too_large(w.offset));
            }
            next = w.offset + 1;
            let frame = encoder
                .encode(&Frame::new(0, Message::Change(w)))
                .map_err(|_| too_large(next - 1))?;
            starts.push(bytes.len());
            bytes.put_slice(frame.head());
            bytes.put_slice(frame.tail());
        }
        Ok(Prepared {
            bytes: bytes.freeze(),
            starts,
            next,
        })
    }

    /// The frames for request `id`, each its own copy.
    pub fn frames(&self, id: u32) -> impl Iterator<Item = Encoded> + '_ {
        let ends = self
            .starts
            .iter()
            .skip(1)
            .copied()
            .chain([self.bytes.len()]);
        self.starts.iter().zip(ends).map(move |(&start, end)| {
            let mut f = BytesMut::from(&self.bytes[start..end]);
            f[ID_AT..ID_AT + 4].copy_from_slice(&id.to_le_bytes());
            Encoded::whole(f.freeze())
        })
    }
}
