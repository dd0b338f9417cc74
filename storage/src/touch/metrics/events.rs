//! Envelope, routing keys, timestamps and the non-tick events written to
//! `live.metrics` (spec §3.3, §3.7, §3.8).
//!
//! Every payload is built as text in Prisma's key order, because Weir's
//! `serde_json` would sort the keys of a `Value` object.

use serde_json::Value;

use super::counters::LifecycleKind;
use crate::touch::defaults::{
    DEFAULT_INSTANCE_ID, DEFAULT_REGION, LIVE_SYSTEM_VERSION, SNAPSHOT_CHUNK_SIZE,
};
use crate::touch::js_coerce::to_js_string;
use crate::touch::json_text::{push_value, ObjectWriter};

/// The identity stamped on every event: `instanceId` and `region`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub instance_id: String,
    pub region: String,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            instance_id: DEFAULT_INSTANCE_ID.to_string(),
            region: DEFAULT_REGION.to_string(),
        }
    }
}

impl Envelope {
    /// Reads `DS_INSTANCE_ID` → `HOSTNAME` → `"local"` and `DS_REGION` →
    /// `"local"` through `get` (e.g. `|k| std::env::var(k).ok()`); values are
    /// trimmed and an empty value counts as unset.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Envelope {
            instance_id: var("DS_INSTANCE_ID")
                .or_else(|| var("HOSTNAME"))
                .unwrap_or_else(|| DEFAULT_INSTANCE_ID.to_string()),
            region: var("DS_REGION").unwrap_or_else(|| DEFAULT_REGION.to_string()),
        }
    }

    /// Appends `liveSystemVersion, instanceId, region`.
    pub fn write(&self, w: &mut ObjectWriter) {
        w.str("liveSystemVersion", LIVE_SYSTEM_VERSION)
            .str("instanceId", &self.instance_id)
            .str("region", &self.region);
    }

    /// Starts an event: `type, ts, stream` then the envelope, the prefix of
    /// every tick and snapshot event.
    pub fn begin(&self, event_type: &str, stream: &str, now_ms: u64) -> ObjectWriter {
        let mut w = ObjectWriter::new();
        w.str("type", event_type)
            .str("ts", &iso_ms(now_ms))
            .str("stream", stream);
        self.write(&mut w);
        w
    }
}

/// One row for the `live.metrics` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsRow {
    /// UTF-8 routing key, `"<stream>|<type>"`.
    pub routing_key: String,
    /// One JSON object.
    pub payload: String,
}

/// The routing key of an event about `stream`.
pub fn routing_key(stream: &str, event_type: &str) -> String {
    format!("{stream}|{event_type}")
}

/// `new Date(ms).toISOString()`: UTC with milliseconds and `Z`; years past
/// 9999 use JS's `+YYYYYY` form.
pub fn iso_ms(ms: u64) -> String {
    let days = ms / 86_400_000;
    let rem = ms % 86_400_000;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss, mmm) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000,
    );
    let year = if y > 9_999 {
        format!("+{y:06}")
    } else {
        format!("{y:04}")
    };
    format!("{year}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{mmm:03}Z")
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's civil-from-days, non-negative inputs only).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Member order of each lifecycle event type (spec §2.9), so a `Value` built
/// by the template registry comes out in Prisma's order despite sorted maps.
fn lifecycle_key_order(event_type: Option<&str>) -> &'static [&'static str] {
    match event_type.and_then(LifecycleKind::from_event_type) {
        Some(LifecycleKind::Activated) => &[
            "type",
            "ts",
            "stream",
            "templateId",
            "entity",
            "fields",
            "encodings",
            "reason",
            "activeFromTouchOffset",
            "inactivityTtlMs",
        ],
        Some(LifecycleKind::Retired) => &[
            "type",
            "ts",
            "stream",
            "templateId",
            "entity",
            "fields",
            "encodings",
            "lastSeenAt",
            "inactiveForMs",
            "reason",
        ],
        Some(LifecycleKind::Evicted) => &["type", "ts", "stream", "templateId", "reason", "cap"],
        None => &["type", "ts", "stream"],
    }
}

