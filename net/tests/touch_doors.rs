//! Touches on the binary doors against the real servers: `Wait` and
//! `ActivateTemplates` of protocol version 2 over QUIC with the Rust client,
//! and their JSON forms over WebSocket. Each answer is compared with the HTTP
//! route's answer to the same document, so the doors cannot drift apart.
//! Keys are the golden vectors of `../shared/specs/touches.md` §1.3.

mod common;
#[path = "quic_support.rs"]
mod support;
mod ws_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Server;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use weir_net::client::ClientError;
use weir_net::http::HttpConfig;
use weir_net::proto::{ErrorKind, WireWaitStatus};
use ws_support::{connect, json, send_json};

/// posts / [tenantId]: template id, watch key and membership key of `t1`.
const POSTS_TID: &str = "0af3814da0aea55f";
const WATCH_T1: &str = "f9ae463d06fcf3fc";
const MEMBER_T1: &str = "998c7dcd3c0ca6c5";

fn posts_template() -> Value {
    json!({"entity": "posts", "fields": [{"name": "tenantId", "encoding": "string"}]})
}

fn insert(key: &str, tenant: &str) -> Value {
    json!([{"type": "posts", "key": key, "value": {"tenantId": tenant, "title": "x"},
            "headers": {"operation": "insert"}}])
}

