//! The live state behind the proxy: routes and upstreams built from a validated config and
//! swapped as a whole on reload. A reload builds everything that can fail first (TLS contexts)
//! and only then touches live upstreams, so a bad config leaves the old one serving.

use crate::config::{ClientLimits, Config, RouteTarget};
use crate::route::gateway::Gateway;
use crate::route::table::{Table, TableBuildError};
use crate::tls::TlsError;
use crate::upstream::{Settings, Upstream};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A live route: what it matches (listener, host, path prefix) and the target it yields.
#[derive(Debug)]
pub struct Route {
    pub path_prefix: String,
    /// The path must equal `path_prefix` (route key `path`).
    pub exact: bool,
    pub host: Option<String>,
    /// The listener (as configured) it is limited to; `None` = every listener.
    pub listen: Option<SocketAddr>,
    pub target: Target,
}

/// Where a route sends a request. Each kind turns the request into an upstream to forward to
/// (and the request target to send); the handler forwards, and errors map to statuses in
/// `proxy/error.rs`, the same for every kind.
#[derive(Debug, Clone)]
pub enum Target {
    /// A named upstream group.
    Upstream(Arc<Upstream>),
    /// Target in the request path, checked against an allowlist (`route/gateway`).
    Gateway(Arc<Gateway>),
    /// Target looked up by the first path segment after the prefix (`route/table`).
    Table(Arc<Table>),
}

impl Target {
    /// Periodic upkeep of the target's own connections (every second).
    pub fn reap(&self, now: Instant) {
        match self {
            // Named upstreams are reaped through `Runtime::upstreams`.
            Target::Upstream(_) => {}
            Target::Gateway(g) => g.reap(now),
            Target::Table(t) => t.reap(now),
        }
    }
}

#[derive(Debug)]
pub struct Runtime {
    pub config: Arc<Config>,
    pub routes: Vec<Route>,
    pub upstreams: Vec<Arc<Upstream>>,
    /// Shared with every client connection (which keeps the limits it started with).
    pub client: Arc<ClientLimits>,
    pub access_log: bool,
    /// `admin.token_file`'s token (read at start and reload), when configured.
    pub admin_token: Option<Arc<str>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("upstream {upstream}: {source}")]
    Tls { upstream: String, source: TlsError },
    #[error("routes[{route}].gateway: {source}")]
    GatewayTls { route: usize, source: TlsError },
    #[error("routes[{route}].table: {source}")]
    Table {
        route: usize,
        source: TableBuildError,
    },
    #[error("admin.token_file {path}: {why}")]
    AdminToken { path: String, why: String },
}

/// The first target of `old`'s routes that `same` accepts (a live gateway or table to keep).
fn kept(old: Option<&Runtime>, same: impl Fn(&Target) -> bool) -> Option<Target> {
    old?.routes
        .iter()
        .map(|r| &r.target)
        .find(|t| same(t))
        .cloned()
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
        // Kinds with state of their own (gateway pools, table stores and caches) are kept
        // across a reload when their route is unchanged; a changed table reuses its store by
        // name. Named upstreams are resolved in phase 2.
        let mut computed = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let target = match &r.target {
                RouteTarget::Upstream(_) => None,
                RouteTarget::Gateway(g) => Some(
                    match kept(
                        old,
                        |t| matches!(t, Target::Gateway(l) if l.same(&r.path_prefix, g)),
                    ) {
                        Some(live) => live,
                        None => Target::Gateway(Arc::new(
                            Gateway::new(&r.path_prefix, g)
                                .map_err(|source| BuildError::GatewayTls { route: i, source })?,
                        )),
                    },
                ),
                RouteTarget::Table(t) => Some(
                    match kept(
                        old,
                        |x| matches!(x, Target::Table(l) if l.same(&r.path_prefix, t)),
                    ) {
                        Some(live) => live,
                        None => Target::Table(Arc::new(
                            Table::new(&r.path_prefix, t, &config.state_dir)
                                .map_err(|source| BuildError::Table { route: i, source })?,
                        )),
                    },
                ),
            };
            computed.push(target);
        }
        let admin_token = match &config.admin_token_file {
            None => None,
            Some(path) => Some(read_token(path)?),
        };
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
            .zip(computed)
            .filter_map(|(r, computed)| {
                let target = match (&r.target, computed) {
                    (_, Some(t)) => t,
                    (RouteTarget::Upstream(name), None) => {
                        Target::Upstream(upstreams.iter().find(|u| &u.name == name)?.clone())
                    }
                    (_, None) => return None,
                };
                Some(Route {
                    path_prefix: r.path_prefix.clone(),
                    exact: r.exact,
                    host: r.host.clone(),
                    listen: r.listen,
                    target,
                })
            })
            .collect();
        Ok(Runtime {
            client: Arc::new(config.client.clone()),
            access_log: config.access_log,
            admin_token,
            config,
            routes,
            upstreams,
        })
    }

    /// The live table route named `name`.
    pub fn table(&self, name: &str) -> Option<&Arc<Table>> {
        self.routes.iter().find_map(|r| match &r.target {
            Target::Table(t) if t.name() == name => Some(t),
            _ => None,
        })
    }

    /// Every live table route.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.routes.iter().filter_map(|r| match &r.target {
            Target::Table(t) => Some(t),
            _ => None,
        })
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// First route whose listener (if any), host (if any) and path prefix match. `listener` is
    /// the configured address of the listener the request arrived on.
    pub fn route(&self, listener: SocketAddr, host: Option<&str>, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| {
            (if r.exact {
                path == r.path_prefix
            } else {
                path.starts_with(r.path_prefix.as_str())
            }) && r.listen.is_none_or(|l| l == listener)
                && r.host
                    .as_deref()
                    .is_none_or(|h| host.is_some_and(|got| got.eq_ignore_ascii_case(h)))
        })
    }
}

/// Reads a token file: its content without surrounding whitespace, not empty.
fn read_token(path: &std::path::Path) -> Result<Arc<str>, BuildError> {
    let err = |why: String| BuildError::AdminToken {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(Arc::from(token))
}

/// State shared by every listener, the admin API and background tasks.
#[derive(Debug)]
pub struct Shared {
    runtime: ArcSwap<Runtime>,
    shutting_down: AtomicBool,
    /// The proxy and admin addresses bound (routes that compute targets never dial them).
    own: OnceLock<Vec<SocketAddr>>,
}

impl Shared {
    pub fn new(rt: Runtime) -> Self {
        Shared {
            runtime: ArcSwap::from_pointee(rt),
            shutting_down: AtomicBool::new(false),
            own: OnceLock::new(),
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

    /// Records the addresses swarmgate listens on, once bound.
    pub fn set_own_addrs(&self, addrs: Vec<SocketAddr>) {
        let _ = self.own.set(addrs);
    }

    /// The proxy and admin addresses bound (empty before binding).
    pub fn own_addrs(&self) -> &[SocketAddr] {
        self.own.get().map_or(&[], Vec::as_slice)
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
