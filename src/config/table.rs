//! The validated `table:` route target: the key is the first path segment after the route's
//! prefix, looked up in a named table (embedded store or a Redis hash).

use super::{Cidr, Scheme, UpstreamConfig};
use std::time::Duration;

/// `routes[].table.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableStoreKind {
    Embedded,
    Redis,
}

/// Where a table's entries live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableStore {
    /// In `state_dir` (redb), written through the admin API.
    Embedded,
    /// A Redis hash named like the table (`HSET <name> <key> <host:port>`), read only.
    Redis(RedisUrl),
}

/// `redis://[:password@]host[:port][/db]` (port 6379 and db 0 by default).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedisUrl {
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub password: Option<String>,
}

impl RedisUrl {
    pub fn parse(s: &str) -> Result<RedisUrl, String> {
        let bad =
            |why: &str| format!("invalid Redis URL {s:?}: {why} (expected redis://host:port/db)");
        let rest = s
            .strip_prefix("redis://")
            .ok_or_else(|| bad("scheme must be redis://"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = auth.map(|a| a.split_once(':').map_or(a, |(_, p)| p).to_owned());
        let (hostport, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (h, d.parse().map_err(|_| bad("db is not a number"))?),
            None => (rest, 0),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| bad("invalid port"))?)
            }
            _ => (hostport, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad("missing host or port"));
        }
        Ok(RedisUrl {
            host: host.to_owned(),
            port,
            db,
            password: password.filter(|p| !p.is_empty()),
        })
    }

    /// `host:port` for dialling.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `routes[].table`: `<path_prefix><key>/<rest>` goes to the target stored under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    /// `name`: the table (with Redis, the hash name). Required: 1-64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// `store` (`embedded`, default, or `redis`) and `redis` (the URL, required with redis).
    pub store: TableStore,
    /// `cache_ttl`: how long a looked-up Redis entry is trusted. Default 2 s.
    pub cache_ttl: Duration,
    /// `allow`: networks targets must be in. Default any (empty list).
    pub allow: Vec<Cidr>,
    /// `scheme` towards targets. Default `http`.
    pub scheme: Scheme,
}

impl TableConfig {
    /// The upstream settings targets are dialled with (the upstream defaults: connect 5 s,
    /// read 60 s, 8 idle pooled connections per target kept 60 s, one try per request).
    pub fn upstream_template(&self) -> UpstreamConfig {
        UpstreamConfig {
            tls: (self.scheme == Scheme::Https).then_some(super::UpstreamTls {
                verify: true,
                ca: None,
                sni: None,
            }),
            keepalive: 8,
            ..UpstreamConfig::per_target(&format!("table/{}", self.name), self.scheme)
        }
    }

    /// Whether `ip` may be a target (`allow` empty = any).
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// Parses a stored target: `ip:port` with a canonical IP (as `routes[].gateway` paths), or
/// `[v6]:port`. Hostnames are refused: what is checked against `allow` is what is dialled.
pub fn parse_target(s: &str) -> Result<std::net::SocketAddr, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid target {s:?} (expected ip:port)"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains(':') && !s.starts_with('[') {
        return Err(format!("invalid target {s:?} (write IPv6 as [addr]:port)"));
    }
    let ip = super::gateway::parse_canonical_ip(host)
        .map_err(|e| format!("invalid target {s:?}: {e}"))?;
    let port =
        super::gateway::parse_port(port).map_err(|e| format!("invalid target {s:?}: {e}"))?;
    Ok(std::net::SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("127.0.0.1", 6380, 2));
        let u = RedisUrl::parse("redis://:s3cret@redis").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("redis", 6379, 0));
        assert_eq!(u.password.as_deref(), Some("s3cret"));
        assert!(RedisUrl::parse("http://x").is_err());
        assert!(RedisUrl::parse("redis://x:0").is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("10.244.1.58:9999").unwrap().to_string(),
            "10.244.1.58:9999"
        );
        assert_eq!(
            parse_target("[fd00::5]:80").unwrap().to_string(),
            "[fd00::5]:80"
        );
        for bad in [
            "10.244.1.58",
            "localhost:80",
            "127.1:80",
            "10.0.0.1:0",
            "fd00::5:80",
            "1.2.3.4:080",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?} accepted");
        }
    }
}
