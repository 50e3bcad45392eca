//! One upstream server and the live state that the proxy, the health checker and discovery
//! write: health, in-flight count, draining, its connection pool and counters.

use super::pool::Pool;
use crate::config::{ServerAddress, ServerConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// Where a server came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Static,
    /// Docker discovery; the container or task name.
    Docker(String),
    /// DNS discovery or a hostname `address`; the name resolved.
    Dns(String),
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Static => "static",
            Source::Docker(_) => "docker",
            Source::Dns(_) => "dns",
        }
    }
}

/// Active health as last decided by the checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// No active check configured, or none has concluded yet with `default_down: false`.
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}

/// The outcome of the most recent active probe, for the admin API.
#[derive(Debug, Clone, Default)]
pub struct LastCheck {
    pub at: Option<SystemTime>,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug)]
pub struct Server {
    /// Dial address as configured or discovered.
    pub address: ServerAddress,
    /// `address` rendered once, for labels, logs and the API.
    pub label: String,
    pub config: ServerConfig,
    pub source: Source,
    health: AtomicU8,
    draining: AtomicBool,
    /// Requests in flight on this server.
    pub active: AtomicUsize,
    /// Upstream connections currently open (idle or busy).
    pub open_conns: AtomicUsize,
    /// Responses received (any status) and failures (connect/timeout/invalid), lifetime.
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub pool: Pool,
    /// Multiplexed HTTP/2 connections.
    pub h2: super::h2pool::H2Pool,
    /// Cached resolution of a hostname address; cleared on connect failure.
    resolved: Mutex<Option<SocketAddr>>,
    pub last_check: Mutex<LastCheck>,
    /// Its `swarmgate_requests_total` series by status code.
    pub responses: crate::metrics::CodeCounters,
}

impl Server {
    pub fn new(config: ServerConfig, source: Source, health: Health) -> Self {
        Server {
            label: config.address.to_string(),
            address: config.address.clone(),
            config,
            source,
            health: AtomicU8::new(health as u8),
            draining: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            open_conns: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            pool: Pool::default(),
            h2: Default::default(),
            resolved: Mutex::new(None),
            last_check: Mutex::new(LastCheck::default()),
            responses: crate::metrics::CodeCounters::default(),
        }
    }

    pub fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Unknown,
        }
    }

    pub fn set_health(&self, h: Health) {
        self.health.store(h as u8, Ordering::Relaxed);
    }

    /// Not unhealthy by active checks and not `down` in the config. A draining server is no
    /// longer in the live set, so only requests that took the old set before the swap can still
    /// pick it; excluding it there would turn a reload into spurious 502s.
    pub fn usable(&self) -> bool {
        !self.config.down && self.health() != Health::Unhealthy && !self.tunnel_down()
    }

    /// Reached `via` a tunnel agent of which none is connected to this hub now.
    pub fn tunnel_down(&self) -> bool {
        self.config
            .via
            .as_deref()
            .is_some_and(|a| !crate::tunnel::registry().connected(a))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Removed from its upstream: take no new requests, close idle connections; requests in
    /// flight finish on their own connections.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.pool.clear();
        self.h2.clear();
    }

    /// The socket address to dial: the IP literal, else a cached or fresh DNS resolution.
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        if let Some(ip) = self.address.ip {
            return Ok(SocketAddr::new(ip, self.address.port));
        }
        if let Some(a) = *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(a);
        }
        let addr = tokio::net::lookup_host((self.address.host.as_str(), self.address.port))
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} resolved to no address", self.address.host),
                )
            })?;
        *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
        Ok(addr)
    }

    /// Forget a cached resolution (after a connect failure), so the next dial re-resolves.
    pub fn forget_resolution(&self) {
        if self.address.ip.is_none() {
            *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}
