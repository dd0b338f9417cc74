//! The binary protocol on raw QUIC streams: the handshake, pipelining on one
//! stream, and hostile input. Malformed, truncated and oversized frames get
//! an `Error` and a closed connection, never a panic, and other
//! connections carry on.

#[path = "quic_support.rs"]
mod support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::*;
use weir_net::client::quinn_config;
use weir_net::proto::{
    Create, Decoder, Encoder, ErrorKind, Frame, Head, Hello, Message, DEFAULT_MAX_FRAME,
};
use weir_net::quic::codes;

/// A raw connection: one request stream we write bytes to and read frames from.
struct Raw {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    buf: BytesMut,
    decoder: Decoder,
    _endpoint: quinn::Endpoint,
}

impl Raw {
    async fn open(server: &TestServer) -> Raw {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn_config(&server.client_config()).unwrap());
        let conn = endpoint
            .connect(server.addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        Raw {
            conn,
            send,
            recv,
            buf: BytesMut::new(),
            decoder: Decoder::default(),
            _endpoint: endpoint,
        }
    }

    async fn greeted(server: &TestServer) -> Raw {
        let mut raw = Raw::open(server).await;
        let hello = Message::Hello(Hello {
            min_version: 1,
            max_version: 1,
            max_frame: DEFAULT_MAX_FRAME,
            client: "raw-test".into(),
            auth_token: None,
        });
        raw.frame(1, hello).await;
        assert!(matches!(
            raw.next().await.unwrap().message,
            Message::Welcome(_)
        ));
        raw
    }

    async fn bytes(&mut self, b: &[u8]) {
        self.send.write_all(b).await.unwrap();
    }

    async fn frame(&mut self, id: u32, m: Message) {
        let e = Encoder::default().encode(&Frame::new(id, m)).unwrap();
        self.bytes(&e.to_bytes()).await;
    }

