//! Raw YAML → validated [`Config`]: defaults, ranges and cross-references.

use super::raw::{
    RawConfig, RawDnsDiscovery, RawDockerDiscovery, RawHealthCheck, RawRoute, RawServer,
    RawUpstream,
};
use super::*;
use std::net::{Ipv4Addr, SocketAddrV4};

mod gateway;
mod table;

/// Default `client_body_buffer_size` and `proxy_buffer_size`: measured on loopback with 1 MiB
/// uploads and 10 MiB downloads, 256 KiB reads took 25-45 % less CPU per byte than 64 KiB.
const DEFAULT_READ_BUFFER: usize = 256 << 10;
/// hyper refuses read buffers below 8 KiB.
const MIN_READ_BUFFER: usize = 8 << 10;

const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080));
/// Default tunnel `keepalive_timeout` (hub and agent).
const DEFAULT_TUNNEL_KEEPALIVE: Duration = Duration::from_secs(10);
const DEFAULT_ADMIN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9901));

/// Parses `ip:port`, `[v6]:port` or `host:port`.
pub fn parse_server_address(s: &str) -> Result<ServerAddress, String> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(ServerAddress::from_socket(sa));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid address {s:?} (expected ip:port or host:port)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port in address {s:?}"))?;
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid_host || port == 0 {
        return Err(format!(
            "invalid address {s:?} (expected ip:port or host:port)"
        ));
    }
    Ok(ServerAddress {
        host: host.to_ascii_lowercase(),
        port,
        ip: None,
    })
}

/// Parses and validates a whole config file's text.
pub fn parse_config(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?
    };
    Validator { text }.config(raw)
}

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
}

