//! Clients that pipeline reads and never read the answers: their response
//! bodies stay within the server-wide output budget, another client's read
//! still gets through, and the write-stall limit closes the connections that
//! take nothing, which gives their share back.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_net::http::HttpConfig;
use weir_storage::{AppendRequest, Record};

const BUDGET: usize = 3 << 20;
/// Reads each hog pipelines, of 1 MiB each.
const PIPELINED: usize = 80;

fn gauge(text: &str, name: &str) -> f64 {
    common::metric(text, name).unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_pipelined_reads_stay_within_the_budget_and_are_cut_off() {
    let s = Server::start(HttpConfig {
        output_budget_bytes: BUDGET,
        write_stall_limit: Duration::from_millis(800),
        read_budget_bytes: 1 << 20,
        ..HttpConfig::default()
    })
    .await;
    let ct = [("content-type", "application/octet-stream")];
    assert_eq!(
        s.send(Method::PUT, "/v1/stream/big", &ct, "").await.status,
        StatusCode::CREATED
    );
    for _ in 0..8 {
        let rec = Record::new(Bytes::from(vec![7u8; 512 << 10]));
        s.engine
            .append(
                "big",
                AppendRequest {
                    records: vec![rec],
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let addr = s.base.trim_start_matches("http://").to_string();
    // More than a loopback socket's buffers can absorb (this kernel lets a
    // receive buffer grow to 32 MiB), so the hogs' writes stall.
    let request = "GET /v1/stream/big?offset=-1 HTTP/1.1\r\nhost: x\r\n\r\n".repeat(PIPELINED);
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        hogs.push(c);
    }
    // While nobody reads, the bodies held stay within the budget; sample
    // until the stalled hogs are seen holding some of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut peak = 0.0f64;
    while peak == 0.0 {
        assert!(
            Instant::now() < deadline,
            "the hogs never held any of the budget"
        );
        let m = s.send(Method::GET, "/metrics", &[], "").await.text();
        let held = gauge(&m, "weir_http_output_bytes");
        assert!(held <= BUDGET as f64, "held {held} bytes");
        peak = peak.max(held);
        assert_eq!(gauge(&m, "weir_http_output_limit_bytes"), BUDGET as f64);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Another client's read gets through (once the stall limit frees room).
    let t = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        s.send(Method::GET, "/v1/stream/big?offset=-1", &[], ""),
    )
    .await
    .expect("a reader starved behind clients that do not read");
    assert_eq!(r.status, StatusCode::OK);
    assert!(t.elapsed() < Duration::from_secs(20));

    // Each hog runs out of socket buffer, stalls for the limit and is
    // closed, giving its share back; then what it can still read ends,
    // short of all it asked for.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = s.send(Method::GET, "/metrics", &[], "").await.text();
        if gauge(&m, "weir_http_output_bytes") == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the budget was not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for mut c in hogs {
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let read_all = async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read_all)
            .await
            .expect("a connection that read nothing was never closed");
        assert!(
            got < PIPELINED << 20,
            "a stalled connection got all it asked for"
        );
    }
}
