//! Docker Engine discovery: containers mode (this daemon's running containers on a network) and
//! swarm mode (every task and standalone container attached to a swarm overlay, cluster-wide).
//!
//! [`run`] keeps one session with the engine: it subscribes to the event stream, re-lists on each
//! relevant event (a burst is coalesced for [`DEBOUNCE`]) and every `resync` (in swarm mode at
//! least every [`SWARM_POLL`], because changes on other nodes produce no event on this one), and
//! publishes the set when it changed. When the engine is unreachable, or the event stream ends,
//! the last known backends stay in the snapshot with `up = false` and `error` set, and the session
//! is retried with exponential backoff from [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
//!
//! Swarm mode reads `GET /networks/{network}?verbose=true` (`Services` → `Tasks` → `Name`,
//! `EndpointIP`): it lists service tasks and standalone containers (under the service key `""`)
//! of every node, but only on a node that has a container attached to the overlay (as swarmgate
//! itself is). Labels are known for local containers (`GET /containers/json`) and, on a manager,
//! for service tasks (the service's container labels); standalone containers on other nodes have
//! no known labels or health, so required labels exclude them and the `swarmgate.*` labels do not
//! apply to them. See `docker_filter` for the selection rules.

use std::collections::HashMap;
use std::pin::pin;
use std::time::Duration;

use bollard::models::{
    ContainerSummary, ContainerSummaryHealthStatusEnum, LocalNodeState, SystemInfo,
};
use bollard::query_parameters::{
    EventsOptions, InspectNetworkOptions, ListContainersOptions, ListServicesOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use super::docker_filter::{
    is_network, is_relevant_event, network_tasks, normalize, parse_ip, Candidate, Health, Selector,
};
use super::{DiscoveredBackend, DiscoverySnapshot};
use crate::config::{DockerDiscoveryConfig, DockerMode};

/// Events arriving within this window after the first one cause a single re-list.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// First retry delay after a failure; doubled on each failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Timeout of each engine request (until response headers).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest interval between two listings in swarm mode.
pub const SWARM_POLL: Duration = Duration::from_secs(1);
/// Extra listing shortly after a session starts, covering events missed while subscribing.
const STARTUP_RELIST: Duration = Duration::from_millis(500);
/// Shortest accepted resync interval.
const MIN_RESYNC: Duration = Duration::from_millis(100);

/// Which listing a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Containers,
    Swarm,
}

/// Runs the discovery until every receiver of `tx` is dropped. Never panics; all failures are
/// reported in the snapshot (`up = false`, `error`) and retried.
pub async fn run(cfg: DockerDiscoveryConfig, tx: watch::Sender<DiscoverySnapshot>) {
    let selector = match Selector::new(&cfg) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("invalid docker name regex: {e}");
            tracing::error!(network = %cfg.network, "{msg}");
            mark_down(&tx, msg);
            tx.closed().await;
            return;
        }
    };
    let mut link = Link::default();
    let mut backoff = BACKOFF_MIN;
    loop {
        let err = tokio::select! {
            _ = tx.closed() => return,
            err = session(&cfg, &selector, &tx, &mut link, &mut backoff) => err,
        };
        if link.up != Some(false) {
            tracing::warn!(
                endpoint = %cfg.endpoint, network = %cfg.network,
                "docker discovery down, keeping {} known backends and retrying: {err}",
                tx.borrow().backends.len()
            );
            link.up = Some(false);
        } else {
            tracing::debug!(endpoint = %cfg.endpoint, "docker discovery retry failed: {err}");
        }
        mark_down(&tx, err);
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Logged link state, so that state changes are logged once, not every retry.
#[derive(Default)]
struct Link {
    up: Option<bool>,
}

/// One connection to the engine; returns why it ended.
async fn session(
    cfg: &DockerDiscoveryConfig,
    selector: &Selector,
    tx: &watch::Sender<DiscoverySnapshot>,
    link: &mut Link,
    backoff: &mut Duration,
) -> String {
    let docker = match connect(&cfg.endpoint).await {
        Ok(d) => d,
        Err(e) => return e,
    };
    let source = match cfg.mode {
        DockerMode::Containers => Source::Containers,
        DockerMode::Swarm => Source::Swarm,
        DockerMode::Auto => match docker.info().await {
            Ok(info) if is_swarm_manager(&info) => Source::Swarm,
            Ok(_) => Source::Containers,
            Err(e) => return format!("docker info: {e}"),
        },
    };
    let resync = match source {
        Source::Containers => cfg.resync.max(MIN_RESYNC),
        Source::Swarm => cfg.resync.clamp(MIN_RESYNC, SWARM_POLL),
    };
    let mut events = pin!(docker.events(Some(events_options(source))));
    let start = Instant::now();
    let mut pending = Some(start);
    let mut startup_relist = Some(start + STARTUP_RELIST);
    let mut next_resync = start + resync;
    loop {
        let deadline = [pending, startup_relist, Some(next_resync)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_resync);
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(msg)) => {
                    let typ = msg.typ.map(|t| t.to_string()).unwrap_or_default();
                    let action = msg.action.unwrap_or_default();
                    if is_relevant_event(&typ, &action) {
                        tracing::trace!(%typ, %action, "docker event");
                        pending.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                    }
                }
                Some(Err(e)) => return format!("docker event stream: {e}"),
                None => return "docker event stream ended".to_owned(),
            },
            _ = sleep_until(deadline) => {
                let now = Instant::now();
                pending = None;
                if startup_relist.is_some_and(|t| t <= now) {
                    startup_relist = None;
                }
                next_resync = now + resync;
                let listed = tokio::time::timeout(REQUEST_TIMEOUT, list(&docker, source, cfg, selector)).await;
                let backends = match listed {
                    Ok(Ok(b)) => b,
                    Ok(Err(e)) => return e,
                    Err(_) => return "docker listing timed out".to_owned(),
                };
                *backoff = BACKOFF_MIN;
                if link.up != Some(true) {
                    tracing::info!(
                        endpoint = %cfg.endpoint, network = %cfg.network, ?source,
                        "docker discovery up, {} backends", backends.len()
                    );
                    link.up = Some(true);
                }
                publish(tx, backends, &cfg.network);
            }
        }
    }
}

