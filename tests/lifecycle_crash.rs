//! Crash safety of lifecycle operations: `weir serve` is SIGKILLed while
//! clients create streams (empty, with initial records, created closed),
//! fork them (at an offset or at the tail, with and without records of
//! their own), append, close (with and without a final record) and delete
//! them, parents with forks and the last forks of soft-deleted parents
//! included, so that deletes cascade. Each client owns its families (a root
//! and its forks) for a round and keeps an exact model of what the server
//! acknowledged. After every kill `weir verify` passes, and after every
//! restart:
//! - the operation each client had in flight (sent, no answer) happened
//!   entirely or not at all: a create or fork is absent or has all its
//!   records, an append or close added all its records or none, a close
//!   closed the stream with its final record or did neither, a delete
//!   removed the stream (or soft-deleted it, when it has forks) or left it
//!   whole; the model takes whichever the server shows;
//! - every stream reads exactly its modelled records (a fork: its parent's
//!   records below the fork offset, then its own), `HEAD` shows its tail
//!   and `Stream-Closed: true` exactly when it was closed, and appending to
//!   a closed stream answers 409;
//! - a deleted stream with forks answers 410 Gone (and its name is still
//!   reserved), a deleted stream without forks answers 404, and so does a
//!   soft-deleted parent once all of its forks are deleted (the cascade);
//!   a gone name can be created again, once, as a fresh empty stream.
//!
//! Choices are drawn from a seeded generator (`LIFECYCLE_CRASH_SEED`
//! overrides it); which operations get acknowledged depends on when the
//! kill lands, and every check follows from the acknowledgements.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

use support::{start, verify};

const ROUNDS: usize = 12;
const CLIENTS: usize = 3;
const SEED: u64 = 0x11fe_c7c1_e5ee_d001;
/// Forks are not stacked deeper than this (the engine's cap is 32).
const MAX_DEPTH: usize = 6;
/// Streams per family, so families keep being created and collected.
const MAX_FAMILY: usize = 10;
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Kills the server when the test ends, passing or not.
struct Server(Child);

impl Server {
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL the server");
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection; `None` when the server is
/// gone (refused, reset, or closed before the whole answer arrived).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Answer> {
    let raw = support::exchange(addr, method, path, headers, body)?;
    let (head, rest) = raw.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.get(9..12)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match len {
            // A body cut short by the kill is no answer.
            Some(n) if rest.len() < n => return None,
            Some(n) => rest[..n].to_string(),
            None => rest.to_string(),
        }
    };
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// A chunked body, or `None` when it ends before its last chunk.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

fn path(name: &str) -> String {
    format!("/v1/stream/{name}")
}

fn offset(o: usize) -> String {
    format!("{:016}_{:016}", 0, o)
}

