//! Template argument encodings (touches.md §1.4): how a row's field value
//! becomes the text hashed into a fine key. JavaScript's rules are
//! mirrored where Prisma relies on them: `String(n)` number formatting and
//! `Date.prototype.toISOString` output. Weir parses JSON integers exactly,
//! so an int64 above 2^53 encodes as its exact decimal where Prisma's
//! doubles would round it; date-times without a zone are read as UTC.

use serde_json::Value;

use super::json_text::js_number;

/// An argument encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Strings as is, numbers as JS prints them, booleans as `true`/`false`.
    String,
    /// Integral numbers and decimal integer strings.
    Int64,
    /// Booleans only, as `1`/`0`.
    Bool,
    /// Date strings, normalized to UTC ISO-8601 with milliseconds.
    Datetime,
    /// Strings only, as is.
    Bytes,
}

impl Encoding {
    /// Parses an encoding name.
    pub fn parse(s: &str) -> Option<Encoding> {
        Some(match s {
            "string" => Encoding::String,
            "int64" => Encoding::Int64,
            "bool" => Encoding::Bool,
            "datetime" => Encoding::Datetime,
            "bytes" => Encoding::Bytes,
            _ => return None,
        })
    }

    /// The encoding's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::String => "string",
            Encoding::Int64 => "int64",
            Encoding::Bool => "bool",
            Encoding::Datetime => "datetime",
            Encoding::Bytes => "bytes",
        }
    }
}

/// The encoded argument, or `None` when the value cannot take the encoding
/// (missing and null included): the tuple is then unavailable.
pub fn encode(enc: Encoding, v: &Value) -> Option<String> {
    match (enc, v) {
        (Encoding::String, Value::String(s)) | (Encoding::Bytes, Value::String(s)) => {
            Some(s.clone())
        }
        (Encoding::String, Value::Number(n)) => number_text(n),
        (Encoding::String, Value::Bool(b)) => Some(b.to_string()),
        (Encoding::Int64, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else if let Some(u) = n.as_u64() {
                Some(u.to_string())
            } else {
                let f = n.as_f64()?;
                (f.is_finite() && f.fract() == 0.0).then(|| js_number(f))
            }
        }
        (Encoding::Int64, Value::String(s)) => {
            let t = s.trim();
            is_decimal_integer(t).then(|| t.to_string())
        }
        (Encoding::Bool, Value::Bool(b)) => Some(if *b { "1" } else { "0" }.to_string()),
        (Encoding::Datetime, Value::String(s)) => datetime(s),
        _ => None,
    }
}

fn number_text(n: &serde_json::Number) -> Option<String> {
    if let Some(i) = n.as_i64() {
        return Some(i.to_string());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.to_string());
    }
    let f = n.as_f64()?;
    f.is_finite().then(|| js_number(f))
}

fn is_decimal_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// Parses ISO-8601 dates and date-times (`YYYY-MM-DD`, optional
/// `THH:MM[:SS[.fraction]]`, optional `Z` or `±HH:MM`) into
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn datetime(s: &str) -> Option<String> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let t = s.get(from..from + len)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let (mut h, mut mi, mut sec, mut ms, mut offset_min) = (0, 0, 0, 0i64, 0i64);
    let mut i = 10;
    if i < b.len() {
        if b[i] != b'T' && b[i] != b't' && b[i] != b' ' {
            return None;
        }
        h = num(i + 1, 2)?;
        if b.get(i + 3) != Some(&b':') {
            return None;
        }
        mi = num(i + 4, 2)?;
        i += 6;
        if b.get(i) == Some(&b':') {
            sec = num(i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let frac = &s[start..end.min(start + 3)];
                ms = format!("{frac:0<3}").parse().ok()?;
                i = end;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(&c @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let oh = num(i + 1, 2)?;
                let om = num(i + 4, 2)?;
                if oh > 23 || om > 59 {
                    return None;
                }
                offset_min = (oh * 60 + om) * if c == b'+' { 1 } else { -1 };
            }
            _ => return None,
        }
        if h > 24 || mi > 59 || sec > 59 || (h == 24 && (mi | sec | ms) != 0) {
            return None;
        }
    }
    let days = days_from_civil(y, mo, d);
    let total_ms = ((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + ms;
    Some(iso_of_ms(total_ms))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn iso_of_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_encoding() {
        assert_eq!(encode(Encoding::Bool, &json!(true)).as_deref(), Some("1"));
        assert_eq!(encode(Encoding::Bool, &json!(false)).as_deref(), Some("0"));
        assert_eq!(encode(Encoding::Bool, &json!(1)), None);
        assert_eq!(encode(Encoding::String, &json!(42)).as_deref(), Some("42"));
        assert_eq!(
            encode(Encoding::String, &json!(0.1)).as_deref(),
            Some("0.1")
        );
        assert_eq!(
            encode(Encoding::String, &json!(1e21)).as_deref(),
            Some("1e+21")
        );
        assert_eq!(
            encode(Encoding::String, &json!(true)).as_deref(),
            Some("true")
        );
        assert_eq!(encode(Encoding::String, &json!(null)), None);
        assert_eq!(encode(Encoding::Int64, &json!(7)).as_deref(), Some("7"));
        assert_eq!(encode(Encoding::Int64, &json!(7.0)).as_deref(), Some("7"));
        assert_eq!(encode(Encoding::Int64, &json!(7.5)), None);
        assert_eq!(
            encode(Encoding::Int64, &json!(" -12 ")).as_deref(),
            Some("-12")
        );
        assert_eq!(encode(Encoding::Int64, &json!("012")), None);
        assert_eq!(encode(Encoding::Int64, &json!("1.0")), None);
        assert_eq!(encode(Encoding::Bytes, &json!("ab")).as_deref(), Some("ab"));
        assert_eq!(encode(Encoding::Bytes, &json!(1)), None);
    }

    #[test]
    fn datetimes_normalize_to_utc_milliseconds() {
        let d = |s: &str| encode(Encoding::Datetime, &json!(s));
        assert_eq!(
            d("2026-03-23T10:30:00Z").as_deref(),
            Some("2026-03-23T10:30:00.000Z")
        );
        assert_eq!(
            d("2026-03-23T12:30:00.5+02:00").as_deref(),
            Some("2026-03-23T10:30:00.500Z")
        );
        assert_eq!(d("2026-03-23").as_deref(), Some("2026-03-23T00:00:00.000Z"));
        assert_eq!(
            d("2024-02-29T23:59:59.999-00:30").as_deref(),
            Some("2024-03-01T00:29:59.999Z")
        );
        assert_eq!(d("2023-02-29"), None);
        assert_eq!(d("yesterday"), None);
        assert_eq!(encode(Encoding::Datetime, &json!(0)), None);
    }
}
