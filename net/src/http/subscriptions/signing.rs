//! Webhook signatures: an Ed25519 key generated at start-up, published as a
//! JWKS, and a `Webhook-Signature: t=<unix>,kid=<kid>,ed25519=<sig>` header
//! over `<t>.<body>` so receivers can verify a notification came from us.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};

/// The server's webhook signing key.
pub struct Signer25519 {
    key: SigningKey,
    kid: String,
}

/// Random bytes from the OS; a zeroed buffer only if the OS refuses (never
/// expected), in which case tokens stay unique through the counter mixed in
/// by callers but are predictable, which we log.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if let Err(e) = getrandom::fill(&mut b) {
        tracing::error!(error = %e, "OS random source failed");
    }
    b
}

/// A random URL-safe token.
pub fn token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<24>())
}

impl Signer25519 {
    /// A fresh key with a random key id (`ds_…`).
    pub fn generate() -> Self {
        let key = SigningKey::from_bytes(&random_bytes::<32>());
        let kid = format!("ds_{}", URL_SAFE_NO_PAD.encode(random_bytes::<9>()));
        Signer25519 { key, kid }
    }

    /// The key id receivers look up in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document publishing the public key.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
                "kid": self.kid,
                "use": "sig",
                "alg": "EdDSA",
            }]
        })
    }

    /// The signature header value for `body` sent at `unix_secs`.
    pub fn header(&self, unix_secs: u64, body: &[u8]) -> String {
        let mut msg = format!("{unix_secs}.").into_bytes();
        msg.extend_from_slice(body);
        let sig = self.key.sign(&msg);
        format!(
            "t={unix_secs},kid={},ed25519={}",
            self.kid,
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn header_verifies() {
        let s = Signer25519::generate();
        let h = s.header(1700000000, b"{}");
        let sig_b64 = h.rsplit("ed25519=").next().unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig_b64).unwrap()).unwrap();
        let x = s.jwks()["keys"][0]["x"].as_str().unwrap().to_string();
        let vk = VerifyingKey::from_bytes(&URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap())
            .unwrap();
        assert!(vk.verify(b"1700000000.{}", &sig).is_ok());
        assert!(h.starts_with("t=1700000000,kid=ds_"));
    }
}
