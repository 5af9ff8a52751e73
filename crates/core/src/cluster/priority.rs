//! Weighted checks (Keepalived's `priority` + `weight`): each node has a base priority, each
//! weighted monitor adds its weight while passing (weight > 0) or while failing (weight < 0),
//! and a group both nodes accept runs where the sum is higher, ties to its haresources node.
//! The peer learns our sum per group from the resource report (`had_prio`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Cluster, GroupId, PeerState};

/// One weighted monitor's state: `up` flips after `fall` failures or `rise` passes in a row.
#[derive(Clone, Copy, Debug)]
struct WeightState {
    up: bool,
    streak: u32,
    weight: i32,
}

/// Base priority and the weighted monitors' states.
#[derive(Debug, Default)]
pub(super) struct Weights {
    base: Option<u32>,
    monitors: BTreeMap<(usize, usize), WeightState>,
    /// Keepalived's `preempt_delay`: how long a group stays on the peer's side of a move
    /// back (see `failback_held`).
    failback_delay: Duration,
    /// The next instant a held failback must be looked at again.
    failback_deadline: Option<Instant>,
}

impl Weights {
    /// Account one check; returns whether the monitor's weight now counts differently.
    /// A monitor starts up (Keepalived assumes a script passes until it has failed `fall`
    /// times), so a node does not lose priority just by starting.
    fn on_check(
        &mut self,
        group: usize,
        monitor: usize,
        ok: bool,
        w: i32,
        fall: u32,
        rise: u32,
    ) -> bool {
        let st = self
            .monitors
            .entry((group, monitor))
            .or_insert(WeightState {
                up: true,
                streak: 0,
                weight: w,
            });
        st.weight = w;
        if ok == st.up {
            st.streak = 0;
            return false;
        }
        st.streak += 1;
        let need = if ok { rise } else { fall };
        if st.streak < need.max(1) {
            return false;
        }
        st.up = ok;
        st.streak = 0;
        true
    }

    /// The effective priority of `group` here, `None` without a base priority. Clamped to
    /// 1..=254 as Keepalived does; a base of 255 (the address owner) is never changed.
    fn effective(&self, group: usize) -> Option<u32> {
        let base = self.base?;
        if base >= 255 {
            return Some(255);
        }
        let delta: i64 = self
            .monitors
            .range((group, 0)..=(group, usize::MAX))
            .map(|(_, s)| match (s.up, s.weight) {
                (true, w) if w > 0 => i64::from(w),
                (false, w) if w < 0 => i64::from(w),
                _ => 0,
            })
            .sum();
        Some((i64::from(base) + delta).clamp(1, 254) as u32)
    }
}

impl Cluster {
    /// This node's base priority (had.toml `[priority]`); `None` turns weights off.
    pub fn set_priority(&mut self, base: Option<u32>) {
        self.weights.base = base;
    }

    /// This node's name.
    pub fn local_name(&self) -> &str {
        &self.cfg.local
    }

    /// Keepalived's `preempt_delay` (had.toml `[group] failback_delay`).
    pub fn set_failback_delay(&mut self, d: Duration) {
        self.weights.failback_delay = d;
    }

    /// Our effective priority for group `g` (base plus weights), if priorities are in use.
    pub fn effective_priority(&self, g: GroupId) -> Option<u32> {
        self.weights.effective(g.0)
    }

    /// The effective priorities we advertise, by group key.
    pub(super) fn priorities(&self) -> BTreeMap<String, u32> {
        self.cfg
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| Some((g.key.clone(), self.weights.effective(i)?)))
            .collect()
    }

    /// A weighted check: changes the priority, never the group's health.
    pub(super) fn on_weighted_check(
        &mut self,
        now: Instant,
        g: GroupId,
        monitor: usize,
        ok: bool,
        rule: super::CheckRule,
        detail: &str,
    ) {
        let before = self.weights.effective(g.0);
        if self
            .weights
            .on_check(g.0, monitor, ok, rule.weight, rule.failures, rule.rise)
        {
            let after = self.weights.effective(g.0);
            let what = if ok { "priority up" } else { "priority down" };
            let why = match (before, after) {
                (Some(b), Some(a)) => format!(
                    "monitor {monitor} {} (weight {}): priority {b} -> {a}",
                    if ok { "passes" } else { "fails" },
                    rule.weight
                ),
                _ => detail.to_string(),
            };
            self.note(now, g, what, &why);
        }
        self.queue_report(false);
    }

    /// Who should run `g` by priority when both nodes accept it: `Some(true)` us, `Some(false)`
    /// the peer, `None` when priorities are off, unknown for the peer, or equal.
    pub(super) fn priority_decides(&self, g: usize, peer: &super::PeerReport) -> Option<bool> {
        let ours = self.weights.effective(g)?;
        let theirs = *peer.prio.get(&self.cfg.groups[g].key)?;
        (ours != theirs).then_some(ours > theirs)
    }

    /// Keepalived's `preempt_delay`: a group we run that should now move to the peer (it came
    /// back, or its priority rose) stays here until the peer has been up for the delay.
    /// Moves forced by a refusal (failure, standby, shutdown) are never held.
    pub(super) fn failback_held(&self, now: Instant, g: usize) -> Option<Instant> {
        if self.weights.failback_delay.is_zero()
            || self.groups[g].state != super::GroupState::Running
            || self.refuses(g)
        {
            return None;
        }
        let PeerState::Alive {
            report: Some(r),
            since,
        } = &self.peer
        else {
            return None;
        };
        if r.refuses(&self.cfg.groups[g].key, false) {
            return None;
        }
        let until = *since + self.weights.failback_delay;
        (now < until).then_some(until)
    }

    /// Remember the earliest held failback, for `poll_timeout`.
    pub(super) fn set_failback_deadline(&mut self, at: Option<Instant>) {
        self.weights.failback_deadline = at;
    }

    pub(super) fn failback_timeout(&self) -> Option<Instant> {
        self.weights.failback_deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_and_rise_count_consecutive_results() {
        let mut w = Weights {
            base: Some(100),
            ..Default::default()
        };
        assert_eq!(w.effective(0), Some(100));
        assert!(!w.on_check(0, 0, false, -20, 2, 3));
        assert_eq!(w.effective(0), Some(100), "one failure of fall 2");
        assert!(w.on_check(0, 0, false, -20, 2, 3));
        assert_eq!(w.effective(0), Some(80));
        assert!(!w.on_check(0, 0, true, -20, 2, 3));
        assert!(
            !w.on_check(0, 0, false, -20, 2, 3),
            "a failure resets the rise streak"
        );
        assert!(!w.on_check(0, 0, true, -20, 2, 3));
        assert!(!w.on_check(0, 0, true, -20, 2, 3));
        assert!(w.on_check(0, 0, true, -20, 2, 3));
        assert_eq!(w.effective(0), Some(100));
    }

    #[test]
    fn clamped_and_owner_fixed() {
        let mut w = Weights {
            base: Some(250),
            ..Default::default()
        };
        w.on_check(0, 0, true, 100, 1, 1);
        assert_eq!(w.effective(0), Some(254));
        w.base = Some(10);
        w.on_check(1, 0, false, -100, 1, 1);
        assert_eq!(w.effective(1), Some(1));
        w.base = Some(255);
        assert_eq!(w.effective(0), Some(255));
        w.base = None;
        assert_eq!(w.effective(0), None);
    }
}
