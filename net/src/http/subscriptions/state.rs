//! Subscription state and the wake life cycle (see the module docs).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;
use weir_storage::{AppendRequest, Engine, Record};

use super::signing::{token, Signer25519};
use super::webhook::{self, WebhookClient};
use super::{glob, not_found, ApiError};
use crate::http::offsets::{format_offset, parse_offset, OffsetParam};

/// Lease of a claim or an undelivered webhook wake when none is configured.
const DEFAULT_LEASE_MS: u64 = 30_000;

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Webhook { url: String },
    PullWake { wake_stream: String },
}

struct Link {
    explicit: bool,
    acked: u64,
    tail: u64,
}

struct Wake {
    wake_id: String,
    generation: u64,
    token: String,
    /// Linked streams and their tails when the wake opened.
    streams: Vec<(String, u64)>,
    holder: Option<String>,
    lease_until: Instant,
}

struct Sub {
    id: String,
    kind: Kind,
    pattern: Option<glob::Pattern>,
    lease: Duration,
    description: Option<String>,
    origin: String,
    /// The normalized creation request, for idempotent re-creates.
    spec: Value,
    links: BTreeMap<String, Link>,
    generation: u64,
    wake: Option<Wake>,
}

/// What to do after the state lock is released.
pub(super) enum Action {
    Deliver {
        id: String,
        url: String,
        generation: u64,
        body: Bytes,
    },
    AppendWake {
        stream: String,
        event: Bytes,
    },
}

/// All subscriptions of one server, the signing key and the webhook client.
pub struct Subscriptions {
    subs: Mutex<HashMap<String, Sub>>,
    signer: Signer25519,
    client: WebhookClient,
}

fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, msg)
}

fn fenced() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "FENCED",
        "this wake generation is no longer current",
    )
}

impl Sub {
    fn pending(&self) -> bool {
        self.links.values().any(|l| l.tail > l.acked)
    }

    fn jwks_url(&self) -> String {
        format!("{}/v1/stream/__ds/jwks.json", self.origin)
    }

    fn streams_view(&self) -> Vec<Value> {
        self.links
            .iter()
            .map(|(path, l)| {
                json!({
                    "path": path,
                    "link_type": if l.explicit { "explicit" } else { "pattern" },
                    "acked_offset": format_offset(l.acked),
                    "tail_offset": format_offset(l.tail),
                    "has_pending": l.tail > l.acked,
                })
            })
            .collect()
    }

    fn view(&self, kid: &str) -> Value {
        let mut v = json!({
            "id": self.id,
            "lease_ttl_ms": self.lease.as_millis() as u64,
            "generation": self.generation,
            "streams": self.streams_view(),
        });
        match &self.kind {
            Kind::Webhook { url } => {
                v["type"] = json!("webhook");
                v["webhook"] = json!({
                    "url": url,
                    "signing": { "alg": "ed25519", "kid": kid, "jwks_url": self.jwks_url() },
                });
            }
            Kind::PullWake { wake_stream } => {
                v["type"] = json!("pull-wake");
                v["wake_stream"] = json!(wake_stream);
            }
        }
        if let Some(p) = &self.pattern {
            v["pattern"] = json!(p.as_str());
        }
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        v
    }

    fn wake_streams_view(&self, w: &Wake) -> Vec<Value> {
        w.streams
            .iter()
            .map(|(path, tail)| {
                let acked = self.links.get(path).map_or(0, |l| l.acked);
                json!({
                    "path": path,
                    "tail_offset": format_offset(*tail),
                    "acked_offset": format_offset(acked),
                    "has_pending": *tail > acked,
                })
            })
            .collect()
    }

    /// Opens a wake when data is pending and none is open (or the open one's
    /// lease ran out unclaimed/undelivered); returns what to send for it.
    fn maybe_wake(&mut self) -> Option<Action> {
        let now = Instant::now();
        if let Some(w) = &self.wake {
            if w.lease_until > now {
                return None;
            }
        }
        if !self.pending() {
            return None;
        }
        self.generation += 1;
        let w = Wake {
            wake_id: format!("w_{}", token()),
            generation: self.generation,
            token: token(),
            streams: self
                .links
                .iter()
                .map(|(p, l)| (p.clone(), l.tail))
                .collect(),
            holder: None,
            lease_until: now + self.lease,
        };
        let streams = self.wake_streams_view(&w);
        let action = match &self.kind {
            Kind::Webhook { url } => {
                let body = json!({
                    "subscription_id": self.id,
                    "wake_id": w.wake_id,
                    "generation": w.generation,
                    "callback_url": format!("{}/v1/stream/__ds/subscriptions/{}/callback", self.origin, self.id),
                    "callback_token": w.token,
                    "streams": streams,
                });
                Action::Deliver {
                    id: self.id.clone(),
                    url: url.clone(),
                    generation: w.generation,
                    body: Bytes::from(body.to_string()),
                }
            }
            Kind::PullWake { wake_stream } => {
                let event = json!({
                    "type": "wake",
                    "subscription_id": self.id,
                    "wake_id": w.wake_id,
                    "generation": w.generation,
                    "streams": streams,
                });
                Action::AppendWake {
                    stream: wake_stream.clone(),
                    event: Bytes::from(event.to_string()),
                }
            }
        };
        self.wake = Some(w);
        Some(action)
    }

