//! State streams over HTTP: `Stream-State` at creation, keyed puts and
//! tombstones, `_state` reads (single rows, pages, prefixes, filters),
//! Prisma Streams' `_profile` document and its messages, background builds,
//! State Protocol validation, `reset`, and `snapshot=true` reads followed by
//! ordinary reads from the snapshot's fence.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Res, Server};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use weir_net::http::HttpConfig;

const TEXT: &[(&str, &str)] = &[("content-type", "text/plain")];
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
const PROFILE: &str =
    r#"{"apiVersion":"durable.streams/profile/v1","profile":{"kind":"state-protocol"}}"#;

fn json_of(r: &Res) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn msg(ty: &str, key: &str, value: Value, op: &str) -> String {
    json!({"type": ty, "key": key, "value": value, "headers": {"operation": op}}).to_string()
}

fn del(ty: &str, key: &str) -> String {
    json!({"type": ty, "key": key, "headers": {"operation": "delete"}}).to_string()
}

async fn head(s: &Server, name: &str) -> Res {
    s.send(Method::HEAD, &format!("/v1/stream/{name}"), &[], "")
        .await
}

async fn tail(s: &Server, name: &str) -> String {
    head(s, name)
        .await
        .header("stream-next-offset")
        .unwrap()
        .to_string()
}

async fn post(s: &Server, name: &str, headers: &[(&str, &str)], body: &str) -> Res {
    s.send(
        Method::POST,
        &format!("/v1/stream/{name}"),
        headers,
        body.to_string(),
    )
    .await
}

async fn post_profile(s: &Server, name: &str, body: &str) -> Res {
    s.send(
        Method::POST,
        &format!("/v1/stream/{name}/_profile"),
        JSON,
        body.to_string(),
    )
    .await
}

fn error_message(r: &Res) -> String {
    let v = json_of(r);
    assert!(v["error"]["code"].as_str().is_some(), "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

/// Every row of a stream's state, walking all pages with `limit` and `after`.
async fn all_rows(s: &Server, name: &str, extra: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/stream/{name}/_state?limit={limit}{extra}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let r = s.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        let v = json_of(&r);
        let page = v["rows"].as_array().unwrap();
        assert!(page.len() <= limit);
        rows.extend(page.iter().cloned());
        pages += 1;
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
        assert!(pages < 10_000, "cursor never ends");
    }
    (rows, pages)
}

/// Rows as (type, key) -> value.
fn by_key(rows: &[Value]) -> BTreeMap<(String, String), Value> {
    rows.iter()
        .map(|r| {
            (
                (
                    r["type"].as_str().unwrap_or("").to_string(),
                    r["key"].as_str().unwrap().to_string(),
                ),
                r["value"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn create_with_stream_state() {
    let s = Server::start(HttpConfig::default()).await;
    let keyed: &[(&str, &str)] = &[("content-type", "text/plain"), ("stream-state", "keyed")];
    let r = s.send(Method::PUT, "/v1/stream/k", keyed, "").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(head(&s, "k").await.header("stream-state"), Some("keyed"));

    // The same creation again is idempotent; without the header too.
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/k", keyed, "").await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/k", TEXT, "").await.status,
        StatusCode::OK
    );
    // A different mode is a conflict.
    let other: &[(&str, &str)] = &[("content-type", "text/plain"), ("stream-state", "none")];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/k", other, "").await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(head(&s, "k").await.header("stream-state"), Some("keyed"));

    let sp: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("stream-state", "state-protocol"),
    ];
    let r = s.send(Method::PUT, "/v1/stream/sp", sp, "").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        head(&s, "sp").await.header("stream-state"),
        Some("state-protocol")
    );
    let kd: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("stream-state", "keyed"),
    ];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/sp", kd, "").await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/sp", JSON, "").await.status,
        StatusCode::OK
    );

    // An unknown mode is a 400; state-protocol needs a JSON stream.
    let bad: &[(&str, &str)] = &[("content-type", "text/plain"), ("stream-state", "fancy")];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/b", bad, "").await.status,
        StatusCode::BAD_REQUEST
    );
    let bad: &[(&str, &str)] = &[
        ("content-type", "text/plain"),
        ("stream-state", "state-protocol"),
    ];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/b", bad, "").await.status,
        StatusCode::BAD_REQUEST
    );

    // A plain stream has no state.
    s.send(Method::PUT, "/v1/stream/plain", TEXT, "").await;
    let r = s.get("/v1/stream/plain/_state").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
}

