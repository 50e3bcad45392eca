//! An immutable snapshot of an upstream's servers plus the balancer state behind one lock.
//! A request takes the snapshot once and makes all its attempts against it; membership changes
//! build a new set (carrying balancer state over for servers that stay) and swap it in.

use super::server::Server;
use crate::balance::{PeerParams, SmoothWrr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Servers already tried by one request (nginx's `tried` bitmap).
#[derive(Debug, Default, Clone)]
pub struct Tried {
    low: u64,
    more: Vec<usize>,
}

impl Tried {
    pub fn insert(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
        } else if !self.more.contains(&i) {
            self.more.push(i);
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        if i < 64 {
            self.low & (1 << i) != 0
        } else {
            self.more.contains(&i)
        }
    }
}

#[derive(Debug)]
struct Tiers {
    primary: SmoothWrr,
    backup: SmoothWrr,
}

#[derive(Debug)]
pub struct ServerSet {
    pub servers: Vec<Arc<Server>>,
    /// `servers` indices of each tier, in tier order.
    primary: Vec<usize>,
    backup: Vec<usize>,
    tiers: Mutex<Tiers>,
}

fn params(s: &Server) -> PeerParams {
    PeerParams {
        weight: s.config.weight,
        max_fails: s.config.max_fails,
        fail_timeout: s.config.fail_timeout,
    }
}

impl ServerSet {
    pub fn empty() -> Self {
        Self::build(Vec::new(), None)
    }

    /// A set of `servers`; balancer state is carried over from `old` for the same `Arc`s.
    pub fn build(servers: Vec<Arc<Server>>, old: Option<&ServerSet>) -> Self {
        let (backup, primary): (Vec<usize>, Vec<usize>) =
            (0..servers.len()).partition(|&i| servers[i].config.backup);
        let old_tiers = old.map(|o| (o, o.lock()));
        let carried = |idx: &[usize], want_backup: bool| {
            idx.iter()
                .map(|&i| {
                    let (o, t) = old_tiers.as_ref()?;
                    let (tier_idx, tier) = if want_backup {
                        (&o.backup, &t.backup)
                    } else {
                        (&o.primary, &t.primary)
                    };
                    let pos = tier_idx
                        .iter()
                        .position(|&j| Arc::ptr_eq(&o.servers[j], &servers[i]))?;
                    tier.state(pos)
                })
                .collect::<Vec<_>>()
        };
        let tiers = Tiers {
            primary: SmoothWrr::new(
                primary.iter().map(|&i| params(&servers[i])).collect(),
                carried(&primary, false),
            ),
            backup: SmoothWrr::new(
                backup.iter().map(|&i| params(&servers[i])).collect(),
                carried(&backup, true),
            ),
        };
        drop(old_tiers);
        ServerSet {
            servers,
            primary,
            backup,
            tiers: Mutex::new(tiers),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tiers> {
        self.tiers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Picks a server not yet `tried`: primaries first, then backups. With `try_all`, when
    /// nothing is selectable, health and passive bans are ignored (panic mode).
    pub fn select(&self, tried: &Tried, now: Instant, try_all: bool) -> Option<usize> {
        let mut t = self.lock();
        let servers = &self.servers;
        fn usable<'a>(
            servers: &'a [Arc<Server>],
            tried: &'a Tried,
            idx: &'a [usize],
            relaxed: bool,
        ) -> impl FnMut(usize) -> bool + 'a {
            move |k| {
                let s = &servers[idx[k]];
                !tried.contains(idx[k]) && if relaxed { !s.config.down } else { s.usable() }
            }
        }
        if let Some(k) = t
            .primary
            .select(now, false, usable(servers, tried, &self.primary, false))
        {
            return Some(self.primary[k]);
        }
        if let Some(k) = t
            .backup
            .select(now, false, usable(servers, tried, &self.backup, false))
        {
            return Some(self.backup[k]);
        }
        if try_all {
            if let Some(k) =
                t.primary
                    .select(now, true, usable(servers, tried, &self.primary, true))
            {
                return Some(self.primary[k]);
            }
            if let Some(k) = t
                .backup
                .select(now, true, usable(servers, tried, &self.backup, true))
            {
                return Some(self.backup[k]);
            }
        }
        None
    }

    fn locate(&self, i: usize) -> Option<(bool, usize)> {
        if let Some(k) = self.primary.iter().position(|&j| j == i) {
            return Some((false, k));
        }
        self.backup.iter().position(|&j| j == i).map(|k| (true, k))
    }

    /// Records the outcome of an attempt on server `i`; true when a failure took it out.
    pub fn report(&self, i: usize, ok: bool, now: Instant) -> bool {
        let Some((is_backup, k)) = self.locate(i) else {
            return false;
        };
        let mut t = self.lock();
        let tier = if is_backup {
            &mut t.backup
        } else {
            &mut t.primary
        };
        if ok {
            tier.success(k);
            false
        } else {
            tier.failure(k, now)
        }
    }

    /// Failures counted in the current window and whether passive accounting bans server `i`.
    pub fn passive_state(&self, i: usize, now: Instant) -> (u32, bool) {
        let Some((is_backup, k)) = self.locate(i) else {
            return (0, false);
        };
        let t = self.lock();
        let tier = if is_backup { &t.backup } else { &t.primary };
        (
            tier.state(k).map_or(0, |s| s.fails),
            tier.failed_out(k, now),
        )
    }

    /// Whether server `i` can be picked now (usable and not banned).
    pub fn selectable(&self, i: usize, now: Instant) -> bool {
        self.servers.get(i).is_some_and(|s| s.usable()) && !self.passive_state(i, now).1
    }
}
