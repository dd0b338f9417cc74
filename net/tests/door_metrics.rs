//! The binary doors' metrics against the real servers: a QUIC client and a
//! WebSocket client move the request, error, connection, subscription and
//! delivery figures of `/metrics` by exactly what they did, and the gauges
//! return to zero when the clients leave.

mod common;
mod ws_support;

#[path = "quic_support.rs"]
mod quic;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use futures::StreamExt;
use hyper::{Method, StatusCode};
use weir_net::http::HttpConfig;
use weir_net::proto::{Message, SubscribeFrom};
use weir_storage::Record;
use ws_support::*;

fn sample(text: &str, name: &str) -> Option<f64> {
    common::metric(text, name)
}

async fn metrics(s: &Server) -> String {
    let r = s.send(Method::GET, "/metrics", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    r.text()
}

/// Waits until the sample `name` reads `want` (a gauge settling).
async fn settles(s: &Server, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = sample(&metrics(s).await, name);
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {got:?}, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_doors_count_what_their_clients_do() {
    let s = Server::start(HttpConfig::default()).await;
    let ct = [("content-type", "application/octet-stream")];
    let created = s.send(Method::PUT, "/v1/stream/m", &ct, "").await;
    assert_eq!(created.status, StatusCode::CREATED);
    let before = metrics(&s).await;
    let at = |text: &str, name: &str| sample(text, name).unwrap_or(0.0);
    assert_eq!(at(&before, r#"weir_binary_connections{door="quic"}"#), 0.0);

    let qdir = tempfile::tempdir().unwrap();
    let qs = quic::TestServer::start(
        s.engine.clone(),
        qdir.path(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let qc = qs.client().await;
    let records = (0..1000)
        .map(|i| Record::new(Bytes::from(format!("r{i}"))))
        .collect();
    qc.append("m", records).await.unwrap();
    let mut sub = qc.subscribe("m", SubscribeFrom::Start);
    let mut got = 0;
    while got < 1000 {
        got += sub.next().await.unwrap().unwrap().len();
    }
    let during = metrics(&s).await;
    let delta = |name: &str| at(&during, name) - at(&before, name);
    assert_eq!(delta(r#"weir_binary_connections{door="quic"}"#), 1.0);
    assert_eq!(
        delta(r#"weir_binary_connections_accepted_total{door="quic"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"weir_binary_requests_total{door="quic",request="append"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"weir_binary_requests_total{door="quic",request="subscribe"}"#),
        1.0
    );
    assert_eq!(delta(r#"weir_binary_subscriptions{door="quic"}"#), 1.0);
    assert!(delta("weir_records_delivered_total") >= 1000.0);
    assert_eq!(at(&during, "weir_followers_live"), 1.0);

    // A WebSocket client's refused append counts as an error of its code.
    let mut ws = binary_client(&s.base).await;
    send(
        &mut ws,
        2,
        append("absent", vec![Record::new(Bytes::from_static(b"x"))]),
    )
    .await;
    assert!(matches!(frame(&mut ws).await.message, Message::Error(_)));
    let after = metrics(&s).await;
    assert_eq!(at(&after, r#"weir_binary_connections{door="ws"}"#), 1.0);
    assert_eq!(
        at(
            &after,
            r#"weir_binary_requests_total{door="ws",request="append"}"#
        ),
        1.0
    );
    // NotFound is code 10 in PROTOCOL.md.
    assert_eq!(
        at(&after, r#"weir_binary_errors_total{door="ws",code="10"}"#),
        1.0
    );

    drop(sub);
    settles(&s, r#"weir_binary_subscriptions{door="quic"}"#, 0.0).await;
    drop(qc);
    drop(ws);
    settles(&s, r#"weir_binary_connections{door="quic"}"#, 0.0).await;
    settles(&s, r#"weir_binary_connections{door="ws"}"#, 0.0).await;
    settles(&s, r#"weir_binary_send_buffer_bytes{door="quic"}"#, 0.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_subscriptions_are_counted_while_open() {
    let s = Server::start(HttpConfig::default()).await;
    let created = s
        .send(
            Method::PUT,
            "/v1/stream/kv",
            &[
                ("content-type", "application/json"),
                ("stream-state", "state-protocol"),
            ],
            "",
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let qdir = tempfile::tempdir().unwrap();
    let qs = quic::TestServer::start(
        s.engine.clone(),
        qdir.path(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let qc = qs.client().await;
    let mut sub = qc.subscribe_state("kv", true, None);
    // The snapshot of an empty state ends at once.
    let first = sub.next().await.unwrap().unwrap();
    assert!(
        matches!(first, weir_net::client::StateItem::SnapshotDone { .. }),
        "{first:?}"
    );
    settles(&s, "weir_state_subscriptions", 1.0).await;
    settles(&s, r#"weir_binary_state_subscriptions{door="quic"}"#, 1.0).await;
    drop(sub);
    settles(&s, "weir_state_subscriptions", 0.0).await;
    settles(&s, r#"weir_binary_state_subscriptions{door="quic"}"#, 0.0).await;
}
