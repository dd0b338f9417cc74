//! Weir's binary protocol over WebSocket (`ws://HOST:PORT/v1/ws`, PROTOCOL.md
//! section 9.1): one frame per binary message, everything multiplexed on the
//! one socket by request id. Requests pipeline freely: every caller gets its
//! own request id and waits only for its own answer. A subscription's
//! `Subscribed`, `Data` and terminal frame carry its `Subscribe`'s request id
//! and are routed to that subscription's channel. Records travel as raw bytes
//! in `application/octet-stream` streams, as on QUIC.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use weir_net::proto::{
    self, decode_frame, Create, Delete, Encoder, Frame, Hello, Message, SubscribeFrom, WireError,
};

use super::{binary_append, Ack, Delivery, ProducerTag, Subscribed, Transport, TransportOptions};
use crate::config::StartFrom;
use crate::target::Target;

/// Content type of the streams this transport creates.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// Frames a subscription may have queued before the socket reader waits
/// for it (backpressure reaches the server through TCP).
const SUB_QUEUE: usize = 1024;

/// Where the reader sends the frames of one request id.
enum Route {
    /// A request with a single final answer.
    Once(oneshot::Sender<Message>),
    /// A subscription: every frame until its terminal one.
    Sub(mpsc::Sender<Message>),
}

/// State shared by the transport, its reader task and its subscriptions.
struct Inner {
    /// Encoded frames to the writer task.
    out: mpsc::UnboundedSender<Bytes>,
    /// Open requests by id.
    routes: Mutex<HashMap<u32, Route>>,
    next_id: AtomicU32,
    /// Encodes for the server's announced frame limit.
    encoder: Encoder,
    /// Set when the socket is gone; new requests fail at once.
    closed: AtomicBool,
    /// Why the socket closed, when known.
    close_reason: Mutex<Option<String>>,
}

impl Inner {
    fn id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != proto::CONNECTION_ID {
                return id;
            }
        }
    }

    fn gone(&self) -> anyhow::Error {
        let why = self.close_reason.lock().unwrap().clone();
        anyhow!(
            "WebSocket connection closed{}",
            why.map(|w| format!(": {w}")).unwrap_or_default()
        )
    }

    /// Registers `route` under a fresh id and sends `message` with it.
    fn send(&self, message: Message, route: Route) -> anyhow::Result<u32> {
        let id = self.id();
        let bytes = self
            .encoder
            .encode(&Frame::new(id, message))
            .context("encoding a frame")?
            .to_bytes();
        self.routes.lock().unwrap().insert(id, route);
        // Checked after inserting: the reader sets `closed` before draining
        // the routes, so a route inserted here is either drained or refused.
        if self.closed.load(Ordering::Acquire) || self.out.send(bytes).is_err() {
            self.routes.lock().unwrap().remove(&id);
            return Err(self.gone());
        }
        Ok(id)
    }

    /// Sends `message` and waits for its final answer.
    async fn call(&self, message: Message) -> anyhow::Result<Message> {
        let (tx, rx) = oneshot::channel();
        self.send(message, Route::Once(tx))?;
        match rx.await {
            Ok(Message::Error(e)) => Err(server_error(&e)),
            Ok(m) => Ok(m),
            Err(_) => Err(self.gone()),
        }
    }

    /// Starts a subscription; its frames arrive on the returned receiver.
    fn subscribe(
        &self,
        stream: &str,
        from: SubscribeFrom,
    ) -> anyhow::Result<(u32, mpsc::Receiver<Message>)> {
        let (tx, rx) = mpsc::channel(SUB_QUEUE);
        let msg = Message::Subscribe(proto::Subscribe {
            stream: stream.into(),
            from,
        });
        let id = self.send(msg, Route::Sub(tx))?;
        Ok((id, rx))
    }

    /// Forgets subscription `id` and asks the server to stop it.
    fn unsubscribe(&self, id: u32) {
        if self.routes.lock().unwrap().remove(&id).is_none() || self.closed.load(Ordering::Acquire)
        {
            return; // already ended
        }
        let uid = self.id();
        let msg = Message::Unsubscribe(proto::Unsubscribe { subscription: id });
        if let Ok(e) = self.encoder.encode(&Frame::new(uid, msg)) {
            // The `Unsubscribed` answer finds no route and is dropped.
            let _ = self.out.send(e.to_bytes());
        }
    }
}

