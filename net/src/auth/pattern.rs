//! Stream-name patterns of grants: `*` matches any run of characters
//! (slashes included), everything else matches itself. Matching is the
//! greedy two-pointer algorithm, which backtracks only to the last star:
//! at most `pattern × name` steps, never exponential, whatever a token's
//! issuer wrote.
//!
//! Reserved names (`live.metrics`, the operations pseudo-stream `_ops`)
//! are matched only by a pattern that spells them out, so a grant on `*`
//! never reaches metrics by accident.

/// Names only an exact pattern reaches.
pub const RESERVED: [&str; 2] = ["live.metrics", super::OPS];

/// Whether `pattern` matches `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    if RESERVED.contains(&name) {
        return pattern == name;
    }
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last star was, and the name position it is trying to cover.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last star swallow one more character.
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_literals() {
        assert!(matches("*", "orders"));
        assert!(matches("app/*", "app/users"));
        assert!(matches("app/*", "app/a/b"));
        assert!(!matches("app/*", "apps/x"));
        assert!(matches("*-log", "x-log"));
        assert!(!matches("*-log", "x-logs"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
    }

    #[test]
    fn reserved_names_need_an_exact_pattern() {
        assert!(!matches("*", "live.metrics"));
        assert!(!matches("live.*", "live.metrics"));
        assert!(matches("live.metrics", "live.metrics"));
        assert!(!matches("*", "_ops"));
        assert!(matches("_ops", "_ops"));
    }

    #[test]
    fn hostile_patterns_stay_linear() {
        let pattern = "*a".repeat(500) + "b";
        let name = "a".repeat(5000);
        let t = std::time::Instant::now();
        assert!(!matches(&pattern, &name));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }
}
