//! Tunables of the HTTP door and their documented defaults.

use std::time::Duration;

/// Configuration of [`serve`](super::serve); `Default` gives production values.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// How long a long-poll read waits for new data before answering 204.
    pub long_poll_timeout: Duration,
    /// Largest request body accepted on PUT and POST; larger ones get 413.
    pub max_append_bytes: usize,
    /// Byte budget of stored record data gathered for one read response or
    /// one SSE data event; a read never materializes more than this (plus one record).
    pub read_budget_bytes: usize,
    /// How long an SSE connection is held before the server closes it so
    /// clients reconnect (lets CDNs collapse requests).
    pub sse_max_duration: Duration,
    /// How long shutdown waits for in-flight requests after stopping accepts.
    pub shutdown_grace: Duration,
    /// TCP congestion control set on the listener (inherited by every
    /// accepted connection), or `None` for the kernel's default; if the
    /// kernel refuses it, `serve` logs a warning and keeps the default.
    /// Cubic by default: with BBR (a common system
    /// default) the kernel paces each 1 MiB read response with timers from a
    /// rate estimate that the gaps between paged responses keep low, which
    /// cost catch-up reads half their throughput (`bench/RESULTS.md`).
    pub tcp_congestion: Option<String>,
    /// How slowly a PUT or POST body may arrive before the request is
    /// answered 408 and its connection closed (default: 10 s, then 16 KiB/s
    /// on average).
    pub body_pace: super::body::BodyPace,
    /// Bytes of read-response bodies held in memory across every HTTP
    /// connection; a read that would pass it waits for bodies to be sent.
    pub output_budget_bytes: usize,
    /// Bytes of request bodies, and of the records split from them, held in
    /// memory across every HTTP connection until their appends commit (see
    /// `intake.rs`); a request that finds no room waits, then gets 503.
    pub intake_budget_bytes: usize,
    /// How long a request waits for room in the intake budget before it is
    /// answered 503 with `Retry-After`.
    pub intake_wait: Duration,
    /// How long a connection's response writes may take no bytes at all
    /// before the connection is closed (a client that never reads).
    pub write_stall_limit: Duration,
    /// Most TCP connections served at once on the HTTP port (WebSocket
    /// connections, once upgraded, count against `ws.max_connections`
    /// instead). One more is answered `503` and closed.
    pub max_connections: usize,
    /// The WebSocket door at `/v1/ws` on the same port.
    pub ws: crate::ws::WsConfig,
    /// Token checks on every request (`None`: authentication is off).
    pub auth: Option<crate::auth::Auth>,
    /// Serve HTTPS (and WSS) with this TLS configuration instead of plain
    /// HTTP (see [`tls_server_config`](crate::http::tls_server_config)).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            long_poll_timeout: Duration::from_millis(30_000),
            max_append_bytes: 10 << 20,
            read_budget_bytes: 1 << 20,
            sse_max_duration: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            tcp_congestion: Some("cubic".into()),
            body_pace: super::body::BodyPace {
                grace: Duration::from_secs(10),
                min_rate: 16 << 10,
            },
            output_budget_bytes: 256 << 20,
            intake_budget_bytes: 1 << 30,
            intake_wait: Duration::from_secs(10),
            write_stall_limit: Duration::from_secs(30),
            max_connections: 4096,
            ws: crate::ws::WsConfig::default(),
            auth: None,
            tls: None,
        }
    }
}
