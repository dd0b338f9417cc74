//! Touches over HTTP against the real server: Prisma Streams' profile,
//! template activation, fine, coarse, exact and stale waits, meta with
//! `settle=flush`, the validation messages, cursors that survive a restart,
//! and the `live.metrics` stream. Keys are the golden vectors of
//! `../shared/specs/touches.md` §1.3, so the hashing is checked end to end.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use weir_net::http::{serve, HttpConfig};
use weir_storage::{Engine, EngineConfig};

/// posts / [tenantId]: template id, watch key of `t1`, membership of `t1`.
const POSTS_TID: &str = "0af3814da0aea55f";
const WATCH_T1: &str = "f9ae463d06fcf3fc";
const MEMBER_T1: &str = "998c7dcd3c0ca6c5";
/// tableKey(`posts`).
const TABLE_POSTS: &str = "8c646d3dd6bc68f4";

struct Srv {
    base: String,
    engine: Engine,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

struct Res {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Value,
}

impl Srv {
    async fn start(dir: &Path) -> Srv {
        let engine = Engine::open(dir, EngineConfig::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            engine.clone(),
            HttpConfig::default(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        Srv {
            base,
            engine,
            stop: Some(tx),
            task,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
        self.engine.shutdown();
    }

    async fn send(&self, method: Method, path: &str, body: &str) -> Res {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let res = self.client.request(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let raw = res.into_body().collect().await.unwrap().to_bytes();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw)
                .unwrap_or(Value::String(String::from_utf8_lossy(&raw).into_owned()))
        };
        Res {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Res {
        self.send(Method::POST, path, &body.to_string()).await
    }

    async fn wait(&self, stream: &str, body: Value) -> Res {
        self.post(&format!("/v1/stream/{stream}/touch/wait"), body)
            .await
    }

    async fn meta(&self, stream: &str, query: &str) -> Res {
        self.send(
            Method::GET,
            &format!("/v1/stream/{stream}/touch/meta{query}"),
            "",
        )
        .await
    }

    /// A cursor taken once the journal has settled.
    async fn settled_cursor(&self, stream: &str) -> String {
        let m = self.meta(stream, "?settle=flush&timeoutMs=5000").await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.body);
        assert_eq!(m.body["settled"], json!(true), "{}", m.body);
        m.body["cursor"].as_str().unwrap().to_string()
    }

    /// Creates a touch-enabled State Protocol stream with the posts template.
    async fn touch_stream(&self, stream: &str, touch: Value) {
        let r = self
            .send(Method::PUT, &format!("/v1/stream/{stream}"), "")
            .await;
        assert!(r.status.is_success(), "{}", r.status);
        let r = self
            .post(
                &format!("/v1/stream/{stream}/_profile"),
                json!({"apiVersion": "durable.streams/profile/v1",
                       "profile": {"kind": "state-protocol", "touch": touch}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = self
            .post(
                &format!("/v1/stream/{stream}/touch/templates/activate"),
                json!({"templates": [{"entity": "posts",
                       "fields": [{"name": "tenantId", "encoding": "string"}]}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["activated"][0]["templateId"], json!(POSTS_TID));
    }

    async fn append(&self, stream: &str, msg: Value) {
        let r = self.post(&format!("/v1/stream/{stream}"), msg).await;
        assert!(r.status.is_success(), "append: {} {}", r.status, r.body);
    }
}

fn insert(key: &str, tenant: &str) -> Value {
    json!({"type": "posts", "key": key, "value": {"tenantId": tenant, "title": "x"},
           "headers": {"operation": "insert"}})
}

/// A zero-timeout wait that makes t1's watch key and the template hot.
async fn preheat(s: &Srv) {
    let r = s
        .wait(
            "app",
            json!({"cursor": "now", "keys": [WATCH_T1], "templateIdsUsed": [POSTS_TID],
                   "timeoutMs": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

fn enabled() -> Value {
    json!({"enabled": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fine_wait_wakes_on_its_key_and_not_on_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = Srv::start(dir.path()).await;
    s.touch_stream("app", enabled()).await;
    let cursor = s.settled_cursor("app").await;
    assert!(
        cursor.len() > 17 && cursor.as_bytes()[16] == b':',
        "cursor {cursor}"
    );

    // A change for another tenant does not wake a wait on t1's watch key.
    s.append("app", insert("p0", "t2")).await;
    let r = s
        .wait(
            "app",
            json!({"cursor": cursor, "keys": [WATCH_T1], "templateIdsUsed": [POSTS_TID],
                   "timeoutMs": 600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["touched"], json!(false), "{}", r.body);
    assert_eq!(
        r.headers.get("cache-control").unwrap(),
        "no-store",
        "Prisma's headers"
    );

    // A wait in flight is woken by the matching insert.
    let c2 = s.settled_cursor("app").await;
    let started = Instant::now();
    let (waiter, writer) = tokio::join!(
        s.wait(
            "app",
            json!({"cursor": c2, "keys": [WATCH_T1, MEMBER_T1],
                   "templateIdsUsed": [POSTS_TID], "timeoutMs": 10000})
        ),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            s.append("app", insert("p1", "t1")).await;
        }
    );
    let () = writer;
    assert_eq!(waiter.body["touched"], json!(true), "{}", waiter.body);
    assert_eq!(waiter.body["effectiveWaitKind"], json!("fineKey"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_ne!(waiter.body["cursor"], json!(c2), "the cursor moves on");
    for f in ["bucketMaxSourceOffsetSeq", "flushAtMs", "bucketStartMs"] {
        assert!(waiter.body.get(f).is_some(), "{f} missing: {}", waiter.body);
    }

    // The same cursor again is touched at once (the change is after it).
    let r = s
        .wait(
            "app",
            json!({"cursor": c2, "keys": [WATCH_T1], "timeoutMs": 10000}),
        )
        .await;
    assert_eq!(r.body["touched"], json!(true));

    // A coarse wait on the table key sees every change of the entity.
    let c3 = s.settled_cursor("app").await;
    s.append("app", insert("p2", "t9")).await;
    let r = s
        .wait(
            "app",
            json!({"cursor": c3, "keys": [TABLE_POSTS], "interestMode": "coarse",
                   "timeoutMs": 5000}),
        )
        .await;
    assert_eq!(r.body["touched"], json!(true), "{}", r.body);
    assert_eq!(r.body["effectiveWaitKind"], json!("tableKey"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_stale_cursors_and_validation_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = Srv::start(dir.path()).await;
    s.touch_stream("app", enabled()).await;
    let r = s
        .wait(
            "app",
            json!({"cursor": "now", "keys": [WATCH_T1], "timeoutMs": 0}),
        )
        .await;
    assert_eq!(r.body["touched"], json!(false), "{}", r.body);

    let r = s
        .wait(
            "app",
            json!({"cursor": "0123456789abcdef:0", "keys": [WATCH_T1]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["stale"], json!(true), "{}", r.body);
    assert_eq!(r.body["error"]["code"], json!("stale"));
    assert!(r.body.get("touched").is_none());

    let bad = |body: &str| {
        let s = &s;
        let body = body.to_string();
        async move {
            let r = s
                .send(Method::POST, "/v1/stream/app/touch/wait", &body)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
            assert_eq!(r.body["error"]["code"], json!("bad_request"));
            r.body["error"]["message"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(bad("{").await, "wait body must be valid JSON");
    assert_eq!(
        bad(r#"{"cursor":"now"}"#).await,
        "wait requires keys or keyIds"
    );
    assert_eq!(
        bad(r#"{"cursor":"x:1","keys":["a"]}"#).await,
        "wait.cursor must be in the form <epochHex>:<generation> or 'now'"
    );
    let many: Vec<String> = (0..1025).map(|i| format!("k{i}")).collect();
    assert_eq!(
        bad(&json!({"cursor": "now", "keys": many}).to_string()).await,
        "wait.keys too large (max 1024)"
    );
    assert_eq!(
        bad(r#"{"cursor":"now","keys":["a"],"exact":true}"#).await,
        "wait.exact requires 1 to 16 literal 64-bit routing keys"
    );

    // A wrong method is Prisma's 400, not 405.
    let r = s.send(Method::GET, "/v1/stream/app/touch/wait", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["message"], json!("unsupported method"));

    // Touch routes on a stream without touch.
    s.send(Method::PUT, "/v1/stream/plain", "").await;
    let r = s.meta("plain", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["message"], json!("touch not enabled"));
    let r = s.meta("app", "?settle=soon").await;
    assert_eq!(
        r.body["error"]["message"],
        json!("meta.settle must be 'flush' when provided")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_is_idempotent_and_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let s = Srv::start(dir.path()).await;
    s.touch_stream(
        "app",
        json!({"enabled": true, "templates": {"activationRateLimitPerMinute": 2}}),
    )
    .await;
    let activate = |templates: Value| {
        s.post(
            "/v1/stream/app/touch/templates/activate",
            json!({ "templates": templates }),
        )
    };
    // A refresh of an active template uses no token.
    let r = activate(json!([{"entity": "posts",
        "fields": [{"name": "tenantId", "encoding": "string"}]}]))
    .await;
    assert_eq!(r.body["denied"], json!([]), "{}", r.body);
    assert_eq!(r.body["activated"][0]["state"], json!("active"));
    // One token left of two: the second new template is rate limited.
    let r = activate(json!([
        {"entity": "posts", "fields": [{"name": "userId", "encoding": "int64"}]},
        {"entity": "posts", "fields": [{"name": "title", "encoding": "string"}]},
        {"entity": "posts", "fields": [{"name": "x", "encoding": "nope"}]}
    ]))
    .await;
    assert_eq!(
        r.body["activated"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    let denied = r.body["denied"].as_array().unwrap();
    assert!(denied.iter().any(|d| d["reason"] == json!("rate_limited")));
    assert!(denied
        .iter()
        .any(|d| d["reason"] == json!("invalid") && d["templateId"] == json!("0000000000000000")));
    assert_eq!(
        r.body["limits"],
        json!({"maxActiveTemplatesPerStream": 2048, "maxActiveTemplatesPerEntity": 256})
    );
    let too_many: Vec<Value> = (0..257)
        .map(
            |i| json!({"entity": "e", "fields": [{"name": format!("f{i}"), "encoding": "string"}]}),
        )
        .collect();
    let r = activate(Value::Array(too_many)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["error"]["message"],
        json!("activate.templates too large (max 256)")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_survive_a_restart_and_see_changes_made_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Srv::start(dir.path()).await;
    s.touch_stream("app", enabled()).await;
    let before = s.settled_cursor("app").await;
    // Fine touches are derived only for keys someone waits on: a short
    // wait makes the key hot for the grace period (Prisma's "preheat").
    preheat(&s).await;
    s.append("app", insert("p1", "t1")).await;
    let after_change = s.settled_cursor("app").await;
    assert_ne!(before, after_change);
    s.stop().await;

    let s = Srv::start(dir.path()).await;
    // Give the touch thread its first pass over the reopened streams.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.meta("app", "").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "touch stream not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The old cursor is still valid and the change after it is reported at once.
    let started = Instant::now();
    let r = s
        .wait(
            "app",
            json!({"cursor": before, "keys": [WATCH_T1], "timeoutMs": 10000}),
        )
        .await;
    assert_eq!(r.body["touched"], json!(true), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The cursor taken after the change is valid and quiet.
    let r = s
        .wait(
            "app",
            json!({"cursor": after_change, "keys": [WATCH_T1], "timeoutMs": 300}),
        )
        .await;
    assert_eq!(r.body["touched"], json!(false), "{}", r.body);
    assert!(r.body.get("stale").is_none());
    // A change after the restart wakes the post-change cursor.
    preheat(&s).await;
    s.append("app", insert("p2", "t1")).await;
    let r = s
        .wait(
            "app",
            json!({"cursor": after_change, "keys": [WATCH_T1], "timeoutMs": 10000}),
        )
        .await;
    assert_eq!(r.body["touched"], json!(true), "{}", r.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_is_a_hidden_json_stream_with_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let s = Srv::start(dir.path()).await;
    s.touch_stream("app", enabled()).await;
    let info = s.engine.head("live.metrics").expect("live.metrics exists");
    assert_eq!(info.config.content_type, "application/json");
    assert!(s
        .engine
        .list_streams(None, 100)
        .iter()
        .all(|i| i.name != "live.metrics"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = s
            .send(Method::GET, "/v1/stream/live.metrics?offset=-1", "")
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let ticks: Vec<&Value> = r
            .body
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["type"] == json!("live.tick"))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(t) = ticks.first() {
            assert_eq!(t["stream"], json!("app"));
            assert_eq!(t["liveSystemVersion"], json!("v2"));
            for group in ["touch", "templates", "wait", "processor", "base", "process"] {
                assert!(t.get(group).is_some(), "{group} missing: {t}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "no live.tick: {}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_touch_off_and_on_starts_a_new_epoch_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Srv::start(dir.path()).await;
    s.touch_stream("app", enabled()).await;
    let old = s.settled_cursor("app").await;
    let profile = |touch: Value| {
        json!({"apiVersion": "durable.streams/profile/v1",
               "profile": {"kind": "state-protocol", "touch": touch}})
    };
    // Off and on again, with changes flowing in between.
    for touch in [json!({"enabled": false}), enabled()] {
        s.append("app", insert("p", "t1")).await;
        let r = s.post("/v1/stream/app/_profile", profile(touch)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let new = s.settled_cursor("app").await;
    assert_ne!(old[..16], new[..16], "a new epoch");
    let r = s
        .wait(
            "app",
            json!({"cursor": old, "keys": [TABLE_POSTS], "timeoutMs": 0}),
        )
        .await;
    assert_eq!(r.body["stale"], json!(true), "{}", r.body);
    s.stop().await;

    // The new epoch is the one the store kept.
    let s = Srv::start(dir.path()).await;
    let after = s.settled_cursor("app").await;
    assert_eq!(after[..16], new[..16]);
    let r = s
        .wait(
            "app",
            json!({"cursor": new, "keys": [TABLE_POSTS], "timeoutMs": 0}),
        )
        .await;
    assert!(r.body.get("stale").is_none(), "{}", r.body);
    s.stop().await;
}
