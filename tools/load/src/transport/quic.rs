//! Weir's binary protocol over QUIC, through `weir_net::client`. Records
//! travel as their raw bytes in `application/octet-stream` streams; offsets
//! are the protocol's record offsets. The server's self-signed certificate
//! is pinned by its SHA-256 fingerprint (`--quic-fingerprint`, printed by
//! the server at start, or read from its `quic-cert.pem`).

use anyhow::Context;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use weir_net::client::{Client, ClientConfig, Trust};
use weir_net::proto::SubscribeFrom;

use super::{binary_append, Ack, Delivery, ProducerTag, Subscribed, Transport, TransportOptions};
use crate::config::StartFrom;
use crate::target::Target;

/// Content type of the streams this transport creates.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// One QUIC connection (requests pipeline on it, one QUIC stream each).
pub struct QuicTransport {
    client: Client,
}

impl QuicTransport {
    /// Connects to `target`, pinning its certificate fingerprint.
    pub async fn connect(target: &Target, _options: TransportOptions) -> anyhow::Result<Self> {
        Ok(QuicTransport {
            client: connect_client(target).await?,
        })
    }
}

/// A protocol client of `target`, pinning its certificate fingerprint.
pub(crate) async fn connect_client(target: &Target) -> anyhow::Result<Client> {
    let fp = target.quic_fingerprint.as_deref().context(
        "quic:// needs the server's certificate fingerprint: --quic-fingerprint HEX or --quic-cert DATA_DIR/quic-cert.pem \
         (on loopback, ./weir-data/quic-cert.pem is used when it exists)",
    )?;
    let fp = weir_net::quic::parse_fingerprint(fp)
        .context("--quic-fingerprint is not a 64-digit hex SHA-256")?;
    let mut config = ClientConfig::new(target.socket_addr()?, Trust::Fingerprint(fp));
    config.transport = target.quic_transport.clone();
    // QUIC over UDP hears nothing from a port without a server: give up
    // after a few seconds instead of the idle timeout's 30.
    match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(config)).await {
        Ok(r) => r.with_context(|| format!("connecting to {target}")),
        Err(_) => anyhow::bail!(
            "connecting to {target}: no answer within {} s; is `weir serve` running there \
             (its QUIC door defaults to 127.0.0.1:4438)?",
            CONNECT_TIMEOUT.as_secs()
        ),
    }
}

/// How long a QUIC handshake may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The fingerprint of the first certificate in a PEM file.
pub fn fingerprint_of_pem(path: &std::path::Path) -> anyhow::Result<String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let cert = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .next()
        .with_context(|| format!("{} holds no certificate", path.display()))?
        .with_context(|| format!("{} is not PEM", path.display()))?;
    Ok(weir_net::quic::fingerprint(&cert))
}

impl Transport for QuicTransport {
    fn create<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.client.create(stream, CONTENT_TYPE).await?;
            Ok(())
        })
    }

    fn append<'a>(
        &'a self,
        stream: &'a str,
        records: Vec<Bytes>,
        producer: Option<ProducerTag>,
    ) -> BoxFuture<'a, anyhow::Result<Ack>> {
        Box::pin(async move {
            let append = binary_append(stream, records, producer);
            Ok(self.client.append_with(append).await?.into())
        })
    }

    fn subscribe<'a>(
        &'a self,
        stream: &'a str,
        from: StartFrom,
    ) -> BoxFuture<'a, anyhow::Result<Subscribed>> {
        Box::pin(async move {
            // `Now` is resolved to the tail first so the start is exact.
            let start = match from {
                StartFrom::Start => 0,
                StartFrom::Now => self.client.head(stream).await?.next_offset,
            };
            let sub = self.client.subscribe(stream, SubscribeFrom::Offset(start));
            let records = sub.map(|item| Ok(Delivery::Batch(item?))).boxed();
            Ok(Subscribed { start, records })
        })
    }

    fn delete<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.client.delete(stream).await?;
            Ok(())
        })
    }
}
