//! nginx's smooth weighted round robin with passive failure accounting
//! (ngx_http_upstream_round_robin.c): on each pick every eligible peer adds its effective weight
//! to its current weight, the largest wins and gives back the total. A failure lowers the
//! effective weight by `weight / max_fails` (it recovers by 1 each time the peer is considered);
//! `max_fails` failures within `fail_timeout` make the peer ineligible for `fail_timeout`, after
//! which one trial request is let through and a success resets the count.

use std::time::{Duration, Instant};

/// The configured parameters of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerParams {
    pub weight: u32,
    /// 0 disables failure accounting for this peer.
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

/// The mutable balancing state of one peer; carried over when a server set is rebuilt.
#[derive(Debug, Clone, Copy)]
pub struct PeerState {
    pub current: i64,
    pub effective: i64,
    pub fails: u32,
    /// Start of the current failure window / ban (nginx `checked`).
    pub checked: Option<Instant>,
    /// Time of the last failure (nginx `accessed`).
    pub accessed: Option<Instant>,
}

impl PeerState {
    fn fresh(weight: u32) -> Self {
        PeerState {
            current: 0,
            effective: i64::from(weight),
            fails: 0,
            checked: None,
            accessed: None,
        }
    }
}

/// One tier (primary or backup) of weighted peers.
#[derive(Debug, Clone)]
pub struct SmoothWrr {
    params: Vec<PeerParams>,
    state: Vec<PeerState>,
}

