//! `GET /metrics`: Prometheus text exposition through `prometheus-client`.
//! Engine figures are read at scrape time by a collector (the engine keeps
//! plain atomics, see `weir_storage::EngineStats`); HTTP requests are
//! counted per route and status class. Labels are bounded: no per-stream
//! label anywhere.

use std::sync::Arc;

use hyper::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use weir_storage::{Engine, HistogramSnapshot};

use super::body::full;
use super::reply::Reply;
use crate::door_metrics::{Door, DoorCounters, DoorMetrics, SubscriptionKind};

/// Path of the exposition.
pub const PATH: &str = "/metrics";

/// Labels of the HTTP request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The operation: create, append, read, head, delete, state, profile, other.
    pub route: &'static str,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: &'static str,
}

/// The HTTP door's metrics, shared by every request.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
}

/// The HTTP output and intake budgets' gauges, read at scrape time: for
/// each budget, the bytes held and (`_limit`) its size.
#[derive(Debug)]
struct BudgetCollector {
    output: Arc<super::output::OutputBudget>,
    intake: Arc<super::intake::IntakeBudget>,
}

impl Collector for BudgetCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let budgets = [
            (
                "http_output",
                "bytes of read-response bodies held across HTTP connections",
                "the HTTP output budget",
                self.output.held(),
                self.output.limit(),
            ),
            (
                "http_intake",
                "bytes of request bodies and their split records held until their appends commit",
                "the HTTP intake budget",
                self.intake.held(),
                self.intake.limit(),
            ),
        ];
        for (name, held_help, limit_help, held, limit) in budgets {
            let limit_name = format!("{name}_limit");
            for (name, help, v) in [(name, held_help, held), (&*limit_name, limit_help, limit)] {
                let m = ConstGauge::new(v as i64);
                m.encode(enc.encode_descriptor(
                    name,
                    help,
                    Some(&Unit::Bytes),
                    m.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// A registry with the engine's collector, the HTTP counters and the
    /// output and intake budgets' gauges.
    pub fn new(
        engine: Engine,
        output: Arc<super::output::OutputBudget>,
        intake: Arc<super::intake::IntakeBudget>,
    ) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("weir");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status class",
            requests.clone(),
        );
        registry.register_collector(Box::new(EngineCollector { engine }));
        registry.register_collector(Box::new(super::process::ProcessCollector));
        registry.register_collector(Box::new(BudgetCollector { output, intake }));
        Arc::new(Metrics { registry, requests })
    }

    /// Counts one answered request.
    pub fn count(&self, route: &'static str, status: StatusCode) {
        let status = match status.as_u16() {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// The exposition reply: OpenMetrics, or the Prometheus 0.0.4 text
    /// format when `accept` asks for `text/plain` only.
    pub fn reply(&self, accept: Option<&str>) -> Reply {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
        let (content_type, text) = if super::text004::wanted(accept) {
            (
                "text/plain; version=0.0.4; charset=utf-8",
                super::text004::from_openmetrics(&text),
            )
        } else {
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            )
        };
        Reply::new(StatusCode::OK)
            .header("content-type", content_type)
            .header("cache-control", "no-store")
            .body(full(text))
    }
}

struct EngineCollector {
    engine: Engine,
}

impl std::fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineCollector")
    }
}

