//! DNS discovery (`discovery.dns`, and hostname `servers[].address`): resolves every A/AAAA
//! record of a name every `interval` and publishes one backend per address. Swarm's embedded DNS
//! answers `tasks.<service>` with one address per running task, so this finds replicas without
//! the Docker socket. A failed resolution (timeout, NXDOMAIN, no address) keeps the last known
//! set (`up = false`, `error` set, `swarmgate_discovery_errors_total{source="dns"}` counted).

use super::{dns_wire, DiscoveredBackend, DiscoverySnapshot};
use crate::config::DnsDiscoveryConfig;
use crate::metrics::metrics;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::watch;

/// Runs until every receiver of `tx` is dropped.
pub async fn run(cfg: DnsDiscoveryConfig, tx: watch::Sender<DiscoverySnapshot>) {
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up: Option<bool> = None;
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tick.tick() => {}
        }
        let result = tokio::select! {
            _ = tx.closed() => return,
            r = resolve(&cfg) => r,
        };
        match result {
            Ok(ips) => {
                if was_up != Some(true) {
                    tracing::info!(name = %cfg.name, addresses = ips.len(), "dns discovery resolved");
                    was_up = Some(true);
                }
                let backends: Vec<DiscoveredBackend> = ips
                    .into_iter()
                    .map(|ip| DiscoveredBackend {
                        addr: SocketAddr::new(ip, cfg.port),
                        weight: None,
                        upstream: None,
                        name: cfg.name.clone(),
                    })
                    .collect();
                tx.send_if_modified(|s| {
                    let changed = !s.up || s.backends != backends;
                    *s = DiscoverySnapshot {
                        backends,
                        up: true,
                        error: None,
                    };
                    changed
                });
            }
            Err(err) => {
                metrics()
                    .discovery_errors_total
                    .with_label_values(&["dns"])
                    .inc();
                if was_up != Some(false) {
                    tracing::warn!(
                        name = %cfg.name,
                        "dns discovery failed, keeping {} known addresses: {err}",
                        tx.borrow().backends.len()
                    );
                    was_up = Some(false);
                }
                tx.send_if_modified(|s| {
                    let changed = s.up || s.error.as_deref() != Some(err.as_str());
                    s.up = false;
                    s.error = Some(err);
                    changed
                });
            }
        }
    }
}

/// The sorted, deduplicated addresses of the name; an empty answer is an error.
async fn resolve(cfg: &DnsDiscoveryConfig) -> Result<Vec<IpAddr>, String> {
    let mut ips: Vec<IpAddr> = match cfg.resolver {
        Some(server) => dns_wire::lookup(server, &cfg.name)
            .await
            .map_err(|e| e.to_string())?,
        None => {
            let lookup = tokio::net::lookup_host((cfg.name.as_str(), cfg.port));
            tokio::time::timeout(dns_wire::QUERY_TIMEOUT * 2, lookup)
                .await
                .map_err(|_| format!("{}: resolver timed out", cfg.name))?
                .map_err(|e| format!("{}: {e}", cfg.name))?
                .map(|a| a.ip())
                .collect()
        }
    };
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return Err(format!("{}: no A/AAAA record", cfg.name));
    }
    Ok(ips)
}
