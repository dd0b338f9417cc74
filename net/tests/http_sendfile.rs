//! Catch-up reads of large records, which the server sends from the storage
//! engine's file cache with `sendfile`: exact bytes for a slow reader (many
//! partial sends), for pipelined requests on one connection, and for a
//! client paging through the stream.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Server;
use hyper::{Method, StatusCode};
use weir_net::http::HttpConfig;
use weir_storage::file_region;

const OCTETS: &[(&str, &str)] = &[("content-type", "application/octet-stream")];
const RECORD: usize = 1536 << 10;

fn payload(i: usize) -> Vec<u8> {
    (0..RECORD)
        .map(|j| (i * 97 + j * 13 + j / 4093) as u8)
        .collect()
}

/// A stream of `n` large records, waited on until all are in the file cache.
async fn large_stream(s: &Server, n: usize) -> Vec<Vec<u8>> {
    s.send(Method::PUT, "/v1/stream/big", OCTETS, "").await;
    let records: Vec<_> = (0..n).map(payload).collect();
    for r in &records {
        let res = s
            .send(Method::POST, "/v1/stream/big", OCTETS, r.clone())
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
    }
    let start = Instant::now();
    loop {
        let read = s.engine.read("big", n as u64 - 1, 1 << 20).unwrap();
        if file_region(&read.batches[0].payload_bytes(0).unwrap()).is_some() {
            return records;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never cached");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads one HTTP/1.1 response with a Content-Length from `sock`, slowly
/// when `pause` is set, and returns its head and body.
fn read_response(sock: &mut std::net::TcpStream, pause: Option<Duration>) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed inside a head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = buf.split_off(head_end);
    while body.len() < len {
        let want = chunk.len().min(len - body.len());
        let n = sock.read(&mut chunk[..want]).unwrap();
        assert!(n > 0, "connection closed inside a body");
        body.extend_from_slice(&chunk[..n]);
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    (head, body)
}

fn shrink_receive_buffer(sock: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 16 << 10;
    // SAFETY: an open socket and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// Name of the threads of the runtime serving [`a_slow_reader_and_pipelined_requests_get_exact_bytes`]
/// (at most 15 bytes, the kernel's limit on a thread's name).
const SERVER_THREADS: &str = "sendfile-served";

/// Bytes the threads named [`SERVER_THREADS`] read with system calls
/// (`rchar` of `/proc/self/task/*/io`). `sendfile` adds what it sends to
/// the sending thread's count; a body written from memory adds nothing,
/// as the file cache's pages are mapped, not read.
fn server_threads_read() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue; // the thread ended
        };
        if comm.trim_end() != SERVER_THREADS {
            continue;
        }
        let Ok(io) = std::fs::read_to_string(dir.join("io")) else {
            continue;
        };
        total += io
            .lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .expect("task I/O accounting")
            .trim()
            .parse::<u64>()
            .unwrap();
    }
    total
}

/// The server runs on a runtime of its own, whose threads are told apart
/// from the other tests' by name; the client is this test's thread.
#[test]
fn a_slow_reader_and_pipelined_requests_get_exact_bytes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let (s, records) = rt.block_on(async {
        let s = Server::start(HttpConfig::default()).await;
        let records = large_stream(&s, 3).await;
        (s, records)
    });
    let addr = s.base.trim_start_matches("http://").to_string();
    let read_before = server_threads_read();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    // A small receive buffer and pauses make the server's sends partial.
    shrink_receive_buffer(&sock);
    let get =
        |offset: &str| format!("GET /v1/stream/big?offset={offset} HTTP/1.1\r\nhost: x\r\n\r\n");
    sock.write_all(get("-1").as_bytes()).unwrap();
    let (head, body) = read_response(&mut sock, Some(Duration::from_millis(1)));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == records[0], "first record differs");

    // Three requests sent at once on the same connection: the answers
    // come back whole and in order.
    let second = "0000000000000000_0000000000000001";
    let third = "0000000000000000_0000000000000002";
    let pipelined = [get(second), get(third), get(second)].concat();
    sock.write_all(pipelined.as_bytes()).unwrap();
    for want in [&records[1], &records[2], &records[1]] {
        let (head, body) = read_response(&mut sock, None);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body == *want, "pipelined record differs");
    }
    // The four bodies went out with sendfile from this server's threads,
    // not from memory: those threads read at least the four bodies.
    let read = server_threads_read() - read_before;
    eprintln!("the server's threads read {read} bytes for four bodies of {RECORD}");
    assert!(
        read >= 4 * RECORD as u64,
        "the server's threads read only {read} bytes: the bodies did not go out with sendfile"
    );
    drop(sock);
    drop(s);
}

#[tokio::test]
async fn paging_through_a_cached_stream_returns_every_record() {
    let s = Server::start(HttpConfig::default()).await;
    let records = large_stream(&s, 4).await;
    let (mut got, mut offset) = (Vec::new(), "-1".to_string());
    loop {
        let r = s.get(&format!("/v1/stream/big?offset={offset}")).await;
        assert_eq!(r.status, StatusCode::OK);
        got.extend_from_slice(&r.body);
        offset = r.header("stream-next-offset").unwrap().to_string();
        if r.header("stream-up-to-date") == Some("true") {
            break;
        }
    }
    assert!(got == records.concat(), "paged stream differs");
}
