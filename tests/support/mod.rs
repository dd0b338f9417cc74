//! Helpers of the crash tests: start `weir serve` on free loopback ports
//! over a data directory and talk HTTP/1.1 to it without a client library,
//! so a killed server shows up as `None` rather than a panic.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

// The child is returned to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
pub fn start(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--http-addr", "127.0.0.1:0", "--quic-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server starts");
        if let Some(at) = line.find("HTTP door listening") {
            let rest = &line[at..];
            let a = rest.find("addr=").expect("addr field") + 5;
            let addr = rest[a..].split_whitespace().next().unwrap().to_string();
            // Keep draining the log so the server never blocks on stderr.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return (child, addr);
        }
    }
}

/// One HTTP/1.1 request on a fresh connection; (status, body), or `None`
/// when the server is gone.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let out = exchange(addr, method, path, headers, body)?;
    let status = out.get(9..12)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Sends one HTTP/1.1 request on a fresh connection (`Connection: close`)
/// and returns the whole raw answer, or `None` when the server is gone.
pub fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<String> {
    exchange_within(addr, method, path, headers, body, Duration::from_secs(10))
}

/// [`exchange`] whose answer may take up to `timeout`.
pub fn exchange_within(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    String::from_utf8(raw).ok()
}

/// Kills the server when dropped, so a failing test never leaves it running
/// (an orphan holding the test's stdout would keep the harness waiting).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `weir verify` on a stopped server's data directory and checks that
/// it compared `streams` state streams and found no difference.
pub fn verify(dir: &std::path::Path, streams: usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["verify", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run weir verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "weir verify failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!("{streams} state streams checked, 0 with differences");
    assert!(text.contains(&want), "{text}");
}

/// Every record of the JSON stream `name`, read from the start over as many
/// pages as it takes (each page is a JSON array; the last says it is up to
/// date).
pub fn read_json(addr: &str, name: &str) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    let mut offset = "-1".to_string();
    loop {
        let raw = exchange(
            addr,
            "GET",
            &format!("/v1/stream/{name}?offset={offset}"),
            &[],
            "",
        )
        .expect("the read is answered");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
        assert!(head.starts_with("HTTP/1.1 200"), "read of {name}: {head}");
        let header = |want: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(want).then(|| v.trim().to_string())
            })
        };
        let page: Vec<serde_json::Value> = serde_json::from_str(body).expect("a JSON page");
        records.extend(page);
        if header("stream-up-to-date").as_deref() == Some("true") {
            return records;
        }
        offset = header("stream-next-offset").expect("a next offset");
    }
}
