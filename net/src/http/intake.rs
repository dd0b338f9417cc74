//! The HTTP door's intake budget: bytes of request bodies, and of the
//! records split from them, held in memory across every connection until
//! their append commits. The body limit bounds one request; this bounds all
//! of them together, so a thousand clients each sending a body within the
//! limit cannot take the process past its memory (issue 16).
//!
//! A body reserves its bytes as they arrive, and an append reserves [`RECORD_BYTES`] more per record once it
//! knows how many records the body splits into: a JSON array of 5 M tiny
//! elements is a 10 MB body but about 550 MB of records in flight. When the
//! budget is full a request waits for room, at most the budget's `wait`,
//! and is then answered 503 with `Retry-After`; a request that needs more
//! than the whole budget can never fit and is answered 413. Meanwhile its
//! body stays in the kernel's socket buffers, so a waiting client is held
//! back by TCP rather than by the server's memory.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::reply::Reply;

/// Memory one record split from a request holds until its append commits:
/// the `Record` itself (72 bytes), its encoded form (8 bytes plus the
/// payload) and the copies RocksDB's write batch and memtable make of that.
/// Measured: one append of 5 M one-digit elements took the server from
/// 33 MB to a 560 MB peak, 105 bytes per record (`bench/RESULTS.md`,
/// stop 25).
pub const RECORD_BYTES: usize = 112;

/// Bytes of request bodies and split records the door may hold at once.
#[derive(Debug)]
pub struct IntakeBudget {
    limit: usize,
    wait: Duration,
    room: Arc<Semaphore>,
}

/// Why the budget refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request needs `need` bytes, more than the whole budget: 413.
    TooLarge { need: usize, limit: usize },
    /// No room came within the wait: 503, retry later.
    Busy,
}

impl IntakeBudget {
    /// A budget of `limit` bytes whose reservations wait at most `wait`.
    pub fn new(limit: usize, wait: Duration) -> Arc<IntakeBudget> {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Arc::new(IntakeBudget {
            limit,
            wait,
            room: Arc::new(Semaphore::new(limit)),
        })
    }

    /// Holds nothing yet; [`grow`](Self::grow) adds to it.
    pub fn empty(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.room)
            .try_acquire_many_owned(0)
            .expect("zero permits are always available")
    }

    /// Makes `hold` hold `more` bytes beyond what it holds, waiting for room
    /// at most the budget's wait.
    pub async fn grow(&self, hold: &mut OwnedSemaphorePermit, more: usize) -> Result<(), Refusal> {
        if more == 0 {
            return Ok(());
        }
        let need = hold.num_permits().saturating_add(more);
        if need > self.limit {
            return Err(Refusal::TooLarge {
                need,
                limit: self.limit,
            });
        }
        let acquire = Arc::clone(&self.room).acquire_many_owned(more as u32);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(extra) => {
                hold.merge(extra.expect("the budget's semaphore is never closed"));
                Ok(())
            }
            Err(_) => Err(Refusal::Busy),
        }
    }

    /// Makes `hold` also hold the records a body of content type `json`
    /// (or not) splits into, and returns how many there will be. A body
    /// that is not valid JSON reserves nothing: the split refuses it.
    pub async fn grow_for_records(
        &self,
        hold: &mut OwnedSemaphorePermit,
        json: bool,
        body: &[u8],
    ) -> Result<usize, Refusal> {
        let records = if json {
            super::json::message_count(body).unwrap_or(0)
        } else {
            usize::from(!body.is_empty())
        };
        self.grow(hold, records.saturating_mul(RECORD_BYTES))
            .await
            .map(|()| records)
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.limit - self.room.available_permits()
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Refusal {
    /// The answer to a request the budget refused.
    pub fn reply(&self) -> Reply {
        match *self {
            Refusal::TooLarge { need, limit } => Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request needs {need} bytes of memory (its body and {RECORD_BYTES} \
                     bytes per record), more than the server's {limit}-byte intake budget; \
                     send it as several appends"
                ),
            ),
            Refusal::Busy => Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many request bodies in memory; retry shortly",
            )
            .header("retry-after", "1")
            // The body may be unread; the connection cannot be reused.
            .header("connection", "close"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_then_refuse() {
        let b = IntakeBudget::new(1000, Duration::from_millis(50));
        let mut first = b.empty();
        b.grow(&mut first, 600).await.unwrap();
        assert_eq!(b.held(), 600);
        let mut second = b.empty();
        assert_eq!(b.grow(&mut second, 500).await, Err(Refusal::Busy));
        assert_eq!(b.held(), 600, "a refused reservation holds nothing more");
        assert_eq!(
            b.grow(&mut second, 1001).await,
            Err(Refusal::TooLarge {
                need: 1001,
                limit: 1000
            })
        );
        let waiter = tokio::spawn({
            let b = Arc::clone(&b);
            async move {
                let mut h = b.empty();
                b.grow(&mut h, 500).await.map(|_| h)
            }
        });
        tokio::task::yield_now().await;
        drop(first);
        let third = waiter.await.unwrap().expect("room came within the wait");
        assert_eq!(b.held(), 500);
        drop(third);
        assert_eq!(b.held(), 0);
    }
}
