//! Command-line flags and their translation into a [`LoadConfig`]. With no
//! workload flags a run is the default 10-second mixed benchmark against a
//! local server.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::config::{CheckBy, LiveMode, LoadConfig, StartFrom};
use crate::state::StateModeArg;
use crate::target::{Scheme, Target};

/// `--from` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FromArg {
    /// Only records appended after the subscriber starts.
    Now,
    /// Every record from the beginning of the stream.
    Start,
}

/// `--live` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LiveArg {
    /// `live=long-poll`.
    LongPoll,
    /// `live=sse`.
    Sse,
}

/// `--check-by` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CheckArg {
    /// Record offsets (Weir numbers records).
    Offset,
    /// Producer id and sequence in the payload (servers with opaque offsets).
    Identity,
}

/// Parses `10`, `10s`, `500ms`, `2m` into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use ms, s or m)")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range (0 to 24h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// weir-load: throughput, latency and loss of a Durable Streams or Weir server.
///
/// Creates its own streams under `weir-load/<run-id>/` (deleted at the end),
/// runs producers and live subscribers on them, and prints a summary. With
/// no workload flags it runs a 10-second mixed benchmark (4 streams, 4
/// producers, 1 subscriber per stream, 256-byte records in batches of 10).
#[derive(Debug, Parser)]
#[command(name = "weir-load", version)]
pub struct Args {
    /// Server URL: http://HOST:PORT (Durable Streams), quic://HOST:PORT or ws://HOST:PORT/v1/ws.
    #[arg(default_value = "http://127.0.0.1:4437")]
    pub target: String,
    /// Client connections (producers and subscribers are spread over them).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,
    /// Streams to create.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub streams: u32,
    /// Producer tasks (0: subscribers only), spread round-robin over the streams.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub producers: u32,
    /// Live subscribers per stream (0: producers only).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub subscribers: u32,
    /// Bytes per record (at least 16: send time and producer id/seq).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(16..=4_000_000))]
    pub record_size: u32,
    /// Records per append request.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Target append rate in records/s over all producers (default: as fast as acks allow).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Idempotent producers (HTTP Producer-Id/Epoch/Seq headers); failed appends are retried.
    #[arg(long)]
    pub idempotent: bool,
    /// Appends each producer keeps in flight (more than 1 needs non-idempotent producers).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub inflight: u32,
    /// Where subscribers start reading.
    #[arg(long, value_enum, default_value_t = FromArg::Now)]
    pub from: FromArg,
    /// How HTTP subscribers follow a stream.
    #[arg(long, value_enum, default_value_t = LiveArg::LongPoll)]
    pub live: LiveArg,
    /// How deliveries are matched to acks: offset (Weir) or identity (servers with opaque offsets).
    #[arg(long, value_enum, default_value_t = CheckArg::Offset)]
    pub check_by: CheckArg,
    /// Measured time after warm-up (10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up excluded from the figures.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Stop after appending this many records in total (the duration still bounds the run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub records: Option<u64>,
    /// Catch-up mode: fill each stream with N records first, then have every
    /// subscriber read it from the start, pass after pass, for the duration
    /// (no live producers; reports MB/s and pass times).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub catch_up_records: Option<u64>,
    /// Time subscribers get to catch up after producers stop, before missing records count as lost.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Server process id: report its CPU and RSS (Linux /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the full report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the latency percentile plot (SVG) to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// No progress lines even on a terminal.
    #[arg(long, short)]
    pub quiet: bool,
    /// Keep the run's streams instead of deleting them at the end.
    #[arg(long)]
    pub keep_streams: bool,
    /// QUIC: SHA-256 fingerprint (hex) of the server certificate to pin.
    #[arg(long, value_name = "HEX")]
    pub quic_fingerprint: Option<String>,
    /// QUIC: the server's certificate PEM (e.g. DATA_DIR/quic-cert.pem) to pin.
    #[arg(long, value_name = "FILE", conflicts_with = "quic_fingerprint")]
    pub quic_cert: Option<PathBuf>,
    /// QUIC: the client's congestion controller.
    #[arg(long, value_enum, default_value_t = CongestionArg::Cubic)]
    pub quic_congestion: CongestionArg,
    /// QUIC: bytes the server may send on one subscription stream ahead of this client.
    #[arg(long, value_name = "BYTES")]
    pub quic_stream_window: Option<u32>,
    /// QUIC: bytes the server may send on the connection ahead of this client.
    #[arg(long, value_name = "BYTES")]
    pub quic_window: Option<u32>,
    /// QUIC: no UDP segmentation offload on the client side.
    #[arg(long)]
    pub quic_no_gso: bool,
    /// What to run: producers and subscribers on streams, touch waiters, or state subscribers.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Streams)]
    pub workload: WorkloadArg,
    /// Touch: concurrent waiters.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub waiters: u32,
    /// Touch: tenants (fine watch keys) per wait.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub keys_per_wait: u32,
    /// Touch: distinct tenants (template argument tuples).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub tuples: u32,
    /// Touch and state: changes per second.
    #[arg(long, default_value_t = 1000.0)]
    pub change_rate: f64,
    /// Idle: keep the connections open this long after the reading, then report (e.g. 60s).
    #[arg(long, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// Touch: changes per append (the appends come at change-rate / this per second).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub changes_per_append: u32,
    /// Touch: active templates on the stream (1 is the one waited on).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2048))]
    pub templates: u32,
    /// Touch: the server-side timeout of each wait, ms.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(0..=120_000))]
    pub wait_timeout_ms: u64,
    /// Touch: HOST:PORT of the HTTP door, for setup and changes (default: the target's, for http://).
    #[arg(long, value_name = "HOST:PORT")]
    pub setup_http: Option<String>,
    /// State: keys in the state stream.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: u32,
    /// State: state subscribers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub state_subscribers: u32,
    /// State: groups of keys; subscriber k filters group k % groups (0: unfiltered subscribers).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=250))]
    pub groups: u8,
    /// State: probability that a change moves its key to another group.
    #[arg(long, default_value_t = 0.25)]
    pub move_prob: f64,
    /// State: bytes of each JSON value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(40..=1_000_000))]
    pub value_size: u32,
    /// State: the stream's state mode.
    #[arg(long, value_enum, default_value_t = StateModeArg::StateProtocol)]
    pub state_mode: StateModeArg,
    /// State: subscribe without a snapshot (changes only; the check then
    /// expects only the rows changed during the run).
    #[arg(long)]
    pub no_snapshot: bool,
    /// State: subscribers sharing one client connection (the server allows 256).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub subscribers_per_connection: u32,
}

