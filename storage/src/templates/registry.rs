//! One stream's templates (touches.md §2.2–2.8): activation with the
//! token bucket and the caps, heartbeats kept in memory and persisted in
//! batches, and the inactivity GC that trusts fresher memory. Sans-IO: it
//! returns the rows to write and the lifecycle events to publish; the
//! caller's lock around `&mut self` is Prisma's per-stream activation lock.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};

use super::bucket::TokenBucket;
use super::decl::canonicalize;
use super::row::{RetiredReason, State, TemplateRow};
use super::time::iso_ms;
use crate::touch::defaults::INVALID_TEMPLATE_ID;
use crate::touch::derive::TemplateSpec;
use crate::touch::keys;

/// The caps on active templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub per_entity: u64,
    pub per_stream: u64,
}

/// Why a declaration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    Invalid,
    RateLimited,
}

impl DenyReason {
    /// The reason as the route spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Invalid => "invalid",
            DenyReason::RateLimited => "rate_limited",
        }
    }
}

/// The outcome of one activation call.
#[derive(Debug, Default)]
pub struct Activation {
    pub activated: Vec<u64>,
    pub denied: Vec<(String, DenyReason)>,
    /// Evicted ids with the cap that evicted them.
    pub evicted: Vec<(u64, u64)>,
    /// Rows whose stored form changed, to write in one batch.
    pub writes: Vec<TemplateRow>,
    pub events: Vec<Value>,
}

/// The outcome of one GC pass.
#[derive(Debug, Default)]
pub struct Gc {
    pub retired: Vec<TemplateRow>,
    /// Rows kept alive by fresher memory, with their last-seen refreshed.
    pub refreshed: Vec<TemplateRow>,
    pub events: Vec<Value>,
}

#[derive(Debug, Clone, Copy)]
struct LastSeen {
    last_seen_ms: u64,
    last_persist_ms: u64,
}

/// The templates of one stream.
#[derive(Debug)]
pub struct StreamTemplates {
    stream: String,
    rows: BTreeMap<u64, TemplateRow>,
    bucket: Option<TokenBucket>,
    memory: HashMap<u64, LastSeen>,
    dirty: HashSet<u64>,
    /// Bumped by every call that may change which templates are active or
    /// what they declare, so readers can cache [`Self::active_specs`].
    changes: u64,
}

impl StreamTemplates {
    /// An empty registry for `stream`.
    pub fn new(stream: &str) -> StreamTemplates {
        StreamTemplates {
            stream: stream.to_string(),
            rows: BTreeMap::new(),
            bucket: None,
            memory: HashMap::new(),
            dirty: HashSet::new(),
            changes: 0,
        }
    }

    /// Loads the stored rows.
    pub fn load(&mut self, rows: Vec<TemplateRow>) {
        self.changes += 1;
        self.rows = rows.into_iter().map(|r| (r.id, r)).collect();
    }

