//! A small WebSocket client of the binary protocol and its JSON form, over
//! tokio-tungstenite, for the `ws_*` tests against the real HTTP server.

#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use weir_net::proto::{
    decode_frame, Append, Encoder, Frame, Hello, Message, Subscribe, SubscribeFrom,
    DEFAULT_MAX_FRAME, MAX_MAX_FRAME,
};
use weir_storage::Record;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single wait for the server may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// `ws://host:port/v1/ws` for a server whose base URL is `http://host:port`.
pub fn ws_url(base: &str) -> String {
    format!("{}/v1/ws", base.replacen("http://", "ws://", 1))
}

/// Opens a WebSocket to the server at `base`.
pub async fn connect(base: &str) -> Socket {
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, res) = tokio_tungstenite::connect_async_with_config(ws_url(base), Some(config), true)
        .await
        .expect("WebSocket handshake");
    assert_eq!(res.status(), 101);
    ws
}

/// What the server sent next, skipping pings and pongs.
#[derive(Debug)]
pub enum Got {
    /// A binary message, decoded as one frame.
    Frame(Frame),
    /// A text message, parsed as JSON.
    Json(Value),
    /// The server closed with this code.
    Close(Option<u16>),
    /// The connection ended without a close frame (or failed).
    Ended,
}

/// Sends one frame as a binary message.
pub async fn send(ws: &mut Socket, id: u32, m: Message) {
    let bytes = Encoder::new(MAX_MAX_FRAME)
        .encode(&Frame::new(id, m))
        .unwrap()
        .to_bytes();
    ws.send(WsMessage::Binary(bytes)).await.unwrap();
}

/// Sends raw bytes as one binary message.
pub async fn send_raw(ws: &mut Socket, bytes: Vec<u8>) {
    ws.send(WsMessage::Binary(bytes.into())).await.unwrap();
}

/// Sends one JSON text message.
pub async fn send_json(ws: &mut Socket, v: Value) {
    ws.send(WsMessage::text(v.to_string())).await.unwrap();
}

/// The next message of the server (pings and pongs skipped), within [`WAIT`].
pub async fn next(ws: &mut Socket) -> Got {
    tokio::time::timeout(WAIT, async {
        loop {
            return match ws.next().await {
                Some(Ok(WsMessage::Binary(b))) => {
                    Got::Frame(decode_frame(b, MAX_MAX_FRAME).expect("server frame decodes"))
                }
                Some(Ok(WsMessage::Text(t))) => {
                    Got::Json(serde_json::from_str(t.as_str()).expect("server JSON parses"))
                }
                Some(Ok(WsMessage::Close(c))) => Got::Close(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Got::Ended,
            };
        }
    })
    .await
    .expect("the server answered in time")
}

/// The next frame; panics on anything else.
pub async fn frame(ws: &mut Socket) -> Frame {
    match next(ws).await {
        Got::Frame(f) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// The next JSON message; panics on anything else.
pub async fn json(ws: &mut Socket) -> Value {
    match next(ws).await {
        Got::Json(v) => v,
        other => panic!("expected JSON, got {other:?}"),
    }
}

/// Reads until the server closes, returning the close code (`None` if the
/// connection ended without one); frames before it are returned too.
pub async fn until_close(ws: &mut Socket) -> (Vec<Got>, Option<u16>) {
    let mut before = Vec::new();
    loop {
        match next(ws).await {
            Got::Close(code) => return (before, code),
            Got::Ended => return (before, None),
            g => before.push(g),
        }
    }
}

/// The close code tungstenite uses for a number.
pub fn code(c: u16) -> CloseCode {
    CloseCode::from(c)
}

/// Opens a connection and completes the binary handshake.
pub async fn binary_client(base: &str) -> Socket {
    let mut ws = connect(base).await;
    send(&mut ws, 1, hello()).await;
    match frame(&mut ws).await.message {
        Message::Welcome(w) => assert_eq!(w.version, 1),
        other => panic!("expected Welcome, got {other:?}"),
    }
    ws
}

/// A `Hello` for version 1 with the default frame limit.
pub fn hello() -> Message {
    Message::Hello(Hello {
        min_version: 1,
        max_version: 1,
        max_frame: DEFAULT_MAX_FRAME,
        client: "ws-test".into(),
        auth_token: None,
    })
}

/// A `Create` of an octet-stream stream.
pub fn create(stream: &str) -> Message {
    Message::Create(weir_net::proto::Create {
        stream: stream.into(),
        content_type: "application/octet-stream".into(),
        ttl_secs: None,
        expires_at_ms: None,
        state: None,
    })
}

/// An `Append` of `records`.
pub fn append(stream: &str, records: Vec<Record>) -> Message {
    Message::Append(Append {
        stream: stream.into(),
        producer: None,
        close: false,
        records,
    })
}

/// A `Subscribe` from the first record.
pub fn subscribe(stream: &str) -> Message {
    Message::Subscribe(Subscribe {
        stream: stream.into(),
        from: SubscribeFrom::Start,
    })
}

/// The payload of record `i` in the fan-out tests: its index, padded.
pub fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut p = format!("{i:010}").into_bytes();
    p.resize(len.max(10), b'.');
    p
}

/// Appends `total` records in batches of `batch` on `ws` (after `Hello`),
/// with up to `window` appends in flight, and checks every answer.
pub async fn append_all(ws: &mut Socket, stream: &str, total: u64, batch: u64, len: usize) {
    let mut next_id = 100u32;
    let mut sent = 0u64;
    let mut in_flight = 0usize;
    let mut acked = 0u64;
    let window = 16;
    while acked < total {
        while sent < total && in_flight < window {
            let n = batch.min(total - sent);
            let recs = (sent..sent + n)
                .map(|i| Record::new(payload(i, len)))
                .collect();
            send(ws, next_id, append(stream, recs)).await;
            next_id += 1;
            sent += n;
            in_flight += 1;
        }
        match frame(ws).await.message {
            Message::Appended(a) => {
                acked += a.next_offset - a.first_offset;
                in_flight -= 1;
            }
            other => panic!("append failed: {other:?}"),
        }
    }
}
