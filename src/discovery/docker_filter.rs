//! Pure selection rules of Docker discovery: which containers or tasks become backends, and with
//! which address, weight and upstream. No I/O here; `docker.rs` feeds it what the engine said.
//!
//! Rules, in order (first match excludes):
//! - no IP on the configured network → excluded;
//! - Docker health `starting` or `unhealthy` → excluded (no healthcheck or `healthy` → kept);
//! - name regex (on the name without the leading `/`) does not match → excluded;
//! - a required label is missing or differs → excluded (unknown labels, e.g. a standalone
//!   container on another swarm node, count as missing when labels are required);
//! - label `swarmgate.enable` is `false`/`0`/`no` (any case) → excluded;
//! - label `swarmgate.port` (1–65535) replaces the configured port, `swarmgate.weight` (≥ 1) sets
//!   the weight, `swarmgate.upstream` (non-empty) the upstream; an invalid value excludes the
//!   container rather than guessing.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use regex::Regex;

use super::DiscoveredBackend;
use crate::config::DockerDiscoveryConfig;

/// Label that excludes a container when `false`, `0` or `no`.
pub const LABEL_ENABLE: &str = "swarmgate.enable";
/// Label that overrides the configured port.
pub const LABEL_PORT: &str = "swarmgate.port";
/// Label that sets the backend weight.
pub const LABEL_WEIGHT: &str = "swarmgate.weight";
/// Label that routes the backend to another upstream.
pub const LABEL_UPSTREAM: &str = "swarmgate.upstream";

/// Docker health of a container, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No healthcheck, or not known (remote swarm tasks).
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// Reads the health from the `Status` text of a container list entry
    /// (`Up 3 seconds (health: starting)`, `Up 1 minute (unhealthy)`, `Up 2 hours (healthy)`).
    pub fn from_status_text(status: &str) -> Health {
        if status.contains("(health: starting)") {
            Health::Starting
        } else if status.contains("(unhealthy)") {
            Health::Unhealthy
        } else if status.contains("(healthy)") {
            Health::Healthy
        } else {
            Health::None
        }
    }

    fn excludes(self) -> bool {
        matches!(self, Health::Starting | Health::Unhealthy)
    }
}

/// What discovery knows about one container or task.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Container or task name, without the leading `/`.
    pub name: &'a str,
    /// Its IP on the configured network, if it has one.
    pub ip: Option<IpAddr>,
    /// Its labels; `None` when they cannot be known.
    pub labels: Option<&'a HashMap<String, String>>,
    pub health: Health,
}

/// Why a candidate was not selected (for debug logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NoAddress,
    Health,
    Name,
    Labels,
    Disabled,
    /// A `swarmgate.*` label has an invalid value: (label, value).
    BadLabel(&'static str, String),
}

/// The compiled selection rules of one Docker discovery.
#[derive(Debug, Clone)]
pub struct Selector {
    name: Option<Regex>,
    labels: BTreeMap<String, String>,
    port: u16,
}

impl Selector {
    /// Compiles the rules; fails only on an invalid name regex.
    pub fn new(cfg: &DockerDiscoveryConfig) -> Result<Selector, regex::Error> {
        let name = cfg.name.as_deref().map(Regex::new).transpose()?;
        Ok(Selector {
            name,
            labels: cfg.labels.clone(),
            port: cfg.port,
        })
    }

    /// Applies the rules to one candidate.
    pub fn select(&self, c: &Candidate<'_>) -> Result<DiscoveredBackend, Rejection> {
        let ip = c.ip.ok_or(Rejection::NoAddress)?;
        if c.health.excludes() {
            return Err(Rejection::Health);
        }
        if let Some(re) = &self.name {
            if !re.is_match(c.name) {
                return Err(Rejection::Name);
            }
        }
        let get = |k: &str| c.labels.and_then(|l| l.get(k)).map(String::as_str);
        if !self.labels.is_empty() {
            let labels = c.labels.ok_or(Rejection::Labels)?;
            if !self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                return Err(Rejection::Labels);
            }
        }
        if let Some(v) = get(LABEL_ENABLE) {
            if matches!(v.trim().to_ascii_lowercase().as_str(), "false" | "0" | "no") {
                return Err(Rejection::Disabled);
            }
        }
        let port = match get(LABEL_PORT) {
            None => self.port,
            Some(v) => match v.trim().parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(Rejection::BadLabel(LABEL_PORT, v.to_owned())),
            },
        };
        let weight = match get(LABEL_WEIGHT) {
            None => None,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(w) if w > 0 => Some(w),
                _ => return Err(Rejection::BadLabel(LABEL_WEIGHT, v.to_owned())),
            },
        };
        let upstream = match get(LABEL_UPSTREAM) {
            None => None,
            Some(v) if v.trim().is_empty() => {
                return Err(Rejection::BadLabel(LABEL_UPSTREAM, v.to_owned()))
            }
            Some(v) => Some(v.trim().to_owned()),
        };
        Ok(DiscoveredBackend {
            addr: SocketAddr::new(ip, port),
            weight,
            upstream,
            name: c.name.to_owned(),
        })
    }
}