async fn connect(endpoint: &str) -> Result<Docker, String> {
    let endpoint = if endpoint.starts_with('/') {
        format!("unix://{endpoint}")
    } else {
        endpoint.to_owned()
    };
    let docker = Docker::connect_with_host(&endpoint)
        .map_err(|e| format!("docker endpoint {endpoint}: {e}"))?
        .with_timeout(REQUEST_TIMEOUT);
    match tokio::time::timeout(REQUEST_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(format!("docker endpoint {endpoint}: {e}")),
        Err(_) => Err(format!("docker endpoint {endpoint}: timed out")),
    }
}

/// Whether `info` describes an active swarm manager.
pub fn is_swarm_manager(info: &SystemInfo) -> bool {
    info.swarm.as_ref().is_some_and(|s| {
        s.local_node_state == Some(LocalNodeState::ACTIVE) && s.control_available == Some(true)
    })
}

fn events_options(source: Source) -> EventsOptions {
    let mut types = vec!["container".to_owned(), "network".to_owned()];
    if source == Source::Swarm {
        types.extend(["service".to_owned(), "node".to_owned()]);
    }
    let actions = [
        "start",
        "die",
        "stop",
        "kill",
        "destroy",
        "health_status",
        "pause",
        "unpause",
        "rename",
        "connect",
        "disconnect",
        "create",
        "update",
        "remove",
    ];
    let mut filters = HashMap::new();
    filters.insert("type".to_owned(), types);
    filters.insert(
        "event".to_owned(),
        actions.iter().map(|s| s.to_string()).collect(),
    );
    EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }
}

/// Publishes `backends` with `up = true` if anything changed.
fn publish(tx: &watch::Sender<DiscoverySnapshot>, backends: Vec<DiscoveredBackend>, net: &str) {
    let mut changed_set = false;
    tx.send_if_modified(|s| {
        changed_set = s.backends != backends;
        let changed = changed_set || !s.up || s.error.is_some();
        if changed {
            s.backends = backends;
            s.up = true;
            s.error = None;
        }
        changed
    });
    if changed_set {
        let snap = tx.borrow();
        let list: Vec<String> = snap
            .backends
            .iter()
            .map(|b| format!("{}={}", b.name, b.addr))
            .collect();
        tracing::info!(network = %net, "docker discovery: {} backends [{}]", list.len(), list.join(", "));
    }
}

/// Marks the source down, keeping the last known backends.
fn mark_down(tx: &watch::Sender<DiscoverySnapshot>, err: String) {
    tx.send_if_modified(|s| {
        let changed = s.up || s.error.as_deref() != Some(err.as_str());
        if changed {
            s.up = false;
            s.error = Some(err);
        }
        changed
    });
}

