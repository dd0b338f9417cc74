//! Every default, limit and period of Prisma Streams' touch system, in one
//! place (touches spec §4), so a Prisma client and Prisma's docs see the same
//! numbers from Weir.
//!
//! Profile numbers that Prisma validates as plain "number" (fractions allowed)
//! are `f64`; integer-validated ones are integers.

// ---- profile: touch.* ----------------------------------------------------

/// `touch.coarseIntervalMs`: coalescing window for table touches.
pub const COARSE_INTERVAL_MS: f64 = 100.0;
/// `touch.touchCoalesceWindowMs`: coalescing window for fine touches.
pub const TOUCH_COALESCE_WINDOW_MS: f64 = 100.0;
/// `touch.lagDegradeFineTouchesAtSourceOffsets` (0 turns lag suppression off).
pub const LAG_DEGRADE_FINE_TOUCHES_AT_SOURCE_OFFSETS: u64 = 5_000;
/// `touch.lagRecoverFineTouchesAtSourceOffsets` (effective: min(degrade, recover)).
pub const LAG_RECOVER_FINE_TOUCHES_AT_SOURCE_OFFSETS: u64 = 1_000;
/// `touch.fineTouchBudgetPerBatch`.
pub const FINE_TOUCH_BUDGET_PER_BATCH: u64 = 2_000;
/// `touch.fineTokensPerSecond`: fine-touch token bucket refill rate.
pub const FINE_TOKENS_PER_SECOND: u64 = 200_000;
/// `touch.fineBurstTokens`: fine-touch token bucket capacity.
pub const FINE_BURST_TOKENS: u64 = 400_000;
/// `touch.lagReservedFineTouchBudgetPerBatch`: budget while lag-suppressed.
pub const LAG_RESERVED_FINE_TOUCH_BUDGET_PER_BATCH: u64 = 200;

// ---- profile: touch.memory.* ---------------------------------------------

/// `touch.memory.bucketMs`: journal bucket length (generations advance per flush).
pub const MEMORY_BUCKET_MS: u64 = 100;
/// `touch.memory.filterPow2`: bloom slots = 2^filterPow2 u32 (22 → 16 MiB).
pub const MEMORY_FILTER_POW2: u32 = 22;
/// Smallest accepted `touch.memory.filterPow2`.
pub const MEMORY_FILTER_POW2_MIN: u32 = 10;
/// Largest accepted `touch.memory.filterPow2`.
pub const MEMORY_FILTER_POW2_MAX: u32 = 30;
/// `touch.memory.k`: bloom positions per key.
pub const MEMORY_K: u32 = 4;
/// Smallest accepted `touch.memory.k`.
pub const MEMORY_K_MIN: u32 = 1;
/// Largest accepted `touch.memory.k`.
pub const MEMORY_K_MAX: u32 = 8;
/// `touch.memory.pendingMaxKeys`: distinct keys per bucket before overflow.
pub const MEMORY_PENDING_MAX_KEYS: u64 = 100_000;
/// `touch.memory.keyIndexMaxKeys`: waiters with more keys are "broad".
pub const MEMORY_KEY_INDEX_MAX_KEYS: u32 = 32;
/// Smallest accepted `touch.memory.keyIndexMaxKeys`.
pub const MEMORY_KEY_INDEX_MAX_KEYS_MIN: u32 = 1;
/// Largest accepted `touch.memory.keyIndexMaxKeys`.
pub const MEMORY_KEY_INDEX_MAX_KEYS_MAX: u32 = 1_024;
/// `touch.memory.hotKeyTtlMs`: grace period of a released hot key.
pub const MEMORY_HOT_KEY_TTL_MS: u64 = 10_000;
/// `touch.memory.hotTemplateTtlMs`: grace period of a released hot template.
pub const MEMORY_HOT_TEMPLATE_TTL_MS: u64 = 10_000;
/// `touch.memory.hotMaxKeys`: above this, hot-key filtering turns off.
pub const MEMORY_HOT_MAX_KEYS: u64 = 1_000_000;
/// `touch.memory.hotMaxTemplates`: above this, hot-template filtering turns off.
pub const MEMORY_HOT_MAX_TEMPLATES: u64 = 4_096;

