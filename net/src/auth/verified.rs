//! JWTs already verified, by their exact text. A client sends the same
//! token with every request; checking its signature and decoding its claims
//! each time cost 2.8 µs of server CPU per HTTP append (a fifth of the
//! append, `bench/RESULTS.md`). The token is self-contained, so the same
//! text always yields the same principal; its expiry is still checked on
//! every request by [`Principal::check`]. Bounded: when full, the cache is
//! emptied and refills from the tokens in use.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::Principal;

/// Most tokens remembered.
const MAX_TOKENS: usize = 4096;
/// Longest token remembered (longer ones are verified every time).
const MAX_TOKEN_BYTES: usize = 4096;

/// Principals of verified JWTs.
#[derive(Debug, Default)]
pub(super) struct Verified {
    by_token: Mutex<HashMap<Box<str>, Principal>>,
}

impl Verified {
    /// The principal `token` was verified to carry, if it was.
    pub fn get(&self, token: &str) -> Option<Principal> {
        self.by_token.lock().get(token).cloned()
    }

    /// Remembers that `token` verified to `principal`.
    pub fn put(&self, token: &str, principal: &Principal) {
        if token.len() > MAX_TOKEN_BYTES {
            return;
        }
        let mut map = self.by_token.lock();
        if map.len() >= MAX_TOKENS {
            map.clear();
        }
        map.insert(token.into(), principal.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str) -> Principal {
        Principal {
            name: name.into(),
            grants: Vec::new(),
            expires_at_ms: Some(1),
        }
    }

    #[test]
    fn remembers_by_exact_text_and_stays_bounded() {
        let v = Verified::default();
        v.put("a.b.c", &principal("x"));
        assert_eq!(v.get("a.b.c").unwrap().name, "x");
        assert!(v.get("a.b.d").is_none());
        for i in 0..MAX_TOKENS + 10 {
            v.put(&format!("t{i}"), &principal("y"));
        }
        assert!(v.by_token.lock().len() <= MAX_TOKENS);
        v.put(&"x".repeat(MAX_TOKEN_BYTES + 1), &principal("z"));
        assert!(v.get(&"x".repeat(MAX_TOKEN_BYTES + 1)).is_none());
    }
}
