//! The `idle` workload: memory per idle binary-protocol connection. Opens
//! `--connections` connections (each greeted with Hello), then reads the
//! server's resident memory and divides the growth by the count. QUIC and
//! WebSocket; `bench/compare/idle` measures WebSocket and HTTP from Node.

use std::time::Duration;

use serde::Serialize;

use crate::config::LiveMode;
use crate::procstat;
use crate::target::{Scheme, Target};
use crate::transport::{self, TransportOptions};

/// No records flow: the options only satisfy the transports' constructors.
const OPTIONS: TransportOptions = TransportOptions {
    record_size: 100,
    live: LiveMode::LongPoll,
};

/// What an idle run does.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// `quic://` or `ws://`.
    pub target: Target,
    /// Connections to open and hold.
    pub connections: usize,
    /// The server process, whose RSS is read.
    pub server_pid: u32,
    /// How long to let the server settle before each reading.
    pub settle: Duration,
    /// How long to keep the connections open after the reading (another
    /// run can load the server beside them meanwhile); the report comes
    /// after it.
    pub hold: Duration,
}

/// What an idle run measured.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Connections held when the second reading was taken.
    pub connections: usize,
    /// The server's RSS before the connections, KiB.
    pub rss_before_kib: u64,
    /// The server's RSS with every connection open and idle, KiB.
    pub rss_after_kib: u64,
    /// The growth per connection, bytes.
    pub bytes_per_connection: f64,
}

impl IdleReport {
    /// A one-line human summary.
    pub fn summary(&self) -> String {
        format!(
            "idle: {} connections, server RSS {} -> {} KiB: {:.1} KiB per idle connection\n",
            self.connections,
            self.rss_before_kib,
            self.rss_after_kib,
            self.bytes_per_connection / 1024.0
        )
    }
}

/// Opens the connections, measures, and closes them.
pub async fn run(config: IdleConfig) -> anyhow::Result<IdleReport> {
    anyhow::ensure!(
        matches!(config.target.scheme, Scheme::Quic | Scheme::Ws),
        "the idle workload measures quic:// or ws:// connections"
    );
    let rss = || {
        procstat::sample(config.server_pid)
            .map(|s| s.rss_kib)
            .ok_or_else(|| anyhow::anyhow!("cannot read /proc/{}", config.server_pid))
    };
    // A few connections first, so one-time costs (the first handshake's
    // allocations, thread-local caches) are not spread over the count.
    let mut warm = Vec::new();
    for _ in 0..8 {
        warm.push(transport::connect(&config.target, OPTIONS).await?);
    }
    drop(warm);
    tokio::time::sleep(config.settle).await;
    let before = rss()?;
    let mut held = Vec::with_capacity(config.connections);
    for chunk in 0..config.connections.div_ceil(64) {
        let n = (config.connections - chunk * 64).min(64);
        let opened = futures::future::try_join_all(
            (0..n).map(|_| transport::connect(&config.target, OPTIONS)),
        )
        .await?;
        held.extend(opened);
    }
    tokio::time::sleep(config.settle).await;
    let after = rss()?;
    let report = IdleReport {
        connections: held.len(),
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_per_connection: (after.saturating_sub(before) * 1024) as f64 / held.len() as f64,
    };
    tokio::time::sleep(config.hold).await;
    drop(held);
    Ok(report)
}
