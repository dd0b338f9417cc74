//! Resuming subscriptions: by hand from the last offset on a new
//! connection, and automatically in the client across a server restart.

#[path = "quic_support.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt;
use support::*;
use weir_net::client::{Client, Subscription};
use weir_net::proto::SubscribeFrom;
use weir_storage::Record;

async fn append_batches(client: &Client, stream: &str, from_batch: usize, batches: usize) {
    for b in from_batch..from_batch + batches {
        let records: Vec<Record> = (0..10).map(|i| Record::new(payload(b, i))).collect();
        client.append(stream, records).await.unwrap();
    }
}

/// Takes records from `sub` until offset `until`; returns the hash and
/// checks that they start at `from` and follow each other.
async fn take(sub: &mut Subscription, from: u64, until: u64) -> u64 {
    let mut h = FNV_START;
    let mut next = from;
    while next < until {
        let b = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .expect("subscriber stalled")
            .expect("subscription ended")
            .expect("subscription failed");
        for r in b.iter() {
            assert_eq!(r.offset, next);
            mix(&mut h, r.offset, r.payload);
            next += 1;
        }
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_from_the_last_offset_gets_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 1024);
    let server =
        TestServer::start(engine.clone(), dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let writer = server.client().await;
    writer.create("r", "text/plain").await.unwrap();
    append_batches(&writer, "r", 0, 30).await; // offsets 0..300

    let reader = server.client().await;
    let mut sub = reader.subscribe("r", SubscribeFrom::Start);
    take(&mut sub, 0, 120).await;
    let last = sub.next_offset().unwrap();
    assert_eq!(last, 120, "batches of 10 end on 120");
    drop(sub);
    reader.disconnect().await;

    append_batches(&writer, "r", 30, 20).await; // offsets 300..500
    let again = server.client().await;
    let mut sub = again.subscribe("r", SubscribeFrom::Offset(last));
    let got = take(&mut sub, last, 500).await;
    assert_eq!(got, stored_hash(&engine, "r", last, 500));
    // Nothing beyond: the next batch is the next append.
    append_batches(&writer, "r", 50, 1).await;
    let b = sub.next().await.unwrap().unwrap();
    assert_eq!(b.first_offset(), 500);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_subscription_and_producer_resume_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 1024);
    let server =
        TestServer::start(engine.clone(), dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let addr = server.addr;
    let fingerprint = server.fingerprint.clone();
    let config = server.client_config();
    let writer = Client::connect(config.clone()).await.unwrap();
    writer.create("life", "text/plain").await.unwrap();
    let producer = writer.producer("life", "p1", 0);
    for b in 0..10 {
        let records: Vec<Record> = (0..10).map(|i| Record::new(payload(b, i))).collect();
        producer.append(records).await.unwrap();
    }

    let reader = Client::connect(config).await.unwrap();
    let mut sub = reader.subscribe("life", SubscribeFrom::Start);
    let mut h = FNV_START;
    let mut next = 0;
    fn step(b: weir_storage::Batch, h: &mut u64, next: &mut u64) {
        for r in b.iter() {
            assert_eq!(r.offset, *next, "no gap or duplicate across the restart");
            mix(h, r.offset, r.payload);
            *next += 1;
        }
    }
    while next < 100 {
        step(sub.next().await.unwrap().unwrap(), &mut h, &mut next);
    }

    // Restart: the subscription gets Resume(ShuttingDown), the client
    // reconnects with backoff, and the reopened server reuses its
    // certificate, so the pinned fingerprint still matches.
    server.stop().await;
    let server = TestServer::start(engine.clone(), dir.path(), addr).await;
    assert_eq!(server.fingerprint, fingerprint);

    // The producer's connection is gone too; its appends go through after
    // reconnecting, each exactly once.
    for b in 10..20 {
        let records: Vec<Record> = (0..10).map(|i| Record::new(payload(b, i))).collect();
        let a = producer.append(records).await.unwrap();
        assert!(!a.duplicate);
    }
    while next < 200 {
        let b = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .expect("the subscription resumed")
            .unwrap()
            .unwrap();
        step(b, &mut h, &mut next);
    }
    assert_eq!(h, stored_hash(&engine, "life", 0, 200));
    assert!(sub.resubscriptions() >= 1);

    // A retried sequence is acknowledged as a duplicate and writes nothing.
    let dup = writer
        .append_with(weir_net::proto::Append {
            stream: "life".into(),
            producer: Some(weir_net::proto::Producer {
                id: "p1".into(),
                epoch: 0,
                seq: 19,
            }),
            close: false,
            records: vec![Record::new("again")],
        })
        .await
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(writer.head("life").await.unwrap().next_offset, 200);
    server.stop().await;
}

/// A subscription dropped while its stream is quiet is ended by the server
/// (the client's STOP_SENDING), so a client that keeps subscribing and
/// dropping never runs into the per-connection subscription limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_subscriptions_on_a_quiet_stream_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 1024);
    let server =
        TestServer::start(engine.clone(), dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let client = server.client().await;
    client.create("quiet", "text/plain").await.unwrap();
    append_batches(&client, "quiet", 0, 1).await; // offsets 0..10, then silence
                                                  // Twice the server's default limit of 256 subscriptions per connection.
    for round in 0..512 {
        let mut sub = client.subscribe("quiet", SubscribeFrom::Start);
        let b = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no batch"))
            .expect("subscription ended")
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!((b.first_offset(), b.len()), (0, 10), "round {round}");
        drop(sub);
    }
    server.stop().await;
}
