//! The `touch` member of a `state-protocol` stream profile: validation with
//! Prisma's exact messages and the normalized form `GET _profile` returns.
//!
//! Prisma coerces values with JS `Number(v)` / `!!v` and keeps numbers as
//! given (never floored), so `"coarseIntervalMs": "2.5"` is stored as `2.5`.
//! Only the top-level keys are checked when touch is disabled.

use serde_json::{Map, Value};

use super::defaults as d;
use super::js_coerce::{to_boolean, to_number};
use super::json_text::{js_number, ObjectWriter};

/// Path prefix of every message: Prisma validates the profile at `profile`.
pub const TOUCH_PATH: &str = "profile.touch";

const TOP_KEYS: [&str; 12] = [
    "enabled",
    "coarseIntervalMs",
    "touchCoalesceWindowMs",
    "onMissingBefore",
    "lagDegradeFineTouchesAtSourceOffsets",
    "lagRecoverFineTouchesAtSourceOffsets",
    "fineTouchBudgetPerBatch",
    "fineTokensPerSecond",
    "fineBurstTokens",
    "lagReservedFineTouchBudgetPerBatch",
    "memory",
    "templates",
];

const TEMPLATES_KEYS: [&str; 6] = [
    "defaultInactivityTtlMs",
    "lastSeenPersistIntervalMs",
    "gcIntervalMs",
    "maxActiveTemplatesPerEntity",
    "maxActiveTemplatesPerStream",
    "activationRateLimitPerMinute",
];

const MEMORY_KEYS: [&str; 9] = [
    "bucketMs",
    "filterPow2",
    "k",
    "pendingMaxKeys",
    "keyIndexMaxKeys",
    "hotKeyTtlMs",
    "hotTemplateTtlMs",
    "hotMaxKeys",
    "hotMaxTemplates",
];

/// What the processor does with an update that has no usable `old_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissingBefore {
    /// Table touch only (Prisma's default).
    #[default]
    Coarse,
    /// Fine keys from the after image alone.
    SkipBefore,
    /// Fail the batch.
    Error,
}

impl OnMissingBefore {
    /// The profile spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnMissingBefore::Coarse => "coarse",
            OnMissingBefore::SkipBefore => "skipBefore",
            OnMissingBefore::Error => "error",
        }
    }
}

/// `touch.memory`: in-memory journal parameters. Each field is the snake_case
/// form of the profile key (`bucket_ms` ↔ `bucketMs`); defaults in `defaults`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    pub bucket_ms: u64,
    pub filter_pow2: u32,
    pub k: u32,
    pub pending_max_keys: u64,
    pub key_index_max_keys: u32,
    pub hot_key_ttl_ms: u64,
    pub hot_template_ttl_ms: u64,
    pub hot_max_keys: u64,
    pub hot_max_templates: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            bucket_ms: d::MEMORY_BUCKET_MS,
            filter_pow2: d::MEMORY_FILTER_POW2,
            k: d::MEMORY_K,
            pending_max_keys: d::MEMORY_PENDING_MAX_KEYS,
            key_index_max_keys: d::MEMORY_KEY_INDEX_MAX_KEYS,
            hot_key_ttl_ms: d::MEMORY_HOT_KEY_TTL_MS,
            hot_template_ttl_ms: d::MEMORY_HOT_TEMPLATE_TTL_MS,
            hot_max_keys: d::MEMORY_HOT_MAX_KEYS,
            hot_max_templates: d::MEMORY_HOT_MAX_TEMPLATES,
        }
    }
}

/// `touch.templates`: template lifecycle parameters, fields named after the
/// profile keys. Prisma validates these as plain numbers (fractions allowed),
/// hence `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatesConfig {
    pub default_inactivity_ttl_ms: f64,
    pub last_seen_persist_interval_ms: f64,
    pub gc_interval_ms: f64,
    pub max_active_templates_per_entity: f64,
    pub max_active_templates_per_stream: f64,
    pub activation_rate_limit_per_minute: f64,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        TemplatesConfig {
            default_inactivity_ttl_ms: d::TEMPLATES_DEFAULT_INACTIVITY_TTL_MS,
            last_seen_persist_interval_ms: d::TEMPLATES_LAST_SEEN_PERSIST_INTERVAL_MS,
            gc_interval_ms: d::TEMPLATES_GC_INTERVAL_MS,
            max_active_templates_per_entity: d::TEMPLATES_MAX_ACTIVE_PER_ENTITY,
            max_active_templates_per_stream: d::TEMPLATES_MAX_ACTIVE_PER_STREAM,
            activation_rate_limit_per_minute: d::TEMPLATES_ACTIVATION_RATE_LIMIT_PER_MINUTE,
        }
    }
}

