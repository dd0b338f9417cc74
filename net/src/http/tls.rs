//! HTTPS and WSS on the HTTP port: the TLS configuration (TLS 1.3 over
//! ring, ALPN `http/1.1`), built from the same certificate and key files
//! the QUIC door uses, or from the QUIC door's self-signed certificate in
//! the data directory when none is configured, and the handshake of each
//! accepted connection, bounded in time like the rest of a request.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::quic::tls::{tls13_server_config, Identity};

/// A TLS configuration of the HTTP door, shared by its connections.
pub type TlsServerConfig = Arc<rustls::ServerConfig>;

/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server configuration of the HTTP door's TLS.
pub fn tls_server_config(id: Identity) -> io::Result<TlsServerConfig> {
    Ok(Arc::new(tls13_server_config(id, b"http/1.1")?))
}

/// Completes the TLS handshake of an accepted connection, or gives up
/// after [`HANDSHAKE_TIMEOUT`].
pub async fn handshake(
    config: &Arc<rustls::ServerConfig>,
    tcp: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let accept = TlsAcceptor::from(Arc::clone(config)).accept(tcp);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}
