//! The wait request (touches.md §1.8) and the meta query (§1.9), parsed
//! with Prisma Streams' checks in its order and with its exact messages,
//! so a client that matches on them keeps working. Shared by the HTTP
//! route and the JSON form of the WebSocket door.

use serde_json::Value;

use super::defaults::{
    EXACT_MAX_KEYS, WAIT_MAX_KEYS, WAIT_MAX_KEY_IDS, WAIT_TIMEOUT_DEFAULT_MS, WAIT_TIMEOUT_MAX_MS,
};
use super::keys;

/// Which keys a wait is interested in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Template-derived (fine) keys.
    Fine,
    /// Table keys only.
    Coarse,
}

/// A parsed wait request.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitRequest {
    /// `None` for `"now"`, else (epoch, generation).
    pub cursor: Option<(u64, u32)>,
    /// Clamped to 0..=120000 ms.
    pub timeout_ms: u64,
    /// Trimmed, deduplicated keys.
    pub keys: Vec<String>,
    /// Deduplicated 32-bit key ids.
    pub key_ids: Vec<u32>,
    /// Fine or coarse.
    pub interest: Interest,
    /// Match `keys` as exact 64-bit routing keys.
    pub exact: bool,
    /// Trimmed, deduplicated template ids the client's query uses.
    pub template_ids_used: Vec<String>,
    /// Templates to activate with the wait (shape-checked, non-empty).
    pub declare_templates: Option<Value>,
    /// Their inactivity TTL, when given.
    pub inactivity_ttl_ms: Option<u64>,
}

fn dedup<T: PartialEq + Clone>(v: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Parses a wait body; `Err` is the 400 message.
pub fn parse_wait(body: &[u8]) -> Result<WaitRequest, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "wait body must be valid JSON".to_string())?;
    let keys = match v.get("keys") {
        None => Vec::new(),
        Some(Value::Array(a))
            if a.iter()
                .all(|k| k.as_str().is_some_and(|s| !s.trim().is_empty())) =>
        {
            dedup(
                a.iter()
                    .map(|k| k.as_str().unwrap_or_default().trim().to_string()),
            )
        }
        Some(_) => return Err("wait.keys must be a non-empty string array when provided".into()),
    };
    if keys.len() > WAIT_MAX_KEYS {
        return Err("wait.keys too large (max 1024)".into());
    }
    let key_ids = match v.get("keyIds") {
        Some(Value::Array(a)) if !a.is_empty() => {
            let ids: Vec<u32> = dedup(a.iter().filter_map(|x| {
                let f = super::js_coerce::to_number(x);
                (f.is_finite() && f.fract() == 0.0 && (0.0..=4_294_967_295.0).contains(&f))
                    .then_some(f as u32)
            }));
            // Prisma compares the deduplicated count with the raw one, so
            // duplicates are refused too; kept for compatibility.
            if ids.len() != a.len() {
                return Err("wait.keyIds must be a non-empty uint32 array when provided".into());
            }
            ids
        }
        _ => Vec::new(),
    };
    if keys.is_empty() && key_ids.is_empty() {
        return Err("wait requires keys or keyIds".into());
    }
    if key_ids.len() > WAIT_MAX_KEY_IDS {
        return Err("wait.keyIds too large (max 1024)".into());
    }
    let exact = match v.get("exact") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("wait.exact must be a boolean when provided".into()),
    };
    let cursor_raw = match v.get("cursor") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err("wait.cursor must be a non-empty string".into()),
    };
    let timeout_ms = match v.get("timeoutMs") {
        None => WAIT_TIMEOUT_DEFAULT_MS,
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            // Prisma keeps fractions; a timer cannot, so round up.
            f.clamp(0.0, WAIT_TIMEOUT_MAX_MS as f64).ceil() as u64
        }
        Some(_) => return Err("wait.timeoutMs must be a number (ms)".into()),
    };
    let template_ids_used = match v.get("templateIdsUsed") {
        Some(Value::Array(a)) => {
            if !a
                .iter()
                .all(|x| x.as_str().is_some_and(|s| !s.trim().is_empty()))
            {
                return Err("wait.templateIdsUsed must be a string array".into());
            }
            dedup(
                a.iter()
                    .map(|x| x.as_str().unwrap_or_default().trim().to_string()),
            )
        }
        _ => Vec::new(),
    };
    let interest = match v.get("interestMode") {
        None => Interest::Fine,
        Some(Value::String(s)) if s == "fine" => Interest::Fine,
        Some(Value::String(s)) if s == "coarse" => Interest::Coarse,
        Some(_) => return Err("wait.interestMode must be 'fine' or 'coarse'".into()),
    };
    let mut declare_templates = None;
    let mut inactivity_ttl_ms = None;
    if let Some(Value::Array(a)) = v.get("declareTemplates") {
        if !a.is_empty() {
            crate::templates::decl::check_shapes(a, "wait.declareTemplates")?;
            inactivity_ttl_ms = crate::templates::decl::parse_ttl(
                v.get("inactivityTtlMs"),
                "wait.inactivityTtlMs",
            )?;
            declare_templates = Some(Value::Array(a.clone()));
        }
    }
    let cursor = if cursor_raw == "now" {
        None
    } else {
        Some(parse_cursor(&cursor_raw).ok_or_else(|| {
            "wait.cursor must be in the form <epochHex>:<generation> or 'now'".to_string()
        })?)
    };
    Ok(WaitRequest {
        cursor,
        timeout_ms,
        keys,
        key_ids,
        interest,
        exact,
        template_ids_used,
        declare_templates,
        inactivity_ttl_ms,
    })
}

