//! Configuration: `raw` is the YAML as written, `validate` turns it into the typed [`Config`]
//! below (defaults applied, cross-references checked). Every default is stated on its field and
//! in README.md's configuration reference.

pub mod agent;
mod error;
pub mod gateway;
pub mod raw;
pub mod table;
pub mod units;
mod validate;

pub use error::ConfigError;
pub use gateway::{Cidr, GatewayConfig, PortRange};
pub use table::{RedisUrl, TableConfig, TableStore, TableStoreKind};
pub use validate::{parse_config, parse_server_address, strip_port, DEFAULT_DNS_INTERVAL};

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The validated configuration of one swarmgate process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Proxy listeners. Default `0.0.0.0:8080`.
    pub listen: Vec<SocketAddr>,
    /// Tokio worker threads; 0 (default) = one per core.
    pub workers: usize,
    /// Admin/metrics listener. Default `127.0.0.1:9901`; `admin: {listen: ""}` disables it.
    pub admin_listen: Option<SocketAddr>,
    /// `admin.token_file`: the Bearer token every mutating admin call (and the table API)
    /// needs. Default none; required when the admin listener is not on loopback.
    pub admin_token_file: Option<PathBuf>,
    /// `state_dir`: where the embedded route tables live (`tables.redb`). Default `./state`.
    pub state_dir: PathBuf,
    /// TLS on the proxy listeners (ALPN h2 and http/1.1). Default none (plain HTTP; HTTP/2
    /// with prior knowledge is detected by its preface).
    pub tls: Option<ListenerTls>,
    /// `http2:` HTTP/2 settings of client connections (and of `h2`/`h2c` upstream connections,
    /// copied into each [`UpstreamConfig`]).
    pub http2: Http2Settings,
    /// Client-side limits and timeouts.
    pub client: ClientLimits,
    /// Grace period for in-flight requests on SIGTERM/SIGINT. Default 30 s.
    pub shutdown_timeout: Duration,
    /// One access-log line per request. Default true.
    pub access_log: bool,
    /// Upstream groups, by name.
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, first match wins. Default: everything to the only upstream.
    pub routes: Vec<RouteConfig>,
    /// `tunnel:`: the hub listener agents dial into. Default none. Applies at start (a reload
    /// does not rebind it or re-read its token files).
    pub tunnel: Option<TunnelConfig>,
    /// `resolver`: DNS server (`ip:port`, UDP) used for hostname `servers[].address` and as the
    /// default of `discovery.dns.resolver`. Default none: the system resolver (`/etc/hosts`,
    /// `/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
}

/// The hub side of the reverse tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// `tunnel.listen`: address agents connect to (TLS required). No default.
    pub listen: SocketAddr,
    /// `tunnel.tls`: the hub's certificate and key. Required.
    pub tls: ListenerTls,
    /// `tunnel.agents`: agent name → its token file (one token per name). Default none.
    pub agents: BTreeMap<String, PathBuf>,
    /// `tunnel.keepalive_timeout`: a silent agent connection is dropped after this long (HTTP/2
    /// PINGs every half of it). Default 10 s.
    pub keepalive_timeout: Duration,
}

/// Limits applied to client connections (nginx `client_*`, `keepalive_*`).
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// `client_max_body_size`, bytes; 0 = unlimited. Default 2 MiB (Kuscia's value).
    pub max_body_size: u64,
    /// `client_header_timeout`: time from the first byte of a request head to its end. Default 60 s.
    pub header_timeout: Duration,
    /// `client_body_timeout`: longest wait between two reads of a request body. Default 60 s.
    pub body_timeout: Duration,
    /// `keepalive_timeout`: idle time allowed between requests. Default 20 min (Kuscia's value).
    pub keepalive_timeout: Duration,
    /// `keepalive_requests`: requests served on one connection. Default 1000; 0 = unlimited.
    pub keepalive_requests: u64,
    /// `large_client_header_buffers`: largest request head, bytes (431 above). Default 64 KiB.
    pub max_header_size: usize,
    /// `client_body_buffer_size`: largest single read from a client connection while a request
    /// body streams. Default 256 KiB. Reads start at 16 KiB and double while they fill; the
    /// buffer is freed when the request ends.
    pub read_buffer_size: usize,
    /// `max_headers`: most header fields in a request (431 above). Default 100.
    pub max_headers: usize,
    /// `max_uri_length`: longest request target, bytes (414 above). Default 8 KiB.
    pub max_uri_length: usize,
    /// `max_connections`: open client connections at once (new ones wait). Default 0 = unlimited.
    pub max_connections: usize,
    /// nginx `lingering_close`, `lingering_time`, `lingering_timeout`.
    pub lingering: Lingering,
}

