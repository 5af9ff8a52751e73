//! Monitoring rules: consecutive failures per monitor, restart in place within a window, then
//! failover. Pure bookkeeping for `Cluster`; it decides nothing about where groups run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// How a monitor's failures are acted on (from its had.toml `[[monitor]]`). Serialized as
/// is in `had --record` files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckRule {
    /// Consecutive failures before acting (at least 1).
    pub failures: u32,
    /// Restarts in place allowed within `window` before the group fails over.
    pub restarts: u32,
    /// The sliding window over which restarts are counted.
    pub window: Duration,
    /// Index of the watched resource in its group: a restart stops and starts it and every
    /// resource to its right (the ones that may depend on it).
    pub from: usize,
    /// Keepalived's `weight`: non-zero makes this a priority check (`priority.rs`), which
    /// never makes the group unhealthy.
    pub weight: i32,
    /// Consecutive passes before a failed monitor counts as passing again.
    pub rise: u32,
    /// Whether failures count where the group does not run (a lost link).
    pub everywhere: bool,
}

impl CheckRule {
    /// Act on the first failure, never restart in place: the plain failover rule.
    pub fn failover_after(failures: u32) -> Self {
        Self {
            failures,
            restarts: 0,
            window: Duration::from_secs(300),
            from: 0,
            weight: 0,
            rise: 1,
            everywhere: false,
        }
    }
}

/// What a check result means for the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing changes.
    Nothing,
    /// Restart the group's resources from this index rightwards, in place.
    Restart { from: usize },
    /// The group just became unhealthy here: hand it to the peer.
    Unhealthy,
    /// The last failing monitor of the group passes again.
    Healthy,
}

#[derive(Clone, Copy, Debug, Default)]
struct MonitorState {
    consecutive: u32,
    failed: bool,
    passes: u32,
}

/// Per-monitor failure counts and per-group restart history.
#[derive(Debug, Default)]
pub(super) struct Health {
    monitors: BTreeMap<(usize, usize), MonitorState>,
    restarts: BTreeMap<usize, VecDeque<Instant>>,
    restarting: BTreeSet<usize>,
}

