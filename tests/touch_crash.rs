//! Crash safety of touches: `weir serve` is SIGKILLed while writers append
//! State Protocol changes to a touch-enabled stream and another client
//! activates templates. After every restart:
//! - a cursor taken before the round is still valid (never stale), and a
//!   wait with it on the table key of the changed entity is touched at once
//!   (the journal and its checkpoint agree with the log: no touch lost for
//!   a change after a cursor; false wakes are allowed, as in Prisma);
//! - a wait on the table key of an entity nobody wrote times out;
//! - every template whose activation was acknowledged is still active
//!   (activating it again refreshes it, it is not new), and the stream's
//!   count of active templates lies between the acknowledged and the
//!   attempted activations;
//! - the processor catches up with the log (`settle=flush` settles), and
//!   `weir verify` finds the stored state equal to the log's.
//!
//! Fine (template) touches depend on in-memory hot interest, which a crash
//! loses by design, so the durable guarantee is checked on table keys.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{request, start, verify};
use weir_storage::touch::keys;

const ROUNDS: usize = 6;
const WRITERS: usize = 2;
/// tableKey(`posts`) (touches.md §1.3).
const TABLE_POSTS: &str = "8c646d3dd6bc68f4";

fn post(addr: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
    let (status, text) = request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        &body.to_string(),
    )?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn get(addr: &str, path: &str) -> (u16, Value) {
    let (status, text) = request(addr, "GET", path, &[], "").expect("server answers");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn settled_cursor(addr: &str) -> String {
    let t = Instant::now();
    loop {
        let (status, m) = get(
            addr,
            "/v1/stream/app/touch/meta?settle=flush&timeoutMs=5000",
        );
        assert_eq!(status, 200, "{m}");
        if m["settled"] == json!(true) {
            return m["cursor"].as_str().unwrap().to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the processor catches up with the log: {m}"
        );
    }
}

fn wait(addr: &str, cursor: &str, key: &str, timeout_ms: u64) -> Value {
    let doc = json!({"cursor": cursor, "keys": [key], "interestMode": "coarse",
                     "timeoutMs": timeout_ms});
    let (status, body) = post(addr, "/v1/stream/app/touch/wait", &doc).expect("server answers");
    assert_eq!(status, 200, "{body}");
    body
}

fn template(i: u64) -> Value {
    json!({"entity": "posts", "fields": [{"name": format!("f{i}"), "encoding": "string"}]})
}

fn writer(addr: String, w: usize, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let msg = json!([{"type": "posts", "key": format!("w{w}-{n}"),
            "value": {"tenantId": format!("t{}", n % 7), "f0": "x"},
            "headers": {"operation": "insert"}}]);
        match post(&addr, "/v1/stream/app", &msg) {
            Some((s, _)) if s < 300 => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Some((s, b)) => panic!("append refused: {s} {b}"),
            None => return,
        }
    }
}

/// Activates new templates one at a time; records acknowledged ids.
fn activator(
    addr: String,
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU64>,
    acked: Arc<Mutex<BTreeSet<String>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let doc = json!({"templates": [template(i)]});
        match post(&addr, "/v1/stream/app/touch/templates/activate", &doc) {
            Some((200, b)) => {
                if let Some(id) = b["activated"][0]["templateId"].as_str() {
                    acked.lock().unwrap().insert(id.to_string());
                }
            }
            Some((s, b)) => panic!("activation refused: {s} {b}"),
            None => return,
        }
        std::thread::sleep(Duration::from_millis(40));
    }
}

#[test]
fn touches_and_templates_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut addr) = start(dir.path());
    let created = request(
        &addr,
        "PUT",
        "/v1/stream/app",
        &[("Content-Type", "application/json")],
        "",
    );
    assert!(matches!(created, Some((201, _))), "{created:?}");
    let profile = json!({"apiVersion": "durable.streams/profile/v1",
        "profile": {"kind": "state-protocol", "touch": {"enabled": true}}});
    let r = post(&addr, "/v1/stream/app/_profile", &profile);
    assert!(matches!(r, Some((200, _))), "{r:?}");

    let next_template = Arc::new(AtomicU64::new(0));
    let templates: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    for round in 0..ROUNDS {
        let cursor = settled_cursor(&addr);
        let stop = Arc::new(AtomicBool::new(false));
        let appended = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for w in 0..WRITERS {
            let (a, s, k) = (addr.clone(), stop.clone(), appended.clone());
            threads.push(std::thread::spawn(move || writer(a, w, s, k)));
        }
        {
            let (a, s) = (addr.clone(), stop.clone());
            let (n, t) = (next_template.clone(), templates.clone());
            threads.push(std::thread::spawn(move || activator(a, s, n, t)));
        }
        std::thread::sleep(Duration::from_millis(200 + (round as u64 * 53) % 300));
        child.kill().expect("SIGKILL the server");
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        verify(dir.path(), 1);

        let (c, a) = start(dir.path());
        child = c;
        addr = a;
        assert!(
            appended.load(Ordering::Relaxed) > 0,
            "round {round} acknowledged no append"
        );
        // The cursor outlives the crash, and the round's changes touch it.
        let w = wait(&addr, &cursor, TABLE_POSTS, 5000);
        assert!(
            w.get("stale").is_none(),
            "round {round}: stale after restart: {w}"
        );
        assert_eq!(w["touched"], json!(true), "round {round}: touch lost: {w}");
        // Nothing wrote comments: that wait is not woken.
        let comments = keys::hex16(keys::table_key("comments"));
        let w = wait(&addr, &cursor, &comments, 300);
        assert_eq!(w["touched"], json!(false), "round {round}: {w}");

        // Acknowledged templates are still active.
        let acked = templates.lock().unwrap().clone();
        let attempted = next_template.load(Ordering::Relaxed);
        let (_, m) = get(&addr, "/v1/stream/app/touch/meta");
        let active = m["activeTemplates"].as_u64().unwrap();
        assert!(
            active >= acked.len() as u64 && active <= attempted,
            "round {round}: {active} active, {} acknowledged, {attempted} attempted",
            acked.len()
        );
        for i in 0..attempted {
            let doc = json!({"templates": [template(i)]});
            let (s, b) = post(&addr, "/v1/stream/app/touch/templates/activate", &doc).unwrap();
            assert_eq!(s, 200, "{b}");
            if let Some(id) = b["activated"][0]["templateId"].as_str() {
                templates.lock().unwrap().insert(id.to_string());
            }
        }
        let (_, m) = get(&addr, "/v1/stream/app/touch/meta");
        assert!(
            m["activeTemplates"].as_u64().unwrap() >= acked.len() as u64,
            "{m}"
        );
    }
    settled_cursor(&addr);
    child.kill().unwrap();
    child.wait().unwrap();
}
