//! Authentication and authorization of the network doors. A bearer token
//! (HTTP `Authorization`, the WebSocket upgrade's header, or the binary
//! protocol's `Hello.auth_token`) is either a static token, configured by
//! its SHA-256 digest and compared in constant time, or a JWT (HS256, or
//! EdDSA with a public key). Either way it yields a [`Principal`]:
//! grants of permissions on stream-name patterns, and for a JWT its expiry,
//! after which every request fails. Every request is checked, not only the
//! connection. In-process callers of the engine are not checked.
//!
//! What a refusal tells: a missing or unusable token is `Unauthorized`; a
//! valid token without the permission is `Forbidden`, and the answer is
//! the same whether or not the stream exists, so a token learns nothing
//! about streams outside its scope.

mod jwt;
mod pattern;
mod verified;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use pattern::matches;

/// The pseudo-stream the operations endpoints (`/metrics`, the webhook
/// subscription API) are granted on: `admin` on `_ops`.
pub const OPS: &str = "_ops";

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read records, state, touches, and stream descriptions.
    Read,
    /// Append records.
    Append,
    /// Create streams (and forks, which also need `read` on the source).
    Create,
    /// Delete streams.
    Delete,
    /// Everything, plus profiles and the operations endpoints.
    Admin,
}

/// One grant: permissions on the streams a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// A stream-name pattern (`*` matches any run of characters).
    pub streams: String,
    /// What the grant allows there.
    pub permissions: Vec<Permission>,
}

impl Grant {
    fn allows(&self, p: Permission, stream: &str) -> bool {
        (self.permissions.contains(&p) || self.permissions.contains(&Permission::Admin))
            && pattern::matches(&self.streams, stream)
    }
}

/// `[[auth.tokens]]`: a static token, by the hex SHA-256 of its text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs (the token itself is never logged).
    pub name: String,
    /// `sha256sum` of the token, lowercase hex.
    pub sha256: String,
    /// What the token may do.
    pub grants: Vec<Grant>,
}

/// `[auth.jwt]`: how JWTs are verified. Their grants are the claim
/// `weir.grants` (`[{"streams": ..., "permissions": [...]}]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// The HS256 shared secret, from a file (one line; surrounding
    /// whitespace is ignored).
    pub hs256_secret_file: Option<PathBuf>,
    /// An EdDSA (Ed25519) public key: the 32 key bytes in base64url, as
    /// the `x` member of its JWK.
    pub eddsa_public_key: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
}

/// `[auth]` of the server's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Require a token on every door.
    pub enabled: bool,
    /// Static tokens.
    pub tokens: Vec<TokenConfig>,
    /// JWT verification.
    pub jwt: Option<JwtConfig>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token was given.
    Missing,
    /// The token is neither a known static token nor a valid JWT.
    Invalid,
    /// The JWT has expired.
    Expired,
    /// The token is valid but does not grant the operation here.
    Forbidden,
}

impl Refusal {
    /// A short, safe explanation (names no stream, repeats no token).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "a bearer token is required",
            Refusal::Invalid => "the token is not valid",
            Refusal::Expired => "the token has expired",
            Refusal::Forbidden => "the token does not grant this operation on this stream",
        }
    }
}

/// Who made a request: the grants of its token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The static token's name or the JWT's `sub`, for logs.
    pub name: String,
    grants: Vec<Grant>,
    /// For a JWT: when it stops working (ms since the Unix epoch).
    pub expires_at_ms: Option<u64>,
}

impl Principal {
    /// Whether the principal may do `p` on `stream` at `now_ms`.
    pub fn check(&self, p: Permission, stream: &str, now_ms: u64) -> Result<(), Refusal> {
        if self.expires_at_ms.is_some_and(|e| now_ms >= e) {
            return Err(Refusal::Expired);
        }
        if self.grants.iter().any(|g| g.allows(p, stream)) {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }
}

struct StaticToken {
    name: String,
    digest: [u8; 32],
    grants: Vec<Grant>,
}

struct Inner {
    tokens: Vec<StaticToken>,
    jwt: Option<jwt::Verifier>,
    verified: verified::Verified,
}

/// The doors' authenticator; cheap to clone. Absent (`None` in the door
/// configurations) when authentication is off.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.inner.tokens.len())
            .field("jwt", &self.inner.jwt.is_some())
            .finish()
    }
}

/// The hex SHA-256 of a token, as `[[auth.tokens]] sha256` wants it.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Auth {
    /// The authenticator of `config`, or `None` when auth is off.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Option<Auth>> {
        if !config.enabled {
            return Ok(None);
        }
        let mut tokens = Vec::new();
        for t in &config.tokens {
            let digest = parse_digest(&t.sha256).ok_or_else(|| {
                anyhow::anyhow!("auth token {:?}: sha256 must be 64 hex digits", t.name)
            })?;
            tokens.push(StaticToken {
                name: t.name.clone(),
                digest,
                grants: t.grants.clone(),
            });
        }
        let jwt = config.jwt.as_ref().map(jwt::Verifier::new).transpose()?;
        if tokens.is_empty() && jwt.is_none() {
            anyhow::bail!(
                "[auth] is enabled but names no token and no JWT key: nobody could get in"
            );
        }
        Ok(Some(Auth {
            inner: Arc::new(Inner {
                tokens,
                jwt,
                verified: verified::Verified::default(),
            }),
        }))
    }

    /// The principal of a bearer token.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, Refusal> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(Refusal::Missing);
        };
        if let Some(v) = &self.inner.jwt {
            if token.bytes().filter(|b| *b == b'.').count() == 2 {
                if let Some(p) = self.inner.verified.get(token) {
                    return Ok(p);
                }
                let p = v.verify(token)?;
                self.inner.verified.put(token, &p);
                return Ok(p);
            }
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every configured token is compared, so the time taken does not
        // depend on which one (if any) matched.
        let mut found: Option<&StaticToken> = None;
        for t in &self.inner.tokens {
            if bool::from(t.digest.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        found
            .map(|t| Principal {
                name: t.name.clone(),
                grants: t.grants.clone(),
                expires_at_ms: None,
            })
            .ok_or(Refusal::Invalid)
    }
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The token of an `Authorization: Bearer ...` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let v = header?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let config = AuthConfig {
            enabled: true,
            tokens: vec![TokenConfig {
                name: "app".into(),
                sha256: token_digest("s3cret-token"),
                grants: vec![Grant {
                    streams: "app/*".into(),
                    permissions: vec![Permission::Read, Permission::Append],
                }],
            }],
            jwt: None,
        };
        Auth::from_config(&config).unwrap().unwrap()
    }

    #[test]
    fn static_tokens_grant_what_they_say() {
        let a = auth();
        let p = a.authenticate(Some("s3cret-token")).unwrap();
        assert_eq!(p.name, "app");
        assert!(p.check(Permission::Read, "app/x", 0).is_ok());
        assert_eq!(
            p.check(Permission::Delete, "app/x", 0),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            p.check(Permission::Read, "other", 0),
            Err(Refusal::Forbidden)
        );
        assert_eq!(a.authenticate(None).unwrap_err(), Refusal::Missing);
        assert_eq!(a.authenticate(Some("  ")).unwrap_err(), Refusal::Missing);
        assert_eq!(
            a.authenticate(Some("s3cret-tokeN")).unwrap_err(),
            Refusal::Invalid
        );
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn enabled_without_credentials_is_a_config_error() {
        let c = AuthConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(Auth::from_config(&c).is_err());
        assert!(Auth::from_config(&AuthConfig::default()).unwrap().is_none());
    }
}
