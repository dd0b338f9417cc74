//! One client connection: the QUIC handshake, `Hello`/`Welcome`, one
//! shared stream for small single-answer requests (`lane.rs`) and one
//! bidirectional stream for every other request (so a large read delays
//! nothing else), a writer that sends the requests made together in one go,
//! and a dispatcher that hands each server-opened subscription stream to the
//! subscription waiting for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::FutureExt;
use quinn::RecvStream;
use tokio::sync::{mpsc, oneshot};

use super::lane::{self, Answers};
use super::{ClientConfig, ClientError};
use crate::proto::{ChunkDecoder, Encoder, Frame, Hello, Message, MAX_VERSION, MIN_VERSION};

/// Reads frames off one receive stream.
pub(crate) struct FrameReader {
    recv: RecvStream,
    decoder: ChunkDecoder,
}

impl FrameReader {
    pub(crate) fn new(recv: RecvStream, max_frame: u32) -> Self {
        FrameReader {
            recv,
            decoder: ChunkDecoder::new(max_frame),
        }
    }

    /// The next frame, or `None` when the server finished the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame>, ClientError> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => return Ok(Some(f)),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            match self.recv.read_chunk(64 << 10, true).await {
                Ok(Some(chunk)) => self.decoder.push(chunk.bytes),
                Ok(None) => {
                    return match self.decoder.truncated() {
                        None => Ok(None),
                        Some(_) => Err(ClientError::Protocol("stream ended inside a frame".into())),
                    }
                }
                Err(e) => return Err(ClientError::Connection(e.to_string())),
            }
        }
    }
}

type Waiting = oneshot::Sender<(Frame, FrameReader)>;

/// A request on its way to the writer (`send_requests`).
enum Outgoing {
    /// On a stream of its own, whose answers go to `sent`.
    Own {
        chunks: [Bytes; 2],
        sent: oneshot::Sender<Result<FrameReader, ClientError>>,
    },
    /// On the shared stream (`lane.rs`); its answer is routed by id.
    Shared { chunks: [Bytes; 2] },
}

/// An established, greeted connection.
pub(crate) struct Conn {
    pub quic: quinn::Connection,
    /// Encodes for the server's frame limit from `Welcome`.
    pub encoder: Encoder,
    /// The protocol version the server chose in `Welcome`.
    pub version: u8,
    /// Subscriptions waiting for their stream, by request id.
    waiting: Arc<Mutex<HashMap<u32, Waiting>>>,
    dispatcher: tokio::task::AbortHandle,
    /// Requests for the writer task, which ends when this is dropped.
    outgoing: mpsc::UnboundedSender<Outgoing>,
    /// Requests waiting for their answer on the shared stream.
    answers: Answers,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

impl Conn {
    /// Connects, negotiates the protocol version and starts the dispatcher.
    pub(crate) async fn open(
        endpoint: &quinn::Endpoint,
        quinn_config: &quinn::ClientConfig,
        config: &ClientConfig,
    ) -> Result<Conn, ClientError> {
        let connecting = endpoint
            .connect_with(quinn_config.clone(), config.server, &config.server_name)
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let quic = connecting
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let hello = Message::Hello(Hello {
            min_version: MIN_VERSION,
            max_version: MAX_VERSION,
            max_frame: config.max_frame,
            client: config.client_name.clone(),
            auth_token: config.auth_token.clone(),
        });
        let mut reader = send_on_new_stream(&quic, &Encoder::default(), 1, hello, config.max_frame)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let welcome = match reader.next().await? {
            Some(Frame {
                message: Message::Welcome(w),
                ..
            }) => w,
            Some(Frame {
                message: Message::Error(e),
                ..
            }) => return Err(ClientError::Server(e)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )))
            }
        };
        let waiting: Arc<Mutex<HashMap<u32, Waiting>>> = Arc::default();
        let dispatcher = tokio::spawn(dispatch(
            quic.clone(),
            Arc::clone(&waiting),
            config.max_frame,
        ))
        .abort_handle();
        let (outgoing, queued) = mpsc::unbounded_channel();
        let answers = Answers::default();
        tokio::spawn(send_requests(
            quic.clone(),
            queued,
            answers.clone(),
            config.max_frame,
        ));
        Ok(Conn {
            quic,
            encoder: Encoder::new(welcome.max_frame).with_version(welcome.version),
            version: welcome.version,
            waiting,
            dispatcher,
            outgoing,
            answers,
        })
    }

    /// Whether the connection is still usable.
    pub(crate) fn is_open(&self) -> bool {
        self.quic.close_reason().is_none()
    }

    /// Sends `message` as request `id` on a new stream and returns the
    /// stream's answers.
    pub(crate) async fn request(
        &self,
        id: u32,
        message: Message,
    ) -> Result<FrameReader, ClientError> {
        let chunks = encode(&self.encoder, id, message)?;
        self.send_own(chunks).await
    }

    /// Has the writer send `chunks` on a stream of their own.
    async fn send_own(&self, chunks: [Bytes; 2]) -> Result<FrameReader, ClientError> {
        let (sent, reader) = oneshot::channel();
        self.outgoing
            .send(Outgoing::Own { chunks, sent })
            .map_err(|_| gone())?;
        reader.await.map_err(|_| gone())?
    }

    /// Sends `message` as request `id`, whose answer is one frame, and
    /// returns that frame: on the shared stream if it is small (`lane.rs`),
    /// else on a stream of its own.
    pub(crate) async fn call(&self, id: u32, message: Message) -> Result<Frame, ClientError> {
        let chunks = encode(&self.encoder, id, message)?;
        if chunks[0].len() + chunks[1].len() > lane::LANE_MAX_BYTES {
            let mut reader = self.send_own(chunks).await?;
            return reader
                .next()
                .await?
                .ok_or_else(|| ClientError::Connection("stream ended without an answer".into()));
        }
        let (_expected, answer) = self.answers.expect(id);
        self.outgoing
            .send(Outgoing::Shared { chunks })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Registers interest in the stream of subscription `id`.
    pub(crate) fn expect_subscription(&self, id: u32) -> oneshot::Receiver<(Frame, FrameReader)> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        rx
    }

    /// Forgets subscription `id` (it failed before its stream arrived).
    pub(crate) fn forget_subscription(&self, id: u32) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn send_on_new_stream(
    quic: &quinn::Connection,
    encoder: &Encoder,
    id: u32,
    message: Message,
    max_frame: u32,
) -> Result<FrameReader, ClientError> {
    let chunks = encode(encoder, id, message)?;
    open_and_write(quic.clone(), chunks, max_frame).await
}

