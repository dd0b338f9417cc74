//! Whether the engine can write. A commit write that fails with a storage
//! error marks the engine faulted, and the next write that succeeds clears
//! it. While faulted, the commit thread probes the disk once a second with a
//! write of its own (`commit::Committer::probe`), so the fault clears by
//! itself once space is freed, even when no client writes.
//!
//! A full disk is the case that matters: RocksDB then refuses every write
//! (a "hard" background error) until its own recovery finds free space of
//! at least the largest memtable and flushes; reads keep working
//! throughout. Readiness (`/readyz`) reports the fault so balancers steer
//! writers elsewhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::error::Error;

/// How often the commit thread retries the disk while writes fail.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the engine cannot write now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFault {
    /// The filesystem under the data directory is full.
    pub no_space: bool,
    /// The storage error of the first failed write.
    pub message: String,
    /// When the first write failed.
    pub since: SystemTime,
}

/// The engine's write health, shared by the commit thread (which sets and
/// clears it) and readers of readiness.
#[derive(Debug, Default)]
pub(crate) struct WriteHealth {
    /// Mirrors `fault.is_some()`, so the commit thread's success path costs
    /// one load.
    faulted: AtomicBool,
    fault: Mutex<Option<WriteFault>>,
}

impl WriteHealth {
    /// Records a failed write. Errors that are the request's own (bad
    /// input, a refused precondition) never reach the disk and are not
    /// faults; only storage errors are.
    pub fn failed(&self, e: &Error) {
        let no_space = matches!(e, Error::NoSpace(_));
        if !no_space && !matches!(e, Error::Storage(_)) {
            return;
        }
        let mut fault = self.fault.lock();
        if fault.is_none() {
            tracing::error!(error = %e, "writes are failing; the commit thread retries the disk every second");
            *fault = Some(WriteFault {
                no_space,
                message: e.to_string(),
                since: SystemTime::now(),
            });
            self.faulted.store(true, Ordering::Release);
        }
    }

    /// Records a successful write: clears a fault.
    pub fn succeeded(&self) {
        if !self.faulted.load(Ordering::Acquire) {
            return;
        }
        if let Some(f) = self.fault.lock().take() {
            let down = f.since.elapsed().unwrap_or_default();
            tracing::info!(after_ms = down.as_millis() as u64, "writes succeed again");
        }
        self.faulted.store(false, Ordering::Release);
    }

    /// Whether writes are failing now.
    pub fn is_faulted(&self) -> bool {
        self.faulted.load(Ordering::Acquire)
    }

    /// The current fault, if any.
    pub fn fault(&self) -> Option<WriteFault> {
        self.fault.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_storage_errors_fault_and_a_success_clears() {
        let h = WriteHealth::default();
        h.failed(&Error::Invalid("bad".into()));
        h.failed(&Error::EmptyAppend);
        assert!(!h.is_faulted());
        h.failed(&Error::NoSpace("IO error: No space left on device".into()));
        h.failed(&Error::Storage("a later, different error".into()));
        let f = h.fault().expect("faulted");
        assert!(f.no_space, "the first failure is kept");
        assert!(f.message.contains("No space"));
        h.succeeded();
        assert!(!h.is_faulted());
        assert_eq!(h.fault(), None);
    }
}
