//! The engine's state operations: turning state on or off, reads at one
//! fence (get, scan, snapshot), subscriptions and the offline check.

use std::sync::Arc;

use super::subscribe::{StateSubscription, SubscribeState};
use super::verify::{verify_stream, VerifyReport};
use super::view::{ScanPage, ScanRequest, StateGet, StateSnapshot, View};
use super::{StateKey, StateMode, StateStatus};
use crate::commit::Command;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::follow::{FollowFrom, Follower};

impl Engine {
    /// Sets a stream's state mode and stored profile document. Turning state
    /// on for a stream with history builds it in the background (`head`
    /// shows the progress; state reads answer [`Error::StateBuilding`]
    /// until it is done); setting the current mode again keeps the state
    /// and only replaces the profile.
    pub async fn set_state_mode(
        &self,
        name: &str,
        mode: StateMode,
        profile: Option<String>,
    ) -> Result<StateStatus> {
        let s = self.lookup(name)?;
        super::check_mode(&s.config.content_type, mode)?;
        let status = self
            .submit(|reply| Command::SetState {
                name: name.to_string(),
                mode,
                profile,
                reply,
            })
            .await
            .await?;
        // Touch routes work as soon as the profile change is answered.
        self.shared()
            .touch
            .sync(self.shared(), crate::clock::now_ms());
        Ok(status)
    }

    /// The profile document last stored for a stream, if any.
    pub fn profile(&self, name: &str) -> Result<Option<String>> {
        let s = self.lookup(name)?;
        let p = s.live.lock().kv.profile.as_deref().map(str::to_string);
        Ok(p)
    }

    /// One key's value, the offset that wrote it, and the fence and tail
    /// the answer is consistent at.
    pub fn state_get(&self, name: &str, key: &StateKey) -> Result<StateGet> {
        self.view(name)?.get(key)
    }

    /// One page of a stream's state in key order.
    pub fn state_scan(&self, name: &str, req: &ScanRequest) -> Result<ScanPage> {
        self.view(name)?.scan(req)
    }

    /// [`Engine::state_get`] on the engine's reader threads, for async
    /// callers: the RocksDB reads never run on their runtime.
    pub async fn state_get_async(&self, name: &str, key: StateKey) -> Result<StateGet> {
        let (engine, name) = (self.clone(), name.to_string());
        let pool = Arc::clone(self.shared());
        pool.reads.run(move || engine.state_get(&name, &key)).await
    }

    /// [`Engine::state_scan`] on the engine's reader threads.
    pub async fn state_scan_async(&self, name: &str, req: ScanRequest) -> Result<ScanPage> {
        let (engine, name) = (self.clone(), name.to_string());
        let pool = Arc::clone(self.shared());
        pool.reads.run(move || engine.state_scan(&name, &req)).await
    }

    /// A snapshot of the whole state (optionally filtered), to read page by page.
    pub fn state_snapshot(
        &self,
        name: &str,
        filter: Option<super::Filter>,
    ) -> Result<StateSnapshot> {
        Ok(StateSnapshot::new(self.view(name)?, filter))
    }

    /// Subscribes to a stream's state: a snapshot then every change after
    /// its fence, or changes from an offset (see [`SubscribeState`]).
    pub fn subscribe_state(&self, name: &str, req: SubscribeState) -> Result<StateSubscription> {
        let s = self.lookup(name)?;
        let shared = Arc::clone(self.shared());
        if req.snapshot {
            let view = View::open(&shared, &s)?;
            let fence = view.fence();
            let follower = Follower::new(shared, s, FollowFrom::Offset(fence))?;
            let snap = StateSnapshot::new(view, req.filter.clone());
            return Ok(StateSubscription::with_snapshot(snap, follower, &req));
        }
        let mode = s.live.lock().kv.mode;
        if mode == StateMode::None {
            return Err(Error::NotStateStream);
        }
        let from = match req.from {
            Some(o) => FollowFrom::Offset(o),
            None => FollowFrom::Now,
        };
        let follower = Follower::new(shared, s, from)?;
        Ok(StateSubscription::from_offset(follower, mode, &req))
    }

    /// Recomputes every state stream's state from its log and compares it
    /// with the stored state (the `weir verify` check).
    pub fn verify_state(&self) -> Result<Vec<VerifyReport>> {
        let streams: Vec<_> = self.shared().streams.read().values().cloned().collect();
        let mut out = Vec::new();
        for s in streams {
            if s.live.lock().kv.mode == StateMode::None {
                continue;
            }
            out.push(verify_stream(self.shared(), &s)?);
        }
        Ok(out)
    }

    fn view(&self, name: &str) -> Result<View> {
        let s = self.lookup(name)?;
        s.touch(crate::clock::now_ms());
        View::open(self.shared(), &s)
    }
}
