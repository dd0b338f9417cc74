//! The operations door: with auth on, `/metrics`, `/healthz` and `/readyz`
//! answer on the ops address without credentials (and count the main
//! door's requests, as they share one registry), the main door still asks
//! for a token, and the ops door serves nothing else.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_net::auth::{token_digest, Auth, AuthConfig, Grant, Permission, TokenConfig};
use weir_net::http::{serve_with_ops, HttpConfig};
use weir_storage::{Engine, EngineConfig};

const TOKEN: &str = "ops-test-token-0123456789";

/// One HTTP/1.1 request; the status and the body.
async fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the door answers")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ops_door_serves_metrics_and_health_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let auth = Auth::from_config(&AuthConfig {
        enabled: true,
        tokens: vec![TokenConfig {
            name: "admin".into(),
            sha256: token_digest(TOKEN),
            grants: vec![Grant {
                streams: "**".into(),
                permissions: vec![Permission::Read, Permission::Create],
            }],
        }],
        jwt: None,
    })
    .unwrap()
    .unwrap();
    let config = HttpConfig {
        auth: Some(auth),
        ..HttpConfig::default()
    };
    let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (main_addr, ops_addr) = (main.local_addr().unwrap(), ops.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_ops(
        engine,
        config,
        main,
        Some(ops),
        async move {
            let _ = stopped.await;
        },
    ));

    assert_eq!(get(main_addr, "/metrics", None).await.0, 401);
    // A request the main door answers, counted where the ops door sees it.
    assert_eq!(get(main_addr, "/v1/stream/nope", Some(TOKEN)).await.0, 404);
    let (status, metrics) = get(ops_addr, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("weir_http_requests"), "{metrics}");
    assert!(metrics.contains("route=\"read\""), "{metrics}");
    assert_eq!(get(ops_addr, "/healthz", None).await.0, 200);
    assert_eq!(get(ops_addr, "/readyz", None).await.0, 200);
    let (status, body) = get(ops_addr, "/v1/stream/nope", None).await;
    assert_eq!(status, 404);
    assert!(body.contains("operations door"), "{body}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the doors stop")
        .unwrap()
        .unwrap();
}
