//! `POST` and `GET /v1/stream/{name}/_profile`: Prisma Streams' stream
//! profile document, so its clients turn a stream into a State Protocol
//! stream unchanged. Kinds: `generic` (a plain stream) and `state-protocol`
//! (a JSON stream whose key-value state Weir keeps). The validation order
//! and the messages are Prisma Streams' (0.1.11), so clients that match on
//! them keep working; errors use its JSON envelope
//! `{"error":{"code":…,"message":…}}`. The `touch` member is validated
//! and normalized by `weir_storage::touch::config`, with Prisma's defaults.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Map, Value};
use weir_storage::StateMode;

use super::body::read_limited;
use super::reply::Reply;
use super::router::Ctx;

/// The profile API version Prisma Streams' clients send.
pub const API_VERSION: &str = "durable.streams/profile/v1";

/// Largest profile document accepted.
const MAX_PROFILE_BYTES: usize = 64 << 10;

/// Answers a request on a stream's `_profile` resource.
pub async fn handle(ctx: &Ctx, req: Request<Incoming>, name: &str) -> Reply {
    let method = req.method().clone();
    if method == Method::GET {
        return match (ctx.engine.head(name), ctx.engine.profile(name)) {
            (Ok(info), Ok(stored)) => {
                let profile = match stored.and_then(|p| serde_json::from_str::<Value>(&p).ok()) {
                    Some(p) if info.state.mode == StateMode::StateProtocol => p,
                    _ => default_profile(info.state.mode),
                };
                resource(&profile)
            }
            (Err(e), _) | (_, Err(e)) => engine_error(&e),
        };
    }
    if method != Method::POST {
        return error(StatusCode::BAD_REQUEST, "bad_request", "unsupported method");
    }
    let info = match ctx.engine.head(name) {
        Ok(i) => i,
        Err(e) => return engine_error(&e),
    };
    let body = match read_limited(
        req.into_body(),
        MAX_PROFILE_BYTES,
        ctx.config.body_pace,
        &ctx.intake,
    )
    .await
    {
        Ok((b, _hold)) => b,
        Err(e) => return e.reply(MAX_PROFILE_BYTES),
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return bad("profile update must be valid JSON");
    };
    let profile = match parse_update(&doc) {
        Ok(p) => p,
        Err(Refusal::Bad(m)) => return bad(&m),
    };
    let (mode, stored) = match profile.get("kind").and_then(Value::as_str) {
        Some("state-protocol") => (StateMode::StateProtocol, Some(profile.to_string())),
        _ => (StateMode::None, None),
    };
    if mode == StateMode::None && info.state.mode == StateMode::Keyed {
        // `generic` is Prisma's plain stream; a keyed stream stays keyed
        // unless its state is turned off through Weir's own header.
        return bad("a keyed state stream has no Prisma profile (it is generic already)");
    }
    match ctx.engine.set_state_mode(name, mode, stored).await {
        Ok(_) => resource(&profile),
        Err(weir_storage::Error::Invalid(m)) => bad(&m),
        Err(e) => engine_error(&e),
    }
}

enum Refusal {
    Bad(String),
}

