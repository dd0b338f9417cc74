//! State requests of protocol version 2 over QUIC with the Rust client: a
//! snapshot then its changes, resumed across a lost connection, equals a
//! scan of every key afterwards; filtered subscriptions get membership
//! changes; a version-1 peer keeps working.

#[path = "quic_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use support::TestServer;
use weir_net::client::{StateItem, StateSubscription};
use weir_net::proto::{ChangeOp, Create, Scan, WireKey, WireStateMode};
use weir_storage::Record;

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn key(k: &WireKey) -> Vec<u8> {
    match k {
        WireKey::Keyed(b) => b.clone(),
        WireKey::Entity { key, .. } => key.clone().into_bytes(),
    }
}

fn apply(state: &mut State, item: StateItem) -> Option<u64> {
    match item {
        StateItem::Snapshot(rows) => {
            for r in rows {
                state.insert(key(&r.key), r.value);
            }
            None
        }
        StateItem::SnapshotDone { fence, .. } => Some(fence),
        StateItem::Records(b) => {
            for r in b.iter() {
                let k = r.key.unwrap().to_vec();
                if r.tombstone {
                    state.remove(&k);
                } else {
                    state.insert(k, r.payload.to_vec());
                }
            }
            Some(b.next_offset())
        }
        StateItem::Change(c) => {
            match (c.op, &c.key) {
                (ChangeOp::Upsert, Some(k)) => {
                    state.insert(key(k), c.value.clone().unwrap());
                }
                (ChangeOp::Delete, Some(k)) => {
                    state.remove(&key(k));
                }
                _ => state.clear(),
            }
            Some(c.offset + 1)
        }
    }
}

/// Applies items until the subscription has seen every record below `until`.
async fn follow(sub: &mut StateSubscription, state: &mut State, until: u64, done: &mut u64) {
    while *done < until {
        let item = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("in time")
            .expect("not ended")
            .expect("no error");
        if let Some(n) = apply(state, item) {
            *done = n;
        }
    }
}

fn scan(filter: Option<&str>) -> Scan {
    Scan {
        stream: "kv".into(),
        filter: filter.map(str::to_string),
        entity: None,
        prefix: None,
        after: None,
        limit: 0,
    }
}

/// Every row, page by page (the default page is smaller than the state).
async fn scan_all(client: &weir_net::client::Client, filter: Option<&str>) -> State {
    let mut out = State::new();
    let mut req = scan(filter);
    loop {
        let page = client.scan(req.clone()).await.unwrap();
        assert_eq!(page.fence, 306);
        out.extend(page.rows.iter().map(|r| (key(&r.key), r.value.clone())));
        match page.next {
            Some(n) => req.after = Some(n),
            None => return out,
        }
    }
}

fn tomb(k: &str) -> Record {
    Record {
        payload: "null".into(),
        ..Record::tombstone(k.to_string())
    }
}

fn val(n: u64) -> String {
    format!(r#"{{"n":{n}}}"#)
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_changes_and_resume_equal_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::on_loopback(dir.path()).await;
    let client = server.client().await;
    let created = client
        .create_with(Create {
            stream: "kv".into(),
            content_type: "application/json".into(),
            ttl_secs: None,
            expires_at_ms: None,
            state: Some(WireStateMode::Keyed),
        })
        .await
        .unwrap();
    assert_eq!(created.info.state.unwrap().mode, WireStateMode::Keyed);
    let recs = (0..300).map(|i| Record::keyed(format!("k{i:03}"), val(i % 10)));
    client.append("kv", recs.collect()).await.unwrap();

    let big = r#"{"field":"n","op":"gte","value":5}"#;
    let mut all_sub = client.subscribe_state("kv", true, None);
    let mut big_sub = client.subscribe_state("kv", true, Some(big.into()));
    let (mut all, mut bigs) = (State::new(), State::new());
    let (mut all_at, mut big_at) = (0, 0);
    follow(&mut all_sub, &mut all, 300, &mut all_at).await;
    follow(&mut big_sub, &mut bigs, 300, &mut big_at).await;
    assert_eq!(all.len(), 300);
    assert_eq!(bigs.len(), 150);

    let changes = vec![
        Record::keyed("k000", val(9)), // joins the filter
        Record::keyed("k009", val(1)), // leaves it
        tomb("k008"),                  // deleted while in it
        Record::keyed("new", val(7)),
    ];
    client.append("kv", changes).await.unwrap();
    follow(&mut all_sub, &mut all, 304, &mut all_at).await;
    follow(&mut big_sub, &mut bigs, 304, &mut big_at).await;

    // A lost connection: both subscriptions resume from their last change.
    client.disconnect().await;
    client
        .append("kv", vec![Record::keyed("k001", val(6)), tomb("k005")])
        .await
        .unwrap();
    follow(&mut all_sub, &mut all, 306, &mut all_at).await;
    follow(&mut big_sub, &mut bigs, 306, &mut big_at).await;

    assert_eq!(all, scan_all(&client, None).await);
    assert_eq!(bigs, scan_all(&client, Some(big)).await);
    assert!(bigs.contains_key(&b"k000"[..]) && !bigs.contains_key(&b"k009"[..]));

    let g = client
        .get("kv", WireKey::Keyed(b"k001".to_vec()))
        .await
        .unwrap();
    assert_eq!(g.row.unwrap().value, val(6).into_bytes());
    let g = client
        .get("kv", WireKey::Keyed(b"k005".to_vec()))
        .await
        .unwrap();
    assert_eq!(g.row, None);
    // Version-1 calls still work on the same connection.
    assert_eq!(client.head("kv").await.unwrap().next_offset, 306);
    drop((all_sub, big_sub));
    server.stop().await;
}
