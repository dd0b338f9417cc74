//! Version-2 state calls of the client: `get`, `scan`, and a state
//! subscription that, like [`super::Subscription`], survives lost
//! connections. After its snapshot is complete it resumes without a new
//! snapshot from the offset after the last change it passed on, so the
//! consumer's copy of the state stays exact. A connection lost during the
//! snapshot ends the subscription with the error instead: resuming would
//! hand out part of a snapshot twice.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use weir_storage::Batch;

use super::{unexpected, Client, ClientError};
use crate::proto::{
    Change, Get, GetResult, Message, Scan, ScanPage, SubscribeState, WireKey, WireRow,
    STATE_VERSION,
};

/// Items handed from the subscription task to the consumer, buffered.
const CHANNEL: usize = 16;

/// What a state subscription yields, in order: snapshot rows and its end
/// (when a snapshot was asked for), then changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateItem {
    /// Rows of the snapshot, in key order.
    Snapshot(Vec<WireRow>),
    /// The snapshot is the state below `fence`; changes follow from it.
    SnapshotDone {
        /// The snapshot's fence.
        fence: u64,
        /// Rows it held.
        rows: u64,
    },
    /// Unfiltered changes: stored records to apply (tombstones delete).
    Records(Batch),
    /// One filtered membership change.
    Change(Change),
}

impl Client {
    /// Fails unless the connection negotiated version 2.
    pub(super) async fn require_state(&self) -> Result<(), ClientError> {
        let version = self.conn().await?.version;
        if version < STATE_VERSION {
            return Err(ClientError::Protocol(format!(
                "the server speaks protocol version {version}; state requests need 2"
            )));
        }
        Ok(())
    }

    /// One key's value in a state stream, at the answer's fence.
    pub async fn get(&self, stream: &str, key: WireKey) -> Result<GetResult, ClientError> {
        self.require_state().await?;
        let get = Get {
            stream: stream.into(),
            key,
        };
        match self.unary(Message::Get(get)).await? {
            Message::GetResult(g) => Ok(g),
            m => Err(unexpected(&m)),
        }
    }

    /// One page of a state stream's rows (pass a page's `next` as `after`).
    pub async fn scan(&self, scan: Scan) -> Result<ScanPage, ClientError> {
        self.require_state().await?;
        match self.unary(Message::Scan(scan)).await? {
            Message::ScanPage(p) => Ok(p),
            m => Err(unexpected(&m)),
        }
    }

    /// Subscribes to a state stream: with `snapshot`, its current rows
    /// (matching `filter`, JSON filter text) then every change; without,
    /// changes from the tail. See [`StateSubscription`].
    pub fn subscribe_state(
        &self,
        stream: &str,
        snapshot: bool,
        filter: Option<String>,
    ) -> StateSubscription {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let req = SubscribeState {
            stream: stream.into(),
            snapshot,
            filter,
            from: None,
        };
        let task = tokio::spawn(run(self.clone(), req, tx)).abort_handle();
        StateSubscription { rx, task }
    }
}

/// A live state subscription, an async `Stream` of [`StateItem`]s; dropping
/// it stops it.
pub struct StateSubscription {
    rx: mpsc::Receiver<Result<StateItem, ClientError>>,
    task: tokio::task::AbortHandle,
}

impl Drop for StateSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for StateSubscription {
    type Item = Result<StateItem, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

enum Ended {
    Finished,
    Retry(ClientError),
}

/// Where a resumed subscription continues: `None` until changes started.
struct Position {
    next: Option<u64>,
    in_snapshot: bool,
}

type Tx = mpsc::Sender<Result<StateItem, ClientError>>;

async fn run(client: Client, mut req: SubscribeState, tx: Tx) {
    let mut pos = Position {
        next: None,
        in_snapshot: false,
    };
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(20);
    loop {
        if let Some(o) = pos.next {
            req.snapshot = false;
            req.from = Some(o);
        }
        match attempt(&client, &req, &mut pos, &tx, &mut failing_since).await {
            Ended::Finished => return,
            Ended::Retry(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if pos.in_snapshot || since.elapsed() > client.inner.config.resume_for {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn attempt(
    client: &Client,
    req: &SubscribeState,
    pos: &mut Position,
    tx: &Tx,
    failing_since: &mut Option<tokio::time::Instant>,
) -> Ended {
    let conn = match client.conn().await {
        Ok(c) => c,
        Err(e) => return Ended::Retry(e),
    };
    if conn.version < STATE_VERSION {
        let e = ClientError::Protocol("the server does not speak protocol version 2".into());
        let _ = tx.send(Err(e)).await;
        return Ended::Finished;
    }
    let id = client.next_id();
    let arrival = conn.expect_subscription(id);
    let mut answer = match conn.request(id, Message::SubscribeState(req.clone())).await {
        Ok(r) => r,
        Err(e) => {
            conn.forget_subscription(id);
            return Ended::Retry(e);
        }
    };
    match answer.next().await {
        Ok(None) => {}
        Ok(Some(f)) => {
            conn.forget_subscription(id);
            return match f.message {
                Message::Error(e) => {
                    let _ = tx.send(Err(ClientError::Server(e))).await;
                    Ended::Finished
                }
                m => Ended::Retry(unexpected(&m)),
            };
        }
        Err(e) => {
            conn.forget_subscription(id);
            return Ended::Retry(e);
        }
    }
    let wait = client.inner.config.request_timeout;
    let (first, mut reader) = match tokio::time::timeout(wait, arrival).await {
        Ok(Ok(x)) => x,
        Ok(Err(_)) | Err(_) => {
            conn.forget_subscription(id);
            return Ended::Retry(ClientError::Timeout);
        }
    };
    match first.message {
        Message::StateSubscribed(_) => {}
        Message::Error(e) => {
            let _ = tx.send(Err(ClientError::Server(e))).await;
            return Ended::Finished;
        }
        m => return Ended::Retry(unexpected(&m)),
    }
    *failing_since = None;
    pos.in_snapshot = req.snapshot;
    loop {
        let frame = match reader.next().await {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Ended::Retry(ClientError::Connection("subscription stream ended".into()))
            }
            Err(e) => return Ended::Retry(e),
        };
        let item = match frame.message {
            Message::Snapshot(s) => StateItem::Snapshot(s.rows),
            Message::SnapshotDone(d) => {
                pos.in_snapshot = false;
                pos.next = Some(d.fence);
                StateItem::SnapshotDone {
                    fence: d.fence,
                    rows: d.rows,
                }
            }
            Message::Data(b) => {
                // Records are delivered once across resubscriptions: trim
                // what an earlier attempt already passed on.
                let b = match pos.next {
                    Some(n) => match b.skip_to(n) {
                        Some(b) => b,
                        None => continue,
                    },
                    None => b,
                };
                pos.next = Some(b.next_offset());
                StateItem::Records(b)
            }
            Message::Change(c) => {
                if pos.next.is_some_and(|n| c.offset < n) {
                    continue;
                }
                pos.next = Some(c.offset + 1);
                StateItem::Change(c)
            }
            Message::Resume(r) => {
                return Ended::Retry(ClientError::Connection(format!(
                    "server asked to resume at {} ({:?})",
                    r.offset, r.reason
                )))
            }
            Message::EndOfStream(_) => return Ended::Finished,
            Message::Error(e) => {
                let _ = tx.send(Err(ClientError::Server(e))).await;
                return Ended::Finished;
            }
            m => return Ended::Retry(unexpected(&m)),
        };
        if tx.send(Ok(item)).await.is_err() {
            return Ended::Finished;
        }
    }
}
