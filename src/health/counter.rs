//! The rise/fall counter of nginx_upstream_check_module, kept pure so it can be unit-tested:
//! a success resets the failure count and vice versa, and the verdict flips only after `rise`
//! consecutive successes (to healthy) or `fall` consecutive failures (to unhealthy).

use crate::upstream::Health;

/// Consecutive probe results of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    successes: u32,
    failures: u32,
}

impl RiseFall {
    /// `rise` and `fall` below 1 are treated as 1.
    pub fn new(rise: u32, fall: u32) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            successes: 0,
            failures: 0,
        }
    }

    /// Applies new thresholds (config reload) without losing the counts.
    pub fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }

    /// Consecutive successes and failures so far (one of them is always 0).
    pub fn counts(&self) -> (u32, u32) {
        (self.successes, self.failures)
    }

    /// Records one probe result for a server currently in state `current`; returns the new
    /// state when it changes. `Unknown` (no verdict yet) becomes `Healthy` after `rise`
    /// successes and `Unhealthy` after `fall` failures.
    pub fn record(&mut self, ok: bool, current: Health) -> Option<Health> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            (current != Health::Healthy && self.successes >= self.rise).then_some(Health::Healthy)
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            (current != Health::Unhealthy && self.failures >= self.fall)
                .then_some(Health::Unhealthy)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    /// Feeds `results` starting from `start`; returns the state after each result.
    fn run(rf: &mut RiseFall, start: Health, results: &str) -> Vec<Health> {
        let mut state = start;
        results
            .chars()
            .map(|c| {
                if let Some(s) = rf.record(c == '+', state) {
                    state = s;
                }
                state
            })
            .collect()
    }

    #[test]
    fn falls_only_after_fall_consecutive_failures() {
        let mut rf = RiseFall::new(2, 3);
        let got = run(&mut rf, Healthy, "--+--+---");
        assert_eq!(
            got,
            [Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy]
        );
    }

    #[test]
    fn rises_only_after_rise_consecutive_successes() {
        let mut rf = RiseFall::new(3, 1);
        let got = run(&mut rf, Unhealthy, "++-+++");
        assert_eq!(
            got,
            [Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Healthy]
        );
    }

    #[test]
    fn success_resets_fall_count_and_vice_versa() {
        let mut rf = RiseFall::new(2, 2);
        rf.record(false, Healthy);
        assert_eq!(rf.counts(), (0, 1));
        rf.record(true, Healthy);
        assert_eq!(rf.counts(), (1, 0));
        rf.record(false, Healthy);
        assert_eq!(rf.counts(), (0, 1));
    }

    #[test]
    fn unknown_concludes_either_way() {
        let mut rf = RiseFall::new(2, 3);
        assert_eq!(run(&mut rf, Unknown, "++"), [Unknown, Healthy]);
        let mut rf = RiseFall::new(2, 3);
        assert_eq!(run(&mut rf, Unknown, "---"), [Unknown, Unknown, Unhealthy]);
    }

    #[test]
    fn no_repeated_flip_while_state_holds() {
        let mut rf = RiseFall::new(1, 1);
        assert_eq!(rf.record(false, Healthy), Some(Unhealthy));
        assert_eq!(rf.record(false, Unhealthy), None);
        assert_eq!(rf.record(true, Unhealthy), Some(Healthy));
        assert_eq!(rf.record(true, Healthy), None);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut rf = RiseFall::new(0, 0);
        assert_eq!(rf.record(false, Healthy), Some(Unhealthy));
        rf.set_thresholds(0, 5);
        assert_eq!(rf.record(true, Unhealthy), Some(Healthy));
    }
}
