//! Create, append, read, JSON mode, producers, limits and offset validation
//! against the real HTTP server.

mod common;

use common::Server;
use hyper::{Method, StatusCode};
use weir_net::http::HttpConfig;

const TEXT: &[(&str, &str)] = &[("content-type", "text/plain")];
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

#[tokio::test]
async fn create_append_read() {
    let s = Server::start(HttpConfig::default()).await;
    let r = s.send(Method::PUT, "/v1/stream/a/b", TEXT, "hello ").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.header("location").unwrap().ends_with("/v1/stream/a/b"));
    let first_tail = r.header("stream-next-offset").unwrap().to_string();
    assert_eq!(first_tail, "0000000000000000_0000000000000001");

    assert_eq!(
        s.send(Method::PUT, "/v1/stream/a/b", TEXT, "").await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/a/b", JSON, "").await.status,
        StatusCode::CONFLICT
    );

    let r = s.send(Method::POST, "/v1/stream/a/b", TEXT, "world").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.header("stream-next-offset").unwrap() > first_tail.as_str());

    let r = s.get("/v1/stream/a/b").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("stream-up-to-date"), Some("true"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let etag = r.header("etag").unwrap().to_string();

    let r = s
        .send(
            Method::GET,
            "/v1/stream/a/b",
            &[("if-none-match", &etag)],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    let r = s.get(&format!("/v1/stream/a/b?offset={first_tail}")).await;
    assert_eq!(r.text(), "world");

    let r = s.send(Method::HEAD, "/v1/stream/a/b", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("no-store"));

    assert_eq!(
        s.send(Method::DELETE, "/v1/stream/a/b", &[], "")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(s.get("/v1/stream/a/b").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn json_mode_flattens_one_level() {
    let s = Server::start(HttpConfig::default()).await;
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/j", JSON, "[]").await.status,
        StatusCode::CREATED
    );
    assert_eq!(s.get("/v1/stream/j").await.text(), "[]");
    assert_eq!(
        s.send(Method::POST, "/v1/stream/j", JSON, "[]")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.send(Method::POST, "/v1/stream/j", JSON, "{ nope")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    s.send(Method::POST, "/v1/stream/j", JSON, r#"[{"a":1},[2,3]]"#)
        .await;
    s.send(Method::POST, "/v1/stream/j", JSON, r#"{"b":4}"#)
        .await;
    let r = s.get("/v1/stream/j").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v, serde_json::json!([{"a":1},[2,3],{"b":4}]));
    // Each flattened element is its own record, with its own offset.
    assert_eq!(
        r.header("stream-next-offset"),
        Some("0000000000000000_0000000000000003")
    );
}

#[tokio::test]
async fn stream_key_sets_record_keys() {
    let s = Server::start(HttpConfig::default()).await;
    s.send(Method::PUT, "/v1/stream/k", JSON, "").await;
    let h = [
        ("content-type", "application/json"),
        ("stream-key", "user-7"),
    ];
    assert_eq!(
        s.send(Method::POST, "/v1/stream/k", &h, "[1,2]")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let read = s.engine.read("k", 0, 1 << 20).unwrap();
    let keys: Vec<_> = read
        .batches
        .iter()
        .flat_map(|b| b.iter().map(|r| r.key.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        keys,
        vec![Some(b"user-7".to_vec()), Some(b"user-7".to_vec())]
    );
}

#[tokio::test]
async fn producers_deduplicate() {
    let s = Server::start(HttpConfig::default()).await;
    s.send(Method::PUT, "/v1/stream/p", TEXT, "").await;
    let h = |seq: &'static str| {
        [
            ("content-type", "text/plain"),
            ("producer-id", "w1"),
            ("producer-epoch", "0"),
            ("producer-seq", seq),
        ]
    };
    assert_eq!(
        s.send(Method::POST, "/v1/stream/p", &h("0"), "a")
            .await
            .status,
        StatusCode::OK
    );
    let dup = s.send(Method::POST, "/v1/stream/p", &h("0"), "a").await;
    assert_eq!(dup.status, StatusCode::NO_CONTENT);
    assert_eq!(dup.header("producer-seq"), Some("0"));
    let gap = s.send(Method::POST, "/v1/stream/p", &h("5"), "x").await;
    assert_eq!(gap.status, StatusCode::CONFLICT);
    assert_eq!(gap.header("producer-expected-seq"), Some("1"));
    assert_eq!(
        s.send(Method::POST, "/v1/stream/p", &h("1"), "b")
            .await
            .status,
        StatusCode::OK
    );
    let bad = [("content-type", "text/plain"), ("producer-id", "w1")];
    assert_eq!(
        s.send(Method::POST, "/v1/stream/p", &bad, "c").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(s.get("/v1/stream/p").await.text(), "ab");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let s = Server::start(HttpConfig {
        max_append_bytes: 1024,
        ..HttpConfig::default()
    })
    .await;
    s.send(Method::PUT, "/v1/stream/big", TEXT, "").await;
    let r = s
        .send(Method::POST, "/v1/stream/big", TEXT, vec![b'x'; 2048])
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = s
        .send(Method::POST, "/v1/stream/big", TEXT, vec![b'x'; 1024])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_offsets_get_400() {
    let s = Server::start(HttpConfig::default()).await;
    s.send(Method::PUT, "/v1/stream/o", TEXT, "data").await;
    for q in [
        "offset=",
        "offset=0,1",
        "offset=abc",
        "offset=..%2Fx",
        "offset=a&offset=b",
        "offset=0000000000000000_0000000000000099",
        "live=long-poll",
        "offset=-1&live=bogus",
    ] {
        let r = s.get(&format!("/v1/stream/o?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
    }
    assert_eq!(s.get("/v1/stream/o?offset=-1").await.text(), "data");
    let now = s.get("/v1/stream/o?offset=now").await;
    assert_eq!(now.text(), "");
    assert_eq!(now.header("stream-up-to-date"), Some("true"));
}

#[tokio::test]
async fn close_and_fork() {
    let s = Server::start(HttpConfig::default()).await;
    s.send(Method::PUT, "/v1/stream/src", TEXT, "hello").await;
    let h = [
        ("content-type", "text/plain"),
        ("stream-forked-from", "/v1/stream/src"),
        ("stream-fork-offset", "0000000000000000_0000000000000000"),
        ("stream-fork-sub-offset", "3"),
    ];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/fork", &h, "").await.status,
        StatusCode::CREATED
    );
    s.send(Method::POST, "/v1/stream/fork", TEXT, "LO").await;
    assert_eq!(s.get("/v1/stream/fork").await.text(), "helLO");
    // Deleting the source while the fork reads it soft-deletes it.
    assert_eq!(
        s.send(Method::DELETE, "/v1/stream/src", &[], "")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(s.get("/v1/stream/src").await.status, StatusCode::GONE);
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/src", TEXT, "").await.status,
        StatusCode::CONFLICT
    );
    // Deleting the fork collects the source.
    assert_eq!(
        s.send(Method::DELETE, "/v1/stream/fork", &[], "")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(s.get("/v1/stream/src").await.status, StatusCode::NOT_FOUND);

    s.send(Method::PUT, "/v1/stream/c", TEXT, "x").await;
    let r = s
        .send(
            Method::POST,
            "/v1/stream/c",
            &[("stream-closed", "true")],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("stream-closed"), Some("true"));
    let r = s.send(Method::POST, "/v1/stream/c", TEXT, "y").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.header("stream-closed"), Some("true"));
}
