//! Short loads against a real Weir (engine + HTTP door with its WebSocket
//! endpoint, and the QUIC door, in-process on loopback ports picked by the
//! OS) must see every acknowledged record exactly once, and state
//! subscribers must end holding what a Scan holds.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use weir_load::state::{StateConfig, StateModeArg, StateReport};
use weir_load::{run, CheckBy, LiveMode, LoadConfig, StartFrom, Target};
use weir_storage::{Engine, EngineConfig};

/// A running in-process server; dropping the guard's sender stops it.
struct Server {
    http: String,
    quic: String,
    fingerprint: String,
    _stop: Vec<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The QUIC door as a target, its certificate pinned.
    fn quic_target(&self) -> Target {
        let mut t = Target::parse(&self.quic).unwrap();
        t.quic_fingerprint = Some(self.fingerprint.clone());
        t
    }
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("db"), EngineConfig::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(weir_net::http::serve(
        engine.clone(),
        weir_net::http::HttpConfig::default(),
        listener,
        async {
            let _ = rx.await;
        },
    ));
    let qc = weir_net::quic::QuicConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
    let q = weir_net::quic::QuicServer::bind(engine, qc).unwrap();
    let quic = format!("quic://{}", q.local_addr().unwrap());
    let fingerprint = q.fingerprint().to_string();
    let (qtx, qrx) = oneshot::channel::<()>();
    tokio::spawn(q.run(async {
        let _ = qrx.await;
    }));
    Server {
        http,
        quic,
        fingerprint,
        _stop: vec![tx, qtx],
        _dir: dir,
    }
}

fn short(target: Target) -> LoadConfig {
    let mut c = LoadConfig::new(target);
    c.connections = 2;
    c.streams = 2;
    c.producers = 3;
    c.subscribers_per_stream = 2;
    c.record_size = 64;
    c.batch = 5;
    c.warmup = Duration::from_millis(200);
    c.duration = Duration::from_millis(1200);
    c.drain = Duration::from_secs(10);
    c
}

