//! One task per connection runs all of its background work: its
//! subscriptions, its answers that wait for durability, and on QUIC its
//! request streams and their writers.
//!
//! Each of them is still its own future with its own loop (`state.rs`,
//! `subscription.rs`, `requests.rs`, `quic/conn.rs`); what changes is who
//! polls them. When a commit wakes a hundred subscriptions (or completes
//! forty appends) of one connection, separate tasks would each write their
//! frames and yield, and tokio runs the task a write woke (the QUIC
//! connection driver, the WebSocket writer) next, from its LIFO slot: the
//! driver then sent a datagram after almost every subscription's write
//! (measured: about 13 `sendmsg` per connection and batch for 100
//! subscriptions; for appends, 0.75 `sendmsg` per append). Polled from one
//! task, every woken future writes before the task yields, so the driver
//! runs once per batch and packs the frames into full datagrams (0.30
//! `sendmsg` per append), and a WebSocket connection's writer wakes once per
//! batch instead of once per answer.
//!
//! A future that waits (on its peer's flow control, on the next commit) is
//! just a pending future: the others go on. A panic in one ends that one
//! only.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;

type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The connection's background runner, started with its first task so
/// that a connection without any pays nothing.
#[derive(Default)]
pub(crate) struct Deliveries {
    tx: Mutex<Option<mpsc::UnboundedSender<Task>>>,
}

impl Deliveries {
    /// Runs `f` on the connection's background task.
    pub fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        let task: Task = Box::pin(f);
        let mut tx = self.tx.lock();
        let sender = tx.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(drive(rx));
            tx
        });
        if let Err(mpsc::error::SendError(task)) = sender.send(task) {
            // The runner is gone (it cannot end while this sender lives,
            // short of a runtime shutting down): run the task on its own.
            *tx = None;
            tokio::spawn(task);
        }
    }
}

/// Polls every task of the connection until the session is gone and the
/// last of them has ended.
async fn drive(mut rx: mpsc::UnboundedReceiver<Task>) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            task = rx.recv() => match task {
                Some(t) => running.push(contained(t)),
                None => break,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
    while running.next().await.is_some() {}
}

/// `t` with its panic, if any, stopped at its own boundary.
fn contained(t: Task) -> impl Future<Output = ()> + Send {
    AssertUnwindSafe(t).catch_unwind().map(|r| {
        if r.is_err() {
            tracing::error!("a connection's background task panicked; its others go on");
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn tasks_run_concurrently_and_a_panic_stays_contained() {
        let d = Deliveries::default();
        let done = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        for i in 0..10 {
            let (done, mut go) = (Arc::clone(&done), go_rx.clone());
            d.spawn(async move {
                // Every task waits for the same signal: a runner that
                // polled them one after another would never get there.
                while !*go.borrow_and_update() {
                    go.changed().await.unwrap();
                }
                if i == 3 {
                    panic!("one subscription fails");
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        go_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while done.load(Ordering::SeqCst) < 9 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the other nine ran");
        // The runner still takes new work after the panic.
        let (tx, rx) = tokio::sync::oneshot::channel();
        d.spawn(async move {
            let _ = tx.send(());
        });
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap();
    }
}