/// The validated `touch` config of one stream, fields named after the profile
/// keys. `Default` is disabled with every default filled in; a disabled config
/// serializes as `{"enabled":false}`.
#[derive(Debug, Clone, PartialEq)]
pub struct TouchConfig {
    pub enabled: bool,
    /// Plain number (fractions allowed), as Prisma stores it.
    pub coarse_interval_ms: f64,
    /// Plain number (fractions allowed), as Prisma stores it.
    pub touch_coalesce_window_ms: f64,
    pub on_missing_before: OnMissingBefore,
    pub lag_degrade_fine_touches_at_source_offsets: u64,
    pub lag_recover_fine_touches_at_source_offsets: u64,
    pub fine_touch_budget_per_batch: u64,
    pub fine_tokens_per_second: u64,
    pub fine_burst_tokens: u64,
    pub lag_reserved_fine_touch_budget_per_batch: u64,
    pub memory: MemoryConfig,
    pub templates: TemplatesConfig,
}

impl Default for TouchConfig {
    fn default() -> Self {
        Self::disabled()
    }
}

impl TouchConfig {
    /// Touch enabled with every default, i.e. what `{"enabled":true}` parses to.
    pub fn default_enabled() -> Self {
        TouchConfig {
            enabled: true,
            ..Self::disabled()
        }
    }

    /// Touch disabled; the numbers are the defaults but are never shown.
    pub fn disabled() -> Self {
        TouchConfig {
            enabled: false,
            coarse_interval_ms: d::COARSE_INTERVAL_MS,
            touch_coalesce_window_ms: d::TOUCH_COALESCE_WINDOW_MS,
            on_missing_before: OnMissingBefore::Coarse,
            lag_degrade_fine_touches_at_source_offsets:
                d::LAG_DEGRADE_FINE_TOUCHES_AT_SOURCE_OFFSETS,
            lag_recover_fine_touches_at_source_offsets:
                d::LAG_RECOVER_FINE_TOUCHES_AT_SOURCE_OFFSETS,
            fine_touch_budget_per_batch: d::FINE_TOUCH_BUDGET_PER_BATCH,
            fine_tokens_per_second: d::FINE_TOKENS_PER_SECOND,
            fine_burst_tokens: d::FINE_BURST_TOKENS,
            lag_reserved_fine_touch_budget_per_batch: d::LAG_RESERVED_FINE_TOUCH_BUDGET_PER_BATCH,
            memory: MemoryConfig::default(),
            templates: TemplatesConfig::default(),
        }
    }

    /// The normalized config as a `Value`. Weir's `serde_json` has no
    /// `preserve_order`, so this serializes with sorted keys; use
    /// [`TouchConfig::to_json_string`] for Prisma's byte order.
    pub fn to_json(&self) -> Value {
        let text = self.to_json_string();
        serde_json::from_str(&text).expect("to_json_string writes valid JSON")
    }