    /// Activates declarations (see the module doc and touches.md §2.4).
    #[allow(clippy::too_many_arguments)]
    pub fn activate(
        &mut self,
        decls: &[Value],
        ttl_ms: u64,
        caps: Caps,
        limit_per_minute: f64,
        base_next_offset: u64,
        cursor: &str,
        now_ms: u64,
    ) -> Activation {
        self.changes += 1;
        let mut out = Activation::default();
        let bucket = self
            .bucket
            .get_or_insert_with(|| TokenBucket::new(limit_per_minute, now_ms));
        let max_tokens = bucket.available(limit_per_minute, now_ms);
        let mut used = 0u64;
        // A template declared twice in one call is activated, then refreshed,
        // and reported (with an event) each time, as Prisma Streams 0.1.11
        // does (the differential test pins it).
        for v in decls {
            let Some(d) = canonicalize(v) else {
                out.denied
                    .push((INVALID_TEMPLATE_ID.to_string(), DenyReason::Invalid));
                continue;
            };
            match self.rows.get_mut(&d.id) {
                Some(r)
                    if r.entity != d.entity
                        || r.fields != d.fields
                        || r.encodings != d.encodings =>
                {
                    out.denied.push((keys::hex16(d.id), DenyReason::Invalid));
                }
                Some(r) if r.state == State::Active => {
                    r.last_seen_at_ms = now_ms;
                    r.inactivity_ttl_ms = ttl_ms;
                    out.writes.push(r.clone());
                    out.activated.push(d.id);
                }
                existing => {
                    if used >= max_tokens {
                        out.denied
                            .push((keys::hex16(d.id), DenyReason::RateLimited));
                        continue;
                    }
                    used += 1;
                    let created = existing.as_ref().map_or(now_ms, |r| r.created_at_ms);
                    let row = TemplateRow {
                        id: d.id,
                        entity: d.entity,
                        fields: d.fields,
                        encodings: d.encodings,
                        state: State::Active,
                        created_at_ms: created,
                        last_seen_at_ms: now_ms,
                        inactivity_ttl_ms: ttl_ms,
                        active_from_source_offset: base_next_offset,
                        retired_at_ms: None,
                        retired_reason: None,
                    };
                    self.rows.insert(row.id, row.clone());
                    out.writes.push(row);
                    out.activated.push(d.id);
                }
            }
        }
        let protected: HashSet<u64> = out.activated.iter().copied().collect();
        self.enforce_caps(caps, &protected, now_ms, &mut out);
        bucket_consume(&mut self.bucket, limit_per_minute, used, now_ms);
        for &id in &out.activated {
            self.memory.insert(
                id,
                LastSeen {
                    last_seen_ms: now_ms,
                    last_persist_ms: now_ms,
                },
            );
            let r = &self.rows[&id];
            out.events.push(json!({
                "type": "live.template_activated",
                "ts": iso_ms(now_ms),
                "stream": self.stream,
                "templateId": keys::hex16(id),
                "entity": r.entity,
                "fields": r.fields,
                "encodings": r.encodings.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "reason": "declared",
                "activeFromTouchOffset": cursor,
                "inactivityTtlMs": r.inactivity_ttl_ms,
            }));
        }
        for &(id, cap) in &out.evicted {
            self.memory.remove(&id);
            self.dirty.remove(&id);
            out.events.push(json!({
                "type": "live.template_evicted",
                "ts": iso_ms(now_ms),
                "stream": self.stream,
                "templateId": keys::hex16(id),
                "reason": "cap_exceeded",
                "cap": cap,
            }));
        }
        out
    }

    fn enforce_caps(
        &mut self,
        caps: Caps,
        protected: &HashSet<u64>,
        now_ms: u64,
        out: &mut Activation,
    ) {
        let mut by_entity: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for r in self.rows.values().filter(|r| r.state == State::Active) {
            by_entity.entry(r.entity.clone()).or_default().push(r.id);
        }
        for ids in by_entity.values() {
            let over = (ids.len() as u64).saturating_sub(caps.per_entity.max(1));
            self.evict(ids.clone(), over, caps.per_entity, protected, now_ms, out);
        }
        let active: Vec<u64> = self
            .rows
            .values()
            .filter(|r| r.state == State::Active)
            .map(|r| r.id)
            .collect();
        let over = (active.len() as u64).saturating_sub(caps.per_stream.max(1));
        self.evict(active, over, caps.per_stream, protected, now_ms, out);
    }

    /// Retires `n` of `ids`, least recently seen first (ties by id), taking
    /// this call's activations only when the others do not suffice.
    fn evict(
        &mut self,
        mut ids: Vec<u64>,
        n: u64,
        cap: u64,
        protected: &HashSet<u64>,
        now_ms: u64,
        out: &mut Activation,
    ) {
        if n == 0 {
            return;
        }
        ids.sort_by_key(|id| (protected.contains(id), self.rows[id].last_seen_at_ms, *id));
        for id in ids.into_iter().take(n as usize) {
            let r = self.rows.get_mut(&id).expect("listed row");
            r.state = State::Retired;
            r.retired_reason = Some(RetiredReason::CapExceeded);
            r.retired_at_ms = Some(now_ms);
            out.writes.retain(|w| w.id != id);
            out.writes.push(r.clone());
            out.activated.retain(|a| *a != id);
            out.evicted.push((id, cap));
        }
    }

    /// Marks templates used by a fine wait (only lowercase hex16 ids count).
    pub fn heartbeat(&mut self, ids: &[&str], now_ms: u64) {
        for id in ids {
            let Some(id) = keys::parse_hex16(id.trim()) else {
                continue;
            };
            let e = self.memory.entry(id).or_insert(LastSeen {
                last_seen_ms: now_ms,
                last_persist_ms: 0,
            });
            e.last_seen_ms = e.last_seen_ms.max(now_ms);
            self.dirty.insert(id);
        }
    }

