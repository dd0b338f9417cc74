//! dsload: the part of bench/compare/http/run that wrk cannot do well.
//!
//! * `create`: PUT one or more streams with a content type.
//! * `fill`: POST incompressible bodies of a fixed size to one stream, one
//!   request at a time, until it holds a given number of bytes.
//! * `read`: N connections, each reading the whole stream from offset `-1`
//!   page by page (following `Stream-Next-Offset` until `Stream-Up-To-Date:
//!   true`), over and over, for a fixed time. Body bytes are counted as they
//!   arrive and thrown away (no per-response buffering), so the client costs
//!   the same per byte whatever page size a server chooses.
//!
//! Blocking std-only HTTP/1.1 with keep-alive; Content-Length, chunked and
//! read-to-close bodies. Output is one line of `key=value` pairs.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const BUF: usize = 256 * 1024;
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug)]
enum Fail {
    Io(io::Error),
    Deadline,
    Proto(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Io(e) => write!(f, "io: {e}"),
            Fail::Deadline => write!(f, "deadline"),
            Fail::Proto(s) => write!(f, "protocol: {s}"),
        }
    }
}

struct Resp {
    status: u16,
    next_offset: Option<String>,
    up_to_date: bool,
    close: bool,
    body_bytes: u64,
}

struct Conn {
    sock: TcpStream,
    host: String,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    fn open(addr: &str) -> io::Result<Conn> {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Conn {
            sock,
            host: addr.to_string(),
            buf: vec![0; BUF],
            start: 0,
            end: 0,
        })
    }

    /// Reads more bytes after `end` (compacting first); errors at EOF, or
    /// with `Deadline` once `deadline` has passed while waiting.
    fn more(&mut self, deadline: Option<Instant>) -> Result<usize, Fail> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(Fail::Proto("line longer than the buffer".into()));
        }
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Fail::Deadline);
            }
            match self.sock.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(Fail::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    )))
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) =>
                {
                    // Requests have no time limit of their own: only the run's deadline.
                    if deadline.is_none() {
                        continue;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One line without its CRLF.
    fn line(&mut self, deadline: Option<Instant>) -> Result<String, Fail> {
        let mut scanned = 0;
        loop {
            let avail = &self.buf[self.start + scanned..self.end];
            if let Some(i) = avail.windows(2).position(|w| w == b"\r\n") {
                let stop = self.start + scanned + i;
                let s = String::from_utf8_lossy(&self.buf[self.start..stop]).into_owned();
                self.start = stop + 2;
                return Ok(s);
            }
            scanned = (self.end - self.start).saturating_sub(1);
            if scanned > MAX_HEAD {
                return Err(Fail::Proto("header line too long".into()));
            }
            self.more(deadline)?;
        }
    }

    /// Consumes `n` body bytes, adding each arrival to `*count`.
    fn skip(&mut self, mut n: u64, deadline: Option<Instant>, count: &mut u64) -> Result<(), Fail> {
        while n > 0 {
            if self.start == self.end {
                self.more(deadline)?;
            }
            let take = ((self.end - self.start) as u64).min(n) as usize;
            self.start += take;
            n -= take as u64;
            *count += take as u64;
        }
        Ok(())
    }

    /// Consumes everything to EOF (a body without a length).
    fn skip_to_eof(&mut self, deadline: Option<Instant>, count: &mut u64) -> Result<u64, Fail> {
        let mut total = (self.end - self.start) as u64;
        *count += total;
        self.start = self.end;
        loop {
            match self.more(deadline) {
                Ok(n) => {
                    total += n as u64;
                    *count += n as u64;
                    self.start = self.end;
                }
                Err(Fail::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request and reads its whole response; body bytes are
    /// counted into `*count` as they arrive and discarded.
    fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Option<Instant>,
        count: &mut u64,
    ) -> Result<Resp, Fail> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        if body.len() <= 64 * 1024 {
            let mut all = head.into_bytes();
            all.extend_from_slice(body);
            self.sock.write_all(&all)?;
        } else {
            self.sock.write_all(head.as_bytes())?;
            self.sock.write_all(body)?;
        }

        let status_line = self.line(deadline)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Fail::Proto(format!("bad status line {status_line:?}")))?;
        let mut close = version == "HTTP/1.0";
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut next_offset = None;
        let mut up_to_date = false;
        loop {
            let l = self.line(deadline)?;
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else {
                return Err(Fail::Proto(format!("bad header {l:?}")));
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = Some(v.parse().map_err(|_| Fail::Proto("bad content-length".into()))?)
                }
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                "stream-next-offset" => next_offset = Some(v.to_string()),
                "stream-up-to-date" => up_to_date = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        let no_body = method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
        let mut body_bytes = 0u64;
        if no_body {
        } else if chunked {
            loop {
                let l = self.line(deadline)?;
                let size = l.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16)
                    .map_err(|_| Fail::Proto(format!("bad chunk size {l:?}")))?;
                if size == 0 {
                    while !self.line(deadline)?.is_empty() {}
                    break;
                }
                self.skip(size, deadline, count)?;
                body_bytes += size;
                if !self.line(deadline)?.is_empty() {
                    return Err(Fail::Proto("chunk not followed by CRLF".into()));
                }
            }
        } else if let Some(n) = length {
            self.skip(n, deadline, count)?;
            body_bytes = n;
        } else {
            body_bytes = self.skip_to_eof(deadline, count)?;
            close = true;
        }
        Ok(Resp {
            status,
            next_offset,
            up_to_date,
            close,
            body_bytes,
        })
    }
}

fn pct(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

struct Args {
    addr: String,
    paths: Vec<String>,
    content_type: String,
    conns: usize,
    secs: f64,
    body_bytes: usize,
    total_bytes: u64,
    expect_bytes: u64,
}

fn parse_args(rest: &[String]) -> Args {
    let mut a = Args {
        addr: "127.0.0.1:4437".into(),
        paths: Vec::new(),
        content_type: "application/octet-stream".into(),
        conns: 16,
        secs: 10.0,
        body_bytes: 1 << 20,
        total_bytes: 256 << 20,
        expect_bytes: 0,
    };
    let mut it = rest.iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().cloned().unwrap_or_else(|| die(&format!("{k} needs a value")));
        match k.as_str() {
            "--addr" => a.addr = v(),
            "--content-type" => a.content_type = v(),
            "--conns" => a.conns = v().parse().unwrap_or_else(|_| die("bad --conns")),
            "--secs" => a.secs = v().parse().unwrap_or_else(|_| die("bad --secs")),
            "--body-bytes" => a.body_bytes = v().parse().unwrap_or_else(|_| die("bad --body-bytes")),
            "--total-bytes" => a.total_bytes = v().parse().unwrap_or_else(|_| die("bad --total-bytes")),
            "--expect-bytes" => a.expect_bytes = v().parse().unwrap_or_else(|_| die("bad --expect-bytes")),
            p if p.starts_with('/') => a.paths.push(p.to_string()),
            other => die(&format!("unknown argument {other}")),
        }
    }
    if a.paths.is_empty() {
        die("give at least one stream path (starting with /)");
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("dsload: {msg}");
    eprintln!(
        "usage: dsload create|fill|read --addr HOST:PORT [--content-type CT] [--conns N] [--secs S] \
         [--body-bytes B] [--total-bytes T] [--expect-bytes T] /stream/path..."
    );
    std::process::exit(2)
}

fn create(a: &Args) {
    let mut c = Conn::open(&a.addr).unwrap_or_else(|e| die(&format!("connect {}: {e}", a.addr)));
    let mut sink = 0;
    for p in &a.paths {
        let r = c
            .request("PUT", p, &[("Content-Type", &a.content_type)], &[], Some(soon()), &mut sink)
            .unwrap_or_else(|e| die(&format!("PUT {p}: {e}")));
        if r.status != 201 && r.status != 200 {
            die(&format!("PUT {p}: status {}", r.status));
        }
        if r.close {
            c = Conn::open(&a.addr).unwrap_or_else(|e| die(&format!("connect: {e}")));
        }
    }
    println!("created={}", a.paths.len());
}

/// The time limit of one setup request (create, fill).
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// xorshift64* bytes: incompressible, so no server gains from compression.
fn noise(seed: &mut u64, out: &mut [u8]) {
    for chunk in out.chunks_mut(8) {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        let v = seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn fill(a: &Args) {
    let path = &a.paths[0];
    let mut c = Conn::open(&a.addr).unwrap_or_else(|e| die(&format!("connect {}: {e}", a.addr)));
    let mut body = vec![0u8; a.body_bytes];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut sent = 0u64;
    let mut sink = 0;
    let t0 = Instant::now();
    let mut n = 0u64;
    while sent < a.total_bytes {
        let len = (a.total_bytes - sent).min(a.body_bytes as u64) as usize;
        noise(&mut seed, &mut body[..len]);
        let r = c
            .request("POST", path, &[("Content-Type", &a.content_type)], &body[..len], Some(soon()), &mut sink)
            .unwrap_or_else(|e| die(&format!("POST {path}: {e}")));
        if !(200..300).contains(&r.status) {
            die(&format!("POST {path}: status {}", r.status));
        }
        if r.close {
            c = Conn::open(&a.addr).unwrap_or_else(|e| die(&format!("connect: {e}")));
        }
        sent += len as u64;
        n += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "appends={n} bytes={sent} secs={secs:.3} mbps={:.1}",
        sent as f64 / secs / 1e6
    );
}

#[derive(Default)]
struct Tally {
    requests: u64,
    bytes: u64,
    done_bytes: u64,
    errors: u64,
    non2xx: u64,
    passes: u64,
    bad_passes: u64,
    lat_us: Vec<u32>,
    first_error: Option<String>,
}

fn read_worker(addr: String, path: String, expect: u64, start: Arc<Barrier>, secs: f64) -> Tally {
    let mut t = Tally::default();
    let mut conn = Conn::open(&addr).ok();
    start.wait();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut offset = "-1".to_string();
    let mut pass_bytes = 0u64;
    let note = |t: &mut Tally, e: String| {
        t.errors += 1;
        t.first_error.get_or_insert(e);
    };
    while Instant::now() < deadline {
        let Some(c) = conn.as_mut() else {
            match Conn::open(&addr) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    note(&mut t, format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            continue;
        };
        let target = format!("{path}?offset={}", pct(&offset));
        let t0 = Instant::now();
        match c.request("GET", &target, &[], &[], Some(deadline), &mut t.bytes) {
            Ok(r) => {
                t.lat_us.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if r.close {
                    conn = None;
                }
                if !(200..300).contains(&r.status) {
                    t.non2xx += 1;
                    offset = "-1".into();
                    pass_bytes = 0;
                    continue;
                }
                t.requests += 1;
                t.done_bytes += r.body_bytes;
                pass_bytes += r.body_bytes;
                let next = r.next_offset.unwrap_or_default();
                if r.up_to_date || next.is_empty() || next == offset || r.body_bytes == 0 {
                    t.passes += 1;
                    if expect > 0 && pass_bytes != expect {
                        t.bad_passes += 1;
                    }
                    offset = "-1".into();
                    pass_bytes = 0;
                } else {
                    offset = next;
                }
            }
            Err(Fail::Deadline) => break,
            Err(e) => {
                note(&mut t, e.to_string());
                conn = None;
                offset = "-1".into();
                pass_bytes = 0;
            }
        }
    }
    t
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn read(a: &Args) {
    let start = Arc::new(Barrier::new(a.conns + 1));
    let handles: Vec<_> = (0..a.conns)
        .map(|i| {
            let (addr, path, start) = (a.addr.clone(), a.paths[i % a.paths.len()].clone(), start.clone());
            let (expect, secs) = (a.expect_bytes, a.secs);
            std::thread::spawn(move || read_worker(addr, path, expect, start, secs))
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let mut all = Tally::default();
    for h in handles {
        let t = h.join().expect("reader thread panicked");
        all.requests += t.requests;
        all.bytes += t.bytes;
        all.done_bytes += t.done_bytes;
        all.errors += t.errors;
        all.non2xx += t.non2xx;
        all.passes += t.passes;
        all.bad_passes += t.bad_passes;
        all.lat_us.extend(t.lat_us);
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    // Readers stop at the deadline even mid-response, so the window is `secs`.
    let secs = a.secs.max(t0.elapsed().as_secs_f64().min(a.secs));
    all.lat_us.sort_unstable();
    println!(
        "requests={} bytes={} done_bytes={} secs={secs:.3} rps={:.1} mbps={:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} \
         p999_ms={:.3} errors={} non2xx={} passes={} bad_passes={} first_error={:?}",
        all.requests,
        all.bytes,
        all.done_bytes,
        all.requests as f64 / secs,
        all.bytes as f64 / secs / 1e6,
        percentile(&all.lat_us, 50.0),
        percentile(&all.lat_us, 90.0),
        percentile(&all.lat_us, 99.0),
        percentile(&all.lat_us, 99.9),
        all.errors,
        all.non2xx,
        all.passes,
        all.bad_passes,
        all.first_error.unwrap_or_default(),
    );
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let Some(cmd) = argv.get(1) else { die("missing command") };
    let a = parse_args(&argv[2..]);
    match cmd.as_str() {
        "create" => create(&a),
        "fill" => fill(&a),
        "read" => read(&a),
        other => die(&format!("unknown command {other}")),
    }
}
