//! Shared helpers: start the real HTTP server on 127.0.0.1:0 over a fresh
//! data directory, and a small HTTP client.

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use weir_net::http::{serve, HttpConfig};
use weir_storage::{Engine, EngineConfig};

/// A running server; stops when dropped.
pub struct Server {
    pub base: String,
    pub engine: Engine,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One response, fully read.
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    pub async fn start(config: HttpConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(serve(engine.clone(), config, listener, async move {
            let _ = rx.await;
        }));
        Server {
            base,
            engine,
            stop: Some(tx),
            _dir: dir,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Res {
        let mut req = Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .client
            .request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Res {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Res {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// Reads an SSE response until `until` appears in the text or `timeout` passes.
    pub async fn sse_until(
        &self,
        path: &str,
        until: &str,
        timeout: Duration,
    ) -> (StatusCode, HeaderMap, String) {
        let req = Request::get(self.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = self.client.request(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let mut body = res.into_body();
        let mut text = String::new();
        let _ = tokio::time::timeout(timeout, async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(d));
                    if text.contains(until) {
                        break;
                    }
                }
            }
        })
        .await;
        (status, headers, text)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The value of the `/metrics` sample line starting with `name` (labels
/// included), if the exposition `text` has one.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
