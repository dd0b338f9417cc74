//! The Durable Streams HTTP transport. Streams are created as
//! `application/json`, because JSON is the protocol's only way to put many
//! records in one POST and get record boundaries back on reads: each record
//! travels as one JSON string holding the base64 of its binary payload.
//! Offsets are passed back to the server exactly as it sent them; they are
//! parsed as Weir's record offsets only to number the records.

use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{sse, Ack, Delivery, ProducerTag, Subscribed, Transport, TransportOptions};
use crate::config::{LiveMode, StartFrom};
use crate::target::Target;

/// Content type of the streams this transport creates.
pub const CONTENT_TYPE: &str = "application/json";
/// Header carrying the offset after a response's data.
const NEXT_OFFSET: &str = "stream-next-offset";
/// Longest a non-live request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a live request may be silent (the server answers long-polls
/// within its own timeout, 30 s for Weir).
const LIVE_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause before a failed live read is retried.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A collected response.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn next_offset(&self) -> Option<String> {
        self.headers
            .get(NEXT_OFFSET)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn fail(&self, what: &str) -> anyhow::Error {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned();
        anyhow::anyhow!("{what}: HTTP {} {}", self.status, text.trim())
    }
}

/// One HTTP client (a pool of keep-alive connections to one server).
#[derive(Clone)]
pub struct HttpTransport {
    client: HttpClient,
    base: String,
    options: TransportOptions,
}

impl HttpTransport {
    /// A client of the server at `target`; connects lazily.
    pub fn new(target: &Target, options: TransportOptions) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HttpTransport {
            client,
            base: format!("http://{}{}/v1/stream/", target.authority, target.path),
            options,
        })
    }

    fn url(&self, stream: &str, query: &str) -> String {
        format!("{}{stream}{query}", self.base)
    }

    async fn send(&self, req: Request<Full<Bytes>>, timeout: Duration) -> anyhow::Result<Answer> {
        let what = format!("{} {}", req.method(), req.uri());
        let call = async {
            let resp = self.client.request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| anyhow::anyhow!("{what}: timed out"))?
            .with_context(|| what.clone())
    }

    async fn get(&self, stream: &str, query: &str, timeout: Duration) -> anyhow::Result<Answer> {
        let req = Request::get(self.url(stream, query)).body(Full::new(Bytes::new()))?;
        self.send(req, timeout).await
    }

    /// The tail's wire offset, from a catch-up read at `now`.
    async fn tail(&self, stream: &str) -> anyhow::Result<String> {
        let a = self.get(stream, "?offset=now", REQUEST_TIMEOUT).await?;
        if !a.status.is_success() {
            return Err(a.fail("reading the tail"));
        }
        a.next_offset()
            .context("the tail read has no Stream-Next-Offset")
    }

    /// Opens an SSE response from `offset`.
    async fn open_sse(&self, stream: &str, offset: &str) -> anyhow::Result<Incoming> {
        let req = Request::get(self.url(stream, &format!("?offset={offset}&live=sse")))
            .body(Full::new(Bytes::new()))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(req))
            .await
            .context("opening SSE: timed out")??;
        if resp.status() != StatusCode::OK {
            bail!("opening SSE: HTTP {}", resp.status());
        }
        Ok(resp.into_body())
    }
}

/// The records of a JSON array body of base64 strings.
pub fn decode_body(body: &[u8]) -> anyhow::Result<Vec<Bytes>> {
    let items: Vec<String> =
        serde_json::from_slice(body).context("read body is not a JSON array of strings")?;
    items
        .iter()
        .map(|s| {
            B64.decode(s)
                .map(Bytes::from)
                .context("record is not base64")
        })
        .collect()
}

/// The JSON array body of an append of `records`.
fn encode_body(records: &[Bytes]) -> Bytes {
    let items: Vec<String> = records.iter().map(|r| B64.encode(r)).collect();
    Bytes::from(serde_json::to_vec(&items).expect("strings serialize"))
}

/// Weir's record offset in a wire offset (`0000000000000000_0000000000000042`
/// is 42); `None` for `-1`, `now` and other servers' opaque forms.
pub fn record_offset(wire: &str) -> Option<u64> {
    match weir_net::http::parse_offset(wire)? {
        weir_net::http::OffsetParam::At(o) => Some(o),
        _ => None,
    }
}

/// Numbers `records` so the last one sits just before `next` (the response's
/// `Stream-Next-Offset`): the header is the server's word on where data ends.
fn number(records: Vec<Bytes>, next: Option<&str>) -> Delivery {
    let end = next.and_then(record_offset).unwrap_or(0);
    let first = end.saturating_sub(records.len() as u64);
    Delivery::Records(
        records
            .into_iter()
            .enumerate()
            .map(|(i, r)| (first + i as u64, r))
            .collect(),
    )
}

/// State of a long-poll follower.
struct Poll {
    t: HttpTransport,
    stream: String,
    offset: String,
}

impl Poll {
    /// The next non-empty delivery (or error).
    async fn next(&mut self) -> anyhow::Result<Delivery> {
        loop {
            let q = format!("?offset={}&live=long-poll", self.offset);
            let a = self.t.get(&self.stream, &q, LIVE_TIMEOUT).await?;
            let next = a.next_offset();
            match a.status {
                StatusCode::OK => {
                    let records = decode_body(&a.body)?;
                    let d = number(records, next.as_deref());
                    self.offset = next.context("a live read without Stream-Next-Offset")?;
                    if !d.is_empty() {
                        return Ok(d);
                    }
                }
                StatusCode::NO_CONTENT => {
                    if let Some(n) = next {
                        self.offset = n;
                    }
                }
                _ => return Err(a.fail("long-poll read")),
            }
        }
    }
}

