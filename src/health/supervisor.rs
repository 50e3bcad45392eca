//! The probe supervisor: one task that follows the live server sets (new servers get probed,
//! removed, draining and `down` ones stop), schedules each server every `interval` ±10 %
//! jitter, runs each probe in its own task (bounded by `timeout`, at most one in flight per
//! server) and applies results: rise/fall counting, health flips (logged), `last_check` and
//! `swarmgate_health_checks_total`.

use super::counter::RiseFall;
use super::probe::{probe, Outcome};
use crate::metrics::metrics;
use crate::runtime::Shared;
use crate::upstream::{Health, LastCheck, Server, Settings, Upstream};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Longest sleep between two looks at the server sets, so membership and config changes are
/// picked up promptly even with a long `interval`.
const RESCAN: Duration = Duration::from_millis(250);
/// The first probe of a new server happens within this fraction of `min(interval, 2 s)`.
const FIRST_PROBE_SPREAD: f64 = 0.1;

struct Tracked {
    server: Arc<Server>,
    upstream: Arc<Upstream>,
    /// Distinguishes this entry from a later one that reuses the same allocation.
    generation: u64,
    counter: RiseFall,
    next_due: Instant,
    in_flight: bool,
    /// Still present in the last scan.
    seen: bool,
}

struct Report {
    key: usize,
    generation: u64,
    outcome: Outcome,
}

struct Supervisor {
    shared: Arc<Shared>,
    tracked: HashMap<usize, Tracked>,
    generation: u64,
    rng: SmallRng,
    tx: mpsc::UnboundedSender<Report>,
}

/// Runs until `stop` turns true (or its sender is dropped).
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sup = Supervisor {
        shared,
        tracked: HashMap::new(),
        generation: 0,
        rng: SmallRng::from_os_rng(),
        tx,
    };
    let mut next_scan = Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Instant::now();
        if now >= next_scan {
            sup.scan(now);
            next_scan = now + RESCAN;
        }
        sup.launch_due(now);
        let wake = sup
            .tracked
            .values()
            .filter(|t| !t.in_flight)
            .map(|t| t.next_due)
            .min()
            .map_or(next_scan, |d| d.min(next_scan));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            r = rx.recv() => {
                if let Some(r) = r {
                    sup.apply(r);
                }
                while let Ok(r) = rx.try_recv() {
                    sup.apply(r);
                }
            }
            r = stop.changed() => if r.is_err() { return },
        }
    }
}

fn key(s: &Arc<Server>) -> usize {
    Arc::as_ptr(s) as usize
}

impl Supervisor {
    fn jittered(&mut self, interval: Duration) -> Duration {
        interval.mul_f64(self.rng.random_range(0.9..1.1))
    }

    /// Follows membership and config changes.
    fn scan(&mut self, now: Instant) {
        for t in self.tracked.values_mut() {
            t.seen = false;
        }
        let rt = self.shared.runtime_full();
        for up in &rt.upstreams {
            let settings = up.settings();
            let set = up.servers();
            let Some(hc) = &settings.config.health_check else {
                // Checks removed by a reload: forget verdicts nobody will revise.
                for s in &set.servers {
                    if s.health() != Health::Unknown {
                        tracing::info!(upstream = %up.name, server = %s.label, "health checks disabled; server back in rotation");
                        s.set_health(Health::Unknown);
                    }
                }
                continue;
            };
            for s in &set.servers {
                if s.is_draining() || s.config.down {
                    continue;
                }
                let latest = now + hc.interval.mul_f64(1.1);
                if let Some(t) = self.tracked.get_mut(&key(s)) {
                    t.seen = true;
                    t.counter.set_thresholds(hc.rise, hc.fall);
                    t.next_due = t.next_due.min(latest); // interval shortened by a reload
                    continue;
                }
                self.generation += 1;
                let spread = hc
                    .interval
                    .min(Duration::from_secs(2))
                    .mul_f64(FIRST_PROBE_SPREAD);
                let first = spread.mul_f64(self.rng.random_range(0.0..1.0));
                self.tracked.insert(
                    key(s),
                    Tracked {
                        server: s.clone(),
                        upstream: up.clone(),
                        generation: self.generation,
                        counter: RiseFall::new(hc.rise, hc.fall),
                        next_due: now + first,
                        in_flight: false,
                        seen: true,
                    },
                );
            }
        }
        self.tracked.retain(|_, t| t.seen);
    }

    /// Starts a probe for every server that is due and has none in flight.
    fn launch_due(&mut self, now: Instant) {
        for (&k, t) in self.tracked.iter_mut() {
            if t.in_flight || t.next_due > now {
                continue;
            }
            let settings: Arc<Settings> = t.upstream.settings();
            if settings.config.health_check.is_none() {
                continue;
            }
            t.in_flight = true;
            let server = t.server.clone();
            let generation = t.generation;
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let outcome = match &settings.config.health_check {
                    Some(hc) => probe(&server, &settings, hc).await,
                    None => return,
                };
                let _ = tx.send(Report {
                    key: k,
                    generation,
                    outcome,
                });
            });
        }
    }

    fn apply(&mut self, r: Report) {
        let Some(t) = self.tracked.get(&r.key) else {
            return; // removed while probing
        };
        if t.generation != r.generation {
            return;
        }
        let settings = t.upstream.settings();
        let interval = settings
            .config
            .health_check
            .as_ref()
            .map_or(Duration::from_secs(30), |h| h.interval);
        let next = self.jittered(interval);
        let Some(t) = self.tracked.get_mut(&r.key) else {
            return;
        };
        t.in_flight = false;
        t.next_due = Instant::now() + next;
        let (up, s) = (&t.upstream, &t.server);
        metrics()
            .health_checks_total
            .with_label_values(&[
                up.name.as_str(),
                s.label.as_str(),
                if r.outcome.ok { "success" } else { "failure" },
            ])
            .inc();
        let current = s.health();
        if let Some(new) = t.counter.record(r.outcome.ok, current) {
            s.set_health(new);
            let (ok_in_row, failed_in_row) = t.counter.counts();
            match new {
                Health::Unhealthy => tracing::warn!(
                    upstream = %up.name, server = %s.label, reason = %r.outcome.detail,
                    consecutive_failures = failed_in_row, "server unhealthy; out of rotation"
                ),
                _ => tracing::info!(
                    upstream = %up.name, server = %s.label, reason = %r.outcome.detail,
                    consecutive_successes = ok_in_row,
                    "{}",
                    if current == Health::Unhealthy {
                        "server healthy; back in rotation"
                    } else {
                        "server healthy"
                    }
                ),
            }
        } else {
            tracing::debug!(upstream = %up.name, server = %s.label, ok = r.outcome.ok, detail = %r.outcome.detail, "probe");
        }
        *s.last_check.lock().unwrap_or_else(|e| e.into_inner()) = LastCheck {
            at: Some(SystemTime::now()),
            ok: r.outcome.ok,
            detail: r.outcome.detail,
        };
    }
}
