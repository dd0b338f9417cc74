//! A tiny fake Durable Streams server (JSON streams, long-poll reads, one
//! record per read) that can drop or repeat one record on the read path:
//! the load generator must count exactly that record as lost or duplicated.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use weir_load::{run, LoadConfig, Target};
use weir_net::http::format_offset;

/// What the fake does wrong.
#[derive(Clone, Copy)]
enum Fault {
    /// Reads skip the record at this offset.
    Drop(u64),
    /// The read after this offset hands it out a second time.
    Repeat(u64),
}

struct Fake {
    fault: Fault,
    /// Stream name -> the JSON values appended (base64 strings, as sent).
    streams: Mutex<HashMap<String, Vec<serde_json::Value>>>,
    repeated: Mutex<bool>,
}

fn reply(status: StatusCode, next: Option<u64>, body: &str) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(n) = next {
        b = b.header("stream-next-offset", format_offset(n));
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

impl Fake {
    fn len(&self, name: &str) -> Option<u64> {
        self.streams
            .lock()
            .unwrap()
            .get(name)
            .map(|v| v.len() as u64)
    }

    /// The record (offset and value) a read at `at` answers with, if any.
    fn pick(&self, name: &str, at: u64) -> Option<(u64, serde_json::Value)> {
        let streams = self.streams.lock().unwrap();
        let recs = streams.get(name)?;
        let at = match self.fault {
            Fault::Drop(k) if at == k => k + 1,
            Fault::Repeat(k) if at == k + 1 => {
                let mut done = self.repeated.lock().unwrap();
                if *done {
                    at
                } else {
                    *done = true;
                    k
                }
            }
            _ => at,
        };
        recs.get(at as usize).map(|v| (at, v.clone()))
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let name = req
            .uri()
            .path()
            .trim_start_matches("/v1/stream/")
            .to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let offset = query
            .split('&')
            .find_map(|p| p.strip_prefix("offset="))
            .unwrap_or("-1")
            .to_string();
        Ok(match *req.method() {
            Method::PUT => {
                self.streams.lock().unwrap().entry(name).or_default();
                reply(StatusCode::CREATED, Some(0), "")
            }
            Method::POST => {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let vals: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                let mut s = self.streams.lock().unwrap();
                let recs = s.get_mut(&name).unwrap();
                recs.extend(vals);
                let n = recs.len() as u64;
                reply(StatusCode::NO_CONTENT, Some(n), "")
            }
            Method::DELETE => {
                self.streams.lock().unwrap().remove(&name);
                reply(StatusCode::NO_CONTENT, None, "")
            }
            Method::GET if offset == "now" => {
                let n = self.len(&name).unwrap_or(0);
                reply(StatusCode::OK, Some(n), "[]")
            }
            Method::GET => {
                let at = match offset.as_str() {
                    "-1" => 0,
                    o => match weir_net::http::parse_offset(o) {
                        Some(weir_net::http::OffsetParam::At(x)) => x,
                        _ => return Ok(reply(StatusCode::BAD_REQUEST, None, "bad offset")),
                    },
                };
                // Long-poll: wait up to a second for a record to serve.
                for _ in 0..50 {
                    if let Some((o, v)) = self.pick(&name, at) {
                        let body = serde_json::to_string(&vec![v]).unwrap();
                        return Ok(reply(StatusCode::OK, Some(o + 1), &body));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                reply(StatusCode::NO_CONTENT, Some(at), "")
            }
            _ => reply(StatusCode::METHOD_NOT_ALLOWED, None, ""),
        })
    }
}

async fn fake(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake {
        fault,
        streams: Mutex::new(HashMap::new()),
        repeated: Mutex::new(false),
    });
    tokio::spawn(async move {
        loop {
            let Ok((io, _)) = listener.accept().await else {
                return;
            };
            let fake = fake.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| fake.clone().handle(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn small(url: &str) -> LoadConfig {
    let mut c = LoadConfig::new(Target::parse(url).unwrap());
    c.connections = 1;
    c.streams = 1;
    c.producers = 1;
    c.subscribers_per_stream = 1;
    c.record_size = 32;
    c.batch = 5;
    c.max_records = Some(40);
    c.warmup = Duration::ZERO;
    c.duration = Duration::from_secs(10);
    c.drain = Duration::from_secs(2);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_record_is_lost() {
    let url = fake(Fault::Drop(17)).await;
    let r = run(small(&url)).await.unwrap().report;
    assert_eq!(r.appended, 40, "{}", r.summary());
    assert_eq!(r.lost, 1, "{}", r.summary());
    assert_eq!(r.duplicates, 0, "{}", r.summary());
    assert_eq!(r.mismatched, 0, "{}", r.summary());
    assert!(!r.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_record_is_a_duplicate() {
    let url = fake(Fault::Repeat(23)).await;
    let r = run(small(&url)).await.unwrap().report;
    assert_eq!(r.appended, 40, "{}", r.summary());
    assert_eq!(r.duplicates, 1, "{}", r.summary());
    assert_eq!(r.lost, 0, "{}", r.summary());
    assert_eq!(r.mismatched, 0, "{}", r.summary());
    assert!(r.drained);
}
