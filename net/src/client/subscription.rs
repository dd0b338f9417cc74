//! A client subscription: an async `Stream` of batches that survives lost
//! connections and server restarts. A task owns the subscription's QUIC
//! stream and feeds a small bounded channel; when the consumer is slow the
//! task stops reading, QUIC flow control reaches the server, and the server
//! falls back to storage for this subscriber: nothing is lost and nothing
//! piles up in memory. After a reconnect (or a `Resume` from the server) it
//! subscribes again from the offset after the last record it passed on.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use weir_storage::Batch;

use super::{Client, ClientError};
use crate::proto::{Message, Subscribe, SubscribeFrom};

/// Batches handed from the subscription task to the consumer, buffered.
const CHANNEL: usize = 16;

/// A live subscription; see the module docs. Dropping it stops it.
pub struct Subscription {
    rx: mpsc::Receiver<Result<Batch, ClientError>>,
    task: tokio::task::AbortHandle,
    next: Option<u64>,
    reconnects: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Subscription {
    pub(crate) fn start(client: Client, stream: String, from: SubscribeFrom) -> Subscription {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let reconnects = std::sync::Arc::default();
        let task = tokio::spawn(run(
            client,
            stream,
            from,
            tx,
            std::sync::Arc::clone(&reconnects),
        ))
        .abort_handle();
        Subscription {
            rx,
            task,
            next: None,
            reconnects,
        }
    }

    /// The offset after the last record yielded (`None` before the first batch).
    pub fn next_offset(&self) -> Option<u64> {
        self.next
    }

    /// How many times the subscription was established again after the first.
    pub fn resubscriptions(&self) -> u64 {
        self.reconnects.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Dropping the task drops its QUIC stream, which tells the server to
        // stop sending (STOP_SENDING); the server then ends the subscription.
        self.task.abort();
    }
}

impl Stream for Subscription {
    type Item = Result<Batch, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(b))) = &item {
            self.next = Some(b.next_offset());
        }
        item
    }
}

/// How one attempt ended.
enum Ended {
    /// The stream is closed and fully delivered, the consumer is gone, or
    /// the server refused the subscription (already reported).
    Finished,
    /// Connection trouble or a `Resume`: subscribe again from the next offset.
    Retry(ClientError),
}

async fn run(
    client: Client,
    stream: String,
    from: SubscribeFrom,
    tx: mpsc::Sender<Result<Batch, ClientError>>,
    reconnects: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    // `None` until the first Subscribed says where the subscription starts.
    let mut next: Option<u64> = None;
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(20);
    let mut first = true;
    loop {
        let start = match next {
            Some(o) => SubscribeFrom::Offset(o),
            None => from,
        };
        if !first {
            reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        first = false;
        match attempt(&client, &stream, start, &mut next, &tx, &mut failing_since).await {
            Ended::Finished => return,
            Ended::Retry(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > client.inner.config.resume_for {
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
    stream: &str,
    from: SubscribeFrom,
    next: &mut Option<u64>,
    tx: &mpsc::Sender<Result<Batch, ClientError>>,
    failing_since: &mut Option<tokio::time::Instant>,
) -> Ended {
    let conn = match client.conn().await {
        Ok(c) => c,
        Err(e) => return Ended::Retry(e),
    };
    let id = client.next_id();
    let arrival = conn.expect_subscription(id);
    let sub = Message::Subscribe(Subscribe {
        stream: stream.into(),
        from,
    });
    let mut answer = match conn.request(id, sub).await {
        Ok(r) => r,
        Err(e) => {
            conn.forget_subscription(id);
            return Ended::Retry(e);
        }
    };
    // The request stream carries an Error if the subscription fails to
    // start; on success the server just finishes it.
    match answer.next().await {
        Ok(None) => {}
        Ok(Some(f)) => {
            conn.forget_subscription(id);
            return match f.message {
                Message::Error(e) => {
                    let _ = tx.send(Err(ClientError::Server(e))).await;
                    Ended::Finished
                }
                m => Ended::Retry(super::unexpected(&m)),
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
        Message::Subscribed(s) => {
            if next.is_none() {
                *next = Some(s.fence);
            }
        }
        Message::Error(e) => {
            let _ = tx.send(Err(ClientError::Server(e))).await;
            return Ended::Finished;
        }
        m => return Ended::Retry(super::unexpected(&m)),
    }
    *failing_since = None;
    loop {
        let frame = match reader.next().await {
            Ok(Some(f)) => f,
            // Finished without a terminal frame, reset, or connection lost.
            Ok(None) => {
                return Ended::Retry(ClientError::Connection("subscription stream ended".into()))
            }
            Err(e) => return Ended::Retry(e),
        };
        match frame.message {
            Message::Data(b) => {
                let want = next.unwrap_or(0);
                // The server sends each record once; trimming by offset keeps
                // that true across resubscriptions whatever happens.
                let Some(b) = b.skip_to(want) else { continue };
                if b.first_offset() != want {
                    return Ended::Retry(ClientError::Protocol(format!(
                        "gap: expected offset {want}, got {}",
                        b.first_offset()
                    )));
                }
                *next = Some(b.next_offset());
                if tx.send(Ok(b)).await.is_err() {
                    return Ended::Finished; // the consumer dropped the subscription
                }
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
            m => return Ended::Retry(super::unexpected(&m)),
        }
    }
}
