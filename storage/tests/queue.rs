//! A full commit queue holds back only the writers waiting for it: appends
//! wait for room asynchronously, so the runtime's threads keep serving
//! reads and live deliveries meanwhile. The commit thread is held inside a
//! commit hook (it runs on that thread) while more appends than the queue
//! holds are submitted from the runtime.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use weir_storage::Committed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_commit_queue_does_not_block_reads_or_live_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.commit_queue = 4);
    e.create_stream("s", opaque()).unwrap();
    e.append_async("s", req(&["r0"])).await.unwrap();
    let mut follower = e.follow("s", FollowFrom::Offset(0)).unwrap();
    let first = follower.next().await.unwrap().unwrap();
    assert_eq!(first.first_offset(), 0);

    // Armed, the hook holds the commit thread until released.
    let armed = Arc::new(AtomicBool::new(false));
    let (release_tx, release_rx) = crossbeam::channel::bounded::<()>(0);
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let armed = Arc::clone(&armed);
        let entered = std::sync::Mutex::new(Some(entered_tx));
        e.on_commit(Arc::new(move |_: &[Committed]| {
            if armed.swap(false, Ordering::AcqRel) {
                if let Some(tx) = entered.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                let _ = release_rx.recv();
            }
        }));
    }
    armed.store(true, Ordering::Release);
    // This append is written and published, then the thread stops in the hook.
    let held = tokio::spawn({
        let e = e.clone();
        async move { e.append_async("s", req(&["r1"])).await }
    });
    entered_rx.await.unwrap();
    // Six times the queue: four fill it, the rest wait for room.
    let writers: Vec<_> = (0..24)
        .map(|i| {
            let e = e.clone();
            tokio::spawn(async move { e.append_async("s", req(&[&format!("w{i}")])).await })
        })
        .collect();
    let t = std::time::Instant::now();
    while e.stats().commit_queue < 4 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the queue never filled: {} queued",
            e.stats().commit_queue
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The runtime still serves a read and delivers the published batch live.
    let read = tokio::spawn({
        let e = e.clone();
        async move { e.read("s", 0, 1 << 20).map(|r| r.next_offset) }
    });
    let read = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a read answers while the commit queue is full")
        .unwrap()
        .unwrap();
    assert_eq!(read, 2);
    let live = tokio::time::timeout(Duration::from_secs(5), follower.next())
        .await
        .expect("a live delivery arrives while the commit queue is full")
        .unwrap()
        .unwrap();
    assert_eq!(live.first_offset(), 1);
    // Requests are answered after the hooks ran.
    assert!(!held.is_finished());

    release_tx.send(()).unwrap();
    held.await.unwrap().unwrap();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    assert_eq!(e.tail("s").unwrap().0, 26);
    e.shutdown();
}