// ---- profile: touch.templates.* ------------------------------------------

/// `touch.templates.defaultInactivityTtlMs` (1 h).
pub const TEMPLATES_DEFAULT_INACTIVITY_TTL_MS: f64 = 3_600_000.0;
/// `touch.templates.lastSeenPersistIntervalMs` (5 min).
pub const TEMPLATES_LAST_SEEN_PERSIST_INTERVAL_MS: f64 = 300_000.0;
/// `touch.templates.gcIntervalMs`.
pub const TEMPLATES_GC_INTERVAL_MS: f64 = 60_000.0;
/// `touch.templates.maxActiveTemplatesPerEntity`.
pub const TEMPLATES_MAX_ACTIVE_PER_ENTITY: f64 = 256.0;
/// `touch.templates.maxActiveTemplatesPerStream`.
pub const TEMPLATES_MAX_ACTIVE_PER_STREAM: f64 = 2_048.0;
/// `touch.templates.activationRateLimitPerMinute` (0 = unlimited).
pub const TEMPLATES_ACTIVATION_RATE_LIMIT_PER_MINUTE: f64 = 100.0;

// ---- templates (not in the profile) ---------------------------------------

/// Most templates in one activation request (or `declareTemplates`).
pub const MAX_TEMPLATES_PER_REQUEST: usize = 256;
/// Fewest fields in one template.
pub const MIN_TEMPLATE_FIELDS: usize = 1;
/// Most fields in one template.
pub const MAX_TEMPLATE_FIELDS: usize = 3;
/// Most expired templates retired by one GC pass.
pub const GC_MAX_RETIRED_PER_PASS: usize = 1_000;
/// Template id reported for a declaration that fails validation.
pub const INVALID_TEMPLATE_ID: &str = "0000000000000000";

// ---- wait / meta ----------------------------------------------------------

/// Most `keys` in one wait.
pub const WAIT_MAX_KEYS: usize = 1_024;
/// Most `keyIds` in one wait.
pub const WAIT_MAX_KEY_IDS: usize = 1_024;
/// Default `timeoutMs` of wait and `meta?settle=flush`.
pub const WAIT_TIMEOUT_DEFAULT_MS: u64 = 30_000;
/// Upper clamp of `timeoutMs` (lower clamp is 0).
pub const WAIT_TIMEOUT_MAX_MS: u64 = 120_000;
/// Longest sleep between settle checks of `meta?settle=flush`.
pub const SETTLE_POLL_MS: u64 = 25;
/// Fine waits with more keys count as broad and register no hot keys.
pub const HOT_INTEREST_MAX_KEYS_PER_WAIT: usize = 64;
/// Fewest keys of an exact-lane wait.
pub const EXACT_MIN_KEYS: usize = 1;
/// Most keys of an exact-lane wait.
pub const EXACT_MAX_KEYS: usize = 16;
/// Time span of exact per-generation routing-key history.
pub const EXACT_RECENT_WINDOW_MS: u64 = 15_000;
/// Fewest generations of exact history kept, whatever the bucket length.
pub const EXACT_RECENT_MIN_GENERATIONS: u64 = 16;

// ---- processor --------------------------------------------------------------