#[tokio::test]
async fn keyed_puts_tombstones_and_state_reads() {
    let s = Server::start(HttpConfig::default()).await;
    let keyed: &[(&str, &str)] = &[("content-type", "text/plain"), ("stream-state", "keyed")];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/k", keyed, "").await.status,
        StatusCode::CREATED
    );
    let mut want = BTreeMap::new();
    for i in 0..25 {
        let key = format!("user/{i:02}");
        let value = format!("v{i}");
        let r = post(
            &s,
            "k",
            &[("content-type", "text/plain"), ("stream-key", &key)],
            &value,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
        want.insert(key, value);
    }
    for i in 0..5 {
        let key = format!("group/{i}");
        post(
            &s,
            "k",
            &[("content-type", "text/plain"), ("stream-key", &key)],
            "g",
        )
        .await;
        want.insert(key, "g".to_string());
    }
    // Overwrite one, delete two.
    post(
        &s,
        "k",
        &[("content-type", "text/plain"), ("stream-key", "user/03")],
        "new",
    )
    .await;
    want.insert("user/03".into(), "new".into());
    for key in ["user/07", "group/4"] {
        let r = post(
            &s,
            "k",
            &[("stream-tombstone", "true"), ("stream-key", key)],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
        want.remove(key);
    }
    // A record without a key leaves the state alone.
    post(&s, "k", TEXT, "unkeyed").await;

    // Tombstone refusals.
    let r = post(&s, "k", &[("stream-tombstone", "true")], "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Stream-Key"), "{}", r.text());
    let r = post(
        &s,
        "k",
        &[
            ("content-type", "text/plain"),
            ("stream-tombstone", "true"),
            ("stream-key", "user/01"),
        ],
        "body",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    s.send(Method::PUT, "/v1/stream/plain", TEXT, "").await;
    let before = tail(&s, "plain").await;
    let r = post(
        &s,
        "plain",
        &[("stream-tombstone", "true"), ("stream-key", "a")],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(tail(&s, "plain").await, before);

    // One key.
    let r = s.get("/v1/stream/k/_state?key=user%2F03").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = json_of(&r);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "user/03");
    assert_eq!(rows[0]["value"], "new");
    assert!(rows[0].get("type").is_none());
    assert!(rows[0]["offset"].as_str().is_some());
    assert_eq!(v["next"], Value::Null);
    let r = s.get("/v1/stream/k/_state?key=user%2F07").await;
    assert_eq!(json_of(&r)["rows"], json!([]));

    // The fence is the tail.
    let r = s.get("/v1/stream/k/_state").await;
    let v = json_of(&r);
    let t = tail(&s, "k").await;
    assert_eq!(v["fence"], t.as_str());
    assert_eq!(r.header("stream-next-offset"), Some(t.as_str()));

    // Pages of 4 walk every row exactly once, in key order.
    let (rows, pages) = all_rows(&s, "k", "", 4).await;
    assert!(pages >= want.len() / 4, "{pages} pages");
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = want.clone().into_iter().collect();
    assert_eq!(got, expected);

    // Prefix.
    let (rows, _) = all_rows(&s, "k", "&prefix=group%2F", 2).await;
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["group/0", "group/1", "group/2", "group/3"]);

    // Bad parameters.
    for q in ["limit=0", "limit=10001", "limit=x", "after=zz"] {
        let r = s.get(&format!("/v1/stream/k/_state?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
    }
    assert_eq!(
        s.get("/v1/stream/missing/_state").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.send(Method::POST, "/v1/stream/k/_state", JSON, "{}")
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn profile_round_trip_and_prisma_messages() {
    let s = Server::start(HttpConfig::default()).await;
    s.send(Method::PUT, "/v1/stream/j", JSON, "").await;
    s.send(Method::PUT, "/v1/stream/t", TEXT, "").await;

    let r = s.get("/v1/stream/j/_profile").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        json_of(&r),
        json!({"apiVersion": "durable.streams/profile/v1", "profile": {"kind": "generic"}})
    );

    let r = post_profile(&s, "j", PROFILE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let doc =
        json!({"apiVersion": "durable.streams/profile/v1", "profile": {"kind": "state-protocol"}});
    assert_eq!(json_of(&r), doc);
    assert_eq!(json_of(&s.get("/v1/stream/j/_profile").await), doc);
    assert_eq!(
        head(&s, "j").await.header("stream-state"),
        Some("state-protocol")
    );

    // Prisma Streams' messages.
    let r = post_profile(&s, "j", "not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_message(&r), "profile update must be valid JSON");
    let r = post_profile(&s, "j", r#"{"x":1}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_message(&r), "profileUpdate.x is not supported");
    let r = post_profile(&s, "j", r#"{"profile":{"kind":"evlog"}}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(&r),
        "profile.kind must be generic|state-protocol"
    );
    let r = post_profile(&s, "t", PROFILE).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(
        error_message(&r),
        "state-protocol profile requires application/json stream content-type"
    );
    assert_eq!(
        head(&s, "t").await.header("stream-state").unwrap_or("none"),
        "none"
    );
    let r = post_profile(
        &s,
        "j",
        r#"{"profile":{"kind":"state-protocol","touch":{"enabled":true}}}"#,
    )
    .await;
    // Touch is enabled with Prisma's defaults filled in.
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let p = json_of(&r);
    assert_eq!(p["profile"]["touch"]["enabled"], json!(true));
    assert_eq!(p["profile"]["touch"]["onMissingBefore"], json!("coarse"));
    assert_eq!(p["profile"]["touch"]["memory"]["filterPow2"], json!(22));
    // A disabled touch is stored as Prisma stores it.
    let r = post_profile(
        &s,
        "j",
        r#"{"profile":{"kind":"state-protocol","touch":{"enabled":false}}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        json_of(&s.get("/v1/stream/j/_profile").await)["profile"],
        json!({"kind": "state-protocol", "touch": {"enabled": false}})
    );

    let r = s.get("/v1/stream/missing/_profile").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    error_message(&r);

    // Back to generic: a plain stream again.
    let r = post_profile(&s, "j", r#"{"profile":{"kind":"generic"}}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        json_of(&s.get("/v1/stream/j/_profile").await)["profile"],
        json!({"kind": "generic"})
    );
    assert_eq!(
        s.get("/v1/stream/j/_state").await.status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn state_built_from_history_in_the_background() {
    let s = Server::start(HttpConfig::default()).await;
    s.send(Method::PUT, "/v1/stream/h", JSON, "").await;
    let mut want = BTreeMap::new();
    let mut batch = Vec::new();
    for i in 0..600 {
        let ty = if i % 2 == 0 { "a" } else { "b" };
        let key = format!("{}", i % 40);
        if i % 7 == 6 {
            batch.push(del(ty, &key));
            want.remove(&(ty.to_string(), key));
        } else {
            let v = json!({"n": i});
            batch.push(msg(ty, &key, v.clone(), "update"));
            want.insert((ty.to_string(), key), v);
        }
        if batch.len() == 50 {
            let r = post(&s, "h", JSON, &format!("[{}]", batch.join(","))).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
            batch.clear();
        }
    }
    let r = post_profile(&s, "h", PROFILE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let h = head(&s, "h").await;
    assert_eq!(h.header("stream-state"), Some("state-protocol"));

    // Poll until built: 503 with Retry-After while building.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.get("/v1/stream/h/_state?limit=1").await;
        if r.status == StatusCode::OK {
            break;
        }
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert!(r.header("retry-after").is_some());
        assert!(std::time::Instant::now() < deadline, "state never built");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(head(&s, "h")
        .await
        .header("stream-state-progress")
        .is_none());
    let (rows, _) = all_rows(&s, "h", "", 1000).await;
    assert_eq!(by_key(&rows), want);
    let (rows, _) = all_rows(&s, "h", "&type=b", 7).await;
    assert!(rows.iter().all(|r| r["type"] == "b"));
    assert_eq!(rows.len(), want.keys().filter(|(t, _)| t == "b").count());
}

#[tokio::test]
async fn state_protocol_validation_filters_and_reset() {
    let s = Server::start(HttpConfig::default()).await;
    let sp: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("stream-state", "state-protocol"),
    ];
    s.send(Method::PUT, "/v1/stream/p", sp, "").await;
    let r = post(
        &s,
        "p",
        JSON,
        &format!(
            "[{},{},{},{}]",
            msg(
                "todo",
                "1",
                json!({"title": "milk", "done": false, "n": 1}),
                "insert"
            ),
            msg(
                "todo",
                "2",
                json!({"title": "eggs", "done": true, "n": 2}),
                "insert"
            ),
            msg(
                "todo",
                "3",
                json!({"title": "bread", "done": false, "n": 3}),
                "insert"
            ),
            msg("user", "1", json!({"name": "ann"}), "insert"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());

    // One bad message.
    let before = tail(&s, "p").await;
    let r = post(
        &s,
        "p",
        JSON,
        r#"{"type":"todo","key":"k","headers":{"operation":"upsert"}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .contains("state-protocol record.headers.operation must be insert, update, or delete"),
        "{}",
        r.text()
    );
    let r = post(
        &s,
        "p",
        JSON,
        r#"{"key":"k","headers":{"operation":"delete"}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .contains("state-protocol record.type must be a non-empty string"),
        "{}",
        r.text()
    );
    // An array with one bad element writes nothing.
    let r = post(
        &s,
        "p",
        JSON,
        &format!(
            "[{},{}]",
            msg("todo", "9", json!({"title": "x"}), "insert"),
            r#"{"type":"todo","key":"9","headers":{}}"#
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .contains("state-protocol record.headers must contain operation or control"),
        "{}",
        r.text()
    );
    assert_eq!(tail(&s, "p").await, before);
    let r = s.get("/v1/stream/p/_state?type=todo&key=9").await;
    assert_eq!(json_of(&r)["rows"], json!([]));

    // One row by type and key; key alone is a 400 on State Protocol streams.
    let r = s.get("/v1/stream/p/_state?type=todo&key=2").await;
    let v = json_of(&r);
    assert_eq!(
        v["rows"][0]["value"],
        json!({"title": "eggs", "done": true, "n": 2})
    );
    assert_eq!(v["rows"][0]["type"], "todo");
    assert_eq!(
        s.get("/v1/stream/p/_state?key=2").await.status,
        StatusCode::BAD_REQUEST
    );

    // Filters.
    let f =
        r#"{"and":[{"field":"done","op":"eq","value":false},{"field":"n","op":"gte","value":2}]}"#;
    let r = s
        .get(&format!("/v1/stream/p/_state?filter={}", enc(f)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let rows = json_of(&r)["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "3");
    let f = r#"{"field":"title","op":"prefix","value":"e"}"#;
    let r = s
        .get(&format!("/v1/stream/p/_state?filter={}", enc(f)))
        .await;
    let rows = json_of(&r)["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "2");
    let f = r#"{"field":"done","op":"like","value":false}"#;
    let r = s
        .get(&format!("/v1/stream/p/_state?filter={}", enc(f)))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = s.get("/v1/stream/p/_state?filter=%7Bnope").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    // Update and delete, then reset.
    post(
        &s,
        "p",
        JSON,
        &msg("todo", "1", json!({"title": "oat milk"}), "update"),
    )
    .await;
    post(&s, "p", JSON, &del("todo", "2")).await;
    let (rows, _) = all_rows(&s, "p", "", 10).await;
    let keys: Vec<(String, String)> = by_key(&rows).into_keys().collect();
    assert_eq!(
        keys,
        [("todo", "1"), ("todo", "3"), ("user", "1")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(
        by_key(&rows)[&("todo".into(), "1".into())],
        json!({"title": "oat milk"})
    );

    let r = post(&s, "p", JSON, r#"{"headers":{"control":"reset"}}"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = s.get("/v1/stream/p/_state").await;
    let v = json_of(&r);
    assert_eq!(v["rows"], json!([]));
    assert_eq!(v["fence"], tail(&s, "p").await.as_str());
    post(
        &s,
        "p",
        JSON,
        &msg("todo", "5", json!({"title": "after"}), "insert"),
    )
    .await;
    let (rows, _) = all_rows(&s, "p", "", 10).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "5");
}

#[tokio::test]
async fn snapshot_then_changes() {
    let s = Server::start(HttpConfig::default()).await;
    let sp: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("stream-state", "state-protocol"),
    ];
    s.send(Method::PUT, "/v1/stream/s", sp, "").await;
    let mut batch = Vec::new();
    for i in 0..120 {
        let ty = if i % 3 == 0 { "x" } else { "y" };
        batch.push(msg(
            ty,
            &format!("{}", i % 30),
            json!({"i": i, "odd": i % 2 == 1}),
            "update",
        ));
    }
    batch.push(del("y", "1"));
    let r = post(&s, "s", JSON, &format!("[{}]", batch.join(","))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());

    let r = s.get("/v1/stream/s?offset=-1&snapshot=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let fence = r.header("stream-next-offset").unwrap().to_string();
    assert_eq!(fence, tail(&s, "s").await);
    let snap = json_of(&r);
    let items = snap.as_array().unwrap();
    assert!(items.len() >= 2);
    assert_eq!(items[0]["headers"]["control"], "snapshot-start");
    assert_eq!(items[items.len() - 1]["headers"]["control"], "snapshot-end");
    let inserts = &items[1..items.len() - 1];
    assert!(inserts
        .iter()
        .all(|m| m["headers"]["operation"] == "insert"));
    let (rows, _) = all_rows(&s, "s", "", 1000).await;
    assert_eq!(inserts.len(), rows.len());
    assert_eq!(by_key(inserts), by_key(&rows));
    let state_fence = json_of(&s.get("/v1/stream/s/_state").await)["fence"].clone();
    assert_eq!(state_fence, fence.as_str());

    // A filtered snapshot holds only matching rows.
    let f = r#"{"field":"odd","op":"eq","value":true}"#;
    let r = s
        .get(&format!(
            "/v1/stream/s?offset=-1&snapshot=true&filter={}",
            enc(f)
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let items = json_of(&r).as_array().unwrap().clone();
    let inserts = &items[1..items.len() - 1];
    assert!(!inserts.is_empty());
    assert!(inserts.iter().all(|m| m["value"]["odd"] == true));
    let (rows, _) = all_rows(&s, "s", &format!("&filter={}", enc(f)), 1000).await;
    assert_eq!(by_key(inserts), by_key(&rows));

    // Later changes, read from the fence: exactly those.
    let later = [
        msg("x", "0", json!({"i": 1000}), "update"),
        del("x", "3"),
        msg("z", "new", json!({"i": 1001}), "insert"),
    ];
    let r = post(&s, "s", JSON, &format!("[{}]", later.join(","))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = s.get(&format!("/v1/stream/s?offset={fence}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let got = json_of(&r);
    let want: Vec<Value> = later
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(got, Value::Array(want));
    assert_eq!(r.header("stream-up-to-date"), Some("true"));

    // Refusals.
    let r = s
        .get(&format!("/v1/stream/s?offset={fence}&snapshot=true"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // Without an offset a read starts at -1, so this is a snapshot too.
    let r = s.get("/v1/stream/s?snapshot=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = s
        .get("/v1/stream/s?offset=-1&snapshot=true&live=long-poll")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = s.get("/v1/stream/s?offset=-1&snapshot=maybe").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let keyed: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("stream-state", "keyed"),
    ];
    s.send(Method::PUT, "/v1/stream/kj", keyed, "").await;
    let r = s.get("/v1/stream/kj?offset=-1&snapshot=true").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    s.send(Method::PUT, "/v1/stream/plain", JSON, "").await;
    let r = s.get("/v1/stream/plain?offset=-1&snapshot=true").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

#[tokio::test]
async fn empty_state_snapshot_is_two_controls() {
    let s = Server::start(HttpConfig::default()).await;
    let sp: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("stream-state", "state-protocol"),
    ];
    s.send(Method::PUT, "/v1/stream/e", sp, "").await;
    let r = s.get("/v1/stream/e?offset=-1&snapshot=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = json_of(&r);
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["headers"]["control"], "snapshot-start");
    assert_eq!(items[1]["headers"]["control"], "snapshot-end");
    assert_eq!(r.header("stream-next-offset").unwrap(), tail(&s, "e").await);
}

#[tokio::test]
async fn filtered_reads_after_a_filtered_snapshot_carry_membership_changes() {
    let s = Server::start(HttpConfig::default()).await;
    let r = s
        .send(
            Method::PUT,
            "/v1/stream/m",
            &[
                ("content-type", "application/json"),
                ("stream-state", "state-protocol"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let first = [
        msg("t", "a", json!({"c": "red"}), "insert"),
        msg("t", "b", json!({"c": "blue"}), "insert"),
    ];
    let r = post(&s, "m", JSON, &format!("[{}]", first.join(","))).await;
    assert!(r.status.is_success(), "{}", r.text());
    let f = enc(r#"{"field":"c","op":"eq","value":"red"}"#);
    let snap = s
        .get(&format!("/v1/stream/m?offset=-1&snapshot=true&filter={f}"))
        .await;
    let fence = snap.header("stream-next-offset").unwrap().to_string();
    let items = json_of(&snap);
    assert_eq!(items.as_array().unwrap().len(), 3, "{items}");
    assert_eq!(items[1]["key"], "a");

    let later = [
        msg("t", "b", json!({"c": "red"}), "update"),   // enters
        msg("t", "a", json!({"c": "green"}), "update"), // leaves
        msg("t", "n", json!({"c": "green"}), "insert"), // never matched
        r#"{"headers":{"control":"reset"}}"#.to_string(),
    ];
    let r = post(&s, "m", JSON, &format!("[{}]", later.join(","))).await;
    assert!(r.status.is_success(), "{}", r.text());
    let r = s
        .get(&format!("/v1/stream/m?offset={fence}&filter={f}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("stream-up-to-date"), Some("true"));
    assert_eq!(
        json_of(&r),
        json!([
            {"type": "t", "key": "b", "value": {"c": "red"}, "headers": {"operation": "update"}},
            {"type": "t", "key": "a", "headers": {"operation": "delete"}},
            // A stateless read cannot know `n` was never sent: a harmless delete.
            {"type": "t", "key": "n", "headers": {"operation": "delete"}},
            {"headers": {"control": "reset"}},
        ])
    );
    assert_eq!(
        r.header("stream-next-offset"),
        Some(tail(&s, "m").await.as_str())
    );
    // Live modes do not filter yet, and say so.
    let r = s
        .get(&format!(
            "/v1/stream/m?offset={fence}&filter={f}&live=long-poll"
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tombstones_on_keyed_json_streams_keep_reads_valid_json() {
    let s = Server::start(HttpConfig::default()).await;
    let h = &[
        ("content-type", "application/json"),
        ("stream-state", "keyed"),
    ];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/j", h, "").await.status,
        StatusCode::CREATED
    );
    let put = &[("content-type", "application/json"), ("stream-key", "k")];
    assert!(post(&s, "j", put, r#"{"v":1}"#).await.status.is_success());
    let del = &[
        ("content-type", "application/json"),
        ("stream-key", "k"),
        ("stream-tombstone", "true"),
    ];
    let r = post(&s, "j", del, "").await;
    assert!(r.status.is_success(), "{}", r.text());
    let r = s.get("/v1/stream/j/_state?key=k").await;
    assert_eq!(json_of(&r)["rows"], json!([]));
    let r = s.get("/v1/stream/j?offset=-1").await;
    assert_eq!(json_of(&r), json!([{"v": 1}, null]));
}