fn server_error(e: &WireError) -> anyhow::Error {
    anyhow!("server error {:?}: {}", e.kind, e.message)
}

fn unexpected(m: &Message) -> anyhow::Error {
    anyhow!("unexpected {:?} frame", m.opcode())
}

/// One WebSocket connection.
pub struct WsTransport {
    inner: Arc<Inner>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Drop for WsTransport {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
        // Subscriptions still alive see the connection end.
        self.inner.closed.store(true, Ordering::Release);
        self.inner
            .close_reason
            .lock()
            .unwrap()
            .get_or_insert_with(|| "transport dropped".into());
        self.inner.routes.lock().unwrap().clear();
    }
}

impl WsTransport {
    /// Opens the WebSocket, then says `Hello` and waits for `Welcome`.
    pub async fn connect(target: &Target, _options: TransportOptions) -> anyhow::Result<Self> {
        // The streams workload needs nothing of version 2.
        Self::connect_version(target, proto::VERSION).await
    }

    /// [`WsTransport::connect`] offering protocol versions up to
    /// `max_version` (2 for the state requests).
    pub(crate) async fn connect_version(target: &Target, max_version: u8) -> anyhow::Result<Self> {
        let url = format!("ws://{}{}", target.authority, target.path);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
            .await
            .with_context(|| format!("connecting to {target}"))?;
        let (mut sink, mut source) = ws.split();

        // Handshake, before anything else is sent (PROTOCOL.md section 3).
        let hello = Frame::new(
            1,
            Message::Hello(Hello {
                min_version: proto::MIN_VERSION,
                max_version,
                max_frame: proto::DEFAULT_MAX_FRAME,
                client: format!("weir-load/{}", env!("CARGO_PKG_VERSION")),
                auth_token: None,
            }),
        );
        let hello = Encoder::new(proto::MIN_MAX_FRAME)
            .encode(&hello)?
            .to_bytes();
        sink.send(WsMessage::Binary(hello))
            .await
            .context("sending Hello")?;
        let welcome = loop {
            match source.next().await {
                Some(Ok(WsMessage::Binary(b))) => {
                    break decode_frame(b, proto::DEFAULT_MAX_FRAME).context("decoding Welcome")?
                }
                Some(Ok(WsMessage::Close(c))) => bail!("server closed during handshake: {c:?}"),
                Some(Ok(_)) => continue, // pings and pongs
                Some(Err(e)) => return Err(e).context("waiting for Welcome"),
                None => bail!("connection ended before Welcome"),
            }
        };
        let (max_frame, version) = match welcome.message {
            Message::Welcome(w) => (proto::clamp_max_frame(w.max_frame), w.version),
            Message::Error(e) => return Err(server_error(&e)).context("handshake refused"),
            m => return Err(unexpected(&m)).context("handshake"),
        };

        let (out, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
        let inner = Arc::new(Inner {
            out,
            routes: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(2),
            encoder: Encoder::new(max_frame).with_version(version),
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
        });

        // Writer: sends what is queued, flushing once per burst. It yields
        // once first, so that every producer woken by the same answers has
        // queued its next request: tokio would otherwise run this task right
        // after the first of them, and the burst would be one request.
        let winner = inner.clone();
        let writer = tokio::spawn(async move {
            while let Some(first) = out_rx.recv().await {
                tokio::task::yield_now().await;
                let mut r = sink.feed(WsMessage::Binary(first)).await;
                while r.is_ok() {
                    match out_rx.try_recv() {
                        Ok(b) => r = sink.feed(WsMessage::Binary(b)).await,
                        Err(_) => break,
                    }
                }
                if let Err(e) = r.and(sink.flush().await) {
                    winner
                        .close_reason
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| format!("write failed: {e}"));
                    break;
                }
            }
            let _ = sink.close().await;
        });

        // Reader: routes every frame by request id.
        let rinner = inner.clone();
        let reader = tokio::spawn(async move {
            let why = read_loop(&rinner, &mut source).await;
            rinner.close_reason.lock().unwrap().get_or_insert(why);
            rinner.closed.store(true, Ordering::Release);
            // Dropping the senders wakes every waiter with "closed".
            rinner.routes.lock().unwrap().clear();
        });

        Ok(WsTransport {
            inner,
            reader,
            writer,
        })
    }
}

