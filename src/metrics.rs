//! Prometheus metrics (fixed names, see docs/observability.md). One process-wide registry; the
//! admin listener renders it at `/metrics` after [`Metrics::render_live`] refreshed the
//! per-server gauges from live state.

mod live;
pub use live::ResponseCounts;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::{LazyLock, Mutex};

pub struct Metrics {
    pub registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_server_up: IntGaugeVec,
    pub retries_total: IntCounterVec,
    pub upstream_connections: IntGaugeVec,
    pub health_checks_total: IntCounterVec,
    pub client_connections: IntGauge,
    pub bytes_total: IntCounterVec,
    pub discovery_up: IntGaugeVec,
    pub discovery_errors_total: IntCounterVec,
    pub config_reloads_total: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub tunnel_agents: IntGaugeVec,
    pub tunnel_streams_total: IntCounterVec,
    pub tunnel_bytes_total: IntCounterVec,
    pub client_requests_total: IntCounterVec,
    pub grpc_responses_total: IntCounterVec,
    pub lingering_closes_total: IntCounterVec,
    pub lingering_bytes_total: IntCounterVec,
    pub table_lookups_total: IntCounterVec,
    pub table_entries: IntGaugeVec,
    pub table_store_up: IntGaugeVec,
    /// Serialises scrapes (gauges are reset and refilled).
    scrape: Mutex<()>,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c =
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g =
        IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    g
}

impl Metrics {
    // Metric definitions are constants: a failure here is a programming error caught by tests.
    fn new() -> Self {
        let r = Registry::new();
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "swarmgate_request_duration_seconds",
                "Time from request head to response head, by upstream.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
            &["upstream"],
        )
        .unwrap_or_else(|e| panic!("histogram: {e}"));
        r.register(Box::new(request_duration.clone()))
            .unwrap_or_else(|e| panic!("histogram: {e}"));
        let client_connections = IntGauge::new(
            "swarmgate_client_connections",
            "Client connections currently open.",
        )
        .unwrap_or_else(|e| panic!("gauge: {e}"));
        r.register(Box::new(client_connections.clone()))
            .unwrap_or_else(|e| panic!("gauge: {e}"));
        let m = Metrics {
            requests_total: counter(
                &r,
                "swarmgate_requests_total",
                "Requests answered, by upstream, server and status code.",
                &["upstream", "server", "code"],
            ),
            request_duration,
            upstream_server_up: gauge(
                &r,
                "swarmgate_upstream_server_up",
                "1 when the server is selectable, else 0.",
                &["upstream", "server"],
            ),
            retries_total: counter(
                &r,
                "swarmgate_upstream_retries_total",
                "Requests retried on another server or a fresh connection.",
                &["upstream"],
            ),
            upstream_connections: gauge(
                &r,
                "swarmgate_upstream_connections",
                "Upstream connections by state (active or idle).",
                &["upstream", "server", "state"],
            ),
            health_checks_total: counter(
                &r,
                "swarmgate_health_checks_total",
                "Active health probes by result.",
                &["upstream", "server", "result"],
            ),
            client_connections,
            bytes_total: counter(
                &r,
                "swarmgate_bytes_total",
                "Body bytes relayed, by direction (in = from clients, out = to clients).",
                &["direction"],
            ),
            discovery_up: gauge(
                &r,
                "swarmgate_discovery_up",
                "1 when the upstream's discovery source answers, else 0.",
                &["upstream"],
            ),
            discovery_errors_total: counter(
                &r,
                "swarmgate_discovery_errors_total",
                "Failed discovery attempts (the last known set is kept), by source (dns).",
                &["source"],
            ),
            config_reloads_total: counter(
                &r,
                "swarmgate_config_reloads_total",
                "Config reloads by result.",
                &["result"],
            ),
            build_info: gauge(
                &r,
                "swarmgate_build_info",
                "Build information.",
                &["version"],
            ),
            tunnel_agents: gauge(
                &r,
                "swarmgate_tunnel_agents",
                "Connections of tunnel agents to this hub, by agent name.",
                &["agent"],
            ),
            tunnel_streams_total: counter(
                &r,
                "swarmgate_tunnel_streams_total",
                "Streams the hub asked agents to open, by result (opened, refused, failed, no_agent).",
                &["agent", "result"],
            ),
            tunnel_bytes_total: counter(
                &r,
                "swarmgate_tunnel_bytes_total",
                "Bytes through tunnel streams, by direction (to_agent, from_agent).",
                &["agent", "direction"],
            ),
            lingering_closes_total: counter(
                &r,
                "swarmgate_lingering_closes_total",
                "Client connections closed lingering (lingering_close), by how the lingering ended (client_closed, timeout, limit).",
                &["result"],
            ),
            lingering_bytes_total: counter(
                &r,
                "swarmgate_lingering_bytes_total",
                "Bytes read and discarded from clients while lingering.",
                &[],
            ),
            client_requests_total: counter(
                &r,
                "swarmgate_client_requests_total",
                "Client requests by protocol (http/1.1 or h2).",
                &["protocol"],
            ),
            grpc_responses_total: counter(
                &r,
                "swarmgate_grpc_responses_total",
                "gRPC calls answered, by upstream and grpc-status (swarmgate's own or the server's).",
                &["upstream", "grpc_status"],
            ),
            table_lookups_total: counter(
                &r,
                "swarmgate_table_lookups_total",
                "Route table lookups by table and result (hit = from memory or cache, miss = asked the store, unknown = no such key, error = store unavailable).",
                &["table", "result"],
            ),
            table_entries: gauge(
                &r,
                "swarmgate_table_entries",
                "Route table entries (embedded: all; redis: cached).",
                &["table"],
            ),
            table_store_up: gauge(
                &r,
                "swarmgate_table_store_up",
                "1 when the route table's store answers (redis: the watcher is connected), else 0.",
                &["table"],
            ),
            registry: r,
            scrape: Mutex::new(()),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Handles of one server's `swarmgate_requests_total` series by status code, so that counting a
/// response costs a shared read lock and a scan of a few entries instead of hashing three label
/// values. A server belongs to one upstream; its handles die with it.
#[derive(Debug, Default)]
pub struct CodeCounters(std::sync::RwLock<Vec<(u16, prometheus::IntCounter)>>);

impl CodeCounters {
    /// At most this many codes are kept per server (the rest take the hashed path).
    const KEEP: usize = 16;

    pub fn inc(&self, upstream: &str, server: &str, status: u16, code: &str) {
        {
            let codes = self.0.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, c)) = codes.iter().find(|(s, _)| *s == status) {
                c.inc();
                return;
            }
        }
        let c = metrics()
            .requests_total
            .with_label_values(&[upstream, server, code]);
        c.inc();
        let mut codes = self.0.write().unwrap_or_else(|e| e.into_inner());
        if codes.len() < Self::KEEP && !codes.iter().any(|(s, _)| *s == status) {
            codes.push((status, c));
        }
    }
}

