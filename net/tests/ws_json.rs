//! The JSON form over WebSocket text messages: a hand-written client
//! creates, appends, reads and subscribes, and gets JSON back.

mod common;
mod ws_support;

use std::time::Duration;

use common::Server;
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::MaybeTlsStream;
use weir_net::http::HttpConfig;
use weir_net::ws::WsConfig;
use ws_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn json_create_append_read_subscribe_round_trip() {
    let s = Server::start(HttpConfig::default()).await;
    let mut ws = connect(&s.base).await;

    send_json(
        &mut ws,
        json!({"type": "hello", "id": 1, "client": "browser"}),
    )
    .await;
    let v = json(&mut ws).await;
    assert_eq!(v["type"], "welcome");
    assert_eq!(v["id"], 1);
    assert_eq!(v["version"], 1);

    send_json(&mut ws, json!({"type": "ping", "id": 2})).await;
    assert_eq!(json(&mut ws).await, json!({"type": "pong", "id": 2}));

    send_json(
        &mut ws,
        json!({"type": "create", "id": 3, "stream": "chat", "content_type": "text/plain"}),
    )
    .await;
    let v = json(&mut ws).await;
    assert_eq!(v["type"], "created");
    assert_eq!(v["created"], true);
    assert_eq!(v["info"]["stream"], "chat");
    assert_eq!(v["info"]["content_type"], "text/plain");
    assert_eq!(v["info"]["next_offset"], 0);

    send_json(
        &mut ws,
        json!({"type": "append", "id": 4, "stream": "chat", "records": [
            {"key": "alice", "payload": "hello"},
            {"payload": "wörld"},
            {"payload_b64": "AP8="},
        ]}),
    )
    .await;
    let v = json(&mut ws).await;
    assert_eq!(v["type"], "appended");
    assert_eq!(v["id"], 4);
    assert_eq!(v["first_offset"], 0);
    assert_eq!(v["next_offset"], 3);
    assert_eq!(v["duplicate"], false);

    send_json(
        &mut ws,
        json!({"type": "read", "id": 5, "stream": "chat", "from": 1}),
    )
    .await;
    let v = json(&mut ws).await;
    assert_eq!(v["type"], "data");
    assert_eq!(v["id"], 5);
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["offset"], 1);
    assert_eq!(recs[0]["payload"], "wörld");
    assert!(recs[0].get("key").is_none());
    assert_eq!(recs[1]["offset"], 2);
    assert_eq!(recs[1]["payload_b64"], "AP8=");
    let v = json(&mut ws).await;
    let three = weir_net::http::format_offset(3);
    assert_eq!(
        v,
        json!({"type": "read_done", "id": 5, "next_offset": 3, "tail": 3, "closed": false,
               "next_offset_text": three, "tail_text": three})
    );

    // The HTTP door's offset text is accepted wherever an offset is, and
    // names the same position.
    send_json(
        &mut ws,
        json!({"type": "read", "id": 50, "stream": "chat",
               "from": weir_net::http::format_offset(2)}),
    )
    .await;
    let v = json(&mut ws).await;
    assert_eq!(v["records"][0]["offset"], 2, "{v}");
    assert_eq!(json(&mut ws).await["type"], "read_done");

    // Subscribe from the start: catch-up, then live.
    send_json(
        &mut ws,
        json!({"type": "subscribe", "id": 6, "stream": "chat", "from": "start"}),
    )
    .await;
    assert_eq!(
        json(&mut ws).await,
        json!({"type": "subscribed", "id": 6, "fence": 0,
               "fence_text": weir_net::http::format_offset(0)})
    );
    let v = json(&mut ws).await;
    assert_eq!(v["type"], "data");
    assert_eq!(v["id"], 6);
    assert_eq!(v["records"][0]["key"], "alice");
    assert_eq!(v["records"][0]["payload"], "hello");
    assert!(v["records"][0]["time_ms"].as_u64().unwrap() > 0);
    assert_eq!(v["records"].as_array().unwrap().len(), 3);

    send_json(
        &mut ws,
        json!({"type": "append", "id": 7, "stream": "chat", "records": [{"payload": "live"}]}),
    )
    .await;
    // The append's answer and the subscription's Data may come in either order.
    let (a, b) = (json(&mut ws).await, json(&mut ws).await);
    let (appended, data) = if a["type"] == "appended" {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(appended["id"], 7);
    assert_eq!(appended["first_offset"], 3);
    assert_eq!(data["id"], 6);
    assert_eq!(
        data["records"],
        json!([{"offset": 3, "offset_text": weir_net::http::format_offset(3),
                "time_ms": data["records"][0]["time_ms"], "payload": "live"}])
    );

    send_json(
        &mut ws,
        json!({"type": "unsubscribe", "id": 8, "subscription": 6}),
    )
    .await;
    assert_eq!(
        json(&mut ws).await,
        json!({"type": "unsubscribed", "id": 8, "next_offset": 4,
               "next_offset_text": weir_net::http::format_offset(4)})
    );

    // Errors come back as JSON with the protocol's code and fields.
    send_json(
        &mut ws,
        json!({"type": "read", "id": 9, "stream": "chat", "from": 99}),
    )
    .await;
    let v = json(&mut ws).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["id"], 9);
    assert_eq!(v["code"], 19);
    assert_eq!(v["kind"], "OffsetOutOfRange");
    assert_eq!(v["tail"], 4);
    send_json(&mut ws, json!({"type": "head", "id": 10, "stream": "nope"})).await;
    let v = json(&mut ws).await;
    assert_eq!(
        (v["code"].as_u64(), v["kind"].as_str()),
        (Some(10), Some("NotFound"))
    );

    // A request the server cannot understand is answered under its id and
    // the connection stays usable.
    send_json(&mut ws, json!({"type": "frobnicate", "id": 11})).await;
    let v = json(&mut ws).await;
    assert_eq!(
        (v["type"].as_str(), v["id"].as_u64()),
        (Some("error"), Some(11))
    );
    assert_eq!(v["kind"], "MalformedFrame");
    send_json(&mut ws, json!({"type": "head", "id": 12, "stream": "chat"})).await;
    let v = json(&mut ws).await;
    assert_eq!(v["type"], "info");
    assert_eq!(v["info"]["next_offset"], 4);

    // Mixing in a binary message is refused with 1003.
    send_raw(&mut ws, vec![6, 0, 0, 0, 1, 2, 1, 0, 0, 0]).await;
    let (_, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1003));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_pings_and_closes_peers_that_stop_answering() {
    let s = Server::start(HttpConfig {
        ws: WsConfig {
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(800),
            ..WsConfig::default()
        },
        ..HttpConfig::default()
    })
    .await;
    // A reading client answers pings and stays open well past the timeout.
    let mut ws = connect(&s.base).await;
    let mut pings = 0;
    let _ = tokio::time::timeout(Duration::from_millis(1500), async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, WsMessage::Ping(_)) {
                pings += 1;
            }
        }
    })
    .await;
    assert!(pings >= 5, "only {pings} pings");
    send_json(&mut ws, json!({"type": "hello", "id": 1})).await;
    assert_eq!(json(&mut ws).await["type"], "welcome");

    // A client that does not read (so never answers) is closed. It must
    // not read before the server gives up (reading answers the pings), so
    // it watches its socket without consuming it.
    let mut quiet = connect(&s.base).await;
    let seen = closed_unread(&quiet).await;
    let (_, code) = until_close(&mut quiet).await;
    assert!(matches!(code, Some(1008) | None), "{code:?}");
    assert_eq!(code, seen, "the close read is the one the socket held");
}

/// Waits, peeking at the TCP socket under `ws` so that nothing is read (and
/// no ping answered), until what the server sent ends with its close frame
/// or the connection ends; returns the close code (`None`: ended without
/// one).
async fn closed_unread(ws: &Socket) -> Option<u16> {
    let MaybeTlsStream::Plain(tcp) = ws.get_ref() else {
        panic!("a plain TCP connection")
    };
    let mut buf = vec![0u8; 64 << 10];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        if let Some(code) = close_frame(&buf[..n]) {
            return code;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never closed a peer that answers no pings"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The close code of the first close frame among whole server frames
/// (unmasked) at the start of `b`: `Some(None)` for a close without a code.
fn close_frame(mut b: &[u8]) -> Option<Option<u16>> {
    while b.len() >= 2 {
        let (mut len, mut at) = (usize::from(b[1] & 0x7f), 2);
        if len == 126 {
            len = usize::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?));
            at = 4;
        } else if len == 127 {
            len = u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize;
            at = 10;
        }
        let payload = b.get(at..at + len)?;
        if b[0] & 0x0f == 0x8 {
            return Some(payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])));
        }
        b = &b[at + len..];
    }
    None
}