/// Sorts backends by name, then address, and drops exact address duplicates (first kept), so a
/// snapshot does not depend on the engine's listing order.
pub fn normalize(mut backends: Vec<DiscoveredBackend>) -> Vec<DiscoveredBackend> {
    backends.sort_by(|a, b| (&a.name, a.addr).cmp(&(&b.name, b.addr)));
    let mut seen = std::collections::HashSet::new();
    backends.retain(|b| seen.insert(b.addr));
    backends
}

/// Parses an IP that may carry a prefix length (`10.0.1.5/24`); empty or invalid → `None`.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.split('/').next().unwrap_or(s).trim();
    s.parse().ok()
}

/// Whether a container's network entry (keyed by network name, with its network id) is the
/// configured network, given by name or by (full or at least 12-character prefix) id.
pub fn is_network(wanted: &str, key: &str, network_id: Option<&str>) -> bool {
    if key == wanted {
        return true;
    }
    match network_id {
        Some(id) if !id.is_empty() => {
            id == wanted || (wanted.len() >= 12 && id.starts_with(wanted))
        }
        _ => false,
    }
}

/// Whether an engine event (type, action) may change the backend set.
pub fn is_relevant_event(typ: &str, action: &str) -> bool {
    match typ {
        "container" => {
            action.starts_with("health_status")
                || matches!(
                    action,
                    "start" | "die" | "stop" | "kill" | "destroy" | "pause" | "unpause" | "rename"
                )
        }
        "network" => matches!(action, "connect" | "disconnect" | "destroy" | "remove"),
        "service" | "node" => matches!(action, "create" | "update" | "remove"),
        _ => false,
    }
}

/// One task of a swarm overlay, from `GET /networks/{id}?verbose=true` → `Services`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkTask {
    /// Service name; empty for standalone containers attached to an attachable overlay.
    pub service: String,
    /// Task name (`svc.1.taskid`) or, for a standalone container, the container name.
    pub name: String,
    pub ip: Option<IpAddr>,
}

