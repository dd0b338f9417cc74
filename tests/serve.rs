//! `weir serve` as a process: it opens the data directory, reports readiness
//! in its log, and exits cleanly (code 0, after draining) on SIGTERM and SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn start(data_dir: &std::path::Path, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--http-addr", "127.0.0.1:0", "--quic-addr", "127.0.0.1:0"])
        .args(extra)
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
    (child, rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no log line containing {needle:?}; saw {seen:#?}"),
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} failed");
}

#[test]
fn serves_and_stops_cleanly_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().unwrap();
    for sig in ["TERM", "INT"] {
        let (mut child, rx) = start(dir.path(), &["--durability", "buffered"]);
        wait_for(&rx, "weir storage engine open");
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert!(status.success(), "exit status after SIG{sig}: {status}");
        wait_for(&rx, "weir stopped cleanly");
    }
    assert!(
        dir.path().join("CURRENT").exists(),
        "RocksDB files in the data directory"
    );
}

/// The bound address printed in the "HTTP door listening" line.
fn http_addr(lines: &[String]) -> String {
    let line = lines
        .iter()
        .find(|l| l.contains("HTTP door listening"))
        .expect("listening line");
    let at = line.find("addr=").expect("addr field") + 5;
    line[at..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn the_http_door_serves_and_data_survives_a_restart() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let request = |addr: &str, head: &str, body: &str| -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "{head}\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let (mut child, rx) = start(dir.path(), &[]);
    let addr = http_addr(&wait_for(&rx, "HTTP door listening"));
    let created = request(&addr, "PUT /v1/stream/smoke HTTP/1.1", "");
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let appended = request(&addr, "POST /v1/stream/smoke HTTP/1.1", "hello");
    assert!(appended.starts_with("HTTP/1.1 2"), "{appended}");
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());

    let (mut child, rx) = start(dir.path(), &[]);
    let addr = http_addr(&wait_for(&rx, "HTTP door listening"));
    let read = request(&addr, "GET /v1/stream/smoke?offset=-1 HTTP/1.1", "");
    assert!(
        read.starts_with("HTTP/1.1 200") && read.ends_with("hello"),
        "{read}"
    );
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
}

/// A `key=value` field of a human log line.
fn field(lines: &[String], needle: &str, key: &str) -> String {
    let line = lines.iter().find(|l| l.contains(needle)).expect("log line");
    let at = line.find(&format!("{key}=")).expect("field") + key.len() + 1;
    line[at..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn the_quic_door_serves_pinned_clients_and_keeps_its_certificate() {
    use weir_net::client::{Client, ClientConfig, Trust};
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut fingerprints = Vec::new();
    for round in 0..2u64 {
        let (mut child, rx) = start(dir.path(), &[]);
        let lines = wait_for(&rx, "QUIC door listening");
        let addr: std::net::SocketAddr = field(&lines, "QUIC door listening", "addr")
            .parse()
            .unwrap();
        let fp_text = field(&lines, "QUIC door listening", "sha256");
        fingerprints.push(fp_text.clone());
        let fp = weir_net::quic::parse_fingerprint(&fp_text).expect("fingerprint");
        rt.block_on(async {
            let client = Client::connect(ClientConfig::new(addr, Trust::Fingerprint(fp)))
                .await
                .expect("connect");
            if round == 0 {
                client
                    .create("q", "application/octet-stream")
                    .await
                    .unwrap();
            }
            client
                .append("q", vec![weir_storage::Record::new(format!("r{round}"))])
                .await
                .unwrap();
            let read = client.read("q", 0, 1 << 20).await.unwrap();
            let got: Vec<Vec<u8>> = read
                .batches
                .iter()
                .flat_map(|b| b.iter().map(|r| r.payload.to_vec()).collect::<Vec<_>>())
                .collect();
            let want: Vec<Vec<u8>> = (0..=round).map(|r| format!("r{r}").into_bytes()).collect();
            assert_eq!(got, want);
        });
        signal(&child, "TERM");
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(
        fingerprints[0], fingerprints[1],
        "the self-signed certificate is reused"
    );
}

#[test]
fn json_logs_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = start(dir.path(), &["--log-format", "json"]);
    let lines = wait_for(&rx, "weir storage engine open");
    let line = lines.last().unwrap();
    assert!(
        line.starts_with('{') && line.ends_with('}'),
        "not JSON: {line}"
    );
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn bad_flags_fail_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--durability", "sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown durability"), "{err}");
}