/// A lifecycle event's payload: its own members (§2.9 order first, any
/// others after in map order) followed by the envelope. A non-object is
/// written as is.
pub fn wrap_lifecycle(event: &Value, env: &Envelope) -> String {
    let Some(obj) = event.as_object() else {
        let mut out = String::new();
        push_value(&mut out, event);
        return out;
    };
    let order = lifecycle_key_order(obj.get("type").and_then(Value::as_str));
    let mut w = ObjectWriter::new();
    for k in order {
        if let Some(v) = obj.get(*k) {
            w.value(k, v);
        }
    }
    for (k, v) in obj {
        let enveloped = matches!(k.as_str(), "liveSystemVersion" | "instanceId" | "region");
        if !order.contains(&k.as_str()) && !enveloped {
            w.value(k, v);
        }
    }
    env.write(&mut w);
    w.finish()
}

/// A lifecycle event as a `live.metrics` row, routed by its `stream` and
/// `type` members.
pub fn lifecycle_row(event: &Value, env: &Envelope) -> MetricsRow {
    let member = |k: &str| event.get(k).map(to_js_string).unwrap_or_default();
    MetricsRow {
        routing_key: routing_key(&member("stream"), &member("type")),
        payload: wrap_lifecycle(event, env),
    }
}

/// One active template as the snapshot needs it (from the template store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTemplate {
    pub template_id: String,
    pub entity: String,
    /// Sorted field names.
    pub fields: Vec<String>,
    /// The **stored** last-seen time, which may lag memory by up to the
    /// persist interval.
    pub last_seen_at_ms: u64,
}

/// Field names from a stored `fields_json`; `[]` if it is not a JSON array,
/// non-strings converted with JS `String(x)` as Prisma does.
pub fn fields_from_json(fields_json: &str) -> Vec<String> {
    match serde_json::from_str::<Value>(fields_json) {
        Ok(Value::Array(items)) => items.iter().map(to_js_string).collect(),
        _ => Vec::new(),
    }
}