/// `--workload` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadArg {
    /// Producers and subscribers on streams (the default).
    Streams,
    /// Live-query waiters on a touch-enabled stream while changes flow.
    Touch,
    /// State subscribers (snapshots, filters) on a state stream while keys change.
    State,
    /// `--connections` idle binary connections: the server's RSS per connection (needs --server-pid).
    Idle,
}

/// `--quic-congestion` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CongestionArg {
    /// CUBIC (quinn's default).
    Cubic,
    /// NewReno.
    Newreno,
    /// BBR (experimental in quinn).
    Bbr,
}

/// Where `weir serve` writes its self-signed QUIC certificate by default.
const DEFAULT_QUIC_CERT: &str = "weir-data/quic-cert.pem";

/// Longest run when only a record count bounds it.
const RECORDS_ONLY_CAP: Duration = Duration::from_secs(600);

impl Args {
    /// The touch run these flags describe (`--workload touch`).
    pub fn to_touch_config(&self) -> anyhow::Result<crate::touch::TouchConfig> {
        let mut target = Target::parse(&self.target)?;
        let http = match (&self.setup_http, target.scheme) {
            (Some(h), _) => h.clone(),
            (None, Scheme::Http) => target.authority.clone(),
            (None, _) => anyhow::bail!(
                "--workload touch over {} needs --setup-http HOST:PORT (profiles and changes go over HTTP)",
                self.target
            ),
        };
        if target.scheme == Scheme::Quic {
            target.quic_fingerprint = self.quic_pin(&target)?;
        }
        if !(self.change_rate > 0.0 && self.change_rate <= 1_000_000.0) {
            anyhow::bail!("--change-rate must be in (0, 1000000]");
        }
        if self.keys_per_wait > self.tuples {
            anyhow::bail!("--keys-per-wait cannot exceed --tuples");
        }
        Ok(crate::touch::TouchConfig {
            target,
            http,
            waiters: self.waiters as usize,
            keys_per_wait: self.keys_per_wait as usize,
            tuples: self.tuples as usize,
            change_rate: self.change_rate,
            changes_per_append: self.changes_per_append as usize,
            templates: self.templates as usize,
            wait_timeout_ms: self.wait_timeout_ms,
            duration: self.duration.unwrap_or(Duration::from_secs(10)),
            warmup: self.warmup,
            server_pid: self.server_pid,
        })
    }

    /// The state run these flags describe (`--workload state`).
    pub fn to_state_config(&self) -> anyhow::Result<crate::state::StateConfig> {
        let target = self.binary_target()?;
        if target.scheme == Scheme::Http {
            anyhow::bail!(
                "--workload state runs over quic:// or ws:// (the state requests are binary-protocol version 2)"
            );
        }
        let mut c = crate::state::StateConfig::new(target);
        c.keys = self.keys;
        c.subscribers = self.state_subscribers as usize;
        c.groups = self.groups;
        c.move_prob = self.move_prob;
        c.value_size = self.value_size as usize;
        c.mode = self.state_mode;
        c.snapshot = !self.no_snapshot;
        c.change_rate = self.change_rate;
        c.subscribers_per_connection = self.subscribers_per_connection as usize;
        c.duration = self.duration.unwrap_or(Duration::from_secs(10));
        c.warmup = self.warmup;
        c.drain = self.drain;
        c.server_pid = self.server_pid;
        c.cleanup = !self.keep_streams;
        Ok(c)
    }

