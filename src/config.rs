//! Server configuration: defaults, then the TOML file, then `WEIR_*`
//! environment variables and flags. Sections are per concern so that each
//! network door adds its own (`[http]`, later `[quic]`, `[websocket]`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use weir_net::http::{BodyPace, HttpConfig};
use weir_net::quic::{Congestion, QuicConfig, TransportSettings};
use weir_net::ws::{OutputBudget, WsConfig};
use weir_storage::{Durability, EngineConfig};

use crate::cli::ServeArgs;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The whole configuration of `weir serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory holding the RocksDB instance.
    pub data_dir: PathBuf,
    /// `sync` or `buffered`; see the README for what each promises.
    pub durability: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Storage engine tunables.
    pub storage: StorageSection,
    /// The HTTP door.
    pub http: HttpSection,
    /// The QUIC door.
    pub quic: QuicSection,
    /// The WebSocket door (on the HTTP port at `/v1/ws`).
    pub websocket: WebSocketSection,
    /// Authentication and permissions on every door (off by default).
    pub auth: weir_net::auth::AuthConfig,
}

/// `[websocket]`: the binary protocol over WebSocket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketSection {
    /// Interval between server pings, in milliseconds.
    pub ping_interval_ms: u64,
    /// A connection silent (no message, no pong) this long is closed, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Largest message accepted; larger ones close the connection with 1009.
    pub max_message_bytes: usize,
    /// Outgoing bytes one connection may have queued before it waits.
    pub send_buffer_bytes: usize,
    /// Most WebSocket connections open at once (one more gets 503).
    pub max_connections: usize,
    /// Server-wide budget of queued outgoing messages, across connections;
    /// past it the slowest connections are closed.
    pub max_buffered_output_bytes: usize,
}

impl Default for WebSocketSection {
    fn default() -> Self {
        let w = WsConfig::default();
        WebSocketSection {
            ping_interval_ms: w.ping_interval.as_millis() as u64,
            idle_timeout_ms: w.idle_timeout.as_millis() as u64,
            max_message_bytes: w.max_message_bytes,
            send_buffer_bytes: w.send_buffer_bytes,
            max_connections: w.max_connections,
            max_buffered_output_bytes: w.output_budget.limit(),
        }
    }
}

/// `[quic]`: the binary protocol over QUIC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicSection {
    /// UDP listen address.
    pub addr: SocketAddr,
    /// PEM certificate chain; without it a self-signed certificate is
    /// generated into the data directory at first start and reused.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Congestion controller: `cubic` (default), `newreno` or `bbr`.
    pub congestion: Congestion,
    /// Bytes a client may send on one request stream ahead of the server.
    pub stream_receive_window: u32,
    /// Bytes a client may send on a connection ahead of the server.
    pub receive_window: u32,
    /// Bytes unacknowledged or unsent per connection: what the server
    /// buffers for one slow client before its subscriptions wait.
    pub send_window: u64,
    /// Concurrent request streams a client may open.
    pub max_request_streams: u32,
    /// UDP segmentation offload (several packets per system call).
    pub segmentation_offload: bool,
    /// Interleave streams frame by frame when sending (off: each stream's
    /// queued data goes out before the next one's).
    pub send_fairness: bool,
    /// Most QUIC connections open at once (one more is refused).
    pub max_connections: usize,
}

impl Default for QuicSection {
    fn default() -> Self {
        let t = TransportSettings::default();
        QuicSection {
            addr: SocketAddr::from(([127, 0, 0, 1], 4438)),
            cert: None,
            key: None,
            congestion: t.congestion,
            stream_receive_window: t.stream_receive_window,
            receive_window: t.receive_window,
            send_window: t.send_window,
            max_request_streams: t.max_request_streams,
            segmentation_offload: t.segmentation_offload,
            send_fairness: t.send_fairness,
            max_connections: 4096,
        }
    }
}

/// `[http]`: the Durable Streams HTTP door.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Listen address.
    pub addr: SocketAddr,
    /// Long-poll wait in milliseconds.
    pub long_poll_timeout_ms: u64,
    /// Largest append body in bytes.
    pub max_append_bytes: usize,
    /// Record bytes gathered for one read response or SSE event.
    pub read_budget_bytes: usize,
    /// TCP congestion control of accepted connections (a name the kernel
    /// offers, see `net.ipv4.tcp_available_congestion_control`), or
    /// `"system"` for the kernel's default. Unset: cubic where the kernel
    /// allows it, with a warning where it does not; set: required.
    pub tcp_congestion: Option<String>,
    /// Most TCP connections served at once on the HTTP port (one more gets 503).
    pub max_connections: usize,
    /// Bytes of read-response bodies held at once across HTTP connections.
    pub output_budget_bytes: usize,
    /// Bytes of request bodies and their split records held at once across
    /// HTTP connections until their appends commit.
    pub intake_budget_bytes: usize,
    /// Milliseconds a request waits for intake room before it gets 503.
    pub intake_wait_ms: u64,
    /// Milliseconds a connection's response writes may take no bytes before it is closed.
    pub write_stall_ms: u64,
    /// Time every request body gets before its pace is checked, in ms.
    pub body_grace_ms: u64,
    /// Bytes per second a request body must average after the grace.
    pub body_min_rate: u64,
    /// Serve HTTPS and WSS instead of plain HTTP.
    pub tls: bool,
    /// PEM certificate chain for TLS (with `tls_key`); without both, the
    /// QUIC door's certificate (configured or self-signed) is used.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// Address of the operations door (`/metrics`, `/healthz`, `/readyz`
    /// without authentication), if any.
    pub ops_addr: Option<SocketAddr>,
}

impl Default for HttpSection {
    fn default() -> Self {
        let h = HttpConfig::default();
        HttpSection {
            addr: SocketAddr::from(([127, 0, 0, 1], 4437)),
            long_poll_timeout_ms: h.long_poll_timeout.as_millis() as u64,
            max_append_bytes: h.max_append_bytes,
            read_budget_bytes: h.read_budget_bytes,
            tcp_congestion: None,
            max_connections: h.max_connections,
            output_budget_bytes: h.output_budget_bytes,
            intake_budget_bytes: h.intake_budget_bytes,
            intake_wait_ms: h.intake_wait.as_millis() as u64,
            write_stall_ms: h.write_stall_limit.as_millis() as u64,
            body_grace_ms: h.body_pace.grace.as_millis() as u64,
            body_min_rate: h.body_pace.min_rate,
            tls: false,
            tls_cert: None,
            tls_key: None,
            ops_addr: None,
        }
    }
}

/// `[storage]`: engine tunables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// RocksDB block cache size in MiB.
    pub block_cache_mb: usize,
    /// Commit queue capacity (requests waiting for the commit thread).
    pub commit_queue: usize,
    /// Longest record key in bytes.
    pub max_key_len: usize,
    /// Disk bound of the file cache of large batches that HTTP reads send
    /// with `sendfile`, in MiB; 0 turns it off.
    pub file_cache_mb: u64,
    /// Stored batches of at least this many bytes go to RocksDB blob files
    /// (0: never); see `EngineConfig::blob_min_bytes`.
    pub blob_min_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./weir-data"),
            durability: "sync".into(),
            log_format: LogFormat::Human,
            storage: StorageSection::default(),
            http: HttpSection::default(),
            quic: QuicSection::default(),
            websocket: WebSocketSection::default(),
            auth: weir_net::auth::AuthConfig::default(),
        }
    }
}

impl Default for StorageSection {
    fn default() -> Self {
        let e = EngineConfig::default();
        StorageSection {
            block_cache_mb: e.block_cache_bytes >> 20,
            commit_queue: e.commit_queue,
            max_key_len: e.max_key_len,
            file_cache_mb: e.file_cache_bytes >> 20,
            blob_min_bytes: e.blob_min_bytes,
        }
    }
}

impl Config {
    /// Builds the effective config from the file named by `args` (if any) and the flags.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let mut c = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        if let Some(d) = &args.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(d) = &args.durability {
            c.durability = d.clone();
        }
        if let Some(f) = &args.log_format {
            c.log_format = match f.as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                other => bail!("unknown log format {other:?}; expected \"human\" or \"json\""),
            };
        }
        if let Some(a) = args.http_addr {
            c.http.addr = a;
        }
        if let Some(a) = args.ops_addr {
            c.http.ops_addr = Some(a);
        }
        if let Some(t) = args.long_poll_timeout_ms {
            c.http.long_poll_timeout_ms = t;
        }
        if let Some(m) = args.max_append_bytes {
            c.http.max_append_bytes = m;
        }
        if let Some(b) = args.read_budget_bytes {
            c.http.read_budget_bytes = b;
        }
        if let Some(m) = args.file_cache_mb {
            c.storage.file_cache_mb = m;
        }
        if let Some(cc) = &args.tcp_congestion {
            c.http.tcp_congestion = Some(cc.clone());
        }
        if c.http.tcp_congestion.as_deref() == Some("") {
            bail!("[http] tcp_congestion must name an algorithm or be \"system\"");
        }
        if c.http.read_budget_bytes == 0 {
            bail!("[http] read_budget_bytes must be at least 1");
        }
        if c.http.output_budget_bytes < c.http.read_budget_bytes {
            bail!("[http] output_budget_bytes must be at least read_budget_bytes");
        }
        if c.http.intake_budget_bytes < c.http.max_append_bytes {
            bail!("[http] intake_budget_bytes must be at least max_append_bytes");
        }
        if c.http.write_stall_ms == 0 {
            bail!("[http] write_stall_ms must be at least 1");
        }
        if let Some(a) = args.quic_addr {
            c.quic.addr = a;
        }
        if let (Some(cert), Some(key)) = (&args.quic_cert, &args.quic_key) {
            c.quic.cert = Some(cert.clone());
            c.quic.key = Some(key.clone());
        }
        if c.quic.cert.is_some() != c.quic.key.is_some() {
            bail!("[quic] cert and key must be given together");
        }
        c.durability()?;
        Ok(c)
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }

    /// The parsed durability mode.
    pub fn durability(&self) -> anyhow::Result<Durability> {
        self.durability
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))
    }

    /// The authenticator of `[auth]`, or `None` when it is off.
    pub fn auth(&self) -> anyhow::Result<Option<weir_net::auth::Auth>> {
        weir_net::auth::Auth::from_config(&self.auth).context("[auth]")
    }

    /// The HTTP door's TLS configuration, or `None` for plain HTTP.
    pub fn http_tls(&self) -> anyhow::Result<Option<weir_net::http::TlsServerConfig>> {
        if !self.http.tls {
            return Ok(None);
        }
        let (cert, key) = match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(c), Some(k)) => (Some(c.as_path()), Some(k.as_path())),
            (None, None) => (self.quic.cert.as_deref(), self.quic.key.as_deref()),
            _ => bail!("[http] tls_cert and tls_key must be set together"),
        };
        let q = self.quic_config();
        let id = weir_net::quic::tls::load_or_generate(cert, key, &self.data_dir, &q.cert_names)
            .context("loading the HTTP door's TLS certificate")?;
        Ok(Some(weir_net::http::tls_server_config(id)?))
    }

    /// Warns loudly about doors reachable from other machines without auth.
    pub fn warn_if_open(&self) {
        if self.auth.enabled {
            return;
        }
        for (door, addr) in [
            ("HTTP and WebSocket", self.http.addr),
            ("QUIC", self.quic.addr),
        ] {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    door,
                    %addr,
                    "AUTHENTICATION IS OFF on a door that listens beyond loopback: anyone who \
                     reaches {addr} can read, write and delete every stream; set [auth] enabled = true"
                );
            }
        }
    }

    /// The HTTP door configuration this config describes.
    pub fn http_config(&self) -> HttpConfig {
        let ws = WsConfig {
            ping_interval: Duration::from_millis(self.websocket.ping_interval_ms),
            idle_timeout: Duration::from_millis(self.websocket.idle_timeout_ms),
            max_message_bytes: self.websocket.max_message_bytes,
            send_buffer_bytes: self.websocket.send_buffer_bytes,
            max_connections: self.websocket.max_connections,
            output_budget: OutputBudget::new(self.websocket.max_buffered_output_bytes),
            ..WsConfig::default()
        };
        HttpConfig {
            long_poll_timeout: Duration::from_millis(self.http.long_poll_timeout_ms),
            max_append_bytes: self.http.max_append_bytes,
            read_budget_bytes: self.http.read_budget_bytes,
            tcp_congestion: match self.http.tcp_congestion.as_deref() {
                None => HttpConfig::default().tcp_congestion,
                Some("system") => None,
                Some(name) => Some(name.to_string()),
            },
            max_connections: self.http.max_connections,
            output_budget_bytes: self.http.output_budget_bytes,
            intake_budget_bytes: self.http.intake_budget_bytes,
            intake_wait: Duration::from_millis(self.http.intake_wait_ms),
            write_stall_limit: Duration::from_millis(self.http.write_stall_ms),
            body_pace: BodyPace {
                grace: Duration::from_millis(self.http.body_grace_ms),
                min_rate: self.http.body_min_rate,
            },
            ws,
            ..HttpConfig::default()
        }
    }

    /// The QUIC door configuration this config describes.
    pub fn quic_config(&self) -> QuicConfig {
        let mut q = QuicConfig::new(self.quic.addr, self.data_dir.clone());
        q.cert_path = self.quic.cert.clone();
        q.max_connections = self.quic.max_connections;
        q.key_path = self.quic.key.clone();
        q.transport = TransportSettings {
            congestion: self.quic.congestion,
            stream_receive_window: self.quic.stream_receive_window,
            receive_window: self.quic.receive_window,
            send_window: self.quic.send_window,
            max_request_streams: self.quic.max_request_streams,
            segmentation_offload: self.quic.segmentation_offload,
            send_fairness: self.quic.send_fairness,
            ..q.transport
        };
        q
    }

    /// The storage engine configuration this config describes.
    pub fn engine_config(&self) -> anyhow::Result<EngineConfig> {
        Ok(EngineConfig {
            durability: self.durability()?,
            block_cache_bytes: self.storage.block_cache_mb << 20,
            commit_queue: self.storage.commit_queue,
            max_key_len: self.storage.max_key_len,
            file_cache_bytes: self.storage.file_cache_mb << 20,
            blob_min_bytes: self.storage.blob_min_bytes,
            ..EngineConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_tls_reuses_the_quic_certificate_or_takes_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        assert!(c.http_tls().unwrap().is_none());
        c.http.tls = true;
        assert!(c.http_tls().unwrap().is_some());
        // The QUIC door's self-signed certificate was generated for both.
        assert!(dir.path().join("quic-cert.pem").exists());
        c.http.tls_cert = Some(dir.path().join("quic-cert.pem"));
        assert!(c.http_tls().is_err(), "a certificate without its key");
        c.http.tls_key = Some(dir.path().join("quic-key.pem"));
        assert!(c.http_tls().unwrap().is_some());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\ndurability = \"buffered\"\n[storage]\nblock_cache_mb = 8\n\
             [websocket]\nping_interval_ms = 1500\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            data_dir: Some("/from/flag".into()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.durability().unwrap(), Durability::Buffered);
        assert_eq!(c.engine_config().unwrap().block_cache_bytes, 8 << 20);
        assert_eq!(
            c.http_config().ws.ping_interval,
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let args = ServeArgs {
            durability: Some("fsync-sometimes".into()),
            ..Default::default()
        };
        let e = Config::load(&args).unwrap_err().to_string();
        assert!(e.contains("unknown durability"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        let args = ServeArgs {
            config: Some(file),
            ..Default::default()
        };
        assert!(Config::load(&args).is_err());
    }

    #[test]
    fn quic_transport_and_read_budget_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(
            &file,
            "[http]\nread_budget_bytes = 4096\n[quic]\ncongestion = \"bbr\"\n\
             send_window = 2097152\nsegmentation_offload = false\nsend_fairness = true\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.http_config().read_budget_bytes, 4096);
        let t = c.quic_config().transport;
        assert_eq!(t.congestion, Congestion::Bbr);
        assert_eq!(t.send_window, 2 << 20);
        assert!(!t.segmentation_offload);
        assert!(t.send_fairness);
        assert_eq!(
            t.stream_receive_window,
            TransportSettings::default().stream_receive_window
        );
        std::fs::write(&file, "[quic]\ncongestion = \"vegas\"\n").unwrap();
        let e = Config::load(&args).unwrap_err();
        assert!(format!("{e:#}").contains("vegas"), "{e:#}");
        let zero = ServeArgs {
            read_budget_bytes: Some(0),
            ..Default::default()
        };
        assert!(Config::load(&zero).is_err());
    }

    #[test]
    fn file_cache_and_tcp_congestion_come_from_the_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(
            &file,
            "[storage]\nfile_cache_mb = 64\nblob_min_bytes = 0\n[http]\ntcp_congestion = \"system\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.engine_config().unwrap().file_cache_bytes, 64 << 20);
        assert_eq!(c.engine_config().unwrap().blob_min_bytes, 0);
        assert_eq!(c.http_config().tcp_congestion, None);
        let flags = ServeArgs {
            config: Some(file),
            file_cache_mb: Some(0),
            tcp_congestion: Some("reno".into()),
            ..Default::default()
        };
        let c = Config::load(&flags).unwrap();
        assert_eq!(c.engine_config().unwrap().file_cache_bytes, 0);
        assert_eq!(c.http_config().tcp_congestion.as_deref(), Some("reno"));
        let empty = ServeArgs {
            tcp_congestion: Some(String::new()),
            ..Default::default()
        };
        assert!(Config::load(&empty).is_err());
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./weir-data"));
        assert_eq!(c.durability().unwrap(), Durability::Sync);
        assert_eq!(c.http_config().tcp_congestion.as_deref(), Some("cubic"));
        assert_eq!(c.engine_config().unwrap().file_cache_bytes, 2 << 30);
    }
}
