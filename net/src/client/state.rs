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
use weir_storage::Batch;

use super::conn::FrameReader;
use super::{unexpected, Client, ClientError};
use crate::proto::{
    Change, Frame, Get, GetResult, Message, Scan, ScanPage, SubscribeState, WireKey, WireRow,
    STATE_VERSION,
};

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
        let driver = Driver {
            client: self.clone(),
            req: SubscribeState {
                stream: stream.into(),
                snapshot,
                filter,
                from: None,
            },
            pos: Position {
                next: None,
                in_snapshot: false,
            },
            reader: None,
            failing_since: None,
            backoff: Duration::from_millis(20),
            done: false,
        };
        StateSubscription {
            items: Box::pin(futures::stream::unfold(driver, Driver::step)),
        }
    }
}

/// A live state subscription, an async `Stream` of [`StateItem`]s; dropping
/// it stops it.
///
/// The subscription is driven by its consumer's polls, with no task or
/// channel of its own: each item is decoded straight off the subscription's
/// QUIC stream in the consumer's task, and a consumer that stops polling
/// stops reading, which QUIC's flow control turns into back-pressure on the
/// server (which then carries on from storage).
pub struct StateSubscription {
    items: Pin<Box<dyn Stream<Item = Result<StateItem, ClientError>> + Send>>,
}

impl Stream for StateSubscription {
    type Item = Result<StateItem, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.as_mut().poll_next(cx)
    }
}

/// Where a resumed subscription continues: `None` until changes started.
struct Position {
    next: Option<u64>,
    in_snapshot: bool,
}

/// How an attempt to (re)subscribe, or to read on, ended.
enum Ended {
    /// The server ended the subscription: nothing more comes.
    Finished,
    /// An error to hand the consumer, after which nothing more comes.
    Fatal(ClientError),
    /// A lost connection or stream: subscribe again from the position.
    Retry(ClientError),
}

/// What one frame means to the consumer.
enum Step {
    Item(StateItem),
    /// A frame that repeats what an earlier attempt already passed on.
    Skip,
    End(Ended),
}

/// The subscription's state between the consumer's polls.
struct Driver {
    client: Client,
    req: SubscribeState,
    pos: Position,
    /// The subscription stream once subscribed; `None` while (re)subscribing.
    reader: Option<FrameReader>,
    failing_since: Option<tokio::time::Instant>,
    backoff: Duration,
    done: bool,
}

impl Driver {
    /// The next item, subscribing again after a lost connection for up to
    /// the client's `resume_for` (except during the snapshot: resuming would
    /// hand out part of it twice).
    async fn step(mut self) -> Option<(Result<StateItem, ClientError>, Driver)> {
        if self.done {
            return None;
        }
        loop {
            let ended = match self.reader.as_mut() {
                None => match self.subscribe().await {
                    Ok(reader) => {
                        self.reader = Some(reader);
                        continue;
                    }
                    Err(ended) => ended,
                },
                Some(reader) => match reader.next().await {
                    Ok(Some(frame)) => match self.pos.apply(frame) {
                        Step::Item(item) => return Some((Ok(item), self)),
                        Step::Skip => continue,
                        Step::End(ended) => ended,
                    },
                    Ok(None) => {
                        Ended::Retry(ClientError::Connection("subscription stream ended".into()))
                    }
                    Err(e) => Ended::Retry(e),
                },
            };
            self.reader = None;
            match ended {
                Ended::Finished => {
                    self.done = true;
                    return None;
                }
                Ended::Fatal(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
                Ended::Retry(e) => {
                    let since = *self
                        .failing_since
                        .get_or_insert_with(tokio::time::Instant::now);
                    if self.pos.in_snapshot || since.elapsed() > self.client.inner.config.resume_for
                    {
                        self.done = true;
                        return Some((Err(e), self));
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Sends `SubscribeState` (from the position, once changes started)
    /// and waits for the stream that carries the subscription.
    async fn subscribe(&mut self) -> Result<FrameReader, Ended> {
        if let Some(o) = self.pos.next {
            self.req.snapshot = false;
            self.req.from = Some(o);
        }
        let conn = self.client.conn().await.map_err(Ended::Retry)?;
        if conn.version < STATE_VERSION {
            return Err(Ended::Fatal(ClientError::Protocol(
                "the server does not speak protocol version 2".into(),
            )));
        }
        let id = self.client.next_id();
        let arrival = conn.expect_subscription(id);
        let forget = |e: Ended| {
            conn.forget_subscription(id);
            e
        };
        let mut answer = conn
            .request(id, Message::SubscribeState(self.req.clone()))
            .await
            .map_err(|e| forget(Ended::Retry(e)))?;
        match answer.next().await {
            Ok(None) => {}
            Ok(Some(f)) => {
                return Err(forget(match f.message {
                    Message::Error(e) => Ended::Fatal(ClientError::Server(e)),
                    m => Ended::Retry(unexpected(&m)),
                }))
            }
            Err(e) => return Err(forget(Ended::Retry(e))),
        }
        let wait = self.client.inner.config.request_timeout;
        let (first, reader) = match tokio::time::timeout(wait, arrival).await {
            Ok(Ok(x)) => x,
            Ok(Err(_)) | Err(_) => return Err(forget(Ended::Retry(ClientError::Timeout))),
        };
        match first.message {
            Message::StateSubscribed(_) => {}
            Message::Error(e) => return Err(Ended::Fatal(ClientError::Server(e))),
            m => return Err(Ended::Retry(unexpected(&m))),
        }
        self.failing_since = None;
        self.pos.in_snapshot = self.req.snapshot;
        Ok(reader)
    }
}

impl Position {
    /// Moves past one frame of the subscription stream.
    fn apply(&mut self, frame: Frame) -> Step {
        let item = match frame.message {
            Message::Snapshot(s) => StateItem::Snapshot(s.rows),
            Message::SnapshotDone(d) => {
                self.in_snapshot = false;
                self.next = Some(d.fence);
                StateItem::SnapshotDone {
                    fence: d.fence,
                    rows: d.rows,
                }
            }
            Message::Data(b) => {
                // Records are delivered once across resubscriptions: trim
                // what an earlier attempt already passed on.
                let b = match self.next {
                    Some(n) => match b.skip_to(n) {
                        Some(b) => b,
                        None => return Step::Skip,
                    },
                    None => b,
                };
                self.next = Some(b.next_offset());
                StateItem::Records(b)
            }
            Message::Change(c) => {
                if self.next.is_some_and(|n| c.offset < n) {
                    return Step::Skip;
                }
                self.next = Some(c.offset + 1);
                StateItem::Change(c)
            }
            Message::Resume(r) => {
                return Step::End(Ended::Retry(ClientError::Connection(format!(
                    "server asked to resume at {} ({:?})",
                    r.offset, r.reason
                ))))
            }
            Message::EndOfStream(_) => return Step::End(Ended::Finished),
            Message::Error(e) => return Step::End(Ended::Fatal(ClientError::Server(e))),
            m => return Step::End(Ended::Retry(unexpected(&m))),
        };
        Step::Item(item)
    }
}
