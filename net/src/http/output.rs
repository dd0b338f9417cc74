//! The HTTP door's output budget: bytes of read-response bodies held in
//! memory across every connection. A read reserves its byte budget before
//! it reads, keeps what its body needs, and gives that back once hyper has
//! taken the body's last part (or dropped it unsent). When clients stop
//! reading, their connections' bodies fill the budget and further reads
//! wait for room instead of growing the process; the write-stall limit
//! (`stall.rs`) closes connections that take nothing, which frees their
//! share. The WebSocket door has a budget of its own (`ws/budget.rs`).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of response bodies the door may hold at once.
#[derive(Debug)]
pub struct OutputBudget {
    limit: usize,
    room: Arc<Semaphore>,
}

impl OutputBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<OutputBudget> {
        // One permit per byte; a semaphore holds at most usize::MAX >> 3.
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(OutputBudget {
            limit,
            room: Arc::new(Semaphore::new(limit)),
        })
    }

    /// Waits for `bytes` (at most the whole budget) and holds them.
    pub async fn reserve(&self, bytes: usize) -> OwnedSemaphorePermit {
        let n = bytes.clamp(1, self.limit).min(u32::MAX as usize) as u32;
        Arc::clone(&self.room)
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphore is never closed")
    }

    /// Makes `hold` hold what a body of `needed` bytes needs (at most the
    /// whole budget): gives back the rest of the reservation, or waits for
    /// more when one record made the body larger than the reservation.
    pub async fn fit(&self, hold: &mut OwnedSemaphorePermit, needed: usize) {
        let want = needed.clamp(1, self.limit);
        let held = hold.num_permits();
        if held > want {
            drop(hold.split(held - want));
        } else if held < want {
            let more = (want - held).min(u32::MAX as usize) as u32;
            let extra = Arc::clone(&self.room)
                .acquire_many_owned(more)
                .await
                .expect("the budget's semaphore is never closed");
            hold.merge(extra);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_wait_for_room_and_shrink_to_their_body() {
        let b = OutputBudget::new(1000);
        let mut first = b.reserve(800).await;
        assert_eq!(b.held(), 800);
        b.fit(&mut first, 300).await;
        assert_eq!(b.held(), 300);
        let second = b.reserve(700).await;
        assert_eq!(b.held(), 1000);
        let third = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.reserve(10).await }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "a full budget makes the read wait");
        drop(second);
        let third = third.await.unwrap();
        assert_eq!(b.held(), 310);
        drop(third);
        // A body larger than its reservation takes more.
        b.fit(&mut first, 600).await;
        assert_eq!(b.held(), 600);
        drop(first);
        assert_eq!(b.held(), 0);
        // A reservation larger than the budget takes the whole budget.
        let all = b.reserve(5000).await;
        assert_eq!(b.held(), b.limit());
        drop(all);
    }
}
