//! Authentication on every door against the real servers: every operation
//! over HTTP, QUIC and WebSocket (binary and JSON), each tried with no
//! token, a malformed one, a JWT signed with the wrong secret, an expired
//! JWT, a token whose patterns do not cover the stream, and a token
//! without the permission. None may succeed; each gets its status or error
//! code; refusals say nothing about whether a stream exists. A valid token
//! succeeds (so the matrix can fail), and a JWT that expires during a
//! QUIC session stops working at its expiry.

mod common;
#[path = "quic_support.rs"]
mod support;
mod ws_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Server;
use hyper::{Method, StatusCode};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use weir_net::auth::{token_digest, Auth, AuthConfig, Grant, JwtConfig, Permission, TokenConfig};
use weir_net::client::{Client, ClientError};
use weir_net::http::HttpConfig;
use weir_net::proto::{ErrorKind, WireKey};
use weir_storage::Record;
use ws_support::{connect, json, send_json};

const SECRET: &str = "the-matrix-hs256-secret-of-32-bytes-or-more";
const WRITER: &str = "writer-token-0123456789";
const READER: &str = "reader-token-0123456789";
const APPENDER: &str = "appender-token-0123456789";

fn grant(streams: &str, permissions: &[Permission]) -> Grant {
    Grant {
        streams: streams.into(),
        permissions: permissions.to_vec(),
    }
}