impl WsTransport {
    /// Sends `message` and waits for its single final answer (an `Error`
    /// answer is returned as an error).
    pub(crate) async fn request(&self, message: Message) -> anyhow::Result<Message> {
        self.inner.call(message).await
    }

    /// Sends a request whose answers are a stream of frames (a
    /// `SubscribeState`); they arrive on the returned channel, which
    /// unsubscribes when dropped.
    pub(crate) fn open(&self, message: Message) -> anyhow::Result<WsChannel> {
        let (tx, rx) = mpsc::channel(SUB_QUEUE);
        let id = self.inner.send(message, Route::Sub(tx))?;
        Ok(WsChannel {
            rx,
            guard: SubGuard {
                inner: self.inner.clone(),
                id,
            },
        })
    }
}

/// The frames of one streaming request, in order (see [`WsTransport::open`]).
pub(crate) struct WsChannel {
    rx: mpsc::Receiver<Message>,
    guard: SubGuard,
}

impl WsChannel {
    /// The next frame; `None` once the connection is gone.
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// Why the connection ended (after `recv` returned `None`).
    pub(crate) fn gone(&self) -> anyhow::Error {
        self.guard.inner.gone()
    }
}

/// Reads until the socket ends; returns why it ended.
async fn read_loop<S>(inner: &Inner, source: &mut S) -> String
where
    S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let bytes = match source.next().await {
            Some(Ok(WsMessage::Binary(b))) => b,
            Some(Ok(WsMessage::Close(c))) => return format!("server closed: {c:?}"),
            Some(Ok(WsMessage::Text(_))) => return "server sent a text message".into(),
            Some(Ok(_)) => continue, // pings are answered by tungstenite
            Some(Err(e)) => return format!("read failed: {e}"),
            None => return "connection ended".into(),
        };
        // Hello announced DEFAULT_MAX_FRAME: the server encodes for it.
        let frame = match decode_frame(bytes, proto::DEFAULT_MAX_FRAME) {
            Ok(f) => f,
            Err(e) => return format!("undecodable frame: {e}"),
        };
        let id = frame.request_id;
        if id == proto::CONNECTION_ID {
            if let Message::Error(e) = &frame.message {
                return format!("connection error {:?}: {}", e.kind, e.message);
            }
            continue;
        }
        let terminal = matches!(
            frame.message,
            Message::Error(_) | Message::Resume(_) | Message::EndOfStream(_)
        );
        let route = {
            let mut routes = inner.routes.lock().unwrap();
            match routes.get(&id) {
                Some(Route::Once(_)) => routes.remove(&id),
                Some(Route::Sub(tx)) => {
                    let tx = tx.clone();
                    if terminal {
                        routes.remove(&id);
                    }
                    Some(Route::Sub(tx))
                }
                None => None, // e.g. `Unsubscribed`, or Data after an unsubscribe
            }
        };
        match route {
            Some(Route::Once(tx)) => {
                let _ = tx.send(frame.message);
            }
            Some(Route::Sub(tx)) => {
                // Waits when the subscriber is behind; a dropped one is forgotten.
                let dropped = tx.send(frame.message).await.is_err();
                if dropped {
                    inner.unsubscribe(id);
                }
            }
            None => {}
        }
    }
}

/// Removes the route and unsubscribes when a subscription is dropped.
struct SubGuard {
    inner: Arc<Inner>,
    id: u32,
}

impl Drop for SubGuard {
    fn drop(&mut self) {
        self.inner.unsubscribe(self.id);
    }
}

/// A subscription's state while its records are consumed.
struct SubState {
    inner: Arc<Inner>,
    stream: String,
    rx: mpsc::Receiver<Message>,
    guard: SubGuard,
    /// Offset of the next record wanted.
    next: u64,
    done: bool,
}

