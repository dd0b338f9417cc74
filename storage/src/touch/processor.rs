//! One processor batch: committed State Protocol records in, touches out.
//!
//! Pure apart from the state it is handed: the runtime reads the rows, calls
//! [`process`], feeds the touches to the journal and writes the checkpoint.
//! The rules (table touches always, fine touches under a budget and a token
//! bucket, lag degradation with hysteresis into restricted template touches,
//! hot-interest filtering, coalescing by window) are Prisma Streams'
//! (`../shared/specs/touches.md` §1.5, §1.6).

use std::collections::{HashMap, HashSet};

use super::change::{canonical_head, whole};
use super::config::TouchConfig;
use super::derive::{fine_keys, TemplateSpec};
use super::hot::Hot;
use super::keys;
pub(crate) use super::metrics::counters::TouchMode;

/// One committed record as the processor sees it.
pub(crate) struct Row<'a> {
    pub offset: u64,
    pub append_time_ms: u64,
    pub payload: &'a [u8],
}

/// One touch for the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Touch {
    pub key_id: u32,
    /// The 64-bit routing key of a fine (template) touch; `None` for table touches.
    pub routing: Option<u64>,
    /// The largest source offset the touch stands for (its watermark).
    pub offset: u64,
}

/// Processor state that persists between batches of one stream.
pub(crate) struct ProcState {
    /// Lag suppression (the hysteresis flag).
    pub suppressed: bool,
    /// Fine-touch token bucket.
    tokens: f64,
    tokens_at_ms: u64,
    /// Restricted coalescing: the time bucket and the template keys sent in it.
    template_bucket: (u64, HashSet<u32>),
    /// The mode of the last batch (`None` before the first).
    pub mode: Option<TouchMode>,
    /// The last batch's remaining lag (0 without fine demand).
    pub last_lag: u64,
}

impl ProcState {
    /// A stream's processor state before its first batch; the token bucket starts full.
    pub fn new(cfg: &TouchConfig, now_ms: u64) -> ProcState {
        ProcState {
            suppressed: false,
            tokens: cfg.fine_burst_tokens as f64,
            tokens_at_ms: now_ms,
            template_bucket: (0, HashSet::new()),
            mode: None,
            last_lag: 0,
        }
    }

    fn refill(&mut self, cfg: &TouchConfig, now_ms: u64) {
        let rate = cfg.fine_tokens_per_second as f64;
        let cap = cfg.fine_burst_tokens as f64;
        let dt = now_ms.saturating_sub(self.tokens_at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + dt * rate).min(cap);
        self.tokens_at_ms = now_ms;
    }
}

/// What a batch counted, for meta and `live.metrics`.
#[derive(Debug, Default, Clone)]
pub(crate) struct BatchStats {
    pub rows: u64,
    pub changes: u64,
    pub table_touches: u64,
    pub template_touches: u64,
    pub unique_keys: u64,
    pub dropped_budget: u64,
    pub skipped_cold_template: u64,
    pub skipped_cold_key: u64,
    pub skipped_template_bucket: u64,
    pub suppressed_by_lag: bool,
    pub suppressed_by_budget: bool,
    pub max_append_time_ms: u64,
}

/// The touches of one batch, sorted by (key id, routing key, watermark).
pub(crate) struct Output {
    pub touches: Vec<Touch>,
    pub stats: BatchStats,
}

/// The active templates of a stream grouped by entity, each list in id order.
pub(crate) type TemplatesByEntity = HashMap<String, Vec<TemplateSpec>>;