/// State of an SSE follower: the open response, the event parser, and the
/// records of the last data event waiting for their control event.
struct Sse {
    t: HttpTransport,
    stream: String,
    offset: String,
    body: Option<Incoming>,
    parser: sse::Parser,
    pending: Vec<Bytes>,
}

impl Sse {
    async fn next(&mut self) -> anyhow::Result<Delivery> {
        loop {
            while let Some(ev) = self.parser.next_event() {
                match ev.event.as_str() {
                    "data" => self.pending.extend(decode_body(ev.data.as_bytes())?),
                    "control" => {
                        let c: serde_json::Value =
                            serde_json::from_str(&ev.data).context("control event is not JSON")?;
                        let next = c
                            .get("streamNextOffset")
                            .and_then(|v| v.as_str())
                            .context("control event without streamNextOffset")?
                            .to_string();
                        let d = number(std::mem::take(&mut self.pending), Some(&next));
                        self.offset = next;
                        if !d.is_empty() {
                            return Ok(d);
                        }
                    }
                    _ => {}
                }
            }
            if self.body.is_none() {
                // A fresh response restarts at the last control event's
                // offset, so a half-received data event is dropped.
                self.parser = sse::Parser::default();
                self.pending.clear();
                self.body = Some(self.t.open_sse(&self.stream, &self.offset).await?);
            }
            let body = self.body.as_mut().expect("opened above");
            match tokio::time::timeout(LIVE_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.push(&data);
                    }
                }
                // The server ended the response (its maximum duration):
                // reconnect from the last control event's offset.
                Ok(None) => self.body = None,
                Ok(Some(Err(e))) => {
                    self.body = None;
                    return Err(anyhow::Error::new(e).context("SSE body"));
                }
                Err(_) => {
                    self.body = None;
                    bail!("SSE: no event within {LIVE_TIMEOUT:?}");
                }
            }
        }
    }
}

impl Transport for HttpTransport {
    fn create<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let req = Request::builder()
                .method(Method::PUT)
                .uri(self.url(stream, ""))
                .header("content-type", CONTENT_TYPE)
                .body(Full::new(Bytes::new()))?;
            let a = self.send(req, REQUEST_TIMEOUT).await?;
            if !a.status.is_success() {
                return Err(a.fail("creating the stream"));
            }
            Ok(())
        })
    }

    fn append<'a>(
        &'a self,
        stream: &'a str,
        records: Vec<Bytes>,
        producer: Option<ProducerTag>,
    ) -> BoxFuture<'a, anyhow::Result<Ack>> {
        Box::pin(async move {
            let n = records.len() as u64;
            let mut req = Request::builder()
                .method(Method::POST)
                .uri(self.url(stream, ""))
                .header("content-type", CONTENT_TYPE);
            if let Some(p) = &producer {
                req = req
                    .header("producer-id", &p.id)
                    .header("producer-epoch", p.epoch.to_string())
                    .header("producer-seq", p.seq.to_string());
            }
            let a = self
                .send(req.body(Full::new(encode_body(&records)))?, REQUEST_TIMEOUT)
                .await?;
            if !a.status.is_success() {
                return Err(a.fail("append"));
            }
            let next = a.next_offset().as_deref().and_then(record_offset);
            Ok(Ack {
                first_offset: next.map_or(0, |o| o.saturating_sub(n)),
                // With producer headers a new write is 200 and a retry 204.
                duplicate: producer.is_some() && a.status == StatusCode::NO_CONTENT,
            })
        })
    }

    fn subscribe<'a>(
        &'a self,
        stream: &'a str,
        from: StartFrom,
    ) -> BoxFuture<'a, anyhow::Result<Subscribed>> {
        Box::pin(async move {
            // Resolve `now` to a concrete offset first, so the start is
            // known exactly and every later append is expected.
            let offset = match from {
                StartFrom::Start => "-1".to_string(),
                StartFrom::Now => self.tail(stream).await?,
            };
            let start = record_offset(&offset).unwrap_or(0);
            let t = self.clone();
            let stream = stream.to_string();
            let records = match self.options.live {
                LiveMode::LongPoll => {
                    let st = Poll { t, stream, offset };
                    futures::stream::unfold(st, |mut st| async move {
                        let item = st.next().await;
                        if item.is_err() {
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        Some((item, st))
                    })
                    .boxed()
                }
                LiveMode::Sse => {
                    let st = Sse {
                        t,
                        stream,
                        offset,
                        body: None,
                        parser: sse::Parser::default(),
                        pending: Vec::new(),
                    };
                    futures::stream::unfold(st, |mut st| async move {
                        let item = st.next().await;
                        if item.is_err() {
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        Some((item, st))
                    })
                    .boxed()
                }
            };
            Ok(Subscribed { start, records })
        })
    }

    fn delete<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let req = Request::delete(self.url(stream, "")).body(Full::new(Bytes::new()))?;
            let a = self.send(req, REQUEST_TIMEOUT).await?;
            if !a.status.is_success() && a.status != StatusCode::NOT_FOUND {
                return Err(a.fail("delete"));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_number_from_the_header() {
        let recs = vec![Bytes::from_static(b"\x00\x01"), Bytes::from_static(b"zz")];
        let back = decode_body(&encode_body(&recs)).unwrap();
        assert_eq!(back, recs);
        let d = number(back, Some("0000000000000000_0000000000000042"));
        let offsets: Vec<u64> = d.iter().map(|(o, _)| o).collect();
        assert_eq!(offsets, [40, 41]);
        assert_eq!(record_offset("-1"), None);
    }
}
