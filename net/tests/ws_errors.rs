//! Hostile input on the WebSocket door: malformed, truncated and oversized
//! messages get an `Error` and a close with the documented code; the server
//! never panics and other connections carry on.

mod common;
mod ws_support;

use common::Server;
use hyper::{Method, StatusCode};
use serde_json::json;
use weir_net::http::HttpConfig;
use weir_net::proto::{Encoder, ErrorKind, Frame, Message, MIN_MAX_FRAME};
use weir_net::ws::WsConfig;
use weir_storage::Record;
use ws_support::*;

/// The `Error` frames before the close, and the close code.
async fn errors_then_close(ws: &mut Socket) -> (Vec<(u32, ErrorKind)>, Option<u16>) {
    let (before, code) = until_close(ws).await;
    let errors = before
        .into_iter()
        .map(|g| match g {
            Got::Frame(Frame {
                request_id,
                message: Message::Error(e),
                ..
            }) => (request_id, e.kind),
            other => panic!("expected only Error frames, got {other:?}"),
        })
        .collect();
    (errors, code)
}

fn small_config() -> HttpConfig {
    HttpConfig {
        ws: WsConfig {
            max_message_bytes: MIN_MAX_FRAME as usize + 4,
            ..WsConfig::default()
        },
        ..HttpConfig::default()
    }
}

