//! `GET /v1/stream/{name}?offset=-1&snapshot=true` on a State Protocol
//! stream: instead of the history, the current state as State Protocol
//! messages (a `snapshot-start` control, one `insert` per row, a
//! `snapshot-end` control), with `Stream-Next-Offset` = the snapshot's fence
//! F. The client reads on from F with ordinary reads, long-poll or SSE, and
//! so materializes the stream without replaying its history. With `filter`
//! the snapshot holds only matching rows.
//!
//! The body streams from a RocksDB snapshot page by page, so a snapshot of
//! any size costs a bounded amount of memory, and writers are never held up.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::StatusCode;
use weir_storage::{Filter, StateMode, StateSnapshot};

use super::errors;
use super::offsets::format_offset;
use super::reply::Reply;
use super::router::Ctx;
use super::state::change_message;

/// Bytes of rows rendered per body frame.
const FRAME_BYTES: usize = 128 << 10;

/// Answers a snapshot read.
pub fn handle(ctx: &Ctx, name: &str, filter: Option<Filter>) -> Reply {
    let info = match ctx.engine.head(name) {
        Ok(i) => i,
        Err(e) => return errors::reply(&e),
    };
    if info.state.mode != StateMode::StateProtocol {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "snapshot=true needs a state-protocol stream (set its profile first)",
        );
    }
    let snap = match ctx.engine.state_snapshot(name, filter) {
        Ok(s) => s,
        Err(e) => return errors::reply(&e),
    };
    let fence = snap.fence();
    let up_to_date = ctx.engine.tail(name).is_ok_and(|(t, _)| t == fence);
    Reply::new(StatusCode::OK)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .next_offset(fence)
        .up_to_date(up_to_date)
        .body(
            SnapshotBody {
                snap,
                stage: Stage::Start,
            }
            .boxed_unsync(),
        )
}

enum Stage {
    Start,
    Rows,
    End,
    Done,
}

struct SnapshotBody {
    snap: StateSnapshot,
    stage: Stage,
}

impl hyper::body::Body for SnapshotBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let text = match this.stage {
            Stage::Start => {
                this.stage = Stage::Rows;
                format!(
                    "[{{\"headers\":{{\"control\":\"snapshot-start\",\"offset\":\"{}\"}}}}",
                    format_offset(this.snap.fence())
                )
            }
            Stage::Rows => match this.snap.next_rows(FRAME_BYTES) {
                Ok(rows) if rows.is_empty() => {
                    this.stage = Stage::End;
                    return self.poll_frame(_cx);
                }
                Ok(rows) => {
                    let mut out = String::with_capacity(FRAME_BYTES + 1024);
                    for r in &rows {
                        out.push(',');
                        change_message(&mut out, &r.key, Some(&r.value), "insert");
                    }
                    out
                }
                Err(e) => {
                    // The status line is gone; ending the body early leaves
                    // the JSON unterminated, which no client takes for a
                    // complete snapshot.
                    tracing::error!(error = %e, "state snapshot read failed");
                    this.stage = Stage::Done;
                    return Poll::Ready(None);
                }
            },
            Stage::End => {
                this.stage = Stage::Done;
                format!(
                    ",{{\"headers\":{{\"control\":\"snapshot-end\",\"offset\":\"{}\"}}}}]",
                    format_offset(this.snap.fence())
                )
            }
            Stage::Done => return Poll::Ready(None),
        };
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(text)))))
    }
}