    /// The active rows whose last-seen is due for persisting.
    pub fn flush_last_seen(&mut self, now_ms: u64, interval_ms: f64) -> Vec<TemplateRow> {
        let mut out = Vec::new();
        let due: Vec<u64> = self
            .dirty
            .iter()
            .copied()
            .filter(|id| {
                self.memory
                    .get(id)
                    .is_some_and(|m| now_ms.saturating_sub(m.last_persist_ms) as f64 >= interval_ms)
            })
            .collect();
        for id in due {
            self.dirty.remove(&id);
            let m = self.memory.get_mut(&id).expect("due entry");
            m.last_persist_ms = now_ms;
            if let Some(r) = self.rows.get_mut(&id).filter(|r| r.state == State::Active) {
                if m.last_seen_ms > r.last_seen_at_ms {
                    r.last_seen_at_ms = m.last_seen_ms;
                    out.push(r.clone());
                }
            }
        }
        out
    }

    /// One inactivity GC pass over at most `max` expired candidates.
    pub fn gc(&mut self, now_ms: u64, max: usize) -> Gc {
        self.changes += 1;
        let mut out = Gc::default();
        let mut candidates: Vec<(u64, u64)> = self
            .rows
            .values()
            .filter(|r| {
                r.state == State::Active
                    && r.last_seen_at_ms.saturating_add(r.inactivity_ttl_ms) < now_ms
            })
            .map(|r| (r.last_seen_at_ms, r.id))
            .collect();
        candidates.sort_unstable();
        for (_, id) in candidates.into_iter().take(max) {
            let mem = self.memory.get(&id).map(|m| m.last_seen_ms);
            let r = self.rows.get_mut(&id).expect("candidate");
            let effective = r.last_seen_at_ms.max(mem.unwrap_or(0));
            if effective.saturating_add(r.inactivity_ttl_ms) >= now_ms {
                if effective > r.last_seen_at_ms {
                    r.last_seen_at_ms = effective;
                    out.refreshed.push(r.clone());
                    if let Some(m) = self.memory.get_mut(&id) {
                        m.last_persist_ms = now_ms;
                    }
                    self.dirty.remove(&id);
                }
                continue;
            }
            r.state = State::Retired;
            r.retired_reason = Some(RetiredReason::Inactivity);
            r.retired_at_ms = Some(now_ms);
            out.events.push(json!({
                "type": "live.template_retired",
                "ts": iso_ms(now_ms),
                "stream": self.stream,
                "templateId": keys::hex16(id),
                "entity": r.entity,
                "fields": r.fields,
                "encodings": r.encodings.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "lastSeenAt": iso_ms(effective),
                "inactiveForMs": now_ms.saturating_sub(effective),
                "reason": "inactivity",
            }));
            out.retired.push(r.clone());
            self.memory.remove(&id);
            self.dirty.remove(&id);
        }
        out
    }

