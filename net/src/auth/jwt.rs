//! JWT verification through `jsonwebtoken` (over ring, the TLS doors'
//! crypto): the key is chosen by the token's `alg` among the configured
//! ones (HS256, EdDSA; any other algorithm, `none` included, is refused), `exp` is required, and `iss`
//! and `aud` are checked when configured. The grants are the token's
//! `weir.grants` claim.

use anyhow::Context;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{Grant, JwtConfig, Principal, Refusal};

/// The claims Weir reads.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    exp: u64,
    #[serde(default)]
    weir: WeirClaim,
}

#[derive(Deserialize, Default)]
struct WeirClaim {
    #[serde(default)]
    grants: Vec<Grant>,
}

pub(super) struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

impl Verifier {
    pub(super) fn new(c: &JwtConfig) -> anyhow::Result<Verifier> {
        let mut keys = Vec::new();
        if let Some(p) = &c.hs256_secret_file {
            let text = String::from_utf8(read(p)?).context("the HS256 secret is not text")?;
            let secret = text.trim();
            anyhow::ensure!(
                secret.len() >= 32,
                "the HS256 secret in {} is shorter than 32 bytes",
                p.display()
            );
            keys.push((
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
            ));
        }
        if let Some(x) = &c.eddsa_public_key {
            let key = DecodingKey::from_ed_components(x.trim())
                .context("eddsa_public_key is not a base64url Ed25519 key")?;
            keys.push((Algorithm::EdDSA, key));
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "[auth.jwt] names no key (hs256_secret_file or eddsa_public_key)"
        );
        Ok(Verifier {
            keys,
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            leeway: c.leeway_secs,
        })
    }

    pub(super) fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        let header = decode_header(token).map_err(|_| Refusal::Invalid)?;
        let Some((alg, key)) = self.keys.iter().find(|(a, _)| *a == header.alg) else {
            return Err(Refusal::Invalid);
        };
        let mut v = Validation::new(*alg);
        v.leeway = self.leeway;
        v.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        let data = decode::<Claims>(token, key, &v).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => Refusal::Expired,
            _ => Refusal::Invalid,
        })?;
        let c = data.claims;
        Ok(Principal {
            name: c.sub,
            grants: c.weir.grants,
            expires_at_ms: Some(c.exp.saturating_add(self.leeway).saturating_mul(1000)),
        })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::auth::Permission;

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

    fn verifier(dir: &tempfile::TempDir) -> Verifier {
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        Verifier::new(&JwtConfig {
            hs256_secret_file: Some(path),
            ..Default::default()
        })
        .unwrap()
    }

    fn token(secret: &str, exp: u64) -> String {
        let claims = json!({"sub": "svc", "exp": exp,
            "weir": {"grants": [{"streams": "app/*", "permissions": ["read"]}]}});
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now_s() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn valid_expired_and_forged_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(&dir);
        let p = v.verify(&token(SECRET, now_s() + 60)).unwrap();
        assert_eq!(p.name, "svc");
        assert!(p.check(Permission::Read, "app/x", 0).is_ok());
        assert!(p.expires_at_ms.is_some());
        assert_eq!(
            v.verify(&token(SECRET, now_s() - 120)).unwrap_err(),
            Refusal::Expired
        );
        let forged = token("another-secret-of-at-least-32-bytes!!", now_s() + 60);
        assert_eq!(v.verify(&forged).unwrap_err(), Refusal::Invalid);
        assert_eq!(v.verify("a.b.c").unwrap_err(), Refusal::Invalid);
        // An unsigned token is refused whatever it claims.
        let t = token(SECRET, now_s() + 60);
        let mut parts: Vec<&str> = t.split('.').collect();
        let none_header = "eyJhbGciOiJub25lIn0";
        parts[0] = none_header;
        let unsigned = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(v.verify(&unsigned).unwrap_err(), Refusal::Invalid);
    }
}