/// Handles of one upstream's series, made on first use.
#[derive(Debug, Default)]
pub struct UpstreamSeries {
    duration: std::sync::OnceLock<prometheus::Histogram>,
    retries: std::sync::OnceLock<prometheus::IntCounter>,
}

impl UpstreamSeries {
    pub fn duration(&self, upstream: &str) -> &prometheus::Histogram {
        self.duration
            .get_or_init(|| metrics().request_duration.with_label_values(&[upstream]))
    }

    pub fn retries(&self, upstream: &str) -> &prometheus::IntCounter {
        self.retries
            .get_or_init(|| metrics().retries_total.with_label_values(&[upstream]))
    }
}

/// `swarmgate_client_requests_total{protocol}` for `http/1.1` and `h2`.
pub fn client_requests(protocol: &str) -> &'static prometheus::IntCounter {
    static H1: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
        metrics()
            .client_requests_total
            .with_label_values(&["http/1.1"])
    });
    static H2: LazyLock<prometheus::IntCounter> =
        LazyLock::new(|| metrics().client_requests_total.with_label_values(&["h2"]));
    if protocol == "h2" {
        &H2
    } else {
        &H1
    }
}

/// `swarmgate_bytes_total{direction="out"}`.
pub fn bytes_out() -> &'static prometheus::IntCounter {
    static OUT: LazyLock<prometheus::IntCounter> =
        LazyLock::new(|| metrics().bytes_total.with_label_values(&["out"]));
    &OUT
}
