//! A future polled only after it woke its task.
//!
//! A subscription's loop waits on its stream and on what ends it (an
//! unsubscribe, the connection closing, the peer stopping its channel, a
//! shutdown). The stream wakes the task for every delivery; the rest almost
//! never fire. Polling those four after every delivery cost about a tenth of
//! the server at 600k deliveries a second (`tokio::select!` polls each
//! branch, and each poll re-registers its waker). [`Gated`] gives the inner
//! future a waker of its own that raises a flag before waking the task, so
//! the loop polls it only when it is the reason the task runs: one atomic
//! swap per delivery instead of four polls.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// The inner future's waker: notes that it fired, then wakes the task.
#[derive(Default)]
struct Flag {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// `F`, polled through [`Gated::poll_if_woken`] only when it has woken the
/// task since its last poll (and once at the start, so it registers).
pub(crate) struct Gated<F> {
    fut: Pin<Box<F>>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<F: Future> Gated<F> {
    /// Wraps `fut`; the first [`Gated::poll_if_woken`] polls it.
    pub fn new(fut: F) -> Self {
        let flag = Arc::new(Flag::default());
        flag.fired.store(true, Ordering::Relaxed);
        Gated {
            fut: Box::pin(fut),
            waker: Waker::from(Arc::clone(&flag)),
            flag,
        }
    }

    /// Polls the inner future if it asked to be, and otherwise only makes
    /// sure that its next wake reaches the task polling now.
    pub fn poll_if_woken(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.flag.task.register(cx.waker());
        if !self.flag.fired.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        self.fut
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its polls; ready once `open` is set.
    struct Door {
        polls: Arc<AtomicUsize>,
        open: Arc<AtomicBool>,
        waker: Arc<parking_lot::Mutex<Option<Waker>>>,
    }

    impl Future for Door {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn polls_only_after_its_own_wake() {
        let polls = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicBool::new(false));
        let slot = Arc::new(parking_lot::Mutex::new(None::<Waker>));
        let mut g = Gated::new(Door {
            polls: Arc::clone(&polls),
            open: Arc::clone(&open),
            waker: Arc::clone(&slot),
        });
        let task_woken = Arc::new(Flag::default());
        let task = Waker::from(Arc::clone(&task_woken));
        let mut cx = Context::from_waker(&task);
        assert!(g.poll_if_woken(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "polled once to register");
        for _ in 0..10 {
            assert!(g.poll_if_woken(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1, "not polled without a wake");
        open.store(true, Ordering::SeqCst);
        slot.lock().take().unwrap().wake();
        assert!(
            task_woken.fired.load(Ordering::SeqCst),
            "the wake reached the task"
        );
        assert!(g.poll_if_woken(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
