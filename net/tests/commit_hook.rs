//! The engine announces committed changes to the doors through its commit
//! hook, so webhook and pull-wake subscriptions see appends from every
//! door and from in-process callers: one pull-wake subscription per door
//! wakes when its stream is appended to over QUIC, WebSocket binary,
//! WebSocket JSON, HTTP and in-process, and a pattern subscription wakes
//! for all of them.

mod common;
mod ws_support;

#[path = "quic_support.rs"]
mod quic;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use hyper::{Method, StatusCode};
use serde_json::json;
use weir_net::http::HttpConfig;
use weir_net::proto::Message;
use weir_storage::{AppendRequest, Record};
use ws_support::*;

const DOORS: [&str; 5] = ["quic", "wsbin", "wsjson", "http", "local"];

async fn put(s: &Server, path: &str, ct: &str, body: String) -> StatusCode {
    s.send(
        Method::PUT,
        path,
        &[("content-type", ct)],
        Bytes::from(body),
    )
    .await
    .status
}

/// Waits until `stream` holds at least one record (a wake event).
async fn woken(s: &Server, stream: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if s.engine.tail(stream).map(|(t, _)| t).unwrap_or(0) > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_wake_for_appends_from_every_door() {
    let s = Server::start(HttpConfig::default()).await;
    let ct = "application/octet-stream";
    for door in DOORS {
        let created = put(&s, &format!("/v1/stream/door-{door}"), ct, String::new()).await;
        assert_eq!(created, StatusCode::CREATED);
        let wake = format!("wakes-{door}");
        assert_eq!(
            put(&s, &format!("/v1/stream/{wake}"), ct, String::new()).await,
            StatusCode::CREATED
        );
        let body = json!({"type": "pull-wake", "wake_stream": wake,
                          "streams": [format!("door-{door}")]});
        let status = put(
            &s,
            &format!("/v1/stream/__ds/subscriptions/sub-{door}"),
            "application/json",
            body.to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "subscription for {door}");
    }
    assert_eq!(
        put(&s, "/v1/stream/wakes-all", ct, String::new()).await,
        StatusCode::CREATED
    );
    let body = json!({"type": "pull-wake", "wake_stream": "wakes-all", "pattern": "door-*"});
    let status = put(
        &s,
        "/v1/stream/__ds/subscriptions/sub-all",
        "application/json",
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Creating the streams linked the pattern subscription; nothing was
    // appended yet, so no wake is open.
    assert_eq!(s.engine.tail("wakes-all").unwrap().0, 0);

    let qdir = tempfile::tempdir().unwrap();
    let qs = quic::TestServer::start(
        s.engine.clone(),
        qdir.path(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let qc = qs.client().await;
    qc.append("door-quic", vec![Record::new(Bytes::from_static(b"q"))])
        .await
        .unwrap();
    assert!(woken(&s, "wakes-quic").await, "QUIC append woke nobody");
    assert!(
        woken(&s, "wakes-all").await,
        "the pattern subscription slept"
    );

    let mut wsb = binary_client(&s.base).await;
    send(
        &mut wsb,
        2,
        append("door-wsbin", vec![Record::new(Bytes::from_static(b"b"))]),
    )
    .await;
    assert!(matches!(
        frame(&mut wsb).await.message,
        Message::Appended(_)
    ));
    assert!(
        woken(&s, "wakes-wsbin").await,
        "WebSocket binary append woke nobody"
    );

    let mut wsj = connect(&s.base).await;
    send_json(
        &mut wsj,
        json!({"type": "hello", "id": 1, "client": "hook"}),
    )
    .await;
    assert_eq!(json(&mut wsj).await["type"], "welcome");
    send_json(
        &mut wsj,
        json!({"type": "append", "id": 2, "stream": "door-wsjson",
                               "records": [{"payload": "j"}]}),
    )
    .await;
    assert_eq!(json(&mut wsj).await["type"], "appended");
    assert!(
        woken(&s, "wakes-wsjson").await,
        "WebSocket JSON append woke nobody"
    );

    let r = s
        .send(
            Method::POST,
            "/v1/stream/door-http",
            &[("content-type", ct)],
            Bytes::from_static(b"h"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(woken(&s, "wakes-http").await, "HTTP append woke nobody");

    s.engine
        .append_async(
            "door-local",
            AppendRequest {
                records: vec![Record::new(Bytes::from_static(b"l"))],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        woken(&s, "wakes-local").await,
        "in-process append woke nobody"
    );

    // Each per-door subscription woke once, for its own stream only.
    for door in DOORS {
        assert_eq!(
            s.engine.tail(&format!("wakes-{door}")).unwrap().0,
            1,
            "{door}"
        );
    }
    qs.stop().await;
}
