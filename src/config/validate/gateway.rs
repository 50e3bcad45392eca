//! `routes[i].gateway` → [`GatewayConfig`]: the allowlist is required, every key has its default.

use super::super::gateway::valid_cluster_id;
use super::super::raw::RawGateway;
use super::super::{ConfigError, GatewayConfig, Scheme, UpstreamTls};
use super::Validator;
use std::path::PathBuf;
use std::time::Duration;

impl Validator<'_> {
    /// A route kind whose target is in the path after its prefix needs the prefix to end
    /// with '/' (`kind`: the kind's key; `example`: shown in the error).
    pub(super) fn prefix_is_dir(
        &self,
        i: usize,
        path_prefix: &str,
        kind: &str,
        example: &str,
    ) -> Result<(), ConfigError> {
        if path_prefix.ends_with('/') {
            return Ok(());
        }
        Err(self.invalid(
            format!("routes[{i}].path_prefix"),
            "path_prefix",
            Some(path_prefix),
            format!("a {kind} route's path_prefix must end with '/' ({example})"),
        ))
    }

    pub(super) fn gateway(
        &self,
        i: usize,
        path_prefix: &str,
        g: RawGateway,
    ) -> Result<GatewayConfig, ConfigError> {
        let key = |k: &str| format!("routes[{i}].gateway.{k}");
        // `line_of` finds the first `key:` line of the file: exact when one route has a gateway.
        let err = |k: &str, line_key: &str, msg: String| self.invalid(key(k), line_key, None, msg);
        self.prefix_is_dir(i, path_prefix, "gateway", "SCOW's `<base path>api/proxy/`")?;
        let allow = match g.allow {
            Some(a) if !a.is_empty() => a,
            Some(_) => {
                return Err(err(
                    "allow",
                    "allow",
                    "must list at least one network (e.g. [\"10.10.0.0/16\"])".into(),
                ))
            }
            None => {
                return Err(err(
                    "allow",
                    "gateway",
                    "required: the networks targets may be in (e.g. [\"10.10.0.0/16\"]); \
                     without it the gateway would be an open proxy"
                        .into(),
                ))
            }
        };
        let ports = match g.ports {
            Some(p) if p.is_empty() => {
                return Err(err(
                    "ports",
                    "ports",
                    "must not be empty (omit it to allow any port)".into(),
                ))
            }
            p => p.unwrap_or_default(),
        };
        if let Some(c) = &g.clusters {
            if c.is_empty() {
                return Err(err(
                    "clusters",
                    "clusters",
                    "must not be empty (omit it to accept any cluster)".into(),
                ));
            }
            if let Some(bad) = c.iter().find(|c| !valid_cluster_id(c)) {
                return Err(err(
                    "clusters",
                    "clusters",
                    format!("invalid cluster id {bad:?} (1-64 of A-Z a-z 0-9 . _ -)"),
                ));
            }
        }
        let scheme = g.scheme.unwrap_or(Scheme::Http);
        let tls = match scheme {
            Scheme::Https => Some(UpstreamTls {
                verify: g.tls_verify.unwrap_or(true),
                ca: g.tls_ca.map(PathBuf::from),
                sni: None,
            }),
            Scheme::Http => {
                for (k, set) in [
                    ("tls_verify", g.tls_verify.is_some()),
                    ("tls_ca", g.tls_ca.is_some()),
                ] {
                    if set {
                        return Err(err(k, k, "needs `scheme: https`".into()));
                    }
                }
                None
            }
        };
        if let Some(ca) = tls.as_ref().and_then(|t| t.ca.as_ref()) {
            if !ca.is_file() {
                return Err(err(
                    "tls_ca",
                    "tls_ca",
                    format!("no such file {}", ca.display()),
                ));
            }
        }
        let connect_timeout = g.connect_timeout.map_or(Duration::from_secs(5), |d| d.0);
        let read_timeout = g.read_timeout.map_or(Duration::from_secs(60), |d| d.0);
        for (k, d) in [
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
        ] {
            if d.is_zero() {
                return Err(err(k, k, "must be greater than 0".into()));
            }
        }
        Ok(GatewayConfig {
            allow,
            ports,
            clusters: g.clusters,
            scheme,
            tls,
            connect_timeout,
            read_timeout,
            keepalive: g.keepalive.unwrap_or(8),
        })
    }
}