    /// A counter that changes whenever [`Self::active_specs`] may answer
    /// differently.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The active templates for the processor, in (entity, id) order; a
    /// malformed active row is an error (the batch fails, never skips it).
    pub fn active_specs(&self) -> Result<Vec<TemplateSpec>, String> {
        let mut v = Vec::new();
        for r in self.rows.values().filter(|r| r.state == State::Active) {
            r.validate_active()?;
            v.push(TemplateSpec {
                id: r.id,
                entity: r.entity.clone(),
                fields: r
                    .fields
                    .iter()
                    .cloned()
                    .zip(r.encodings.iter().copied())
                    .collect(),
                active_from: r.active_from_source_offset,
            });
        }
        v.sort_by(|a, b| a.entity.cmp(&b.entity).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    /// Active templates.
    pub fn active_count(&self) -> usize {
        self.rows
            .values()
            .filter(|r| r.state == State::Active)
            .count()
    }

    /// The entity of an active template.
    pub fn active_entity_of(&self, id: u64) -> Option<&str> {
        self.rows
            .get(&id)
            .filter(|r| r.state == State::Active)
            .map(|r| r.entity.as_str())
    }

    /// The active rows for a template snapshot: (id, entity, fields, stored
    /// last-seen), in (entity, id) order.
    pub fn snapshot_rows(&self) -> Vec<(u64, String, Vec<String>, u64)> {
        let mut v: Vec<_> = self
            .rows
            .values()
            .filter(|r| r.state == State::Active)
            .map(|r| (r.id, r.entity.clone(), r.fields.clone(), r.last_seen_at_ms))
            .collect();
        v.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Memory entries (heartbeats) and dirty ones, for memory stats.
    pub fn memory_stats(&self) -> (usize, usize) {
        (self.memory.len(), self.dirty.len())
    }
}

fn bucket_consume(b: &mut Option<TokenBucket>, limit: f64, n: u64, now_ms: u64) {
    if let Some(b) = b {
        b.consume(limit, n, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        per_entity: 256,
        per_stream: 2048,
    };

    fn decl(entity: &str, field: &str) -> Value {
        json!({"entity": entity, "fields": [{"name": field, "encoding": "string"}]})
    }

    #[test]
    fn refreshes_use_no_token_and_new_ones_are_rate_limited() {
        let mut t = StreamTemplates::new("s");
        let a = t.activate(&[decl("e", "a")], 1000, CAPS, 1.0, 0, "c", 0);
        assert_eq!(a.activated.len(), 1);
        let b = t.activate(&[decl("e", "a")], 1000, CAPS, 1.0, 0, "c", 1);
        assert_eq!(
            (b.activated.len(), b.denied.len()),
            (1, 0),
            "refresh is free"
        );
        let c = t.activate(&[decl("e", "b")], 1000, CAPS, 1.0, 0, "c", 2);
        assert_eq!(c.denied[0].1, DenyReason::RateLimited);
        // A minute refills the one token.
        let d = t.activate(&[decl("e", "b")], 1000, CAPS, 1.0, 0, "c", 60_002);
        assert_eq!(d.activated.len(), 1);
        assert_eq!(a.events[0]["type"], json!("live.template_activated"));
        assert_eq!(b.events.len(), 1, "refreshes emit activated too");
    }

    #[test]
    fn invalid_declarations_and_colliding_encodings() {
        let mut t = StreamTemplates::new("s");
        let bad = json!({"entity": "e", "fields": [{"name": "a", "encoding": "nope"}]});
        let a = t.activate(&[bad, decl("e", "a")], 1000, CAPS, 0.0, 0, "c", 0);
        assert_eq!(
            a.denied[0],
            (INVALID_TEMPLATE_ID.to_string(), DenyReason::Invalid)
        );
        let other = json!({"entity": "e", "fields": [{"name": "a", "encoding": "int64"}]});
        let b = t.activate(&[other], 1000, CAPS, 0.0, 0, "c", 1);
        assert_eq!(b.denied[0].1, DenyReason::Invalid);
    }

    #[test]
    fn caps_evict_least_recently_seen_and_protect_newcomers() {
        let mut t = StreamTemplates::new("s");
        let caps = Caps {
            per_entity: 2,
            per_stream: 3,
        };
        t.activate(&[decl("e", "a")], 1000, caps, 0.0, 0, "c", 10);
        t.activate(&[decl("e", "b")], 1000, caps, 0.0, 0, "c", 20);
        let r = t.activate(&[decl("e", "c")], 1000, caps, 0.0, 0, "c", 30);
        let oldest = keys::template_id("e", &["a"]);
        assert_eq!(r.evicted, vec![(oldest, 2)], "entity cap, LRU");
        assert_eq!(r.events.last().unwrap()["cap"], json!(2));
        t.activate(&[decl("f", "x")], 1000, caps, 0.0, 0, "c", 40);
        let r = t.activate(
            &[decl("g", "y"), decl("g", "z")],
            1000,
            caps,
            0.0,
            0,
            "c",
            50,
        );
        assert_eq!(r.evicted.len(), 2, "stream cap");
        assert!(r.evicted.iter().all(|(id, cap)| *cap == 3
            && *id != keys::template_id("g", &["y"])
            && *id != keys::template_id("g", &["z"])));
    }

    #[test]
    fn heartbeats_keep_templates_alive_and_gc_retires_the_rest() {
        let mut t = StreamTemplates::new("s");
        t.activate(&[decl("e", "a"), decl("e", "b")], 100, CAPS, 0.0, 0, "c", 0);
        let a = keys::hex16(keys::template_id("e", &["a"]));
        // Persist interval far longer than the TTL: memory must be trusted.
        t.heartbeat(&[a.as_str(), "ABCDEF0123456789"], 150);
        assert!(t.flush_last_seen(150, 1e9).is_empty());
        let gc = t.gc(201, 1000);
        assert_eq!(gc.retired.len(), 1, "only b retires");
        assert_eq!(gc.refreshed.len(), 1, "a is refreshed from memory");
        assert_eq!(gc.events[0]["reason"], json!("inactivity"));
        assert_eq!(gc.events[0]["inactiveForMs"], json!(201));
        // A retired template comes back with a new active-from offset.
        let r = t.activate(&[decl("e", "b")], 100, CAPS, 0.0, 77, "c", 300);
        assert_eq!(r.writes[0].active_from_source_offset, 77);
        assert_eq!(t.active_count(), 2);
    }
}