impl Health {
    /// Account one check of `monitor` on `group`; `running_here` is whether the group runs
    /// here (a group stopped here is expected to fail its checks, so those do not count).
    pub(super) fn on_check(
        &mut self,
        now: Instant,
        group: usize,
        monitor: usize,
        ok: bool,
        running_here: bool,
        rule: CheckRule,
    ) -> Verdict {
        let was_unhealthy = self.is_unhealthy(group);
        let st = self.monitors.entry((group, monitor)).or_default();
        if ok {
            st.consecutive = 0;
            if st.failed {
                st.passes += 1;
                if st.passes < rule.rise.max(1) {
                    return Verdict::Nothing;
                }
                st.passes = 0;
                st.failed = false;
                if was_unhealthy && !self.is_unhealthy(group) {
                    return Verdict::Healthy;
                }
            }
            return Verdict::Nothing;
        }
        st.passes = 0;
        // While a restart is in flight the service is down on purpose.
        if !running_here || st.failed || self.restarting.contains(&group) {
            return Verdict::Nothing;
        }
        st.consecutive += 1;
        if st.consecutive < rule.failures.max(1) {
            return Verdict::Nothing;
        }
        st.consecutive = 0;
        let history = self.restarts.entry(group).or_default();
        while history
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= rule.window)
        {
            history.pop_front();
        }
        if (history.len() as u64) < u64::from(rule.restarts) {
            history.push_back(now);
            self.restarting.insert(group);
            return Verdict::Restart { from: rule.from };
        }
        if let Some(st) = self.monitors.get_mut(&(group, monitor)) {
            st.failed = true;
        }
        if was_unhealthy {
            Verdict::Nothing
        } else {
            Verdict::Unhealthy
        }
    }

    /// A restart in place finished (either way).
    pub(super) fn restart_done(&mut self, group: usize) {
        self.restarting.remove(&group);
    }

    /// Whether a restart in place of `group` is in flight.
    pub(super) fn is_restarting(&self, group: usize) -> bool {
        self.restarting.contains(&group)
    }

    /// Whether some monitor of `group` failed here and has not passed since.
    pub(super) fn is_unhealthy(&self, group: usize) -> bool {
        self.monitors
            .range((group, 0)..=(group, usize::MAX))
            .any(|(_, s)| s.failed)
    }

    /// Restarts in place of `group` counted in the current window.
    pub(super) fn restarts_used(&self, group: usize) -> usize {
        self.restarts.get(&group).map_or(0, VecDeque::len)
    }

    /// Forget every failure and restart count (`hactl cleanup`).
    pub(super) fn clear(&mut self) {
        self.monitors.clear();
        self.restarts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(failures: u32, restarts: u32) -> CheckRule {
        CheckRule {
            failures,
            restarts,
            window: Duration::from_secs(60),
            from: 1,
            weight: 0,
            rise: 1,
            everywhere: false,
        }
    }

    #[test]
    fn threshold_counts_consecutive_failures_only() {
        let mut h = Health::default();
        let t = Instant::now();
        let r = rule(3, 0);
        assert_eq!(h.on_check(t, 0, 0, false, true, r), Verdict::Nothing);
        assert_eq!(h.on_check(t, 0, 0, false, true, r), Verdict::Nothing);
        assert_eq!(h.on_check(t, 0, 0, true, true, r), Verdict::Nothing);
        assert_eq!(h.on_check(t, 0, 0, false, true, r), Verdict::Nothing);
        assert_eq!(h.on_check(t, 0, 0, false, true, r), Verdict::Nothing);
        assert_eq!(h.on_check(t, 0, 0, false, true, r), Verdict::Unhealthy);
        assert!(h.is_unhealthy(0));
    }

    #[test]
    fn another_monitor_passing_does_not_clear_a_failed_one() {
        let mut h = Health::default();
        let t = Instant::now();
        let r = rule(1, 0);
        assert_eq!(h.on_check(t, 0, 0, false, true, r), Verdict::Unhealthy);
        assert_eq!(h.on_check(t, 0, 1, true, true, r), Verdict::Nothing);
        assert!(h.is_unhealthy(0));
        assert_eq!(h.on_check(t, 0, 1, false, true, r), Verdict::Nothing);
        assert_eq!(h.on_check(t, 0, 0, true, false, r), Verdict::Nothing);
        assert!(h.is_unhealthy(0), "monitor 1 still fails");
        assert_eq!(h.on_check(t, 0, 1, true, false, r), Verdict::Healthy);
        assert!(!h.is_unhealthy(0));
    }

    #[test]
    fn failures_while_stopped_here_or_restarting_do_not_count() {
        let mut h = Health::default();
        let t = Instant::now();
        let r = rule(1, 1);
        assert_eq!(h.on_check(t, 0, 0, false, false, r), Verdict::Nothing);
        assert_eq!(
            h.on_check(t, 0, 0, false, true, r),
            Verdict::Restart { from: 1 }
        );
        assert!(h.is_restarting(0));
        assert_eq!(h.on_check(t, 0, 0, false, true, r), Verdict::Nothing);
        h.restart_done(0);
        assert_eq!(h.on_check(t, 0, 0, false, true, r), Verdict::Unhealthy);
    }

    #[test]
    fn restarts_are_counted_in_a_sliding_window() {
        let mut h = Health::default();
        let t0 = Instant::now();
        let r = rule(1, 2);
        let at = |h: &mut Health, secs: u64| {
            let v = h.on_check(t0 + Duration::from_secs(secs), 0, 0, false, true, r);
            h.restart_done(0);
            v
        };
        assert_eq!(at(&mut h, 0), Verdict::Restart { from: 1 });
        assert_eq!(at(&mut h, 10), Verdict::Restart { from: 1 });
        assert_eq!(h.restarts_used(0), 2);
        // Two restarts within 60 s: the third failure fails the group over.
        assert_eq!(at(&mut h, 20), Verdict::Unhealthy);
        h.clear();
        // After the window the oldest restart no longer counts.
        assert_eq!(at(&mut h, 100), Verdict::Restart { from: 1 });
        assert_eq!(at(&mut h, 130), Verdict::Restart { from: 1 });
        assert_eq!(at(&mut h, 165), Verdict::Restart { from: 1 });
        assert_eq!(h.restarts_used(0), 2);
    }
}
