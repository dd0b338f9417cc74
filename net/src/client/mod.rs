//! A Rust client of the binary protocol over QUIC.
//!
//! ```no_run
//! # async fn run() -> Result<(), weir_net::client::ClientError> {
//! use futures::StreamExt;
//! use weir_net::client::{Client, ClientConfig, Trust};
//! use weir_net::proto::SubscribeFrom;
//! use weir_storage::Record;
//!
//! let fp = weir_net::quic::parse_fingerprint("…printed by the server at start…").unwrap();
//! let client = Client::connect(ClientConfig::new("127.0.0.1:4433".parse().unwrap(), Trust::Fingerprint(fp))).await?;
//! client.create("orders", "application/json").await?;
//! client.append("orders", vec![Record::new("{}")]).await?;
//! let mut sub = client.subscribe("orders", SubscribeFrom::Start);
//! while let Some(batch) = sub.next().await {
//!     for r in batch?.iter() { println!("{} {:?}", r.offset, r.payload); }
//! }
//! # Ok(()) }
//! ```
//!
//! Requests pipeline: every call opens its own QUIC stream, so concurrent
//! calls proceed independently and complete in any order. The connection is
//! re-established on the next call after it was lost. Subscriptions resume
//! by themselves after a reconnect, from the offset after the last batch they
//! yielded. [`Producer`] makes appends idempotent, so retrying one after a
//! lost connection never writes it twice.

#![warn(missing_docs)]

mod conn;
mod lane;
mod state;
mod subscription;
mod tls;
mod touch;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use weir_storage::{Batch, Record};

use crate::proto::{
    Append, Appended, Create, Created, Delete, Head, Message, Read, ReadDone, StreamInfo,
    SubscribeFrom, WireError, DEFAULT_MAX_FRAME,
};
use crate::quic::TransportSettings;
use conn::Conn;

pub use state::{StateItem, StateSubscription};
pub use subscription::Subscription;
pub use tls::Trust;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's UDP address.
    pub server: SocketAddr,
    /// Name sent in TLS SNI and checked against the certificate with
    /// [`Trust::Ca`].
    pub server_name: String,
    /// How the server's certificate is trusted.
    pub trust: Trust,
    /// Largest frame this client accepts (announced in `Hello`).
    pub max_frame: u32,
    /// Name and version sent in `Hello`.
    pub client_name: String,
    /// How long one request may take before it fails with [`ClientError::Timeout`].
    pub request_timeout: Duration,
    /// How long a subscription keeps trying to reconnect before it yields
    /// its last error and ends.
    pub resume_for: Duration,
    /// QUIC transport parameters.
    pub transport: TransportSettings,
    /// Bearer token sent in `Hello` (a static token or a JWT), for servers
    /// with authentication on.
    pub auth_token: Option<String>,
}

impl ClientConfig {
    /// Defaults for a server at `server` trusted by `trust`.
    pub fn new(server: SocketAddr, trust: Trust) -> Self {
        ClientConfig {
            server,
            server_name: "localhost".into(),
            trust,
            max_frame: DEFAULT_MAX_FRAME,
            client_name: format!("weir-net-client/{}", env!("CARGO_PKG_VERSION")),
            request_timeout: Duration::from_secs(30),
            resume_for: Duration::from_secs(60),
            transport: TransportSettings::default(),
            auth_token: None,
        }
    }
}

/// Why a client call failed.
#[derive(Debug, Clone)]
pub enum ClientError {
    /// No connection could be established (retryable).
    Connect(String),
    /// The connection was lost during the call (retryable; the request may
    /// or may not have taken effect).
    Connection(String),
    /// The call did not complete within the request timeout (retryable).
    Timeout,
    /// The server answered with an `Error`.
    Server(WireError),
    /// The server broke the protocol.
    Protocol(String),
    /// The request cannot be encoded (too large for the server's limit).
    Encode(String),
}

