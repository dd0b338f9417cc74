//! Retention: trimming a plain stream's oldest batches moves its head,
//! reads and followers from below the head start there, the head survives a
//! reopen (it is derived from the data), the newest batch always stays, and
//! state streams and forks refuse to be trimmed. `live.metrics` is trimmed
//! to its maximum age on its own.

mod common;

use common::*;
use weir_storage::{ForkRequest, StateMode};

fn fill(e: &Engine, name: &str, batches: u64) {
    e.create_stream(name, opaque()).unwrap();
    for i in 0..batches {
        let a = format!("b{i}-0");
        let b = format!("b{i}-1");
        e.append(name, req(&[a.as_str(), b.as_str()])).unwrap();
    }
}

fn fork_of(source: &str, offset: Option<u64>) -> ForkRequest {
    ForkRequest {
        source: source.into(),
        offset,
        sub_offset: Default::default(),
        content_type: None,
        ttl_secs: None,
        expires_at_ms: None,
        records: Vec::new(),
        close: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trims_whole_batches_and_reads_start_at_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    fill(&e, "s", 10);
    assert_eq!(e.head_offset("s").unwrap(), 0);
    // Offset 7 is the second record of batch 3: batches 0..3 go.
    assert_eq!(e.trim_before("s", 7).await.unwrap(), 6);
    assert_eq!(e.head_offset("s").unwrap(), 6);
    let all = read_all(&e, "s");
    assert_eq!(all.first().unwrap().0, 6);
    assert_eq!(all.len(), 14);
    assert_dense_from(&all, 6);
    // A read from inside the trimmed range starts at the head.
    let r = e.read("s", 2, 1 << 20).unwrap();
    assert_eq!(flatten(&r)[0].0, 6);
    // So does a follower from the start.
    let mut f = e.follow("s", FollowFrom::Start).unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), f.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(b.first_offset(), 6);
    // Trimming below the head changes nothing; the newest batch always stays.
    assert_eq!(e.trim_before("s", 3).await.unwrap(), 6);
    assert_eq!(e.trim_before("s", 1_000).await.unwrap(), 18);
    assert_eq!(payloads(&read_all(&e, "s")), ["b9-0", "b9-1"]);
    // Appends go on at the tail.
    e.append("s", req(&["after"])).unwrap();
    assert_eq!(read_all(&e, "s").last().unwrap().0, 20);
    drop(f);
    e.shutdown();
    drop(e);

    // The head is recovered from the data.
    let e = open(&dir);
    assert_eq!(e.head_offset("s").unwrap(), 18);
    assert_eq!(read_all(&e, "s").first().unwrap().0, 18);
    // A trimmed stream cannot be forked or keep state.
    assert!(matches!(
        e.fork_stream("f", fork_of("s", None)).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.set_state_mode("s", StateMode::Keyed, None).await,
        Err(Error::Invalid(_))
    ));
    e.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_streams_and_forked_streams_are_not_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(&dir);
    fill(&e, "plain", 3);
    e.create_stream_in_mode("kv", opaque(), StateMode::Keyed, Vec::new(), false)
        .await
        .unwrap();
    e.append("kv", req(&["x"])).unwrap();
    e.append("kv", req(&["y"])).unwrap();
    assert!(matches!(
        e.trim_before("kv", 1).await,
        Err(Error::Invalid(_))
    ));
    e.fork_stream("child", fork_of("plain", Some(2)))
        .await
        .unwrap();
    assert!(matches!(
        e.trim_before("plain", 4).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.trim_before("child", 1).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        e.trim_before("nope", 1).await,
        Err(Error::NotFound)
    ));
    e.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_is_trimmed_to_its_maximum_age() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_with(&dir, |c| {
        c.live_metrics_max_age = Duration::from_millis(1_500);
        c.live_metrics_trim_interval = Duration::from_millis(200);
    });
    e.create_stream("app", StreamConfig::new("application/json"))
        .unwrap();
    let profile = r#"{"kind":"state-protocol","touch":{"enabled":true}}"#;
    e.set_state_mode("app", StateMode::StateProtocol, Some(profile.into()))
        .await
        .unwrap();
    // One tick per second is written; after 5 s the oldest are gone and
    // what is left is younger than the maximum age (plus a trim interval).
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    let head = e.head_offset("live.metrics").unwrap();
    assert!(head > 0, "live.metrics was never trimmed");
    let r = e.read("live.metrics", 0, 1 << 20).unwrap();
    let oldest = r.batches[0].append_time_ms();
    let age = now_ms().saturating_sub(oldest);
    assert!(age <= 1_500 + 1_200, "oldest kept record is {age} ms old");
    e.shutdown();
}
