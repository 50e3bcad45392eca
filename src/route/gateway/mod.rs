//! The `gateway` route kind: SCOW's proxy gateway node, minus the open proxy. The target
//! address and port are in the request path,
//! `<prefix><cluster>/relative/<node>/<port><rest>` (sends `<rest>` and the query) or
//! `<prefix><cluster>/absolute/<node>/<port><rest>` (sends the request target unchanged), and
//! are checked against the route's allowlist before anything is dialled (`policy.rs`), after a
//! strict parse (`path.rs`).
//!
//! Each target gets a one-server upstream from a bounded cache ([`DynamicUpstreams`]): its own
//! keepalive pool and passive failure counts. Metrics name the cluster (`gateway/<cluster>`)
//! only when the route lists its clusters, else `gateway/other`; never the node or port.

pub mod path;
pub mod policy;

use crate::config::{GatewayConfig, ServerAddress};
use crate::tls::TlsError;
use crate::upstream::dynamic::DEFAULT_MAX_TARGETS;
use crate::upstream::{DynamicUpstreams, Settings, Upstream};
use http::Uri;
use path::Form;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a gateway request is not forwarded.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The path is not `<cluster>/relative|absolute/<node>/<port><rest>` in canonical form (400).
    #[error("malformed gateway path: {0}")]
    Malformed(&'static str),
    /// The target is not allowed (403).
    #[error("gateway target refused: {0}")]
    Refused(&'static str),
}

/// A live gateway route.
#[derive(Debug)]
pub struct Gateway {
    prefix: String,
    config: GatewayConfig,
    targets: DynamicUpstreams,
}

impl Gateway {
    /// The gateway serving the paths under `prefix` (a route's `path_prefix`, ending in `/`).
    pub fn new(prefix: &str, config: &GatewayConfig) -> Result<Gateway, TlsError> {
        let template = Settings::new(&config.upstream_template("gateway"))?;
        Ok(Gateway {
            prefix: prefix.to_owned(),
            config: config.clone(),
            // Passive accounting per target as for a static server (max_fails 1, fail_timeout
            // 10 s); a one-server upstream is never taken out, as in nginx.
            targets: DynamicUpstreams::new(
                template,
                1,
                Duration::from_secs(10),
                DEFAULT_MAX_TARGETS,
            ),
        })
    }

    /// Whether this gateway was built from the same route (a reload keeps it and its pools).
    pub fn same(&self, prefix: &str, config: &GatewayConfig) -> bool {
        self.prefix == prefix && self.config == *config
    }

    /// The upstream for the request's target and the request target to send it, or why not.
    /// `own` lists swarmgate's bound listeners (never a target).
    pub fn resolve(
        &self,
        uri: &Uri,
        own: &[SocketAddr],
    ) -> Result<(Arc<Upstream>, Uri), GatewayError> {
        let tail = uri
            .path()
            .strip_prefix(self.prefix.as_str())
            .ok_or(GatewayError::Malformed("path outside the route's prefix"))?;
        let p = path::parse(tail).map_err(GatewayError::Malformed)?;
        if let Some(why) = policy::refusal(&self.config, p.cluster, p.ip, p.port, own) {
            return Err(GatewayError::Refused(why));
        }
        let target = match p.form {
            Form::Absolute => uri
                .path_and_query()
                .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone())),
            Form::Relative => super::rest_with_query(p.rest, uri)
                .ok_or(GatewayError::Malformed("invalid request target"))?,
        };
        // A cluster the client named is a label only when the config lists it: the set of
        // label values stays bounded.
        let name: std::borrow::Cow<str> = if self.config.clusters.is_some() {
            format!("gateway/{}", p.cluster).into()
        } else {
            "gateway/other".into()
        };
        let upstream = self.targets.get(
            &name,
            ServerAddress::from_socket(SocketAddr::new(p.ip, p.port)),
        );
        Ok((upstream, target))
    }

    /// Drops idle pooled connections and targets unused for `keepalive_timeout`.
    pub fn reap(&self, now: Instant) {
        self.targets.reap(now);
    }

    /// Targets currently cached.
    pub fn targets(&self) -> usize {
        self.targets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cidr, Scheme};

    fn gateway(clusters: Option<Vec<String>>) -> Gateway {
        let cfg = GatewayConfig {
            allow: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            ports: Vec::new(),
            clusters,
            scheme: Scheme::Http,
            tls: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            keepalive: 2,
        };
        Gateway::new("/api/proxy/", &cfg).unwrap()
    }

    fn resolve(g: &Gateway, path: &str) -> Result<(Arc<Upstream>, Uri), GatewayError> {
        g.resolve(&path.parse().unwrap(), &[])
    }

    #[test]
    fn one_upstream_per_target_named_by_cluster_and_forgotten_when_idle() {
        let g = gateway(Some(vec!["hpc01".into()]));
        let (u1, uri) = resolve(&g, "/api/proxy/hpc01/relative/10.0.0.1/8888/a?b=1").unwrap();
        assert_eq!(uri, "/a?b=1");
        assert_eq!(u1.name, "gateway/hpc01");
        let (u2, uri) = resolve(&g, "/api/proxy/hpc01/absolute/10.0.0.1/8888/a?b=1").unwrap();
        assert_eq!(uri, "/api/proxy/hpc01/absolute/10.0.0.1/8888/a?b=1");
        assert!(Arc::ptr_eq(&u1, &u2), "same target, same pool");
        resolve(&g, "/api/proxy/hpc01/relative/10.0.0.2/8888").unwrap();
        assert_eq!(g.targets(), 2);
        // Idle for longer than the pool's keepalive_timeout (60 s): forgotten.
        g.reap(Instant::now() + Duration::from_secs(61));
        assert_eq!(g.targets(), 0);
        // Without a `clusters` list the client's cluster id is not a label.
        let any = gateway(None);
        let (u, _) = resolve(&any, "/api/proxy/whatever/relative/10.0.0.1/80").unwrap();
        assert_eq!(u.name, "gateway/other");
    }

    #[test]
    fn errors_say_which() {
        let g = gateway(Some(vec!["hpc01".into()]));
        assert!(matches!(
            resolve(&g, "/api/proxy/hpc01/relative/127.1/80"),
            Err(GatewayError::Malformed(_))
        ));
        assert!(matches!(
            resolve(&g, "/api/proxy/hpc02/relative/10.0.0.1/80"),
            Err(GatewayError::Refused("unknown cluster"))
        ));
        assert_eq!(g.targets(), 0, "nothing is cached for a refused target");
    }
}
