//! Behaviour tests of following streams: exactly-once delivery across
//! catch-up and live, overflowing queues, closure, delete and shutdown.

mod common;

use common::*;

// follow

/// Drains a follower until it ends (`None`) or yields an error, returning
/// every record as (offset, payload) and the error, if any. A hang past a
/// generous guard fails the test instead of blocking the suite.
async fn drain(mut f: Follower) -> (Vec<(u64, Vec<u8>)>, Option<Error>) {
    let mut out = Vec::new();
    let work = async {
        while let Some(item) = f.next().await {
            match item {
                Ok(b) => {
                    assert!(!b.is_empty(), "followers never yield empty batches");
                    out.extend(b.iter().map(|r| (r.offset, r.payload.to_vec())));
                }
                Err(e) => {
                    // After an error the follower ends.
                    assert!(
                        f.next().await.is_none(),
                        "a follower must end after an error"
                    );
                    return Some(e);
                }
            }
        }
        None
    };
    let err = tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("follower did not end (hung)");
    (out, err)
}

/// Starts `writers` threads that each append `appends` batches of 1..=4
/// records with unique payloads to `name`, then closes the stream once all
/// are done. Returns the join handle of the closing thread.
fn spawn_appenders(
    e: &Engine,
    name: &str,
    writers: usize,
    appends: usize,
) -> std::thread::JoinHandle<()> {
    let e = e.clone();
    let name = name.to_string();
    std::thread::spawn(move || {
        let hs: Vec<_> = (0..writers)
            .map(|w| {
                let e = e.clone();
                let name = name.clone();
                std::thread::spawn(move || {
                    for i in 0..appends {
                        let n = 1 + (w + i) % 4;
                        let p: Vec<String> = (0..n).map(|j| format!("w{w}-{i}-{j}")).collect();
                        let p: Vec<&str> = p.iter().map(String::as_str).collect();
                        e.append(&name, req(&p)).expect("append");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("appender panicked");
        }
        e.append(&name, close_req()).expect("close");
    })
}

fn check_follow_result(all: &[(u64, Vec<u8>)], fence: u64, got: &[(u64, Vec<u8>)], label: &str) {
    let want: Vec<_> = all.iter().filter(|(o, _)| *o >= fence).cloned().collect();
    assert_eq!(got.len(), want.len(), "{label}: wrong number of records");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{label}: record {i} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_get_every_record_exactly_once_under_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    e.create_stream("s", opaque()).unwrap();
    for i in 0..10 {
        e.append("s", req(&[&format!("pre-{i}")])).unwrap();
    }
    let from_start = e.follow("s", FollowFrom::Start).unwrap();
    let from_offset = e.follow("s", FollowFrom::Offset(7)).unwrap();
    let from_now = e.follow("s", FollowFrom::Now).unwrap();
    let at_tail = e.follow("s", FollowFrom::Offset(10)).unwrap();
    assert_eq!(
        (from_start.fence(), from_offset.fence(), from_now.fence()),
        (0, 7, 10)
    );

    let tasks: Vec<_> = [from_start, from_offset, from_now, at_tail]
        .into_iter()
        .map(|f| tokio::spawn(drain(f)))
        .collect();
    let appenders = spawn_appenders(&e, "s", 3, 300);
    // Followers that join while appends are running.
    let mut late = Vec::new();
    for k in 0..5u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let f = e.follow("s", FollowFrom::Now).unwrap();
        let fence = f.fence();
        late.push((fence, tokio::spawn(drain(f))));
        let f = e.follow("s", FollowFrom::Offset(k * 3)).unwrap();
        late.push((k * 3, tokio::spawn(drain(f))));
    }
    tokio::task::spawn_blocking(move || appenders.join().unwrap())
        .await
        .unwrap();

    let all = read_all(&e, "s");
    assert_dense_from(&all, 0);
    assert_eq!(all.len(), 10 + extra_records(3, 300));
    let fences = [0u64, 7, 10, 10];
    for (t, fence) in tasks.into_iter().zip(fences) {
        let (got, err) = t.await.unwrap();
        assert_eq!(err, None);
        check_follow_result(&all, fence, &got, &format!("follower from {fence}"));
    }
    for (fence, t) in late {
        let (got, err) = t.await.unwrap();
        assert_eq!(err, None);
        check_follow_result(&all, fence, &got, &format!("late follower from {fence}"));
    }
}

/// Records appended by `spawn_appenders(_, _, writers, appends)`.
fn extra_records(writers: usize, appends: usize) -> usize {
    (0..writers)
        .map(|w| (0..appends).map(|i| 1 + (w + i) % 4).sum::<usize>())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_queue_overflows_still_gets_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| {
        c.durability = Durability::Buffered;
        c.follower_queue = 2;
        c.follower_read_bytes = 64; // small catch-up reads, so catch-up interleaves with live appends
    });
    e.create_stream("s", opaque()).unwrap();
    let mut slow = e.follow("s", FollowFrom::Start).unwrap();
    let fast = tokio::spawn(drain(e.follow("s", FollowFrom::Start).unwrap()));
    let appenders = spawn_appenders(&e, "s", 3, 400);

    // A deliberately slow consumer: it pauses every few batches, so the
    // commit thread overflows its two-batch queue again and again.
    let mut got = Vec::new();
    let mut batches = 0u64;
    let slow_work = async {
        while let Some(item) = slow.next().await {
            let b = item.expect("follower error");
            got.extend(b.iter().map(|r| (r.offset, r.payload.to_vec())));
            batches += 1;
            if batches == 1 {
                // One long stall early on, while the appenders are busy.
                tokio::time::sleep(Duration::from_millis(50)).await;
            } else if batches.is_multiple_of(8) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), slow_work)
        .await
        .expect("slow follower hung");
    tokio::task::spawn_blocking(move || appenders.join().unwrap())
        .await
        .unwrap();

    let all = read_all(&e, "s");
    assert_eq!(all.len(), extra_records(3, 400));
    check_follow_result(&all, 0, &got, "slow follower");
    let (fast_got, err) = fast.await.unwrap();
    assert_eq!(err, None);
    check_follow_result(&all, 0, &fast_got, "fast follower");
    // Every payload is unique, so exactly-once also means no repeated payload.
    let distinct: HashSet<_> = got.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(distinct.len(), got.len());
    // What operators see of it: the overflows, and every record delivered
    // to both followers.
    let stats = e.stats();
    assert!(
        stats.follower_fallbacks > 0,
        "the stalls overflowed nothing"
    );
    assert_eq!(stats.records_delivered, 2 * all.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_a_closed_stream_ends_after_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", opaque()).unwrap();
    e.append("s", req(&["a", "b"])).unwrap();
    e.append(
        "s",
        AppendRequest {
            records: recs(&["c"]),
            close: true,
            ..Default::default()
        },
    )
    .unwrap();

    // Already closed: catch-up then end.
    let (got, err) = drain(e.follow("s", FollowFrom::Start).unwrap()).await;
    assert_eq!(err, None);
    assert_eq!(payloads(&got), ["a", "b", "c"]);
    let (got, err) = drain(e.follow("s", FollowFrom::Offset(2)).unwrap()).await;
    assert_eq!((payloads(&got), err), (vec!["c".to_string()], None));
    let (got, err) = drain(e.follow("s", FollowFrom::Now).unwrap()).await;
    assert_eq!((got.len(), err), (0, None));

    // Closed while the follower is live.
    e.create_stream("live", opaque()).unwrap();
    let mut f = e.follow("live", FollowFrom::Start).unwrap();
    e.append("live", req(&["1"])).unwrap();
    let b = f.next().await.unwrap().unwrap();
    assert_eq!(b.get(0).unwrap().payload, b"1");
    // The follower is now waiting live; close with final records, and with an
    // empty close after that.
    let waiter = tokio::spawn(drain(f));
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.append(
        "live",
        AppendRequest {
            records: recs(&["2", "3"]),
            close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let (got, err) = waiter.await.unwrap();
    assert_eq!(err, None);
    assert_eq!(got, vec![(1, b"2".to_vec()), (2, b"3".to_vec())]);

    // An empty close also ends a live follower.
    e.create_stream("empty-close", opaque()).unwrap();
    let f = e.follow("empty-close", FollowFrom::Now).unwrap();
    let waiter = tokio::spawn(drain(f));
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.append("empty-close", close_req()).unwrap();
    let (got, err) = waiter.await.unwrap();
    assert_eq!((got.len(), err), (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_a_deleted_stream_yields_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);

    // Deleted before the first poll.
    e.create_stream("a", opaque()).unwrap();
    e.append("a", req(&["x"])).unwrap();
    let f = e.follow("a", FollowFrom::Start).unwrap();
    e.delete_stream("a").unwrap();
    let (got, err) = drain(f).await;
    assert!(got.is_empty(), "records of a deleted stream were delivered");
    assert_eq!(err, Some(Error::NotFound));

    // Deleted while the follower waits live, after it got the stored records.
    e.create_stream("b", opaque()).unwrap();
    e.append("b", req(&["1", "2"])).unwrap();
    let mut f = e.follow("b", FollowFrom::Start).unwrap();
    let mut seen = 0;
    while seen < 2 {
        seen += f.next().await.unwrap().unwrap().len();
    }
    let waiter = tokio::spawn(drain(f));
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.delete_stream("b").unwrap();
    let (got, err) = waiter.await.unwrap();
    assert!(got.is_empty());
    assert_eq!(err, Some(Error::NotFound));

    // A follower of the old stream does not see a recreated one.
    e.create_stream("c", opaque()).unwrap();
    let f = e.follow("c", FollowFrom::Now).unwrap();
    e.delete_stream("c").unwrap();
    e.create_stream("c", opaque()).unwrap();
    e.append("c", req(&["new"])).unwrap();
    let (got, err) = drain(f).await;
    assert!(got.is_empty());
    assert_eq!(err, Some(Error::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_an_expired_stream_yields_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, fast_reaper);
    let mut cfg = opaque();
    cfg.expires_at_ms = Some(now_ms() + 1_000);
    e.create_stream("s", cfg).unwrap();
    e.append("s", req(&["a"])).unwrap();
    // The reaper removes the stream once its deadline passes; the follower,
    // waiting live, is told.
    let (got, err) = drain(e.follow("s", FollowFrom::Start).unwrap()).await;
    assert_eq!(payloads(&got), ["a"]);
    assert_eq!(err, Some(Error::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_followers_share_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    e.create_stream("s", opaque()).unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| tokio::spawn(drain(e.follow("s", FollowFrom::Start).unwrap())))
        .collect();
    let appenders = spawn_appenders(&e, "s", 2, 200);
    tokio::task::spawn_blocking(move || appenders.join().unwrap())
        .await
        .unwrap();
    let all = read_all(&e, "s");
    for (i, t) in tasks.into_iter().enumerate() {
        let (got, err) = t.await.unwrap();
        assert_eq!(err, None);
        check_follow_result(&all, 0, &got, &format!("follower {i}"));
    }
}

/// A read or a follower racing a delete of its stream sees the stream's
/// records or `NotFound`, never another error.
#[test]
fn reads_racing_a_delete_see_records_or_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| c.durability = Durability::Buffered);
    let mut unexpected = Vec::new();
    for round in 0..300 {
        e.create_stream("s", opaque()).unwrap();
        for i in 0..4 {
            e.append("s", req(&[&format!("{i}a"), &format!("{i}b")]))
                .unwrap();
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|k| {
                let e = e.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut errors = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let res = if k == 0 {
                            e.read("s", 3, 1 << 20).map(|r| r.record_count())
                        } else {
                            match e.follow("s", FollowFrom::Start) {
                                Ok(mut f) => futures::executor::block_on(async {
                                    match f.next().await {
                                        Some(Ok(b)) => Ok(b.len()),
                                        Some(Err(err)) => Err(err),
                                        None => Ok(0),
                                    }
                                }),
                                Err(err) => Err(err),
                            }
                        };
                        match res {
                            Ok(_) | Err(Error::NotFound) => {}
                            Err(err) => errors.push(format!("{}: {err}", ["read", "follow"][k])),
                        }
                    }
                    errors
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(200));
        e.delete_stream("s").unwrap();
        std::thread::sleep(Duration::from_micros(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            for err in r.join().unwrap() {
                unexpected.push(format!("round {round}: {err}"));
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected errors, e.g. {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
}

#[test]
fn shutdown_ends_a_follower_waiting_live() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    e.create_stream("s", opaque()).unwrap();
    e.append("s", req(&["1"])).unwrap();
    let mut f = e.follow("s", FollowFrom::Start).unwrap();
    futures::executor::block_on(async {
        assert_eq!(f.next().await.unwrap().unwrap().len(), 1);
    });
    let waiter = std::thread::spawn(move || futures::executor::block_on(f.next()));
    std::thread::sleep(Duration::from_millis(50)); // likely waiting live by now
    e.shutdown();
    let got = waiter.join().unwrap();
    assert!(matches!(got, Some(Err(Error::ShutDown))), "{got:?}");
    // A follower created after shutdown cannot go live either.
    let mut late = e.follow("s", FollowFrom::Now).unwrap();
    let got = futures::executor::block_on(late.next());
    assert!(matches!(got, Some(Err(Error::ShutDown))), "{got:?}");
}