/// nginx `lingering_close`: when swarmgate closes a client connection that may still be
/// sending (a 413 before the body was read, a 400 on a bad head), it shuts down its write side
/// and reads and discards for a while, so that the kernel does not answer the client's data with
/// a reset that destroys the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lingering {
    /// `lingering_close`. Default `on`.
    pub mode: LingeringMode,
    /// `lingering_time`: longest lingering in total. Default 30 s.
    pub time: Duration,
    /// `lingering_timeout`: longest wait for more data while lingering. Default 5 s.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LingeringMode {
    /// Never linger: close at once (the client may see a reset).
    Off,
    /// Linger when the client may still be sending: a response was sent before its request body
    /// was read, the request head was rejected, or unread bytes are waiting (default).
    On,
    /// Linger on every close.
    Always,
}

/// HTTP/2 connection settings (`http2:`), applied on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    /// `max_concurrent_streams`: streams a peer may open on one connection; upstream, streams
    /// swarmgate opens on one connection before it opens another. Default 128.
    pub max_concurrent_streams: u32,
    /// `initial_stream_window`: flow-control window of each stream, bytes; the most swarmgate
    /// buffers per stream. Default 1 MiB (the connection window is 4 × this).
    pub initial_stream_window: u32,
    /// `keepalive_interval`: PING sent on a connection idle this long. Default 30 s.
    pub keepalive_interval: Duration,
    /// `keepalive_timeout`: the connection closes when a PING is not answered within this.
    /// Default 10 s.
    pub keepalive_timeout: Duration,
    /// Largest decoded header list a peer may send (from `large_client_header_buffers` on the
    /// client side, `max_response_header_size` upstream). Not a key of its own.
    pub max_header_list_size: u32,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            max_concurrent_streams: 128,
            initial_stream_window: 1 << 20,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_header_list_size: 64 << 10,
        }
    }
}

/// How swarmgate speaks HTTP to an upstream's servers (`protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 (default), over TLS when `scheme: https`.
    #[default]
    Http1,
    /// HTTP/2 over TLS (ALPN h2); needs `scheme: https`.
    H2,
    /// HTTP/2 with prior knowledge over plain TCP; needs `scheme: http`.
    H2c,
    /// On TLS, whatever ALPN picks (h2 or http/1.1); on plain TCP, HTTP/1.1.
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What to do when no server of an upstream is selectable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenAllDown {
    /// Answer 502 at once (default; nginx "no live upstreams").
    Fail,
    /// Spread traffic over every server anyway (Envoy's panic mode).
    TryAll,
}

