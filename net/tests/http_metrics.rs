//! `/metrics` against the real HTTP server: the exposition parses, counts
//! units (records, not requests), and its counters move by exactly what a
//! request did.

mod common;

use common::Server;
use hyper::{Method, StatusCode};
use weir_net::http::HttpConfig;

/// The value of the sample line starting with `name` (labels included).
fn sample(text: &str, name: &str) -> f64 {
    common::metric(text, name).unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

#[tokio::test]
async fn metrics_count_records_and_requests() {
    let s = Server::start(HttpConfig::default()).await;
    let json = &[("content-type", "application/json")];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/m", json, "").await.status,
        StatusCode::CREATED
    );
    let before = s.send(Method::GET, "/metrics", &[], "").await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(before
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let before = before.text();
    assert_eq!(sample(&before, "weir_streams"), 1.0);
    assert!(before.trim_end().ends_with("# EOF"));

    let body = format!(
        "[{}]",
        (0..1000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let r = s.send(Method::POST, "/v1/stream/m", json, body).await;
    assert!(r.status.is_success(), "{}", r.text());
    let after = s.send(Method::GET, "/metrics", &[], "").await.text();

    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(delta("weir_records_appended_total"), 1000.0);
    assert_eq!(delta("weir_appends_total"), 1.0);
    assert_eq!(delta("weir_commit_groups_total"), 1.0);
    assert_eq!(delta("weir_commit_write_seconds_count"), 1.0);
    assert_eq!(delta("weir_commit_group_size_count"), 1.0);
    assert!(delta("weir_appended_bytes_total") >= 1000.0 * 8.0);
    assert_eq!(
        sample(
            &after,
            r#"weir_http_requests_total{route="append",status="2xx"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"weir_http_requests_total{route="metrics",status="2xx"}"#
        ),
        1.0,
        "the scrape in flight is counted after it is answered"
    );
    // Process figures, read from /proc at scrape time.
    assert!(sample(&after, "weir_process_resident_memory_bytes") > 1e6);
    assert!(sample(&after, "weir_process_open_fds") >= 3.0);
    assert!(sample(&after, "weir_process_threads") >= 2.0);
    // A young test process may not have used a whole clock tick yet.
    assert!(
        after.contains("\nweir_process_cpu_seconds_total "),
        "{after}"
    );
    // A refused request counts under its class, and no stream name leaks into labels.
    s.send(Method::POST, "/v1/stream/m", json, "not json").await;
    let last = s.send(Method::GET, "/metrics", &[], "").await.text();
    assert_eq!(
        sample(
            &last,
            r#"weir_http_requests_total{route="append",status="4xx"}"#
        ),
        1.0
    );
    assert!(!last.contains("\"m\""), "{last}");
    assert_eq!(sample(&last, "weir_commit_queue_depth"), 0.0);
}
