//! Version-2 state requests: `Get` and `Scan` answered inline from one
//! consistent view, and `SubscribeState`, one engine state subscription
//! driven by one task on the subscription's own channel. Like a plain
//! subscription, the task asks the engine for the next event only once the
//! channel took the previous frame, so snapshot pages are read from the
//! engine at the pace the peer reads them and a slow peer holds at most one
//! chunk of rows.

use std::sync::Arc;
use std::task::Poll;

use futures::StreamExt;
use tokio::sync::mpsc;
use weir_storage::{Filter, ScanRequest, StateEvent, StateKey, StateSubscription};

use super::change_frames::Prepared;
use super::data::wire_parts;
use super::gate::Gated;
use super::{signalled, FrameSink, Session, Stop, SubscriptionSink, Transport};
use crate::proto::{
    Encoded, EndOfStream, ErrorKind, Get, GetResult, Message, Resume, ResumeReason, Scan, ScanPage,
    Snapshot, SnapshotDone, StateSubscribed, SubscribeState, WireError, WireRow, WireStateMode,
    HEADER_LEN,
};

/// Most rows one `Scan` page returns, whatever the client asks for.
const MAX_SCAN_ROWS: usize = 10_000;

/// Rows per `Scan` page when the client leaves the choice to the server.
const DEFAULT_SCAN_ROWS: usize = 256;

fn failed(e: &weir_storage::Error) -> Message {
    Message::Error(WireError::from(e))
}

fn parse_filter(text: Option<&str>) -> Result<Option<Filter>, WireError> {
    match text.map(|t| Filter::parse_bytes(t.as_bytes())) {
        None => Ok(None),
        Some(Ok(f)) => Ok(Some(f)),
        Some(Err(why)) => Err(WireError::new(ErrorKind::Invalid, why)),
    }
}

/// Room for row bytes in one frame for this peer (header and list length aside).
fn row_room<T: Transport>(s: &Session<T>) -> usize {
    row_room_of(s.encoder().max_frame())
}

fn row_room_of(max_frame: u32) -> usize {
    (max_frame as usize).saturating_sub(HEADER_LEN + 64)
}

fn too_large(max_frame: u32, offset: u64) -> WireError {
    WireError::new(
        ErrorKind::FrameTooLarge { max_frame },
        format!(
            "the state row written at offset {offset} does not fit in a frame of {max_frame} bytes"
        ),
    )
}

/// Answers a `Get` (request `id`, admitted) on `reply`.
pub(crate) async fn get<T: Transport>(s: &Session<T>, id: u32, g: Get, reply: &mut T::Reply) {
    let key = StateKey::from(g.key);
    let msg = match s.engine().state_get_async(&g.stream, key).await {
        Ok(r) => {
            let row = r.row.as_ref().map(WireRow::from);
            match &row {
                Some(w) if w.wire_len() > row_room(s) => {
                    Message::Error(too_large(s.encoder().max_frame(), w.offset))
                }
                _ => Message::GetResult(GetResult {
                    row,
                    fence: r.fence,
                    tail: r.tail,
                }),
            }
        }
        Err(e) => failed(&e),
    };
    let _ = s.send(reply, id, msg).await;
    s.done(id);
}

/// Answers a `Scan`. A page too large for the peer's frame limit is read
/// again with half the rows, so every page fits and its cursor stays the
/// engine's own.
pub(crate) async fn scan<T: Transport>(s: &Session<T>, id: u32, sc: Scan, reply: &mut T::Reply) {
    let msg = match scan_page(s, sc).await {
        Ok(p) => Message::ScanPage(p),
        Err(e) => Message::Error(e),
    };
    let _ = s.send(reply, id, msg).await;
    s.done(id);
}

async fn scan_page<T: Transport>(s: &Session<T>, sc: Scan) -> Result<ScanPage, WireError> {
    let mut req = ScanRequest {
        filter: parse_filter(sc.filter.as_deref())?,
        entity: sc.entity,
        prefix: sc.prefix,
        after: sc.after,
        limit: match sc.limit as usize {
            0 => DEFAULT_SCAN_ROWS,
            n => n.min(MAX_SCAN_ROWS),
        },
    };
    let room = row_room(s);
    loop {
        let page = s
            .engine()
            .state_scan_async(&sc.stream, req.clone())
            .await
            .map_err(|e| WireError::from(&e))?;
        let rows: Vec<WireRow> = page.rows.iter().map(WireRow::from).collect();
        let size: usize = rows.iter().map(WireRow::wire_len).sum::<usize>()
            + page.next.as_ref().map_or(0, |n| n.len() + 10);
        if size <= room {
            return Ok(ScanPage {
                rows,
                next: page.next,
                fence: page.fence,
            });
        }
        if req.limit <= 1 || rows.len() <= 1 {
            let offset = rows.first().map_or(0, |r| r.offset);
            return Err(too_large(s.encoder().max_frame(), offset));
        }
        req.limit = (rows.len() / 2).max(1);
    }
}