/// Validates a profile update document and returns the normalized profile.
fn parse_update(doc: &Value) -> Result<Value, Refusal> {
    let bad = |m: String| Refusal::Bad(m);
    let Some(obj) = doc.as_object() else {
        return Err(bad("profile update must be a JSON object".into()));
    };
    reject_unknown(obj, &["apiVersion", "profile"], "profileUpdate").map_err(bad)?;
    if let Some(v) = obj.get("apiVersion") {
        if v.as_str() != Some(API_VERSION) {
            return Err(bad("invalid profile apiVersion".into()));
        }
    }
    let Some(profile) = obj.get("profile") else {
        return Err(bad("missing profile".into()));
    };
    let Some(p) = profile.as_object() else {
        return Err(bad("profile must be an object".into()));
    };
    let kind = p
        .get("kind")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if kind.is_empty() {
        return Err(bad("profile.kind must be a non-empty string".into()));
    }
    match kind {
        "generic" => {
            if p.get("kind").and_then(Value::as_str) != Some("generic") {
                return Err(bad("profile.kind must be generic".into()));
            }
            reject_unknown(p, &["kind"], "profile").map_err(bad)?;
            Ok(json!({"kind": "generic"}))
        }
        "state-protocol" => {
            if p.get("kind").and_then(Value::as_str) != Some("state-protocol") {
                return Err(bad("profile.kind must be state-protocol".into()));
            }
            reject_unknown(p, &["kind", "touch"], "profile").map_err(bad)?;
            match p.get("touch") {
                None => Ok(json!({"kind": "state-protocol"})),
                Some(t) if !t.is_object() => Err(bad("profile.touch must be an object".into())),
                Some(t) => {
                    let cfg = weir_storage::touch::config::parse_touch(Some(t)).map_err(bad)?;
                    Ok(json!({"kind": "state-protocol", "touch": cfg.to_json()}))
                }
            }
        }
        _ => Err(bad("profile.kind must be generic|state-protocol".into())),
    }
}

fn reject_unknown(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{path}.{k} is not supported")),
        None => Ok(()),
    }
}

fn default_profile(mode: StateMode) -> Value {
    match mode {
        StateMode::StateProtocol => json!({"kind": "state-protocol"}),
        _ => json!({"kind": "generic"}),
    }
}

fn resource(profile: &Value) -> Reply {
    Reply::prisma_json(
        StatusCode::OK,
        &json!({"apiVersion": API_VERSION, "profile": profile}),
    )
}

fn bad(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::prisma_error(status, code, message)
}

fn engine_error(e: &weir_storage::Error) -> Reply {
    match e {
        weir_storage::Error::NotFound | weir_storage::Error::Gone => {
            error(StatusCode::NOT_FOUND, "not_found", "not_found")
        }
        e => super::errors::reply(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(doc: Value) -> String {
        match parse_update(&doc) {
            Err(Refusal::Bad(m)) => m,
            Ok(p) => panic!("accepted: {p}"),
        }
    }

    #[test]
    fn documents_are_validated_with_prismas_messages() {
        assert_eq!(refusal(json!([])), "profile update must be a JSON object");
        assert_eq!(refusal(json!({"x": 1})), "profileUpdate.x is not supported");
        assert_eq!(
            refusal(json!({"apiVersion": "v0", "profile": {}})),
            "invalid profile apiVersion"
        );
        assert_eq!(
            refusal(json!({"apiVersion": API_VERSION})),
            "missing profile"
        );
        assert_eq!(refusal(json!({"profile": 3})), "profile must be an object");
        assert_eq!(
            refusal(json!({"profile": {"kind": " "}})),
            "profile.kind must be a non-empty string"
        );
        assert_eq!(
            refusal(json!({"profile": {"kind": "evlog"}})),
            "profile.kind must be generic|state-protocol"
        );
        assert_eq!(
            refusal(json!({"profile": {"kind": "state-protocol", "extra": 1}})),
            "profile.extra is not supported"
        );
        assert_eq!(
            refusal(
                json!({"profile": {"kind": "state-protocol", "touch": {"enabled": false, "storage": 1}}})
            ),
            "profile.touch.storage is not supported"
        );
        assert_eq!(
            parse_update(
                &json!({"apiVersion": API_VERSION, "profile": {"kind": "state-protocol"}})
            )
            .ok(),
            Some(json!({"kind": "state-protocol"}))
        );
        assert_eq!(
            parse_update(&json!({"profile": {"kind": "generic"}})).ok(),
            Some(json!({"kind": "generic"}))
        );
        let enabled = parse_update(
            &json!({"profile": {"kind": "state-protocol", "touch": {"enabled": true}}}),
        )
        .ok()
        .expect("touch enabled is accepted");
        assert_eq!(enabled["touch"]["enabled"], json!(true));
        assert_eq!(enabled["touch"]["memory"]["bucketMs"], json!(100));
    }
}
