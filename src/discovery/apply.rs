//! Runs the discovery sources (each upstream's `discovery`, and one DNS source per hostname
//! static server) and applies their snapshots to the live upstreams. Sources restart only when
//! their own config changes on reload.

use super::{dns, docker, DiscoverySnapshot};
use crate::config::{
    Config, DnsDiscoveryConfig, DockerDiscoveryConfig, ServerAddress, ServerConfig,
    DEFAULT_DNS_INTERVAL,
};
use crate::metrics::metrics;
use crate::runtime::Shared;
use crate::upstream::{is_resolved_static, static_key, Member, Source};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a source looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceConfig {
    Docker(DockerDiscoveryConfig),
    Dns(DnsDiscoveryConfig),
}

/// One wanted source: its key in the upstreams' discovered sets, the upstream it feeds, and
/// the parameters its servers get.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    owner: String,
    source: SourceConfig,
    template: ServerConfig,
}

/// Every source the config asks for, by key: the upstream name for `discovery`,
/// `UPSTREAM/servers:ADDR` (see [`static_key`]) for a hostname static server.
fn wanted(config: &Config) -> HashMap<String, Wanted> {
    let mut out = HashMap::new();
    for u in &config.upstreams {
        let template = |weight, max_fails, fail_timeout| ServerConfig {
            address: ServerAddress::from_socket(([0, 0, 0, 0], 0).into()),
            weight,
            max_fails,
            fail_timeout,
            backup: false,
            down: false,
            via: None,
        };
        if let Some(d) = &u.docker {
            let w = Wanted {
                owner: u.name.clone(),
                source: SourceConfig::Docker(d.clone()),
                template: template(d.weight, d.max_fails, d.fail_timeout),
            };
            out.insert(u.name.clone(), w);
        }
        if let Some(d) = &u.dns {
            let w = Wanted {
                owner: u.name.clone(),
                source: SourceConfig::Dns(d.clone()),
                template: template(d.weight, d.max_fails, d.fail_timeout),
            };
            out.insert(u.name.clone(), w);
        }
        for s in u.servers.iter().filter(|s| is_resolved_static(s)) {
            let dns = DnsDiscoveryConfig {
                name: s.address.host.clone(),
                port: s.address.port,
                interval: DEFAULT_DNS_INTERVAL,
                weight: s.weight,
                max_fails: s.max_fails,
                fail_timeout: s.fail_timeout,
                resolver: config.resolver,
            };
            let w = Wanted {
                owner: u.name.clone(),
                source: SourceConfig::Dns(dns),
                template: s.clone(),
            };
            out.insert(static_key(&u.name, s), w);
        }
    }
    out
}

struct Running {
    config: Wanted,
    tasks: [JoinHandle<()>; 2],
    status: watch::Receiver<DiscoverySnapshot>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The discovery sources, by the upstream that configured them.
#[derive(Default)]
pub struct DiscoveryManager {
    running: Mutex<HashMap<String, Running>>,
}

impl DiscoveryManager {
    /// Starts, restarts or stops sources to match the current runtime.
    pub fn reconcile(&self, shared: &Arc<Shared>) {
        let rt = shared.runtime_full();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let wanted = wanted(&rt.config);
        running.retain(|key, r| {
            let keep = wanted.get(key).is_some_and(|c| *c == r.config);
            if !keep {
                tracing::info!(source = %key, "stopping discovery");
                for u in &rt.upstreams {
                    u.set_discovered(key, Vec::new());
                }
                let _ = metrics().discovery_up.remove_label_values(&[key.as_str()]);
            }
            keep
        });
        for (key, w) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let (tx, rx) = watch::channel(DiscoverySnapshot::default());
            let source = match &w.source {
                SourceConfig::Docker(cfg) => {
                    tracing::info!(upstream = %w.owner, endpoint = %cfg.endpoint, network = %cfg.network, "starting docker discovery");
                    tokio::spawn(docker::run(cfg.clone(), tx))
                }
                SourceConfig::Dns(cfg) => {
                    tracing::info!(upstream = %w.owner, name = %cfg.name, resolver = ?cfg.resolver, "starting dns discovery");
                    tokio::spawn(dns::run(cfg.clone(), tx))
                }
            };
            let sink = tokio::spawn(apply_loop(
                key.clone(),
                w.clone(),
                rx.clone(),
                shared.clone(),
            ));
            running.insert(
                key,
                Running {
                    config: w,
                    tasks: [source, sink],
                    status: rx,
                },
            );
        }
    }

    /// Whether each source last reached its daemon, by upstream.
    pub fn status(&self) -> BTreeMap<String, DiscoverySnapshot> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .map(|(k, r)| (k.clone(), r.status.borrow().clone()))
            .collect()
    }
}

async fn apply_loop(
    key: String,
    w: Wanted,
    mut rx: watch::Receiver<DiscoverySnapshot>,
    shared: Arc<Shared>,
) {
    let owner = w.owner.as_str();
    loop {
        let snap = rx.borrow_and_update().clone();
        if key == owner {
            metrics()
                .discovery_up
                .with_label_values(&[owner])
                .set(i64::from(snap.up));
        }
        let rt = shared.runtime_full();
        let mut by_upstream: HashMap<&str, Vec<Member>> = rt
            .upstreams
            .iter()
            .map(|u| (u.name.as_str(), Vec::new()))
            .collect();
        for b in &snap.backends {
            let target = b.upstream.as_deref().unwrap_or(owner);
            let source = match w.source {
                SourceConfig::Docker(_) => Source::Docker(b.name.clone()),
                SourceConfig::Dns(_) => Source::Dns(b.name.clone()),
            };
            match by_upstream.get_mut(target) {
                Some(list) => list.push(Member {
                    config: ServerConfig {
                        address: address(&w.template.address, b.addr),
                        weight: b.weight.unwrap_or(w.template.weight).max(1),
                        ..w.template.clone()
                    },
                    source,
                }),
                None => {
                    tracing::warn!(container = %b.name, upstream = %target, "label swarmgate.upstream names an unknown upstream")
                }
            }
        }
        for u in &rt.upstreams {
            let members = by_upstream.remove(u.name.as_str()).unwrap_or_default();
            u.set_discovered(&key, members);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The address of a discovered backend: for a hostname static server, the name with the
/// resolved IP (TLS still names and verifies the host), else the bare socket address.
fn address(template: &ServerAddress, addr: std::net::SocketAddr) -> ServerAddress {
    match template.ip {
        None => ServerAddress {
            host: template.host.clone(),
            port: addr.port(),
            ip: Some(addr.ip()),
        },
        Some(_) => ServerAddress::from_socket(addr),
    }
}