/// Extracts the tasks from the `Services` map of a verbose network inspect:
/// `{"<service or empty>": {"VIP": .., "Tasks": [{"Name", "EndpointID", "EndpointIP",
/// "Info": {"Host IP"}}]}}`. Malformed entries are skipped.
pub fn network_tasks(services: &HashMap<String, serde_json::Value>) -> Vec<NetworkTask> {
    let mut out = Vec::new();
    for (service, info) in services {
        let Some(tasks) = info.get("Tasks").and_then(|t| t.as_array()) else {
            continue;
        };
        for t in tasks {
            let Some(name) = t.get("Name").and_then(|n| n.as_str()) else {
                continue;
            };
            let ip = t
                .get("EndpointIP")
                .and_then(|i| i.as_str())
                .and_then(parse_ip);
            out.push(NetworkTask {
                service: service.clone(),
                name: name.trim_start_matches('/').to_owned(),
                ip,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DockerMode;
    use std::time::Duration;

    fn cfg(name: Option<&str>, labels: &[(&str, &str)]) -> DockerDiscoveryConfig {
        DockerDiscoveryConfig {
            endpoint: "unix:///var/run/docker.sock".into(),
            network: "net".into(),
            port: 1080,
            name: name.map(str::to_owned),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mode: DockerMode::Containers,
            resync: Duration::from_secs(30),
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
        }
    }

    fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cand<'a>(name: &'a str, l: Option<&'a HashMap<String, String>>) -> Candidate<'a> {
        Candidate {
            name,
            ip: "10.0.0.2".parse().ok(),
            labels: l,
            health: Health::None,
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let s = Selector::new(&cfg(None, &[])).unwrap();
        let b = s.select(&cand("a", None)).unwrap();
        assert_eq!(b.addr, "10.0.0.2:1080".parse().unwrap());
        assert_eq!((b.weight, b.upstream), (None, None));
        let l = labels(&[
            (LABEL_PORT, "8080"),
            (LABEL_WEIGHT, "3"),
            (LABEL_UPSTREAM, "api"),
        ]);
        let b = s.select(&cand("a", Some(&l))).unwrap();
        assert_eq!(b.addr.port(), 8080);
        assert_eq!(b.weight, Some(3));
        assert_eq!(b.upstream.as_deref(), Some("api"));
    }

    #[test]
    fn bad_labels_exclude() {
        let s = Selector::new(&cfg(None, &[])).unwrap();
        for (k, v) in [
            (LABEL_PORT, "0"),
            (LABEL_PORT, "x"),
            (LABEL_PORT, "70000"),
            (LABEL_WEIGHT, "0"),
            (LABEL_WEIGHT, "-1"),
            (LABEL_UPSTREAM, " "),
        ] {
            let l = labels(&[(k, v)]);
            assert!(
                matches!(s.select(&cand("a", Some(&l))), Err(Rejection::BadLabel(..))),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn enable_false_excludes() {
        let s = Selector::new(&cfg(None, &[])).unwrap();
        for v in ["false", "FALSE", "0", "no"] {
            let l = labels(&[(LABEL_ENABLE, v)]);
            assert_eq!(s.select(&cand("a", Some(&l))), Err(Rejection::Disabled));
        }
        let l = labels(&[(LABEL_ENABLE, "true")]);
        assert!(s.select(&cand("a", Some(&l))).is_ok());
    }

    #[test]
    fn name_and_required_labels() {
        let s = Selector::new(&cfg(Some("^root-kuscia-"), &[("role", "gw")])).unwrap();
        let good = labels(&[("role", "gw")]);
        let bad = labels(&[("role", "db")]);
        assert!(s
            .select(&cand("root-kuscia-autonomy-alice", Some(&good)))
            .is_ok());
        assert_eq!(s.select(&cand("other", Some(&good))), Err(Rejection::Name));
        assert_eq!(
            s.select(&cand("root-kuscia-x", Some(&bad))),
            Err(Rejection::Labels)
        );
        assert_eq!(
            s.select(&cand("root-kuscia-x", None)),
            Err(Rejection::Labels)
        );
        // Without required labels, unknown labels are fine.
        let s = Selector::new(&cfg(Some("kuscia"), &[])).unwrap();
        assert!(s.select(&cand("root-kuscia-x", None)).is_ok());
        assert!(Selector::new(&cfg(Some("("), &[])).is_err());
    }

    #[test]
    fn health_and_address() {
        let s = Selector::new(&cfg(None, &[])).unwrap();
        for (h, ok) in [
            (Health::None, true),
            (Health::Healthy, true),
            (Health::Starting, false),
            (Health::Unhealthy, false),
        ] {
            let mut c = cand("a", None);
            c.health = h;
            assert_eq!(s.select(&c).is_ok(), ok, "{h:?}");
        }
        let mut c = cand("a", None);
        c.ip = None;
        assert_eq!(s.select(&c), Err(Rejection::NoAddress));
        assert_eq!(
            Health::from_status_text("Up 3 seconds (health: starting)"),
            Health::Starting
        );
        assert_eq!(
            Health::from_status_text("Up 1 minute (unhealthy)"),
            Health::Unhealthy
        );
        assert_eq!(
            Health::from_status_text("Up 2 hours (healthy)"),
            Health::Healthy
        );
        assert_eq!(Health::from_status_text("Up 2 hours"), Health::None);
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_ip("10.0.1.5/24"), "10.0.1.5".parse().ok());
        assert_eq!(parse_ip(""), None);
        assert_eq!(parse_ip("<nil>"), None);
        assert!(is_network("net", "net", None));
        assert!(is_network("abcdef123456", "x", Some("abcdef1234567890")));
        assert!(!is_network("abc", "x", Some("abcdef")));
        assert!(!is_network("net", "other", Some("")));
        assert!(is_relevant_event("container", "start"));
        assert!(is_relevant_event("container", "health_status: healthy"));
        assert!(!is_relevant_event(
            "container",
            "exec_start: /x healthcheck"
        ));
        assert!(is_relevant_event("network", "connect"));
        assert!(is_relevant_event("service", "update"));
        assert!(!is_relevant_event("image", "pull"));
    }

    #[test]
    fn normalize_sorts_and_dedups() {
        let b = |n: &str, a: &str| DiscoveredBackend {
            addr: a.parse().unwrap(),
            weight: None,
            upstream: None,
            name: n.into(),
        };
        let out = normalize(vec![
            b("c", "10.0.0.3:1"),
            b("a", "10.0.0.1:1"),
            b("b", "10.0.0.1:1"),
        ]);
        let names: Vec<_> = out.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn parses_verbose_network_services() {
        // Shape observed on Docker 20.10 (swarm manager, attachable overlay).
        let json = r#"{
          "": {"VIP": "<nil>", "Ports": [], "LocalLBIndex": 0, "Tasks": [
            {"Name": "sgexp-a", "EndpointID": "506d", "EndpointIP": "10.0.1.2",
             "Info": {"Host IP": "127.0.0.1"}}]},
          "sgexp-svc": {"VIP": "10.0.1.4", "Ports": [], "LocalLBIndex": 256, "Tasks": [
            {"Name": "sgexp-svc.1.10et6hu0lv8m7cu30egfg2i0r", "EndpointID": "25f1",
             "EndpointIP": "10.0.1.6", "Info": {"Host IP": "127.0.0.1"}},
            {"EndpointIP": "10.0.1.9"}]},
          "broken": {"VIP": "x"}
        }"#;
        let services: HashMap<String, serde_json::Value> = serde_json::from_str(json).unwrap();
        let mut tasks = network_tasks(&services);
        tasks.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].service, "");
        assert_eq!(tasks[0].name, "sgexp-a");
        assert_eq!(tasks[0].ip, "10.0.1.2".parse().ok());
        assert_eq!(tasks[1].service, "sgexp-svc");
    }
}
