//! The engine's template operations: activation (the route and a wait's
//! `declareTemplates`) and heartbeats. The template lock of the stream is
//! Prisma's per-stream activation lock: token reads and consumption, the
//! store write and the cap evictions happen under it, one call at a time.

use std::sync::Arc;

use rocksdb::WriteBatch;
use serde_json::Value;

use super::keys;
use super::metrics::counters::LifecycleKind;
use super::store;
use super::stream::TouchStream;
use crate::clock::now_ms;
use crate::engine::Engine;
use crate::error::Result;
use crate::templates::registry::Caps;

/// One template the activation made (or kept) active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivatedTemplate {
    /// The template id, 16 lowercase hex characters.
    pub template_id: String,
    /// The journal cursor when the activation began.
    pub active_from_touch_offset: String,
}

/// The answer to an activation, as Prisma's route gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// Templates now active (new, reactivated or refreshed).
    pub activated: Vec<ActivatedTemplate>,
    /// Refused templates: id (or `0000000000000000`) and `invalid` or `rate_limited`.
    pub denied: Vec<(String, &'static str)>,
    /// The stream's cap on active templates.
    pub max_active_templates_per_stream: u64,
    /// The per-entity cap on active templates.
    pub max_active_templates_per_entity: u64,
}

impl Engine {
    /// Activates template declarations (the `templates` array of the route,
    /// already shape-checked) with an inactivity TTL; `None` takes the
    /// profile's default.
    pub fn touch_activate(
        &self,
        name: &str,
        templates: &[Value],
        inactivity_ttl_ms: Option<u64>,
    ) -> Result<Activation> {
        let ts = self.touch_stream(name)?;
        let ttl = inactivity_ttl_ms.unwrap_or(ts.config.templates.default_inactivity_ttl_ms as u64);
        self.activate_on(&ts, templates, ttl, now_ms())
    }

    /// The default inactivity TTL of a touch stream's templates.
    pub fn touch_default_ttl(&self, name: &str) -> Result<u64> {
        Ok(self
            .touch_stream(name)?
            .config
            .templates
            .default_inactivity_ttl_ms as u64)
    }

    /// Feeds the scheduling-delay sampler of `live.metrics`; the server
    /// calls it every 100 ms from its async runtime.
    pub fn sample_loop_lag(&self, now_ms: u64) {
        self.shared().touch.loop_lag.lock().sample(now_ms);
    }

    pub(crate) fn activate_on(
        &self,
        ts: &Arc<TouchStream>,
        decls: &[Value],
        ttl_ms: u64,
        now: u64,
    ) -> Result<Activation> {
        let cursor = ts.journal.lock().journal.cursor();
        let base_next = ts.stream.live.lock().next_offset;
        let t = &ts.config.templates;
        let caps = Caps {
            per_entity: t.max_active_templates_per_entity as u64,
            per_stream: t.max_active_templates_per_stream as u64,
        };
        let mut reg = ts.templates.lock();
        let out = reg.activate(
            decls,
            ttl_ms,
            caps,
            t.activation_rate_limit_per_minute,
            base_next,
            &cursor,
            now,
        );
        if !out.writes.is_empty() {
            let mut wb = WriteBatch::default();
            for row in &out.writes {
                store::put_template(&self.shared().db, &mut wb, ts.sid(), row);
            }
            self.shared().db.write(wb)?;
        }
        drop(reg);
        let rate_limited = out
            .denied
            .iter()
            .filter(|(_, r)| r.as_str() == "rate_limited")
            .count() as u64;
        {
            let mut c = ts.counters.lock();
            c.record_activation_denied(rate_limited);
            for _ in &out.activated {
                c.record_lifecycle(LifecycleKind::Activated);
            }
            for _ in &out.evicted {
                c.record_lifecycle(LifecycleKind::Evicted);
            }
        }
        self.shared()
            .touch
            .queue_events(&ts.stream.name, out.events);
        Ok(Activation {
            activated: out
                .activated
                .iter()
                .map(|&id| ActivatedTemplate {
                    template_id: keys::hex16(id),
                    active_from_touch_offset: cursor.clone(),
                })
                .collect(),
            denied: out
                .denied
                .into_iter()
                .map(|(id, r)| (id, r.as_str()))
                .collect(),
            max_active_templates_per_stream: caps.per_stream,
            max_active_templates_per_entity: caps.per_entity,
        })
    }

    /// Marks templates used by a fine wait and persists the due last-seen times.
    pub(crate) fn heartbeat(&self, ts: &TouchStream, ids: &[&str], now: u64) -> Result<()> {
        let mut reg = ts.templates.lock();
        reg.heartbeat(ids, now);
        let rows = reg.flush_last_seen(now, ts.config.templates.last_seen_persist_interval_ms);
        if !rows.is_empty() {
            let mut wb = WriteBatch::default();
            for row in &rows {
                store::put_template(&self.shared().db, &mut wb, ts.sid(), row);
            }
            self.shared().db.write(wb)?;
        }
        Ok(())
    }
}
