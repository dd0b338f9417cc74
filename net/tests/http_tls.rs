//! HTTP and WebSocket over TLS against the real server: a rustls client
//! that trusts only the server's certificate (the QUIC door's self-signed
//! one, generated in the data directory) creates, appends to and reads a
//! stream, and opens a WebSocket session; a plain-text client gets no
//! HTTP answer from the TLS port.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use weir_net::http::{serve, tls_server_config, HttpConfig};
use weir_net::quic::tls::load_or_generate;
use weir_storage::{Engine, EngineConfig};

async fn start(
    dir: &std::path::Path,
) -> (
    String,
    Arc<rustls::RootCertStore>,
    tokio::sync::oneshot::Sender<()>,
) {
    let engine = Engine::open(dir.join("db"), EngineConfig::default()).unwrap();
    let identity = load_or_generate(None, None, dir, &["localhost".to_string()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.chain[0].clone()).unwrap();
    let config = HttpConfig {
        tls: Some(tls_server_config(identity).unwrap()),
        ..HttpConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(engine, config, listener, async move {
        let _ = rx.await;
    }));
    (addr, Arc::new(roots), tx)
}

async fn tls(
    addr: &str,
    roots: &Arc<rustls::RootCertStore>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = rustls::ClientConfig::builder_with_provider(weir_net::quic::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(Arc::clone(roots))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the server's certificate")
}

/// One HTTP/1.1 request on a fresh TLS connection; (status, body).
async fn request(
    addr: &str,
    roots: &Arc<rustls::RootCertStore>,
    head: &str,
    body: &str,
) -> (u16, String) {
    let mut s = tls(addr, roots).await;
    let req = format!(
        "{head} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_with_the_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, roots, _stop) = start(dir.path()).await;
    let (st, _) = request(&addr, &roots, "PUT /v1/stream/t", "").await;
    assert_eq!(st, 201);
    let (st, _) = request(&addr, &roots, "POST /v1/stream/t", "[{\"a\":1},{\"a\":2}]").await;
    assert!((200..300).contains(&st), "{st}");
    let (st, body) = request(&addr, &roots, "GET /v1/stream/t?offset=-1", "").await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    assert_eq!(v, json!([{"a": 1}, {"a": 2}]), "{body}");

    // WebSocket over the same TLS port.
    let stream = tls(&addr, &roots).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/v1/ws", stream)
        .await
        .unwrap();
    ws.send(WsMessage::text(
        json!({"type": "hello", "id": 1}).to_string(),
    ))
    .await
    .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], json!("welcome"), "{v}");

    // Plain text to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}