fn auth(dir: &std::path::Path) -> Auth {
    use Permission::*;
    let secret = dir.join("hs256");
    std::fs::write(&secret, SECRET).unwrap();
    let token = |name: &str, t: &str, grants| TokenConfig {
        name: name.into(),
        sha256: token_digest(t),
        grants,
    };
    let config = AuthConfig {
        enabled: true,
        tokens: vec![
            token(
                "writer",
                WRITER,
                vec![grant("app/*", &[Read, Append, Create, Delete, Admin])],
            ),
            token("reader", READER, vec![grant("app/*", &[Read])]),
            token("appender", APPENDER, vec![grant("app/*", &[Append])]),
        ],
        jwt: Some(JwtConfig {
            hs256_secret_file: Some(secret),
            ..Default::default()
        }),
    };
    Auth::from_config(&config).unwrap().unwrap()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(secret: &str, exp: u64) -> String {
    let claims = json!({"sub": "matrix", "exp": exp, "weir": {"grants": [
        {"streams": "*", "permissions": ["admin"]}]}});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The credentials that carry no usable token (401 / Unauthorized); the
/// valid-but-not-allowed cases are tried with the static tokens.
fn bad_credentials() -> Vec<(&'static str, Option<String>)> {
    vec![
        ("none", None),
        ("malformed", Some("%%% not a token".into())),
        (
            "wrong secret",
            Some(jwt("another-secret-that-is-long-enough-too", now_s() + 600)),
        ),
        ("expired", Some(jwt(SECRET, now_s() - 600))),
    ]
}

struct Servers {
    http: Server,
    quic: support::TestServer,
    _dir: tempfile::TempDir,
}

async fn start() -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let a = auth(dir.path());
    let mut config = HttpConfig {
        auth: Some(a.clone()),
        ..HttpConfig::default()
    };
    config.ws.session.auth = Some(a.clone());
    let http = Server::start(config).await;
    // Fixtures, in-process (the engine is not behind the doors).
    let e = &http.engine;
    for name in ["app/s", "other/x"] {
        e.create_stream(name, weir_storage::StreamConfig::new("application/json"))
            .unwrap();
        e.append(
            name,
            weir_storage::AppendRequest {
                records: vec![Record::new("{\"a\":1}")],
                ..Default::default()
            },
        )
        .unwrap();
    }
    let quic = support::TestServer::start_with(
        http.engine.clone(),
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        |c| c.session.auth = Some(a),
    )
    .await;
    Servers {
        http,
        quic,
        _dir: dir,
    }
}

/// Every HTTP operation on `stream`: (name, method, path, body).
fn http_ops(stream: &str) -> Vec<(&'static str, Method, String, String)> {
    let p = format!("/v1/stream/{stream}");
    vec![
        ("create", Method::PUT, format!("{p}-new"), String::new()),
        ("append", Method::POST, p.clone(), "[{\"a\":2}]".into()),
        ("read", Method::GET, format!("{p}?offset=-1"), String::new()),
        ("head", Method::HEAD, p.clone(), String::new()),
        ("delete", Method::DELETE, p.clone(), String::new()),
        ("state", Method::GET, format!("{p}/_state"), String::new()),
        (
            "profile",
            Method::POST,
            format!("{p}/_profile"),
            "{}".into(),
        ),
        (
            "profile get",
            Method::GET,
            format!("{p}/_profile"),
            String::new(),
        ),
        (
            "touch wait",
            Method::POST,
            format!("{p}/touch/wait"),
            "{\"keys\":[\"a\"]}".into(),
        ),
        (
            "touch meta",
            Method::GET,
            format!("{p}/touch/meta"),
            String::new(),
        ),
    ]
}

async fn http_call(
    s: &Server,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: String,
) -> (StatusCode, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    let r = s.send(method, path, &headers, body).await;
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refuses_every_bad_credential_on_every_route() {
    let s = start().await;
    let mut refused = 0;
    for (cred, token) in bad_credentials() {
        for (op, m, path, body) in http_ops("app/s") {
            let (status, text) = http_call(&s.http, token.as_deref(), m, &path, body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{cred} / {op}: {text}");
            refused += 1;
        }
        let (status, _) = http_call(
            &s.http,
            token.as_deref(),
            Method::GET,
            "/metrics",
            "".into(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{cred} / metrics");
    }
    // Valid tokens outside their scope or without the permission: 403.
    for (op, m, path, body) in http_ops("other/x") {
        let (status, text) = http_call(&s.http, Some(WRITER), m, &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "out of scope / {op}: {text}");
        refused += 1;
    }
    for (op, m, path, body) in http_ops("app/s") {
        let writes = !matches!(
            op,
            "read" | "head" | "state" | "profile get" | "touch wait" | "touch meta"
        );
        let token = if writes { READER } else { APPENDER };
        let (status, text) = http_call(&s.http, Some(token), m, &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "insufficient / {op}: {text}");
        refused += 1;
    }
    // Operations endpoints need their own grant; health needs none.
    let (status, _) = http_call(&s.http, Some(WRITER), Method::GET, "/metrics", "".into()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a grant on app/* is not one on _ops"
    );
    let (status, _) = http_call(&s.http, None, Method::GET, "/healthz", "".into()).await;
    assert_eq!(status, StatusCode::OK);
    // live.metrics is not reachable through a wildcard.
    let jwt_all = jwt(SECRET, now_s() + 600);
    let (status, _) = http_call(
        &s.http,
        Some(&jwt_all),
        Method::GET,
        "/v1/stream/live.metrics?offset=-1",
        "".into(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // No information about streams outside the scope: an existing and a
    // missing stream are refused alike.
    let a = http_call(
        &s.http,
        Some(WRITER),
        Method::HEAD,
        "/v1/stream/other/x",
        "".into(),
    )
    .await;
    let b = http_call(
        &s.http,
        Some(WRITER),
        Method::HEAD,
        "/v1/stream/other/nope",
        "".into(),
    )
    .await;
    assert_eq!(a, b);
    let a = http_call(
        &s.http,
        Some(READER),
        Method::DELETE,
        "/v1/stream/app/s",
        "".into(),
    )
    .await;
    let b = http_call(
        &s.http,
        Some(READER),
        Method::DELETE,
        "/v1/stream/app/nope",
        "".into(),
    )
    .await;
    assert_eq!(a, b);
    // The 401 carries the bearer challenge.
    let r = s.http.send(Method::GET, "/v1/stream/app/s", &[], "").await;
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    // Nothing above changed anything.
    assert_eq!(s.http.engine.read("app/s", 0, 1 << 20).unwrap().tail, 1);
    assert!(s.http.engine.head("app/s-new").is_err());
    // And a valid token succeeds (a JWT and a static token).
    for token in [jwt_all.as_str(), WRITER] {
        let (status, text) = http_call(
            &s.http,
            Some(token),
            Method::GET,
            "/v1/stream/app/s?offset=-1",
            "".into(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    let (status, _) = http_call(
        &s.http,
        Some(WRITER),
        Method::POST,
        "/v1/stream/app/s",
        "[{\"a\":3}]".into(),
    )
    .await;
    assert!(status.is_success());
    assert!(refused >= 60, "{refused} refusals checked");
    s.quic.stop().await;
}

async fn quic_client(s: &Servers, token: Option<String>) -> Result<Client, ClientError> {
    let mut c = s.quic.client_config();
    c.auth_token = token;
    c.request_timeout = Duration::from_secs(5);
    Client::connect(c).await
}

/// Every binary operation on `stream` through the Rust client; the
/// results' errors.
fn ok<T>(r: Result<T, ClientError>) -> Result<(), ClientError> {
    r.map(drop)
}

async fn quic_ops(c: &Client, stream: &str) -> Vec<(&'static str, Result<(), ClientError>)> {
    vec![
        (
            "create",
            ok(c.create(&format!("{stream}-new"), "application/json").await),
        ),
        (
            "append",
            ok(c.append(stream, vec![Record::new("{\"a\":2}")]).await),
        ),
        ("read", ok(c.read(stream, 0, 1 << 16).await)),
        ("head", ok(c.head(stream).await)),
        (
            "get",
            ok(c.get(stream, WireKey::Keyed(b"k".to_vec())).await),
        ),
        ("wait", ok(c.wait(stream, &json!({"keys": ["a"]})).await)),
        ("delete", ok(c.delete(stream).await)),
    ]
}

fn kind(r: &Result<(), ClientError>) -> Option<ErrorKind> {
    match r {
        Err(ClientError::Server(e)) => Some(e.kind.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_refuses_bad_tokens_at_hello_and_checks_every_request() {
    let s = start().await;
    for (cred, token) in bad_credentials() {
        match quic_client(&s, token).await {
            Err(ClientError::Server(e)) => assert_eq!(e.kind, ErrorKind::Unauthorized, "{cred}"),
            Err(e) => panic!("{cred}: expected Unauthorized, got {e}"),
            Ok(_) => panic!("{cred}: the connection was accepted"),
        }
    }
    let writer = quic_client(&s, Some(WRITER.into())).await.unwrap();
    for (op, r) in quic_ops(&writer, "other/x").await {
        assert_eq!(
            kind(&r),
            Some(ErrorKind::Forbidden),
            "out of scope / {op}: {r:?}"
        );
    }
    let reader = quic_client(&s, Some(READER.into())).await.unwrap();
    for (op, r) in quic_ops(&reader, "app/s").await {
        match op {
            "create" | "append" | "delete" => {
                assert_eq!(kind(&r), Some(ErrorKind::Forbidden), "insufficient / {op}")
            }
            // Reads are allowed; they fail or succeed on their own terms.
            _ => assert_ne!(kind(&r), Some(ErrorKind::Forbidden), "{op}: {r:?}"),
        }
    }
    // Out of scope: the same answer for an existing and a missing stream.
    let a = writer.head("other/x").await.unwrap_err();
    let b = writer.head("other/nope").await.unwrap_err();
    assert_eq!(format!("{a}"), format!("{b}"));
    assert_eq!(s.http.engine.read("app/s", 0, 1 << 20).unwrap().tail, 1);
    // A valid token works.
    writer
        .append("app/s", vec![Record::new("{\"a\":3}")])
        .await
        .unwrap();

    // A JWT that expires during the session stops working then.
    let short = jwt(SECRET, now_s() + 2);
    let c = quic_client(&s, Some(short)).await.unwrap();
    c.head("app/s").await.unwrap();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let after = c.head("app/s").await;
    assert!(
        after.is_err(),
        "the expired session still answered: {after:?}"
    );
    s.quic.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_checks_the_upgrade_the_hello_and_every_request() {
    let s = start().await;
    // JSON sessions: each bad credential is refused at hello.
    for (cred, token) in bad_credentials() {
        let mut ws = connect(&s.http.base).await;
        let mut hello = json!({"type": "hello", "id": 1, "max_version": 2});
        if let Some(t) = token {
            hello["auth_token"] = Value::String(t);
        }
        send_json(&mut ws, hello).await;
        let e = json(&mut ws).await;
        assert_eq!(e["kind"], json!("Unauthorized"), "{cred}: {e}");
    }
    // A refused token on the upgrade is refused before any upgrade.
    let url = ws_support::ws_url(&s.http.base);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(format!("{err}").contains("401"), "{err}");
    // A good token on the upgrade stands in for the Hello token.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {READER}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    send_json(&mut ws, json!({"type": "hello", "id": 1, "max_version": 2})).await;
    assert_eq!(json(&mut ws).await["type"], json!("welcome"));
    let requests = [
        json!({"type": "create", "id": 2, "stream": "app/new", "content_type": "application/json"}),
        json!({"type": "append", "id": 3, "stream": "app/s", "records": [{"payload": "{}"}]}),
        json!({"type": "delete", "id": 4, "stream": "app/s"}),
        json!({"type": "read", "id": 5, "stream": "other/x"}),
        json!({"type": "subscribe", "id": 6, "stream": "other/x"}),
        json!({"type": "head", "id": 7, "stream": "other/nope"}),
        json!({"type": "wait", "id": 8, "stream": "other/x", "keys": ["a"]}),
    ];
    for r in requests {
        send_json(&mut ws, r.clone()).await;
        let e = json(&mut ws).await;
        assert_eq!(e["kind"], json!("Forbidden"), "{r}: {e}");
        assert_eq!(e["code"], json!(24));
    }
    // Allowed reads go through on the same connection.
    send_json(&mut ws, json!({"type": "head", "id": 9, "stream": "app/s"})).await;
    assert_eq!(json(&mut ws).await["type"], json!("info"));
    assert_eq!(s.http.engine.read("app/s", 0, 1 << 20).unwrap().tail, 1);
    s.quic.stop().await;
}

/// A live read allowed with a JWT ends when the JWT expires, long before
/// the SSE connection limit (60 s) or the long-poll timeout (30 s): the
/// client must come back with a fresh token.
#[tokio::test(flavor = "multi_thread")]
async fn live_reads_end_when_their_token_expires() {
    let s = start().await;
    let tail = s.http.engine.tail("app/s").unwrap().0;
    let at = format!("{:016}_{:016}", 0, tail);
    let mut bearer = String::new();
    for (mode, status) in [
        ("sse", StatusCode::OK),
        ("long-poll", StatusCode::NO_CONTENT),
    ] {
        // `exp` has whole seconds; 2 s ahead leaves 1–2 s of life.
        bearer = format!("Bearer {}", jwt(SECRET, now_s() + 2));
        let auth = [("authorization", bearer.as_str())];
        let t = Instant::now();
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            s.http.send(
                Method::GET,
                &format!("/v1/stream/app/s?offset={at}&live={mode}"),
                &auth,
                "",
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("the {mode} read outlived its token"));
        assert_eq!(read.status, status, "{mode}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{mode}: {:?}",
            t.elapsed()
        );
    }
    let auth = [("authorization", bearer.as_str())];
    // And the expired token gets no further.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = s
        .http
        .send(
            Method::GET,
            &format!("/v1/stream/app/s?offset={at}&live=long-poll"),
            &auth,
            "",
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}