impl Validator<'_> {
    /// Line (1-based) of the first line holding `key:` (optionally followed by `value`).
    fn line_of(&self, key: &str, value: Option<&str>) -> Option<usize> {
        self.text.lines().enumerate().find_map(|(i, line)| {
            let l = line.trim_start().trim_start_matches("- ").trim_start();
            let rest = l.strip_prefix(key)?.trim_start().strip_prefix(':')?;
            match value {
                Some(v) if !rest.contains(v) => None,
                _ => Some(i + 1),
            }
        })
    }

    pub(super) fn invalid(
        &self,
        key: String,
        line_key: &str,
        value: Option<&str>,
        msg: String,
    ) -> ConfigError {
        ConfigError::Invalid {
            line: self.line_of(line_key, value),
            key,
            message: msg,
        }
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let listen = match raw.listen {
            None => vec![DEFAULT_LISTEN],
            Some(raw::OneOrMany::One(a)) => vec![a],
            Some(raw::OneOrMany::Many(v)) => v,
        };
        if listen.is_empty() {
            return Err(self.invalid(
                "listen".into(),
                "listen",
                None,
                "needs at least one address".into(),
            ));
        }
        let (admin_listen_raw, admin_token_file) = match raw.admin {
            Some(a) => (a.listen, a.token_file),
            None => (None, None),
        };
        let admin_listen = match admin_listen_raw {
            None => Some(DEFAULT_ADMIN),
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Some(s.trim().parse::<SocketAddr>().map_err(|_| {
                self.invalid(
                    "admin.listen".into(),
                    "listen",
                    Some(&s),
                    format!("invalid socket address {s:?} (expected ip:port)"),
                )
            })?),
        };
        let admin_token_file = admin_token_file
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);
        let state_dir = raw
            .state_dir
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("./state"), PathBuf::from);
        let tls = raw.tls.map(|t| ListenerTls {
            cert: t.cert.into(),
            key: t.key.into(),
        });
        let client = ClientLimits {
            max_body_size: raw.client_max_body_size.map_or(2 << 20, |s| s.0),
            header_timeout: raw
                .client_header_timeout
                .map_or(Duration::from_secs(60), |d| d.0),
            body_timeout: raw
                .client_body_timeout
                .map_or(Duration::from_secs(60), |d| d.0),
            keepalive_timeout: raw
                .keepalive_timeout
                .map_or(Duration::from_secs(1200), |d| d.0),
            keepalive_requests: raw.keepalive_requests.unwrap_or(1000),
            max_header_size: raw
                .large_client_header_buffers
                .map_or(64 << 10, |s| s.0 as usize),
            read_buffer_size: raw
                .client_body_buffer_size
                .map_or(DEFAULT_READ_BUFFER, |s| s.0 as usize),
            max_headers: raw.max_headers.unwrap_or(100),
            max_uri_length: raw.max_uri_length.map_or(8 << 10, |s| s.0 as usize),
            max_connections: raw.max_connections.unwrap_or(0),
            lingering: Lingering {
                mode: raw.lingering_close.unwrap_or(LingeringMode::On),
                time: raw.lingering_time.map_or(Duration::from_secs(30), |d| d.0),
                timeout: raw
                    .lingering_timeout
                    .map_or(Duration::from_secs(5), |d| d.0),
            },
        };
        for (key, d) in [
            ("client_header_timeout", client.header_timeout),
            ("client_body_timeout", client.body_timeout),
            ("keepalive_timeout", client.keepalive_timeout),
            ("lingering_time", client.lingering.time),
            ("lingering_timeout", client.lingering.timeout),
        ] {
            if d.is_zero() {
                return Err(self.invalid(key.into(), key, None, "must be greater than 0".into()));
            }
        }
        if !(1..=10_000).contains(&client.max_headers) {
            // hyper allocates room for `max_headers` fields per request head.
            return Err(self.invalid(
                "max_headers".into(),
                "max_headers",
                None,
                "must be between 1 and 10000".into(),
            ));
        }
        if client.read_buffer_size < MIN_READ_BUFFER {
            return Err(self.invalid(
                "client_body_buffer_size".into(),
                "client_body_buffer_size",
                None,
                "must be at least 8k".into(),
            ));
        }
        if client.max_header_size < 1024 {
            return Err(self.invalid(
                "large_client_header_buffers".into(),
                "large_client_header_buffers",
                None,
                "must be at least 1k".into(),
            ));
        }

        let http2 = self.http2(raw.http2.unwrap_or_default(), &client)?;
        let mut upstreams = Vec::with_capacity(raw.upstreams.len());
        for (name, u) in raw.upstreams {
            upstreams.push(self.upstream(name, u, http2, raw.resolver)?);
        }

        let routes = match raw.routes {
            Some(routes) => {
                let mut out = Vec::with_capacity(routes.len());
                for (i, r) in routes.into_iter().enumerate() {
                    out.push(self.route(i, r, &listen, &upstreams)?);
                }
                out
            }
            None if upstreams.len() == 1 => vec![RouteConfig {
                path_prefix: "/".into(),
                exact: false,
                host: None,
                listen: None,
                target: RouteTarget::Upstream(upstreams[0].name.clone()),
            }],
            None if upstreams.is_empty() => Vec::new(),
            None => {
                return Err(self.invalid(
                    "routes".into(),
                    "upstreams",
                    None,
                    "required when there is more than one upstream".into(),
                ))
            }
        };

        // Routes may share a table (metrics and the API name it): then with one store.
        for (i, r) in routes.iter().enumerate() {
            let RouteTarget::Table(t) = &r.target else {
                continue;
            };
            let clash = routes[..i].iter().any(|o| {
                matches!(&o.target, RouteTarget::Table(o) if o.name == t.name && o.store != t.store)
            });
            if clash {
                return Err(self.invalid(
                    format!("routes[{i}].table.name"),
                    "name",
                    Some(&t.name),
                    format!(
                        "table {:?} is used by an earlier route with another store",
                        t.name
                    ),
                ));
            }
        }
        // A writable route table makes the admin listener a control plane: beyond loopback it
        // needs the token. Configs without one (the image's built-in config serves /metrics on
        // 0.0.0.0:9901) only get a warning at start (`app.rs`), so that they keep starting.
        let writable = routes
            .iter()
            .any(|r| matches!(&r.target, RouteTarget::Table(t) if t.store == TableStore::Embedded));
        if let Some(a) = admin_listen {
            if !a.ip().is_loopback() && admin_token_file.is_none() && writable {
                return Err(self.invalid(
                    "admin.token_file".into(),
                    "admin",
                    None,
                    format!(
                        "required when admin.listen ({a}) is not a loopback address: \
                         a file holding the Bearer token for mutating admin calls"
                    ),
                ));
            }
        }

        let tunnel = match raw.tunnel {
            None => None,
            Some(t) => Some(TunnelConfig {
                listen: t.listen,
                tls: ListenerTls {
                    cert: t.tls.cert.into(),
                    key: t.tls.key.into(),
                },
                agents: t
                    .agents
                    .into_iter()
                    .map(|(name, a)| (name, a.token_file.into()))
                    .collect(),
                keepalive_timeout: self.keepalive(t.keepalive_timeout, "tunnel")?,
            }),
        };
        for u in &upstreams {
            for (i, s) in u.servers.iter().enumerate() {
                let Some(via) = &s.via else { continue };
                if !tunnel.as_ref().is_some_and(|t| t.agents.contains_key(via)) {
                    return Err(self.invalid(
                        format!("upstreams.{}.servers[{i}].via", u.name),
                        "via",
                        Some(via),
                        format!("unknown agent {via:?} (not under tunnel.agents)"),
                    ));
                }
            }
        }

        Ok(Config {
            resolver: raw.resolver,
            tunnel,
            listen,
            workers: raw.workers.unwrap_or(0),
            admin_listen,
            admin_token_file,
            state_dir,
            tls,
            http2,
            client,
            shutdown_timeout: raw
                .shutdown_timeout
                .map_or(Duration::from_secs(30), |d| d.0),
            access_log: raw.access_log.unwrap_or(true),
            upstreams,
            routes,
        })
    }

    /// `routes[i]`: what it matches and exactly one target kind.
    fn route(
        &self,
        i: usize,
        r: RawRoute,
        listen: &[SocketAddr],
        upstreams: &[UpstreamConfig],
    ) -> Result<RouteConfig, ConfigError> {
        let exact = r.path.is_some();
        let (path_key, path_prefix) = match (r.path_prefix, r.path) {
            (Some(_), Some(p)) => {
                return Err(self.invalid(
                    format!("routes[{i}].path"),
                    "path",
                    Some(&p),
                    "`path` (exact) and `path_prefix` exclude each other".into(),
                ))
            }
            (None, Some(p)) => ("path", p),
            (p, None) => ("path_prefix", p.unwrap_or_else(|| "/".into())),
        };
        if !path_prefix.starts_with('/') {
            return Err(self.invalid(
                format!("routes[{i}].{path_key}"),
                path_key,
                Some(&path_prefix),
                "must start with '/'".into(),
            ));
        }
        if exact && (r.gateway.is_some() || r.table.is_some()) {
            let kind = if r.gateway.is_some() {
                "gateway"
            } else {
                "table"
            };
            return Err(self.invalid(
                format!("routes[{i}].path"),
                "path",
                Some(&path_prefix),
                format!(
                    "a {kind} route needs `path_prefix` (its target is in the rest of the path)"
                ),
            ));
        }
        if let Some(l) = r.listen {
            if !listen.contains(&l) {
                return Err(self.invalid(
                    format!("routes[{i}].listen"),
                    "listen",
                    Some(&l.port().to_string()),
                    format!("{l} is not one of the top-level listen addresses"),
                ));
            }
        }
        let given: Vec<&str> = [
            ("upstream", r.upstream.is_some()),
            ("gateway", r.gateway.is_some()),
            ("table", r.table.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if given.len() > 1 {
            return Err(self.invalid(
                format!("routes[{i}]"),
                given[1],
                None,
                format!(
                    "more than one target: `{}` (a route has exactly one)",
                    given.join("` and `")
                ),
            ));
        }
        let target = if let Some(name) = r.upstream {
            if upstreams.iter().all(|u| u.name != name) {
                return Err(self.invalid(
                    format!("routes[{i}].upstream"),
                    "upstream",
                    Some(&name),
                    format!("unknown upstream {name:?}"),
                ));
            }
            RouteTarget::Upstream(name)
        } else if let Some(g) = r.gateway {
            RouteTarget::Gateway(Box::new(self.gateway(i, &path_prefix, g)?))
        } else if let Some(t) = r.table {
            RouteTarget::Table(Box::new(self.table(i, &path_prefix, t)?))
        } else {
            return Err(self.invalid(
                format!("routes[{i}]"),
                "path_prefix",
                Some(&path_prefix),
                "needs a target: `upstream`, `gateway` or `table`".into(),
            ));
        };
        Ok(RouteConfig {
            path_prefix,
            exact,
            host: r.host.map(|h| strip_port(&h).to_ascii_lowercase()),
            listen: r.listen,
            target,
        })
    }

    /// A tunnel `keepalive_timeout` (default 10 s, at least 1 s) of section `section`.
    pub(super) fn keepalive(
        &self,
        d: Option<super::units::Dur>,
        section: &str,
    ) -> Result<Duration, ConfigError> {
        let d = d.map_or(DEFAULT_TUNNEL_KEEPALIVE, |d| d.0);
        if d < Duration::from_secs(1) {
            return Err(self.invalid(
                format!("{section}.keepalive_timeout"),
                "keepalive_timeout",
                None,
                "must be at least 1s".into(),
            ));
        }
        Ok(d)
    }

    fn http2(
        &self,
        h: super::raw::RawHttp2,
        client: &ClientLimits,
    ) -> Result<Http2Settings, ConfigError> {
        let d = Http2Settings::default();
        let out = Http2Settings {
            max_concurrent_streams: h.max_concurrent_streams.unwrap_or(d.max_concurrent_streams),
            initial_stream_window: match h.initial_stream_window {
                None => d.initial_stream_window,
                // RFC 9113 §6.9.1: at most 2^31-1; below 64 KiB - 1 (the protocol default)
                // only slows every stream down.
                Some(s) if (65_535..=(u32::MAX >> 1) as u64).contains(&s.0) => s.0 as u32,
                Some(_) => {
                    return Err(self.invalid(
                        "http2.initial_stream_window".into(),
                        "initial_stream_window",
                        None,
                        "must be between 65535 and 2147483647 bytes".into(),
                    ))
                }
            },
            keepalive_interval: h.keepalive_interval.map_or(d.keepalive_interval, |d| d.0),
            keepalive_timeout: h.keepalive_timeout.map_or(d.keepalive_timeout, |d| d.0),
            max_header_list_size: u32::try_from(client.max_header_size).unwrap_or(u32::MAX),
        };
        if out.max_concurrent_streams == 0 {
            return Err(self.invalid(
                "http2.max_concurrent_streams".into(),
                "max_concurrent_streams",
                None,
                "must be at least 1".into(),
            ));
        }
        for (k, v) in [
            ("keepalive_interval", out.keepalive_interval),
            ("keepalive_timeout", out.keepalive_timeout),
        ] {
            if v.is_zero() {
                return Err(self.invalid(
                    format!("http2.{k}"),
                    k,
                    None,
                    "must be greater than 0".into(),
                ));
            }
        }
        Ok(out)
    }

    fn upstream(
        &self,
        name: String,
        u: RawUpstream,
        http2: Http2Settings,
        resolver: Option<SocketAddr>,
    ) -> Result<UpstreamConfig, ConfigError> {
        let key = |k: &str| format!("upstreams.{name}.{k}");
        let scheme = u.scheme.unwrap_or(Scheme::Http);
        let protocol = u.protocol.unwrap_or_default();
        match (protocol, scheme) {
            (Protocol::H2, Scheme::Http) => {
                return Err(self.invalid(
                    key("protocol"),
                    "protocol",
                    Some("h2"),
                    "h2 needs `scheme: https` (use h2c for HTTP/2 over plain TCP)".into(),
                ))
            }
            (Protocol::H2c, Scheme::Https) => {
                return Err(self.invalid(
                    key("protocol"),
                    "protocol",
                    Some("h2c"),
                    "h2c is HTTP/2 over plain TCP and needs `scheme: http` (use h2 with TLS)"
                        .into(),
                ))
            }
            _ => {}
        }
        let tls = match scheme {
            Scheme::Https => Some(UpstreamTls {
                verify: u.tls_verify.unwrap_or(true),
                ca: u.tls_ca.map(PathBuf::from),
                sni: u.tls_sni,
            }),
            Scheme::Http => {
                for (k, set) in [
                    ("tls_verify", u.tls_verify.is_some()),
                    ("tls_ca", u.tls_ca.is_some()),
                    ("tls_sni", u.tls_sni.is_some()),
                ] {
                    if set {
                        return Err(self.invalid(key(k), k, None, "needs `scheme: https`".into()));
                    }
                }
                None
            }
        };
        if let Some(ca) = tls.as_ref().and_then(|t| t.ca.as_ref()) {
            if !ca.is_file() {
                return Err(self.invalid(
                    key("tls_ca"),
                    "tls_ca",
                    None,
                    format!("no such file {}", ca.display()),
                ));
            }
        }
        let servers: Vec<ServerConfig> = u.servers.into_iter().map(server).collect();
        let (docker, dns) = match u.discovery {
            Some(d) => (d.docker, d.dns),
            None => (None, None),
        };
        if docker.is_some() && dns.is_some() {
            return Err(self.invalid(
                key("discovery"),
                "dns",
                None,
                "one discovery source per upstream: `docker` or `dns`".into(),
            ));
        }
        let dns = dns
            .map(|d| dns_discovery(d, resolver))
            .transpose()
            .map_err(|(k, msg)| self.invalid(key(&format!("discovery.dns.{k}")), k, None, msg))?;
        let docker = docker
            .map(docker_discovery)
            .transpose()
            .map_err(|(k, msg)| {
                self.invalid(key(&format!("discovery.docker.{k}")), k, None, msg)
            })?;
        if servers.is_empty() && docker.is_none() && dns.is_none() {
            return Err(self.invalid(
                format!("upstreams.{name}"),
                &name,
                None,
                "needs `servers` or `discovery`".into(),
            ));
        }
        let health_check =
            u.health_check.map(health).transpose().map_err(|(k, msg)| {
                self.invalid(key(&format!("health_check.{k}")), k, None, msg)
            })?;
        for (k, d) in [
            ("connect_timeout", u.connect_timeout),
            ("read_timeout", u.read_timeout),
        ] {
            if d.is_some_and(|d| d.0.is_zero()) {
                return Err(self.invalid(key(k), k, None, "must be greater than 0".into()));
            }
        }
        if u.max_response_header_size.is_some_and(|s| s.0 < 1024) {
            return Err(self.invalid(
                key("max_response_header_size"),
                "max_response_header_size",
                None,
                "must be at least 1k".into(),
            ));
        }
        if u.proxy_buffer_size
            .is_some_and(|s| s.0 < MIN_READ_BUFFER as u64)
        {
            return Err(self.invalid(
                key("proxy_buffer_size"),
                "proxy_buffer_size",
                None,
                "must be at least 8k".into(),
            ));
        }
        for (k, d) in [("send_timeout", u.send_timeout)] {
            if d.is_some_and(|d| d.0.is_zero()) {
                return Err(self.invalid(key(k), k, None, "must be greater than 0".into()));
            }
        }
        if let Some(hc) = &health_check {
            if hc.kind == HealthCheckKind::Grpc && protocol == Protocol::Http1 {
                return Err(self.invalid(
                    key("health_check.type"),
                    "health_check",
                    None,
                    "a grpc check needs `protocol: h2c` or `h2` (or `auto` with TLS)".into(),
                ));
            }
        }
        let max_header_list_size = u
            .max_response_header_size
            .map_or(64 << 10, |s| u32::try_from(s.0).unwrap_or(u32::MAX));
        Ok(UpstreamConfig {
            scheme,
            protocol,
            http2: Http2Settings {
                max_header_list_size,
                ..http2
            },
            tls,
            keepalive: u.keepalive.unwrap_or(32),
            keepalive_timeout: u.keepalive_timeout.map_or(Duration::from_secs(60), |d| d.0),
            keepalive_requests: u.keepalive_requests.unwrap_or(1000),
            connect_timeout: u.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
            read_timeout: u.read_timeout.map_or(Duration::from_secs(60), |d| d.0),
            send_timeout: u.send_timeout.map_or(Duration::from_secs(60), |d| d.0),
            next_upstream_tries: u.next_upstream_tries.unwrap_or(0),
            max_response_header_size: u
                .max_response_header_size
                .map_or(64 << 10, |s| s.0 as usize),
            read_buffer_size: u
                .proxy_buffer_size
                .map_or(DEFAULT_READ_BUFFER, |s| s.0 as usize),
            when_all_down: u.when_all_down.unwrap_or(WhenAllDown::Fail),
            servers,
            docker,
            dns,
            health_check,
            name,
        })
    }
}

fn server(s: RawServer) -> ServerConfig {
    ServerConfig {
        address: s.address,
        weight: s.weight.map_or(1, |w| w.0),
        max_fails: s.max_fails.unwrap_or(1),
        fail_timeout: s.fail_timeout.map_or(Duration::from_secs(10), |d| d.0),
        backup: s.backup.unwrap_or(false),
        down: s.down.unwrap_or(false),
        via: s.via,
    }
}

fn docker_discovery(
    d: RawDockerDiscovery,
) -> Result<DockerDiscoveryConfig, (&'static str, String)> {
    if let Some(re) = &d.name {
        regex::Regex::new(re).map_err(|e| ("name", format!("invalid regex: {e}")))?;
    }
    let network = d
        .network
        .unwrap_or_else(|| "kuscia-exchange-cluster".into());
    if network.is_empty() {
        return Err(("network", "must not be empty".into()));
    }
    let resync = d.resync.map_or(Duration::from_secs(30), |r| r.0);
    if resync.is_zero() {
        return Err(("resync", "must be greater than 0".into()));
    }
    Ok(DockerDiscoveryConfig {
        endpoint: d
            .endpoint
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into()),
        network,
        port: d.port.unwrap_or(1080),
        name: d.name,
        labels: d.labels,
        mode: d.mode.unwrap_or(DockerMode::Auto),
        resync,
        weight: d.weight.map_or(1, |w| w.0),
        max_fails: d.max_fails.unwrap_or(1),
        fail_timeout: d.fail_timeout.map_or(Duration::from_secs(10), |d| d.0),
    })
}