impl SmoothWrr {
    /// New peers; `carried[i]`, when given, restores the state of a peer that was already known.
    pub fn new(params: Vec<PeerParams>, carried: Vec<Option<PeerState>>) -> Self {
        let state = params
            .iter()
            .zip(carried.into_iter().chain(std::iter::repeat(None)))
            .map(|(p, c)| {
                let mut s = c.unwrap_or_else(|| PeerState::fresh(p.weight));
                // A changed weight restarts the peer's smoothing.
                s.effective = s.effective.min(i64::from(p.weight));
                s
            })
            .collect();
        SmoothWrr { params, state }
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    pub fn state(&self, i: usize) -> Option<PeerState> {
        self.state.get(i).copied()
    }

    /// Whether passive accounting currently bans peer `i`.
    pub fn failed_out(&self, i: usize, now: Instant) -> bool {
        let (Some(p), Some(s)) = (self.params.get(i), self.state.get(i)) else {
            return false;
        };
        p.max_fails != 0
            && s.fails >= p.max_fails
            && s.checked
                .is_some_and(|c| now.saturating_duration_since(c) <= p.fail_timeout)
    }

    /// Picks a peer among those for which `eligible(i)` holds and that are not failed out
    /// (unless `ignore_fails`). A tier of exactly one peer skips failure accounting, as nginx does.
    pub fn select(
        &mut self,
        now: Instant,
        ignore_fails: bool,
        mut eligible: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        if self.params.len() == 1 {
            return eligible(0).then_some(0);
        }
        let mut best: Option<(usize, i64)> = None;
        let mut total: i64 = 0;
        for i in 0..self.params.len() {
            if !eligible(i) || (!ignore_fails && self.failed_out(i, now)) {
                continue;
            }
            let weight = i64::from(self.params[i].weight);
            let s = &mut self.state[i];
            s.current += s.effective;
            total += s.effective;
            if s.effective < weight {
                s.effective += 1;
            }
            if best.is_none_or(|(_, c)| s.current > c) {
                best = Some((i, s.current));
            }
        }
        let (b, _) = best?;
        let p = self.params[b];
        let s = &mut self.state[b];
        s.current -= total;
        if s.checked
            .is_none_or(|c| now.saturating_duration_since(c) > p.fail_timeout)
        {
            s.checked = Some(now);
        }
        Some(b)
    }

    /// Records a failed attempt on peer `i`. Returns true when this failure takes it out.
    pub fn failure(&mut self, i: usize, now: Instant) -> bool {
        if self.params.len() <= 1 {
            return false;
        }
        let (Some(p), Some(s)) = (self.params.get(i), self.state.get_mut(i)) else {
            return false;
        };
        s.fails = s.fails.saturating_add(1);
        s.accessed = Some(now);
        s.checked = Some(now);
        if p.max_fails == 0 {
            return false;
        }
        s.effective -= i64::from(p.weight / p.max_fails);
        if s.effective < 0 {
            s.effective = 0;
        }
        s.fails == p.max_fails
    }

    /// Records a successful attempt on peer `i`: the failure count resets once the failure
    /// window has moved on since the last failure (nginx `accessed < checked`).
    pub fn success(&mut self, i: usize) {
        if let Some(s) = self.state.get_mut(i) {
            if s.accessed < s.checked {
                s.fails = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrr(weights: &[u32], max_fails: u32, fail_timeout: Duration) -> SmoothWrr {
        let params = weights
            .iter()
            .map(|&weight| PeerParams {
                weight,
                max_fails,
                fail_timeout,
            })
            .collect();
        SmoothWrr::new(params, vec![])
    }

    fn picks(w: &mut SmoothWrr, n: usize, now: Instant) -> Vec<usize> {
        (0..n)
            .filter_map(|_| w.select(now, false, |_| true))
            .collect()
    }

    #[test]
    fn two_to_one_is_smooth_and_exact() {
        let mut w = wrr(&[2, 1], 1, Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(picks(&mut w, 6, now), vec![0, 1, 0, 0, 1, 0]);
        let mut w = wrr(&[5, 1, 1], 1, Duration::from_secs(10));
        assert_eq!(picks(&mut w, 7, now), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn ineligible_peers_are_skipped() {
        let mut w = wrr(&[1, 1, 1], 1, Duration::from_secs(10));
        let now = Instant::now();
        for _ in 0..6 {
            assert_ne!(w.select(now, false, |i| i != 1), Some(1));
        }
        assert_eq!(w.select(now, false, |_| false), None);
    }

    #[test]
    fn max_fails_bans_for_fail_timeout_then_allows_one_trial() {
        let ft = Duration::from_secs(10);
        let mut w = wrr(&[1, 1], 2, ft);
        let t0 = Instant::now();
        assert!(!w.failure(0, t0));
        assert!(!w.failed_out(0, t0));
        assert!(w.failure(0, t0));
        assert!(w.failed_out(0, t0 + Duration::from_secs(9)));
        assert!(picks(&mut w, 10, t0 + Duration::from_secs(9))
            .iter()
            .all(|&i| i == 1));
        // After the ban, one trial: picking it restarts the window, so it is banned again
        // until it succeeds.
        let t1 = t0 + Duration::from_secs(11);
        let first = picks(&mut w, 2, t1);
        assert!(first.contains(&0));
        assert!(w.failed_out(0, t1));
        w.success(0);
        assert!(!w.failed_out(0, t1));
        assert_eq!(w.state(0).map(|s| s.fails), Some(0));
    }

    #[test]
    fn success_inside_the_window_does_not_reset_the_count() {
        let mut w = wrr(&[1, 1], 3, Duration::from_secs(10));
        let t0 = Instant::now();
        w.failure(0, t0);
        w.success(0);
        assert_eq!(w.state(0).map(|s| s.fails), Some(1));
    }

    #[test]
    fn max_fails_zero_never_bans_and_single_peer_is_never_banned() {
        let mut w = wrr(&[1, 1], 0, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..10 {
            w.failure(0, t0);
        }
        assert!(!w.failed_out(0, t0));
        let mut one = wrr(&[1], 1, Duration::from_secs(10));
        one.failure(0, t0);
        assert_eq!(one.select(t0, false, |_| true), Some(0));
    }

    #[test]
    fn failure_lowers_effective_weight_and_it_recovers() {
        let mut w = wrr(&[4, 4], 2, Duration::from_secs(10));
        let t0 = Instant::now();
        w.failure(0, t0);
        assert_eq!(w.state(0).map(|s| s.effective), Some(2));
        picks(&mut w, 2, t0);
        assert_eq!(w.state(0).map(|s| s.effective), Some(4));
    }

    #[test]
    fn carried_state_survives_rebuild() {
        let mut w = wrr(&[1, 1], 1, Duration::from_secs(10));
        let t0 = Instant::now();
        w.failure(0, t0);
        let carried = vec![w.state(0), None];
        let params = vec![
            PeerParams {
                weight: 1,
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
            };
            2
        ];
        let w2 = SmoothWrr::new(params, carried);
        assert!(w2.failed_out(0, t0));
        assert!(!w2.failed_out(1, t0));
    }
}