/// TLS towards the servers of an `https` upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// `tls_verify`: verify the server certificate. Default true.
    pub verify: bool,
    /// `tls_ca`: PEM bundle of trusted roots; default the system roots.
    pub ca: Option<PathBuf>,
    /// `tls_sni`: server name sent and verified; default the server address host.
    pub sni: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// Default `http`.
    pub scheme: Scheme,
    /// `protocol`: `http1` (default), `h2`, `h2c` or `auto`.
    pub protocol: Protocol,
    /// The top-level `http2:` settings, for `h2`/`h2c` connections to the servers.
    pub http2: Http2Settings,
    /// Present when `scheme: https`.
    pub tls: Option<UpstreamTls>,
    /// `keepalive`: idle pooled connections kept per server. Default 32; 0 disables pooling.
    pub keepalive: usize,
    /// `keepalive_timeout`: idle pooled connection lifetime. Default 60 s.
    pub keepalive_timeout: Duration,
    /// `keepalive_requests`: requests per pooled connection. Default 1000; 0 = unlimited.
    pub keepalive_requests: u64,
    /// `connect_timeout` (TCP and TLS handshake). Default 5 s.
    pub connect_timeout: Duration,
    /// `read_timeout`: longest wait between two reads from the server (504). Default 60 s.
    pub read_timeout: Duration,
    /// `send_timeout`: longest wait between two writes to the server. Default 60 s.
    pub send_timeout: Duration,
    /// `next_upstream_tries`: attempts per request; 0 (default) = each server at most once.
    pub next_upstream_tries: u32,
    /// `max_response_header_size`: largest response head accepted (502 above). Default 64 KiB.
    pub max_response_header_size: usize,
    /// `proxy_buffer_size`: largest single read from an upstream connection while a response
    /// body streams (nothing is buffered beyond it). Default 256 KiB; kept per pooled connection
    /// once reached.
    pub read_buffer_size: usize,
    /// `when_all_down`: `fail` (default) or `try_all`.
    pub when_all_down: WhenAllDown,
    /// Static servers.
    pub servers: Vec<ServerConfig>,
    /// Docker discovery, if configured.
    pub docker: Option<DockerDiscoveryConfig>,
    /// DNS discovery, if configured (at most one of `docker` and `dns`).
    pub dns: Option<DnsDiscoveryConfig>,
    /// Active health checks, if configured.
    pub health_check: Option<HealthCheckConfig>,
}

impl UpstreamConfig {
    /// The settings of a one-server upstream made per request target by a route kind
    /// (`gateway`, `table`): plain, no TLS, the upstream defaults (keepalive 32 kept 60 s,
    /// 1000 requests, connect 5 s, read and send 60 s, 64 KiB response heads, 256 KiB reads,
    /// one try per request). The kind overrides what its own keys set.
    pub fn per_target(name: &str, scheme: Scheme) -> UpstreamConfig {
        UpstreamConfig {
            name: name.to_owned(),
            scheme,
            tls: None,
            keepalive: 32,
            keepalive_timeout: Duration::from_secs(60),
            keepalive_requests: 1000,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            next_upstream_tries: 0,
            max_response_header_size: 64 << 10,
            read_buffer_size: 256 << 10,
            when_all_down: WhenAllDown::Fail,
            servers: Vec::new(),
            docker: None,
            dns: None,
            health_check: None,
            protocol: Protocol::Http1,
            http2: Http2Settings::default(),
        }
    }
}

/// A server address as written: host (IP or DNS name) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
    /// Set when `host` is an IP literal (no resolution needed), or when `host` is a name that
    /// was resolved to this address (one server per address: the name stays the TLS name).
    pub ip: Option<IpAddr>,
}

