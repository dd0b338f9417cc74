//! SSE reads (`live=sse`): a `data` event per gathered chunk, each followed
//! by a `control` event with the next offset, the cursor and `upToDate` when
//! the reader has caught up; a final control with `streamClosed` ends a
//! closed stream. Text and JSON streams are sent as text (JSON chunks as one
//! array); other content types as base64 (`Stream-SSE-Data-Encoding`).
//! Payload line breaks become separate `data:` lines, so stored bytes can
//! never inject SSE fields. The server ends the connection after
//! `sse_max_duration` so clients reconnect from their last offset.

use std::convert::Infallible;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::StatusCode;
use tokio::sync::watch;
use tokio::time::Instant;
use weir_storage::{media_type, Batch, FollowFrom, Follower};

use super::cursor::next_cursor;
use super::offsets::{format_offset, OffsetParam};
use super::reply::Reply;
use super::router::Ctx;
use super::{errors, json};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Text,
    Json,
    Base64,
}

struct SseState {
    follower: Follower,
    mode: Mode,
    cursor: String,
    budget: usize,
    first: bool,
    done: bool,
    /// An item the wait received, consumed by the next gather.
    carry: Option<Option<weir_storage::Result<Batch>>>,
    deadline: Instant,
    stop: watch::Receiver<bool>,
}

/// Answers `GET ?offset=..&live=sse`.
pub fn handle(
    ctx: &Ctx,
    name: &str,
    offset: OffsetParam,
    cursor: Option<&str>,
    expiry: Option<super::auth::TokenExpiry>,
) -> Reply {
    let info = match ctx.engine.head(name) {
        Ok(i) => i,
        Err(e) => return errors::reply(&e),
    };
    let mt = media_type(&info.config.content_type);
    let mode = if json::is_json(&mt) {
        Mode::Json
    } else if mt.starts_with("text/") {
        Mode::Text
    } else {
        Mode::Base64
    };
    let from = match offset {
        OffsetParam::Start => FollowFrom::Start,
        OffsetParam::Now => FollowFrom::Now,
        OffsetParam::At(o) => FollowFrom::Offset(o),
    };
    let follower = match ctx.engine.follow(name, from) {
        Ok(f) => f,
        Err(e) => return errors::reply(&e),
    };
    let state = SseState {
        follower,
        mode,
        cursor: next_cursor(cursor),
        budget: ctx.config.read_budget_bytes,
        first: true,
        done: false,
        carry: None,
        deadline: Instant::now() + super::auth::live_limit(expiry, ctx.config.sse_max_duration),
        stop: ctx.stop.clone(),
    };
    let events = futures::stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), st))
    });
    let mut r = Reply::new(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("x-accel-buffering", "no")
        .body(StreamBody::new(events).boxed_unsync());
    if mode == Mode::Base64 {
        r = r.header("stream-sse-data-encoding", "base64");
    }
    r
}

impl SseState {
    /// The next bytes to send: one data event and its control event, a
    /// first control event, or `None` when the connection should end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.done || *self.stop.borrow() {
                return None;
            }
            let mut batches = Vec::new();
            let mut size = 0;
            let mut ended = false;
            let mut failed = false;
            let mut caught_up = false;
            loop {
                let item = match self.carry.take() {
                    Some(item) => Some(item),
                    // Nothing ready is "caught up" only when no storage
                    // read is on its way.
                    None => match self.follower.next().now_or_never() {
                        None if self.follower.is_reading() => Some(self.follower.next().await),
                        ready => ready,
                    },
                };
                match item {
                    None => {
                        caught_up = true;
                        break;
                    }
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    Some(Some(Err(_))) => {
                        failed = true;
                        break;
                    }
                    Some(Some(Ok(b))) => {
                        size += b.data_len();
                        batches.push(b);
                        if size >= self.budget {
                            break;
                        }
                    }
                }
            }
            if failed {
                // Deleted while we were following: end the connection; the
                // client's reconnect gets the 404/410.
                self.done = true;
                if batches.is_empty() {
                    return None;
                }
            }
            if !batches.is_empty() || ended || (self.first && caught_up) {
                self.first = false;
                let mut out = BytesMut::new();
                if !batches.is_empty() {
                    self.write_data(&mut out, &batches);
                }
                self.write_control(&mut out, ended, caught_up || ended);
                if ended {
                    self.done = true;
                }
                return Some(out.freeze());
            }
            tokio::select! {
                item = self.follower.next() => self.carry = Some(item),
                _ = tokio::time::sleep_until(self.deadline) => self.done = true,
                _ = self.stop.changed() => self.done = true,
            }
        }
    }

    fn write_data(&self, out: &mut BytesMut, batches: &[Batch]) {
        out.put_slice(b"event: data\n");
        match self.mode {
            Mode::Json => {
                let arr = json::array(batches.iter().flat_map(|b| b.iter().map(|r| r.payload)));
                write_lines(out, &arr);
            }
            Mode::Text => {
                let text = super::read::render_flat(batches, false);
                write_lines(out, &text);
            }
            Mode::Base64 => {
                let raw = super::read::render_flat(batches, false);
                out.put_slice(b"data:");
                out.put_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(&raw)
                        .as_bytes(),
                );
                out.put_slice(b"\n");
            }
        }
        out.put_slice(b"\n");
    }

    fn write_control(&self, out: &mut BytesMut, closed: bool, up_to_date: bool) {
        let mut c = serde_json::Map::new();
        c.insert(
            "streamNextOffset".into(),
            format_offset(self.follower.next_offset()).into(),
        );
        if closed {
            c.insert("streamClosed".into(), true.into());
        } else {
            c.insert("streamCursor".into(), self.cursor.clone().into());
        }
        if up_to_date {
            c.insert("upToDate".into(), true.into());
        }
        out.put_slice(b"event: control\ndata:");
        out.put_slice(serde_json::Value::Object(c).to_string().as_bytes());
        out.put_slice(b"\n\n");
    }
}

/// Writes `text` as `data:` lines, splitting at CRLF, CR and LF. A line that
/// starts with a space gets one extra space, which SSE parsers strip.
fn write_lines(out: &mut BytesMut, text: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    let emit = |out: &mut BytesMut, line: &[u8]| {
        out.put_slice(b"data:");
        if line.first() == Some(&b' ') {
            out.put_slice(b" ");
        }
        out.put_slice(line);
        out.put_slice(b"\n");
    };
    while i < text.len() {
        match text[i] {
            b'\r' => {
                emit(out, &text[start..i]);
                i += if text.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            b'\n' => {
                emit(out, &text[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    emit(out, &text[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cannot_inject_events() {
        let mut out = BytesMut::new();
        write_lines(&mut out, b"a\r\n\r\nevent: control\rdata: x\n end");
        assert_eq!(
            &out[..],
            b"data:a\ndata:\ndata:event: control\ndata:data: x\ndata:  end\n"
        );
    }
}
