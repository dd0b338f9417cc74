//! The server to drive, from a URL: `http://host:port` (Durable Streams),
//! `quic://host:port` or `ws://host:port/v1/ws` (Weir's binary protocol).

use std::fmt;
use std::net::SocketAddr;

use anyhow::{bail, Context};

/// Which wire the run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// The Durable Streams HTTP protocol.
    Http,
    /// Weir's binary protocol over QUIC.
    Quic,
    /// Weir's binary protocol over WebSocket.
    Ws,
}

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Transport.
    pub scheme: Scheme,
    /// `host:port` as written.
    pub authority: String,
    /// Path prefix (for HTTP, anything before `/v1/stream/`; for WebSocket the endpoint path).
    pub path: String,
    /// SHA-256 fingerprint (hex) of the QUIC server's certificate to pin.
    pub quic_fingerprint: Option<String>,
    /// QUIC transport parameters of the client side (its receive windows
    /// bound how fast subscriptions can be sent to it).
    pub quic_transport: weir_net::quic::TransportSettings,
}

impl Target {
    /// Parses `scheme://host:port[/path]`.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("target {url:?} is not a URL (http://, quic:// or ws://)"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "quic" => Scheme::Quic,
            "ws" => Scheme::Ws,
            "https" | "wss" => {
                bail!("{scheme}:// is not supported: weir-load drives loopback servers without TLS")
            }
            other => bail!("unknown transport {other:?}: use http://, quic:// or ws://"),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || !authority.contains(':') {
            bail!("target {url:?} needs host:port");
        }
        let path = path.trim_end_matches('/').to_string();
        let path = if scheme == Scheme::Ws && path.is_empty() {
            "/v1/ws".to_string()
        } else {
            path
        };
        Ok(Target {
            scheme,
            authority: authority.to_string(),
            path,
            quic_fingerprint: None,
            quic_transport: weir_net::quic::TransportSettings::default(),
        })
    }

    /// The socket address of the authority (resolved; first address).
    pub fn socket_addr(&self) -> anyhow::Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        self.authority
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", self.authority))?
            .next()
            .with_context(|| format!("{} resolves to no address", self.authority))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.scheme {
            Scheme::Http => "http",
            Scheme::Quic => "quic",
            Scheme::Ws => "ws",
        };
        write!(f, "{s}://{}{}", self.authority, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        let t = Target::parse("http://127.0.0.1:4437").unwrap();
        assert_eq!(
            (t.scheme, t.authority.as_str(), t.path.as_str()),
            (Scheme::Http, "127.0.0.1:4437", "")
        );
        let t = Target::parse("quic://127.0.0.1:4438").unwrap();
        assert_eq!(t.scheme, Scheme::Quic);
        let t = Target::parse("ws://127.0.0.1:4437/v1/ws").unwrap();
        assert_eq!((t.scheme, t.path.as_str()), (Scheme::Ws, "/v1/ws"));
        assert!(Target::parse("ftp://x:1").is_err());
        assert!(Target::parse("127.0.0.1:4437").is_err());
        assert!(Target::parse("http://localhost").is_err());
    }
}