    /// Applies `acks` (stream path, offset) to linked streams.
    fn apply_acks(&mut self, acks: &[(String, u64)]) {
        for (path, offset) in acks {
            if let Some(l) = self.links.get_mut(path) {
                l.acked = l.acked.max((*offset).min(l.tail));
            }
        }
    }
}

/// Parses the creation request into a subscription (without links).
fn parse_spec(id: &str, body: &Value, origin: &str) -> Result<(Sub, Vec<String>), ApiError> {
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let kind = match body.get("type").and_then(Value::as_str) {
        Some("webhook") => {
            let url = body
                .pointer("/webhook/url")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("INVALID_REQUEST", "webhook.url is required"))?;
            if let Some(why) = webhook::reject_reason(url) {
                return Err(bad("WEBHOOK_URL_REJECTED", why));
            }
            Kind::Webhook {
                url: url.to_string(),
            }
        }
        Some("pull-wake") => Kind::PullWake {
            wake_stream: s("wake_stream")
                .ok_or_else(|| bad("INVALID_REQUEST", "wake_stream is required"))?,
        },
        _ => return Err(bad("INVALID_REQUEST", "type must be webhook or pull-wake")),
    };
    let pattern = s("pattern")
        .map(|p| glob::Pattern::new(&p))
        .transpose()
        .map_err(|why| bad("INVALID_REQUEST", why))?;
    let streams: Vec<String> = match body.get("streams") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("INVALID_REQUEST", "streams must be strings"))?,
        Some(_) => return Err(bad("INVALID_REQUEST", "streams must be an array")),
    };
    let lease_ms = match body.get("lease_ttl_ms") {
        None | Some(Value::Null) => DEFAULT_LEASE_MS,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=86_400_000).contains(n))
            .ok_or_else(|| bad("INVALID_REQUEST", "lease_ttl_ms must be 1..=86400000"))?,
    };
    let description = s("description");
    let spec = json!({
        "type": body.get("type"),
        "pattern": pattern.as_ref().map(glob::Pattern::as_str),
        "streams": streams,
        "webhook_url": body.pointer("/webhook/url"),
        "wake_stream": body.get("wake_stream"),
        "lease_ttl_ms": lease_ms,
        "description": description,
    });
    let sub = Sub {
        id: id.to_string(),
        kind,
        pattern,
        lease: Duration::from_millis(lease_ms),
        description,
        origin: origin.to_string(),
        spec,
        links: BTreeMap::new(),
        generation: 0,
        wake: None,
    };
    Ok((sub, streams))
}

fn parse_acks(body: &Value) -> Result<Vec<(String, u64)>, ApiError> {
    let Some(acks) = body.get("acks") else {
        return Ok(Vec::new());
    };
    let acks = acks
        .as_array()
        .ok_or_else(|| bad("INVALID_REQUEST", "acks must be an array"))?;
    acks.iter()
        .map(|a| {
            let stream = a.get("stream").and_then(Value::as_str);
            let offset = a
                .get("offset")
                .and_then(Value::as_str)
                .and_then(parse_offset);
            match (stream, offset) {
                (Some(s), Some(OffsetParam::At(o))) => Ok((s.to_string(), o)),
                (Some(s), Some(OffsetParam::Start)) => Ok((s.to_string(), 0)),
                _ => Err(bad(
                    "INVALID_REQUEST",
                    "each ack needs a stream and an offset",
                )),
            }
        })
        .collect()
}

/// Checks the wake a call names: its id and generation must be the open
/// wake's (else fenced), and the bearer token must be its token.
fn check_wake<'a>(
    sub: &'a mut Sub,
    token: Option<&str>,
    body: &Value,
) -> Result<&'a mut Wake, ApiError> {
    let wake_id = body.get("wake_id").and_then(Value::as_str);
    let generation = body.get("generation").and_then(Value::as_u64);
    let w = sub.wake.as_mut().ok_or_else(fenced)?;
    if wake_id != Some(w.wake_id.as_str()) || generation != Some(w.generation) {
        return Err(fenced());
    }
    if token != Some(w.token.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing or wrong token",
        ));
    }
    Ok(w)
}