fn body(records: &[String]) -> String {
    if records.is_empty() {
        String::new()
    } else {
        serde_json::to_string(records).unwrap()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Live,
    /// Deleted while forks read it: 410 Gone, name reserved.
    Soft,
    /// Removed for good: 404.
    Gone,
}

/// What the server acknowledged about one stream.
#[derive(Clone, Debug)]
struct Model {
    records: Vec<String>,
    closed: bool,
    parent: Option<String>,
    depth: usize,
    /// Forks not yet hard-deleted.
    forks: BTreeSet<String>,
    life: Life,
    /// For a parent collected in cascade: the fork whose delete collected
    /// it, and whether that delete was acknowledged or in flight at a kill.
    collected_by: Option<(String, &'static str)>,
    /// Whether the gone name was created again once.
    reused: bool,
}

/// A root and its forks, by name.
type Family = BTreeMap<String, Model>;
/// Families by the name of their root.
type World = BTreeMap<String, Family>;

#[derive(Clone, Debug)]
enum Op {
    Create {
        name: String,
        records: Vec<String>,
        closed: bool,
    },
    Fork {
        name: String,
        parent: String,
        /// `None`: at the parent's tail (no `Stream-Fork-Offset`).
        at: Option<usize>,
        records: Vec<String>,
    },
    Append {
        name: String,
        records: Vec<String>,
    },
    Close {
        name: String,
        records: Vec<String>,
    },
    Delete {
        name: String,
    },
}

impl Op {
    fn family<'a>(&'a self, world: &'a World) -> &'a str {
        let name = match self {
            Op::Create { name, .. } => return name,
            Op::Fork { parent, .. } => parent,
            Op::Append { name, .. } | Op::Close { name, .. } | Op::Delete { name } => name,
        };
        world
            .iter()
            .find(|(_, f)| f.contains_key(name))
            .map(|(k, _)| k.as_str())
            .expect("an operation on a modelled stream")
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::Create { records, .. } if records.is_empty() => "create",
            Op::Create { .. } => "create with records",
            Op::Fork { .. } => "fork",
            Op::Append { .. } => "append",
            Op::Close { .. } => "close",
            Op::Delete { .. } => "delete",
        }
    }
}

/// The records a fork reads: its parent's below the fork offset, then its own.
fn fork_records(family: &Family, parent: &str, at: Option<usize>, own: &[String]) -> Vec<String> {
    let p = &family[parent].records;
    let at = at.unwrap_or(p.len());
    p[..at].iter().chain(own).cloned().collect()
}

const ACKED: &str = "acknowledged";
const IN_FLIGHT: &str = "in flight at the kill, found done after the restart";

/// Applies an operation that happened (`how`: [`ACKED`] or [`IN_FLIGHT`])
/// to the model; returns the streams a delete collected in cascade.
fn apply(family: &mut Family, op: &Op, how: &'static str) -> Vec<String> {
    match op {
        Op::Create {
            name,
            records,
            closed,
        } => {
            family.insert(
                name.clone(),
                Model {
                    records: records.clone(),
                    closed: *closed,
                    parent: None,
                    depth: 0,
                    forks: BTreeSet::new(),
                    life: Life::Live,
                    collected_by: None,
                    reused: false,
                },
            );
        }
        Op::Fork {
            name,
            parent,
            at,
            records,
        } => {
            let m = Model {
                records: fork_records(family, parent, *at, records),
                closed: false,
                parent: Some(parent.clone()),
                depth: family[parent].depth + 1,
                forks: BTreeSet::new(),
                life: Life::Live,
                collected_by: None,
                reused: false,
            };
            family.get_mut(parent).unwrap().forks.insert(name.clone());
            family.insert(name.clone(), m);
        }
        Op::Append { name, records } => {
            family
                .get_mut(name)
                .unwrap()
                .records
                .extend(records.iter().cloned());
        }
        Op::Close { name, records } => {
            let m = family.get_mut(name).unwrap();
            m.records.extend(records.iter().cloned());
            m.closed = true;
        }
        Op::Delete { name } => {
            let m = family.get_mut(name).unwrap();
            if !m.forks.is_empty() {
                m.life = Life::Soft;
                return Vec::new();
            }
            m.life = Life::Gone;
            let mut collected = Vec::new();
            let mut child = name.clone();
            while let Some(p) = family[&child].parent.clone() {
                let pm = family.get_mut(&p).unwrap();
                pm.forks.remove(&child);
                if pm.life != Life::Soft || !pm.forks.is_empty() {
                    break;
                }
                pm.life = Life::Gone;
                pm.collected_by = Some((name.clone(), how));
                collected.push(p.clone());
                child = p;
            }
            return collected;
        }
    }
    Vec::new()
}

/// The request of an operation and the status that acknowledges it.
fn send(addr: &str, op: &Op) -> (Option<Answer>, u16) {
    match op {
        Op::Create {
            name,
            records,
            closed,
        } => {
            let mut h = vec![JSON];
            if *closed {
                h.push(("Stream-Closed", "true"));
            }
            (http(addr, "PUT", &path(name), &h, &body(records)), 201)
        }
        Op::Fork {
            name,
            parent,
            at,
            records,
        } => {
            let from = path(parent);
            let at = at.map(offset);
            let mut h = vec![JSON, ("Stream-Forked-From", from.as_str())];
            if let Some(at) = &at {
                h.push(("Stream-Fork-Offset", at.as_str()));
            }
            (http(addr, "PUT", &path(name), &h, &body(records)), 201)
        }
        Op::Append { name, records } => (
            http(addr, "POST", &path(name), &[JSON], &body(records)),
            204,
        ),
        Op::Close { name, records } => (
            http(
                addr,
                "POST",
                &path(name),
                &[JSON, ("Stream-Closed", "true")],
                &body(records),
            ),
            204,
        ),
        Op::Delete { name } => (http(addr, "DELETE", &path(name), &[], ""), 204),
    }
}

/// Draws the next operation of a client on its families.
fn choose(rng: &mut Rng, world: &World, round: usize, client: usize, n: &mut usize) -> Op {
    *n += 1;
    let new_name = format!("lc/{round}-{client}-{n}");
    let records = |rng: &mut Rng, name: &str, from: usize, most: usize| -> Vec<String> {
        (0..rng.below(most + 1))
            .map(|i| format!("{name}#{}", from + i))
            .collect()
    };
    let active: Vec<&String> = world
        .iter()
        .filter(|(_, f)| f.values().any(|m| m.life == Life::Live))
        .map(|(k, _)| k)
        .collect();
    if active.len() < 2 || rng.chance(12) {
        let records = if rng.chance(60) {
            let mut r = records(rng, &new_name, 0, 3);
            r.push(format!("{new_name}#{}", r.len()));
            r
        } else {
            Vec::new()
        };
        return Op::Create {
            name: new_name,
            records,
            closed: rng.chance(10),
        };
    }
    let family = &world[*rng.pick(&active)];
    let live: Vec<(&String, &Model)> = family
        .iter()
        .filter(|(_, m)| m.life == Life::Live)
        .collect();
    let open: Vec<&(&String, &Model)> = live.iter().filter(|(_, m)| !m.closed).collect();
    let forkable: Vec<&(&String, &Model)> = live
        .iter()
        .filter(|(_, m)| m.depth < MAX_DEPTH && family.len() < MAX_FAMILY)
        .collect();
    let roll = rng.below(100);
    if roll < 35 && !forkable.is_empty() {
        let (parent, pm) = rng.pick(&forkable);
        let at = (!rng.chance(20)).then(|| rng.below(pm.records.len() + 1));
        return Op::Fork {
            name: new_name.clone(),
            parent: parent.to_string(),
            at,
            records: records(rng, &new_name, 0, 2),
        };
    }
    if roll < 60 && !open.is_empty() {
        let (name, m) = rng.pick(&open);
        let mut recs = records(rng, name, m.records.len(), 2);
        if roll < 50 {
            // An append has at least one record.
            recs.push(format!("{name}#{}", m.records.len() + recs.len()));
            return Op::Append {
                name: name.to_string(),
                records: recs,
            };
        }
        return Op::Close {
            name: name.to_string(),
            records: recs,
        };
    }
    // Deletes: half of them, where there is one, the fork of a soft-deleted
    // parent, so that cascades happen.
    let of_soft: Vec<&(&String, &Model)> = live
        .iter()
        .filter(|(_, m)| {
            m.parent
                .as_ref()
                .is_some_and(|p| family[p].life == Life::Soft)
        })
        .collect();
    let name = if !of_soft.is_empty() && rng.chance(50) {
        rng.pick(&of_soft).0
    } else {
        rng.pick(&live).0
    };
    Op::Delete {
        name: name.to_string(),
    }
}

#[derive(Default, Debug)]
struct Tally {
    acked: BTreeMap<&'static str, usize>,
    soft_deletes: usize,
    cascades: usize,
}

/// Runs operations on `world` (this client's families) until the server is
/// gone; returns the families, the operation left in flight, and the tally.
fn client(
    addr: String,
    mut world: World,
    mut rng: Rng,
    round: usize,
    id: usize,
) -> (World, Option<Op>, Tally) {
    let mut tally = Tally::default();
    let mut n = 0;
    loop {
        let op = choose(&mut rng, &world, round, id, &mut n);
        let (answer, want) = send(&addr, &op);
        let Some(a) = answer else {
            return (world, Some(op), tally);
        };
        assert_eq!(
            a.status, want,
            "round {round}: {op:?} answered {} {:?}",
            a.status, a.body
        );
        let key = op.family(&world).to_string();
        let family = world.entry(key).or_default();
        let soft = matches!(&op, Op::Delete { name } if !family[name].forks.is_empty());
        let collected = apply(family, &op, ACKED);
        if let Op::Create { name, .. }
        | Op::Fork { name, .. }
        | Op::Append { name, .. }
        | Op::Close { name, .. } = &op
        {
            let tail = family[name].records.len();
            assert_eq!(
                a.header("stream-next-offset"),
                Some(offset(tail).as_str()),
                "round {round}: the answer to {op:?} names the new tail"
            );
        }
        *tally.acked.entry(op.kind()).or_default() += 1;
        tally.soft_deletes += usize::from(soft);
        tally.cascades += collected.len();
    }
}

/// GET from the start: the status and, when 200, the records.
fn read(addr: &str, name: &str) -> (u16, Vec<String>) {
    let a =
        http(addr, "GET", &format!("{}?offset=-1", path(name)), &[], "").expect("server answers");
    if a.status != 200 {
        return (a.status, Vec::new());
    }
    assert_eq!(
        a.header("stream-up-to-date"),
        Some("true"),
        "{name}: one page"
    );
    let records =
        serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{name}: {e}: {:?}", a.body));
    (a.status, records)
}

/// HEAD: the status, the closed flag and the tail header.
fn head(addr: &str, name: &str) -> (u16, bool, Option<String>) {
    let a = http(addr, "HEAD", &path(name), &[], "").expect("server answers");
    let closed = a.header("stream-closed") == Some("true");
    (
        a.status,
        closed,
        a.header("stream-next-offset").map(str::to_string),
    )
}

fn torn(round: usize, op: &Op, what: &str) -> ! {
    panic!("round {round}: in-flight {op:?} is only partly there: {what}")
}

/// Decides from what the restarted server shows whether the operation left
/// in flight happened; it must have happened whole or not at all.
fn happened(addr: &str, family: &Family, op: &Op, round: usize) -> bool {
    let partial = |what: String| -> bool { torn(round, op, &what) };
    match op {
        Op::Create {
            name,
            records,
            closed,
        } => match read(addr, name) {
            (404, _) => false,
            (200, got) if got == *records => {
                if head(addr, name).1 != *closed {
                    partial("the stream exists with the wrong closed flag".into());
                }
                true
            }
            (s, got) => partial(format!("{s} with {got:?}")),
        },
        Op::Fork {
            name,
            parent,
            at,
            records,
        } => match read(addr, name) {
            (404, _) => false,
            (200, got) if got == fork_records(family, parent, *at, records) => true,
            (s, got) => partial(format!("{s} with {got:?}")),
        },
        Op::Append { name, records } => {
            let before = &family[name].records;
            let after: Vec<String> = before.iter().chain(records).cloned().collect();
            match read(addr, name) {
                (200, got) if got == *before => false,
                (200, got) if got == after => true,
                (s, got) => partial(format!("{s} with {got:?}")),
            }
        }
        Op::Close { name, records } => {
            let before = &family[name].records;
            let after: Vec<String> = before.iter().chain(records).cloned().collect();
            let (s, got) = read(addr, name);
            let closed = head(addr, name).1;
            match (s, closed) {
                (200, false) if got == *before => false,
                (200, true) if got == after => true,
                _ => partial(format!("{s}, closed {closed}, with {got:?}")),
            }
        }
        Op::Delete { name } => {
            let m = &family[name];
            match read(addr, name) {
                (200, got) if got == m.records => false,
                (410, _) if !m.forks.is_empty() => true,
                (404, _) if m.forks.is_empty() => true,
                (s, got) => partial(format!(
                    "{s} with {got:?} for a stream with forks {:?}",
                    m.forks
                )),
            }
        }
    }
}

/// Checks every modelled stream against the server.
fn check(addr: &str, world: &mut World, round: usize) {
    for family in world.values_mut() {
        for (name, m) in family.iter_mut() {
            match m.life {
                Life::Live => {
                    let (s, got) = read(addr, name);
                    assert_eq!(
                        s, 200,
                        "round {round}: {name} answers {s}, expected its records"
                    );
                    assert_eq!(
                        got, m.records,
                        "round {round}: the records of {name} ({m:?})"
                    );
                    let (s, closed, tail) = head(addr, name);
                    assert_eq!(s, 200, "round {round}: HEAD {name}");
                    assert_eq!(closed, m.closed, "round {round}: Stream-Closed of {name}");
                    assert_eq!(
                        tail,
                        Some(offset(m.records.len())),
                        "round {round}: tail of {name}"
                    );
                    if m.closed {
                        let a = http(addr, "POST", &path(name), &[JSON], r#"["late"]"#)
                            .expect("server answers");
                        assert_eq!(
                            a.status, 409,
                            "round {round}: append to closed {name}: {:?}",
                            a.body
                        );
                    }
                }
                Life::Soft => {
                    let (s, _) = read(addr, name);
                    assert_eq!(
                        s, 410,
                        "round {round}: {name} was deleted while forks {:?} read it: expected 410 Gone",
                        m.forks
                    );
                    assert_eq!(head(addr, name).0, 410, "round {round}: HEAD {name}");
                    let a = http(addr, "PUT", &path(name), &[JSON], "").expect("server answers");
                    assert_eq!(
                        a.status, 409,
                        "round {round}: the name of soft-deleted {name} is reserved"
                    );
                }
                Life::Gone => {
                    let (s, _) = read(addr, name);
                    let why = match &m.collected_by {
                        Some((fork, how)) => format!(
                            "it was soft-deleted and the delete of its last fork {fork} ({how}) collects it in cascade"
                        ),
                        None => "it was deleted".to_string(),
                    };
                    if s != 404 {
                        // Can a client still remove it?
                        let again = http(addr, "DELETE", &path(name), &[], "").map(|a| a.status);
                        panic!(
                            "round {round}: {name} answers {s}, expected 404: {why}; \
                             DELETE {name} now answers {again:?}"
                        );
                    }
                    if !m.reused {
                        let a =
                            http(addr, "PUT", &path(name), &[JSON], "").expect("server answers");
                        assert_eq!(
                            a.status, 201,
                            "round {round}: {name} can be created again ({why}): {:?}",
                            a.body
                        );
                        assert_eq!(
                            read(addr, name),
                            (200, Vec::new()),
                            "round {round}: {name} created again is empty"
                        );
                        let a = http(addr, "DELETE", &path(name), &[], "").expect("server answers");
                        assert_eq!(a.status, 204, "round {round}: delete {name} again");
                        m.reused = true;
                    }
                }
            }
        }
    }
}

#[test]
fn lifecycle_operations_survive_sigkill_whole_or_not_at_all() {
    let seed = std::env::var("LIFECYCLE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (child, mut addr) = start(dir.path());
    let mut server = Server(child);
    let mut world = World::new();
    let mut total = Tally::default();
    let (mut in_flight, mut in_flight_happened) = (0, 0);
    for round in 0..ROUNDS {
        // Each client gets every CLIENTS-th family with a live stream.
        let mut parts: Vec<World> = (0..CLIENTS).map(|_| World::new()).collect();
        let active: Vec<String> = world
            .iter()
            .filter(|(_, f)| f.values().any(|m| m.life == Life::Live))
            .map(|(k, _)| k.clone())
            .collect();
        for (i, k) in active.into_iter().enumerate() {
            let f = world.remove(&k).unwrap();
            parts[i % CLIENTS].insert(k, f);
        }
        let threads: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(id, part)| {
                let addr = addr.clone();
                let rng =
                    Rng(seed ^ ((round * CLIENTS + id) as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
                std::thread::spawn(move || client(addr, part, rng, round, id))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + (round as u64 * 71) % 250));
        server.kill();
        let mut pending = Vec::new();
        for t in threads {
            let (part, op, tally) = t.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            world.extend(part);
            pending.extend(op);
            for (k, v) in tally.acked {
                *total.acked.entry(k).or_default() += v;
            }
            total.soft_deletes += tally.soft_deletes;
            total.cascades += tally.cascades;
        }
        verify(dir.path(), 0);

        let (child, a) = start(dir.path());
        server = Server(child);
        addr = a;
        for op in pending {
            in_flight += 1;
            let key = op.family(&world).to_string();
            let mut family = world.remove(&key).unwrap_or_default();
            if happened(&addr, &family, &op, round) {
                in_flight_happened += 1;
                apply(&mut family, &op, IN_FLIGHT);
            }
            if !family.is_empty() {
                world.insert(key, family);
            }
        }
        check(&addr, &mut world, round);
    }
    server.kill();
    let streams: usize = world.values().map(BTreeMap::len).sum();
    eprintln!(
        "{ROUNDS} rounds in {:?}: acknowledged {:?}, {} soft deletes, {} collected in cascade; \
         {in_flight_happened} of {in_flight} operations in flight at a kill had happened; {streams} streams modelled",
        started.elapsed(),
        total.acked,
        total.soft_deletes,
        total.cascades,
    );
    for kind in [
        "create",
        "create with records",
        "fork",
        "append",
        "close",
        "delete",
    ] {
        assert!(
            total.acked.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} was acknowledged: {total:?}"
        );
    }
    assert!(total.soft_deletes > 0 && total.cascades > 0, "{total:?}");
}
