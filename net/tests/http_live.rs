//! Long-poll and SSE against the real HTTP server.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use hyper::{Method, StatusCode};
use weir_net::http::HttpConfig;

const TEXT: &[(&str, &str)] = &[("content-type", "text/plain")];

/// Waits until `name` has `n` live followers (a long-poll or SSE reader
/// caught up and registered for the next commit).
async fn until_live(s: &Server, name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.engine.live_followers(name) != n {
        assert!(
            Instant::now() < deadline,
            "{name} never had {n} live followers (has {})",
            s.engine.live_followers(name)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn long_poll_wakes_on_append() {
    let s = Server::start(HttpConfig {
        long_poll_timeout: Duration::from_secs(20),
        ..HttpConfig::default()
    })
    .await;
    let tail = s.send(Method::PUT, "/v1/stream/lp", TEXT, "old").await;
    let tail = tail.header("stream-next-offset").unwrap().to_string();
    let started = Instant::now();
    let url = format!("/v1/stream/lp?offset={tail}&live=long-poll");
    let poll = async { s.get(&url).await };
    // The append comes once the poll waits on the live stream, so it is
    // what wakes it.
    let append = async {
        until_live(&s, "lp", 1).await;
        s.send(Method::POST, "/v1/stream/lp", TEXT, "new").await
    };
    let (r, _) = tokio::join!(poll, append);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "new");
    assert_eq!(r.header("stream-up-to-date"), Some("true"));
    assert!(r.header("stream-cursor").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the append, not the timeout"
    );
    // The answered poll leaves the live set.
    until_live(&s, "lp", 0).await;
}

#[tokio::test]
async fn long_poll_times_out_with_204() {
    let s = Server::start(HttpConfig {
        long_poll_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    })
    .await;
    s.send(Method::PUT, "/v1/stream/lp", TEXT, "").await;
    let r = s.get("/v1/stream/lp?offset=now&live=long-poll").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("stream-up-to-date"), Some("true"));
    assert_eq!(
        r.header("stream-next-offset"),
        Some("0000000000000000_0000000000000000")
    );
}

#[tokio::test]
async fn sse_delivers_catch_up_then_live() {
    let s = Server::start(HttpConfig::default()).await;
    s.send(Method::PUT, "/v1/stream/e", TEXT, "line1\nline2")
        .await;
    let read = s.sse_until(
        "/v1/stream/e?offset=-1&live=sse",
        "live-data",
        Duration::from_secs(5),
    );
    // Appended once the reader has caught up and went live.
    let append = async {
        until_live(&s, "e", 1).await;
        s.send(Method::POST, "/v1/stream/e", TEXT, "live-data")
            .await
    };
    let ((status, headers, text), _) = tokio::join!(read, append);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    assert!(
        text.contains("event: data\ndata:line1\ndata:line2\n\n"),
        "{text}"
    );
    assert!(text.contains("event: control\ndata:{"), "{text}");
    assert!(text.contains("\"upToDate\":true"), "{text}");
    assert!(text.contains("data:live-data"), "{text}");
}

#[tokio::test]
async fn sse_base64_for_binary_and_closed_end() {
    let s = Server::start(HttpConfig::default()).await;
    s.send(
        Method::PUT,
        "/v1/stream/b",
        &[("content-type", "application/octet-stream")],
        vec![0u8, 10, 13, 255],
    )
    .await;
    s.send(
        Method::POST,
        "/v1/stream/b",
        &[("stream-closed", "true")],
        "",
    )
    .await;
    let (status, headers, text) = s
        .sse_until(
            "/v1/stream/b?offset=-1&live=sse",
            "streamClosed",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("stream-sse-data-encoding").unwrap(), "base64");
    assert!(text.contains("data:AAoN/w=="), "{text}");
    assert!(text.contains("\"streamClosed\":true"), "{text}");
    let last_control = text.rsplit("event: control").next().unwrap();
    assert!(!last_control.contains("streamCursor"), "{text}");
}

/// Catch-up reads from storage: a long-poll or SSE read from the start of a
/// stream with data answers that data, never a premature "up to date"
/// while a storage read is still on its way (the reads run on reader
/// threads, so a follower that is not ready may just be reading).
#[tokio::test(flavor = "multi_thread")]
async fn live_reads_from_history_carry_the_history() {
    let s = Server::start(HttpConfig::default()).await;
    let r = s
        .send(
            Method::PUT,
            "/v1/stream/h",
            &[("content-type", "text/plain")],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for i in 0..3 {
        let r = s
            .send(
                Method::POST,
                "/v1/stream/h",
                &[("content-type", "text/plain")],
                format!("r{i}"),
            )
            .await;
        assert!(r.status.is_success());
    }
    let (_, _, text) = s
        .sse_until(
            "/v1/stream/h?offset=-1&live=sse",
            "upToDate",
            Duration::from_secs(10),
        )
        .await;
    let first_data = text.find("event: data").expect("an SSE data event");
    let first_up = text.find("upToDate").expect("an up-to-date control");
    assert!(
        first_data < first_up,
        "up to date before the history: {text}"
    );
    assert!(text.contains("r0r1r2") || text.contains("r0"), "{text}");
    let r = s.get("/v1/stream/h?offset=-1&live=long-poll").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "r0r1r2");
    assert_eq!(r.header("stream-up-to-date"), Some("true"));
}
