//! The YAML file as written: serde structs with `deny_unknown_fields`, so that a typo such as
//! `wieght` is an error that names its key path and line. Defaults and semantic checks live in
//! `validate.rs`; every field here is optional unless the file format requires it.

use super::units::{Dur, Size};
use super::{
    Cidr, DockerMode, HealthCheckKind, PortRange, Protocol, Scheme, ServerAddress, StatusMatch,
    WhenAllDown,
};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A server weight: a whole number of at least 1.
#[derive(Debug, Clone, Copy)]
pub struct Weight(pub u32);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = u32::deserialize(d)?;
        if w == 0 {
            return Err(de::Error::custom("weight must be at least 1"));
        }
        Ok(Weight(w))
    }
}

impl<'de> Deserialize<'de> for ServerAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_server_address(&s).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(s.trim()).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(u64),
            S(String),
        }
        let s = match Either::deserialize(d)? {
            Either::N(n) => n.to_string(),
            Either::S(s) => s,
        };
        PortRange::parse(&s).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for StatusMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(u16),
            S(String),
        }
        let bad =
            |s: &str| de::Error::custom(format!("invalid status {s:?} (expected e.g. 2xx or 401)"));
        match Either::deserialize(d)? {
            Either::N(n) if (100..600).contains(&n) => Ok(StatusMatch::Exact(n)),
            Either::N(n) => Err(bad(&n.to_string())),
            Either::S(s) => {
                let t = s.trim().to_ascii_lowercase();
                if let Some(c) = t.strip_suffix("xx") {
                    match c.parse::<u16>() {
                        Ok(c) if (1..6).contains(&c) => Ok(StatusMatch::Class(c)),
                        _ => Err(bad(&s)),
                    }
                } else {
                    match t.parse::<u16>() {
                        Ok(n) if (100..600).contains(&n) => Ok(StatusMatch::Exact(n)),
                        _ => Err(bad(&s)),
                    }
                }
            }
        }
    }
}

/// A string or a list of strings (`listen: "0.0.0.0:8080"` or `listen: [..]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<OneOrMany<SocketAddr>>,
    pub workers: Option<usize>,
    pub admin: Option<RawAdmin>,
    pub tls: Option<RawListenerTls>,
    pub client_max_body_size: Option<Size>,
    pub client_header_timeout: Option<Dur>,
    pub client_body_timeout: Option<Dur>,
    pub keepalive_timeout: Option<Dur>,
    pub keepalive_requests: Option<u64>,
    pub large_client_header_buffers: Option<Size>,
    pub client_body_buffer_size: Option<Size>,
    pub max_headers: Option<usize>,
    pub max_uri_length: Option<Size>,
    pub max_connections: Option<usize>,
    pub lingering_close: Option<super::LingeringMode>,
    pub lingering_time: Option<Dur>,
    pub lingering_timeout: Option<Dur>,
    pub shutdown_timeout: Option<Dur>,
    pub access_log: Option<bool>,
    pub http2: Option<RawHttp2>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    pub routes: Option<Vec<RawRoute>>,
    pub tunnel: Option<RawTunnel>,
    pub state_dir: Option<String>,
    /// DNS server (`ip:port`) for hostnames; default the system resolver.
    pub resolver: Option<SocketAddr>,
}

/// `tunnel:` on the hub: where agents connect.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTunnel {
    pub listen: SocketAddr,
    pub tls: RawListenerTls,
    #[serde(default)]
    pub agents: BTreeMap<String, RawTunnelAgent>,
    pub keepalive_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTunnelAgent {
    pub token_file: String,
}

/// The agent's file (`swarmgate agent --config agent.yaml`): only `agent:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentFile {
    pub agent: RawAgent,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub hub: String,
    pub name: String,
    pub token_file: String,
    pub tls_ca: Option<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    pub keepalive_timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token_file: Option<String>,
}

/// `http2:` settings for both sides' HTTP/2 connections.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp2 {
    pub max_concurrent_streams: Option<u32>,
    pub initial_stream_window: Option<Size>,
    pub keepalive_interval: Option<Dur>,
    pub keepalive_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub scheme: Option<Scheme>,
    pub protocol: Option<Protocol>,
    pub tls_verify: Option<bool>,
    pub tls_ca: Option<String>,
    pub tls_sni: Option<String>,
    pub keepalive: Option<usize>,
    pub keepalive_timeout: Option<Dur>,
    pub keepalive_requests: Option<u64>,
    pub connect_timeout: Option<Dur>,
    pub read_timeout: Option<Dur>,
    pub send_timeout: Option<Dur>,
    pub next_upstream_tries: Option<u32>,
    pub max_response_header_size: Option<Size>,
    pub proxy_buffer_size: Option<Size>,
    pub when_all_down: Option<WhenAllDown>,
    #[serde(default)]
    pub servers: Vec<RawServer>,
    pub discovery: Option<RawDiscovery>,
    pub health_check: Option<RawHealthCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub address: ServerAddress,
    pub weight: Option<Weight>,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<Dur>,
    pub backup: Option<bool>,
    pub down: Option<bool>,
    pub via: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    pub docker: Option<RawDockerDiscovery>,
    pub dns: Option<RawDnsDiscovery>,
}

/// `discovery.dns`: every A/AAAA record of `name`, re-resolved every `interval`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsDiscovery {
    pub name: String,
    pub port: Option<u16>,
    pub interval: Option<Dur>,
    pub weight: Option<Weight>,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<Dur>,
    pub resolver: Option<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDockerDiscovery {
    pub endpoint: Option<String>,
    pub network: Option<String>,
    pub port: Option<u16>,
    pub name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub mode: Option<DockerMode>,
    pub resync: Option<Dur>,
    pub weight: Option<Weight>,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub interval: Option<Dur>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub timeout: Option<Dur>,
    #[serde(rename = "type")]
    pub kind: Option<HealthCheckKind>,
    pub path: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub expect_status: Option<Vec<StatusMatch>>,
    pub default_down: Option<bool>,
    pub port: Option<u16>,
    pub service: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path_prefix: Option<String>,
    /// Exact path (nginx `location = /x`); instead of `path_prefix`.
    pub path: Option<String>,
    pub host: Option<String>,
    /// One of the top-level `listen` addresses; default every listener.
    pub listen: Option<SocketAddr>,
    /// Target kinds: exactly one of these.
    pub upstream: Option<String>,
    pub gateway: Option<RawGateway>,
    pub table: Option<RawTable>,
}

/// `routes[].table` (route by a key looked up in a table).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    /// Required (checked in validate so that the error names the key and line).
    pub name: Option<String>,
    pub store: Option<super::TableStoreKind>,
    pub redis: Option<String>,
    pub cache_ttl: Option<Dur>,
    pub allow: Option<Vec<Cidr>>,
    pub scheme: Option<Scheme>,
}

/// `routes[].gateway` (SCOW's proxy gateway node).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Required, non-empty (checked in validate so that the error names the key and line).
    pub allow: Option<Vec<Cidr>>,
    pub ports: Option<Vec<PortRange>>,
    pub clusters: Option<Vec<String>>,
    pub scheme: Option<Scheme>,
    pub tls_verify: Option<bool>,
    pub tls_ca: Option<String>,
    pub connect_timeout: Option<Dur>,
    pub read_timeout: Option<Dur>,
    pub keepalive: Option<usize>,
}
