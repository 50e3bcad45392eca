//! A point-in-time view of every upstream and server, shared by the JSON API and the status
//! page. Built from the live sets without blocking the request path (one short lock per set).

use crate::app::App;
use crate::config::{HealthCheckKind, WhenAllDown};
use crate::upstream::Health;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub upstreams: Vec<UpstreamView>,
}

#[derive(Debug, Serialize)]
pub struct UpstreamView {
    pub name: String,
    pub scheme: &'static str,
    /// `fail` or `try_all`.
    pub when_all_down: &'static str,
    /// Servers selectable now.
    pub healthy_servers: usize,
    pub servers: Vec<ServerView>,
    pub health_check: Option<CheckView>,
    /// Discovery status (`kind` docker or dns); `null` without discovery.
    pub discovery: Option<DiscoveryView>,
}

#[derive(Debug, Serialize)]
pub struct CheckView {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `GET /` for http checks, empty for tcp.
    pub request: String,
    pub interval_ms: u128,
    pub timeout_ms: u128,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Debug, Serialize)]
pub struct DiscoveryView {
    pub kind: &'static str,
    pub up: bool,
    pub error: Option<String>,
    pub backends: usize,
}

#[derive(Debug, Serialize)]
pub struct ServerView {
    pub address: String,
    /// Container or task name for discovered servers.
    pub name: Option<String>,
    pub weight: u32,
    /// Selectable now: not down, not unhealthy, not draining, not banned.
    pub healthy: bool,
    /// `up`, `down` (config `down` or banned by passive failures), `unhealthy` (active check),
    /// `tunnel_down` (its `via` agent is not connected) or `draining`.
    pub state: &'static str,
    /// Active-check verdict: `unknown`, `healthy` or `unhealthy`.
    pub health: &'static str,
    pub source: &'static str,
    /// Why a `down` server is down: `down in config` or `failed out (passive)`.
    pub down_reason: Option<&'static str>,
    pub backup: bool,
    /// Passive failures in the current `fail_timeout` window.
    pub fails: u32,
    pub max_fails: u32,
    pub active_requests: usize,
    /// Responses received from this server (any status), lifetime.
    pub requests: u64,
    /// Attempts that failed (connect, timeout, invalid response), lifetime.
    pub failures: u64,
    /// Requests answered with a 5xx status while on this server (from the metrics).
    pub responses_5xx: u64,
    pub connections_active: usize,
    pub connections_idle: usize,
    pub last_check: Option<String>,
    pub last_check_ok: Option<bool>,
    /// Outcome of the last probe, e.g. `HTTP 200` or `connect: Connection refused`.
    pub detail: String,
    /// Seconds since the last probe (for the status page).
    #[serde(skip)]
    pub last_check_age: Option<u64>,
}

fn health_str(h: Health) -> &'static str {
    match h {
        Health::Unknown => "unknown",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

/// The view of everything `app` serves right now.
pub fn snapshot(app: &App) -> Snapshot {
    let rt = app.shared.runtime_full();
    let discovery = app.discovery.status();
    let responses = crate::metrics::metrics().responses_by_server();
    let now = Instant::now();
    let wall = SystemTime::now();
    let upstreams = rt
        .upstreams
        .iter()
        .map(|u| {
            let settings = u.settings();
            let cfg = &settings.config;
            let set = u.servers();
            let servers: Vec<ServerView> = set
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let (fails, banned) = set.passive_state(i, now);
                    let health = s.health();
                    let state = if s.is_draining() {
                        "draining"
                    } else if s.config.down {
                        "down"
                    } else if s.tunnel_down() {
                        "tunnel_down"
                    } else if health == Health::Unhealthy {
                        "unhealthy"
                    } else if banned {
                        "down"
                    } else {
                        "up"
                    };
                    let last = s
                        .last_check
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let idle = s.pool.idle_count();
                    let open = s.open_conns.load(Ordering::Relaxed);
                    let counts = responses
                        .get(&(u.name.clone(), s.label.clone()))
                        .copied()
                        .unwrap_or_default();
                    ServerView {
                        address: s.label.clone(),
                        name: match &s.source {
                            crate::upstream::Source::Docker(n) => Some(n.clone()),
                            crate::upstream::Source::Dns(n) => Some(n.clone()),
                            crate::upstream::Source::Static => None,
                        },
                        weight: s.config.weight,
                        healthy: set.selectable(i, now),
                        state,
                        health: health_str(health),
                        source: s.source.kind(),
                        down_reason: if s.config.down {
                            Some("down in config")
                        } else if s.tunnel_down() {
                            Some("tunnel down: no agent of its `via` name connected")
                        } else if banned {
                            Some("failed out (passive, fail_timeout)")
                        } else {
                            None
                        },
                        backup: s.config.backup,
                        fails,
                        max_fails: s.config.max_fails,
                        active_requests: s.active.load(Ordering::Relaxed),
                        requests: s.requests.load(Ordering::Relaxed),
                        failures: s.failures.load(Ordering::Relaxed),
                        responses_5xx: counts.server_errors,
                        connections_active: open.saturating_sub(idle),
                        connections_idle: idle,
                        last_check: last.at.map(super::rfc3339::format),
                        last_check_ok: last.at.map(|_| last.ok),
                        detail: last.detail,
                        last_check_age: last
                            .at
                            .map(|t| wall.duration_since(t).map_or(0, |d| d.as_secs())),
                    }
                })
                .collect();
            UpstreamView {
                name: u.name.clone(),
                scheme: cfg.scheme.as_str(),
                when_all_down: match cfg.when_all_down {
                    WhenAllDown::Fail => "fail",
                    WhenAllDown::TryAll => "try_all",
                },
                healthy_servers: servers.iter().filter(|s| s.healthy).count(),
                servers,
                health_check: cfg.health_check.as_ref().map(|h| CheckView {
                    kind: match h.kind {
                        HealthCheckKind::Http => "http",
                        HealthCheckKind::Tcp => "tcp",
                        HealthCheckKind::Grpc => "grpc",
                    },
                    request: match h.kind {
                        HealthCheckKind::Http => format!("{} {}", h.method, h.path),
                        HealthCheckKind::Tcp => String::new(),
                        HealthCheckKind::Grpc => {
                            format!("grpc.health.v1.Health/Check {:?}", h.service)
                        }
                    },
                    interval_ms: h.interval.as_millis(),
                    timeout_ms: h.timeout.as_millis(),
                    rise: h.rise,
                    fall: h.fall,
                }),
                discovery: discovery.get(&u.name).map(|d| DiscoveryView {
                    kind: if cfg.dns.is_some() { "dns" } else { "docker" },
                    up: d.up,
                    error: d.error.clone(),
                    backends: d.backends.len(),
                }),
            }
        })
        .collect();
    Snapshot { upstreams }
}
