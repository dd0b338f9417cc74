//! One set of content rules on every door: an append of invalid or too
//! deeply nested JSON to a JSON stream is refused over HTTP, QUIC, WebSocket
//! binary, WebSocket JSON and in-process alike, writes nothing, and a read
//! over HTTP afterwards returns a valid JSON array of exactly the good records.

mod common;
mod ws_support;

#[path = "quic_support.rs"]
mod quic;

use bytes::Bytes;
use common::Server;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use weir_net::http::HttpConfig;
use weir_net::proto::{ErrorKind, Message};
use weir_storage::{AppendRequest, Error, Record};
use ws_support::*;

/// Payloads every door must refuse on a JSON stream.
fn bad_payloads() -> Vec<Vec<u8>> {
    vec![
        b"not json".to_vec(),
        b"{\"a\":".to_vec(),
        b"1 2".to_vec(),
        format!("{}{}", "[".repeat(129), "]".repeat(129)).into_bytes(),
    ]
}

async fn tail(s: &Server, stream: &str) -> u64 {
    s.engine.tail(stream).unwrap().0
}

#[tokio::test(flavor = "multi_thread")]
async fn json_rules_hold_on_every_door() {
    let s = Server::start(HttpConfig::default()).await;
    let ct = "application/json";
    let r = s
        .send(
            Method::PUT,
            "/v1/stream/events",
            &[("content-type", ct)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let good = |i: u32| Bytes::from(format!("{{\"a\":{i}}}"));
    s.engine
        .append(
            "events",
            AppendRequest {
                records: vec![Record::new(good(0))],
                ..Default::default()
            },
        )
        .unwrap();

    let qdir = tempfile::tempdir().unwrap();
    let qs = quic::TestServer::start(
        s.engine.clone(),
        qdir.path(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let qc = qs.client().await;
    let mut wsb = binary_client(&s.base).await;
    let mut wsj = connect(&s.base).await;
    send_json(
        &mut wsj,
        json!({"type": "hello", "id": 1, "client": "matrix"}),
    )
    .await;
    assert_eq!(json(&mut wsj).await["type"], "welcome");

    let mut id = 10u32;
    for bad in bad_payloads() {
        let before = tail(&s, "events").await;
        let label = String::from_utf8_lossy(&bad[..bad.len().min(20)]).into_owned();

        // In-process: one good record beside the bad one; neither is written.
        let e = s
            .engine
            .append(
                "events",
                AppendRequest {
                    records: vec![Record::new(good(1)), Record::new(bad.clone())],
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "in-process {label}: {e:?}");

        // HTTP: a body that is a JSON array holding the bad text is not JSON at all
        // unless the bad payload is merely too deep; either way, 400.
        let mut body = b"[{\"a\":1},".to_vec();
        body.extend_from_slice(&bad);
        body.push(b']');
        let r = s
            .send(
                Method::POST,
                "/v1/stream/events",
                &[("content-type", ct)],
                Bytes::from(body),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "HTTP {label}: {}",
            r.text()
        );

        // QUIC.
        let e = qc
            .append(
                "events",
                vec![Record::new(good(2)), Record::new(bad.clone())],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, weir_net::client::ClientError::Server(ref w) if w.kind == ErrorKind::Invalid),
            "QUIC {label}: {e:?}"
        );

        // WebSocket binary.
        id += 1;
        send(
            &mut wsb,
            id,
            append(
                "events",
                vec![Record::new(good(3)), Record::new(bad.clone())],
            ),
        )
        .await;
        let f = frame(&mut wsb).await;
        assert!(
            matches!(f.message, Message::Error(ref w) if w.kind == ErrorKind::Invalid),
            "WS binary {label}: {:?}",
            f.message
        );

        // WebSocket JSON, with the bad payload as text (or base64 when not UTF-8).
        id += 1;
        let rec = match std::str::from_utf8(&bad) {
            Ok(t) => json!({"payload": t}),
            Err(_) => unreachable!("test payloads are UTF-8"),
        };
        send_json(&mut wsj, json!({"type": "append", "id": id, "stream": "events", "records": [{"payload": "{\"a\":4}"}, rec]})).await;
        let v = json(&mut wsj).await;
        assert_eq!(v["type"], "error", "WS JSON {label}: {v}");
        assert_eq!(v["id"], id);

        assert_eq!(
            tail(&s, "events").await,
            before,
            "{label}: something was written"
        );
    }

    // A good append still works on every door, and the HTTP read is valid JSON.
    qc.append("events", vec![Record::new(good(5))])
        .await
        .unwrap();
    id += 1;
    send_json(&mut wsj, json!({"type": "append", "id": id, "stream": "events", "records": [{"payload": "{\"a\":6}"}]})).await;
    assert_eq!(json(&mut wsj).await["type"], "appended");
    let r = s.get("/v1/stream/events?offset=-1").await;
    assert_eq!(r.status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&r.body).expect("the stream reads back as JSON");
    assert_eq!(v, json!([{"a": 0}, {"a": 5}, {"a": 6}]));
    qs.stop().await;
}