    /// The normalized config as `GET _profile` shows it, in Prisma's key
    /// order with JS number formatting.
    pub fn to_json_string(&self) -> String {
        let mut w = ObjectWriter::new();
        w.bool("enabled", self.enabled);
        if !self.enabled {
            return w.finish();
        }
        let int = |n: u64| js_number(n as f64);
        let m = &self.memory;
        let mut mem = ObjectWriter::new();
        mem.raw("bucketMs", &int(m.bucket_ms))
            .u64("filterPow2", u64::from(m.filter_pow2))
            .u64("k", u64::from(m.k))
            .raw("pendingMaxKeys", &int(m.pending_max_keys))
            .u64("keyIndexMaxKeys", u64::from(m.key_index_max_keys))
            .raw("hotKeyTtlMs", &int(m.hot_key_ttl_ms))
            .raw("hotTemplateTtlMs", &int(m.hot_template_ttl_ms))
            .raw("hotMaxKeys", &int(m.hot_max_keys))
            .raw("hotMaxTemplates", &int(m.hot_max_templates));
        let t = &self.templates;
        let mut tpl = ObjectWriter::new();
        tpl.f64("defaultInactivityTtlMs", t.default_inactivity_ttl_ms)
            .f64("lastSeenPersistIntervalMs", t.last_seen_persist_interval_ms)
            .f64("gcIntervalMs", t.gc_interval_ms)
            .f64(
                "maxActiveTemplatesPerEntity",
                t.max_active_templates_per_entity,
            )
            .f64(
                "maxActiveTemplatesPerStream",
                t.max_active_templates_per_stream,
            )
            .f64(
                "activationRateLimitPerMinute",
                t.activation_rate_limit_per_minute,
            );
        w.f64("coarseIntervalMs", self.coarse_interval_ms)
            .f64("touchCoalesceWindowMs", self.touch_coalesce_window_ms)
            .str("onMissingBefore", self.on_missing_before.as_str())
            .raw(
                "lagDegradeFineTouchesAtSourceOffsets",
                &int(self.lag_degrade_fine_touches_at_source_offsets),
            )
            .raw(
                "lagRecoverFineTouchesAtSourceOffsets",
                &int(self.lag_recover_fine_touches_at_source_offsets),
            )
            .raw(
                "fineTouchBudgetPerBatch",
                &int(self.fine_touch_budget_per_batch),
            )
            .raw("fineTokensPerSecond", &int(self.fine_tokens_per_second))
            .raw("fineBurstTokens", &int(self.fine_burst_tokens))
            .raw(
                "lagReservedFineTouchBudgetPerBatch",
                &int(self.lag_reserved_fine_touch_budget_per_batch),
            )
            .raw("memory", &mem.finish())
            .raw("templates", &tpl.finish());
        w.finish()
    }
}

/// Parses the `touch` member of a `state-protocol` profile (`None` when the
/// member is absent, which Prisma treats as disabled and omits from the
/// stored profile). Messages are Prisma's, prefixed `profile.touch`.
pub fn parse_touch(v: Option<&Value>) -> Result<TouchConfig, String> {
    match v {
        None => Ok(TouchConfig::disabled()),
        Some(v) => parse_touch_at(v, TOUCH_PATH),
    }
}