async fn http_json(s: &Server, method: Method, path: &str, body: &Value) -> (StatusCode, Value) {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let r = s
        .send(method, path, &[("content-type", "application/json")], text)
        .await;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

/// A touch-enabled State Protocol stream `app` (and a plain JSON stream `plain`).
async fn setup(s: &Server) {
    for name in ["app", "plain"] {
        let (st, _) = http_json(s, Method::PUT, &format!("/v1/stream/{name}"), &Value::Null).await;
        assert!(st.is_success(), "{st}");
    }
    let profile = json!({"apiVersion": "durable.streams/profile/v1",
        "profile": {"kind": "state-protocol", "touch": {"enabled": true}}});
    let (st, body) = http_json(s, Method::POST, "/v1/stream/app/_profile", &profile).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

async fn settled_cursor(s: &Server) -> String {
    let (st, m) = http_json(
        s,
        Method::GET,
        "/v1/stream/app/touch/meta?settle=flush&timeoutMs=5000",
        &Value::Null,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{m}");
    m["cursor"].as_str().unwrap().to_string()
}

async fn active_waiters(s: &Server) -> u64 {
    let (_, m) = http_json(s, Method::GET, "/v1/stream/app/touch/meta", &Value::Null).await;
    m["activeWaiters"].as_u64().unwrap()
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// The HTTP route's 400 message for a wait document.
async fn http_wait_error(s: &Server, doc: &Value) -> String {
    let (st, body) = http_json(s, Method::POST, "/v1/stream/app/touch/wait", doc).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_waits_and_activations_answer_as_http_does() {
    let s = Server::start(HttpConfig::default()).await;
    setup(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let quic =
        support::TestServer::start(s.engine.clone(), dir.path(), "127.0.0.1:0".parse().unwrap())
            .await;
    let c = quic.client().await;

    // Activation: the template id is Prisma's; a bad declaration is denied.
    let doc = json!({"templates": [posts_template(),
        {"entity": "posts", "fields": [{"name": "tenantId", "encoding": "float"}]}]});
    let a = c.activate_templates("app", &doc).await.unwrap();
    assert_eq!(a.activated.len(), 1, "{a:?}");
    assert_eq!(a.activated[0].template_id, POSTS_TID);
    assert_eq!(a.denied.len(), 1);
    assert_eq!(a.denied[0].reason, "invalid");
    let (_, http) = http_json(
        &s,
        Method::POST,
        "/v1/stream/app/touch/templates/activate",
        &doc,
    )
    .await;
    assert_eq!(a.to_json()["denied"], http["denied"]);
    assert_eq!(a.to_json()["limits"], http["limits"]);
    // A shape error rejects the whole document with the route's message.
    let bad = json!({"templates": "x"});
    let (st, http) = http_json(
        &s,
        Method::POST,
        "/v1/stream/app/touch/templates/activate",
        &bad,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    match c.activate_templates("app", &bad).await {
        Err(ClientError::Server(e)) => {
            assert_eq!(e.kind, ErrorKind::Invalid);
            assert_eq!(e.message, http["error"]["message"].as_str().unwrap());
        }
        other => panic!("expected Invalid, got {other:?}"),
    }

    // A zero timeout answers at once, untouched.
    let w = c
        .wait(
            "app",
            &json!({"cursor": "now", "keys": [WATCH_T1], "timeoutMs": 0}),
        )
        .await
        .unwrap();
    assert_eq!(w.status, WireWaitStatus::Timeout);

    // A wait in flight is woken by the matching insert made over HTTP.
    let cursor = settled_cursor(&s).await;
    let doc = json!({"cursor": cursor, "keys": [WATCH_T1, MEMBER_T1],
                     "templateIdsUsed": [POSTS_TID], "timeoutMs": 10000});
    let started = Instant::now();
    let (w, ()) = tokio::join!(c.wait("app", &doc), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (st, b) = http_json(&s, Method::POST, "/v1/stream/app", &insert("p1", "t1")).await;
        assert!(st.is_success(), "{b}");
    });
    let w = w.unwrap();
    assert_eq!(w.status, WireWaitStatus::Touched, "{w:?}");
    assert_eq!(w.effective_wait_kind, "fineKey");
    assert_ne!(w.cursor, cursor, "the cursor moves on");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The HTTP route gives the same answer, with the same members, to the
    // same document: the change is after the cursor either way.
    let (_, http) = http_json(&s, Method::POST, "/v1/stream/app/touch/wait", &doc).await;
    assert_eq!(http["touched"], json!(true));
    assert_eq!(keys_of(&w.to_json()), keys_of(&http));

    // A cursor of another epoch is stale, with the stale members.
    let w = c
        .wait(
            "app",
            &json!({"cursor": "0123456789abcdef:3", "keys": [WATCH_T1]}),
        )
        .await
        .unwrap();
    assert_eq!(w.status, WireWaitStatus::Stale);
    let (_, http) = http_json(
        &s,
        Method::POST,
        "/v1/stream/app/touch/wait",
        &json!({"cursor": "0123456789abcdef:3", "keys": [WATCH_T1]}),
    )
    .await;
    assert_eq!(keys_of(&w.to_json()), keys_of(&http));

    // Validation: the route's message, as Invalid.
    for doc in [
        json!({"keys": "x"}),
        json!({"keys": [], "cursor": "now"}),
        json!([1]),
    ] {
        let want = http_wait_error(&s, &doc).await;
        match c.wait("app", &doc).await {
            Err(ClientError::Server(e)) => {
                assert_eq!(e.kind, ErrorKind::Invalid, "{doc}");
                assert_eq!(e.message, want, "{doc}");
            }
            other => panic!("expected Invalid for {doc}, got {other:?}"),
        }
    }
    // Streams without touches, and missing streams.
    match c
        .wait("plain", &json!({"cursor": "now", "keys": [WATCH_T1]}))
        .await
    {
        Err(ClientError::Server(e)) => assert_eq!(e.message, "touch not enabled"),
        other => panic!("expected touch not enabled, got {other:?}"),
    }
    match c
        .wait("nope", &json!({"cursor": "now", "keys": [WATCH_T1]}))
        .await
    {
        Err(ClientError::Server(e)) => assert_eq!(e.kind, ErrorKind::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // A waiter whose connection goes away is removed without an answer.
    let c2 = quic.client().await;
    let doc = json!({"cursor": "now", "keys": [WATCH_T1], "timeoutMs": 60000});
    let pending = tokio::spawn(async move { c2.wait("app", &doc).await });
    let t = Instant::now();
    while active_waiters(&s).await == 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "the wait registers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pending.abort();
    let _ = pending.await;
    let t = Instant::now();
    while active_waiters(&s).await != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "a closed connection removes its waiter"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    quic.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_json_waits_and_activations() {
    let s = Server::start(HttpConfig::default()).await;
    setup(&s).await;
    let mut ws = connect(&s.base).await;
    send_json(&mut ws, json!({"type": "hello", "id": 1, "max_version": 2})).await;
    assert_eq!(json(&mut ws).await["version"], json!(2));

    send_json(
        &mut ws,
        json!({"type": "activate_templates", "id": 2, "stream": "app",
               "templates": [posts_template()], "inactivityTtlMs": 60000}),
    )
    .await;
    let a = json(&mut ws).await;
    assert_eq!(a["type"], json!("templates_activated"), "{a}");
    assert_eq!(a["id"], json!(2));
    assert_eq!(a["activated"][0]["templateId"], json!(POSTS_TID));
    assert_eq!(a["activated"][0]["state"], json!("active"));

    let cursor = settled_cursor(&s).await;
    send_json(
        &mut ws,
        json!({"type": "wait", "id": 3, "stream": "app", "cursor": cursor,
               "keys": [WATCH_T1], "templateIdsUsed": [POSTS_TID], "timeoutMs": 10000}),
    )
    .await;
    // Other requests on the connection are answered while the wait is open.
    send_json(&mut ws, json!({"type": "ping", "id": 4})).await;
    assert_eq!(json(&mut ws).await["type"], json!("pong"));
    let (st, _) = http_json(&s, Method::POST, "/v1/stream/app", &insert("p1", "t1")).await;
    assert!(st.is_success());
    let w = json(&mut ws).await;
    assert_eq!(w["type"], json!("wait_result"), "{w}");
    assert_eq!(w["id"], json!(3));
    assert_eq!(w["touched"], json!(true), "{w}");
    assert_eq!(w["effectiveWaitKind"], json!("fineKey"));
    let (_, http) = http_json(
        &s,
        Method::POST,
        "/v1/stream/app/touch/wait",
        &json!({"cursor": cursor, "keys": [WATCH_T1], "timeoutMs": 0}),
    )
    .await;
    let mut members = keys_of(&w);
    members.remove("type");
    members.remove("id");
    assert_eq!(members, keys_of(&http));

    // Validation errors carry the route's message.
    let want = http_wait_error(&s, &json!({"keys": "x"})).await;
    send_json(
        &mut ws,
        json!({"type": "wait", "id": 5, "stream": "app", "keys": "x"}),
    )
    .await;
    let e = json(&mut ws).await;
    assert_eq!(e["type"], json!("error"), "{e}");
    assert_eq!(e["id"], json!(5));
    assert_eq!(e["kind"], json!("Invalid"));
    assert_eq!(e["message"], json!(want));
    send_json(
        &mut ws,
        json!({"type": "wait", "id": 6, "keys": [WATCH_T1]}),
    )
    .await;
    let e = json(&mut ws).await;
    assert_eq!(e["kind"], json!("MalformedFrame"), "{e}");

    // Closing the connection removes an open wait.
    send_json(
        &mut ws,
        json!({"type": "wait", "id": 7, "stream": "app", "cursor": "now",
               "keys": [WATCH_T1], "timeoutMs": 60000}),
    )
    .await;
    let t = Instant::now();
    while active_waiters(&s).await == 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "the wait registers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(ws);
    let t = Instant::now();
    while active_waiters(&s).await != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "closing removes the waiter"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_one_sessions_do_not_know_the_touch_requests() {
    let s = Server::start(HttpConfig::default()).await;
    setup(&s).await;
    let mut ws = connect(&s.base).await;
    send_json(&mut ws, json!({"type": "hello", "id": 1, "max_version": 1})).await;
    assert_eq!(json(&mut ws).await["version"], json!(1));
    send_json(
        &mut ws,
        json!({"type": "wait", "id": 2, "stream": "app", "keys": ["a"]}),
    )
    .await;
    let e = json(&mut ws).await;
    assert_eq!(e["kind"], json!("UnknownOpcode"), "{e}");
}

/// The `live.tick` records of `app` among JSON record payloads.
fn ticks_for_app<'a>(payloads: impl Iterator<Item = &'a [u8]>) -> usize {
    payloads
        .filter_map(|p| serde_json::from_slice::<Value>(p).ok())
        .filter(|v| v["type"] == json!("live.tick") && v["stream"] == json!("app"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_reads_over_quic_and_websocket() {
    let s = Server::start(HttpConfig::default()).await;
    setup(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let quic =
        support::TestServer::start(s.engine.clone(), dir.path(), "127.0.0.1:0".parse().unwrap())
            .await;
    let c = quic.client().await;
    // Ticks come once a second; wait for two.
    let t = Instant::now();
    loop {
        let r = c.read("live.metrics", 0, 1 << 20).await.unwrap();
        let n = ticks_for_app(
            r.batches
                .iter()
                .flat_map(|b| b.iter().map(|x| x.payload).collect::<Vec<_>>()),
        );
        if n >= 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no live.tick for app"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same records, as JSON over WebSocket.
    let mut ws = connect(&s.base).await;
    send_json(&mut ws, json!({"type": "hello", "id": 1})).await;
    json(&mut ws).await;
    send_json(
        &mut ws,
        json!({"type": "read", "id": 2, "stream": "live.metrics", "from": 0}),
    )
    .await;
    let mut texts = Vec::new();
    loop {
        let m = json(&mut ws).await;
        match m["type"].as_str() {
            Some("data") => {
                for r in m["records"].as_array().unwrap() {
                    texts.push(r["payload"].as_str().unwrap().to_string());
                }
            }
            Some("read_done") => break,
            other => panic!("unexpected {other:?}: {m}"),
        }
    }
    assert!(ticks_for_app(texts.iter().map(|t| t.as_bytes())) >= 2);
    quic.stop().await;
}
