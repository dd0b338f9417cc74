//! State requests of protocol version 2 over the WebSocket door, binary and
//! JSON: a snapshot followed by its changes rebuilds exactly the state a scan
//! shows afterwards, filtered subscriptions get membership changes, two
//! subscriptions share one connection, and a version-1 client is unaffected.

mod common;
mod ws_support;

use std::collections::{BTreeMap, HashMap};

use common::Server;
use futures::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use weir_net::http::HttpConfig;
use weir_net::proto::*;
use weir_storage::Record;
use ws_support::*;

async fn send2(ws: &mut Socket, id: u32, m: Message) {
    let bytes = Encoder::new(MAX_MAX_FRAME)
        .with_version(STATE_VERSION)
        .encode(&Frame::new(id, m))
        .unwrap()
        .to_bytes();
    ws.send(WsMessage::Binary(bytes)).await.unwrap();
}

async fn client_v2(base: &str) -> Socket {
    let mut ws = connect(base).await;
    let hello = Message::Hello(Hello {
        min_version: 1,
        max_version: 2,
        max_frame: DEFAULT_MAX_FRAME,
        client: "ws-state-test".into(),
        auth_token: None,
    });
    send(&mut ws, 1, hello).await;
    match frame(&mut ws).await.message {
        Message::Welcome(w) => assert_eq!(w.version, 2),
        other => panic!("expected Welcome, got {other:?}"),
    }
    ws
}

fn create_keyed(stream: &str) -> Message {
    Message::Create(Create {
        stream: stream.into(),
        content_type: "application/json".into(),
        ttl_secs: None,
        expires_at_ms: None,
        state: Some(WireStateMode::Keyed),
    })
}

/// Frames for every request id until `want` holds for the collected ones.
async fn collect(
    ws: &mut Socket,
    by_id: &mut HashMap<u32, Vec<Message>>,
    mut want: impl FnMut(&HashMap<u32, Vec<Message>>) -> bool,
) {
    while !want(by_id) {
        let f = frame(ws).await;
        assert!(f.version == 2 || matches!(f.message, Message::Error(_)));
        if let Message::Error(e) = &f.message {
            eprintln!("error for {}: {e:?}", f.request_id);
        }
        by_id.entry(f.request_id).or_default().push(f.message);
    }
}

fn has(by_id: &HashMap<u32, Vec<Message>>, id: u32, pred: fn(&Message) -> bool) -> bool {
    by_id.get(&id).is_some_and(|v| v.iter().any(pred))
}

/// Applies a subscription's frames to a map of key to value.
fn replay(frames: &[Message]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for m in frames {
        match m {
            Message::Snapshot(s) => {
                for r in &s.rows {
                    let WireKey::Keyed(k) = &r.key else { panic!() };
                    state.insert(k.clone(), r.value.clone());
                }
            }
            Message::Data(b) => {
                for r in b.iter() {
                    let k = r.key.expect("keyed").to_vec();
                    if r.tombstone {
                        state.remove(&k);
                    } else {
                        state.insert(k, r.payload.to_vec());
                    }
                }
            }
            Message::Change(c) => {
                let k = match &c.key {
                    Some(WireKey::Keyed(k)) => k.clone(),
                    _ => {
                        state.clear();
                        continue;
                    }
                };
                match c.op {
                    ChangeOp::Upsert => {
                        state.insert(k, c.value.clone().unwrap());
                    }
                    _ => {
                        state.remove(&k);
                    }
                }
            }
            _ => {}
        }
    }
    state
}

async fn scan_all(
    ws: &mut Socket,
    id: u32,
    stream: &str,
    filter: Option<&str>,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let scan = Message::Scan(Scan {
        stream: stream.into(),
        filter: filter.map(str::to_string),
        entity: None,
        prefix: None,
        after: None,
        limit: 1000,
    });
    send2(ws, id, scan).await;
    loop {
        let f = frame(ws).await;
        if f.request_id != id {
            continue;
        }
        let Message::ScanPage(p) = f.message else {
            panic!("{:?}", f.message)
        };
        assert_eq!(p.next, None);
        return p
            .rows
            .into_iter()
            .map(|r| {
                let WireKey::Keyed(k) = r.key else { panic!() };
                (k, r.value)
            })
            .collect();
    }
}

