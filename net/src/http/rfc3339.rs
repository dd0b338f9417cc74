//! RFC 3339 timestamps for `Stream-Expires-At`, to and from milliseconds
//! since the Unix epoch (UTC), without a date-time dependency.

/// Days since 1970-01-01 of a proleptic Gregorian civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |a, &c| {
        a.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The latest instant a timestamp may name: 9999-12-31T23:59:59.999Z (a
/// later one could not be written back in four-digit years).
const MAX_MS: u64 = 253_402_300_799_999;

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into milliseconds since the
/// Unix epoch; `None` if malformed, before 1970, after year 9999 in UTC, or
/// a leap second (`:60`, which milliseconds since the epoch cannot hold, so
/// it would not read back as written).
pub fn parse_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(i64::from(y), mo)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u64;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        for (k, &c) in b[start..end].iter().take(3).enumerate() {
            millis += u64::from(c - b'0') * 10u64.pow(2 - k as u32);
        }
        i = end;
    }
    let offset_secs: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let oh = num(&[*oh1, *oh2])?;
            let om = num(&[*om1, *om2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let v = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset_secs;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1000)?
        .checked_add(millis)
        .filter(|&ms| ms <= MAX_MS)
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_cannot_round_trip() {
        // An offset that carries the instant into year 10000.
        assert_eq!(parse_ms("9999-12-31T23:59:59-23:59"), None);
        assert_eq!(parse_ms("9999-12-31T23:59:59.999Z"), Some(MAX_MS));
        assert_eq!(format_ms(MAX_MS), "9999-12-31T23:59:59.999Z");
        // Leap seconds are not silently moved to :59.
        assert_eq!(parse_ms("2016-12-31T23:59:60Z"), None);
        for s in [
            "2024-02-29T12:00:00Z",
            "1970-01-01T00:00:00.001Z",
            "9999-12-31T00:00:00+00:00",
        ] {
            let ms = parse_ms(s).unwrap();
            assert_eq!(parse_ms(&format_ms(ms)), Some(ms), "{s}");
        }
    }

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_ms("2024-10-09T00:00:00.000Z"),
            Some(1_728_432_000_000)
        );
        assert_eq!(
            parse_ms("2024-10-09T02:00:00+02:00"),
            Some(1_728_432_000_000)
        );
        assert_eq!(parse_ms("2024-10-09T00:00:00.5Z"), Some(1_728_432_000_500));
        assert_eq!(format_ms(1_728_432_000_123), "2024-10-09T00:00:00.123Z");
        for ms in [0u64, 951_782_400_000, 1_728_432_000_123, 4_102_444_800_999] {
            assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "not-a-timestamp",
            "",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-10-09T00:00:00",
            "2024-10-09T00:00:00.Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
