//! `Engine::touch_meta`: the flat meta object of Prisma's `touch/meta`
//! route (touches.md §1.9): the journal's fields, the processor's lag and
//! mode, hot interest, and monotonic totals.

use serde_json::{json, Map, Value};

use super::keys;
use super::processor::TouchMode;
use crate::clock::now_ms;
use crate::engine::Engine;
use crate::error::Result;

impl Engine {
    /// The touch meta of a stream. `settled` is true when no touch is
    /// pending in the open bucket and the processor has caught up.
    pub fn touch_meta(&self, name: &str) -> Result<Value> {
        let ts = self.touch_stream(name)?;
        let now = now_ms();
        let tail = ts.stream.live.lock().next_offset;
        let (next, mode, lag, suppressed) = {
            let p = ts.progress.lock();
            (p.next, p.state.mode, p.state.last_lag, p.state.suppressed)
        };
        let active_templates = ts.templates.lock().active_count();
        let mut m = Map::new();
        {
            let cell = ts.journal.lock();
            let j = &cell.journal;
            let jm = j.meta(now);
            m.insert("mode".into(), json!("memory"));
            m.insert("cursor".into(), json!(j.cursor()));
            m.insert("epoch".into(), json!(keys::hex16(j.epoch())));
            m.insert("generation".into(), json!(j.generation()));
            m.insert("bucketMs".into(), json!(jm.bucket_ms));
            m.insert("coalesceMs".into(), json!(jm.coalesce_ms));
            m.insert("filterSize".into(), json!(jm.filter_size));
            m.insert("k".into(), json!(jm.k));
            m.insert("pendingKeys".into(), json!(jm.pending_keys));
            m.insert("overflowBuckets".into(), json!(jm.overflow_buckets));
            m.insert("activeWaiters".into(), json!(jm.active_waiters));
            m.insert(
                "bucketMaxSourceOffsetSeq".into(),
                json!(jm
                    .bucket_max_source_offset_seq
                    .map_or_else(|| "-1".to_string(), |o| o.to_string())),
            );
            m.insert("lastFlushAtMs".into(), json!(jm.last_flush_at_ms));
            m.insert(
                "flushIntervalMsMaxLast10s".into(),
                json!(jm.flush_interval_ms_max_last_10s),
            );
            m.insert(
                "flushIntervalMsP95Last10s".into(),
                json!(jm.flush_interval_ms_p95_last_10s),
            );
            let pending = jm.pending_keys;
            let backlog = tail.saturating_sub(next);
            m.insert("settled".into(), json!(pending == 0 && backlog == 0));
            ts.totals.lock().write_json(&mut m, &j.totals());
        }
        // Numbers as JavaScript writes them (100, not 100.0).
        m.insert(
            "coarseIntervalMs".into(),
            js_value(ts.config.coarse_interval_ms),
        );
        m.insert(
            "touchCoalesceWindowMs".into(),
            js_value(ts.config.touch_coalesce_window_ms),
        );
        m.insert("activeTemplates".into(), json!(active_templates));
        m.insert("lagSourceOffsets".into(), json!(lag));
        let mode = mode.unwrap_or(if suppressed {
            TouchMode::CoarseOnly
        } else {
            TouchMode::Fine
        });
        m.insert("touchMode".into(), json!(mode.as_str()));
        // The last processed offset as a number; the HTTP door writes it in
        // its offset encoding.
        // Prisma's value is the offset the processor reads next (the
        // stream's next offset once caught up), also before any row.
        m.insert("walScannedThrough".into(), json!(next));
        let hot = ts.hot.lock();
        let g = hot.gauges();
        m.insert("hotFineKeys".into(), json!(g.hot_fine_keys));
        m.insert("hotTemplates".into(), json!(g.hot_templates));
        m.insert("hotFineKeysActive".into(), json!(g.hot_fine_keys_active));
        m.insert("hotFineKeysGrace".into(), json!(g.hot_fine_keys_grace));
        m.insert("hotTemplatesActive".into(), json!(g.hot_templates_active));
        m.insert("hotTemplatesGrace".into(), json!(g.hot_templates_grace));
        m.insert("fineWaitersActive".into(), json!(g.fine_waiters_active));
        m.insert("coarseWaitersActive".into(), json!(g.coarse_waiters_active));
        m.insert(
            "broadFineWaitersActive".into(),
            json!(g.broad_fine_waiters_active),
        );
        m.insert(
            "hotKeyFilteringEnabled".into(),
            json!(hot.key_filtering_on()),
        );
        m.insert(
            "hotTemplateFilteringEnabled".into(),
            json!(hot.template_filtering_on()),
        );
        Ok(Value::Object(m))
    }
}

/// A number as a JSON value written the way JavaScript prints it.
fn js_value(x: f64) -> Value {
    serde_json::from_str(&super::json_text::js_number(x)).unwrap_or(Value::Null)
}
