//! The three wires behind one trait: create a stream, append a batch (ack
//! with the first offset), subscribe from an offset (a stream of records).
//! The workload code (`producer.rs`, `subscriber.rs`) only sees [`Transport`].

mod http;
pub(crate) mod quic;
mod sse;
pub(crate) mod ws;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::config::{LiveMode, StartFrom};
use crate::target::{Scheme, Target};

pub use http::HttpTransport;
pub use quic::{fingerprint_of_pem, QuicTransport};
pub use ws::WsTransport;

/// An idempotent producer's tag on one append.
#[derive(Debug, Clone)]
pub struct ProducerTag {
    /// Producer id, unique per run and producer.
    pub id: String,
    /// Epoch (always 0: a producer never restarts within a run).
    pub epoch: u64,
    /// Sequence of this append among the producer's appends.
    pub seq: u64,
}

/// The server's acknowledgement of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Offset of the batch's first record (meaningful when offsets count records).
    pub first_offset: u64,
    /// The server reported the append as a producer retry it had applied before.
    pub duplicate: bool,
}

impl From<weir_net::proto::Appended> for Ack {
    fn from(a: weir_net::proto::Appended) -> Self {
        Ack {
            first_offset: a.first_offset,
            duplicate: a.duplicate,
        }
    }
}

/// The binary protocol's `Append` of keyless `records` (QUIC and WebSocket).
fn binary_append(
    stream: &str,
    records: Vec<Bytes>,
    producer: Option<ProducerTag>,
) -> weir_net::proto::Append {
    weir_net::proto::Append {
        stream: stream.into(),
        producer: producer.map(|p| weir_net::proto::Producer {
            id: p.id,
            epoch: p.epoch,
            seq: p.seq,
        }),
        close: false,
        records: records.into_iter().map(weir_storage::Record::new).collect(),
    }
}

/// A run of delivered records; offsets as the server numbered them.
#[derive(Debug)]
pub enum Delivery {
    /// Records that arrived as separate buffers (HTTP bodies).
    Records(Vec<(u64, Bytes)>),
    /// A batch as the binary protocol carries it: the records are read in
    /// place, with no buffer per record (at a thousand subscribers, per-record
    /// reference counting was a tenth of the load generator's CPU).
    Batch(weir_storage::Batch),
}

impl Delivery {
    /// Number of records.
    pub fn len(&self) -> usize {
        match self {
            Delivery::Records(v) => v.len(),
            Delivery::Batch(b) => b.len(),
        }
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records in order: offset and payload.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let (records, batch) = match self {
            Delivery::Records(v) => (Some(v.iter().map(|(o, p)| (*o, &p[..]))), None),
            Delivery::Batch(b) => (None, Some(b.iter().map(|r| (r.offset, r.payload)))),
        };
        records
            .into_iter()
            .flatten()
            .chain(batch.into_iter().flatten())
    }
}

/// A live subscription: where it starts, and its deliveries.
pub struct Subscribed {
    /// Offset of the first record the subscription can deliver.
    pub start: u64,
    /// Deliveries in order; an `Err` item is counted and the stream goes on
    /// when the transport could resume by itself.
    pub records: BoxStream<'static, anyhow::Result<Delivery>>,
}

/// One client connection's worth of operations.
pub trait Transport: Send + Sync {
    /// Creates `stream` (idempotently) in the content type this wire uses.
    fn create<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Appends `records` as one batch.
    fn append<'a>(
        &'a self,
        stream: &'a str,
        records: Vec<Bytes>,
        producer: Option<ProducerTag>,
    ) -> BoxFuture<'a, anyhow::Result<Ack>>;
    /// Follows `stream` from `from`.
    fn subscribe<'a>(
        &'a self,
        stream: &'a str,
        from: StartFrom,
    ) -> BoxFuture<'a, anyhow::Result<Subscribed>>;
    /// Deletes `stream` (cleanup at the end of a run).
    fn delete<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Settings a transport needs besides the target.
#[derive(Debug, Clone, Copy)]
pub struct TransportOptions {
    /// Size of every record, to split byte bodies back into records.
    pub record_size: usize,
    /// HTTP live mode.
    pub live: LiveMode,
}

/// Opens one connection to `target`.
pub async fn connect(
    target: &Target,
    options: TransportOptions,
) -> anyhow::Result<Arc<dyn Transport>> {
    Ok(match target.scheme {
        Scheme::Http => Arc::new(HttpTransport::new(target, options)?),
        Scheme::Quic => Arc::new(QuicTransport::connect(target, options).await?),
        Scheme::Ws => Arc::new(WsTransport::connect(target, options).await?),
    })
}
