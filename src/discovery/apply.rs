//! Runs the discovery source of each upstream and applies its snapshots to the live upstreams.
//! Sources restart only when their own config changes on reload.

use super::{docker, DiscoverySnapshot};
use crate::config::{DockerDiscoveryConfig, ServerAddress, ServerConfig};
use crate::metrics::metrics;
use crate::runtime::Shared;
use crate::upstream::{Member, Source};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Running {
    config: DockerDiscoveryConfig,
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
        let wanted: HashMap<&str, &DockerDiscoveryConfig> = rt
            .config
            .upstreams
            .iter()
            .filter_map(|u| u.docker.as_ref().map(|d| (u.name.as_str(), d)))
            .collect();
        running.retain(|name, r| {
            let keep = wanted.get(name.as_str()).is_some_and(|c| **c == r.config);
            if !keep {
                tracing::info!(upstream = %name, "stopping docker discovery");
                for u in &rt.upstreams {
                    u.set_discovered(name, Vec::new());
                }
                let _ = metrics().discovery_up.remove_label_values(&[name.as_str()]);
            }
            keep
        });
        for (name, cfg) in wanted {
            if running.contains_key(name) {
                continue;
            }
            tracing::info!(upstream = %name, endpoint = %cfg.endpoint, network = %cfg.network, "starting docker discovery");
            let (tx, rx) = watch::channel(DiscoverySnapshot::default());
            let source = tokio::spawn(docker::run(cfg.clone(), tx));
            let sink = tokio::spawn(apply_loop(
                name.to_owned(),
                cfg.clone(),
                rx.clone(),
                shared.clone(),
            ));
            running.insert(
                name.to_owned(),
                Running {
                    config: cfg.clone(),
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
    owner: String,
    cfg: DockerDiscoveryConfig,
    mut rx: watch::Receiver<DiscoverySnapshot>,
    shared: Arc<Shared>,
) {
    loop {
        let snap = rx.borrow_and_update().clone();
        metrics()
            .discovery_up
            .with_label_values(&[owner.as_str()])
            .set(i64::from(snap.up));
        let rt = shared.runtime_full();
        let mut by_upstream: HashMap<&str, Vec<Member>> = rt
            .upstreams
            .iter()
            .map(|u| (u.name.as_str(), Vec::new()))
            .collect();
        for b in &snap.backends {
            let target = b.upstream.as_deref().unwrap_or(owner.as_str());
            match by_upstream.get_mut(target) {
                Some(list) => list.push(Member {
                    config: ServerConfig {
                        address: ServerAddress::from_socket(b.addr),
                        weight: b.weight.unwrap_or(cfg.weight).max(1),
                        max_fails: cfg.max_fails,
                        fail_timeout: cfg.fail_timeout,
                        backup: false,
                        down: false,
                        via: None,
                    },
                    source: Source::Docker(b.name.clone()),
                }),
                None => {
                    tracing::warn!(container = %b.name, upstream = %target, "label swarmgate.upstream names an unknown upstream")
                }
            }
        }
        for u in &rt.upstreams {
            let members = by_upstream.remove(u.name.as_str()).unwrap_or_default();
            u.set_discovered(&owner, members);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