/// [`parse_touch`] with an explicit path prefix for the messages.
pub fn parse_touch_at(raw: &Value, path: &str) -> Result<TouchConfig, String> {
    let obj = raw
        .as_object()
        .ok_or_else(|| format!("{path} must be an object"))?;
    reject_unknown_keys(obj, &TOP_KEYS, path)?;
    if !obj.get("enabled").is_some_and(to_boolean) {
        return Ok(TouchConfig::disabled());
    }

    let mut cfg = TouchConfig::default_enabled();
    let positive = |n: f64| n > 0.0;
    let non_negative = |n: f64| n >= 0.0;

    cfg.coarse_interval_ms = number(
        obj,
        "coarseIntervalMs",
        d::COARSE_INTERVAL_MS,
        positive,
        || format!("{path}.coarseIntervalMs must be > 0"),
    )?;
    cfg.touch_coalesce_window_ms = number(
        obj,
        "touchCoalesceWindowMs",
        d::TOUCH_COALESCE_WINDOW_MS,
        positive,
        || format!("{path}.touchCoalesceWindowMs must be > 0"),
    )?;
    cfg.on_missing_before = match obj.get("onMissingBefore") {
        None => OnMissingBefore::Coarse,
        Some(Value::String(s)) if s == "coarse" => OnMissingBefore::Coarse,
        Some(Value::String(s)) if s == "skipBefore" => OnMissingBefore::SkipBefore,
        Some(Value::String(s)) if s == "error" => OnMissingBefore::Error,
        Some(_) => {
            return Err(format!(
                "{path}.onMissingBefore must be coarse|skipBefore|error"
            ))
        }
    };

    // Prisma checks `templates` before `memory`, and both before the lag and
    // budget fields; the first failure wins, so the order is kept.
    let tpath = format!("{path}.templates");
    let templates = sub_object(obj, "templates", &tpath)?;
    reject_unknown_keys(&templates, &TEMPLATES_KEYS, &tpath)?;
    let t = &mut cfg.templates;
    t.default_inactivity_ttl_ms = number(
        &templates,
        "defaultInactivityTtlMs",
        d::TEMPLATES_DEFAULT_INACTIVITY_TTL_MS,
        non_negative,
        || format!("{tpath}.defaultInactivityTtlMs must be >= 0"),
    )?;
    t.last_seen_persist_interval_ms = number(
        &templates,
        "lastSeenPersistIntervalMs",
        d::TEMPLATES_LAST_SEEN_PERSIST_INTERVAL_MS,
        positive,
        || format!("{tpath}.lastSeenPersistIntervalMs must be > 0"),
    )?;
    t.gc_interval_ms = number(
        &templates,
        "gcIntervalMs",
        d::TEMPLATES_GC_INTERVAL_MS,
        positive,
        || format!("{tpath}.gcIntervalMs must be > 0"),
    )?;
    t.max_active_templates_per_entity = number(
        &templates,
        "maxActiveTemplatesPerEntity",
        d::TEMPLATES_MAX_ACTIVE_PER_ENTITY,
        positive,
        || format!("{tpath}.maxActiveTemplatesPerEntity must be > 0"),
    )?;
    t.max_active_templates_per_stream = number(
        &templates,
        "maxActiveTemplatesPerStream",
        d::TEMPLATES_MAX_ACTIVE_PER_STREAM,
        positive,
        || format!("{tpath}.maxActiveTemplatesPerStream must be > 0"),
    )?;
    t.activation_rate_limit_per_minute = number(
        &templates,
        "activationRateLimitPerMinute",
        d::TEMPLATES_ACTIVATION_RATE_LIMIT_PER_MINUTE,
        non_negative,
        || format!("{tpath}.activationRateLimitPerMinute must be >= 0"),
    )?;

    let mpath = format!("{path}.memory");
    let memory = sub_object(obj, "memory", &mpath)?;
    reject_unknown_keys(&memory, &MEMORY_KEYS, &mpath)?;
    let gt0 = |key: &str, def: u64| -> Result<u64, String> {
        integer(&memory, key, def as f64, positive, || {
            format!("{mpath}.{key} must be an integer > 0")
        })
    };
    let in_range = |key: &str, def: u32, lo: u32, hi: u32| -> Result<u32, String> {
        let n = integer(
            &memory,
            key,
            f64::from(def),
            |n| n >= f64::from(lo) && n <= f64::from(hi),
            || format!("{mpath}.{key} must be an integer in [{lo},{hi}]"),
        )?;
        Ok(n as u32)
    };
    let m = &mut cfg.memory;
    m.bucket_ms = gt0("bucketMs", d::MEMORY_BUCKET_MS)?;
    m.filter_pow2 = in_range(
        "filterPow2",
        d::MEMORY_FILTER_POW2,
        d::MEMORY_FILTER_POW2_MIN,
        d::MEMORY_FILTER_POW2_MAX,
    )?;
    m.k = in_range("k", d::MEMORY_K, d::MEMORY_K_MIN, d::MEMORY_K_MAX)?;
    m.pending_max_keys = gt0("pendingMaxKeys", d::MEMORY_PENDING_MAX_KEYS)?;
    m.key_index_max_keys = in_range(
        "keyIndexMaxKeys",
        d::MEMORY_KEY_INDEX_MAX_KEYS,
        d::MEMORY_KEY_INDEX_MAX_KEYS_MIN,
        d::MEMORY_KEY_INDEX_MAX_KEYS_MAX,
    )?;
    m.hot_key_ttl_ms = gt0("hotKeyTtlMs", d::MEMORY_HOT_KEY_TTL_MS)?;
    m.hot_template_ttl_ms = gt0("hotTemplateTtlMs", d::MEMORY_HOT_TEMPLATE_TTL_MS)?;
    m.hot_max_keys = gt0("hotMaxKeys", d::MEMORY_HOT_MAX_KEYS)?;
    m.hot_max_templates = gt0("hotMaxTemplates", d::MEMORY_HOT_MAX_TEMPLATES)?;

    let ge0 = |key: &str, def: u64| -> Result<u64, String> {
        integer(obj, key, def as f64, non_negative, || {
            format!("{path}.{key} must be an integer >= 0")
        })
    };
    cfg.lag_degrade_fine_touches_at_source_offsets = ge0(
        "lagDegradeFineTouchesAtSourceOffsets",
        d::LAG_DEGRADE_FINE_TOUCHES_AT_SOURCE_OFFSETS,
    )?;
    cfg.lag_recover_fine_touches_at_source_offsets = ge0(
        "lagRecoverFineTouchesAtSourceOffsets",
        d::LAG_RECOVER_FINE_TOUCHES_AT_SOURCE_OFFSETS,
    )?;
    cfg.fine_touch_budget_per_batch =
        ge0("fineTouchBudgetPerBatch", d::FINE_TOUCH_BUDGET_PER_BATCH)?;
    cfg.fine_tokens_per_second = ge0("fineTokensPerSecond", d::FINE_TOKENS_PER_SECOND)?;
    cfg.fine_burst_tokens = ge0("fineBurstTokens", d::FINE_BURST_TOKENS)?;
    cfg.lag_reserved_fine_touch_budget_per_batch = ge0(
        "lagReservedFineTouchBudgetPerBatch",
        d::LAG_RESERVED_FINE_TOUCH_BUDGET_PER_BATCH,
    )?;
    Ok(cfg)
}

