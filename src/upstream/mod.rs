//! Live upstream groups: settings and the server set swap atomically (`ArcSwap`) while requests
//! flow. Membership comes from the static `servers` list and from discovery; a server that stays
//! keeps its health, failure counts and pooled connections, a removed one drains.

pub mod body;
mod checkout;
mod connect;
pub mod dynamic;
pub mod h1;
mod h2conn;
pub mod h2pool;
mod h2send;
mod io;
pub mod pool;
mod sender;
mod server;
mod set;
pub mod transport;

pub use body::{UpBody, UpstreamError};
pub use checkout::checkout;
pub use connect::{connect, ConnectError};
pub use dynamic::DynamicUpstreams;
pub use pool::{Conn, PoolLimits};
pub use sender::{SendError, Sender};
pub use server::{Health, LastCheck, Server, Source};
pub use set::{ServerSet, Tried};

use crate::config::{ServerAddress, ServerConfig, UpstreamConfig};
use crate::tls::{self, TlsError};
use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};

/// Per-upstream settings derived from its config (rebuilt on reload).
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: UpstreamConfig,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub pool: PoolLimits,
}

impl Settings {
    pub fn new(config: &UpstreamConfig) -> Result<Self, TlsError> {
        let tls = config
            .tls
            .as_ref()
            .map(|t| tls::client_config(t, config.protocol))
            .transpose()?;
        Ok(Settings {
            pool: PoolLimits {
                max_idle: config.keepalive,
                idle_timeout: config.keepalive_timeout,
                max_requests: config.keepalive_requests,
            },
            tls,
            config: config.clone(),
        })
    }

    /// Health a new server starts with.
    fn initial_health(&self) -> Health {
        match &self.config.health_check {
            Some(h) if h.default_down => Health::Unhealthy,
            _ => Health::Unknown,
        }
    }
}

/// A member wanted by a source, before it becomes a [`Server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub config: ServerConfig,
    pub source: Source,
}

/// Whether a static server is expanded into one server per resolved address: a hostname,
/// not dialled through a tunnel agent (the agent resolves it).
pub fn is_resolved_static(s: &ServerConfig) -> bool {
    s.address.ip.is_none() && s.via.is_none()
}

/// The discovery key under which the addresses of upstream `upstream`'s hostname static
/// server `s` are published.
pub fn static_key(upstream: &str, s: &ServerConfig) -> String {
    format!("{upstream}/servers:{}", s.address)
}

#[derive(Debug, Default)]
struct Members {
    statics: Vec<Member>,
    /// By discovery source (the upstream that configured it).
    discovered: std::collections::BTreeMap<String, Vec<Member>>,
}

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    settings: ArcSwap<Settings>,
    set: ArcSwap<ServerSet>,
    members: Mutex<Members>,
    /// Its per-upstream metric series.
    pub series: crate::metrics::UpstreamSeries,
    /// Made on demand for a per-request target (`dynamic.rs`): its servers get no series of
    /// their own in /metrics (they are counted under the upstream's name only).
    pub dynamic: bool,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Self, TlsError> {
        Ok(Self::with_settings(config, Settings::new(config)?))
    }

    /// A new upstream from already prepared settings.
    pub fn with_settings(config: &UpstreamConfig, settings: Settings) -> Self {
        let up = Upstream {
            name: config.name.clone(),
            settings: ArcSwap::from_pointee(settings),
            set: ArcSwap::from_pointee(ServerSet::empty()),
            members: Mutex::new(Members::default()),
            series: crate::metrics::UpstreamSeries::default(),
            dynamic: false,
        };
        up.set_statics(config);
        up
    }

    /// A one-target upstream made on demand (see `dynamic.rs`).
    fn dynamic(config: &UpstreamConfig, settings: Settings) -> Self {
        Upstream {
            dynamic: true,
            ..Self::with_settings(config, settings)
        }
    }

    /// Out of use: every server drains (idle connections close, in-flight requests finish).
    pub fn retire(&self) {
        for s in &self.set.load().servers {
            s.drain();
        }
    }

    /// Applies a reloaded config of the same name; the prepared `settings` were built (and could
    /// fail) before anything was swapped.
    pub fn reconfigure(&self, config: &UpstreamConfig, settings: Settings) {
        self.settings.store(Arc::new(settings));
        self.set_statics(config);
    }

    fn set_statics(&self, config: &UpstreamConfig) {
        let mut m = self.members.lock().unwrap_or_else(|e| e.into_inner());
        m.statics = config
            .servers
            .iter()
            .map(|s| Member {
                config: s.clone(),
                source: Source::Static,
            })
            .collect();
        self.rebuild(&m);
    }

    /// Replaces the members that discovery source `source` found for this upstream.
    pub fn set_discovered(&self, source: &str, members: Vec<Member>) {
        let mut m = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if m.discovered
            .get(source)
            .map_or(members.is_empty(), |old| *old == members)
        {
            return;
        }
        if members.is_empty() {
            m.discovered.remove(source);
        } else {
            m.discovered.insert(source.to_owned(), members);
        }
        self.rebuild(&m);
    }

    fn rebuild(&self, m: &Members) {
        let old = self.set.load_full();
        let initial = self.settings.load().initial_health();
        let mut servers: Vec<Arc<Server>> = Vec::with_capacity(old.servers.len() + 1);
        let mut seen: Vec<&ServerAddress> = Vec::new();
        // A hostname `address` gives way to its resolved addresses once resolved (until then it
        // is dialled by name).
        let statics = m.statics.iter().filter(|s| {
            !(is_resolved_static(&s.config)
                && m.discovered
                    .contains_key(&static_key(&self.name, &s.config)))
        });
        for member in statics.chain(m.discovered.values().flatten()) {
            if seen.contains(&&member.config.address) {
                continue; // a static entry wins over a discovered one at the same address
            }
            seen.push(&member.config.address);
            let kept = old.servers.iter().find(|s| {
                s.config == member.config && s.source == member.source && !s.is_draining()
            });
            let server = match kept {
                Some(s) => s.clone(),
                None => {
                    // Same address with new parameters: a new server that keeps the health verdict.
                    let health = old
                        .servers
                        .iter()
                        .find(|s| s.address == member.config.address)
                        .map_or(initial, |s| s.health());
                    Arc::new(Server::new(
                        member.config.clone(),
                        member.source.clone(),
                        health,
                    ))
                }
            };
            servers.push(server);
        }
        for s in &old.servers {
            if !servers.iter().any(|n| Arc::ptr_eq(n, s)) {
                tracing::info!(upstream = %self.name, server = %s.label, source = s.source.kind(), "server removed; draining");
                s.drain();
            }
        }
        for s in &servers {
            if !old.servers.iter().any(|o| Arc::ptr_eq(o, s)) {
                tracing::info!(upstream = %self.name, server = %s.label, source = s.source.kind(), weight = s.config.weight, "server added");
            }
        }
        self.set
            .store(Arc::new(ServerSet::build(servers, Some(&old))));
    }

    /// The current server set (a request holds it for all its attempts).
    pub fn servers(&self) -> Arc<ServerSet> {
        self.set.load_full()
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Closes pooled connections that outlived `keepalive_timeout` and trims each pool to
    /// `keepalive` idle connections; closes HTTP/2 connections idle that long but one per
    /// server (run every second).
    pub fn reap_idle(&self, now: std::time::Instant) {
        let limits = self.settings.load().pool;
        for s in &self.set.load().servers {
            s.pool.reap(now, limits);
            s.h2.reap(limits.idle_timeout);
        }
    }
}
