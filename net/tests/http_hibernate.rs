//! Plain HTTP connections free their HTTP state when quiet and go on being
//! one keep-alive connection: a request after the pause, one split across
//! it, a long-poll and an SSE stream longer than it, and a connection that
//! said nothing at first, are all served on the same socket.

mod common;

use std::time::Duration;

use common::Server;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_net::http::{quiet_turns, HttpConfig, QUIET};

/// Long enough for a turn to end: one full quiet period after the next check.
const PAUSE: Duration = Duration::from_millis(2 * QUIET.as_millis() as u64 + 600);

/// Reads one response with a `content-length` from `c`: its head, lowercased, and body.
async fn response(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "the server closed the connection");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = got[head_end..].to_vec();
    while body.len() < len {
        let mut buf = vec![0u8; len - body.len()];
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed the connection mid-body");
        body.extend_from_slice(&buf[..n]);
    }
    (head, body)
}

async fn append(s: &Server, body: &'static str) {
    let ct = [("content-type", "text/plain")];
    let r = s.send(Method::POST, "/v1/stream/h", &ct, body).await;
    assert!(r.status.is_success(), "append: {}", r.status);
}

/// Reads from `c` into `text` until it holds `until`.
async fn read_until(c: &mut TcpStream, text: &mut String, until: &str) {
    let mut buf = [0u8; 4096];
    while !text.contains(until) {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{until:?} within 10 s"))
            .unwrap();
        assert!(n > 0, "the server closed the connection");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn server_with_records() -> (Server, String) {
    let s = Server::start(HttpConfig::default()).await;
    let ct = [("content-type", "text/plain")];
    let created = s.send(Method::PUT, "/v1/stream/h", &ct, "").await;
    assert_eq!(created.status, StatusCode::CREATED);
    let posted = s.send(Method::POST, "/v1/stream/h", &ct, "one").await;
    assert!(posted.status.is_success());
    let addr = s.base.trim_start_matches("http://").to_string();
    (s, addr)
}

const READ: &str = "GET /v1/stream/h?offset=-1 HTTP/1.1\r\nhost: x\r\n\r\n";

/// Reads the answer to a read from `c` and checks it is a 200 of `body`
/// that keeps the connection; returns its head.
async fn expect_ok(c: &mut TcpStream, body: &[u8]) -> String {
    let (head, got) = response(c).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(got, body);
    assert!(!head.contains("connection: close"), "{head}");
    head
}

/// Sends a read of the whole stream on `c` and checks its answer.
async fn read_all(c: &mut TcpStream, body: &[u8]) -> String {
    c.write_all(READ.as_bytes()).await.unwrap();
    expect_ok(c, body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_connection_is_still_served_after_its_turn_ends() {
    let (_s, addr) = server_with_records().await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    read_all(&mut c, b"one").await;

    let before = quiet_turns();
    tokio::time::sleep(PAUSE).await;
    assert!(
        quiet_turns() > before,
        "the quiet connection kept its HTTP state"
    );
    read_all(&mut c, b"one").await;

    // A request split across a turn's end: the first half is kept.
    let (first, second) = READ.split_at(20);
    c.write_all(first.as_bytes()).await.unwrap();
    let before = quiet_turns();
    tokio::time::sleep(PAUSE).await;
    assert!(
        quiet_turns() > before,
        "a half-sent request head kept the turn going"
    );
    c.write_all(second.as_bytes()).await.unwrap();
    expect_ok(&mut c, b"one").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_speaks_late_is_served() {
    let (_s, addr) = server_with_records().await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(PAUSE).await;
    read_all(&mut c, b"one").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_longer_than_the_quiet_period_keeps_the_connection_alive() {
    let (s, addr) = server_with_records().await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let head = read_all(&mut c, b"one").await;
    let next = head
        .lines()
        .find_map(|l| l.strip_prefix("stream-next-offset: "))
        .expect("a next offset")
        .trim()
        .to_string();
    let poll = format!("GET /v1/stream/h?offset={next}&live=long-poll HTTP/1.1\r\nhost: x\r\n\r\n");
    c.write_all(poll.as_bytes()).await.unwrap();
    tokio::time::sleep(PAUSE).await;
    append(&s, "two").await;
    // Answered, and the connection kept: the turn did not end under it.
    expect_ok(&mut c, b"two").await;
    read_all(&mut c, b"onetwo").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sse_stream_quiet_for_longer_than_the_period_goes_on() {
    let (s, addr) = server_with_records().await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let sse = "GET /v1/stream/h?offset=-1&live=sse HTTP/1.1\r\nhost: x\r\n\r\n";
    c.write_all(sse.as_bytes()).await.unwrap();
    let mut text = String::new();
    read_until(&mut c, &mut text, "one").await;
    tokio::time::sleep(PAUSE).await;
    append(&s, "two").await;
    read_until(&mut c, &mut text, "two").await;
}
