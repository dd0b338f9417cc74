//! How subscriptions learn of changes: the engine's commit hook, so that
//! appends and creates from every door (HTTP, QUIC, WebSocket) and from
//! in-process callers wake them alike. The hook runs on the commit thread,
//! before the change's requests are answered: it updates linked tails and
//! opens wakes there (cheap: linear matching under the subscriptions'
//! lock, nothing at all without subscriptions), so a client that claims
//! right after its append was acknowledged finds the wake; the deliveries
//! (webhook calls, wake events) are queued for a task.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use weir_storage::{Committed, Engine};

use super::state::Action;
use super::Subscriptions;

#[derive(Default)]
struct Queued {
    actions: Mutex<Vec<Action>>,
    notify: Notify,
}

/// Feeds `subs` from `engine`'s commits until the returned task is aborted.
pub fn watch_commits(subs: &Arc<Subscriptions>, engine: &Engine) -> tokio::task::JoinHandle<()> {
    let queued = Arc::new(Queued::default());
    let (hook_subs, hook_queue) = (Arc::clone(subs), Arc::clone(&queued));
    engine.on_commit(Arc::new(move |batch: &[Committed]| {
        let mut actions = Vec::new();
        for c in batch {
            actions.extend(hook_subs.note_changed(&c.stream, c.next_offset));
        }
        if !actions.is_empty() {
            hook_queue.actions.lock().extend(actions);
            hook_queue.notify.notify_one();
        }
    }));
    let (subs, engine) = (Arc::clone(subs), engine.clone());
    tokio::spawn(async move {
        loop {
            queued.notify.notified().await;
            let actions = std::mem::take(&mut *queued.actions.lock());
            subs.run_all(&engine, actions);
        }
    })
}
