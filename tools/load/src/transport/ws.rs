//! The WebSocket transport: Weir's binary protocol in binary WebSocket
//! messages. The server's `/v1/ws` endpoint and a WebSocket client in
//! `weir_net::client` do not exist yet, so this transport reports that
//! plainly instead of pretending.

/// The error a `ws://` target gets in this build.
pub fn unavailable() -> anyhow::Error {
    anyhow::anyhow!(
        "transport ws not available in this build (Weir's WebSocket endpoint and client are not wired yet); use http:// or quic://"
    )
}
