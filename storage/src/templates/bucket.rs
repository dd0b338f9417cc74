//! The activation token bucket of a stream (touches.md §2.5): capacity is
//! the per-minute limit, refill is continuous, a new bucket starts full and
//! a limit of 0 means unlimited.

/// One stream's activation tokens.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    at_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit_per_minute: f64, now_ms: u64) -> TokenBucket {
        TokenBucket {
            tokens: limit_per_minute.max(0.0),
            at_ms: now_ms,
        }
    }

    fn refill(&mut self, limit: f64, now_ms: u64) {
        let dt = now_ms.saturating_sub(self.at_ms) as f64;
        self.tokens = (self.tokens + dt * limit / 60_000.0).min(limit);
        self.at_ms = now_ms;
    }

    /// Whole tokens available now (`u64::MAX` when unlimited).
    pub fn available(&mut self, limit: f64, now_ms: u64) -> u64 {
        if limit <= 0.0 {
            return u64::MAX;
        }
        self.refill(limit, now_ms);
        self.tokens.floor() as u64
    }

    /// Uses `n` tokens (never below zero).
    pub fn consume(&mut self, limit: f64, n: u64, now_ms: u64) {
        if limit <= 0.0 {
            return;
        }
        self.refill(limit, now_ms);
        self.tokens = (self.tokens - n as f64).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_then_refills_in_proportion() {
        let mut b = TokenBucket::new(60.0, 0);
        assert_eq!(b.available(60.0, 0), 60);
        b.consume(60.0, 60, 0);
        assert_eq!(b.available(60.0, 0), 0);
        assert_eq!(b.available(60.0, 10_000), 10, "one token per second");
        assert_eq!(b.available(60.0, 10_000_000), 60, "capped");
        assert_eq!(b.available(0.0, 0), u64::MAX, "unlimited");
    }
}