impl SubState {
    /// The next delivery, or `None` when the subscription is over.
    async fn next_item(&mut self) -> Option<anyhow::Result<Delivery>> {
        loop {
            if self.done {
                return None;
            }
            let Some(msg) = self.rx.recv().await else {
                self.done = true;
                return Some(Err(self.inner.gone()));
            };
            match msg {
                Message::Data(b) => {
                    // Trimming by offset keeps deliveries exactly-once across
                    // resubscriptions whatever happens.
                    let Some(b) = b.skip_to(self.next) else {
                        continue;
                    };
                    if b.first_offset() != self.next {
                        self.done = true;
                        return Some(Err(anyhow!(
                            "gap: expected offset {}, got {}",
                            self.next,
                            b.first_offset()
                        )));
                    }
                    self.next = b.next_offset();
                    return Some(Ok(Delivery::Batch(b)));
                }
                Message::Subscribed(_) => continue,
                Message::Resume(r) => {
                    // The server ended it (draining); follow on from the offset.
                    let (id, rx) = match self
                        .inner
                        .subscribe(&self.stream, SubscribeFrom::Offset(r.offset))
                    {
                        Ok(x) => x,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    };
                    self.guard.id = id;
                    self.rx = rx;
                    return Some(Err(anyhow!(
                        "server asked to resume at {} ({:?}); resubscribed",
                        r.offset,
                        r.reason
                    )));
                }
                Message::EndOfStream(_) => {
                    self.done = true;
                    return None;
                }
                Message::Error(e) => {
                    self.done = true;
                    return Some(Err(server_error(&e)));
                }
                m => {
                    self.done = true;
                    return Some(Err(unexpected(&m)));
                }
            }
        }
    }
}

impl Transport for WsTransport {
    fn create<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let msg = Message::Create(Create {
                stream: stream.into(),
                content_type: CONTENT_TYPE.into(),
                ttl_secs: None,
                expires_at_ms: None,
                state: None,
            });
            match self.inner.call(msg).await? {
                Message::Created(_) => Ok(()),
                m => Err(unexpected(&m)),
            }
        })
    }

    fn append<'a>(
        &'a self,
        stream: &'a str,
        records: Vec<Bytes>,
        producer: Option<ProducerTag>,
    ) -> BoxFuture<'a, anyhow::Result<Ack>> {
        Box::pin(async move {
            let msg = Message::Append(binary_append(stream, records, producer));
            match self.inner.call(msg).await? {
                Message::Appended(a) => Ok(a.into()),
                m => Err(unexpected(&m)),
            }
        })
    }

    fn subscribe<'a>(
        &'a self,
        stream: &'a str,
        from: StartFrom,
    ) -> BoxFuture<'a, anyhow::Result<Subscribed>> {
        Box::pin(async move {
            let from = match from {
                StartFrom::Start => SubscribeFrom::Start,
                StartFrom::Now => SubscribeFrom::Now,
            };
            let (id, mut rx) = self.inner.subscribe(stream, from)?;
            let guard = SubGuard {
                inner: self.inner.clone(),
                id,
            };
            // `Subscribed` carries the fence: the exact first offset.
            let start = match rx.recv().await {
                Some(Message::Subscribed(s)) => s.fence,
                Some(Message::Error(e)) => return Err(server_error(&e)),
                Some(m) => return Err(unexpected(&m)),
                None => return Err(self.inner.gone()),
            };
            let state = SubState {
                inner: self.inner.clone(),
                stream: stream.to_string(),
                rx,
                guard,
                next: start,
                done: false,
            };
            let records = futures::stream::unfold(state, |mut s| async move {
                let item = s.next_item().await?;
                Some((item, s))
            })
            .boxed();
            Ok(Subscribed { start, records })
        })
    }

    fn delete<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let msg = Message::Delete(Delete {
                stream: stream.into(),
            });
            match self.inner.call(msg).await? {
                Message::Deleted => Ok(()),
                m => Err(unexpected(&m)),
            }
        })
    }
}
