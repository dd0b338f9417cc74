//! Helpers shared by the QUIC integration tests (included with `#[path]`):
//! a real engine on a temporary directory and a real QUIC server on
//! 127.0.0.1. Compiled alone it is an empty test binary.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;
use weir_net::client::{Client, ClientConfig, Trust};
use weir_net::quic::{parse_fingerprint, ConnStatsHandle, QuicConfig, QuicServer};
use weir_storage::{Durability, Engine, EngineConfig};

pub fn engine(dir: &Path, follower_queue: usize) -> Engine {
    let config = EngineConfig {
        durability: Durability::Buffered,
        follower_queue,
        ..EngineConfig::default()
    };
    Engine::open(dir.join("db"), config).unwrap()
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub stats: ConnStatsHandle,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start(engine: Engine, dir: &Path, addr: SocketAddr) -> TestServer {
        Self::start_with(engine, dir, addr, |_| {}).await
    }

    /// A server on a free loopback port over a fresh engine in `dir`.
    pub async fn on_loopback(dir: &Path) -> TestServer {
        Self::start(engine(dir, 64), dir, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts with the configuration adjusted by `f`.
    pub async fn start_with(
        engine: Engine,
        dir: &Path,
        addr: SocketAddr,
        f: impl FnOnce(&mut QuicConfig),
    ) -> TestServer {
        let mut config = QuicConfig::new(addr, dir.to_path_buf());
        f(&mut config);
        config.shutdown_grace = Duration::from_secs(2);
        config.session.shutdown_grace = Duration::from_secs(1);
        // A restarted server on the same port may find the old socket still
        // draining its closed connections for a moment: retry briefly.
        let mut tries = 0;
        let server = loop {
            match QuicServer::bind(engine.clone(), config.clone()) {
                Ok(s) => break s,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot bind {addr}: {e}"),
            }
        };
        let addr = server.local_addr().unwrap();
        let fingerprint = server.fingerprint().to_string();
        let stats = server.connection_stats();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            fingerprint,
            stats,
            stop: Some(stop),
            task,
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        let fp = parse_fingerprint(&self.fingerprint).unwrap();
        let mut c = ClientConfig::new(self.addr, Trust::Fingerprint(fp));
        c.request_timeout = Duration::from_secs(20);
        c
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.client_config()).await.unwrap()
    }

    /// Whether the server task is still running (it never panicked).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic")
            .expect("server ran without error");
    }
}

/// A deterministic payload for record `i` of append `batch`.
pub fn payload(batch: usize, i: usize) -> Vec<u8> {
    format!("b{batch:06}-r{i:03}-payload").into_bytes()
}

/// FNV-1a over (offset, payload) pairs, to compare long sequences cheaply.
pub fn mix(h: &mut u64, offset: u64, payload: &[u8]) {
    for b in offset.to_le_bytes().iter().chain(payload) {
        *h ^= *b as u64;
        *h = h.wrapping_mul(0x100000001b3);
    }
}

pub const FNV_START: u64 = 0xcbf29ce484222325;

/// Hash of records `from..to` of `stream` as the engine stores them.
pub fn stored_hash(engine: &Engine, stream: &str, from: u64, to: u64) -> u64 {
    let mut h = FNV_START;
    let mut at = from;
    while at < to {
        let r = engine.read(stream, at, 1 << 20).unwrap();
        for b in &r.batches {
            for rec in b.iter() {
                if rec.offset < to {
                    mix(&mut h, rec.offset, rec.payload);
                }
            }
        }
        at = r.next_offset;
    }
    h
}
