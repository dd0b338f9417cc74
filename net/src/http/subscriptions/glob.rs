//! Stream-path patterns of pattern subscriptions: `*` matches within one
//! path segment, `**` matches across segments, anything else literally.
//!
//! A pattern is compiled once, when its subscription is created, into a
//! `regex` automaton, which matches in time linear in the path whatever
//! the pattern (a backtracking matcher can be driven exponential by a
//! pattern such as `**a**a**a…b`). Patterns are limited to
//! [`MAX_PATTERN_LEN`] bytes, which bounds the automaton's size.

use regex::Regex;

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// A compiled stream-path pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    re: Regex,
}

impl Pattern {
    /// Compiles `text`, or says why it is refused.
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "pattern is {} bytes long; at most {MAX_PATTERN_LEN} are allowed",
                text.len()
            ));
        }
        let mut re = String::with_capacity(text.len() * 2 + 2);
        re.push('^');
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**") {
                re.push_str("(?s:.*)");
                rest = r;
            } else if let Some(r) = rest.strip_prefix('*') {
                re.push_str("[^/]*");
                rest = r;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                re.push_str(&regex::escape(&rest[..end]));
                rest = &rest[end..];
            }
        }
        re.push('$');
        let re = Regex::new(&re).map_err(|e| format!("pattern cannot be compiled: {e}"))?;
        Ok(Pattern {
            text: text.to_string(),
            re,
        })
    }

    /// The pattern as the client wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        self.re.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::{Pattern, MAX_PATTERN_LEN};

    fn matches(p: &str, s: &str) -> bool {
        Pattern::new(p).unwrap().matches(s)
    }

    #[test]
    fn globs() {
        assert!(matches("events/*", "events/a"));
        assert!(!matches("events/*", "events/a/b"));
        assert!(matches("events/**", "events/a/b"));
        assert!(matches("events/sync-*", "events/sync-12"));
        assert!(!matches("events/*", "other/a"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exact/more"));
        assert!(matches("a.b+c", "a.b+c"));
        assert!(!matches("a.b", "axb"));
        assert!(matches("**", ""));
        assert!(matches("*/x", "/x"));
    }

    /// A pattern that drives a backtracking matcher exponential answers
    /// at once, and the length limit is enforced.
    #[test]
    fn hostile_patterns_are_linear_and_bounded() {
        let hostile = format!("{}b", "**a".repeat(80));
        let p = Pattern::new(&hostile).unwrap();
        let path = "a".repeat(4096);
        let t = std::time::Instant::now();
        for _ in 0..100 {
            assert!(!p.matches(&path));
        }
        // Generous: a backtracking matcher does not finish this at all.
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        assert!(Pattern::new(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
    }
}
