//! The server side of one binary-protocol connection, independent of the
//! transport: the handshake, one handler per request, subscriptions driving
//! engine followers, request-id bookkeeping and the connection's limits.
//!
//! A transport door (QUIC today) decodes frames from its channels and hands
//! each to [`Session::on_frame`] together with the [`FrameSink`] its answers
//! go to; it opens subscription channels when asked ([`Transport`]). The
//! session says when the connection must close ([`Flow::Close`]); the door
//! closes it after flushing the `Error` that explains why.
//!
//! Ordering: requests of one channel are *started* in arrival order (an
//! engine mutation is submitted to the commit pipeline before the next frame
//! is looked at), so a client that pipelines `Create` then `Append`, or a
//! producer's consecutive sequences, on one channel gets them applied in that
//! order. Answers complete in any order.

#![warn(missing_docs)]

mod change_frames;
mod data;
mod deliveries;
mod gate;
mod requests;
mod sink;
mod state;
mod stats;
mod subscription;
mod touch;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use weir_storage::Engine;

use crate::proto::{
    clamp_max_frame, DecodeError, Encoded, Encoder, ErrorKind, Frame, Message, WireError,
    DEFAULT_MAX_FRAME, MAX_VERSION, MIN_VERSION,
};

pub use sink::{FrameSink, SinkClosed, SubscriptionSink, Transport};
pub use stats::ConnStats;

/// Limits and identity of the sessions of one door.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Largest frame this server accepts (announced in `Welcome`).
    pub max_frame: u32,
    /// Requests (subscriptions included) in flight per connection before
    /// new ones are refused with `Busy`.
    pub max_in_flight: usize,
    /// Active subscriptions per connection before `Subscribe` gets `Busy`.
    /// Keep it at most the peer's unidirectional stream allowance on QUIC.
    pub max_subscriptions: usize,
    /// Cap on a `Read`'s byte budget; the spec lets the server lower it, and
    /// this bounds what one read holds in memory.
    pub read_max_bytes: u32,
    /// A connection with nothing in flight and no frame received for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// How long a subscription's last frame may take to be written during a
    /// shutdown before its channel is aborted.
    pub shutdown_grace: Duration,
    /// Name and version sent in `Welcome`.
    pub server_name: String,
    /// Token checks on every request (`None`: authentication is off).
    pub auth: Option<crate::auth::Auth>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: 1024,
            max_subscriptions: 256,
            read_max_bytes: 4 << 20,
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(5),
            server_name: format!("weir/{}", env!("CARGO_PKG_VERSION")),
            auth: None,
        }
    }
}

/// What the door does after a frame was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Flush the answers already queued and close the connection: the peer
    /// broke the framing or the handshake.
    Close,
}

/// A stop order for a running subscription.
pub(crate) enum Stop {
    /// `Unsubscribe`: answer with the offset after the last record sent.
    Unsubscribe(oneshot::Sender<u64>),
}

struct State {
    /// The encoder for the peer's frame limit and the negotiated version,
    /// once `Hello` was accepted.
    encoder: Option<Encoder>,
    /// Request ids in flight (subscriptions until they end).
    in_flight: HashSet<u32>,
    /// Stop handles of the active subscriptions, by request id.
    subs: HashMap<u32, tokio::sync::mpsc::Sender<Stop>>,
    /// When the last frame arrived or the last request finished.
    last_activity: Instant,
    /// With authentication on: who the `Hello` token says the peer is.
    principal: Option<crate::auth::Principal>,
    /// A token the transport received before `Hello` (the WebSocket
    /// upgrade's `Authorization` header), used when `Hello` carries none.
    transport_token: Option<String>,
}

/// One connection's protocol state. Cheap to share: handlers and
/// subscription tasks hold an `Arc`.
pub struct Session<T: Transport> {
    engine: Engine,
    config: Arc<SessionConfig>,
    transport: T,
    stats: Arc<ConnStats>,
    state: Mutex<State>,
    shutdown: watch::Receiver<bool>,
    /// Turned true when the connection is gone, so subscription tasks that
    /// wait for new records end too.
    closed: watch::Sender<bool>,
    /// The one task that runs all of the connection's subscriptions.
    deliveries: deliveries::Deliveries,
    /// Keeps the door's open-connections gauge up for the session's life.
    _open: Option<crate::door_metrics::Gauge>,
}