/// The snapshot rows of one stream (start, chunks of ≤ 200, end), all sharing
/// `snapshotId = "s-<stream>-<nowMs>"`. Templates are ordered by
/// (entity, templateId) byte order, like Prisma's SQLite query.
pub fn template_snapshot_rows(
    env: &Envelope,
    stream: &str,
    templates: &[SnapshotTemplate],
    now_ms: u64,
) -> Vec<MetricsRow> {
    let mut sorted: Vec<&SnapshotTemplate> = templates.iter().collect();
    sorted.sort_by(|a, b| (&a.entity, &a.template_id).cmp(&(&b.entity, &b.template_id)));
    let snapshot_id = format!("s-{stream}-{now_ms}");
    let row = |event_type: &str, w: ObjectWriter| MetricsRow {
        routing_key: routing_key(stream, event_type),
        payload: w.finish(),
    };

    let mut rows = Vec::with_capacity(2 + sorted.len().div_ceil(SNAPSHOT_CHUNK_SIZE));
    let start_type = "live.templates_snapshot_start";
    let mut w = env.begin(start_type, stream, now_ms);
    w.str("snapshotId", &snapshot_id)
        .u64("activeTemplates", sorted.len() as u64)
        .u64("chunkSize", SNAPSHOT_CHUNK_SIZE as u64);
    rows.push(row(start_type, w));

    let chunk_type = "live.templates_snapshot_chunk";
    for (chunk_index, chunk) in sorted.chunks(SNAPSHOT_CHUNK_SIZE).enumerate() {
        let items: Vec<String> = chunk
            .iter()
            .map(|t| {
                let mut item = ObjectWriter::new();
                item.str("templateId", &t.template_id)
                    .str("entity", &t.entity)
                    .str_array("fields", &t.fields)
                    .u64("lastSeenAgoMs", now_ms.saturating_sub(t.last_seen_at_ms))
                    .str("state", "active");
                item.finish()
            })
            .collect();
        let mut w = env.begin(chunk_type, stream, now_ms);
        w.str("snapshotId", &snapshot_id)
            .u64("chunkIndex", chunk_index as u64)
            .raw("templates", &format!("[{}]", items.join(",")));
        rows.push(row(chunk_type, w));
    }

    let end_type = "live.templates_snapshot_end";
    let mut w = env.begin(end_type, stream, now_ms);
    w.str("snapshotId", &snapshot_id);
    rows.push(row(end_type, w));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn env() -> Envelope {
        Envelope {
            instance_id: "i-1".into(),
            region: "eu".into(),
        }
    }

    #[test]
    fn iso_ms_formats_utc_with_millis() {
        // Reference strings from `date -u -d @<secs>` plus the ms part.
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso_ms(1_774_261_800_000), "2026-03-23T10:30:00.000Z");
        assert_eq!(iso_ms(4_102_444_799_123), "2099-12-31T23:59:59.123Z");
        assert_eq!(iso_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_ms(253_402_300_800_000), "+010000-01-01T00:00:00.000Z");
    }

    #[test]
    fn envelope_from_env_precedence() {
        let with = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Envelope::from_env(move |k| m.get(k).cloned())
        };
        assert_eq!(with(&[]), Envelope::default());
        assert_eq!(Envelope::default().instance_id, "local");
        assert_eq!(Envelope::default().region, "local");
        let e = with(&[
            ("DS_INSTANCE_ID", " a "),
            ("HOSTNAME", "h"),
            ("DS_REGION", " r1 "),
        ]);
        assert_eq!((e.instance_id.as_str(), e.region.as_str()), ("a", "r1"));
        let e = with(&[("DS_INSTANCE_ID", "   "), ("HOSTNAME", "host-7")]);
        assert_eq!(e.instance_id, "host-7");
        let e = with(&[("HOSTNAME", ""), ("DS_REGION", "")]);
        assert_eq!(
            (e.instance_id.as_str(), e.region.as_str()),
            ("local", "local")
        );
    }

    #[test]
    fn routing_key_format() {
        assert_eq!(routing_key("app.wal", "live.tick"), "app.wal|live.tick");
    }

    #[test]
    fn lifecycle_events_keep_prisma_order_and_end_with_envelope() {
        let activated = json!({
            "type": "live.template_activated",
            "ts": "2026-03-23T10:30:00.000Z",
            "stream": "app.wal",
            "templateId": "ddd2330fdab379da",
            "entity": "public.todos",
            "fields": ["status", "tenantId", "userId"],
            "encodings": ["string", "string", "string"],
            "reason": "declared",
            "activeFromTouchOffset": "0123456789abcdef:3",
            "inactivityTtlMs": 3600000
        });
        assert_eq!(
            wrap_lifecycle(&activated, &env()),
            concat!(
                r#"{"type":"live.template_activated","ts":"2026-03-23T10:30:00.000Z","#,
                r#""stream":"app.wal","templateId":"ddd2330fdab379da","entity":"public.todos","#,
                r#""fields":["status","tenantId","userId"],"encodings":["string","string","string"],"#,
                r#""reason":"declared","activeFromTouchOffset":"0123456789abcdef:3","#,
                r#""inactivityTtlMs":3600000,"liveSystemVersion":"v2","instanceId":"i-1","region":"eu"}"#
            )
        );
        let retired = json!({
            "type": "live.template_retired", "ts": "t", "stream": "s", "templateId": "x",
            "entity": "e", "fields": ["a"], "encodings": ["int64"],
            "lastSeenAt": "l", "inactiveForMs": 5, "reason": "inactivity"
        });
        assert_eq!(
            wrap_lifecycle(&retired, &env()),
            concat!(
                r#"{"type":"live.template_retired","ts":"t","stream":"s","templateId":"x","#,
                r#""entity":"e","fields":["a"],"encodings":["int64"],"lastSeenAt":"l","#,
                r#""inactiveForMs":5,"reason":"inactivity","liveSystemVersion":"v2","instanceId":"i-1","region":"eu"}"#
            )
        );
        let evicted = json!({
            "type": "live.template_evicted", "ts": "t", "stream": "s",
            "templateId": "x", "reason": "cap_exceeded", "cap": 256
        });
        let row = lifecycle_row(&evicted, &env());
        assert_eq!(row.routing_key, "s|live.template_evicted");
        assert_eq!(
            row.payload,
            concat!(
                r#"{"type":"live.template_evicted","ts":"t","stream":"s","templateId":"x","#,
                r#""reason":"cap_exceeded","cap":256,"liveSystemVersion":"v2","instanceId":"i-1","region":"eu"}"#
            )
        );
    }

    #[test]
    fn lifecycle_unknown_members_follow_and_envelope_wins() {
        let e = json!({"type": "x.other", "stream": "s", "b": 1, "a": 2, "region": "old"});
        assert_eq!(
            wrap_lifecycle(&e, &env()),
            r#"{"type":"x.other","stream":"s","a":2,"b":1,"liveSystemVersion":"v2","instanceId":"i-1","region":"eu"}"#
        );
    }

    fn tpl(id: &str, entity: &str, last_seen: u64) -> SnapshotTemplate {
        SnapshotTemplate {
            template_id: id.into(),
            entity: entity.into(),
            fields: vec!["tenantId".into()],
            last_seen_at_ms: last_seen,
        }
    }

    fn parse(row: &MetricsRow) -> Value {
        serde_json::from_str(&row.payload).unwrap()
    }

    #[test]
    fn snapshot_without_templates_is_start_and_end() {
        let rows = template_snapshot_rows(&env(), "app.wal", &[], 1_774_261_800_000);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].routing_key, "app.wal|live.templates_snapshot_start");
        assert_eq!(
            rows[0].payload,
            concat!(
                r#"{"type":"live.templates_snapshot_start","ts":"2026-03-23T10:30:00.000Z","#,
                r#""stream":"app.wal","liveSystemVersion":"v2","instanceId":"i-1","region":"eu","#,
                r#""snapshotId":"s-app.wal-1774261800000","activeTemplates":0,"chunkSize":200}"#
            )
        );
        assert_eq!(rows[1].routing_key, "app.wal|live.templates_snapshot_end");
        assert_eq!(
            rows[1].payload,
            concat!(
                r#"{"type":"live.templates_snapshot_end","ts":"2026-03-23T10:30:00.000Z","#,
                r#""stream":"app.wal","liveSystemVersion":"v2","instanceId":"i-1","region":"eu","#,
                r#""snapshotId":"s-app.wal-1774261800000"}"#
            )
        );
    }

    #[test]
    fn snapshot_single_template_chunk_shape() {
        let rows =
            template_snapshot_rows(&env(), "s", &[tpl("0af3814da0aea55f", "posts", 400)], 1_000);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].routing_key, "s|live.templates_snapshot_chunk");
        assert_eq!(
            rows[1].payload,
            concat!(
                r#"{"type":"live.templates_snapshot_chunk","ts":"1970-01-01T00:00:01.000Z","#,
                r#""stream":"s","liveSystemVersion":"v2","instanceId":"i-1","region":"eu","#,
                r#""snapshotId":"s-s-1000","chunkIndex":0,"templates":[{"templateId":"0af3814da0aea55f","#,
                r#""entity":"posts","fields":["tenantId"],"lastSeenAgoMs":600,"state":"active"}]}"#
            )
        );
        // A stored last-seen in the future clamps to 0.
        let rows = template_snapshot_rows(&env(), "s", &[tpl("a", "e", 5_000)], 1_000);
        assert_eq!(parse(&rows[1])["templates"][0]["lastSeenAgoMs"], json!(0));
    }

    #[test]
    fn snapshot_chunks_of_200() {
        for (n, chunk_sizes) in [(201usize, vec![200, 1]), (400, vec![200, 200])] {
            let templates: Vec<SnapshotTemplate> = (0..n)
                .rev()
                .map(|i| tpl(&format!("{i:016x}"), if i % 2 == 0 { "b" } else { "a" }, 0))
                .collect();
            let rows = template_snapshot_rows(&env(), "st", &templates, 77);
            assert_eq!(rows.len(), 2 + chunk_sizes.len(), "n={n}");
            let start = parse(&rows[0]);
            assert_eq!(start["activeTemplates"], json!(n));
            assert_eq!(start["chunkSize"], json!(200));
            let mut seen: Vec<(String, String)> = Vec::new();
            for (i, size) in chunk_sizes.iter().enumerate() {
                let chunk = parse(&rows[1 + i]);
                assert_eq!(chunk["type"], json!("live.templates_snapshot_chunk"));
                assert_eq!(chunk["snapshotId"], json!("s-st-77"));
                assert_eq!(chunk["chunkIndex"], json!(i));
                let items = chunk["templates"].as_array().unwrap();
                assert_eq!(items.len(), *size);
                for it in items {
                    assert_eq!(it["state"], json!("active"));
                    assert_eq!(it["lastSeenAgoMs"], json!(77));
                    seen.push((
                        it["entity"].as_str().unwrap().to_string(),
                        it["templateId"].as_str().unwrap().to_string(),
                    ));
                }
            }
            let end = parse(&rows.last().unwrap().clone());
            assert_eq!(end["type"], json!("live.templates_snapshot_end"));
            assert_eq!(end["snapshotId"], json!("s-st-77"));
            // (entity, templateId) order across chunks.
            let mut want = seen.clone();
            want.sort();
            assert_eq!(seen, want);
            assert_eq!(seen.len(), n);
            assert_eq!(seen[0], ("a".to_string(), format!("{:016x}", 1)));
        }
    }

    #[test]
    fn fields_from_stored_json() {
        assert_eq!(fields_from_json(r#"["a","b"]"#), vec!["a", "b"]);
        assert_eq!(fields_from_json(r#"[1,true]"#), vec!["1", "true"]);
        assert!(fields_from_json("{}").is_empty());
        assert!(fields_from_json("not json").is_empty());
    }
}