impl ClientError {
    /// Whether retrying the call may succeed (transport trouble, not a refusal).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect(_) | ClientError::Connection(_) | ClientError::Timeout
        )
    }

    /// The engine error the server reported, if it was one.
    pub fn to_storage(&self) -> Option<weir_storage::Error> {
        match self {
            ClientError::Server(e) => e.to_storage(),
            _ => None,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Connection(e) => write!(f, "connection lost: {e}"),
            ClientError::Timeout => write!(f, "request timed out"),
            ClientError::Server(e) => write!(f, "server error {}: {}", e.kind.code(), e.message),
            ClientError::Protocol(e) => write!(f, "protocol violation by the server: {e}"),
            ClientError::Encode(e) => write!(f, "cannot encode the request: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Records read by [`Client::read`].
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    /// Batches in offset order, without gap from the requested offset.
    pub batches: Vec<Batch>,
    /// Where the read ended and the stream's tail.
    pub done: ReadDone,
}

struct Inner {
    config: ClientConfig,
    endpoint: quinn::Endpoint,
    quinn_config: quinn::ClientConfig,
    conn: Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU32,
}

/// A handle to one server; cheap to clone, all clones share one connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to the server (and greets it) now, so that a wrong address
    /// or certificate is reported here.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let quinn_config = quinn_config(&config)?;
        let bind: SocketAddr = if config.server.is_ipv6() {
            "[::]:0".parse().expect("valid address")
        } else {
            "0.0.0.0:0".parse().expect("valid address")
        };
        let endpoint =
            quinn::Endpoint::client(bind).map_err(|e| ClientError::Connect(e.to_string()))?;
        let client = Client {
            inner: Arc::new(Inner {
                config,
                endpoint,
                quinn_config,
                conn: Mutex::new(None),
                next_id: AtomicU32::new(1),
            }),
        };
        client.conn().await?;
        Ok(client)
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The live connection, re-established if it was lost.
    async fn conn(&self) -> Result<Arc<Conn>, ClientError> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(
            Conn::open(
                &self.inner.endpoint,
                &self.inner.quinn_config,
                &self.inner.config,
            )
            .await?,
        );
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Closes the current connection (the next call reconnects); for tests
    /// and for callers that want to drop idle connections early.
    pub async fn disconnect(&self) {
        if let Some(c) = self.inner.conn.lock().await.take() {
            c.quic.close(0u32.into(), b"client disconnect");
        }
    }

    /// A fresh request id (never 0; wraps after 4 billion requests, far
    /// beyond what can be in flight at once).
    fn next_id(&self) -> u32 {
        loop {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Sends one request and returns its single answer.
    async fn unary(&self, message: Message) -> Result<Message, ClientError> {
        self.unary_for(message, self.inner.config.request_timeout)
            .await
    }

    /// One request and its single answer, given up after `timeout`.
    async fn unary_for(&self, message: Message, timeout: Duration) -> Result<Message, ClientError> {
        let call = async {
            let conn = self.conn().await?;
            match conn.call(self.next_id(), message).await?.message {
                Message::Error(e) => Err(ClientError::Server(e)),
                m => Ok(m),
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// Creates a stream (or confirms it exists with the same content type).
    pub async fn create(&self, stream: &str, content_type: &str) -> Result<Created, ClientError> {
        self.create_with(Create {
            stream: stream.into(),
            content_type: content_type.into(),
            ttl_secs: None,
            expires_at_ms: None,
            state: None,
        })
        .await
    }

    /// Creates a stream with every option of `Create`.
    pub async fn create_with(&self, create: Create) -> Result<Created, ClientError> {
        match self.unary(Message::Create(create)).await? {
            Message::Created(c) => Ok(c),
            m => Err(unexpected(&m)),
        }
    }

    /// Describes a stream.
    pub async fn head(&self, stream: &str) -> Result<StreamInfo, ClientError> {
        match self
            .unary(Message::Head(Head {
                stream: stream.into(),
            }))
            .await?
        {
            Message::Info(i) => Ok(i),
            m => Err(unexpected(&m)),
        }
    }

    /// Deletes a stream.
    pub async fn delete(&self, stream: &str) -> Result<(), ClientError> {
        match self
            .unary(Message::Delete(Delete {
                stream: stream.into(),
            }))
            .await?
        {
            Message::Deleted => Ok(()),
            m => Err(unexpected(&m)),
        }
    }

    /// Appends records without a producer tag (not idempotent: a retry
    /// after a lost connection may write them twice; use [`Producer`]).
    pub async fn append(
        &self,
        stream: &str,
        records: Vec<Record>,
    ) -> Result<Appended, ClientError> {
        self.append_with(Append {
            stream: stream.into(),
            producer: None,
            close: false,
            records,
        })
        .await
    }

    /// Sends an `Append` as given (producer tag, close flag).
    pub async fn append_with(&self, append: Append) -> Result<Appended, ClientError> {
        match self.unary(Message::Append(append)).await? {
            Message::Appended(a) => Ok(a),
            m => Err(unexpected(&m)),
        }
    }

    /// Reads records from `from`, up to about `max_bytes` of record bytes.
    pub async fn read(
        &self,
        stream: &str,
        from: u64,
        max_bytes: u32,
    ) -> Result<ReadOutcome, ClientError> {
        let call = async {
            let conn = self.conn().await?;
            let read = Read {
                stream: stream.into(),
                from,
                max_bytes,
            };
            let mut reader = conn.request(self.next_id(), Message::Read(read)).await?;
            let mut batches = Vec::new();
            loop {
                let Some(f) = reader.next().await? else {
                    return Err(ClientError::Connection(
                        "read ended without ReadDone".into(),
                    ));
                };
                match f.message {
                    Message::Data(b) => batches.push(b),
                    Message::ReadDone(done) => return Ok(ReadOutcome { batches, done }),
                    Message::Error(e) => return Err(ClientError::Server(e)),
                    m => return Err(unexpected(&m)),
                }
            }
        };
        tokio::time::timeout(self.inner.config.request_timeout, call)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// Measures one round trip.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let t = std::time::Instant::now();
        match self.unary(Message::Ping).await? {
            Message::Pong => Ok(t.elapsed()),
            m => Err(unexpected(&m)),
        }
    }

    /// Follows `stream` from `from`: every record once and in order, across
    /// reconnects. See [`Subscription`].
    pub fn subscribe(&self, stream: &str, from: SubscribeFrom) -> Subscription {
        Subscription::start(self.clone(), stream.to_string(), from)
    }

    /// An idempotent producer writing to `stream` as `id` in `epoch`,
    /// starting at sequence 0.
    pub fn producer(&self, stream: &str, id: &str, epoch: u64) -> Producer {
        Producer {
            client: self.clone(),
            stream: stream.into(),
            id: id.into(),
            epoch,
            seq: Mutex::new(0),
        }
    }
}

/// The quinn client config this client uses (TLS trust, ALPN, transport
/// settings), for tools that speak the protocol on raw QUIC streams.
pub fn quinn_config(config: &ClientConfig) -> Result<quinn::ClientConfig, ClientError> {
    let tls = tls::client_config(&config.trust).map_err(ClientError::Connect)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    let mut quinn_config = quinn::ClientConfig::new(Arc::new(crypto));
    quinn_config.transport_config(Arc::new(config.transport.client()));
    Ok(quinn_config)
}

fn unexpected(m: &Message) -> ClientError {
    ClientError::Protocol(format!("unexpected {:?} answer", m.opcode()))
}

/// Appends with a producer tag `(id, epoch, seq)`: the server applies each
/// sequence once, so [`Producer::append`] retries through lost connections
/// without ever duplicating records. Appends of one producer are sent one at
/// a time, because a sequence must reach the server after its predecessor.
pub struct Producer {
    client: Client,
    stream: String,
    id: String,
    epoch: u64,
    seq: Mutex<u64>,
}

impl Producer {
    /// The sequence the next append will carry.
    pub async fn next_seq(&self) -> u64 {
        *self.seq.lock().await
    }

    /// Appends `records` exactly once, retrying transport failures for up
    /// to the client's `resume_for`. A retry of an append that had been
    /// applied returns the original result with `duplicate = true`.
    pub async fn append(&self, records: Vec<Record>) -> Result<Appended, ClientError> {
        let mut seq = self.seq.lock().await;
        let deadline = tokio::time::Instant::now() + self.client.inner.config.resume_for;
        let mut backoff = Duration::from_millis(20);
        loop {
            let append = Append {
                stream: self.stream.clone(),
                producer: Some(crate::proto::Producer {
                    id: self.id.clone(),
                    epoch: self.epoch,
                    seq: *seq,
                }),
                close: false,
                records: records.clone(),
            };
            match self.client.append_with(append).await {
                Ok(a) => {
                    *seq += 1;
                    return Ok(a);
                }
                Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