/// Default `discovery.dns.interval`.
pub const DEFAULT_DNS_INTERVAL: Duration = Duration::from_secs(5);

fn dns_discovery(
    d: RawDnsDiscovery,
    resolver: Option<SocketAddr>,
) -> Result<DnsDiscoveryConfig, (&'static str, String)> {
    let name = d.name.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(("name", format!("invalid DNS name {:?}", d.name)));
    }
    let interval = d.interval.map_or(DEFAULT_DNS_INTERVAL, |i| i.0);
    if interval.is_zero() {
        return Err(("interval", "must be greater than 0".into()));
    }
    if d.port == Some(0) {
        return Err(("port", "must be between 1 and 65535".into()));
    }
    Ok(DnsDiscoveryConfig {
        name,
        port: d.port.unwrap_or(1080),
        interval,
        weight: d.weight.map_or(1, |w| w.0),
        max_fails: d.max_fails.unwrap_or(1),
        fail_timeout: d.fail_timeout.map_or(Duration::from_secs(10), |d| d.0),
        resolver: d.resolver.or(resolver),
    })
}

fn health(h: RawHealthCheck) -> Result<HealthCheckConfig, (&'static str, String)> {
    let cfg = HealthCheckConfig {
        interval: h.interval.map_or(Duration::from_secs(30), |d| d.0),
        rise: h.rise.unwrap_or(2),
        fall: h.fall.unwrap_or(5),
        timeout: h.timeout.map_or(Duration::from_secs(1), |d| d.0),
        kind: h.kind.unwrap_or(HealthCheckKind::Http),
        path: h.path.unwrap_or_else(|| "/".into()),
        method: h
            .method
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase(),
        host: h.host,
        expect_status: h
            .expect_status
            .unwrap_or_else(|| vec![StatusMatch::Class(2), StatusMatch::Class(3)]),
        default_down: h.default_down.unwrap_or(false),
        port: h.port,
        service: h.service.unwrap_or_default(),
    };
    if cfg.interval.is_zero() {
        return Err(("interval", "must be greater than 0".into()));
    }
    if cfg.timeout.is_zero() {
        return Err(("timeout", "must be greater than 0".into()));
    }
    if cfg.rise == 0 || cfg.fall == 0 {
        return Err(("rise", "rise and fall must be at least 1".into()));
    }
    if !cfg.path.starts_with('/') {
        return Err(("path", "must start with '/'".into()));
    }
    if http::Method::from_bytes(cfg.method.as_bytes()).is_err() {
        return Err(("method", format!("invalid method {:?}", cfg.method)));
    }
    if cfg.expect_status.is_empty() {
        return Err(("expect_status", "must list at least one status".into()));
    }
    Ok(cfg)
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}
