//! Stream-path patterns of pattern subscriptions: `*` matches within one
//! path segment, `**` matches across segments, anything else literally.

/// Whether `path` matches `pattern`.
pub fn matches(pattern: &str, path: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| go(rest, &s[i..])),
            [b'*', rest @ ..] => {
                let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
                (0..=seg).any(|i| go(rest, &s[i..]))
            }
            [c, rest @ ..] => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    // Patterns are short and client-supplied; bound the work the naive
    // matcher can do.
    pattern.len() <= 256 && path.len() <= 4096 && go(pattern.as_bytes(), path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("events/*", "events/a"));
        assert!(!matches("events/*", "events/a/b"));
        assert!(matches("events/**", "events/a/b"));
        assert!(matches("events/sync-*", "events/sync-12"));
        assert!(!matches("events/*", "other/a"));
        assert!(matches("exact", "exact"));
    }
}