/// Registers state subscription `id` (already admitted) and starts its task.
pub(crate) async fn start<T: Transport>(
    s: &Arc<Session<T>>,
    id: u32,
    sub: SubscribeState,
    reply: &mut T::Reply,
) {
    let filter = match parse_filter(sub.filter.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            let _ = s.send(reply, id, Message::Error(e)).await;
            s.done(id);
            return;
        }
    };
    let opened = s.engine().head(&sub.stream).and_then(|info| {
        let req = weir_storage::SubscribeState {
            filter,
            snapshot: sub.snapshot,
            from: sub.from,
            // Half the frame limit, so that a chunk rarely needs splitting.
            chunk_bytes: (s.encoder().max_frame() as usize / 2).min(1 << 20),
        };
        let start = if sub.snapshot {
            0
        } else {
            sub.from.unwrap_or(info.next_offset)
        };
        let stream = s.engine().subscribe_state(&sub.stream, req)?;
        Ok((WireStateMode::from(info.state.mode), start, stream))
    });
    let (mode, start, stream) = match opened {
        Ok(o) => o,
        Err(e) => {
            let _ = s.send(reply, id, failed(&e)).await;
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
        run(&s, id, mode, start, stream, rx, reply).await;
        s.done(id);
    });
}

enum Next {
    Stop(Option<Stop>),
    Shutdown,
    Gone,
    Item(Option<weir_storage::Result<StateEvent>>),
}

/// The frames of one engine event for subscription `id`, each within the
/// peer's frame limit, and the offset after the last change they hold
/// (`None` for snapshot rows).
fn frames_of<T: Transport>(
    s: &Session<T>,
    id: u32,
    ev: StateEvent,
) -> Result<(Vec<Encoded>, Option<u64>), WireError> {
    let encode = |m: Message| s.encode(id, m).map_err(|_| internal());
    match ev {
        StateEvent::Snapshot(rows) => {
            let room = row_room(s);
            let mut out = Vec::new();
            let mut chunk = Vec::new();
            let mut size = 0;
            for r in &rows {
                let w = WireRow::from(r);
                let len = w.wire_len();
                if len > room {
                    return Err(too_large(s.encoder().max_frame(), w.offset));
                }
                if size + len > room && !chunk.is_empty() {
                    let rows = std::mem::take(&mut chunk);
                    out.push(encode(Message::Snapshot(Snapshot { rows }))?);
                    size = 0;
                }
                size += len;
                chunk.push(w);
            }
            if !chunk.is_empty() {
                out.push(encode(Message::Snapshot(Snapshot { rows: chunk }))?);
            }
            Ok((out, None))
        }
        StateEvent::SnapshotDone { fence, rows } => Ok((
            vec![encode(Message::SnapshotDone(SnapshotDone { fence, rows }))?],
            Some(fence),
        )),
        StateEvent::Records(b) => {
            let next = b.next_offset();
            let parts = wire_parts(&b, s.encoder().max_frame())?;
            s.stats.data_out();
            let frames = parts.into_iter().map(|p| encode(Message::Data(p)));
            Ok((frames.collect::<Result<_, _>>()?, Some(next)))
        }
        StateEvent::Changes(list) => {
            // The hot path: one look at the session's encoder (it takes the
            // session's lock), not three.
            let enc = s.encoder();
            let max_frame = enc.max_frame();
            let room = row_room_of(max_frame);
            let prepared = Prepared::of(&list, &enc, room, |offset| too_large(max_frame, offset));
            match &*prepared {
                Ok(p) => Ok((p.frames(id).collect(), Some(p.next))),
                Err(e) => Err(e.clone()),
            }
        }
    }
}

fn internal() -> WireError {
    WireError::new(ErrorKind::Internal, "cannot encode a subscription frame")
}

async fn run<T: Transport>(
    s: &Arc<Session<T>>,
    id: u32,
    mode: WireStateMode,
    start: u64,
    mut stream: StateSubscription,
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
    drop(reply);
    let _open = s
        .stats
        .subscription(crate::door_metrics::SubscriptionKind::State);
    if s.send(
        &mut sink,
        id,
        Message::StateSubscribed(StateSubscribed { mode }),
    )
    .await
    .is_err()
    {
        sink.abort();
        return;
    }
    let mut shutdown = s.shutdown_signal();
    let mut closed = s.closed_signal();
    // What ends the subscription, as one future polled only when it woke
    // the task (`gate.rs`): a delivery costs no signal polls.
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
    // Offset after the last change handed to the channel: where a client
    // resumes (a snapshot subscription has delivered none before its fence).
    let mut sent = start;
    loop {
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(n) = ending.poll_if_woken(cx) {
                return Poll::Ready(n);
            }
            stream.poll_next_unpin(cx).map(Next::Item)
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
            Next::Item(None) => Some(Message::EndOfStream(EndOfStream { next_offset: sent })),
            Next::Item(Some(Err(e))) => Some(failed(&e)),
            Next::Item(Some(Ok(ev))) => match frames_of(s, id, ev) {
                Err(e) => Some(Message::Error(e)),
                Ok((frames, after)) => {
                    for f in frames {
                        let write = sink.send(f);
                        // As for plain subscriptions: a blocked write is
                        // abandoned only when the connection goes or the
                        // server drains past its grace period.
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
                            Some(true) => {}
                            Some(false) => return,
                            None => {
                                sink.abort();
                                return;
                            }
                        }
                    }
                    if let Some(a) = after {
                        sent = a;
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