/// A tombstone on a JSON stream: its payload must still be one JSON value.
fn tomb(k: &str) -> Record {
    Record {
        payload: "null".into(),
        ..Record::tombstone(k.to_string())
    }
}

fn color(c: &str) -> Vec<u8> {
    format!(r#"{{"color":"{c}"}}"#).into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_snapshot_and_changes_equal_a_scan() {
    let s = Server::start(HttpConfig::default()).await;
    let mut ws = client_v2(&s.base).await;
    send2(&mut ws, 2, create_keyed("kv")).await;
    let Message::Created(c) = frame(&mut ws).await.message else {
        panic!()
    };
    assert_eq!(c.info.state.unwrap().mode, WireStateMode::Keyed);
    let first: Vec<Record> = (0..50)
        .map(|i| Record::keyed(format!("k{i:02}"), color("red")))
        .collect();
    send2(&mut ws, 3, append("kv", first)).await;
    assert!(matches!(frame(&mut ws).await.message, Message::Appended(_)));

    let sub = |filter: Option<&str>| {
        Message::SubscribeState(SubscribeState {
            stream: "kv".into(),
            snapshot: true,
            filter: filter.map(str::to_string),
            from: None,
        })
    };
    let red = r#"{"field":"color","op":"eq","value":"red"}"#;
    let blue = r#"{"field":"color","op":"eq","value":"blue"}"#;
    send2(&mut ws, 10, sub(None)).await;
    send2(&mut ws, 11, sub(Some(red))).await;
    send2(&mut ws, 12, sub(Some(blue))).await;
    // A second subscription of the same filter: both share one encoding of
    // their changes, and each frame must still carry its own request id.
    send2(&mut ws, 13, sub(Some(red))).await;
    let mut by_id = HashMap::new();
    let done = |m: &Message| matches!(m, Message::SnapshotDone(_));
    collect(&mut ws, &mut by_id, |b| {
        has(b, 10, done) && has(b, 11, done) && has(b, 12, done) && has(b, 13, done)
    })
    .await;
    assert!(matches!(
        by_id[&10][0],
        Message::StateSubscribed(StateSubscribed {
            mode: WireStateMode::Keyed
        })
    ));

    // Changes: new keys, updates that move rows between the filters, deletes.
    let changes = vec![
        Record::keyed("k00", color("blue")),
        Record::keyed("k01", color("green")),
        tomb("k02"),
        Record::keyed("n1", color("blue")),
        Record::keyed("n2", color("red")),
        tomb("missing"),
    ];
    send2(&mut ws, 4, append("kv", changes)).await;
    let upto = |b: &HashMap<u32, Vec<Message>>, id: u32, off: u64| {
        b.get(&id).is_some_and(|v| {
            v.iter().any(|m| match m {
                Message::Data(d) => d.next_offset() >= off,
                Message::Change(c) => c.offset + 1 >= off,
                _ => false,
            })
        })
    };
    collect(&mut ws, &mut by_id, |b| {
        has(b, 4, |m| matches!(m, Message::Appended(_)))
            && upto(b, 10, 56)
            && upto(b, 11, 55)
            && upto(b, 12, 54)
            && upto(b, 13, 55)
    })
    .await;

    let all = scan_all(&mut ws, 20, "kv", None).await;
    assert_eq!(all.len(), 51);
    assert_eq!(replay(&by_id[&10]), all);
    let reds = scan_all(&mut ws, 21, "kv", Some(red)).await;
    assert_eq!(replay(&by_id[&11]), reds);
    assert_eq!(replay(&by_id[&13]), reds);
    let blues = scan_all(&mut ws, 22, "kv", Some(blue)).await;
    assert_eq!(blues.len(), 2);
    assert_eq!(replay(&by_id[&12]), blues);
    // The red subscription saw k00 and k01 leave and k02 go.
    let left: Vec<&Message> = by_id[&11]
        .iter()
        .filter(|m| matches!(m, Message::Change(c) if c.op == ChangeOp::Delete))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");

    // Unsubscribing one subscription leaves the others running.
    send2(
        &mut ws,
        30,
        Message::Unsubscribe(Unsubscribe { subscription: 11 }),
    )
    .await;
    collect(&mut ws, &mut by_id, |b| {
        has(b, 30, |m| matches!(m, Message::Unsubscribed(_)))
    })
    .await;
    let before = by_id[&11].len();
    send2(
        &mut ws,
        5,
        append("kv", vec![Record::keyed("k03", color("blue"))]),
    )
    .await;
    collect(&mut ws, &mut by_id, |b| upto(b, 10, 57) && upto(b, 12, 57)).await;
    assert_eq!(by_id[&11].len(), before);

    // Get answers one key at the fence.
    let get = Message::Get(Get {
        stream: "kv".into(),
        key: WireKey::Keyed(b"n1".to_vec()),
    });
    send2(&mut ws, 40, get).await;
    collect(&mut ws, &mut by_id, |b| b.contains_key(&40)).await;
    let Message::GetResult(g) = &by_id[&40][0] else {
        panic!()
    };
    assert_eq!(g.row.as_ref().unwrap().value, color("blue"));
    assert_eq!(g.fence, 57);
}

#[tokio::test(flavor = "multi_thread")]
async fn version_one_clients_are_unchanged() {
    let s = Server::start(HttpConfig::default()).await;
    let mut ws = binary_client(&s.base).await;
    send(&mut ws, 2, create("plain")).await;
    let Message::Created(c) = frame(&mut ws).await.message else {
        panic!()
    };
    assert_eq!(c.info.state, None, "a version-1 body has no state");
    send(&mut ws, 3, append("plain", vec![Record::new("x")])).await;
    assert!(matches!(frame(&mut ws).await.message, Message::Appended(_)));
    // A version-2 opcode in a version-1 frame is an unknown opcode.
    let mut raw = Encoder::default()
        .with_version(STATE_VERSION)
        .encode(&Frame::new(
            4,
            Message::Get(Get {
                stream: "plain".into(),
                key: WireKey::Keyed(b"k".to_vec()),
            }),
        ))
        .unwrap()
        .to_bytes()
        .to_vec();
    raw[4] = 1;
    send_raw(&mut ws, raw).await;
    let f = frame(&mut ws).await;
    assert_eq!(f.request_id, 4);
    let Message::Error(e) = f.message else {
        panic!()
    };
    assert_eq!(e.kind, ErrorKind::UnknownOpcode { opcode: 0x0a });
    send(&mut ws, 5, Message::Ping).await;
    assert_eq!(frame(&mut ws).await, Frame::new(5, Message::Pong));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_snapshot_and_changes_equal_a_scan() {
    let s = Server::start(HttpConfig::default()).await;
    let mut ws = connect(&s.base).await;
    send_json(&mut ws, json!({"type":"hello","id":1,"max_version":2})).await;
    assert_eq!(json(&mut ws).await["version"], 2);
    send_json(
        &mut ws,
        json!({"type":"create","id":2,"stream":"j","content_type":"application/json","state":"keyed"}),
    )
    .await;
    let v = json(&mut ws).await;
    assert_eq!(v["info"]["state"]["mode"], "keyed", "{v}");
    let recs: Vec<Value> = (0..5)
        .map(|i| json!({"key": format!("k{i}"), "payload": format!("{{\"n\":{i}}}")}))
        .collect();
    send_json(
        &mut ws,
        json!({"type":"append","id":3,"stream":"j","records":recs}),
    )
    .await;
    assert_eq!(json(&mut ws).await["type"], "appended");
    send_json(
        &mut ws,
        json!({"type":"subscribe_state","id":9,"stream":"j","snapshot":true}),
    )
    .await;
    send_json(
        &mut ws,
        json!({"type":"subscribe_state","id":8,"stream":"j","snapshot":true,
               "filter":{"field":"n","op":"gte","value":3}}),
    )
    .await;
    let mut all: BTreeMap<String, String> = BTreeMap::new();
    let mut big: BTreeMap<String, String> = BTreeMap::new();
    let mut done = 0;
    let apply =
        |v: &Value, all: &mut BTreeMap<String, String>, big: &mut BTreeMap<String, String>| {
            let target = if v["id"] == 9 { all } else { big };
            match v["type"].as_str().unwrap() {
                "snapshot" => {
                    for r in v["rows"].as_array().unwrap() {
                        target.insert(
                            r["key"].as_str().unwrap().into(),
                            r["value"].as_str().unwrap().into(),
                        );
                    }
                }
                "data" => {
                    for r in v["records"].as_array().unwrap() {
                        let k = r["key"].as_str().unwrap().to_string();
                        if r["tombstone"] == true {
                            target.remove(&k);
                        } else {
                            target.insert(k, r["payload"].as_str().unwrap().into());
                        }
                    }
                }
                "change" => {
                    let k = r_key(v);
                    if v["op"] == "upsert" {
                        target.insert(k, v["value"].as_str().unwrap().into());
                    } else {
                        target.remove(&k);
                    }
                }
                _ => {}
            }
        };
    fn r_key(v: &Value) -> String {
        v["key"].as_str().unwrap().to_string()
    }
    while done < 2 {
        let v = json(&mut ws).await;
        if v["type"] == "snapshot_done" {
            done += 1;
        }
        apply(&v, &mut all, &mut big);
    }
    send_json(
        &mut ws,
        json!({"type":"append","id":4,"stream":"j","records":[
            {"key":"k4","payload":"{\"n\":0}"}, {"key":"k9","payload":"{\"n\":9}"}]}),
    )
    .await;
    let mut seen = 0;
    while seen < 3 {
        let v = json(&mut ws).await;
        if v["type"] == "data" || v["type"] == "change" {
            seen += 1;
        }
        apply(&v, &mut all, &mut big);
    }
    send_json(&mut ws, json!({"type":"scan","id":20,"stream":"j"})).await;
    let page = loop {
        let v = json(&mut ws).await;
        if v["id"] == 20 {
            break v;
        }
    };
    assert_eq!(page["type"], "scan_page", "{page}");
    let scanned: BTreeMap<String, String> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().into(),
                r["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(scanned.len(), 6);
    assert_eq!(all, scanned);
    let want_big: BTreeMap<_, _> = scanned
        .into_iter()
        .filter(|(k, _)| k == "k3" || k == "k9")
        .collect();
    assert_eq!(big, want_big);
    send_json(
        &mut ws,
        json!({"type":"get","id":21,"stream":"j","key":"k9"}),
    )
    .await;
    let v = loop {
        let v = json(&mut ws).await;
        if v["id"] == 21 {
            break v;
        }
    };
    assert_eq!(v["row"]["value"], "{\"n\":9}", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_chunks_fit_the_clients_frame_limit() {
    let s = Server::start(HttpConfig::default()).await;
    let mut ws = connect(&s.base).await;
    let hello = Message::Hello(Hello {
        min_version: 2,
        max_version: 2,
        max_frame: MIN_MAX_FRAME,
        client: "small-frames".into(),
        auth_token: None,
    });
    send(&mut ws, 1, hello).await;
    assert!(matches!(frame(&mut ws).await.message, Message::Welcome(_)));
    send2(&mut ws, 2, create_keyed("big")).await;
    frame(&mut ws).await;
    let pad = "x".repeat(10_000);
    let recs: Vec<Record> = (0..40)
        .map(|i| Record::keyed(format!("k{i:02}"), format!(r#"{{"pad":"{pad}"}}"#)))
        .collect();
    send2(&mut ws, 3, append("big", recs)).await;
    assert!(matches!(frame(&mut ws).await.message, Message::Appended(_)));
    let sub = Message::SubscribeState(SubscribeState {
        stream: "big".into(),
        snapshot: true,
        filter: None,
        from: None,
    });
    send2(&mut ws, 4, sub).await;
    let (mut chunks, mut rows) = (0, 0);
    loop {
        let msg = ws_next_binary(&mut ws).await;
        assert!(msg.len() <= MIN_MAX_FRAME as usize + 4, "{}", msg.len());
        match decode_frame(msg.into(), MAX_MAX_FRAME).unwrap().message {
            Message::Snapshot(sn) => {
                chunks += 1;
                rows += sn.rows.len();
            }
            Message::SnapshotDone(d) => {
                assert_eq!(d.rows, 40);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(rows, 40);
    assert!(chunks >= 7, "{chunks} chunks");
    // A page larger than the limit comes back smaller, with a cursor.
    let scan = Message::Scan(Scan {
        stream: "big".into(),
        filter: None,
        entity: None,
        prefix: None,
        after: None,
        limit: 40,
    });
    send2(&mut ws, 5, scan).await;
    let Message::ScanPage(p) = frame(&mut ws).await.message else {
        panic!()
    };
    assert!(p.rows.len() < 40 && p.next.is_some(), "{}", p.rows.len());
}

async fn ws_next_binary(ws: &mut Socket) -> Vec<u8> {
    use futures::StreamExt;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Binary(b))) => return b.to_vec(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}
