//! A full disk under load (issue 12): `weir serve` runs on a size-limited
//! tmpfs that a filler file nearly fills, while writers append to a JSON
//! stream and a state-protocol stream until the disk is full. Then:
//! - every refused append is a 507 that says the storage is full (never a
//!   500, a hang or a dropped connection), readiness answers 503 and names
//!   the full disk, and the fault gauge shows 1;
//! - reads keep working and return every acknowledged record;
//! - once the filler is removed, writes resume by themselves (no restart):
//!   readiness returns to 200 and appends succeed;
//! - after a SIGKILL and a restart, every acknowledged record and state row
//!   is there, no refused record is, and `weir verify` passes.
//!
//! Mounting needs privileges: without them the test prints why and skips.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{read_json, request, start, verify};

/// The tmpfs: room for the data and for RocksDB's recovery, which waits
/// for at least its largest memtable (128 MiB) of free space.
const TMPFS_MIB: u64 = 320;
/// Free space the filler leaves: the writers fill it.
const HEADROOM: u64 = 12 << 20;
const WRITERS: usize = 3;
/// Characters of padding per record.
const PAD: usize = 24 << 10;
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_MIB}m"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// What the writers learnt: acknowledged and refused record ids.
#[derive(Default)]
struct Ledger {
    acked_log: BTreeSet<String>,
    acked_rows: BTreeSet<String>,
    refused_log: BTreeSet<String>,
    full_answers: usize,
}

fn pad() -> String {
    "x".repeat(PAD)
}

