//! Command-line flags. Every flag can also come from a `WEIR_*` environment
//! variable; both override the TOML config file, and flags win over the
//! environment (clap reads a flag first, then its variable).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Weir: a single-node durable streaming server on RocksDB.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the data directory and serve it until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Check a stopped server's data directory: recompute every state
    /// stream's state from its log and compare it with the stored state.
    /// Exits 0 when everything agrees, 1 on any difference, 2 on errors.
    Verify(VerifyArgs),
}

/// Flags of `weir verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory to check (the server must be stopped: the directory is locked while open).
    #[arg(long, env = "WEIR_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Flags of `weir serve`; unset ones fall back to the config file, then to defaults.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (default ./weir-data).
    #[arg(long, env = "WEIR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sync` (fsync per commit group; survives power loss) or `buffered`
    /// (no fsync; survives a process crash, not a power loss).
    #[arg(long, env = "WEIR_DURABILITY")]
    pub durability: Option<String>,
    /// Log format: `human` or `json`.
    #[arg(long, env = "WEIR_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Address of the HTTP door (Durable Streams protocol), default 127.0.0.1:4437.
    #[arg(long, env = "WEIR_HTTP_ADDR", value_parser = http_addr)]
    pub http_addr: Option<std::net::SocketAddr>,
    /// Address of the operations door (/metrics, /healthz, /readyz without
    /// credentials, for scrapers and health checks on a private interface);
    /// unset: none (the HTTP door serves them, behind its authentication).
    #[arg(long, env = "WEIR_OPS_ADDR", value_parser = ops_addr)]
    pub ops_addr: Option<std::net::SocketAddr>,
    /// How long an HTTP long-poll read waits for data, in milliseconds (default 30000).
    #[arg(long, env = "WEIR_LONG_POLL_TIMEOUT_MS")]
    pub long_poll_timeout_ms: Option<u64>,
    /// Largest HTTP append body in bytes; larger ones get 413 (default 10 MiB).
    #[arg(long, env = "WEIR_MAX_APPEND_BYTES")]
    pub max_append_bytes: Option<usize>,
    /// Byte budget of stored records gathered for one HTTP read response or
    /// SSE event (default 1 MiB; at least one record is always sent).
    #[arg(long, env = "WEIR_READ_BUDGET_BYTES")]
    pub read_budget_bytes: Option<usize>,
    /// TCP congestion control of HTTP connections (default cubic, kept only
    /// if the kernel allows it; `system` keeps the kernel's default). A name
    /// given here that the kernel refuses stops startup.
    #[arg(long, env = "WEIR_TCP_CONGESTION")]
    pub tcp_congestion: Option<String>,
    /// Disk bound in MiB of the file cache that lets HTTP reads of large
    /// records use `sendfile` (default 2048; 0 turns it off).
    #[arg(long, env = "WEIR_FILE_CACHE_MB")]
    pub file_cache_mb: Option<u64>,
    /// UDP address of the QUIC door (binary protocol, ALPN `weir/1`), default 127.0.0.1:4438.
    #[arg(long, env = "WEIR_QUIC_ADDR", value_parser = quic_addr)]
    pub quic_addr: Option<std::net::SocketAddr>,
    /// PEM certificate chain for QUIC (default: a self-signed one kept in the data directory).
    #[arg(long, env = "WEIR_QUIC_CERT", requires = "quic_key")]
    pub quic_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--quic-cert`.
    #[arg(long, env = "WEIR_QUIC_KEY", requires = "quic_cert")]
    pub quic_key: Option<std::path::PathBuf>,
}

/// A listen address: `IP:PORT`, or `HOST:PORT` resolved now (`localhost:4437`).
fn socket_addr(s: &str, source: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let expected = || {
        format!("{s:?} is not an address: expected HOST:PORT like 127.0.0.1:4437 or localhost:4437 (from {source})")
    };
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let mut addrs = s.to_socket_addrs().map_err(|_| expected())?;
    addrs.next().ok_or_else(expected)
}

fn http_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    socket_addr(s, "--http-addr or WEIR_HTTP_ADDR")
}

fn ops_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    socket_addr(s, "--ops-addr or WEIR_OPS_ADDR")
}

fn quic_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    socket_addr(s, "--quic-addr or WEIR_QUIC_ADDR")
}

#[cfg(test)]
mod addr_tests {
    #[test]
    fn addresses_take_host_names_and_say_where_they_came_from() {
        assert_eq!(super::http_addr("127.0.0.1:9").unwrap().port(), 9);
        assert!(super::http_addr("localhost:4437")
            .unwrap()
            .ip()
            .is_loopback());
        let e = super::http_addr("nonsense").unwrap_err();
        assert!(
            e.contains("WEIR_HTTP_ADDR") && e.contains("HOST:PORT"),
            "{e}"
        );
        assert!(super::quic_addr("x")
            .unwrap_err()
            .contains("WEIR_QUIC_ADDR"));
    }
}
