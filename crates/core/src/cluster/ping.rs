//! The ping tiebreak (ipfail built in): each node counts the ping nodes it reaches and
//! sends the count in its report (`had_ping`). A node that reaches fewer than its live peer
//! for longer than a grace period refuses every group, so they move to the peer; equal
//! counts change nothing. The grace period (twice keepalive, as ipfail's giveup delay)
//! covers both nodes losing the same upstream a ping interval apart, which must not move
//! anything. When the count recovers the refusal lifts and the usual failback rules apply.
//!
//! [`Ping`] is its own machine: it takes our count and, at each step, the live peer's last
//! reported count; it answers whether we refuse, and the Cluster tells the peer when that
//! changes.

use std::time::{Duration, Instant};

use super::{Cluster, PeerState};

/// Our ping view.
#[derive(Debug, Default)]
pub(super) struct Ping {
    /// Ping nodes we reach, once measured.
    count: Option<u32>,
    /// Since when the peer has been seeing more than we do.
    worse_since: Option<Instant>,
    /// The worse view lasted the grace period: we refuse every group.
    refusing: bool,
    grace: Duration,
}

impl Ping {
    /// Our latest count of reachable ping nodes.
    pub(super) fn on_count(&mut self, n: u32) {
        self.count = Some(n);
    }

    /// Update the tiebreak for `now`, given the live peer's last reported count (`None`
    /// without a live peer or a count); true when the refusal changed.
    pub(super) fn step(&mut self, now: Instant, theirs: Option<u32>) -> bool {
        let was = self.refusing;
        let worse = matches!((self.count, theirs), (Some(ours), Some(theirs)) if ours < theirs);
        if worse {
            let since = *self.worse_since.get_or_insert(now);
            self.refusing = now.saturating_duration_since(since) >= self.grace;
        } else {
            self.worse_since = None;
            self.refusing = false;
        }
        self.refusing != was
    }

    /// We refuse every group because our upstream is worse than the peer's.
    pub(super) fn refusing(&self) -> bool {
        self.refusing
    }

    /// When the grace period of a worse view ends.
    pub(super) fn timeout(&self) -> Option<Instant> {
        match (self.worse_since, self.refusing) {
            (Some(since), false) => Some(since + self.grace),
            _ => None,
        }
    }
}

impl Cluster {
    /// How long a worse view must last before the groups move (default 0: at once).
    pub fn set_ping_grace(&mut self, grace: Duration) {
        self.ping.grace = grace;
    }

    /// Our latest count of reachable ping nodes.
    pub(super) fn on_ping_count(&mut self, n: u32) {
        self.ping.on_count(n);
        // The peer compares its count with ours: tell it at once.
        self.queue_report(false);
    }

    /// Update the tiebreak for `now`; called before each reconcile.
    pub(super) fn ping_step(&mut self, now: Instant) {
        let theirs = match &self.peer {
            PeerState::Alive {
                report: Some(r), ..
            } => r.ping,
            _ => None,
        };
        if self.ping.step(now, theirs) {
            self.queue_report(false);
        }
    }

    /// Our count, for the status view.
    pub fn ping_count(&self) -> Option<u32> {
        self.ping.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine alone: a worse view refuses after the grace, not before; equal or no
    /// peer count changes nothing; recovery lifts the refusal at once.
    #[test]
    fn a_worse_view_refuses_after_the_grace_and_recovery_lifts_it() {
        let t0 = Instant::now();
        let grace = Duration::from_millis(400);
        let mut p = Ping {
            grace,
            ..Ping::default()
        };
        assert!(!p.step(t0, Some(2)), "no count of ours yet");
        p.on_count(1);
        assert!(!p.step(t0, None), "no live peer count");
        assert!(!p.step(t0, Some(1)), "equal counts");
        assert!(!p.step(t0, Some(2)));
        assert_eq!(p.timeout(), Some(t0 + grace));
        assert!(!p.step(t0 + grace / 2, Some(2)));
        assert!(!p.refusing());
        assert!(p.step(t0 + grace, Some(2)), "the refusal starts");
        assert!(p.refusing());
        assert_eq!(p.timeout(), None);
        p.on_count(2);
        assert!(p.step(t0 + grace, Some(2)), "the refusal lifts");
        assert!(!p.refusing());
    }
}