async fn list(
    docker: &Docker,
    source: Source,
    cfg: &DockerDiscoveryConfig,
    selector: &Selector,
) -> Result<Vec<DiscoveredBackend>, String> {
    let local = list_local(docker, &cfg.network).await?;
    let me = own_container_id();
    let is_me = |c: &LocalContainer| me.as_deref().is_some_and(|id| c.id.starts_with(id));
    let mut out = Vec::new();
    match source {
        Source::Containers => {
            for c in local.iter().filter(|c| !is_me(c)) {
                let cand = Candidate {
                    name: &c.name,
                    ip: c.ip,
                    labels: Some(&c.labels),
                    health: c.health,
                };
                accept(selector, &cand, &mut out);
            }
        }
        Source::Swarm => {
            let net = docker
                .inspect_network(
                    &cfg.network,
                    Some(InspectNetworkOptions {
                        verbose: true,
                        scope: None,
                    }),
                )
                .await
                .map_err(|e| format!("inspect network {}: {e}", cfg.network))?;
            let tasks = net.services.as_ref().map(network_tasks).unwrap_or_default();
            let by_name: HashMap<&str, &LocalContainer> =
                local.iter().map(|c| (c.name.as_str(), c)).collect();
            let service_labels = if tasks.iter().any(|t| !t.service.is_empty()) {
                list_service_labels(docker).await
            } else {
                HashMap::new()
            };
            for t in &tasks {
                let local = by_name.get(t.name.as_str()).copied();
                if local.is_some_and(is_me) {
                    continue;
                }
                let labels = local
                    .map(|c| &c.labels)
                    .or_else(|| service_labels.get(&t.service));
                let cand = Candidate {
                    name: &t.name,
                    ip: t.ip,
                    labels,
                    health: local.map_or(Health::None, |c| c.health),
                };
                accept(selector, &cand, &mut out);
            }
        }
    }
    Ok(normalize(out))
}

fn accept(selector: &Selector, cand: &Candidate<'_>, out: &mut Vec<DiscoveredBackend>) {
    match selector.select(cand) {
        Ok(b) => out.push(b),
        Err(why) => tracing::trace!(name = cand.name, ?why, "docker discovery: skipped"),
    }
}

/// A running container of this daemon on the network.
struct LocalContainer {
    id: String,
    name: String,
    ip: Option<std::net::IpAddr>,
    labels: HashMap<String, String>,
    health: Health,
}

async fn list_local(docker: &Docker, network: &str) -> Result<Vec<LocalContainer>, String> {
    let mut filters = HashMap::new();
    filters.insert("network".to_owned(), vec![network.to_owned()]);
    filters.insert("status".to_owned(), vec!["running".to_owned()]);
    let opts = ListContainersOptions {
        all: false,
        filters: Some(filters),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| format!("list containers: {e}"))?;
    Ok(list
        .into_iter()
        .map(|c| local_container(c, network))
        .collect())
}

fn local_container(c: ContainerSummary, network: &str) -> LocalContainer {
    let id = c.id.unwrap_or_default();
    let names = c.names.unwrap_or_default();
    // Legacy links add names like "/other/alias"; prefer the container's own name.
    let name = names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .find(|n| !n.contains('/'))
        .or_else(|| names.first().map(|n| n.trim_start_matches('/')))
        .map_or_else(|| id.chars().take(12).collect(), str::to_owned);
    let ip = c
        .network_settings
        .and_then(|ns| ns.networks)
        .and_then(|nets| {
            nets.into_iter()
                .find(|(k, v)| is_network(network, k, v.network_id.as_deref()))
        })
        .and_then(|(_, ep)| {
            ep.ip_address
                .as_deref()
                .and_then(parse_ip)
                .or_else(|| ep.global_ipv6_address.as_deref().and_then(parse_ip))
        });
    let health = match c.health.and_then(|h| h.status) {
        Some(ContainerSummaryHealthStatusEnum::STARTING) => Health::Starting,
        Some(ContainerSummaryHealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        Some(ContainerSummaryHealthStatusEnum::HEALTHY) => Health::Healthy,
        // API < 1.49 has no Health in the list: read the status text.
        _ => Health::from_status_text(c.status.as_deref().unwrap_or("")),
    };
    LocalContainer {
        id,
        name,
        ip,
        labels: c.labels.unwrap_or_default(),
        health,
    }
}

/// Container labels of each service, by service name; empty when not a manager.
async fn list_service_labels(docker: &Docker) -> HashMap<String, HashMap<String, String>> {
    let services = match docker.list_services(None::<ListServicesOptions>).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("docker discovery: service labels unavailable: {e}");
            return HashMap::new();
        }
    };
    services
        .into_iter()
        .filter_map(|s| {
            let spec = s.spec?;
            let labels = spec
                .task_template
                .and_then(|t| t.container_spec)
                .and_then(|c| c.labels)
                .unwrap_or_default();
            Some((spec.name?, labels))
        })
        .collect()
}

/// The id prefix of the container swarmgate runs in, when its hostname is Docker's default
/// (the 12-hex-digit id prefix), so that swarmgate never lists itself as a backend.
fn own_container_id() -> Option<String> {
    let h = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())?;
    let h = h.trim();
    (h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| h.to_owned())
}
