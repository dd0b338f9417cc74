//! TLS material of the QUIC door: the certificate chain and key from
//! configured PEM files, or a self-signed certificate generated once into
//! the data directory and reused on later starts (so a pinned fingerprint
//! stays valid across restarts). The SHA-256 fingerprint of the leaf
//! certificate is what clients pin.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// ALPN protocol id of the binary protocol over QUIC.
pub const ALPN: &[u8] = b"weir/1";

/// File name of the generated certificate inside the data directory.
pub const SELF_SIGNED_CERT: &str = "quic-cert.pem";
/// File name of the generated private key inside the data directory.
pub const SELF_SIGNED_KEY: &str = "quic-key.pem";

/// Lower-case hex SHA-256 of a DER certificate: the value clients pin.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex(&Sha256::digest(cert_der))
}

/// Lower-case hex of `bytes` (fingerprints, as printed and pinned).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a fingerprint in hex, with or without `:` separators and an
/// optional `sha256:` prefix.
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    let hex: Vec<u8> = s.bytes().filter(|c| *c != b':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Fingerprint of the leaf certificate.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }
}

fn bad(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

/// Loads a PEM certificate chain and a PEM private key.
pub fn load(cert: &Path, key: &Path) -> io::Result<Identity> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?;
    Ok(Identity { chain, key })
}

/// The configured identity, or the data directory's self-signed one,
/// generating it on first use for `names` (DNS names or IP addresses).
pub fn load_or_generate(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    names: &[String],
) -> io::Result<Identity> {
    match (cert, key) {
        (Some(c), Some(k)) => return load(c, k),
        (None, None) => {}
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the QUIC certificate and key must be configured together",
            ))
        }
    }
    let (cert_path, key_path): (PathBuf, PathBuf) = (
        data_dir.join(SELF_SIGNED_CERT),
        data_dir.join(SELF_SIGNED_KEY),
    );
    if cert_path.exists() && key_path.exists() {
        return load(&cert_path, &key_path);
    }
    std::fs::create_dir_all(data_dir)?;
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| io::Error::other(format!("cannot generate a certificate: {e}")))?;
    write_private(&key_path, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, generated.cert.pem())?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed QUIC certificate");
    load(&cert_path, &key_path)
}

/// Writes a key file readable by its owner only, atomically (a crash never
/// leaves half a key that a later start would fail to parse).
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// The crypto provider of every TLS config of this crate: ring only.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server config of the QUIC door: TLS 1.3 (QUIC requires it),
/// ALPN `weir/1`, no client certificates.
pub fn server_config(id: Identity) -> io::Result<rustls::ServerConfig> {
    tls13_server_config(id, ALPN)
}

/// A TLS 1.3 server config over ring for `id`, offering one ALPN protocol
/// and asking for no client certificate (the HTTP door's TLS uses it too).
pub fn tls13_server_config(id: Identity, alpn: &[u8]) -> io::Result<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(id.chain, id.key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_and_certificates_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        let a = load_or_generate(None, None, dir.path(), &names).unwrap();
        let b = load_or_generate(None, None, dir.path(), &names).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let fp = a.fingerprint();
        assert_eq!(fp.len(), 64);
        let parsed = parse_fingerprint(&format!("sha256:{fp}")).unwrap();
        assert_eq!(fingerprint(&a.chain[0]), fp);
        assert_eq!(parsed.to_vec(), Sha256::digest(&a.chain[0]).to_vec());
        assert!(parse_fingerprint("zz").is_none());
        assert!(server_config(a).is_ok());
    }
}
