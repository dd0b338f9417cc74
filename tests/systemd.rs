//! `weir serve` under a service manager: it sends `READY=1` on the
//! `NOTIFY_SOCKET` once its doors listen, watchdog pings at half of
//! `WATCHDOG_USEC`, and `STOPPING=1` when SIGTERM starts the drain; and its
//! `/healthz` and `/readyz` answer as a load balancer expects.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Notifications received until one contains `needle`.
fn wait_note(sock: &UnixDatagram, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = text.contains(needle);
            seen.push(text);
            if hit {
                return seen;
            }
        }
    }
    panic!("no notification with {needle:?}; got {seen:?}");
}

#[test]
fn notifies_systemd_and_answers_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--http-addr", "127.0.0.1:0", "--quic-addr", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server log");
        if let Some(at) = line.find("addr=") {
            if line.contains("HTTP door listening") {
                break line[at + 5..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
            }
        }
    };
    let ready = wait_note(&sock, "READY=1");
    assert!(
        ready.last().unwrap().contains("STATUS=serving"),
        "{ready:?}"
    );
    // Two pings within a few watchdog intervals.
    wait_note(&sock, "WATCHDOG=1");
    wait_note(&sock, "WATCHDOG=1");

    let health = get(&addr, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let ready = get(&addr, "/readyz");
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.ends_with("ready\n"),
        "{ready}"
    );

    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    wait_note(&sock, "STOPPING=1");
    assert!(child.wait().unwrap().success());
}