/// First key not in `allowed`, in the map's iteration order. Prisma reports
/// the first in insertion order; without `preserve_order` this is the
/// alphabetically first, which differs only when several keys are unknown.
fn reject_unknown_keys(
    obj: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{path}.{k} is not supported")),
        None => Ok(()),
    }
}

/// An absent member is `{}`; anything present (even `null`) must be an object.
fn sub_object(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Map<String, Value>, String> {
    match obj.get(key) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!("{path} must be an object")),
    }
}

/// Prisma's "number" field: absent → default, else `Number(v)`, which must be
/// finite and satisfy `ok`. The coerced value is kept as is.
fn number(
    obj: &Map<String, Value>,
    key: &str,
    default: f64,
    ok: impl Fn(f64) -> bool,
    msg: impl FnOnce() -> String,
) -> Result<f64, String> {
    let n = obj.get(key).map_or(default, to_number);
    if n.is_finite() && ok(n) {
        Ok(n)
    } else {
        Err(msg())
    }
}

/// Prisma's "integer" field: like [`number`] but also `Number.isInteger`.
/// Callers only accept non-negative values, so the `u64` cast is exact below
/// 2^64 and saturates above (Prisma would keep e.g. `1e+30`).
fn integer(
    obj: &Map<String, Value>,
    key: &str,
    default: f64,
    ok: impl Fn(f64) -> bool,
    msg: impl FnOnce() -> String,
) -> Result<u64, String> {
    let n = number(obj, key, default, |n| n.trunc() == n && ok(n), msg)?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<TouchConfig, String> {
        parse_touch(Some(&v))
    }

    fn err(v: Value) -> String {
        parse(v).expect_err("should be rejected")
    }

    const DEFAULT_TEXT: &str = concat!(
        r#"{"enabled":true,"coarseIntervalMs":100,"touchCoalesceWindowMs":100,"#,
        r#""onMissingBefore":"coarse","lagDegradeFineTouchesAtSourceOffsets":5000,"#,
        r#""lagRecoverFineTouchesAtSourceOffsets":1000,"fineTouchBudgetPerBatch":2000,"#,
        r#""fineTokensPerSecond":200000,"fineBurstTokens":400000,"#,
        r#""lagReservedFineTouchBudgetPerBatch":200,"memory":{"bucketMs":100,"filterPow2":22,"#,
        r#""k":4,"pendingMaxKeys":100000,"keyIndexMaxKeys":32,"hotKeyTtlMs":10000,"#,
        r#""hotTemplateTtlMs":10000,"hotMaxKeys":1000000,"hotMaxTemplates":4096},"#,
        r#""templates":{"defaultInactivityTtlMs":3600000,"lastSeenPersistIntervalMs":300000,"#,
        r#""gcIntervalMs":60000,"maxActiveTemplatesPerEntity":256,"#,
        r#""maxActiveTemplatesPerStream":2048,"activationRateLimitPerMinute":100}}"#
    );

    #[test]
    fn enabled_defaults_match_prisma_normalized_form() {
        let cfg = parse(json!({"enabled": true})).unwrap();
        assert_eq!(cfg, TouchConfig::default_enabled());
        assert_eq!(cfg.to_json_string(), DEFAULT_TEXT);
        assert_eq!(cfg.memory.filter_pow2, 22);
        assert_eq!(cfg.templates.default_inactivity_ttl_ms, 3_600_000.0);
        assert_eq!(cfg.on_missing_before, OnMissingBefore::Coarse);
        // The Value form holds the same members (sorted when serialized).
        let v = cfg.to_json();
        assert_eq!(v, serde_json::from_str::<Value>(DEFAULT_TEXT).unwrap());
        assert_eq!(v["memory"]["hotMaxTemplates"], json!(4096));
        assert!(serde_json::to_string(&v)
            .unwrap()
            .starts_with(r#"{"coarseIntervalMs":100,"enabled":true"#));
    }

    #[test]
    fn disabled_is_only_enabled_false() {
        for v in [
            json!({}),
            json!({"enabled": false}),
            json!({"enabled": 0}),
            json!({"enabled": ""}),
            json!({"enabled": null}),
            // Sub-objects and values are not looked at when disabled.
            json!({"enabled": false, "memory": {"bogus": 1}, "coarseIntervalMs": -1}),
        ] {
            let cfg = parse(v.clone()).unwrap();
            assert!(!cfg.enabled, "{v}");
            assert_eq!(cfg.to_json_string(), r#"{"enabled":false}"#);
            assert_eq!(cfg.to_json(), json!({"enabled": false}));
        }
        assert_eq!(parse_touch(None).unwrap(), TouchConfig::disabled());
        assert_eq!(TouchConfig::default(), TouchConfig::disabled());
    }

    #[test]
    fn enabled_uses_js_truthiness() {
        for v in [json!(1), json!("false"), json!([]), json!({})] {
            assert!(parse(json!({ "enabled": v })).unwrap().enabled);
        }
    }

    #[test]
    fn unknown_keys_are_rejected_even_when_disabled() {
        assert_eq!(
            err(json!({"enabled": true, "storage": "sqlite"})),
            "profile.touch.storage is not supported"
        );
        assert_eq!(
            err(json!({"derivedStream": "x"})),
            "profile.touch.derivedStream is not supported"
        );
        assert_eq!(
            err(json!({"enabled": false, "retention": {}})),
            "profile.touch.retention is not supported"
        );
        assert_eq!(
            err(json!({"enabled": true, "metrics": true})),
            "profile.touch.metrics is not supported"
        );
        assert_eq!(
            err(json!({"enabled": true, "memory": {"bucketMs": 100, "ringSize": 2}})),
            "profile.touch.memory.ringSize is not supported"
        );
        assert_eq!(
            err(json!({"enabled": true, "templates": {"ttl": 2}})),
            "profile.touch.templates.ttl is not supported"
        );
    }

    #[test]
    fn shape_messages() {
        assert_eq!(err(json!(null)), "profile.touch must be an object");
        assert_eq!(err(json!([])), "profile.touch must be an object");
        assert_eq!(err(json!(true)), "profile.touch must be an object");
        assert_eq!(
            err(json!({"enabled": true, "templates": null})),
            "profile.touch.templates must be an object"
        );
        assert_eq!(
            err(json!({"enabled": true, "templates": []})),
            "profile.touch.templates must be an object"
        );
        assert_eq!(
            err(json!({"enabled": true, "memory": 5})),
            "profile.touch.memory must be an object"
        );
        assert_eq!(
            parse_touch_at(&json!(1), "x.touch").unwrap_err(),
            "x.touch must be an object"
        );
    }

    #[test]
    fn every_field_message() {
        let cases: &[(Value, &str)] = &[
            (
                json!({"coarseIntervalMs": 0}),
                "profile.touch.coarseIntervalMs must be > 0",
            ),
            (
                json!({"touchCoalesceWindowMs": -1}),
                "profile.touch.touchCoalesceWindowMs must be > 0",
            ),
            (
                json!({"onMissingBefore": "Coarse"}),
                "profile.touch.onMissingBefore must be coarse|skipBefore|error",
            ),
            (
                json!({"onMissingBefore": null}),
                "profile.touch.onMissingBefore must be coarse|skipBefore|error",
            ),
            (
                json!({"templates": {"defaultInactivityTtlMs": -1}}),
                "profile.touch.templates.defaultInactivityTtlMs must be >= 0",
            ),
            (
                json!({"templates": {"lastSeenPersistIntervalMs": 0}}),
                "profile.touch.templates.lastSeenPersistIntervalMs must be > 0",
            ),
            (
                json!({"templates": {"gcIntervalMs": 0}}),
                "profile.touch.templates.gcIntervalMs must be > 0",
            ),
            (
                json!({"templates": {"maxActiveTemplatesPerEntity": 0}}),
                "profile.touch.templates.maxActiveTemplatesPerEntity must be > 0",
            ),
            (
                json!({"templates": {"maxActiveTemplatesPerStream": 0}}),
                "profile.touch.templates.maxActiveTemplatesPerStream must be > 0",
            ),
            (
                json!({"templates": {"activationRateLimitPerMinute": -0.5}}),
                "profile.touch.templates.activationRateLimitPerMinute must be >= 0",
            ),
            (
                json!({"memory": {"bucketMs": 0}}),
                "profile.touch.memory.bucketMs must be an integer > 0",
            ),
            (
                json!({"memory": {"bucketMs": 1.5}}),
                "profile.touch.memory.bucketMs must be an integer > 0",
            ),
            (
                json!({"memory": {"filterPow2": 9}}),
                "profile.touch.memory.filterPow2 must be an integer in [10,30]",
            ),
            (
                json!({"memory": {"filterPow2": 31}}),
                "profile.touch.memory.filterPow2 must be an integer in [10,30]",
            ),
            (
                json!({"memory": {"k": 0}}),
                "profile.touch.memory.k must be an integer in [1,8]",
            ),
            (
                json!({"memory": {"k": 9}}),
                "profile.touch.memory.k must be an integer in [1,8]",
            ),
            (
                json!({"memory": {"pendingMaxKeys": 0}}),
                "profile.touch.memory.pendingMaxKeys must be an integer > 0",
            ),
            (
                json!({"memory": {"keyIndexMaxKeys": 1025}}),
                "profile.touch.memory.keyIndexMaxKeys must be an integer in [1,1024]",
            ),
            (
                json!({"memory": {"keyIndexMaxKeys": 0}}),
                "profile.touch.memory.keyIndexMaxKeys must be an integer in [1,1024]",
            ),
            (
                json!({"memory": {"hotKeyTtlMs": 0}}),
                "profile.touch.memory.hotKeyTtlMs must be an integer > 0",
            ),
            (
                json!({"memory": {"hotTemplateTtlMs": 0.5}}),
                "profile.touch.memory.hotTemplateTtlMs must be an integer > 0",
            ),
            (
                json!({"memory": {"hotMaxKeys": -3}}),
                "profile.touch.memory.hotMaxKeys must be an integer > 0",
            ),
            (
                json!({"memory": {"hotMaxTemplates": "x"}}),
                "profile.touch.memory.hotMaxTemplates must be an integer > 0",
            ),
            (
                json!({"lagDegradeFineTouchesAtSourceOffsets": -1}),
                "profile.touch.lagDegradeFineTouchesAtSourceOffsets must be an integer >= 0",
            ),
            (
                json!({"lagRecoverFineTouchesAtSourceOffsets": 0.5}),
                "profile.touch.lagRecoverFineTouchesAtSourceOffsets must be an integer >= 0",
            ),
            (
                json!({"fineTouchBudgetPerBatch": "many"}),
                "profile.touch.fineTouchBudgetPerBatch must be an integer >= 0",
            ),
            (
                json!({"fineTokensPerSecond": -1}),
                "profile.touch.fineTokensPerSecond must be an integer >= 0",
            ),
            (
                json!({"fineBurstTokens": {}}),
                "profile.touch.fineBurstTokens must be an integer >= 0",
            ),
            (
                json!({"lagReservedFineTouchBudgetPerBatch": [1, 2]}),
                "profile.touch.lagReservedFineTouchBudgetPerBatch must be an integer >= 0",
            ),
        ];
        for (touch, want) in cases {
            let mut obj = touch.as_object().unwrap().clone();
            obj.insert("enabled".into(), json!(true));
            assert_eq!(err(Value::Object(obj)), *want, "input {touch}");
        }
    }

    #[test]
    fn first_failure_in_prisma_order_wins() {
        // templates before memory before the lag/budget fields, despite
        // alphabetical map order putting "fine…" and "memory" first.
        assert_eq!(
            err(
                json!({"enabled": true, "fineBurstTokens": -1, "memory": {"k": 0}, "templates": {"gcIntervalMs": 0}})
            ),
            "profile.touch.templates.gcIntervalMs must be > 0"
        );
        assert_eq!(
            err(json!({"enabled": true, "fineBurstTokens": -1, "memory": {"k": 0}})),
            "profile.touch.memory.k must be an integer in [1,8]"
        );
        assert_eq!(
            err(
                json!({"enabled": true, "lagReservedFineTouchBudgetPerBatch": -1, "onMissingBefore": 1, "coarseIntervalMs": 0})
            ),
            "profile.touch.coarseIntervalMs must be > 0"
        );
        // Unknown sub-keys are found before that sub-object's values.
        assert_eq!(
            err(json!({"enabled": true, "memory": {"k": 0, "zzz": 1}})),
            "profile.touch.memory.zzz is not supported"
        );
    }

    #[test]
    fn numbers_are_coerced_and_kept_as_given() {
        let cfg = parse(json!({
            "enabled": true,
            "coarseIntervalMs": "2.5",
            "touchCoalesceWindowMs": [50],
            "onMissingBefore": "skipBefore",
            "lagDegradeFineTouchesAtSourceOffsets": null,
            "lagRecoverFineTouchesAtSourceOffsets": "0x10",
            "fineTouchBudgetPerBatch": 10.0,
            "fineTokensPerSecond": true,
            "memory": {"bucketMs": " 250 ", "filterPow2": 10, "k": 8, "keyIndexMaxKeys": 1024},
            "templates": {"defaultInactivityTtlMs": 0, "maxActiveTemplatesPerEntity": 2.5, "activationRateLimitPerMinute": ""}
        }))
        .unwrap();
        assert_eq!(cfg.coarse_interval_ms, 2.5);
        assert_eq!(cfg.touch_coalesce_window_ms, 50.0);
        assert_eq!(cfg.on_missing_before, OnMissingBefore::SkipBefore);
        assert_eq!(cfg.lag_degrade_fine_touches_at_source_offsets, 0);
        assert_eq!(cfg.lag_recover_fine_touches_at_source_offsets, 16);
        assert_eq!(cfg.fine_touch_budget_per_batch, 10);
        assert_eq!(cfg.fine_tokens_per_second, 1);
        assert_eq!(cfg.memory.bucket_ms, 250);
        assert_eq!(cfg.templates.default_inactivity_ttl_ms, 0.0);
        assert_eq!(cfg.templates.max_active_templates_per_entity, 2.5);
        assert_eq!(cfg.templates.activation_rate_limit_per_minute, 0.0);
        let text = cfg.to_json_string();
        assert!(text.contains(r#""coarseIntervalMs":2.5,"touchCoalesceWindowMs":50,"onMissingBefore":"skipBefore","lagDegradeFineTouchesAtSourceOffsets":0,"lagRecoverFineTouchesAtSourceOffsets":16,"fineTouchBudgetPerBatch":10,"fineTokensPerSecond":1,"#), "{text}");
        assert!(
            text.contains(r#""memory":{"bucketMs":250,"filterPow2":10,"k":8,"#),
            "{text}"
        );
        assert!(
            text.contains(r#""maxActiveTemplatesPerEntity":2.5,"#),
            "{text}"
        );
        assert!(
            text.contains(r#""activationRateLimitPerMinute":0}"#),
            "{text}"
        );
        // Prisma re-validates the stored form on read; it must be a fixpoint.
        let again = parse(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(again, cfg);
        assert_eq!(again.to_json_string(), text);
    }

    #[test]
    fn boundaries_are_accepted() {
        let cfg = parse(json!({
            "enabled": true,
            "coarseIntervalMs": 0.001,
            "lagDegradeFineTouchesAtSourceOffsets": 0,
            "fineBurstTokens": 0,
            "memory": {"filterPow2": 30, "k": 1, "keyIndexMaxKeys": 1},
            "templates": {"activationRateLimitPerMinute": 0}
        }))
        .unwrap();
        assert_eq!(cfg.coarse_interval_ms, 0.001);
        assert_eq!(cfg.memory.filter_pow2, 30);
        assert_eq!(cfg.memory.k, 1);
        assert_eq!(cfg.memory.key_index_max_keys, 1);
        assert_eq!(cfg.fine_burst_tokens, 0);
        // Integral floats written with a fraction and exponents are integers.
        let cfg = parse(json!({"enabled": true, "memory": {"hotMaxKeys": 1e6, "bucketMs": 100.0}}))
            .unwrap();
        assert_eq!(cfg.memory.hot_max_keys, 1_000_000);
        assert!(cfg
            .to_json_string()
            .contains(r#""hotMaxKeys":1000000,"hotMaxTemplates":4096}"#));
    }

    #[test]
    fn on_missing_before_spellings() {
        for (s, want) in [
            ("coarse", OnMissingBefore::Coarse),
            ("skipBefore", OnMissingBefore::SkipBefore),
            ("error", OnMissingBefore::Error),
        ] {
            let cfg = parse(json!({"enabled": true, "onMissingBefore": s})).unwrap();
            assert_eq!(cfg.on_missing_before, want);
            assert_eq!(want.as_str(), s);
        }
    }
}
