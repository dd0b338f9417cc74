//! The QUIC door: Weir's binary protocol (PROTOCOL.md) over quinn, ALPN
//! `weir/1`. Requests pipeline on client-opened bidirectional streams (each
//! answered on its own stream); each subscription gets a server-opened
//! unidirectional stream, so one slow subscription never blocks another.
//! The protocol logic itself is the transport-independent
//! [`crate::session`]; this module maps it onto QUIC streams.
//!
//! ```no_run
//! # async fn run(engine: weir_storage::Engine) -> std::io::Result<()> {
//! use weir_net::quic::{serve, QuicConfig};
//! let config = QuicConfig::new("127.0.0.1:4433".parse().unwrap(), "/var/lib/weir".into());
//! serve(engine, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![warn(missing_docs)]

mod conn;
pub mod tls;
mod transport;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use weir_storage::Engine;

use crate::session::{ConnStats, SessionConfig};

pub use tls::{fingerprint, parse_fingerprint, ALPN};
pub use transport::{Congestion, TransportSettings};

/// Application error codes the server closes connections and resets
/// streams with (QUIC `CONNECTION_CLOSE` / `RESET_STREAM` codes).
pub mod codes {
    /// The connection ended normally.
    pub const DONE: u32 = 0;
    /// The peer broke the framing or the handshake; the last frame on its
    /// request stream is an `Error` saying why.
    pub const PROTOCOL: u32 = 1;
    /// The connection was idle for the idle timeout.
    pub const IDLE: u32 = 2;
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 3;
    /// A subscription's stream was abandoned mid-frame (shutdown grace over).
    pub const ABORTED: u32 = 4;
    /// The peer did not negotiate ALPN `weir/1`.
    pub const BAD_ALPN: u32 = 5;
}

/// Configuration of the QUIC door.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain; with `key_path`, replaces the self-signed one.
    pub cert_path: Option<PathBuf>,
    /// PEM private key of `cert_path`.
    pub key_path: Option<PathBuf>,
    /// Where the self-signed certificate is generated and kept.
    pub data_dir: PathBuf,
    /// Names (DNS or IP) the self-signed certificate is issued for.
    pub cert_names: Vec<String>,
    /// Protocol limits of every connection.
    pub session: SessionConfig,
    /// QUIC transport parameters.
    pub transport: TransportSettings,
    /// Bytes of answers one connection may have queued towards its request
    /// streams before its handlers wait (the per-connection send buffer).
    pub send_buffer_bytes: usize,
    /// How long a shutdown waits for connections to drain before closing them.
    pub shutdown_grace: Duration,
    /// Most connections open at once; one more is refused during its
    /// handshake (the client sees QUIC `CONNECTION_REFUSED`).
    pub max_connections: usize,
}

impl QuicConfig {
    /// Defaults for a server on `listen` keeping its certificate in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        QuicConfig {
            listen,
            cert_path: None,
            key_path: None,
            data_dir,
            cert_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            session: SessionConfig::default(),
            transport: TransportSettings::default(),
            send_buffer_bytes: 8 << 20,
            shutdown_grace: Duration::from_secs(5),
            max_connections: 4096,
        }
    }
}

/// A bound QUIC server, not yet serving: lets a caller learn the address
/// and the fingerprint (port 0 in tests) before it starts.
pub struct QuicServer {
    endpoint: quinn::Endpoint,
    engine: Engine,
    config: Arc<QuicConfig>,
    fingerprint: String,
    conns: Arc<Mutex<Vec<std::sync::Weak<ConnStats>>>>,
}

impl QuicServer {
    /// Loads or generates the certificate and binds the UDP socket.
    pub fn bind(engine: Engine, config: QuicConfig) -> io::Result<QuicServer> {
        let identity = tls::load_or_generate(
            config.cert_path.as_deref(),
            config.key_path.as_deref(),
            &config.data_dir,
            &config.cert_names,
        )?;
        let fingerprint = identity.fingerprint();
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(tls::server_config(identity)?)
                .map_err(io::Error::other)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(config.transport.server()));
        let endpoint = quinn::Endpoint::server(server, config.listen)?;
        tracing::info!(
            addr = %endpoint.local_addr()?,
            sha256 = %fingerprint,
            "QUIC door listening (clients pin this certificate fingerprint)"
        );
        Ok(QuicServer {
            endpoint,
            engine,
            config: Arc::new(config),
            fingerprint,
            conns: Arc::default(),
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Lower-case hex SHA-256 of the server's certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Counters of the connections currently open, for metrics and tests.
    pub fn connection_stats(&self) -> ConnStatsHandle {
        ConnStatsHandle(Arc::clone(&self.conns))
    }

    /// Serves until `shutdown` resolves, then stops accepting, ends every
    /// subscription with `Resume(ShuttingDown)`, waits up to the grace
    /// period for requests in flight and closes the connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    if tasks.len() >= self.config.max_connections {
                        tracing::debug!(limit = self.config.max_connections, "refusing a QUIC connection");
                        incoming.refuse();
                        continue;
                    }
                    let ctx = conn::Ctx {
                        engine: self.engine.clone(),
                        config: Arc::clone(&self.config),
                        session: Arc::new(self.config.session.clone()),
                        stop: stop_rx.clone(),
                        registry: Arc::clone(&self.conns),
                    };
                    tasks.spawn(conn::handle(incoming, ctx));
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        let _ = stop_tx.send(true);
        let drained = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.shutdown_grace * 2, drained)
            .await
            .is_err()
        {
            tracing::warn!("QUIC connections still open after the shutdown grace");
            tasks.abort_all();
        }
        self.endpoint
            .close(quinn::VarInt::from_u32(codes::SHUTDOWN), b"shutting down");
        // Lets the closes reach the peers; bounded so a silent peer cannot stall us.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
        Ok(())
    }
}

/// A view of the open connections' counters.
#[derive(Clone)]
pub struct ConnStatsHandle(Arc<Mutex<Vec<std::sync::Weak<ConnStats>>>>);

impl ConnStatsHandle {
    /// Counters of every connection still open.
    pub fn snapshot(&self) -> Vec<Arc<ConnStats>> {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.iter().filter_map(std::sync::Weak::upgrade).collect()
    }
}

/// Binds the QUIC door on `config.listen` and serves until `shutdown`
/// resolves (see [`QuicServer::run`]).
pub async fn serve(
    engine: Engine,
    config: QuicConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    QuicServer::bind(engine, config)?.run(shutdown).await
}
