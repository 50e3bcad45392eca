//! Helpers for the health-check and admin tests: switchable origins, polling, admin JSON.
#![allow(dead_code)]

use crate::common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarmgate::upstream::Health;

/// Probe path used by these tests; traffic uses any other path.
pub const HC: &str = "/hc";

/// An origin answering `status` (changeable at run time) to everything, counting non-probe
/// requests separately.
pub struct Switchable {
    pub origin: Origin,
    pub status: Arc<AtomicU16>,
    pub traffic: Arc<AtomicUsize>,
}

impl Switchable {
    pub fn addr(&self) -> SocketAddr {
        self.origin.addr
    }
    pub fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
    pub fn traffic(&self) -> usize {
        self.traffic.load(Ordering::SeqCst)
    }
}

pub async fn switchable(status: u16) -> Switchable {
    let st = Arc::new(AtomicU16::new(status));
    let traffic = Arc::new(AtomicUsize::new(0));
    let (s, t) = (st.clone(), traffic.clone());
    let origin = origin(move |req| {
        let (s, t) = (s.clone(), t.clone());
        async move {
            if req.uri().path() != HC {
                t.fetch_add(1, Ordering::SeqCst);
            }
            text(s.load(Ordering::SeqCst), "x")
        }
    })
    .await;
    Switchable {
        origin,
        status: st,
        traffic,
    }
}

/// Polls `cond` every 20 ms until it holds; panics after `limit` (generous bounds only).
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The active-check verdict of `addr` in upstream `upstream`.
pub fn health_of(p: &Proxy, upstream: &str, addr: SocketAddr) -> Option<Health> {
    let rt = p.app.shared.runtime();
    let u = rt.upstream(upstream)?;
    let set = u.servers();
    let label = addr.to_string();
    set.servers
        .iter()
        .find(|s| s.label == label)
        .map(|s| s.health())
}

/// `GET /api/upstreams` parsed.
pub async fn api(p: &Proxy) -> serde_json::Value {
    let (s, h, body) = get(p.admin.expect("admin"), "/api/upstreams").await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "application/json");
    serde_json::from_slice(&body).unwrap()
}

/// The JSON object of server `addr` in upstream `upstream`.
pub fn server_json(v: &serde_json::Value, upstream: &str, addr: SocketAddr) -> serde_json::Value {
    let label = addr.to_string();
    v["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == upstream)
        .unwrap_or_else(|| panic!("no upstream {upstream} in {v}"))["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["address"] == label.as_str())
        .unwrap_or_else(|| panic!("no server {label} in {v}"))
        .clone()
}

/// `GET /metrics` as text.
pub async fn scrape(p: &Proxy) -> String {
    let (s, _, body) = get(p.admin.expect("admin"), "/metrics").await;
    assert_eq!(s, 200);
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of the series of `name` carrying every `label="value"` pair in `labels`.
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (lbls, value) = rest.rsplit_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| lbls.split(',').any(|p| p == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Path of an installed executable, or None.
pub fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(cmd))
        .find(|p| p.is_file())
}