fn append_log(addr: &str, id: &str) -> Option<(u16, String)> {
    let body = format!(r#"[{{"id":"{id}","pad":"{}"}}]"#, pad());
    request(addr, "POST", "/v1/stream/log", &[JSON], &body)
}

fn append_row(addr: &str, key: &str) -> Option<(u16, String)> {
    let body = format!(
        r#"{{"type":"row","key":"{key}","value":{{"pad":"{}"}},"headers":{{"operation":"insert"}}}}"#,
        pad()
    );
    request(addr, "POST", "/v1/stream/proto", &[JSON], &body)
}

/// Appends until this writer has seen the disk full `enough` times in a
/// row on both streams (or `stop` is set), keeping the ledger.
fn writer(addr: String, w: usize, stop: Arc<AtomicBool>, ledger: Arc<Mutex<Ledger>>) {
    let mut full_in_a_row = 0;
    let mut i = 0;
    while full_in_a_row < 10 && !stop.load(Ordering::Relaxed) {
        i += 1;
        let id = format!("w{w}-{i}");
        let log = append_log(&addr, &id).expect("the server answers while the disk is full");
        let row = append_row(&addr, &id).expect("the server answers while the disk is full");
        let mut l = ledger.lock().unwrap();
        let mut full = 0;
        for (what, (status, body)) in [("log", log), ("row", row)] {
            match status {
                200 | 204 => match what {
                    "log" => l.acked_log.insert(id.clone()),
                    _ => l.acked_rows.insert(id.clone()),
                },
                507 => {
                    assert!(body.contains("storage full"), "507 body: {body}");
                    l.full_answers += 1;
                    full += 1;
                    if what == "log" {
                        l.refused_log.insert(id.clone());
                    }
                    true
                }
                _ => panic!("{what} append {id}: {status} {body}"),
            };
        }
        full_in_a_row = if full == 2 { full_in_a_row + 1 } else { 0 };
    }
}

/// The ids of every record of the JSON stream `log`.
fn log_ids(addr: &str) -> Vec<String> {
    read_json(addr, "log")
        .iter()
        .map(|r| r["id"].as_str().expect("an id").to_string())
        .collect()
}

fn ready(addr: &str) -> (u16, String) {
    request(addr, "GET", "/readyz", &[], "").expect("readyz answers")
}

fn fault_gauge(addr: &str) -> String {
    let (_, text) =
        request(addr, "GET", "/metrics", &[("Accept", "text/plain")], "").expect("metrics answer");
    text.lines()
        .find(|l| l.starts_with("weir_storage_write_faulted "))
        .unwrap_or_else(|| panic!("no fault gauge in {text}"))
        .to_string()
}

fn check_everything_acked_is_there(addr: &str, l: &Ledger, when: &str) {
    let ids: BTreeSet<String> = log_ids(addr).into_iter().collect();
    for id in &l.acked_log {
        assert!(
            ids.contains(id),
            "{when}: acknowledged record {id} is missing"
        );
    }
    for id in &l.refused_log {
        assert!(!ids.contains(id), "{when}: refused record {id} was written");
    }
    for key in &l.acked_rows {
        let (status, body) = request(
            addr,
            "GET",
            &format!("/v1/stream/proto/_state?type=row&key={key}"),
            &[],
            "",
        )
        .expect("state read answers");
        assert_eq!(status, 200, "{when}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["rows"][0]["value"]["pad"].as_str().map(str::len),
            Some(PAD),
            "{when}: acknowledged row {key} is missing: {body}"
        );
    }
}

#[test]
fn a_full_disk_refuses_writes_clearly_and_recovers_by_itself() {
    let root = tempfile::tempdir().unwrap();
    let fs = match Tmpfs::mount(root.path()) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipping disk_full: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let data = root.path().join("data");
    let (mut child, addr) = start(&data);
    for (path, body) in [("/v1/stream/log", ""), ("/v1/stream/proto", "")] {
        let created = request(&addr, "PUT", path, &[JSON], body);
        assert!(matches!(created, Some((201, _))), "{created:?}");
    }
    let profile = request(
        &addr,
        "POST",
        "/v1/stream/proto/_profile",
        &[JSON],
        r#"{"apiVersion":"durable.streams/profile/v1","profile":{"kind":"state-protocol"}}"#,
    );
    assert!(matches!(profile, Some((200, _))), "{profile:?}");

    let filler = root.path().join("filler");
    let fill = fs.free_bytes().saturating_sub(HEADROOM);
    std::fs::write(&filler, vec![0u8; fill as usize]).expect("write the filler");

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (a, s, l) = (addr.clone(), stop.clone(), ledger.clone());
            std::thread::spawn(move || writer(a, w, s, l))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while writers.iter().any(|t| !t.is_finished()) {
        assert!(Instant::now() < deadline, "the disk never filled");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in writers {
        t.join().expect("writer");
    }

    // Full: refused, said so, and reads still work.
    let (status, text) = ready(&addr);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("disk full"), "{text}");
    assert_eq!(fault_gauge(&addr), "weir_storage_write_faulted 1");
    {
        let l = ledger.lock().unwrap();
        assert!(
            l.acked_log.len() >= 10,
            "only {} records went in",
            l.acked_log.len()
        );
        assert!(l.full_answers >= 20);
        check_everything_acked_is_there(&addr, &l, "while full");
    }

    // Free the space: writes resume with no client action and no restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    while ready(&addr).0 != 200 {
        assert!(
            freed.elapsed() < Duration::from_secs(60),
            "writes did not resume: {:?}",
            ready(&addr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "writes resumed {} ms after the space was freed",
        freed.elapsed().as_millis()
    );
    assert_eq!(fault_gauge(&addr), "weir_storage_write_faulted 0");
    {
        let mut l = ledger.lock().unwrap();
        for i in 0..5 {
            let id = format!("after-{i}");
            let (s, b) = append_log(&addr, &id).unwrap();
            assert!(s == 200 || s == 204, "append after recovery: {s} {b}");
            l.acked_log.insert(id.clone());
            let (s, b) = append_row(&addr, &id).unwrap();
            assert!(s == 200 || s == 204, "row after recovery: {s} {b}");
            l.acked_rows.insert(id);
        }
    }

    // Nothing acknowledged is lost across a kill, and the state is sound.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, addr) = start(&data);
    check_everything_acked_is_there(&addr, &ledger.lock().unwrap(), "after a restart");
    assert_eq!(ready(&addr).0, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    verify(&data, 1);
}
