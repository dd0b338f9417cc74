//! A subscriber that never reads holds only its own connection's bounded
//! send buffer: the others keep receiving at full speed, and the server
//! closes the silent one once it stops answering for the idle timeout.

mod common;
mod ws_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use weir_net::http::HttpConfig;
use weir_net::proto::Message;
use weir_net::ws::{OutputBudget, WsConfig};
use ws_support::*;

const RECORDS: u64 = 100_000;
const BATCH: u64 = 100;
/// 100k records of 200 bytes: 20 MB, far beyond the socket buffers and the
/// 256 KiB send budget of the silent subscriber's connection.
const PAYLOAD: usize = 200;

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_never_reads_does_not_stop_others() {
    // Every queued outgoing message of the door is counted here.
    let queued = OutputBudget::new(256 << 20);
    let s = Server::start(HttpConfig {
        ws: WsConfig {
            send_buffer_bytes: 256 << 10,
            ping_interval: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(2),
            output_budget: Arc::clone(&queued),
            ..WsConfig::default()
        },
        ..HttpConfig::default()
    })
    .await;
    let mut writer = binary_client(&s.base).await;
    send(&mut writer, 2, create("slow")).await;
    assert!(matches!(
        frame(&mut writer).await.message,
        Message::Created(_)
    ));

    // The silent subscriber: subscribes, then never reads again. Until the
    // others are done it sends pings (sending needs no reading), so the
    // server keeps it: the idle timeout cannot be what frees the others.
    let mut silent = binary_client(&s.base).await;
    send(&mut silent, 3, subscribe("slow")).await;
    let alive = Arc::new(AtomicBool::new(true));
    let keep_alive = tokio::spawn({
        let alive = Arc::clone(&alive);
        async move {
            while alive.load(Ordering::Relaxed) {
                silent.send(WsMessage::Ping(Bytes::new())).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            silent
        }
    });

    let mut fast = Vec::new();
    for n in 0..3u32 {
        let mut ws = binary_client(&s.base).await;
        send(&mut ws, 10 + n, subscribe("slow")).await;
        assert!(matches!(
            frame(&mut ws).await.message,
            Message::Subscribed(_)
        ));
        fast.push(tokio::spawn(async move {
            let mut next_offset = 0;
            while next_offset < RECORDS {
                let f = frame(&mut ws).await;
                assert_eq!(f.request_id, 10 + n);
                let Message::Data(b) = f.message else {
                    panic!("{:?}", f.message)
                };
                for r in b.iter() {
                    assert_eq!(r.offset, next_offset);
                    assert_eq!(r.payload, payload(r.offset, PAYLOAD).as_slice());
                    next_offset += 1;
                }
            }
        }));
    }

    let started = Instant::now();
    append_all(&mut writer, "slow", RECORDS, BATCH, PAYLOAD).await;
    for f in fast {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("fast subscribers finished")
            .unwrap();
    }
    let took = started.elapsed();
    eprintln!("3 fast subscribers got 20 MB each in {took:?} beside a silent one");
    // The silent one was there all along, its send buffer full.
    let held = queued.used();
    assert!(
        held >= 128 << 10,
        "the silent subscriber holds its send buffer ({held} bytes queued)"
    );

    // Now the silent peer answers nothing, so the server gives up on it:
    // it drops the connection and its queue. What it finds when it finally
    // reads is a prefix of the stream, in order, then the end of the
    // connection.
    alive.store(false, Ordering::Relaxed);
    let mut silent = keep_alive.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while queued.used() > 0 {
        assert!(
            Instant::now() < deadline,
            "the silent connection is never dropped ({} bytes still queued)",
            queued.used()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut next_offset = 0u64;
    let mut buffered = 0usize;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match next(&mut silent).await {
                Got::Frame(f) => match f.message {
                    Message::Subscribed(_) => {}
                    Message::Data(b) => {
                        buffered += b.raw().len();
                        for r in b.iter() {
                            assert_eq!(r.offset, next_offset);
                            next_offset += 1;
                        }
                    }
                    other => panic!("{other:?}"),
                },
                Got::Close(code) => return code,
                Got::Ended => return None,
                Got::Json(v) => panic!("{v}"),
            }
        }
    })
    .await
    .expect("the silent connection was closed");
    assert!(matches!(ended, Some(1008) | None), "{ended:?}");
    assert!(
        next_offset < RECORDS,
        "the silent subscriber got everything?"
    );
    eprintln!("silent subscriber: {next_offset} records ({buffered} bytes) were in flight when it was closed");
}
