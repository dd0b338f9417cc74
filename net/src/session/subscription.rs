//! A subscription: one engine follower driven by one task, writing to the
//! subscription's own channel. The task writes one frame at a time and polls
//! the follower only when the channel took the previous frame, so a peer that
//! does not read costs its connection nothing but the transport's flow-control
//! window: the follower's live queue overflows, the engine drops it from the
//! live set, and it resumes from storage once the peer reads again. That is
//! also why this server never sends `Resume(Lagging)`: falling behind is
//! handled without the client's help. `Resume(ShuttingDown)` ends every
//! subscription when the server drains.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use weir_storage::Follower;

use super::data::wire_parts;
use super::gate::Gated;
use super::{signalled, Session, Stop, SubscriptionSink, Transport};
use crate::proto::{
    EndOfStream, ErrorKind, Message, Resume, ResumeReason, Subscribe, Subscribed, WireError,
};

/// Registers subscription `id` (already admitted) and starts its task.
pub(crate) async fn start<T: Transport>(
    s: &Arc<Session<T>>,
    id: u32,
    sub: Subscribe,
    reply: &mut T::Reply,
) {
    let follower = match s.engine().follow(&sub.stream, sub.from.into()) {
        Ok(f) => f,
        Err(e) => {
            let _ = s.send(reply, id, Message::Error(WireError::from(&e))).await;
            s.done(id);
            return;
        }
    };
    let (tx, rx) = mpsc::channel(1);
    s.lock().subs.insert(id, tx);
    let s = Arc::clone(s);
    let reply = reply.clone();
    let runner = Arc::clone(&s);
    runner.run_on_connection(async move {
        run(&s, id, follower, rx, reply).await;
        s.done(id);
    });
}

enum Next {
    Stop(Option<Stop>),
    Shutdown,
    Gone,
    Item(Option<weir_storage::Result<weir_storage::Batch>>),
}

async fn run<T: Transport>(
    s: &Arc<Session<T>>,
    id: u32,
    mut follower: Follower,
    mut stop: mpsc::Receiver<Stop>,
    mut reply: T::Reply,
) {
    let mut sink = match s.transport.open_subscription().await {
        Ok(k) => k,
        Err(_) => {
            let err = WireError::new(ErrorKind::Internal, "cannot open the subscription's stream");
            let _ = s.send(&mut reply, id, Message::Error(err)).await;
            return;
        }
    };
    // The request's channel is not needed any more: release it so that a
    // transport can end it once its other requests are answered.
    drop(reply);
    let _open = s
        .stats
        .subscription(crate::door_metrics::SubscriptionKind::Records);
    let fence = follower.fence();
    if s.send(&mut sink, id, Message::Subscribed(Subscribed { fence }))
        .await
        .is_err()
    {
        sink.abort();
        return;
    }
    let mut shutdown = s.shutdown_signal();
    let mut closed = s.closed_signal();
    // What ends the subscription, as one future polled only when it woke
    // the task (`gate.rs`): a delivery costs no signal polls. The peer's
    // going counts too: a reader that leaves while the stream is quiet must
    // not leave this task (and its follower) waiting for a record that may
    // never come.
    let (gone, down) = (s.closed_signal(), s.shutdown_signal());
    let peer_gone = sink.peer_gone();
    let mut ending = Gated::new(async move {
        tokio::select! {
            biased;
            cmd = stop.recv() => Next::Stop(cmd),
            () = super::until_signalled(gone) => Next::Gone,
            () = peer_gone => Next::Gone,
            () = super::until_signalled(down) => Next::Shutdown,
        }
    });
    let grace = s.config.shutdown_grace;
    // Offset after the last record handed to the channel.
    let mut sent = fence;
    loop {
        let next = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(n) = ending.poll_if_woken(cx) {
                return std::task::Poll::Ready(n);
            }
            follower.poll_next_unpin(cx).map(Next::Item)
        })
        .await;
        let end = match next {
            Next::Stop(Some(Stop::Unsubscribe(tx))) => {
                sink.finish().await;
                let _ = tx.send(sent);
                return;
            }
            Next::Stop(None) => None,
            Next::Gone => {
                sink.abort();
                return;
            }
            Next::Shutdown => Some(Message::Resume(Resume {
                offset: sent,
                reason: ResumeReason::ShuttingDown,
            })),
            Next::Item(None) => Some(Message::EndOfStream(EndOfStream {
                next_offset: follower.next_offset(),
            })),
            Next::Item(Some(Err(e))) => Some(Message::Error(WireError::from(&e))),
            Next::Item(Some(Ok(b))) => match wire_parts(&b, s.encoder().max_frame()) {
                Err(e) => Some(Message::Error(e)),
                Ok(parts) => {
                    for p in parts {
                        let next_offset = p.next_offset();
                        s.stats.data_out();
                        let write = s.send(&mut sink, id, Message::Data(p));
                        // A write blocked by a peer that does not read holds
                        // only flow-control credit; it is abandoned only when
                        // the server drains and the grace period is over.
                        let written = tokio::select! {
                            // The write first: when it is ready at once (the
                            // usual case) no signal is polled or registered.
                            biased;
                            r = write => Some(r.is_ok()),
                            () = signalled(&mut closed) => None,
                            () = async {
                                signalled(&mut shutdown).await;
                                tokio::time::sleep(grace).await;
                            } => None,
                        };
                        match written {
                            Some(true) => sent = next_offset,
                            Some(false) => return, // the peer is gone
                            None => {
                                sink.abort();
                                return;
                            }
                        }
                    }
                    continue;
                }
            },
        };
        if let Some(m) = end {
            let _ = s.send(&mut sink, id, m).await;
        }
        sink.finish().await;
        return;
    }
}
