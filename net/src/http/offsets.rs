//! Offsets on the wire.
//!
//! A record offset `o` (u64) is written as the 32-digit zero-padded decimal of
//! `o`, split by `_` after the 16th digit: `0000000000000000_0000000000000042`.
//! Every offset has the same width, so byte-wise comparison orders them like
//! the numbers; the form uses only digits and `_`, none of the characters the
//! protocol forbids; and it names a record offset, so it is stable across
//! restarts. The sentinels `-1` (start) and `now` (tail) are never generated.

/// A parsed `offset` query parameter or `Stream-Fork-Offset` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetParam {
    /// `-1`: the beginning of the stream.
    Start,
    /// `now`: the tail at the time of the request.
    Now,
    /// A concrete offset (saturated at `u64::MAX` when the digits name a larger number).
    At(u64),
}

const HALF: u64 = 10_000_000_000_000_000; // 10^16

/// Formats a record offset for the wire.
pub fn format_offset(offset: u64) -> String {
    format!("{:016}_{:016}", offset / HALF, offset % HALF)
}

/// Parses an offset token; `None` if it is not `-1`, `now` or the fixed form.
pub fn parse_offset(s: &str) -> Option<OffsetParam> {
    match s {
        "-1" => return Some(OffsetParam::Start),
        "now" => return Some(OffsetParam::Now),
        _ => {}
    }
    let b = s.as_bytes();
    if b.len() != 33 || b[16] != b'_' {
        return None;
    }
    let digits = |part: &[u8]| -> Option<u128> {
        part.iter().try_fold(0u128, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u128::from(c - b'0'))
        })
    };
    let value = digits(&b[..16])? * u128::from(HALF) + digits(&b[17..])?;
    Some(OffsetParam::At(u64::try_from(value).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        for o in [0, 1, 9, 10, HALF - 1, HALF, HALF + 1, u64::MAX] {
            assert_eq!(parse_offset(&format_offset(o)), Some(OffsetParam::At(o)));
            assert_eq!(format_offset(o).len(), 33);
        }
        assert!(format_offset(9) < format_offset(10));
        assert!(format_offset(HALF - 1) < format_offset(HALF));
        assert_eq!(format_offset(0), "0000000000000000_0000000000000000");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "0",
            "0,1",
            "0 1",
            "../x",
            "0000000000000000-0000000000000000",
            "-2",
            "NOW",
        ] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
        assert_eq!(parse_offset("-1"), Some(OffsetParam::Start));
        assert_eq!(parse_offset("now"), Some(OffsetParam::Now));
        assert_eq!(
            parse_offset("9999999999999999_9999999999999999"),
            Some(OffsetParam::At(u64::MAX))
        );
    }
}