/// `message` as request `id`, in the two buffers a frame encodes to.
fn encode(encoder: &Encoder, id: u32, message: Message) -> Result<[Bytes; 2], ClientError> {
    let encoded = encoder
        .encode(&Frame::new(id, message))
        .map_err(|e| ClientError::Encode(e.to_string()))?;
    Ok([encoded.head().clone(), encoded.tail().clone()])
}

fn gone() -> ClientError {
    ClientError::Connection("the connection is closed".into())
}

/// Opens a stream, writes `chunks` on it and finishes it.
async fn open_and_write(
    quic: quinn::Connection,
    mut chunks: [Bytes; 2],
    max_frame: u32,
) -> Result<FrameReader, ClientError> {
    let (mut send, recv) = quic
        .open_bi()
        .await
        .map_err(|e| ClientError::Connection(e.to_string()))?;
    send.write_all_chunks(&mut chunks)
        .await
        .map_err(|e| ClientError::Connection(e.to_string()))?;
    // One request per stream: finishing tells the server no more come, so it
    // finishes its side once the request is answered.
    let _ = send.finish();
    Ok(FrameReader::new(recv, max_frame))
}

/// Sends the connection's requests. Each caller's task would otherwise
/// write its own request and wake quinn's connection driver, which tokio
/// runs next: one datagram per request. Here the writer first lets every
/// task that woke with it queue its request (`yield_now`), then writes all
/// of them before it yields, so the driver packs them into full datagrams
/// (the server then receives, decrypts and acknowledges a few packets per
/// batch of appends instead of one per append). A request on a stream of
/// its own whose write has to wait goes on in a task of its own, so it
/// holds up no other request; writes on the shared stream are small and go
/// in order.
async fn send_requests(
    quic: quinn::Connection,
    mut queued: mpsc::UnboundedReceiver<Outgoing>,
    answers: Answers,
    max_frame: u32,
) {
    let mut shared: Option<quinn::SendStream> = None;
    // The shared stream's reader holds the connection open: it ends with
    // this writer, which ends when the `Conn` is dropped.
    let mut reader = AbortOnDrop(None);
    while let Some(first) = queued.recv().await {
        tokio::task::yield_now().await;
        let mut next = Some(first);
        while let Some(request) = next.take().or_else(|| queued.try_recv().ok()) {
            match request {
                Outgoing::Own { chunks, sent } => {
                    let mut write = Box::pin(open_and_write(quic.clone(), chunks, max_frame));
                    match (&mut write).now_or_never() {
                        Some(r) => {
                            let _ = sent.send(r);
                        }
                        None => {
                            tokio::spawn(async move {
                                let _ = sent.send(write.await);
                            });
                        }
                    }
                }
                Outgoing::Shared { mut chunks } => {
                    if shared.is_none() {
                        match quic.open_bi().await {
                            Ok((send, recv)) => {
                                let task = tokio::spawn(lane::read_answers(
                                    recv,
                                    answers.clone(),
                                    max_frame,
                                ));
                                reader.replace(task.abort_handle());
                                shared = Some(send);
                            }
                            Err(e) => {
                                answers.fail_all(&e.to_string());
                                continue;
                            }
                        }
                    }
                    let send = shared.as_mut().expect("opened above");
                    if let Err(e) = send.write_all_chunks(&mut chunks).await {
                        // The stream is gone (reset, or the connection
                        // closed): whoever waits on it gets no answer.
                        shared = None;
                        answers.fail_all(&e.to_string());
                    }
                }
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl AbortOnDrop {
    /// Holds `task` instead, aborting the one held before.
    fn replace(&mut self, task: tokio::task::AbortHandle) {
        if let Some(old) = self.0.replace(task) {
            old.abort();
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Accepts subscription streams and hands each, with its first frame
/// (`Subscribed`), to the subscription that asked for it.
async fn dispatch(
    quic: quinn::Connection,
    waiting: Arc<Mutex<HashMap<u32, Waiting>>>,
    max_frame: u32,
) {
    while let Ok(recv) = quic.accept_uni().await {
        let waiting = Arc::clone(&waiting);
        tokio::spawn(async move {
            let mut reader = FrameReader::new(recv, max_frame);
            let Ok(Some(first)) = reader.next().await else {
                return;
            };
            let tx = waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&first.request_id);
            if let Some(tx) = tx {
                let _ = tx.send((first, reader));
            }
            // Nobody waits (the subscription was dropped): dropping the
            // stream tells the server to stop sending.
        });
    }
}
