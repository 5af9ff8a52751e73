//! The ping tiebreak (ipfail built in): each node counts the ping nodes it reaches and
//! sends the count in its report (`had_ping`). A node that reaches fewer than its live peer
//! for longer than a grace period refuses every group, so they move to the peer; equal
//! counts change nothing. The grace period (twice keepalive, as ipfail's giveup delay)
//! covers both nodes losing the same upstream a ping interval apart, which must not move
//! anything. When the count recovers the refusal lifts and the usual failback rules apply.

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

impl Cluster {
    /// How long a worse view must last before the groups move (default 0: at once).
    pub fn set_ping_grace(&mut self, grace: Duration) {
        self.ping.grace = grace;
    }

    /// Our latest count of reachable ping nodes.
    pub(super) fn on_ping_count(&mut self, n: u32) {
        self.ping.count = Some(n);
        // The peer compares its count with ours: tell it at once.
        self.queue_report(false);
    }

    /// The peer is alive, reported a count, and sees more ping nodes than we do.
    fn ping_view_worse(&self) -> bool {
        let (
            Some(ours),
            PeerState::Alive {
                report: Some(r), ..
            },
        ) = (self.ping.count, &self.peer)
        else {
            return false;
        };
        r.ping.is_some_and(|theirs| ours < theirs)
    }

    /// Update the tiebreak for `now`; called before each reconcile.
    pub(super) fn ping_step(&mut self, now: Instant) {
        let was = self.ping.refusing;
        if self.ping_view_worse() {
            let since = *self.ping.worse_since.get_or_insert(now);
            self.ping.refusing = now.saturating_duration_since(since) >= self.ping.grace;
        } else {
            self.ping.worse_since = None;
            self.ping.refusing = false;
        }
        if self.ping.refusing != was {
            self.queue_report(false);
        }
    }

    /// We refuse every group because our upstream is worse than the peer's.
    pub(super) fn ping_worse(&self) -> bool {
        self.ping.refusing
    }

    /// When the grace period of a worse view ends.
    pub(super) fn ping_timeout(&self) -> Option<Instant> {
        match (self.ping.worse_since, self.ping.refusing) {
            (Some(since), false) => Some(since + self.ping.grace),
            _ => None,
        }
    }

    /// Our count, for the status view.
    pub fn ping_count(&self) -> Option<u32> {
        self.ping.count
    }
}