impl ServerAddress {
    pub fn from_socket(addr: SocketAddr) -> Self {
        ServerAddress {
            host: addr.ip().to_string(),
            port: addr.port(),
            ip: Some(addr.ip()),
        }
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A resolved hostname (`host` a name, `ip` one of its addresses) shows its address.
        match self.ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Per-server balancing parameters (nginx `server` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub address: ServerAddress,
    /// Default 1.
    pub weight: u32,
    /// Failures within `fail_timeout` that take the server out. Default 1; 0 = never.
    pub max_fails: u32,
    /// Counting window and ban length. Default 10 s.
    pub fail_timeout: Duration,
    /// Used only when no primary server is selectable. Default false.
    pub backup: bool,
    /// Permanently out of rotation (nginx `down`). Default false.
    pub down: bool,
    /// `via`: reach the server through the tunnel agent of this name (dialled on the agent's
    /// side). Default none (dialled directly).
    pub via: Option<String>,
}

/// How Docker discovery finds replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerMode {
    /// Swarm when the daemon is an active swarm manager, else containers.
    Auto,
    /// Running containers of this daemon on the network.
    Containers,
    /// Cluster-wide network attachments, from a swarm manager.
    Swarm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerDiscoveryConfig {
    /// Default `DOCKER_HOST`, else `unix:///var/run/docker.sock`.
    pub endpoint: String,
    /// Overlay network whose address is used. Default `kuscia-exchange-cluster`.
    pub network: String,
    /// Container port; label `swarmgate.port` overrides. Default 1080 (Kuscia's gateway).
    pub port: u16,
    /// Optional regex on the container name (without the leading `/`).
    pub name: Option<String>,
    /// Labels that must be present with these values.
    pub labels: BTreeMap<String, String>,
    /// Default `auto`.
    pub mode: DockerMode,
    /// Full reconcile interval besides events. Default 30 s.
    pub resync: Duration,
    /// Weight of a discovered replica; label `swarmgate.weight` overrides. Default 1.
    pub weight: u32,
    /// Default 1.
    pub max_fails: u32,
    /// Default 10 s.
    pub fail_timeout: Duration,
}

/// `discovery.dns`: one server per A/AAAA record of a name (swarm's `tasks.<service>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDiscoveryConfig {
    /// `name`: the DNS name to resolve. Required.
    pub name: String,
    /// `port`: port of every resolved address. Default 1080 (Kuscia's gateway).
    pub port: u16,
    /// `interval`: re-resolve period. Default 5 s.
    pub interval: Duration,
    /// `weight` of each resolved server. Default 1.
    pub weight: u32,
    /// Default 1.
    pub max_fails: u32,
    /// Default 10 s.
    pub fail_timeout: Duration,
    /// `resolver`: DNS server (`ip:port`, UDP) to ask; default the top-level `resolver`, else
    /// the system resolver.
    pub resolver: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    Http,
    Tcp,
    /// `grpc.health.v1.Health/Check` over HTTP/2 (h2c, or h2 on `https` upstreams); up when
    /// the answer is SERVING.
    Grpc,
}

/// An accepted status: a class (`4xx`) or an exact code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Class(u16),
    Exact(u16),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Class(c) => status / 100 == c,
            StatusMatch::Exact(s) => status == s,
        }
    }
}

/// Active health checks (nginx_upstream_check_module semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Default 30 s (the check module's 30000 ms).
    pub interval: Duration,
    /// Consecutive successes to become healthy. Default 2.
    pub rise: u32,
    /// Consecutive failures to become unhealthy. Default 5.
    pub fall: u32,
    /// Default 1 s.
    pub timeout: Duration,
    /// Default `http`.
    pub kind: HealthCheckKind,
    /// Default `/`.
    pub path: String,
    /// Default `GET`.
    pub method: String,
    /// Host header of the probe; default the server address.
    pub host: Option<String>,
    /// Default `["2xx", "3xx"]`.
    pub expect_status: Vec<StatusMatch>,
    /// New servers start unhealthy until `rise` successes. Default false.
    pub default_down: bool,
    /// Probe this port instead of the server's. Default the server's.
    pub port: Option<u16>,
    /// `service` asked about by a `grpc` check. Default `""` (the whole server).
    pub service: String,
}

/// A route: what it matches (listener, host, path prefix) and the target it yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Default `/`. With `exact`, the whole path (`path:`).
    pub path_prefix: String,
    /// `path:` was given: the request path must equal `path_prefix` (nginx `location = /x`).
    /// Default false.
    pub exact: bool,
    /// Exact Host match (case-insensitive, port ignored). Default any.
    pub host: Option<String>,
    /// `listen`: only requests that arrived on this listener (one of the top-level `listen`
    /// addresses, as written). Default every listener.
    pub listen: Option<SocketAddr>,
    pub target: RouteTarget,
}

/// Where a matched request goes. Each kind is one key of the route (`upstream: NAME`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// A named upstream group.
    Upstream(String),
    /// `gateway`: the target address and port are in the request path (SCOW's proxy gateway).
    Gateway(Box<GatewayConfig>),
    /// `table`: the target is looked up by the first path segment after the prefix.
    Table(Box<TableConfig>),
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse_config(&text)
    }

    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}
