//! Parsing of the protocol's request headers. Every value is untrusted:
//! parsers return `Err(reason)` for the 400 answer, never panic.

use hyper::HeaderMap;
use weir_storage::ProducerTag;

/// Largest integer the protocol allows in producer headers (2^53 - 1), so
/// JavaScript clients can hold every value exactly.
pub const MAX_SAFE_INT: u64 = (1 << 53) - 1;

/// A header's value as text; `Err` when present but not visible ASCII/UTF-8.
pub fn text<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| format!("{name} is not valid text")),
    }
}

/// A non-negative decimal integer without sign, leading zeros, fraction or
/// exponent (`0`, `3600`; not `+1`, `05`, `1.5`, `1e3`).
pub fn strict_uint(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    s.parse().ok()
}

/// `Stream-TTL`, in seconds.
pub fn ttl(h: &HeaderMap) -> Result<Option<u64>, String> {
    match text(h, "stream-ttl")? {
        None => Ok(None),
        Some(v) => strict_uint(v).map(Some).ok_or_else(|| {
            "Stream-TTL must be a non-negative integer without leading zeros".into()
        }),
    }
}

/// `Stream-Expires-At`, as milliseconds since the Unix epoch.
pub fn expires_at(h: &HeaderMap) -> Result<Option<u64>, String> {
    match text(h, "stream-expires-at")? {
        None => Ok(None),
        Some(v) => super::rfc3339::parse_ms(v)
            .map(Some)
            .ok_or_else(|| "Stream-Expires-At must be an RFC 3339 timestamp".into()),
    }
}

/// Whether a boolean presence header (`Stream-Closed`) says `true`.
pub fn flag(h: &HeaderMap, name: &str) -> Result<bool, String> {
    Ok(text(h, name)?.is_some_and(|v| v.eq_ignore_ascii_case("true")))
}

/// The idempotent producer triple: all three headers or none.
pub fn producer(h: &HeaderMap) -> Result<Option<ProducerTag>, String> {
    let id = text(h, "producer-id")?;
    let epoch = text(h, "producer-epoch")?;
    let seq = text(h, "producer-seq")?;
    match (id, epoch, seq) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) => {
            if id.is_empty() {
                return Err("Producer-Id must not be empty".into());
            }
            let int = |v: &str, name: &str| {
                strict_uint(v)
                    .filter(|n| *n <= MAX_SAFE_INT)
                    .ok_or_else(|| format!("{name} must be an integer in 0..=2^53-1"))
            };
            Ok(Some(ProducerTag {
                id: id.to_string(),
                epoch: int(epoch, "Producer-Epoch")?,
                seq: int(seq, "Producer-Seq")?,
            }))
        }
        _ => Err("Producer-Id, Producer-Epoch and Producer-Seq must be sent together".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        assert_eq!(strict_uint("0"), Some(0));
        assert_eq!(strict_uint("3600"), Some(3600));
        for bad in ["", "+1", "05", "1.5", "1e3", "-1", "abc", "1abc", " 1"] {
            assert_eq!(strict_uint(bad), None, "{bad}");
        }
    }
}
