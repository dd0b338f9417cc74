//! Crash safety of state streams: `weir serve` is SIGKILLed while writers
//! append keyed and State Protocol changes and SSE subscribers follow both
//! streams. After every kill, `weir verify` must find the stored state
//! equal to the state recomputed from the log, and every acknowledged
//! change must be in the state (or a later change of the same key, since
//! an append can be durable without its acknowledgement arriving).

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};
use support::{request, start, verify};

const ROUNDS: usize = 20;
const WRITERS: usize = 2;
const KEYS_PER_WRITER: usize = 16;

/// Latest acknowledged version per (stream, key).
type Acked = Arc<Mutex<HashMap<(String, String), u64>>>;

fn writer(addr: String, w: usize, stop: Arc<AtomicBool>, acked: Acked, start_version: u64) {
    let mut version = start_version;
    while !stop.load(Ordering::Relaxed) {
        version += 1;
        let key = format!("w{w}-k{}", version as usize % KEYS_PER_WRITER);
        let keyed = request(
            &addr,
            "POST",
            "/v1/stream/keyed",
            &[
                ("Content-Type", "application/octet-stream"),
                ("Stream-Key", &key),
            ],
            &version.to_string(),
        );
        let op = if version.is_multiple_of(2) {
            "insert"
        } else {
            "update"
        };
        let msg = format!(
            r#"{{"type":"row","key":"{key}","value":{{"v":{version}}},"headers":{{"operation":"{op}"}}}}"#
        );
        let proto = request(
            &addr,
            "POST",
            "/v1/stream/proto",
            &[("Content-Type", "application/json")],
            &msg,
        );
        let mut a = acked.lock().unwrap();
        match keyed {
            Some((s, _)) if s < 300 => {
                a.insert(("keyed".into(), key.clone()), version);
            }
            Some((s, b)) => panic!("keyed append refused: {s} {b}"),
            None => return,
        }
        match proto {
            Some((s, _)) if s < 300 => {
                a.insert(("proto".into(), key), version);
            }
            Some((s, b)) => panic!("state-protocol append refused: {s} {b}"),
            None => return,
        }
    }
}

/// An SSE subscriber that reads until the connection drops.
fn subscriber(addr: String, stream: &'static str) {
    let Ok(mut s) = TcpStream::connect(&addr) else {
        return;
    };
    let _ = write!(
        s,
        "GET /v1/stream/{stream}?offset=-1&live=sse HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let mut buf = [0u8; 65536];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

#[test]
fn state_survives_sigkill_and_weir_verify_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Acked = Arc::default();
    let (mut child, mut addr) = start(dir.path());
    let created = request(
        &addr,
        "PUT",
        "/v1/stream/keyed",
        &[
            ("Content-Type", "application/octet-stream"),
            ("Stream-State", "keyed"),
        ],
        "",
    );
    assert!(matches!(created, Some((201, _))), "{created:?}");
    let created = request(
        &addr,
        "PUT",
        "/v1/stream/proto",
        &[("Content-Type", "application/json")],
        "",
    );
    assert!(matches!(created, Some((201, _))), "{created:?}");
    let profile = request(
        &addr,
        "POST",
        "/v1/stream/proto/_profile",
        &[("Content-Type", "application/json")],
        r#"{"apiVersion":"durable.streams/profile/v1","profile":{"kind":"state-protocol"}}"#,
    );
    assert!(matches!(profile, Some((200, _))), "{profile:?}");
    let mut base = 0u64;
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for w in 0..WRITERS {
            let (a, s, k) = (addr.clone(), stop.clone(), acked.clone());
            threads.push(std::thread::spawn(move || writer(a, w, s, k, base)));
        }
        for stream in ["keyed", "proto"] {
            let a = addr.clone();
            std::thread::spawn(move || subscriber(a, stream));
        }
        let run_for = Duration::from_millis(150 + (round as u64 * 37) % 250);
        let t0 = Instant::now();
        while t0.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().expect("SIGKILL the server");
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        base += 1_000_000; // later rounds write larger versions
        verify(dir.path(), 2);

        let (c, a) = start(dir.path());
        child = c;
        let snapshot = acked.lock().unwrap().clone();
        // A round that acknowledged nothing would check nothing.
        assert!(
            snapshot.len() >= 2 * (round + 1).min(WRITERS * KEYS_PER_WRITER),
            "round {round}: only {} acknowledged keys",
            snapshot.len()
        );
        for ((stream, key), version) in snapshot {
            let path = match stream.as_str() {
                "keyed" => format!("/v1/stream/keyed/_state?key={key}"),
                _ => format!("/v1/stream/proto/_state?type=row&key={key}"),
            };
            let (status, body) = request(&a, "GET", &path, &[], "").expect("state read");
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let row = &v["rows"][0];
            let stored = match stream.as_str() {
                "keyed" => row["value"].as_str().and_then(|s| s.parse::<u64>().ok()),
                _ => row["value"]["v"].as_u64(),
            };
            let stored = stored
                .unwrap_or_else(|| panic!("{stream}/{key} missing after round {round}: {body}"));
            assert!(
                stored >= version,
                "{stream}/{key}: acknowledged version {version}, state has {stored}"
            );
        }
        addr = a;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
