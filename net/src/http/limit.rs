//! The cap on concurrent connections of a door: a connection beyond it is
//! told why in one short answer and closed, instead of holding a file
//! descriptor the server may need to keep accepting at all.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most this many refusals are being written at once; beyond them an
/// excess connection is closed without an answer (a flood of connections
/// must not become a flood of refusal tasks).
const REFUSALS: usize = 64;
/// How long a refusal may take to write and to let the peer read it.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// The connection slots of one door.
pub struct Slots {
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    max: usize,
}

impl Slots {
    /// Slots for `max` concurrent connections (at least one).
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Slots {
            open: Arc::new(Semaphore::new(max)),
            refusing: Arc::new(Semaphore::new(REFUSALS)),
            max,
        }
    }

    /// A slot for a new connection, held until the connection ends; `None`
    /// when all are taken.
    pub fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.open).try_acquire_owned().ok()
    }

    /// The configured number of slots.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Answers `503` on `io` and closes it, in the background and bounded
    /// in time.
    pub fn refuse(&self, mut io: TcpStream) {
        let Ok(permit) = Arc::clone(&self.refusing).try_acquire_owned() else {
            return; // dropped: closed at once
        };
        let body = format!(
            "the server is at its limit of {} concurrent HTTP connections; retry later\n",
            self.max
        );
        tokio::spawn(async move {
            let _permit = permit;
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(REFUSAL_TIME, async {
                io.write_all(answer.as_bytes()).await?;
                io.shutdown().await?;
                // Closing with the request unread would reset the
                // connection, and a reset can destroy the answer before
                // the peer reads it: drain until the peer closes.
                let mut buf = [0u8; 4096];
                while io.read(&mut buf).await? > 0 {}
                Ok::<_, std::io::Error>(())
            })
            .await;
        });
    }
}
