//! The connection's shared request stream for small unary requests.
//!
//! A request on a stream of its own costs both sides a stream: opened,
//! accepted, given its reader and writer, finished and retired, and on the
//! server a reply queue and two tasks' worth of futures. For the hot
//! requests (one append, one answer) that is most of their cost, so small
//! unary requests share one long-lived bidirectional stream per connection
//! instead (the protocol allows several frames on one request stream), and
//! their answers, which the server sends as each completes, are routed back
//! by request id. One stream also keeps a producer's appends in the order it
//! made them. Requests with several answers (reads, subscriptions) and large
//! ones keep streams of their own, so none of them holds the lane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use quinn::RecvStream;
use tokio::sync::oneshot;

use super::conn::FrameReader;
use super::ClientError;
use crate::proto::Frame;

/// Encoded requests up to this size may use the lane; larger ones would
/// hold it while their bytes wait for flow control.
pub(crate) const LANE_MAX_BYTES: usize = 64 << 10;

type Answer = oneshot::Sender<Result<Frame, ClientError>>;

/// The requests waiting for their answer on the lane, by request id.
#[derive(Default, Clone)]
pub(crate) struct Answers(Arc<Mutex<HashMap<u32, Answer>>>);

impl Answers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Answer>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the answer to request `id`; the wait is forgotten when
    /// the returned guard is dropped, answered or not.
    pub(crate) fn expect(
        &self,
        id: u32,
    ) -> (Expected, oneshot::Receiver<Result<Frame, ClientError>>) {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        (
            Expected {
                answers: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Fails every waiting request with `why` (the lane is gone).
    pub(crate) fn fail_all(&self, why: &str) {
        let waiting: Vec<Answer> = self.lock().drain().map(|(_, tx)| tx).collect();
        for tx in waiting {
            let _ = tx.send(Err(ClientError::Connection(why.to_string())));
        }
    }
}

/// A request's place among the lane's waiting answers.
pub(crate) struct Expected {
    answers: Answers,
    id: u32,
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.answers.lock().remove(&self.id);
    }
}

/// Reads the lane's answers and hands each to the request it answers,
/// until the stream or the connection ends; then fails whoever still waits.
pub(crate) async fn read_answers(recv: RecvStream, answers: Answers, max_frame: u32) {
    let mut reader = FrameReader::new(recv, max_frame);
    let why = loop {
        match reader.next().await {
            Ok(Some(frame)) => {
                let waiting = answers.lock().remove(&frame.request_id);
                if let Some(tx) = waiting {
                    let _ = tx.send(Ok(frame));
                }
            }
            Ok(None) => break "the server finished the request stream".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    answers.fail_all(&why);
}