/// Manager tick (`DS_TOUCH_CHECK_MS`).
pub const TOUCH_CHECK_INTERVAL_MS: u64 = 250;
/// Concurrent stream batches (`DS_TOUCH_WORKERS`).
pub const TOUCH_WORKERS: usize = 1;
/// Rows per batch (`DS_TOUCH_MAX_BATCH_ROWS`); at least one row is always read.
pub const TOUCH_MAX_BATCH_ROWS: usize = 500;
/// Bytes per batch (`DS_TOUCH_MAX_BATCH_BYTES`, 4 MiB).
pub const TOUCH_MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// First failure backoff; doubles per consecutive failure.
pub const FAILURE_BACKOFF_BASE_MS: u64 = 500;
/// Failure backoff cap.
pub const FAILURE_BACKOFF_MAX_MS: u64 = 60_000;
/// Consecutive zero-row batches (with WAL rows present) before a pool restart.
pub const ZERO_ROW_RESTART_BATCHES: u32 = 5;
/// Minimum spacing of zero-row pool restarts.
pub const ZERO_ROW_RESTART_MIN_INTERVAL_MS: u64 = 30_000;
/// Base-WAL GC period per stream (`DS_BASE_WAL_GC_INTERVAL_MS`).
pub const BASE_WAL_GC_INTERVAL_MS: u64 = 1_000;
/// Offsets deleted per base-WAL GC sweep (`DS_BASE_WAL_GC_CHUNK_OFFSETS`).
pub const BASE_WAL_GC_CHUNK_OFFSETS: u64 = 1_000_000;
/// Journal flush delay (capped by bucketMs) when there is no lag.
pub const ADAPTIVE_FLUSH_NO_LAG_MS: u64 = 10;
/// Journal flush delay (capped by bucketMs) while lag ≤ the threshold below.
pub const ADAPTIVE_FLUSH_LOW_LAG_MS: u64 = 50;
/// Lag (source offsets) up to which the low-lag flush delay applies.
pub const ADAPTIVE_FLUSH_LOW_LAG_THRESHOLD: u64 = 5_000;
/// Lower bound of the hot-state sweep period.
pub const HOT_SWEEP_MIN_MS: u64 = 250;
/// Upper bound of the hot-state sweep period.
pub const HOT_SWEEP_MAX_MS: u64 = 2_000;

// ---- live.metrics ---------------------------------------------------------

/// Name of the metrics stream.
pub const LIVE_METRICS_STREAM: &str = "live.metrics";
/// `liveSystemVersion` of every metrics event.
pub const LIVE_SYSTEM_VERSION: &str = "v2";
/// `live.tick` period.
pub const LIVE_TICK_INTERVAL_MS: u64 = 1_000;
/// Template snapshot period.
pub const LIVE_SNAPSHOT_INTERVAL_MS: u64 = 60_000;
/// Retention trim period.
pub const LIVE_RETENTION_INTERVAL_MS: u64 = 60_000;
/// Age past which `live.metrics` rows are trimmed (7 days).
pub const LIVE_METRICS_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1_000;
/// Templates per `live.templates_snapshot_chunk`.
pub const SNAPSHOT_CHUNK_SIZE: usize = 200;
/// Loop-lag sampling period.
pub const LOOP_LAG_INTERVAL_MS: u64 = 100;
/// The sampler forgives its debt once it is this many periods behind.
pub const LOOP_LAG_MAX_DEBT_INTERVALS: u64 = 5;
/// Upper bounds of the latency histogram buckets; one overflow bucket follows.
pub const LATENCY_BOUNDS_MS: [u64; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 120_000,
];
/// `instanceId` when neither `DS_INSTANCE_ID` nor `HOSTNAME` is set.
pub const DEFAULT_INSTANCE_ID: &str = "local";
/// `region` when `DS_REGION` is not set.
pub const DEFAULT_REGION: &str = "local";
/// JS `Number.MAX_SAFE_INTEGER`, the clamp for `walRetainedRows/Bytes` and
/// backlog in `live.tick`.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_numbers_match_spec() {
        assert_eq!(LIVE_METRICS_RETENTION_MS, 604_800_000);
        assert_eq!(TOUCH_MAX_BATCH_BYTES, 4_194_304);
        assert_eq!(MAX_SAFE_INTEGER, 9_007_199_254_740_991);
        // 2^22 slots of 4 bytes = 16 MiB.
        assert_eq!((1u64 << MEMORY_FILTER_POW2) * 4, 16 * 1024 * 1024);
        assert_eq!(LATENCY_BOUNDS_MS.len() + 1, 16);
        assert_eq!(*LATENCY_BOUNDS_MS.last().unwrap(), WAIT_TIMEOUT_MAX_MS);
    }
}
