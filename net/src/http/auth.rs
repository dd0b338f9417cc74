//! Authorization of HTTP requests: which permission on which stream each
//! route needs, checked against the request's bearer token before the
//! route runs (so a refused request learns nothing about the stream).
//! Health endpoints and CORS preflights are public; `/metrics` and the
//! webhook subscription API need `admin` on the operations pseudo-stream.

use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Method, StatusCode};

use super::reply::Reply;
use super::router::STREAM_PREFIX;
use crate::auth::{bearer, Auth, Permission, Refusal, OPS};

/// What a request needs: permissions on streams (a fork also reads its
/// source). Empty for public endpoints.
fn required(method: &Method, path: &str, headers: &HeaderMap) -> Vec<(Permission, String)> {
    if path == super::metrics::PATH {
        return vec![(Permission::Admin, OPS.to_string())];
    }
    let Some(rest) = path.strip_prefix(STREAM_PREFIX) else {
        return Vec::new();
    };
    if rest.starts_with("__ds/") {
        return vec![(Permission::Admin, OPS.to_string())];
    }
    let Some(name) = super::query::decode(rest, false) else {
        // Malformed: the route answers 400 without touching a stream, but
        // only a caller with some permission gets that far.
        return vec![(Permission::Read, String::new())];
    };
    let sub = |suffix: &str| name.strip_suffix(suffix).map(str::to_string);
    if let Some(s) = sub("/_profile") {
        let p = if method == Method::GET {
            Permission::Read
        } else {
            Permission::Admin
        };
        return vec![(p, s)];
    }
    if let Some((s, _)) = super::touch::split(&name) {
        // Waiting and declaring the templates a query uses are part of
        // reading it live.
        return vec![(Permission::Read, s.to_string())];
    }
    if let Some(s) = sub("/_state") {
        return vec![(Permission::Read, s)];
    }
    let p = match *method {
        Method::PUT => Permission::Create,
        Method::POST => Permission::Append,
        Method::DELETE => Permission::Delete,
        _ => Permission::Read,
    };
    let mut out = vec![(p, name.clone())];
    if method == Method::PUT {
        if let Some(src) = headers
            .get("stream-forked-from")
            .and_then(|v| v.to_str().ok())
            .and_then(super::create::source_name)
        {
            out.push((Permission::Read, src));
        }
    }
    out
}

/// The refusal as HTTP: 401 with a `WWW-Authenticate` challenge for a
/// missing or unusable token, 403 for a token without the permission.
pub fn refusal(r: Refusal) -> Reply {
    let (status, challenge) = match r {
        Refusal::Missing => (StatusCode::UNAUTHORIZED, "Bearer"),
        Refusal::Invalid => (StatusCode::UNAUTHORIZED, "Bearer error=\"invalid_token\""),
        Refusal::Expired => (
            StatusCode::UNAUTHORIZED,
            "Bearer error=\"invalid_token\", error_description=\"expired\"",
        ),
        Refusal::Forbidden => (StatusCode::FORBIDDEN, "Bearer error=\"insufficient_scope\""),
    };
    Reply::error(status, r.message()).header("www-authenticate", challenge)
}

/// When the token a request was allowed with stops working (ms since the
/// Unix epoch): a request extension, so that live reads end then.
#[derive(Debug, Clone, Copy)]
pub struct TokenExpiry(pub u64);

/// Checks a request; on `Err`, answer [`refusal`] instead of running it. On
/// `Ok`, the expiry of the JWT it was allowed with, if any.
pub fn check(
    auth: &Auth,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Option<TokenExpiry>, Refusal> {
    let needs = required(method, path, headers);
    if needs.is_empty() {
        return Ok(None);
    }
    let token = bearer(headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()));
    let principal = auth.authenticate(token)?;
    let now = weir_storage::now_ms();
    for (p, stream) in &needs {
        principal.check(*p, stream, now)?;
    }
    Ok(principal.expires_at_ms.map(TokenExpiry))
}

/// How long a live read allowed with `expiry` may last, at most `limit`.
pub fn live_limit(expiry: Option<TokenExpiry>, limit: std::time::Duration) -> std::time::Duration {
    match expiry {
        Some(TokenExpiry(at)) => {
            let left = at.saturating_sub(weir_storage::now_ms());
            limit.min(std::time::Duration::from_millis(left))
        }
        None => limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str) -> Vec<(Permission, String)> {
        required(&method, path, &HeaderMap::new())
    }

    #[test]
    fn routes_need_what_they_do() {
        use Permission::*;
        let s = |p, n: &str| vec![(p, n.to_string())];
        assert_eq!(req(Method::PUT, "/v1/stream/a"), s(Create, "a"));
        assert_eq!(req(Method::POST, "/v1/stream/a"), s(Append, "a"));
        assert_eq!(req(Method::GET, "/v1/stream/a/b"), s(Read, "a/b"));
        assert_eq!(req(Method::HEAD, "/v1/stream/a"), s(Read, "a"));
        assert_eq!(req(Method::DELETE, "/v1/stream/a"), s(Delete, "a"));
        assert_eq!(req(Method::POST, "/v1/stream/a/_profile"), s(Admin, "a"));
        assert_eq!(req(Method::GET, "/v1/stream/a/_profile"), s(Read, "a"));
        assert_eq!(req(Method::GET, "/v1/stream/a/_state"), s(Read, "a"));
        assert_eq!(req(Method::POST, "/v1/stream/a/touch/wait"), s(Read, "a"));
        assert_eq!(req(Method::GET, "/metrics"), s(Admin, OPS));
        assert_eq!(req(Method::POST, "/v1/stream/__ds/x"), s(Admin, OPS));
        assert!(req(Method::GET, "/healthz").is_empty());
        let mut h = HeaderMap::new();
        h.insert("stream-forked-from", "/v1/stream/src".parse().unwrap());
        assert_eq!(
            required(&Method::PUT, "/v1/stream/f", &h),
            vec![(Create, "f".to_string()), (Read, "src".to_string())]
        );
    }
}
