//! `Stream-Cursor`: the interval number clients echo on live requests so CDNs
//! can collapse them without caching one empty answer forever.

use std::time::{SystemTime, UNIX_EPOCH};

/// Cursor epoch: 2024-10-09T00:00:00Z, in seconds since the Unix epoch.
const EPOCH_SECS: u64 = 1_728_432_000;
/// Length of one cursor interval.
const INTERVAL_SECS: u64 = 20;

/// The cursor for a live response given the client's echoed cursor: the
/// current interval, or, when the client is already at or past it, a value
/// strictly greater by a pseudo-random jitter of 1 to 3600 seconds so
/// cursors never repeat or go backwards.
pub fn next_cursor(client: Option<&str>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let current = now.as_secs().saturating_sub(EPOCH_SECS) / INTERVAL_SECS;
    let echoed = client.and_then(|c| c.parse::<u64>().ok());
    let cursor = match echoed {
        Some(c) if c >= current => {
            // Sub-second clock bits are jitter enough here: the point is only
            // to move strictly forward by an unpredictable amount.
            let jitter_secs = 1 + u64::from(now.subsec_nanos()) % 3600;
            c.saturating_add(jitter_secs.div_ceil(INTERVAL_SECS).max(1))
        }
        _ => current,
    };
    cursor.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_moves_forward() {
        let c: u64 = next_cursor(None).parse().unwrap();
        let d: u64 = next_cursor(Some(&c.to_string())).parse().unwrap();
        assert!(d > c);
        let e: u64 = next_cursor(Some("5")).parse().unwrap();
        assert_eq!(e, c.max(e));
        assert_eq!(next_cursor(Some("garbage")), c.to_string());
    }
}
