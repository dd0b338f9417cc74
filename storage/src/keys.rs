//! Key layouts of the column families. Integers are big-endian so that one
//! stream's keys form a contiguous, ordered range that can be scanned with
//! iterator bounds and removed with one range delete.

/// Column family holding stream metadata, keyed by stream name.
pub const CF_STREAMS: &str = "streams";
/// Column family holding committed record batches, keyed by stream id and first offset.
pub const CF_WAL: &str = "wal";
/// Column family holding idempotent producer state, keyed by stream id and producer id.
pub const CF_PRODUCERS: &str = "producers";
/// Column family for the key-value state of state streams (filled by later work).
pub const CF_KV: &str = "kv";
/// Column family for the touch journal (filled by later work).
pub const CF_TOUCH: &str = "touch";
/// Column family for live-query templates (filled by later work).
pub const CF_TEMPLATES: &str = "templates";

/// Column family holding fork links and soft-delete marks, keyed by stream id (see `fork.rs`).
pub const CF_FORKS: &str = "forks";

/// Every column family, in creation order.
pub const ALL_CFS: [&str; 7] = [
    CF_STREAMS,
    CF_WAL,
    CF_PRODUCERS,
    CF_KV,
    CF_TOUCH,
    CF_TEMPLATES,
    CF_FORKS,
];

/// Column families whose keys start with the 8-byte stream id.
pub const PER_STREAM_CFS: [&str; 6] = [
    CF_WAL,
    CF_PRODUCERS,
    CF_KV,
    CF_TOUCH,
    CF_TEMPLATES,
    CF_FORKS,
];

/// Key in `streams` holding the next stream id to allocate. Stream names may
/// not contain NUL, so this key never collides with one.
pub const NEXT_ID_KEY: &[u8] = b"\0next_stream_id";

/// `wal` key of the batch of stream `sid` whose first record is `offset`.
pub fn wal_key(sid: u64, offset: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&sid.to_be_bytes());
    k[8..].copy_from_slice(&offset.to_be_bytes());
    k
}

/// Splits a `wal` key into stream id and first offset; `None` if malformed.
pub fn parse_wal_key(k: &[u8]) -> Option<(u64, u64)> {
    let k: &[u8; 16] = k.try_into().ok()?;
    let sid = u64::from_be_bytes(k[..8].try_into().ok()?);
    let off = u64::from_be_bytes(k[8..].try_into().ok()?);
    Some((sid, off))
}

/// `producers` key of producer `pid` on stream `sid`.
pub fn producer_key(sid: u64, pid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + pid.len());
    k.extend_from_slice(&sid.to_be_bytes());
    k.extend_from_slice(pid.as_bytes());
    k
}

/// The half-open key range `[sid, sid + 1)` covering every per-stream key of `sid`.
pub fn stream_range(sid: u64) -> ([u8; 8], [u8; 8]) {
    (sid.to_be_bytes(), sid.wrapping_add(1).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_keys_sort_by_stream_then_offset() {
        assert!(wal_key(1, u64::MAX) < wal_key(2, 0));
        assert!(wal_key(1, 255) < wal_key(1, 256));
        assert_eq!(parse_wal_key(&wal_key(7, 42)), Some((7, 42)));
        assert_eq!(parse_wal_key(b"short"), None);
    }

    #[test]
    fn stream_range_covers_all_keys_of_a_stream() {
        let (lo, hi) = stream_range(5);
        let p = producer_key(5, "zzzz");
        assert!(lo.as_slice() <= p.as_slice() && p.as_slice() < hi.as_slice());
        let w = wal_key(5, u64::MAX);
        assert!(lo.as_slice() <= w.as_slice() && w.as_slice() < hi.as_slice());
        assert!(wal_key(6, 0).as_slice() >= hi.as_slice());
    }
}
