//! Upstreams made on demand for targets computed per request (a path gateway's `node:port`, an
//! address looked up in a route table): one server each, built from the route's template
//! settings, and kept in a bounded cache so that their keepalive pools and passive failure
//! state live on between requests. The least recently used target makes room when the cache is
//! full; [`DynamicUpstreams::reap`] drops targets idle for longer than the template's
//! `keepalive_timeout`.
//!
//! Their metrics are labelled by the cache's `name` (a route, a cluster), never by the target
//! address: the set of targets is unbounded, a Prometheus label set must not be.

use super::{Settings, Upstream};
use crate::config::{ServerAddress, ServerConfig, UpstreamConfig};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default bound on cached targets per route.
pub const DEFAULT_MAX_TARGETS: usize = 1024;

#[derive(Debug)]
struct Entry {
    upstream: Arc<Upstream>,
    last_used: Instant,
}

#[derive(Debug)]
pub struct DynamicUpstreams {
    /// Scheme, TLS, timeouts and pool limits of every target; its `servers` are ignored.
    template: Settings,
    /// Per-target passive accounting (`max_fails`, `fail_timeout`).
    max_fails: u32,
    fail_timeout: Duration,
    max_targets: usize,
    targets: Mutex<HashMap<(Arc<str>, ServerAddress), Entry>>,
}

impl DynamicUpstreams {
    pub fn new(
        template: Settings,
        max_fails: u32,
        fail_timeout: Duration,
        max_targets: usize,
    ) -> Self {
        DynamicUpstreams {
            template,
            max_fails,
            fail_timeout,
            max_targets: max_targets.max(1),
            targets: Mutex::new(HashMap::new()),
        }
    }

    /// The template's upstream settings (scheme, timeouts, pool).
    pub fn config(&self) -> &UpstreamConfig {
        &self.template.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Arc<str>, ServerAddress), Entry>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The upstream for `address`, counted under the metric name `name`; made on first use.
    pub fn get(&self, name: &str, address: ServerAddress) -> Arc<Upstream> {
        let now = Instant::now();
        let mut targets = self.lock();
        let key = (Arc::<str>::from(name), address);
        if let Some(e) = targets.get_mut(&key) {
            e.last_used = now;
            return e.upstream.clone();
        }
        if targets.len() >= self.max_targets {
            if let Some(oldest) = targets
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            {
                if let Some(e) = targets.remove(&oldest) {
                    e.upstream.retire();
                }
            }
        }
        let mut config = self.template.config.clone();
        config.name = name.to_owned();
        config.servers = vec![ServerConfig {
            address: key.1.clone(),
            weight: 1,
            max_fails: self.max_fails,
            fail_timeout: self.fail_timeout,
            backup: false,
            down: false,
            via: None,
        }];
        config.docker = None;
        config.dns = None;
        config.health_check = None;
        let settings = Settings {
            config: config.clone(),
            ..self.template.clone()
        };
        let upstream = Arc::new(Upstream::dynamic(&config, settings));
        targets.insert(
            key,
            Entry {
                upstream: upstream.clone(),
                last_used: now,
            },
        );
        upstream
    }

    /// Reaps idle pooled connections and forgets targets unused for `keepalive_timeout` with
    /// nothing in flight (run every second).
    pub fn reap(&self, now: Instant) {
        let idle_for = self.template.pool.idle_timeout;
        let mut targets = self.lock();
        targets.retain(|_, e| {
            e.upstream.reap_idle(now);
            let busy = e
                .upstream
                .servers()
                .servers
                .iter()
                .any(|s| s.active.load(Ordering::Relaxed) > 0);
            let keep = busy || now.saturating_duration_since(e.last_used) < idle_for;
            if !keep {
                e.upstream.retire();
            }
            keep
        });
    }

    /// Targets currently cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