impl Collector for EngineCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.engine.stats();
        let counters: [(&str, &str, u64); 7] = [
            ("appends", "append requests committed", s.appends),
            ("records_appended", "records committed", s.records),
            ("appended_bytes", "stored record bytes committed", s.bytes),
            ("commit_groups", "commit groups written", s.groups),
            (
                "commit_group_failures",
                "commit groups whose write failed",
                s.failed_groups,
            ),
            (
                "records_delivered",
                "records handed to followers (subscriptions, live reads) on every door",
                s.records_delivered,
            ),
            (
                "follower_fallbacks",
                "followers that overflowed their live queue and read on from storage",
                s.follower_fallbacks,
            ),
        ];
        for (name, help, v) in counters {
            let m = ConstCounter::new(v);
            m.encode(enc.encode_descriptor(name, help, None, m.metric_type())?)?;
        }
        let gauges: [(&str, &str, Option<Unit>, u64); 11] = [
            (
                "commit_queue_depth",
                "requests waiting for the commit thread",
                None,
                s.commit_queue,
            ),
            ("streams", "open streams", None, s.streams),
            (
                "storage_write_faulted",
                "1 while commit writes fail (a full disk or another storage error); clears by itself",
                None,
                s.write_faulted,
            ),
            (
                "state_streams",
                "streams that keep key-value state",
                None,
                s.state_streams,
            ),
            (
                "rocksdb_memtable",
                "bytes of all RocksDB memtables",
                Some(Unit::Bytes),
                s.memtable_bytes,
            ),
            (
                "rocksdb_sst",
                "bytes of all RocksDB SST files",
                Some(Unit::Bytes),
                s.sst_bytes,
            ),
            (
                "rocksdb_pending_compaction",
                "bytes RocksDB estimates compaction still has to rewrite",
                Some(Unit::Bytes),
                s.pending_compaction_bytes,
            ),
            (
                "rocksdb_write_stalled",
                "1 while RocksDB stops or delays writes",
                None,
                s.write_stalled,
            ),
            (
                "rocksdb_block_cache",
                "bytes held by RocksDB's block cache",
                Some(Unit::Bytes),
                s.block_cache_bytes,
            ),
            (
                "followers_live",
                "followers caught up and registered for the next commit",
                None,
                s.live_followers,
            ),
            (
                "state_subscriptions",
                "state subscriptions open (snapshot then changes), every door",
                None,
                s.state_subscriptions,
            ),
        ];
        for (name, help, unit, v) in gauges {
            let m = ConstGauge::new(v as i64);
            m.encode(enc.encode_descriptor(name, help, unit.as_ref(), m.metric_type())?)?;
        }
        doors(&mut enc, &DoorMetrics::of(&self.engine))?;
        histogram(
            &mut enc,
            "commit_group_size",
            "append requests per commit group",
            None,
            &s.group_size,
        )?;
        histogram(
            &mut enc,
            "commit_write",
            "duration of each commit group's RocksDB write, fsync included in sync mode",
            Some(&Unit::Seconds),
            &s.write_seconds,
        )
    }
}

/// How one per-door figure is read.
type DoorFigure = fn(&DoorCounters) -> u64;

/// The binary doors' figures, labelled by door (and request or error kind,
/// from fixed tables).
fn doors(enc: &mut DescriptorEncoder, m: &DoorMetrics) -> Result<(), std::fmt::Error> {
    let per_door: [(&str, &str, MetricType, DoorFigure); 5] = [
        (
            "binary_connections",
            "binary-protocol connections open",
            MetricType::Gauge,
            |c| c.connections_open(),
        ),
        (
            "binary_connections_accepted",
            "binary-protocol connections accepted",
            MetricType::Counter,
            |c| c.connections_total(),
        ),
        (
            "binary_subscriptions",
            "record subscriptions open",
            MetricType::Gauge,
            |c| c.subscriptions_open(SubscriptionKind::Records),
        ),
        (
            "binary_state_subscriptions",
            "state subscriptions open",
            MetricType::Gauge,
            |c| c.subscriptions_open(SubscriptionKind::State),
        ),
        (
            "binary_send_buffer_bytes",
            "encoded frames waiting for the transport, bytes",
            MetricType::Gauge,
            |c| c.send_buffer_bytes(),
        ),
    ];
    for (name, help, kind, get) in per_door {
        let mut family = enc.encode_descriptor(name, help, None, kind)?;
        for door in Door::ALL {
            let labels = [("door", door.label())];
            let v = get(m.door(door));
            if matches!(kind, MetricType::Counter) {
                ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
            } else {
                ConstGauge::new(v as i64).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    let mut family = enc.encode_descriptor(
        "binary_requests",
        "binary-protocol request frames received, by door and request",
        None,
        MetricType::Counter,
    )?;
    for door in Door::ALL {
        for (request, n) in m.door(door).requests() {
            let labels = [("door", door.label()), ("request", request)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = enc.encode_descriptor(
        "binary_errors",
        "binary-protocol Error frames sent, by door and error code (PROTOCOL.md)",
        None,
        MetricType::Counter,
    )?;
    for door in Door::ALL {
        for (code, n) in m.door(door).errors() {
            let code = code.to_string();
            let labels = [("door", door.label()), ("code", code.as_str())];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    h: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    // The encoder wants per-bucket counts and adds them up itself.
    let mut prev = 0;
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|&(b, c)| {
            let n = c - prev;
            prev = c;
            // The encoder spells the last bucket `+Inf` when its bound is MAX.
            (if b.is_infinite() { f64::MAX } else { b }, n)
        })
        .collect();
    enc.encode_descriptor(name, help, unit, MetricType::Histogram)?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum, h.count, &buckets, None)
}
