//! How subscriptions learn of changes: the engine's commit hook, so that
//! appends and creates from every door (HTTP, QUIC, WebSocket) and from
//! in-process callers wake them alike. The hook runs on the commit thread
//! and only records which streams changed (a set, so its memory is bounded
//! by the number of streams); a task drains the set and does the matching
//! and the wakes, off the commit thread and off every append's path.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use weir_storage::{Committed, Engine};

use super::Subscriptions;

#[derive(Default)]
struct Changed {
    names: Mutex<BTreeSet<Arc<str>>>,
    notify: Notify,
}

/// Feeds `subs` from `engine`'s commits until the returned task is aborted.
pub fn watch_commits(subs: &Arc<Subscriptions>, engine: &Engine) -> tokio::task::JoinHandle<()> {
    let changed = Arc::new(Changed::default());
    let hook = Arc::clone(&changed);
    engine.on_commit(Arc::new(move |batch: &[Committed]| {
        hook.names
            .lock()
            .extend(batch.iter().map(|c| Arc::clone(&c.stream)));
        hook.notify.notify_one();
    }));
    let (subs, engine) = (Arc::clone(subs), engine.clone());
    tokio::spawn(async move {
        loop {
            changed.notify.notified().await;
            let names: BTreeSet<Arc<str>> = std::mem::take(&mut *changed.names.lock());
            for name in names {
                subs.on_stream_changed(&engine, &name);
            }
        }
    })
}