fn assert_clean(r: &weir_load::Report) {
    assert!(r.appended > 0, "{}", r.summary());
    assert!(r.is_clean(), "{}", r.summary());
    assert!(r.drained, "{}", r.summary());
    assert_eq!(r.append_errors, 0, "{}", r.summary());
    // Every subscriber got every record: 2 per stream.
    assert_eq!(r.expected_deliveries, r.appended * 2, "{}", r.summary());
    assert_eq!(r.delivered, r.expected_deliveries, "{}", r.summary());
    assert!(r.ack_latency_us.count > 0 && r.e2e_latency_us.count > 0);
    assert!(r.append_records_per_sec > 0.0 && r.deliver_records_per_sec > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_long_poll_sees_every_record_once() {
    let s = start().await;
    let out = run(short(Target::parse(&s.http).unwrap())).await.unwrap();
    assert_clean(&out.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sse_idempotent_from_start_sees_every_record_once() {
    let s = start().await;
    let mut c = short(Target::parse(&s.http).unwrap());
    c.live = LiveMode::Sse;
    c.idempotent = true;
    c.from = StartFrom::Start;
    c.rate = Some(2000.0);
    let out = run(c).await.unwrap();
    assert_clean(&out.report);
    let json = serde_json::to_value(&out.report).unwrap();
    for k in [
        "appended",
        "delivered",
        "lost",
        "duplicates",
        "append_records_per_sec",
        "deliver_records_per_sec",
    ] {
        assert!(json.get(k).is_some(), "{k}");
    }
    for k in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["ack_latency_us"].get(k).is_some());
        assert!(json["e2e_latency_us"].get(k).is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_record_count_ends_the_run() {
    let s = start().await;
    let mut c = short(Target::parse(&s.http).unwrap());
    c.max_records = Some(200);
    c.duration = Duration::from_secs(30);
    c.warmup = Duration::ZERO;
    c.check_by = CheckBy::Identity;
    let t = std::time::Instant::now();
    let out = run(c).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(20));
    assert_eq!(out.report.appended, 200);
    assert_clean(&out.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_sees_every_record_once() {
    let s = start().await;
    let mut c = short(s.quic_target());
    c.idempotent = true;
    let out = run(c).await.unwrap();
    assert_clean(&out.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_pipelined_producers_see_every_record_once() {
    let s = start().await;
    let mut c = short(s.quic_target());
    c.inflight = 8;
    c.rate = Some(5_000.0);
    let out = run(c).await.unwrap();
    let r = &out.report;
    assert_clean(r);
    assert_eq!(r.settings.inflight, 8, "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_sees_every_record_once() {
    let s = start().await;
    let ws = s.http.replace("http://", "ws://") + "/v1/ws";
    let mut c = short(Target::parse(&ws).unwrap());
    c.idempotent = true;
    let out = run(c).await.unwrap();
    assert_clean(&out.report);
    assert_eq!(out.report.duplicates, 0, "{}", out.report.summary());
    assert_eq!(out.report.lost, 0, "{}", out.report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_from_start_sees_every_record_once() {
    let s = start().await;
    let ws = s.http.replace("http://", "ws://") + "/v1/ws";
    let mut c = short(Target::parse(&ws).unwrap());
    c.from = StartFrom::Start;
    c.connections = 3;
    c.subscribers_per_stream = 3;
    let out = run(c).await.unwrap();
    let r = &out.report;
    assert!(
        r.appended > 0 && r.is_clean() && r.drained,
        "{}",
        r.summary()
    );
    assert_eq!(r.append_errors, 0, "{}", r.summary());
    assert_eq!(r.delivered, r.appended * 3, "{}", r.summary());
}

/// Catch-up mode: every pass over the pre-filled stream is whole and clean,
/// on every transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_passes_read_every_stored_record() {
    let s = start().await;
    let ws = Target::parse(&(s.http.replace("http://", "ws://") + "/v1/ws")).unwrap();
    for target in [Target::parse(&s.http).unwrap(), s.quic_target(), ws] {
        let mut c = LoadConfig::new(target);
        c.connections = 2;
        c.streams = 1;
        c.subscribers_per_stream = 2;
        c.record_size = 2000;
        c.batch = 7;
        c.catch_up_records = Some(500);
        c.warmup = Duration::from_millis(100);
        c.duration = Duration::from_millis(1500);
        let out = run(c).await.unwrap();
        let r = &out.report;
        let cu = r.catch_up.as_ref().expect("catch-up figures");
        assert_eq!(r.appended, 500, "{}", r.summary());
        assert!(cu.passes >= 2, "{}", r.summary());
        assert_eq!(cu.bad_passes, 0, "{}", r.summary());
        assert!(r.is_clean(), "{}", r.summary());
        assert!(r.deliver_mb_per_sec > 0.0 && r.deliver_records_per_sec > 0.0);
    }
}

/// A short state run: 2,000 keys, 10 filtered subscribers with snapshots,
/// 500 changes/s for 2 s.
fn short_state(target: Target) -> StateConfig {
    let mut c = StateConfig::new(target);
    c.keys = 2000;
    c.subscribers = 10;
    c.subscribers_per_connection = 4;
    c.change_rate = 500.0;
    c.warmup = Duration::from_millis(500);
    c.duration = Duration::from_millis(1500);
    c.drain = Duration::from_secs(10);
    c
}

fn assert_state_clean(r: &StateReport) {
    let s = r.summary();
    assert!(r.passed(), "{s}");
    assert!(r.check.drained, "{s}");
    assert!(r.changes_acked > 0 && r.deliveries > 0, "{s}");
    assert_eq!(r.deliveries, r.check.expected_deliveries, "{s}");
    assert!(r.change_latency_us.count > 0, "{s}");
    assert_eq!(r.snapshots.count, r.subscribers, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_state_subscribers_match_a_scan() {
    let s = start().await;
    let out = weir_load::state::run(short_state(s.quic_target()))
        .await
        .unwrap();
    assert_state_clean(&out);
    // 2,000 keys in 20 groups: each snapshot holds its group's 100.
    assert_eq!(out.snapshots.rows_mean, 100.0, "{}", out.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_state_subscribers_match_a_scan() {
    let s = start().await;
    let ws = Target::parse(&(s.http.replace("http://", "ws://") + "/v1/ws")).unwrap();
    let out = weir_load::state::run(short_state(ws)).await.unwrap();
    assert_state_clean(&out);
}

/// Keyed mode with unfiltered subscribers, which apply stored records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_keyed_unfiltered_subscribers_match_a_scan() {
    let s = start().await;
    let ws = Target::parse(&(s.http.replace("http://", "ws://") + "/v1/ws")).unwrap();
    let mut c = short_state(ws);
    c.mode = StateModeArg::Keyed;
    c.groups = 0;
    c.keys = 500;
    c.subscribers = 3;
    let out = weir_load::state::run(c).await.unwrap();
    assert_state_clean(&out);
    // Unfiltered: every subscriber gets every change.
    assert_eq!(out.deliveries, out.changes_acked * 3, "{}", out.summary());
}