/// A connection that must keep working while others misbehave.
async fn check_healthy(ws: &mut Socket, id: u32) {
    send(ws, id, append("ok", vec![Record::new(format!("r{id}"))])).await;
    let f = frame(ws).await;
    assert_eq!(f.request_id, id);
    assert!(matches!(f.message, Message::Appended(_)), "{f:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_binary_messages_get_an_error_and_a_close() {
    let s = Server::start(small_config()).await;
    let mut good = binary_client(&s.base).await;
    send(&mut good, 2, create("ok")).await;
    assert!(matches!(
        frame(&mut good).await.message,
        Message::Created(_)
    ));

    // Shorter than a length prefix.
    let mut ws = binary_client(&s.base).await;
    send_raw(&mut ws, vec![1, 2, 3]).await;
    let (errs, code) = errors_then_close(&mut ws).await;
    assert_eq!(errs, vec![(0, ErrorKind::MalformedFrame)]);
    assert_eq!(code, Some(1002));
    check_healthy(&mut good, 10).await;

    // Truncated: a Ping frame missing its last byte.
    let mut ws = binary_client(&s.base).await;
    send_raw(&mut ws, vec![6, 0, 0, 0, 1, 2, 5, 0, 0]).await;
    let (errs, code) = errors_then_close(&mut ws).await;
    assert_eq!(errs, vec![(0, ErrorKind::MalformedFrame)]);
    assert_eq!(code, Some(1002));

    // Two frames in one message.
    let mut ws = binary_client(&s.base).await;
    let ping = [6u8, 0, 0, 0, 1, 2, 5, 0, 0, 0];
    send_raw(&mut ws, [ping, ping].concat()).await;
    let (errs, code) = errors_then_close(&mut ws).await;
    assert_eq!(errs, vec![(0, ErrorKind::MalformedFrame)]);
    assert_eq!(code, Some(1002));

    // A length prefix below the header size.
    let mut ws = binary_client(&s.base).await;
    send_raw(&mut ws, vec![2, 0, 0, 0, 1, 2]).await;
    let (errs, code) = errors_then_close(&mut ws).await;
    assert_eq!(errs, vec![(0, ErrorKind::MalformedFrame)]);
    assert_eq!(code, Some(1002));
    check_healthy(&mut good, 11).await;

    // A message over the size limit: refused from its header, 1009.
    let mut ws = binary_client(&s.base).await;
    let big = Encoder::new(1 << 20)
        .encode(&Frame::new(
            3,
            append("ok", vec![Record::new(vec![7u8; 100 << 10])]),
        ))
        .unwrap()
        .to_bytes();
    send_raw(&mut ws, big.to_vec()).await;
    let (errs, code) = errors_then_close(&mut ws).await;
    assert!(
        matches!(errs.as_slice(), [(0, ErrorKind::FrameTooLarge { .. })]),
        "{errs:?}"
    );
    assert_eq!(code, Some(1009));

    // A length prefix above the frame limit in a small message: 1009 too.
    let mut ws = binary_client(&s.base).await;
    send_raw(&mut ws, vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 5, 0, 0, 0]).await;
    let (errs, code) = errors_then_close(&mut ws).await;
    assert!(matches!(
        errs.as_slice(),
        [(0, ErrorKind::FrameTooLarge { .. })]
    ));
    assert_eq!(code, Some(1009));
    check_healthy(&mut good, 12).await;

    // A request before Hello breaks the handshake.
    let mut ws = connect(&s.base).await;
    send(&mut ws, 4, Message::Ping).await;
    let (errs, code) = errors_then_close(&mut ws).await;
    assert!(matches!(
        errs.as_slice(),
        [(4, ErrorKind::UnexpectedMessage { .. })]
    ));
    assert_eq!(code, Some(1002));

    // A well-framed body that does not decode is answered under its id; the
    // connection stays open (PROTOCOL.md section 2).
    let mut ws = binary_client(&s.base).await;
    send_raw(&mut ws, vec![7, 0, 0, 0, 1, 7, 9, 0, 0, 0, 0xfe]).await;
    let f = frame(&mut ws).await;
    assert_eq!(f.request_id, 9);
    assert!(matches!(f.message, Message::Error(ref e) if e.kind == ErrorKind::MalformedFrame));
    send(&mut ws, 5, Message::Ping).await;
    assert_eq!(frame(&mut ws).await, Frame::new(5, Message::Pong));

    // Random bytes: whatever the server answers, it answers, and stays up.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..40 {
        let mut ws = binary_client(&s.base).await;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 64) as usize;
        let mut bytes: Vec<u8> = (0..len)
            .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8)
            .collect();
        if len >= 5 && seed.is_multiple_of(3) {
            // Often a plausible prefix, so the decoder gets past it.
            let l = (len - 4) as u32;
            bytes[..4].copy_from_slice(&l.to_le_bytes());
            bytes[4] = 1;
        }
        send_raw(&mut ws, bytes).await;
        send(&mut ws, 77, Message::Ping).await;
        // Either the connection survives (and answers the Ping) or it ends
        // with a close code.
        loop {
            match next(&mut ws).await {
                Got::Frame(Frame {
                    request_id: 77,
                    message: Message::Pong,
                    ..
                }) => break,
                Got::Frame(_) => continue,
                Got::Close(code) => {
                    assert!(matches!(code, Some(1002 | 1009)), "{code:?}");
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    check_healthy(&mut good, 13).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_text_messages_get_an_error_and_a_close() {
    let s = Server::start(small_config()).await;
    let mut good = binary_client(&s.base).await;
    send(&mut good, 2, create("ok")).await;
    assert!(matches!(
        frame(&mut good).await.message,
        Message::Created(_)
    ));

    // Not JSON: error under id 0, then 1002.
    let mut ws = connect(&s.base).await;
    send_json(&mut ws, json!({"type": "hello", "id": 1})).await;
    assert_eq!(json(&mut ws).await["type"], "welcome");
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    ws.send(WsMessage::text("{\"type\": \"ping\", \"id\""))
        .await
        .unwrap();
    let (before, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1002));
    let [Got::Json(v)] = before.as_slice() else {
        panic!("{before:?}")
    };
    assert_eq!(
        (v["type"].as_str(), v["id"].as_u64(), v["code"].as_u64()),
        (Some("error"), Some(0), Some(0))
    );
    check_healthy(&mut good, 10).await;

    // Oversized text: an error in JSON, then 1009.
    let mut ws = connect(&s.base).await;
    send_json(&mut ws, json!({"type": "hello", "id": 1})).await;
    assert_eq!(json(&mut ws).await["type"], "welcome");
    let huge = "x".repeat(200 << 10);
    send_json(
        &mut ws,
        json!({"type": "append", "id": 2, "stream": "ok", "records": [{"payload": huge}]}),
    )
    .await;
    let (before, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1009));
    let [Got::Json(v)] = before.as_slice() else {
        panic!("{before:?}")
    };
    assert_eq!(v["kind"], "FrameTooLarge");

    // Text that is not UTF-8 cannot be sent by tungstenite's client; a
    // request for a server message type is answered and the connection stays.
    let mut ws = connect(&s.base).await;
    send_json(&mut ws, json!({"type": "welcome", "id": 3})).await;
    let v = json(&mut ws).await;
    assert_eq!(
        (v["id"].as_u64(), v["kind"].as_str()),
        (Some(3), Some("MalformedFrame"))
    );
    // ...but a request before hello breaks the handshake.
    send_json(&mut ws, json!({"type": "ping", "id": 4})).await;
    let (before, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1002));
    assert_eq!(before.len(), 1);
    check_healthy(&mut good, 11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_on_the_websocket_path_is_refused() {
    let s = Server::start(HttpConfig::default()).await;
    let r = s.get("/v1/ws").await;
    assert_eq!(r.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    let r = s
        .send(
            Method::GET,
            "/v1/ws",
            &[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "8"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    let r = s.send(Method::POST, "/v1/ws", &[], "x").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_resumes_subscriptions_and_closes_with_1001() {
    let s = Server::start(HttpConfig::default()).await;
    let mut ws = binary_client(&s.base).await;
    send(&mut ws, 2, create("down")).await;
    assert!(matches!(frame(&mut ws).await.message, Message::Created(_)));
    send(&mut ws, 3, subscribe("down")).await;
    assert!(matches!(
        frame(&mut ws).await.message,
        Message::Subscribed(_)
    ));
    drop(s); // stops the server
    let (before, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1001));
    assert!(
        matches!(
            before.as_slice(),
            [Got::Frame(Frame {
                request_id: 3,
                message: Message::Resume(weir_net::proto::Resume {
                    offset: 0,
                    reason: weir_net::proto::ResumeReason::ShuttingDown
                }),
                ..
            })]
        ),
        "{before:?}"
    );
}