    /// The next frame on the request stream, `None` at its end.
    async fn next(&mut self) -> Option<Frame> {
        let read = async {
            loop {
                if let Some(f) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(f);
                }
                match self.recv.read_chunk(1 << 16, true).await {
                    Ok(Some(c)) => self.buf.extend_from_slice(&c.bytes),
                    _ => return None,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("an answer in time")
    }

    async fn expect_error(&mut self) -> (u32, ErrorKind) {
        match self.next().await {
            Some(Frame {
                request_id,
                message: Message::Error(e),
                ..
            }) => (request_id, e.kind),
            other => panic!("expected an Error frame, got {other:?}"),
        }
    }

    async fn expect_closed(&self) {
        let why = tokio::time::timeout(Duration::from_secs(10), self.conn.closed())
            .await
            .expect("the server closes the connection");
        match why {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(c.error_code, quinn::VarInt::from_u32(codes::PROTOCOL))
            }
            other => panic!("unexpected close: {other:?}"),
        }
    }
}

fn head(stream: &str) -> Message {
    Message::Head(Head {
        stream: stream.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_on_one_stream_are_answered_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::on_loopback(dir.path()).await;
    let mut raw = Raw::greeted(&server).await;
    let create = Message::Create(Create {
        stream: "s".into(),
        content_type: "text/plain".into(),
        ttl_secs: None,
        expires_at_ms: None,
        state: None,
    });
    raw.frame(2, create).await;
    for id in 3..13u32 {
        let append = Message::Append(weir_net::proto::Append {
            stream: "s".into(),
            producer: Some(weir_net::proto::Producer {
                id: "p".into(),
                epoch: 0,
                seq: (id - 3) as u64,
            }),
            close: false,
            records: vec![weir_storage::Record::new(format!("r{id}"))],
        });
        raw.frame(id, append).await;
    }
    raw.frame(13, Message::Ping).await;
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 12 {
        let f = raw.next().await.unwrap();
        seen.insert(f.request_id, f.message);
    }
    assert!(matches!(seen[&2], Message::Created(_)));
    for id in 3..13u32 {
        // Started in order on one stream: sequence numbers never gap and
        // record `id` lands at offset id - 3.
        match &seen[&id] {
            Message::Appended(a) => assert_eq!(a.first_offset, (id - 3) as u64),
            m => panic!("request {id}: {m:?}"),
        }
    }
    assert!(matches!(seen[&13], Message::Pong));
    // A reused id in flight and id 0 are refused; the connection stays open.
    raw.frame(0, head("s")).await;
    assert_eq!(raw.expect_error().await, (0, ErrorKind::BadRequestId));
    raw.frame(20, head("missing")).await;
    assert_eq!(raw.expect_error().await, (20, ErrorKind::NotFound));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_get_an_error_and_a_closed_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::on_loopback(dir.path()).await;
    // A well-behaved client that must be unaffected throughout.
    let good = server.client().await;
    good.create("ok", "text/plain").await.unwrap();

    // Oversized length prefix: refused from the prefix alone.
    let mut raw = Raw::greeted(&server).await;
    raw.bytes(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 7, 0, 0, 0]).await;
    let (id, kind) = raw.expect_error().await;
    assert_eq!(id, 0);
    assert!(matches!(kind, ErrorKind::FrameTooLarge { .. }));
    raw.expect_closed().await;

    // Length prefix below the header.
    let mut raw = Raw::greeted(&server).await;
    raw.bytes(&[2, 0, 0, 0, 1, 2]).await;
    assert_eq!(raw.expect_error().await, (0, ErrorKind::MalformedFrame));
    raw.expect_closed().await;

    // A frame cut short by the end of the stream.
    let mut raw = Raw::greeted(&server).await;
    raw.bytes(&[40, 0, 0, 0, 1, 4, 9, 0, 0, 0, 1]).await;
    raw.send.finish().unwrap();
    assert_eq!(raw.expect_error().await, (0, ErrorKind::MalformedFrame));
    raw.expect_closed().await;

    // A request before Hello.
    let mut raw = Raw::open(&server).await;
    raw.frame(5, head("ok")).await;
    assert!(matches!(
        raw.expect_error().await,
        (5, ErrorKind::UnexpectedMessage { .. })
    ));
    raw.expect_closed().await;

    // An unsupported version in Hello.
    let mut raw = Raw::open(&server).await;
    let hello = Message::Hello(Hello {
        min_version: 7,
        max_version: 9,
        max_frame: 0,
        client: "future".into(),
        auth_token: None,
    });
    raw.frame(1, hello).await;
    assert!(matches!(
        raw.expect_error().await,
        (1, ErrorKind::UnsupportedVersion { .. })
    ));
    raw.expect_closed().await;

    // Frames that keep the framing but are wrong get an error for their
    // request id, and the connection stays usable.
    let mut raw = Raw::greeted(&server).await;
    raw.bytes(&[7, 0, 0, 0, 1, 0x44, 9, 0, 0, 0, 0]).await; // unknown opcode
    assert!(matches!(
        raw.expect_error().await,
        (9, ErrorKind::UnknownOpcode { opcode: 0x44 })
    ));
    raw.bytes(&[8, 0, 0, 0, 1, 4, 10, 0, 0, 0, 0xff, 0xff])
        .await; // Head with a broken body
    assert_eq!(raw.expect_error().await, (10, ErrorKind::MalformedFrame));
    raw.bytes(&[6, 0, 0, 0, 1, 0x82, 11, 0, 0, 0]).await; // a server opcode (Pong)
    assert!(matches!(
        raw.expect_error().await,
        (11, ErrorKind::UnexpectedMessage { .. })
    ));
    raw.frame(12, Message::Ping).await;
    assert_eq!(raw.next().await.unwrap(), Frame::new(12, Message::Pong));

    // Random garbage after a greeting, in many shapes: never a panic.
    let mut seed = 0x2545f4914f6cdd1du64;
    for round in 0..30 {
        let mut raw = Raw::greeted(&server).await;
        let len = 1 + (round * 37) % 300;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        raw.bytes(&junk).await;
        let _ = raw.send.finish();
        // Whatever the junk says, the server answers or closes; it never hangs
        // waiting for a frame the stream can no longer complete.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while raw.next().await.is_some() {}
        })
        .await;
    }

    assert!(server.is_running(), "the server survived");
    assert_eq!(good.head("ok").await.unwrap().stream, "ok");
    good.ping().await.unwrap();
    let huge = Bytes::from(vec![0u8; 100]);
    good.append("ok", vec![weir_storage::Record::new(huge)])
        .await
        .unwrap();
    server.stop().await;
}

/// A client pinning the wrong certificate is refused with a message that
/// names the server's actual fingerprint, so a stale pin is fixed at once.
#[tokio::test]
async fn a_wrong_pin_names_the_servers_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::on_loopback(dir.path()).await;
    let mut config = server.client_config();
    config.trust = weir_net::client::Trust::Fingerprint([0xab; 32]);
    let err = match weir_net::client::Client::connect(config).await {
        Ok(_) => panic!("a wrong pin was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("fingerprint mismatch"), "{err}");
    assert!(err.contains(&server.fingerprint), "{err}");
    server.stop().await;
}