impl<T: Transport> Session<T> {
    /// A session over `transport`; `shutdown` turning true ends its
    /// subscriptions with `Resume(ShuttingDown)`.
    pub fn new(
        engine: Engine,
        config: Arc<SessionConfig>,
        transport: T,
        stats: Arc<ConnStats>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(Session {
            _open: stats.connection(),
            engine,
            config,
            transport,
            stats,
            state: Mutex::new(State {
                encoder: None,
                in_flight: HashSet::new(),
                subs: HashMap::new(),
                last_activity: Instant::now(),
                principal: None,
                transport_token: None,
            }),
            shutdown,
            closed: watch::Sender::new(false),
            deliveries: Default::default(),
        })
    }

    /// Runs `f` (a subscription's loop, an answer waiting for durability, a
    /// QUIC request stream's writer) on the connection's one background task
    /// (`deliveries.rs`), so what one commit completes for this connection is
    /// written in one go, before the transport's driver runs.
    pub(crate) fn run_on_connection(
        &self,
        f: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.deliveries.spawn(f);
    }

    /// A bearer token the transport received before `Hello` (checked when
    /// `Hello` carries no token of its own).
    pub fn set_transport_token(&self, token: Option<String>) {
        self.lock().transport_token = token;
    }

    /// Tells the session its connection is closed: subscription tasks stop.
    /// The transport calls this when the connection ends for any reason.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The connection's counters.
    pub fn stats(&self) -> &Arc<ConnStats> {
        &self.stats
    }

