//! The state requests over either binary door: a QUIC [`Client`] or a
//! WebSocket speaking protocol version 2. The workload sees only [`Door`],
//! so the writer, the subscribers and the check are the same on both.

use std::sync::Arc;

use anyhow::{anyhow, bail};
use futures::stream::BoxStream;
use futures::StreamExt;
use weir_net::client::{Client, StateItem};
use weir_net::proto::{Create, Delete, Message, Scan, ScanPage, SubscribeState, WireStateMode};
use weir_storage::Record;

use crate::target::{Scheme, Target};
use crate::transport::ws::{WsChannel, WsTransport};

/// Content type of the state streams (JSON values in both modes).
pub(crate) const CONTENT_TYPE: &str = "application/json";

/// One connection to the server; cheap to clone.
#[derive(Clone)]
pub(crate) enum Door {
    Quic(Client),
    Ws(Arc<WsTransport>),
}

/// A state subscription's items, as the QUIC client yields them.
pub(crate) type Items = BoxStream<'static, anyhow::Result<StateItem>>;

impl Door {
    /// Opens one connection to `target` (quic:// or ws://).
    pub(crate) async fn connect(target: &Target) -> anyhow::Result<Door> {
        Ok(match target.scheme {
            Scheme::Quic => Door::Quic(crate::transport::quic::connect_client(target).await?),
            Scheme::Ws => Door::Ws(Arc::new(
                WsTransport::connect_version(target, weir_net::proto::STATE_VERSION).await?,
            )),
            Scheme::Http => bail!("the state workload runs over quic:// or ws://"),
        })
    }

    /// Creates `stream` keeping state in `mode`.
    pub(crate) async fn create(&self, stream: &str, mode: WireStateMode) -> anyhow::Result<()> {
        let create = Create {
            stream: stream.into(),
            content_type: CONTENT_TYPE.into(),
            ttl_secs: None,
            expires_at_ms: None,
            state: Some(mode),
        };
        match self {
            Door::Quic(c) => {
                c.create_with(create).await?;
            }
            Door::Ws(w) => match w.request(Message::Create(create)).await? {
                Message::Created(_) => {}
                m => bail!("create answered {:?}", m.opcode()),
            },
        }
        Ok(())
    }

    /// Appends `records` as one batch; returns the offset of the first.
    pub(crate) async fn append(&self, stream: &str, records: Vec<Record>) -> anyhow::Result<u64> {
        match self {
            Door::Quic(c) => Ok(c.append(stream, records).await?.first_offset),
            Door::Ws(w) => {
                let append = weir_net::proto::Append {
                    stream: stream.into(),
                    producer: None,
                    close: false,
                    records,
                };
                match w.request(Message::Append(append)).await? {
                    Message::Appended(a) => Ok(a.first_offset),
                    m => bail!("append answered {:?}", m.opcode()),
                }
            }
        }
    }

    /// One page of a scan.
    pub(crate) async fn scan(&self, scan: Scan) -> anyhow::Result<ScanPage> {
        match self {
            Door::Quic(c) => Ok(c.scan(scan).await?),
            Door::Ws(w) => match w.request(Message::Scan(scan)).await? {
                Message::ScanPage(p) => Ok(p),
                m => bail!("scan answered {:?}", m.opcode()),
            },
        }
    }

    /// Deletes `stream` (cleanup).
    pub(crate) async fn delete(&self, stream: &str) -> anyhow::Result<()> {
        match self {
            Door::Quic(c) => Ok(c.delete(stream).await?),
            Door::Ws(w) => {
                let delete = Delete {
                    stream: stream.into(),
                };
                w.request(Message::Delete(delete)).await.map(drop)
            }
        }
    }

    /// Subscribes to `stream`'s state: snapshot rows (when asked), then
    /// changes (filtered) or records (unfiltered), until dropped.
    pub(crate) fn subscribe(
        &self,
        stream: &str,
        snapshot: bool,
        filter: Option<String>,
    ) -> anyhow::Result<Items> {
        match self {
            Door::Quic(c) => Ok(c
                .subscribe_state(stream, snapshot, filter)
                .map(|r| r.map_err(anyhow::Error::from))
                .boxed()),
            Door::Ws(w) => {
                let req = SubscribeState {
                    stream: stream.into(),
                    snapshot,
                    filter,
                    from: None,
                };
                let channel = w.open(Message::SubscribeState(req))?;
                Ok(futures::stream::unfold(Some(channel), ws_next).boxed())
            }
        }
    }
}

/// The next item of a WebSocket state subscription; after an error or the
/// end nothing more (the channel is dropped, which unsubscribes).
async fn ws_next(
    channel: Option<WsChannel>,
) -> Option<(anyhow::Result<StateItem>, Option<WsChannel>)> {
    let mut channel = channel?;
    loop {
        let Some(message) = channel.recv().await else {
            let e = channel.gone();
            return Some((Err(e), None));
        };
        let item = match message {
            Message::StateSubscribed(_) => continue,
            Message::Snapshot(s) => StateItem::Snapshot(s.rows),
            Message::SnapshotDone(d) => StateItem::SnapshotDone {
                fence: d.fence,
                rows: d.rows,
            },
            Message::Data(b) => StateItem::Records(b),
            Message::Change(c) => StateItem::Change(c),
            Message::Error(e) => {
                let e = anyhow!("server error {:?}: {}", e.kind, e.message);
                return Some((Err(e), None));
            }
            m => {
                let e = anyhow!("state subscription ended with {:?}", m.opcode());
                return Some((Err(e), None));
            }
        };
        return Some((Ok(item), Some(channel)));
    }
}