/// Parses `"<16 hex digits, any case>:<decimal generation>"`. Generations
/// past u32 are refused (Prisma's are u32 too).
pub fn parse_cursor(s: &str) -> Option<(u64, u32)> {
    let (epoch, generation) = s.trim().split_once(':')?;
    if epoch.len() != 16 || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if generation.is_empty() || !generation.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        u64::from_str_radix(epoch, 16).ok()?,
        generation.parse().ok()?,
    ))
}

/// Formats a cursor.
pub fn format_cursor(epoch: u64, generation: u32) -> String {
    format!("{}:{generation}", keys::hex16(epoch))
}

/// The exact lane's keys: 1 to 16 keys of 16 hex digits (any case).
pub fn exact_keys(req: &WaitRequest) -> Result<Vec<u64>, String> {
    let msg = || "wait.exact requires 1 to 16 literal 64-bit routing keys".to_string();
    if req.keys.is_empty() || req.keys.len() > EXACT_MAX_KEYS {
        return Err(msg());
    }
    let parsed: Option<Vec<u64>> = req
        .keys
        .iter()
        .map(|k| keys::parse_hex16(&k.trim().to_lowercase()))
        .collect();
    parsed.map(dedup).ok_or_else(msg)
}

/// Parses the meta query: `settle` (only `flush`) and `timeoutMs`
/// (floored, clamped to 0..=120000, default 30000).
pub fn parse_meta_query(
    settle: Option<&str>,
    timeout_ms: Option<&str>,
) -> Result<(bool, u64), String> {
    let settle = match settle {
        None => false,
        Some("flush") => true,
        Some(_) => return Err("meta.settle must be 'flush' when provided".into()),
    };
    let timeout = match timeout_ms.map(str::trim).filter(|s| !s.is_empty()) {
        None => WAIT_TIMEOUT_DEFAULT_MS,
        Some(s) => {
            let n = super::js_coerce::string_to_number(s);
            if !n.is_finite() {
                return Err("meta.timeoutMs must be a number (ms)".into());
            }
            n.floor().clamp(0.0, WAIT_TIMEOUT_MAX_MS as f64) as u64
        }
    };
    Ok((settle, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_wait(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn messages_in_prisma_order() {
        assert_eq!(err("{"), "wait body must be valid JSON");
        assert_eq!(
            err(r#"{"keys":[""]}"#),
            "wait.keys must be a non-empty string array when provided"
        );
        assert_eq!(
            err(r#"{"keyIds":[1,1]}"#),
            "wait.keyIds must be a non-empty uint32 array when provided",
            "the duplicate quirk"
        );
        assert_eq!(err(r#"{"cursor":"now"}"#), "wait requires keys or keyIds");
        assert_eq!(
            err(r#"{"keys":["a"],"exact":1}"#),
            "wait.exact must be a boolean when provided"
        );
        assert_eq!(
            err(r#"{"keys":["a"]}"#),
            "wait.cursor must be a non-empty string"
        );
        assert_eq!(
            err(r#"{"keys":["a"],"cursor":"now","timeoutMs":"1"}"#),
            "wait.timeoutMs must be a number (ms)"
        );
        assert_eq!(
            err(r#"{"keys":["a"],"cursor":"now","templateIdsUsed":[1]}"#),
            "wait.templateIdsUsed must be a string array"
        );
        assert_eq!(
            err(r#"{"keys":["a"],"cursor":"now","interestMode":"x"}"#),
            "wait.interestMode must be 'fine' or 'coarse'"
        );
        assert_eq!(
            err(r#"{"keys":["a"],"cursor":"now","declareTemplates":[{"entity":"e","fields":[]}]}"#),
            "wait.declareTemplates contains invalid template definitions"
        );
        assert_eq!(
            err(
                r#"{"keys":["a"],"cursor":"now","declareTemplates":[{"entity":"e","fields":[{"name":"a"}]}],"inactivityTtlMs":-1}"#
            ),
            "wait.inactivityTtlMs must be a non-negative number (ms)"
        );
        assert_eq!(
            err(r#"{"keys":["a"],"cursor":"abc"}"#),
            "wait.cursor must be in the form <epochHex>:<generation> or 'now'"
        );
    }

    #[test]
    fn defaults_dedup_and_clamps() {
        let w =
            parse_wait(br#"{"keys":[" a","a","b"],"cursor":"now","timeoutMs":999999}"#).unwrap();
        assert_eq!(w.keys, vec!["a", "b"]);
        assert_eq!(w.timeout_ms, 120_000);
        assert_eq!(w.cursor, None);
        assert_eq!(w.interest, Interest::Fine);
        let w = parse_wait(br#"{"keyIds":[1,2],"cursor":"00000000000000FF:12"}"#).unwrap();
        assert_eq!(w.cursor, Some((255, 12)));
        assert_eq!(w.timeout_ms, 30_000);
    }

    #[test]
    fn cursors_and_exact_keys() {
        assert_eq!(
            parse_cursor("0123456789abcdef:0"),
            Some((0x0123_4567_89ab_cdef, 0))
        );
        assert_eq!(parse_cursor("0123456789abcde:0"), None);
        assert_eq!(parse_cursor("0123456789abcdef:-1"), None);
        assert_eq!(parse_cursor("0123456789abcdef:99999999999"), None);
        assert_eq!(format_cursor(255, 3), "00000000000000ff:3");
        let mut w = parse_wait(br#"{"keys":["F9AE463D06FCF3FC"],"cursor":"now"}"#).unwrap();
        assert_eq!(exact_keys(&w), Ok(vec![0xf9ae_463d_06fc_f3fc]));
        w.keys = (0..17).map(|i| format!("{i:016x}")).collect();
        assert!(exact_keys(&w).is_err());
    }

    #[test]
    fn meta_query() {
        assert_eq!(parse_meta_query(None, None), Ok((false, 30_000)));
        assert_eq!(
            parse_meta_query(Some("flush"), Some("12.9")),
            Ok((true, 12))
        );
        assert_eq!(
            parse_meta_query(Some("x"), None).unwrap_err(),
            "meta.settle must be 'flush' when provided"
        );
        assert_eq!(
            parse_meta_query(None, Some("abc")).unwrap_err(),
            "meta.timeoutMs must be a number (ms)"
        );
    }
}