    /// The idle run these flags describe (`--workload idle`).
    pub fn to_idle_config(&self) -> anyhow::Result<crate::idle::IdleConfig> {
        let server_pid = self
            .server_pid
            .ok_or_else(|| anyhow::anyhow!("--workload idle needs --server-pid"))?;
        Ok(crate::idle::IdleConfig {
            target: self.binary_target()?,
            connections: self.connections as usize,
            server_pid,
            settle: Duration::from_secs(2),
            hold: self.hold.unwrap_or(Duration::ZERO),
        })
    }

    /// The target with the QUIC flags applied.
    /// The certificate fingerprint to pin for a QUIC target: the flag's,
    /// the one of `--quic-cert`, or, for a loopback target, the one of
    /// `./weir-data/quic-cert.pem` (where `weir serve` writes it by default)
    /// when that file exists.
    fn quic_pin(&self, target: &Target) -> anyhow::Result<Option<String>> {
        Ok(match (&self.quic_fingerprint, &self.quic_cert) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(p)) => Some(crate::transport::fingerprint_of_pem(p)?),
            (None, None) => {
                let local = std::path::Path::new(DEFAULT_QUIC_CERT);
                let loopback = target.socket_addr().is_ok_and(|a| a.ip().is_loopback());
                if loopback && local.exists() {
                    Some(crate::transport::fingerprint_of_pem(local)?)
                } else {
                    None
                }
            }
        })
    }

    fn binary_target(&self) -> anyhow::Result<Target> {
        let mut target = Target::parse(&self.target)?;
        if target.scheme == Scheme::Quic {
            target.quic_fingerprint = self.quic_pin(&target)?;
            let t = &mut target.quic_transport;
            t.congestion = match self.quic_congestion {
                CongestionArg::Cubic => weir_net::quic::Congestion::Cubic,
                CongestionArg::Newreno => weir_net::quic::Congestion::NewReno,
                CongestionArg::Bbr => weir_net::quic::Congestion::Bbr,
            };
            if let Some(w) = self.quic_stream_window {
                t.stream_receive_window = w;
            }
            if let Some(w) = self.quic_window {
                t.receive_window = w;
            }
            t.segmentation_offload = !self.quic_no_gso;
        }
        Ok(target)
    }

    /// The run these flags describe.
    pub fn to_config(&self, terminal: bool) -> anyhow::Result<LoadConfig> {
        let target = self.binary_target()?;
        let mut c = LoadConfig::new(target);
        c.connections = self.connections as usize;
        c.streams = self.streams as usize;
        c.producers = self.producers as usize;
        c.subscribers_per_stream = self.subscribers as usize;
        c.record_size = self.record_size as usize;
        c.batch = self.batch as usize;
        c.rate = self.rate;
        c.idempotent = self.idempotent;
        if self.idempotent && self.inflight > 1 {
            anyhow::bail!(
                "--inflight {} needs non-idempotent producers: an idempotent producer's \
                 sequence numbers must arrive in order, one append at a time",
                self.inflight
            );
        }
        c.inflight = self.inflight as usize;
        c.catch_up_records = self.catch_up_records;
        c.from = match self.from {
            FromArg::Now => StartFrom::Now,
            FromArg::Start => StartFrom::Start,
        };
        c.live = match self.live {
            LiveArg::LongPoll => LiveMode::LongPoll,
            LiveArg::Sse => LiveMode::Sse,
        };
        c.check_by = match self.check_by {
            CheckArg::Offset => CheckBy::Offset,
            CheckArg::Identity => CheckBy::Identity,
        };
        c.warmup = self.warmup;
        c.max_records = self.records;
        c.duration = match (self.duration, self.records) {
            (Some(d), _) => d,
            // A record count alone: the count ends the run, a cap keeps it bounded.
            (None, Some(_)) => RECORDS_ONLY_CAP,
            (None, None) => c.duration,
        };
        c.drain = self.drain;
        c.server_pid = self.server_pid;
        c.progress = terminal && !self.quiet;
        c.cleanup = !self.keep_streams;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn defaults_are_the_mixed_benchmark() {
        let a = Args::try_parse_from(["weir-load"]).unwrap();
        let c = a.to_config(false).unwrap();
        assert_eq!(
            (c.streams, c.producers, c.subscribers_per_stream),
            (4, 4, 1)
        );
        assert_eq!(c.duration, Duration::from_secs(10));
        assert!(Args::try_parse_from(["weir-load", "--record-size", "8"]).is_err());
    }

    #[test]
    fn state_flags() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["weir-load", "ws://127.0.0.1:1/v1/ws", "--workload", "state"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv).unwrap().to_state_config()
        };
        let c = parse(&[]).unwrap();
        assert_eq!((c.keys, c.subscribers, c.groups), (10_000, 100, 20));
        assert!(c.snapshot && c.move_prob == 0.25 && c.mode == StateModeArg::StateProtocol);
        let c = parse(&["--groups", "0", "--state-mode", "keyed", "--no-snapshot"]).unwrap();
        assert!(c.groups == 0 && !c.snapshot && c.mode == StateModeArg::Keyed);
        let http = Args::try_parse_from(["weir-load", "--workload", "state"]).unwrap();
        assert!(http.to_state_config().is_err());
    }
}
