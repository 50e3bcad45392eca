//! The live state behind the proxy: routes and upstreams built from a validated config and
//! swapped as a whole on reload. A reload builds everything that can fail first (TLS contexts)
//! and only then touches live upstreams, so a bad config leaves the old one serving.

use crate::config::{ClientLimits, Config, RouteTarget};
use crate::tls::TlsError;
use crate::upstream::{Settings, Upstream};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A live route: what it matches (listener, host, path prefix) and the target it yields.
#[derive(Debug)]
pub struct Route {
    pub path_prefix: String,
    pub host: Option<String>,
    /// The listener (as configured) it is limited to; `None` = every listener.
    pub listen: Option<SocketAddr>,
    pub target: Target,
}

/// Where a route sends a request. Each kind turns the request into an upstream to forward to
/// (and the request target to send); the handler forwards, and errors map to statuses in
/// `proxy/error.rs`, the same for every kind.
#[derive(Debug)]
pub enum Target {
    /// A named upstream group.
    Upstream(Arc<Upstream>),
}

impl Target {
    /// Periodic upkeep of the target's own connections (every second).
    pub fn reap(&self, _now: Instant) {
        match self {
            // Named upstreams are reaped through `Runtime::upstreams`.
            Target::Upstream(_) => {}
        }
    }
}

#[derive(Debug)]
pub struct Runtime {
    pub config: Arc<Config>,
    pub routes: Vec<Route>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub client: ClientLimits,
    pub access_log: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("upstream {upstream}: {source}")]
    Tls { upstream: String, source: TlsError },
}

impl Runtime {
    /// Builds the runtime for `config`, reusing the live upstreams of `old` by name.
    pub fn build(config: Arc<Config>, old: Option<&Runtime>) -> Result<Runtime, BuildError> {
        // Phase 1: everything fallible.
        let mut prepared = Vec::with_capacity(config.upstreams.len());
        for u in &config.upstreams {
            let settings = Settings::new(u).map_err(|source| BuildError::Tls {
                upstream: u.name.clone(),
                source,
            })?;
            prepared.push((u, settings));
        }
        // Phase 2: apply.
        let mut upstreams = Vec::with_capacity(prepared.len());
        for (u, settings) in prepared {
            let live = match old.and_then(|o| o.upstream(&u.name)) {
                Some(existing) => {
                    existing.reconfigure(u, settings);
                    existing.clone()
                }
                None => Arc::new(Upstream::with_settings(u, settings)),
            };
            upstreams.push(live);
        }
        let routes = config
            .routes
            .iter()
            .filter_map(|r| {
                let target = match &r.target {
                    RouteTarget::Upstream(name) => {
                        Target::Upstream(upstreams.iter().find(|u| &u.name == name)?.clone())
                    }
                };
                Some(Route {
                    path_prefix: r.path_prefix.clone(),
                    host: r.host.clone(),
                    listen: r.listen,
                    target,
                })
            })
            .collect();
        Ok(Runtime {
            client: config.client.clone(),
            access_log: config.access_log,
            config,
            routes,
            upstreams,
        })
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// First route whose listener (if any), host (if any) and path prefix match. `listener` is
    /// the configured address of the listener the request arrived on.
    pub fn route(&self, listener: SocketAddr, host: Option<&str>, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| {
            path.starts_with(r.path_prefix.as_str())
                && r.listen.is_none_or(|l| l == listener)
                && r.host
                    .as_deref()
                    .is_none_or(|h| host.is_some_and(|got| got.eq_ignore_ascii_case(h)))
        })
    }
}

/// State shared by every listener, the admin API and background tasks.
#[derive(Debug)]
pub struct Shared {
    runtime: ArcSwap<Runtime>,
    shutting_down: AtomicBool,
}

impl Shared {
    pub fn new(rt: Runtime) -> Self {
        Shared {
            runtime: ArcSwap::from_pointee(rt),
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn runtime(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.runtime.load()
    }

    pub fn runtime_full(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn swap(&self, rt: Runtime) {
        self.runtime.store(Arc::new(rt));
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