/// Derives the touches of `rows`. `lag_at_start` is the number of committed
/// records not yet processed when the batch began. An `Err` carries the
/// message of an `onMissingBefore: error` violation; the caller must not
/// advance the checkpoint.
pub(crate) fn process(
    cfg: &TouchConfig,
    st: &mut ProcState,
    hot: &Hot,
    templates: &TemplatesByEntity,
    rows: &[Row<'_>],
    lag_at_start: u64,
    now_ms: u64,
) -> Result<Output, String> {
    let mut stats = BatchStats {
        rows: rows.len() as u64,
        ..BatchStats::default()
    };
    let fine_demand = hot.has_fine_demand();
    let degrade = cfg.lag_degrade_fine_touches_at_source_offsets;
    let recover = degrade.min(cfg.lag_recover_fine_touches_at_source_offsets);
    if !fine_demand || degrade == 0 {
        st.suppressed = false;
    } else if !st.suppressed && lag_at_start >= degrade {
        st.suppressed = true;
    } else if st.suppressed && lag_at_start <= recover {
        st.suppressed = false;
    }
    let budget = if !fine_demand {
        0
    } else if st.suppressed {
        cfg.lag_reserved_fine_touch_budget_per_batch
    } else {
        cfg.fine_touch_budget_per_batch
    };
    st.refill(cfg, now_ms);
    let grant = if cfg.fine_tokens_per_second == 0 || cfg.fine_burst_tokens == 0 {
        0
    } else {
        budget.min(st.tokens.floor() as u64)
    };
    let key_filtering = hot.key_filtering_on();
    let template_filtering = hot.template_filtering_on();
    let mut emit_fine = fine_demand && grant > 0;
    if hot.hot_key_count() == 0
        && hot.hot_template_count() == 0
        && hot.broad_fine_waiters() == 0
        && key_filtering
        && !template_filtering
    {
        emit_fine = false;
    }
    let restricted = emit_fine && st.suppressed;
    let values_wanted = emit_fine && !restricted && !templates.is_empty();
    stats.suppressed_by_lag = fine_demand && st.suppressed;

    let mut co = Coalescer::new(
        cfg.coarse_interval_ms.max(0.0) as u64,
        cfg.touch_coalesce_window_ms.max(0.0) as u64,
    );
    let mut pending_fine: HashSet<u64> = HashSet::new();
    let mut scratch = Vec::new();
    // Restricted mode: the largest offset and time per entity.
    let mut entity_max: HashMap<String, (u64, u64)> = HashMap::new();
    let mut eligible_by_entity: HashMap<&str, (Vec<&TemplateSpec>, u64)> = HashMap::new();
    for row in rows {
        stats.max_append_time_ms = stats.max_append_time_ms.max(row.append_time_ms);
        // The identity first, and the values only if a template needs them;
        // in one pass when fine touches are being emitted.
        let head = if values_wanted {
            whole(row.payload)
        } else {
            canonical_head(row.payload)
        };
        let Some(head) = head else {
            continue;
        };
        stats.changes += 1;
        let ts = row.append_time_ms;
        co.add(
            keys::key_id(keys::table_key(&head.entity)),
            None,
            row.offset,
            ts,
            true,
        );
        stats.table_touches += 1;
        let Some((entity, list)) = templates.get_key_value(head.entity.as_ref()) else {
            continue;
        };
        // Hot templates cannot change during the batch (the hot set is
        // locked for it): sort an entity's templates once per batch, not
        // once per row.
        let (eligible, cold) = eligible_by_entity
            .entry(entity.as_str())
            .or_insert_with(|| {
                let hot_ones: Vec<&TemplateSpec> = list
                    .iter()
                    .filter(|t| !template_filtering || hot.is_hot_template(t.id))
                    .collect();
                let cold = (list.len() - hot_ones.len()) as u64;
                (hot_ones, cold)
            });
        if template_filtering {
            stats.skipped_cold_template += *cold;
        }
        if !emit_fine {
            continue;
        }
        if restricted {
            let e = entity_max.entry(entity.clone()).or_insert((0, 0));
            *e = (e.0.max(row.offset), e.1.max(ts));
            continue;
        }
        let change = head.full();
        for t in eligible.iter() {
            if row.offset < t.active_from {
                continue;
            }
            scratch.clear();
            fine_keys(&change, t, cfg.on_missing_before, &mut scratch)?;
            for &routing in &scratch {
                let key_id = keys::key_id(routing);
                if key_filtering && !hot.is_hot_key(key_id) {
                    stats.skipped_cold_key += 1;
                    continue;
                }
                if !pending_fine.contains(&routing) {
                    if pending_fine.len() as u64 >= grant {
                        stats.dropped_budget += 1;
                        stats.suppressed_by_budget = true;
                        continue;
                    }
                    pending_fine.insert(routing);
                }
                co.add(key_id, Some(routing), row.offset, ts, false);
                stats.template_touches += 1;
            }
        }
    }
    if restricted {
        restricted_touches(
            cfg,
            st,
            hot,
            templates,
            &entity_max,
            &mut co,
            &mut stats,
            now_ms,
        );
    }
    let used = if restricted {
        0
    } else {
        pending_fine.len() as u64
    };
    st.tokens = (st.tokens - used as f64).max(0.0);
    let touches = co.finish();
    stats.unique_keys = touches
        .iter()
        .map(|t| t.key_id)
        .collect::<HashSet<_>>()
        .len() as u64;
    st.mode = Some(if !hot.has_any_waiters() {
        TouchMode::Idle
    } else if emit_fine && !st.suppressed {
        TouchMode::Fine
    } else if emit_fine {
        TouchMode::Restricted
    } else {
        TouchMode::CoarseOnly
    });
    st.last_lag = if fine_demand {
        lag_at_start.saturating_sub(rows.len() as u64)
    } else {
        0
    };
    Ok(Output { touches, stats })
}

/// Restricted granularity: one template-key touch per eligible active
/// template of each changed entity, at most once per time bucket.
#[allow(clippy::too_many_arguments)]
fn restricted_touches(
    cfg: &TouchConfig,
    st: &mut ProcState,
    hot: &Hot,
    templates: &TemplatesByEntity,
    entity_max: &HashMap<String, (u64, u64)>,
    co: &mut Coalescer,
    stats: &mut BatchStats,
    now_ms: u64,
) {
    let bucket = now_ms / cfg.memory.bucket_ms.max(1);
    if st.template_bucket.0 != bucket {
        st.template_bucket = (bucket, HashSet::new());
    }
    let filtering = hot.template_filtering_on();
    for (entity, &(offset, ts)) in entity_max {
        let Some(list) = templates.get(entity) else {
            continue;
        };
        for t in list {
            if offset < t.active_from || (filtering && !hot.is_hot_template(t.id)) {
                continue;
            }
            let routing = keys::template_key(t.id);
            let key_id = keys::key_id(routing);
            if !st.template_bucket.1.insert(key_id) {
                stats.skipped_template_bucket += 1;
                continue;
            }
            co.add(key_id, Some(routing), offset, ts, false);
            stats.template_touches += 1;
        }
    }
}

/// Coalesces touches of one batch per routing key (or key id): a touch
/// inside the open window of its group only raises the group's watermark.
struct Coalescer {
    table_window: u64,
    fine_window: u64,
    open: HashMap<(u32, Option<u64>), Pending>,
    out: Vec<Touch>,
}

struct Pending {
    window_start: u64,
    offset: u64,
}

impl Coalescer {
    fn new(table_window: u64, fine_window: u64) -> Coalescer {
        Coalescer {
            table_window,
            fine_window,
            open: HashMap::new(),
            out: Vec::new(),
        }
    }

    fn add(&mut self, key_id: u32, routing: Option<u64>, offset: u64, ts: u64, table: bool) {
        let window = if table {
            self.table_window
        } else {
            self.fine_window
        };
        // Grouped by the routing key when there is one, else by key id.
        let group = (if routing.is_some() { 0 } else { key_id }, routing);
        match self.open.get_mut(&group) {
            Some(p) if ts.saturating_sub(p.window_start) < window => {
                p.offset = p.offset.max(offset);
            }
            Some(p) => {
                self.out.push(Touch {
                    key_id,
                    routing,
                    offset: p.offset,
                });
                *p = Pending {
                    window_start: ts,
                    offset,
                };
            }
            None => {
                self.open.insert(
                    group,
                    Pending {
                        window_start: ts,
                        offset,
                    },
                );
            }
        }
    }

    fn finish(mut self) -> Vec<Touch> {
        for ((key_id, routing), p) in self.open.drain() {
            let key_id = match routing {
                Some(r) => keys::key_id(r),
                None => key_id,
            };
            self.out.push(Touch {
                key_id,
                routing,
                offset: p.offset,
            });
        }
        self.out.sort_unstable();
        self.out
    }
}
