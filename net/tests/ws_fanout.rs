//! Fan-out over the WebSocket door: many subscribers on their own
//! connections each get every appended record exactly once, in order.

mod common;
mod ws_support;

use std::time::{Duration, Instant};

use common::Server;
use weir_net::http::HttpConfig;
use weir_net::proto::Message;
use ws_support::*;

const SUBSCRIBERS: usize = 100;
const RECORDS: u64 = 100_000;
const BATCH: u64 = 100;
const PAYLOAD: usize = 24;

/// Reads `Data` frames of subscription `id` until `RECORDS` records came,
/// checking that each record is the next offset with its expected payload.
async fn follow(mut ws: Socket, id: u32) -> u64 {
    let mut next_offset = 0u64;
    while next_offset < RECORDS {
        let f = frame(&mut ws).await;
        assert_eq!(f.request_id, id, "a frame of another request: {f:?}");
        let Message::Data(b) = f.message else {
            panic!("expected Data, got {:?}", f.message)
        };
        for r in b.iter() {
            assert_eq!(r.offset, next_offset, "gap or duplicate");
            assert_eq!(r.payload, payload(r.offset, PAYLOAD).as_slice());
            next_offset += 1;
        }
    }
    next_offset
}

#[tokio::test(flavor = "multi_thread")]
async fn every_subscriber_gets_every_record_once_in_order() {
    let s = Server::start(HttpConfig::default()).await;
    let mut writer = binary_client(&s.base).await;
    send(&mut writer, 2, create("fan")).await;
    assert!(matches!(
        frame(&mut writer).await.message,
        Message::Created(_)
    ));

    // Subscribe everyone before the first append, so most records reach
    // them live and the slowest catch up from storage.
    let mut subs = Vec::new();
    for n in 0..SUBSCRIBERS {
        let mut ws = binary_client(&s.base).await;
        let id = 7 + n as u32;
        send(&mut ws, id, subscribe("fan")).await;
        let f = frame(&mut ws).await;
        assert_eq!(f.request_id, id);
        assert!(matches!(f.message, Message::Subscribed(ref x) if x.fence == 0));
        subs.push(tokio::spawn(follow(ws, id)));
    }

    let started = Instant::now();
    append_all(&mut writer, "fan", RECORDS, BATCH, PAYLOAD).await;
    let appended = started.elapsed();
    for sub in subs {
        let got = tokio::time::timeout(Duration::from_secs(120), sub)
            .await
            .expect("subscriber finished in time")
            .expect("subscriber task");
        assert_eq!(got, RECORDS);
    }
    let total = started.elapsed();
    eprintln!(
        "ws fan-out: {RECORDS} records x {SUBSCRIBERS} subscribers; appended in {appended:?}, delivered in {total:?}"
    );
}