impl Subscriptions {
    /// No subscriptions, a fresh signing key.
    pub fn new() -> Arc<Self> {
        Arc::new(Subscriptions {
            subs: Mutex::new(HashMap::new()),
            signer: Signer25519::generate(),
            client: webhook::client(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Sub>> {
        // A panic while holding the lock cannot leave the map torn (every
        // update is a plain field store), so a poisoned lock is still usable.
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The JWKS publishing the webhook signing key.
    pub fn jwks(&self) -> Value {
        self.signer.jwks()
    }

    fn link_current(engine: &Engine, sub: &mut Sub, path: &str, explicit: bool) {
        let tail = engine.tail(path).map_or(0, |(t, _)| t);
        let l = sub.links.entry(path.to_string()).or_insert(Link {
            explicit,
            acked: 0,
            tail: 0,
        });
        l.explicit |= explicit;
        l.tail = l.tail.max(tail);
    }

    /// Creates or idempotently confirms a subscription: `(created, view)`.
    pub fn put(
        self: &Arc<Self>,
        engine: &Engine,
        id: &str,
        body: &Value,
        origin: &str,
    ) -> Result<(bool, Value), ApiError> {
        let (mut sub, streams) = parse_spec(id, body, origin)?;
        let mut map = self.lock();
        if let Some(existing) = map.get(id) {
            if existing.spec != sub.spec {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "SUBSCRIPTION_EXISTS",
                    "a subscription with this id exists with a different configuration",
                ));
            }
            return Ok((false, existing.view(self.signer.kid())));
        }
        for p in &streams {
            Self::link_current(engine, &mut sub, p, true);
        }
        let view = sub.view(self.signer.kid());
        map.insert(id.to_string(), sub);
        Ok((true, view))
    }

    /// The view of a subscription.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.lock().get(id).map(|s| s.view(self.signer.kid()))
    }

    /// Removes a subscription.
    pub fn delete(&self, id: &str) -> Option<()> {
        self.lock().remove(id).map(|_| ())
    }

    /// Links more streams explicitly.
    pub fn add_streams(
        self: &Arc<Self>,
        engine: &Engine,
        id: &str,
        body: &Value,
    ) -> Result<(), ApiError> {
        let streams: Vec<String> = body
            .get("streams")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
            .ok_or_else(|| bad("INVALID_REQUEST", "streams must be an array of strings"))?;
        let action = {
            let mut map = self.lock();
            let sub = map.get_mut(id).ok_or_else(not_found)?;
            for p in &streams {
                Self::link_current(engine, sub, p, true);
            }
            sub.maybe_wake()
        };
        self.run(engine, action);
        Ok(())
    }

    /// Unlinks an explicitly linked stream.
    pub fn remove_stream(&self, id: &str, path: &str) -> Result<(), ApiError> {
        let mut map = self.lock();
        let sub = map.get_mut(id).ok_or_else(not_found)?;
        sub.links.remove(path);
        Ok(())
    }

    /// Called by the engine's commit hook (see `feed.rs`), on the commit
    /// thread, once a stream was created or appended to through any door:
    /// updates linked tails and opens wakes at once (so a wake is open by
    /// the time the append is acknowledged), and returns the deliveries to
    /// run, which the feed task runs off the commit thread. Matching is
    /// linear in the subscriptions and the name (`glob.rs`).
    pub(super) fn note_changed(&self, name: &str, tail: u64) -> Vec<Action> {
        let mut map = self.lock();
        if map.is_empty() {
            return Vec::new();
        }
        map.values_mut()
            .filter_map(|sub| {
                let linked = sub.links.contains_key(name)
                    || sub.pattern.as_ref().is_some_and(|p| p.matches(name));
                if !linked {
                    return None;
                }
                let l = sub.links.entry(name.to_string()).or_insert(Link {
                    explicit: false,
                    acked: 0,
                    tail: 0,
                });
                l.tail = l.tail.max(tail);
                sub.maybe_wake()
            })
            .collect()
    }

    /// Runs deliveries returned by [`Self::note_changed`].
    pub(super) fn run_all(self: &Arc<Self>, engine: &Engine, actions: Vec<Action>) {
        for a in actions {
            self.run(engine, Some(a));
        }
    }

    /// Acknowledges offsets for the open wake (webhook callback or pull ack);
    /// with `done` the wake closes. Returns whether a new wake opened.
    pub fn ack(
        self: &Arc<Self>,
        engine: &Engine,
        id: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<bool, ApiError> {
        let acks = parse_acks(body)?;
        let done = body.get("done").and_then(Value::as_bool).unwrap_or(false);
        let action = {
            let mut map = self.lock();
            let sub = map.get_mut(id).ok_or_else(not_found)?;
            check_wake(sub, token, body)?;
            sub.apply_acks(&acks);
            if !done {
                return Ok(false);
            }
            sub.wake = None;
            sub.maybe_wake()
        };
        let next = action.is_some();
        self.run(engine, action);
        Ok(next)
    }

    /// A worker claims the open wake of a pull-wake subscription (opening
    /// one if data is pending); `None` when there is nothing to do.
    pub fn claim(&self, id: &str, body: &Value) -> Result<Option<Value>, ApiError> {
        let worker = body
            .get("worker")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .ok_or_else(|| bad("INVALID_REQUEST", "worker is required"))?
            .to_string();
        let mut map = self.lock();
        let sub = map.get_mut(id).ok_or_else(not_found)?;
        if !matches!(sub.kind, Kind::PullWake { .. }) {
            return Err(bad(
                "NOT_PULL_WAKE",
                "only pull-wake subscriptions are claimed",
            ));
        }
        let now = Instant::now();
        if let Some(w) = &sub.wake {
            if let Some(h) = &w.holder {
                if *h != worker && w.lease_until > now {
                    let mut e = ApiError::new(
                        StatusCode::CONFLICT,
                        "ALREADY_CLAIMED",
                        "another worker holds this wake",
                    );
                    e.extra = Some(("current_holder", h.clone()));
                    return Err(e);
                }
            }
        } else if sub.maybe_wake().is_none() {
            // Nothing pending. (A wake opened here is announced by this
            // answer, not by an event on the wake stream.)
            return Ok(None);
        }
        let lease = sub.lease;
        let w = sub.wake.as_mut().expect("a wake is open here");
        w.holder = Some(worker);
        w.lease_until = now + lease;
        w.token = token();
        let (wake_id, generation, tok) = (w.wake_id.clone(), w.generation, w.token.clone());
        let w = sub.wake.as_ref().expect("a wake is open here");
        Ok(Some(json!({
            "wake_id": wake_id,
            "generation": generation,
            "token": tok,
            "lease_ttl_ms": lease.as_millis() as u64,
            "streams": sub.wake_streams_view(w),
        })))
    }

    /// The holder gives a claimed wake back for another worker.
    pub fn release(&self, id: &str, token: Option<&str>, body: &Value) -> Result<(), ApiError> {
        let mut map = self.lock();
        let sub = map.get_mut(id).ok_or_else(not_found)?;
        let w = check_wake(sub, token, body)?;
        w.holder = None;
        Ok(())
    }

    /// Carries out an action outside the lock.
    fn run(self: &Arc<Self>, engine: &Engine, action: Option<Action>) {
        let Some(action) = action else { return };
        let this = Arc::clone(self);
        let engine = engine.clone();
        match action {
            Action::AppendWake { stream, event } => {
                tokio::spawn(async move {
                    let req = AppendRequest {
                        records: vec![Record::new(event)],
                        ..Default::default()
                    };
                    if let Err(e) = engine.append_async(&stream, req).await {
                        tracing::warn!(stream = %stream, error = %e, "cannot append a wake event");
                    }
                });
            }
            Action::Deliver {
                id,
                url,
                generation,
                body,
            } => {
                tokio::spawn(async move { this.deliver(engine, id, url, generation, body).await });
            }
        }
    }

    async fn deliver(
        self: Arc<Self>,
        engine: Engine,
        id: String,
        url: String,
        generation: u64,
        body: Bytes,
    ) {
        for attempt in 1..=3u64 {
            match webhook::deliver(&self.client, &self.signer, &url, body.clone()).await {
                Ok(answer) => {
                    if answer.get("done").and_then(Value::as_bool) == Some(true) {
                        // A synchronous "done" acknowledges the wake's snapshot.
                        let action = {
                            let mut map = self.lock();
                            let Some(sub) = map.get_mut(&id) else { return };
                            let Some(w) = sub.wake.as_ref().filter(|w| w.generation == generation)
                            else {
                                return;
                            };
                            let acks = w.streams.clone();
                            sub.apply_acks(&acks);
                            sub.wake = None;
                            sub.maybe_wake()
                        };
                        self.run(&engine, action);
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(subscription = %id, attempt, error = %e, "webhook delivery failed");
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
            }
        }
    }
}