    /// The transport this session answers through.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The session's limits.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Active subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.lock().subs.len()
    }

    /// Requests in flight, subscriptions included.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panicking handler cannot leave the plain sets inconsistent, so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The negotiated protocol version (version 1 before `Hello`).
    pub fn version(&self) -> u8 {
        self.encoder().version()
    }

    /// The encoder for this peer (the default limit before `Hello`, which
    /// only matters for small error frames).
    pub(crate) fn encoder(&self) -> Encoder {
        self.lock().encoder.unwrap_or_default()
    }

    /// Resolves when the connection has been idle for the configured
    /// timeout: nothing in flight and no frame received.
    /// Also resolves when the peer's token expires: the connection, its
    /// subscriptions and waits end with it.
    pub async fn idle(&self) {
        loop {
            let (busy, last, expiry) = {
                let s = self.lock();
                let expiry = s.principal.as_ref().and_then(|p| p.expires_at_ms);
                (!s.in_flight.is_empty(), s.last_activity, expiry)
            };
            let deadline = last + self.config.idle_timeout;
            if !busy && Instant::now() >= deadline {
                return;
            }
            let mut wake = if busy {
                Instant::now() + self.config.idle_timeout
            } else {
                deadline
            };
            if let Some(at) = expiry {
                let left = at.saturating_sub(weir_storage::now_ms());
                if left == 0 {
                    tracing::debug!("closing a connection whose token expired");
                    return;
                }
                wake = wake.min(Instant::now() + Duration::from_millis(left));
            }
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Sends `message` for `request_id` on `sink`, counting it; a closed
    /// sink means the peer is gone and there is nobody left to tell.
    pub(crate) async fn send<S: FrameSink>(
        &self,
        sink: &mut S,
        request_id: u32,
        message: Message,
    ) -> Result<(), SinkClosed> {
        let e = self.encode(request_id, message)?;
        sink.send(e).await
    }

    /// Encodes `message` for request `request_id`, counting errors sent.
    pub(crate) fn encode(&self, request_id: u32, message: Message) -> Result<Encoded, SinkClosed> {
        if let Message::Error(e) = &message {
            self.stats.error_out(e.kind.code());
        }
        let frame = Frame::new(request_id, message);
        match self.encoder().encode(&frame) {
            Ok(e) => Ok(e),
            Err(e) => {
                // Only a reply larger than the peer's limit gets here (a
                // control message is at most 32 KiB and every peer accepts
                // 64 KiB); report it rather than drop the request silently.
                let err = WireError::new(ErrorKind::Internal, format!("cannot encode reply: {e}"));
                let frame = Frame::new(request_id, Message::Error(err));
                self.encoder().encode(&frame).map_err(|_| SinkClosed)
            }
        }
    }

    async fn error<S: FrameSink>(&self, sink: &mut S, request_id: u32, kind: ErrorKind, msg: &str) {
        let _ = self
            .send(sink, request_id, Message::Error(WireError::new(kind, msg)))
            .await;
    }

    /// Answers a frame that could not be decoded; fatal errors close the
    /// connection, as do unsupported versions.
    pub async fn on_decode_error(&self, e: DecodeError, reply: &mut T::Reply) -> Flow {
        self.stats.frame_in();
        let close = e.is_fatal() || matches!(e, DecodeError::UnsupportedVersion { .. });
        let _ = self
            .send(reply, e.request_id(), Message::Error(e.to_wire()))
            .await;
        if close {
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    /// Handles one request frame whose answers go to `reply`.
    pub async fn on_frame(self: &Arc<Self>, frame: Frame, reply: &mut T::Reply) -> Flow {
        self.stats.frame_in();
        let id = frame.request_id;
        let opcode = frame.message.opcode() as u8;
        self.stats.request(opcode);
        let (greeted, version) = {
            let mut s = self.lock();
            s.last_activity = Instant::now();
            (s.encoder.is_some(), s.encoder.map(|e| e.version()))
        };
        if let Message::Hello(hello) = frame.message {
            if greeted {
                let kind = ErrorKind::UnexpectedMessage { opcode };
                self.error(reply, id, kind, "second Hello").await;
                return Flow::Close;
            }
            return self.hello(id, hello, reply).await;
        }
        if !greeted {
            let kind = ErrorKind::UnexpectedMessage { opcode };
            self.error(reply, id, kind, "the first frame must be Hello")
                .await;
            return Flow::Close;
        }
        if version != Some(frame.version) {
            let kind = ErrorKind::UnsupportedVersion {
                min_version: MIN_VERSION,
                max_version: MAX_VERSION,
            };
            self.error(
                reply,
                id,
                kind,
                "a frame of another version than negotiated",
            )
            .await;
            return Flow::Close;
        }
        // Only a JSON request can get here with a message its version lacks
        // (binary frames are checked by the decoder); answer it the same way.
        if frame.message.opcode().since() > frame.version {
            let kind = ErrorKind::UnknownOpcode { opcode };
            self.error(reply, id, kind, "not defined in the negotiated version")
                .await;
            return Flow::Continue;
        }
        if let Message::Create(c) = &frame.message {
            if c.state.is_some() && frame.version < crate::proto::STATE_VERSION {
                let why = "a state mode needs protocol version 2";
                self.error(reply, id, ErrorKind::Invalid, why).await;
                return Flow::Continue;
            }
        }
        if !frame.message.opcode().is_request() {
            let kind = ErrorKind::UnexpectedMessage { opcode };
            self.error(reply, id, kind, "a server frame sent by a client")
                .await;
            return Flow::Continue;
        }
        if let Message::Ping = frame.message {
            // Ping is answered at once, but id 0 is reserved for it too.
            let msg = if id == 0 {
                Message::Error(WireError::new(
                    ErrorKind::BadRequestId,
                    "request id 0 is reserved",
                ))
            } else {
                Message::Pong
            };
            let _ = self.send(reply, id, msg).await;
            return Flow::Continue;
        }
        if let Err((kind, why, close)) = self.authorize(&frame.message) {
            self.error(reply, id, kind, why).await;
            return if close { Flow::Close } else { Flow::Continue };
        }
        if let Err((kind, why)) = self.admit(id, &frame.message) {
            self.error(reply, id, kind, why).await;
            return Flow::Continue;
        }
        requests::dispatch(self, id, frame.message, reply).await;
        Flow::Continue
    }

    /// Version negotiation (PROTOCOL.md section 3).
    async fn hello(&self, id: u32, hello: crate::proto::Hello, reply: &mut T::Reply) -> Flow {
        let lo = hello.min_version.max(MIN_VERSION);
        let hi = hello.max_version.min(MAX_VERSION);
        if lo > hi {
            let kind = ErrorKind::UnsupportedVersion {
                min_version: MIN_VERSION,
                max_version: MAX_VERSION,
            };
            self.error(reply, id, kind, "no common protocol version")
                .await;
            return Flow::Close;
        }
        if let Some(auth) = &self.config.auth {
            let preset = self.lock().transport_token.take();
            let token = hello.auth_token.as_deref().or(preset.as_deref());
            match auth.authenticate(token) {
                Ok(p) => {
                    tracing::debug!(principal = %p.name, "binary session authenticated");
                    self.lock().principal = Some(p);
                }
                Err(r) => {
                    self.error(reply, id, ErrorKind::Unauthorized, r.message())
                        .await;
                    return Flow::Close;
                }
            }
        }
        self.lock().encoder = Some(Encoder::new(hello.max_frame).with_version(hi));
        tracing::debug!(client = %hello.client, version = hi, "binary session started");
        let welcome = crate::proto::Welcome {
            version: hi,
            max_frame: clamp_max_frame(self.config.max_frame),
            server: self.config.server_name.clone(),
        };
        match self.send(reply, id, Message::Welcome(welcome)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    /// With authentication on, whether the session's principal may make
    /// this request; `Err` says how to refuse it and whether to close (an
    /// expired token closes the connection, a missing grant does not).
    fn authorize(&self, m: &Message) -> Result<(), (ErrorKind, &'static str, bool)> {
        if self.config.auth.is_none() {
            return Ok(());
        }
        let Some((p, stream)) = permission_of(m) else {
            return Ok(());
        };
        let s = self.lock();
        let Some(principal) = &s.principal else {
            let r = crate::auth::Refusal::Missing;
            return Err((ErrorKind::Unauthorized, r.message(), true));
        };
        match principal.check(p, stream, weir_storage::now_ms()) {
            Ok(()) => Ok(()),
            Err(r @ crate::auth::Refusal::Forbidden) => {
                Err((ErrorKind::Forbidden, r.message(), false))
            }
            Err(r) => Err((ErrorKind::Unauthorized, r.message(), true)),
        }
    }

    /// Registers request `id` as in flight, or says why it is refused.
    fn admit(&self, id: u32, m: &Message) -> Result<(), (ErrorKind, &'static str)> {
        if id == 0 {
            return Err((ErrorKind::BadRequestId, "request id 0 is reserved"));
        }
        let mut s = self.lock();
        if s.in_flight.contains(&id) {
            return Err((ErrorKind::BadRequestId, "request id already in flight"));
        }
        if s.in_flight.len() >= self.config.max_in_flight {
            return Err((ErrorKind::Busy, "too many requests in flight"));
        }
        let subscribes = matches!(m, Message::Subscribe(_) | Message::SubscribeState(_));
        if subscribes && s.subs.len() >= self.config.max_subscriptions {
            return Err((ErrorKind::Busy, "too many subscriptions on this connection"));
        }
        s.in_flight.insert(id);
        Ok(())
    }

    /// Marks request `id` as finished; its id may be reused.
    pub(crate) fn done(&self, id: u32) {
        let mut s = self.lock();
        s.in_flight.remove(&id);
        s.subs.remove(&id);
        s.last_activity = Instant::now();
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    pub(crate) fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

/// Resolves once `rx` turns true (never if its sender is gone without
/// saying so): the shape of the shutdown and closed signals.
pub async fn signalled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// [`signalled`] for a receiver of its own, to pin once for a loop's life.
pub(crate) async fn until_signalled(mut rx: watch::Receiver<bool>) {
    signalled(&mut rx).await
}

/// The permission and stream a request needs (`None`: connection-level
/// requests, which need nothing beyond an authenticated session).
fn permission_of(m: &Message) -> Option<(crate::auth::Permission, &str)> {
    use crate::auth::Permission::*;
    Some(match m {
        Message::Create(c) => (Create, c.stream.as_str()),
        Message::Delete(d) => (Delete, d.stream.as_str()),
        Message::Append(a) => (Append, a.stream.as_str()),
        Message::Head(h) => (Read, h.stream.as_str()),
        Message::Read(r) => (Read, r.stream.as_str()),
        Message::Subscribe(s) => (Read, s.stream.as_str()),
        Message::Get(g) => (Read, g.stream.as_str()),
        Message::Scan(s) => (Read, s.stream.as_str()),
        Message::SubscribeState(s) => (Read, s.stream.as_str()),
        Message::Wait(w) => (Read, w.stream.as_str()),
        Message::ActivateTemplates(a) => (Read, a.stream.as_str()),
        _ => return None,
    })
}
