//! Scrape-time metrics: per-server gauges filled from live state, and pruning of per-server
//! series of servers that left (bounded cardinality under discovery churn).

use super::Metrics;
use crate::runtime::Runtime;
use prometheus::core::Collector;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Per (upstream, server) totals read back from `swarmgate_requests_total`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCounts {
    pub total: u64,
    /// Responses with a 5xx status (upstream's or swarmgate's own 502/504).
    pub server_errors: u64,
}

/// Label values (in the order of `names`, as `remove_label_values` wants them) and counter
/// value of every series of `c`.
fn series(c: &impl Collector, names: &[&str]) -> Vec<(Vec<String>, u64)> {
    c.collect()
        .iter()
        .flat_map(|mf| mf.get_metric().iter())
        .map(|m| {
            let labels = names
                .iter()
                .map(|n| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == *n)
                        .map_or_else(String::new, |l| l.value().to_owned())
                })
                .collect();
            (labels, m.get_counter().get_value() as u64)
        })
        .collect()
}

const SERVER_LABELS: [&str; 3] = ["upstream", "server", "code"];
const CHECK_LABELS: [&str; 3] = ["upstream", "server", "result"];

impl Metrics {
    /// Refreshes live gauges and prunes stale series, then renders (one scrape at a time).
    pub fn render_live(&self, rt: &Runtime) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(rt);
        self.render()
    }

    fn refresh(&self, rt: &Runtime) {
        let now = Instant::now();
        self.table_entries.reset();
        self.table_store_up.reset();
        for t in rt.tables() {
            let name = [t.name()];
            self.table_entries
                .with_label_values(&name)
                .set(i64::try_from(t.store().entries()).unwrap_or(i64::MAX));
            self.table_store_up
                .with_label_values(&name)
                .set(i64::from(t.store().is_up()));
            for l in crate::route::table::Lookup::ALL {
                // Every result series exists from the start (rate() needs a first sample).
                self.table_lookups_total
                    .with_label_values(&[t.name(), l.label()]);
            }
        }
        self.upstream_server_up.reset();
        self.upstream_connections.reset();
        let mut live: HashSet<(&str, &str)> = HashSet::new();
        let sets: Vec<_> = rt.upstreams.iter().map(|u| (u, u.servers())).collect();
        for (u, set) in &sets {
            for (i, s) in set.servers.iter().enumerate() {
                let labels = [u.name.as_str(), s.label.as_str()];
                live.insert((u.name.as_str(), s.label.as_str()));
                self.upstream_server_up
                    .with_label_values(&labels)
                    .set(i64::from(set.selectable(i, now)));
                let idle = s.pool.idle_count();
                let open = s.open_conns.load(std::sync::atomic::Ordering::Relaxed);
                let busy = open.saturating_sub(idle);
                for (state, n) in [("active", busy), ("idle", idle)] {
                    self.upstream_connections
                        .with_label_values(&[labels[0], labels[1], state])
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        let upstreams: HashSet<&str> = rt.upstreams.iter().map(|u| u.name.as_str()).collect();
        // Series of a server that left (or of an upstream removed by a reload) go away; a
        // request still finishing on a drained server may recreate its series once.
        let stale = |l: &[String]| match l {
            [u, s, ..] if s.is_empty() => !upstreams.contains(u.as_str()),
            [u, s, ..] => !live.contains(&(u.as_str(), s.as_str())),
            _ => false,
        };
        for (l, _) in series(&self.requests_total, &SERVER_LABELS) {
            if stale(&l) {
                let refs: Vec<&str> = l.iter().map(String::as_str).collect();
                let _ = self.requests_total.remove_label_values(&refs);
            }
        }
        for (l, _) in series(&self.health_checks_total, &CHECK_LABELS) {
            if stale(&l) {
                let refs: Vec<&str> = l.iter().map(String::as_str).collect();
                let _ = self.health_checks_total.remove_label_values(&refs);
            }
        }
        for (l, _) in series(&self.retries_total, &["upstream"]) {
            if l.first().is_some_and(|u| !upstreams.contains(u.as_str())) {
                let refs: Vec<&str> = l.iter().map(String::as_str).collect();
                let _ = self.retries_total.remove_label_values(&refs);
            }
        }
    }

    /// Responses per (upstream, server) from `swarmgate_requests_total`, for the status page.
    pub fn responses_by_server(&self) -> HashMap<(String, String), ResponseCounts> {
        let mut out: HashMap<(String, String), ResponseCounts> = HashMap::new();
        for (l, v) in series(&self.requests_total, &SERVER_LABELS) {
            let [u, s, code] = l.as_slice() else {
                continue;
            };
            let e = out.entry((u.clone(), s.clone())).or_default();
            e.total += v;
            if code.starts_with('5') {
                e.server_errors += v;
            }
        }
        out
    }
}
