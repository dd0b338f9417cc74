//! The HTTP side of the touch workload: a small JSON client, and the
//! stream's preparation (State Protocol profile with touches, templates).

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Longest a setup request or append may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON-over-HTTP client of one server; cheap to clone.
#[derive(Clone)]
pub(crate) struct Http {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub(crate) fn new(authority: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Http {
            base: format!("http://{authority}"),
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(usize::MAX)
                .build(connector),
        }
    }

    /// One request; (status, JSON body or null).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: String,
        timeout: Duration,
    ) -> anyhow::Result<(u16, Value)> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let fut = async {
            let res = self.client.request(req).await?;
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await?.to_bytes();
            anyhow::Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .context("request timed out")?
    }

    async fn ok(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, v) = self.call(method, path, text, TIMEOUT).await?;
        if !(200..300).contains(&status) {
            bail!("{path}: HTTP {status} {v}");
        }
        Ok(v)
    }

    /// Appends a JSON array of State Protocol messages.
    pub(crate) async fn append(&self, stream: &str, body: &str) -> anyhow::Result<()> {
        let (status, v) = self
            .call(
                Method::POST,
                &format!("/v1/stream/{stream}"),
                body.to_string(),
                TIMEOUT,
            )
            .await?;
        if !(200..300).contains(&status) {
            bail!("append: HTTP {status} {v}");
        }
        Ok(())
    }

    /// Deletes a stream (best effort at the end of a run).
    pub(crate) async fn delete(&self, stream: &str) -> anyhow::Result<()> {
        self.ok(Method::DELETE, &format!("/v1/stream/{stream}"), Value::Null)
            .await
            .map(drop)
    }
}

/// Creates the stream, turns touches on and activates `templates`
/// templates; returns the id of `posts(tenantId)`, the one waited on.
pub(crate) async fn prepare(http: &Http, stream: &str, templates: usize) -> anyhow::Result<String> {
    http.ok(Method::PUT, &format!("/v1/stream/{stream}"), Value::Null)
        .await?;
    let profile = json!({"apiVersion": "durable.streams/profile/v1",
        "profile": {"kind": "state-protocol", "touch": {"enabled": true}}});
    http.ok(
        Method::POST,
        &format!("/v1/stream/{stream}/_profile"),
        profile,
    )
    .await?;
    let activate = format!("/v1/stream/{stream}/touch/templates/activate");
    let main = json!({"entity": "posts", "fields": [{"name": "tenantId", "encoding": "string"}]});
    let v = http
        .ok(Method::POST, &activate, json!({"templates": [main]}))
        .await?;
    let id = v["activated"][0]["templateId"]
        .as_str()
        .with_context(|| format!("activation answered {v}"))?
        .to_string();
    // Filler templates on other entities, a few per call; a call that hit
    // the activation rate limit is repeated after a pause (activating an
    // active template again only refreshes it).
    let filler: Vec<Value> = (1..templates)
        .map(|i| {
            json!({"entity": format!("e{}", i % 64),
                   "fields": [{"name": format!("f{i}"), "encoding": "string"}]})
        })
        .collect();
    let started = std::time::Instant::now();
    for chunk in filler.chunks(20) {
        loop {
            let v = http
                .ok(Method::POST, &activate, json!({"templates": chunk}))
                .await?;
            if v["denied"].as_array().is_none_or(Vec::is_empty) {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("templates still denied after 5 minutes: {v}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(id)
}
