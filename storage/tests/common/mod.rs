//! Helpers shared by the engine's behaviour tests: opening engines, building
//! requests, and reading whole streams back.
// Each test binary uses a different subset of these.
#![allow(dead_code, unused_imports)]

pub use std::collections::HashSet;
pub use std::time::Duration;

pub use futures::StreamExt;
pub use weir_storage::{
    now_ms, AppendRequest, AppendResult, Durability, Engine, EngineConfig, Error, FollowFrom,
    Follower, ProducerTag, ReadResult, Record, StreamConfig,
};

pub fn open(dir: &tempfile::TempDir) -> Engine {
    Engine::open(dir.path(), EngineConfig::default()).expect("open engine")
}

pub fn open_with(dir: &tempfile::TempDir, f: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut cfg = EngineConfig::default();
    f(&mut cfg);
    Engine::open(dir.path(), cfg).expect("open engine")
}

/// A stream with no content rules, for tests whose payloads are arbitrary text.
pub fn opaque() -> StreamConfig {
    StreamConfig::new("application/octet-stream")
}

pub fn recs(payloads: &[&str]) -> Vec<Record> {
    payloads
        .iter()
        .map(|p| Record::new(p.to_string()))
        .collect()
}

pub fn req(payloads: &[&str]) -> AppendRequest {
    AppendRequest {
        records: recs(payloads),
        ..Default::default()
    }
}

pub fn tagged(payloads: &[&str], id: &str, epoch: u64, seq: u64) -> AppendRequest {
    AppendRequest {
        records: recs(payloads),
        producer: Some(ProducerTag {
            id: id.to_string(),
            epoch,
            seq,
        }),
        ..Default::default()
    }
}

pub fn close_req() -> AppendRequest {
    AppendRequest {
        close: true,
        ..Default::default()
    }
}

/// (offset, key, payload) of every record of a read result.
pub fn flatten(r: &ReadResult) -> Vec<(u64, Option<Vec<u8>>, Vec<u8>)> {
    r.batches
        .iter()
        .flat_map(|b| {
            b.iter()
                .map(|x| (x.offset, x.key.map(<[u8]>::to_vec), x.payload.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every record of a stream, read to the tail in bounded steps, as (offset, payload).
pub fn read_all(e: &Engine, name: &str) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let r = e.read(name, from, 4096).expect("read");
        let recs = flatten(&r);
        for (o, _, p) in &recs {
            out.push((*o, p.clone()));
        }
        if r.up_to_date() {
            assert_eq!(r.next_offset, r.tail);
            return out;
        }
        assert!(!recs.is_empty(), "a read below the tail returned nothing");
        from = r.next_offset;
    }
}

pub fn payloads(v: &[(u64, Vec<u8>)]) -> Vec<String> {
    v.iter()
        .map(|(_, p)| String::from_utf8(p.clone()).unwrap())
        .collect()
}

pub fn assert_dense_from(v: &[(u64, Vec<u8>)], first: u64) {
    for (i, (o, _)) in v.iter().enumerate() {
        assert_eq!(*o, first + i as u64, "offsets are not dense");
    }
}

/// Engine config tweak: look for expired streams every 20 ms.
pub fn fast_reaper(c: &mut EngineConfig) {
    c.expiry_interval = Duration::from_millis(20);
}
