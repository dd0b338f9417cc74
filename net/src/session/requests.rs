//! One handler per request kind. Appends are queued inline
//! (`Engine::queue_append` resolves once the commit thread has the append,
//! in arrival order) and only their wait for durability runs in a task of
//! its own; so a producer's pipelined sequences on one channel apply in
//! order while answers complete in any order. `Create` and `Delete` are completed inline before the channel's
//! next frame is looked at: the engine checks that a stream exists when an
//! append is submitted, so an append pipelined right behind the `Create` of
//! its stream must not be submitted before that create committed.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::oneshot;
use weir_storage::AppendRequest;

use super::data::wire_parts;
use super::{state, subscription, touch};
use super::{Session, Stop, Transport};
use crate::proto::{
    Appended, Created, ErrorKind, Message, ReadDone, StreamInfo, Unsubscribed, WireError,
};

fn failed(e: &weir_storage::Error) -> Message {
    Message::Error(WireError::from(e))
}

/// Runs request `id`, already admitted as in flight, and answers on `reply`.
pub(crate) async fn dispatch<T: Transport>(
    s: &Arc<Session<T>>,
    id: u32,
    m: Message,
    reply: &mut T::Reply,
) {
    let engine = s.engine().clone();
    match m {
        Message::Create(c) => {
            let fut = async move {
                let config = c.config();
                let mode = c.state.map(Into::into).unwrap_or_default();
                match engine
                    .create_stream_in_mode(&c.stream, config, mode, Vec::new(), false)
                    .await
                {
                    Ok(o) => Message::Created(Created::from(&o)),
                    Err(e) => failed(&e),
                }
            };
            Box::pin(finish(s, id, reply, fut)).await;
        }
        Message::Delete(d) => {
            let fut = async move {
                match engine.delete_stream_async(&d.stream).await {
                    Ok(()) => Message::Deleted,
                    Err(e) => failed(&e),
                }
            };
            Box::pin(finish(s, id, reply, fut)).await;
        }
        Message::Append(a) => {
            let req = AppendRequest {
                records: a.records,
                producer: a.producer.map(Into::into),
                close: a.close,
                ..Default::default()
            };
            // Queued inline, so the channel's appends apply in frame order
            // (and a full commit queue stops this channel's reading); only
            // the wait for durability runs in a task of its own.
            match engine.queue_append(&a.stream, req).await {
                Ok(pending) => {
                    let fut = async move {
                        match pending.await {
                            Ok(r) => Message::Appended(Appended::from(&r)),
                            Err(e) => failed(&e),
                        }
                    };
                    start(s, id, reply, fut).await;
                }
                Err(e) => {
                    let _ = s.send(reply, id, failed(&e)).await;
                    s.done(id);
                }
            }
        }
        Message::Head(h) => {
            let msg = match engine.head(&h.stream) {
                Ok(info) => Message::Info(StreamInfo::from(&info)),
                Err(e) => failed(&e),
            };
            let _ = s.send(reply, id, msg).await;
            s.done(id);
        }
        Message::Read(r) => {
            let s = Arc::clone(s);
            let mut reply = reply.clone();
            tokio::spawn(async move {
                read(&s, id, r, &mut reply).await;
                s.done(id);
            });
        }
        // The rarer requests run boxed: inline, the largest of their
        // futures would size every connection's task, idle or not.
        Message::Subscribe(sub) => Box::pin(subscription::start(s, id, sub, reply)).await,
        Message::Unsubscribe(u) => Box::pin(unsubscribe(s, id, u.subscription, reply)).await,
        Message::Get(g) => Box::pin(state::get(s, id, g, reply)).await,
        Message::Scan(sc) => Box::pin(state::scan(s, id, sc, reply)).await,
        Message::SubscribeState(sub) => Box::pin(state::start(s, id, sub, reply)).await,
        Message::Wait(w) => Box::pin(touch::wait(s, id, w, reply)).await,
        Message::ActivateTemplates(a) => Box::pin(touch::activate(s, id, a, reply)).await,
        // Hello and Ping are answered before admission; replies never get here.
        _ => s.done(id),
    }
}

/// Runs `fut` to completion inline: later frames of the channel wait.
async fn finish<T, F>(s: &Arc<Session<T>>, id: u32, reply: &mut T::Reply, fut: F)
where
    T: Transport,
    F: Future<Output = Message>,
{
    let msg = fut.await;
    let _ = s.send(reply, id, msg).await;
    s.done(id);
}

/// Polls `fut` once inline (an answer that is ready is sent at once) and
/// finishes it on the connection's background task if it has to wait.
async fn start<T, F>(s: &Arc<Session<T>>, id: u32, reply: &mut T::Reply, fut: F)
where
    T: Transport,
    F: Future<Output = Message> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    if let Poll::Ready(msg) = futures::poll!(fut.as_mut()) {
        let _ = s.send(reply, id, msg).await;
        s.done(id);
        return;
    }
    // On the connection's task rather than a task of its own: a commit
    // completes many of a connection's appends at once, and answered from
    // one task they leave in a few packets (QUIC) or one write (WebSocket)
    // instead of one each (tokio runs the task a wake-up woke next, so the
    // transport's writer ran after every single answer).
    let session = Arc::clone(s);
    let mut reply = reply.clone();
    s.run_on_connection(async move {
        let msg = fut.await;
        let _ = session.send(&mut reply, id, msg).await;
        session.done(id);
    });
}

async fn read<T: Transport>(s: &Session<T>, id: u32, r: crate::proto::Read, reply: &mut T::Reply) {
    let budget = r.max_bytes.min(s.config.read_max_bytes) as usize;
    let res = match s.engine().read_async(&r.stream, r.from, budget).await {
        Ok(res) => res,
        Err(e) => {
            let _ = s.send(reply, id, failed(&e)).await;
            return;
        }
    };
    let max_frame = s.encoder().max_frame();
    for b in &res.batches {
        let parts = match wire_parts(b, max_frame) {
            Ok(p) => p,
            Err(e) => {
                let _ = s.send(reply, id, Message::Error(e)).await;
                return;
            }
        };
        for p in parts {
            s.stats.data_out();
            if s.send(reply, id, Message::Data(p)).await.is_err() {
                return;
            }
        }
    }
    let _ = s
        .send(reply, id, Message::ReadDone(ReadDone::from(&res)))
        .await;
}

async fn unsubscribe<T: Transport>(
    s: &Arc<Session<T>>,
    id: u32,
    subscription: u32,
    reply: &mut T::Reply,
) {
    let stop = s.lock().subs.get(&subscription).cloned();
    let unknown = move || {
        Message::Error(WireError::new(
            ErrorKind::UnknownSubscription,
            format!("no active subscription {subscription}"),
        ))
    };
    let Some(stop) = stop else {
        let _ = s.send(reply, id, unknown()).await;
        s.done(id);
        return;
    };
    let (tx, rx) = oneshot::channel();
    if stop.send(Stop::Unsubscribe(tx)).await.is_err() {
        let _ = s.send(reply, id, unknown()).await;
        s.done(id);
        return;
    }
    // The subscription finishes its channel first, so no Data follows the
    // answer; wait for that in a task rather than stall this channel.
    let s = Arc::clone(s);
    let mut reply = reply.clone();
    tokio::spawn(async move {
        let msg = match rx.await {
            Ok(next_offset) => Message::Unsubscribed(Unsubscribed { next_offset }),
            Err(_) => unknown(),
        };
        let _ = s.send(&mut reply, id, msg).await;
        s.done(id);
    });
}
