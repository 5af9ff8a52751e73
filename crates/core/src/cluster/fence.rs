//! Fencing: before taking over from a peer that was not heard releasing its groups (it
//! died holding some, or was never heard at all), had runs the `[fence]` command and
//! starts nothing until it succeeds; a failed attempt is retried after `retry`. A peer
//! that said `shutdone`, or whose last report held nothing, needs no fencing (Heartbeat's
//! STONITH rule, with an external command in place of a STONITH plugin).
//!
//! [`Fence`] is its own machine: it is told what the cluster saw (the peer died having
//! released everything or not, it came back, an attempt finished) and answers whether
//! starts wait and whether an attempt is due. The Cluster turns that into `Action::Fence`.

use std::time::{Duration, Instant};

use super::{Action, Cluster, PeerState};

/// Where fencing stands.
#[derive(Debug, Default)]
pub(super) struct Fence {
    /// `Some(retry pause)` when a fence command is configured.
    retry: Option<Duration>,
    /// The dead peer must be fenced before we take anything.
    needed: bool,
    /// An attempt is running.
    running: bool,
    /// No new attempt before this instant (after a failure).
    retry_at: Option<Instant>,
}

/// What [`Fence::step`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FenceStep {
    /// Nothing to fence: starts may go ahead.
    Clear,
    /// Starts wait; an attempt runs or the retry pause is not over.
    Wait,
    /// Starts wait; run the fence command now.
    Start,
}

impl Fence {
    /// Fencing on (`Some(pause between failed attempts)`) or off (which forgets any need).
    pub(super) fn configure(&mut self, retry: Option<Duration>) {
        self.retry = retry;
        if retry.is_none() {
            *self = Fence::default();
        }
    }

    /// Whether takeover waits for a fence to succeed.
    pub(super) fn pending(&self) -> bool {
        self.needed
    }

    /// The peer was declared dead; `released`: it was last heard holding nothing (or said
    /// `shutdone`), so there is nothing to fence.
    pub(super) fn on_peer_dead(&mut self, released: bool) {
        if self.retry.is_some() && !self.needed {
            self.needed = !released;
        }
    }

    /// The peer is back (or left cleanly): whatever it held, it tells us now.
    pub(super) fn cancel(&mut self) {
        self.needed = false;
        self.retry_at = None;
    }

    /// An attempt finished.
    pub(super) fn on_fenced(&mut self, now: Instant, ok: bool) {
        self.running = false;
        if !self.needed {
            return;
        }
        if ok {
            self.needed = false;
            self.retry_at = None;
        } else {
            self.retry_at = Some(now + self.retry.unwrap_or_default());
        }
    }

    /// What fencing asks for at `now` (an attempt it asks for is counted as running).
    pub(super) fn step(&mut self, now: Instant) -> FenceStep {
        if !self.needed {
            return FenceStep::Clear;
        }
        let due = self.retry_at.is_none_or(|t| now >= t);
        if !self.running && due {
            self.running = true;
            self.retry_at = None;
            return FenceStep::Start;
        }
        FenceStep::Wait
    }

    /// When the next attempt is due.
    pub(super) fn timeout(&self) -> Option<Instant> {
        if self.needed && !self.running {
            self.retry_at
        } else {
            None
        }
    }
}

impl Cluster {
    /// Turn fencing on (`Some(pause between failed attempts)`) or off.
    pub fn set_fencing(&mut self, retry: Option<Duration>) {
        self.fence.configure(retry);
    }

    /// Whether takeover waits for a fence to succeed.
    pub fn fence_pending(&self) -> bool {
        self.fence.pending()
    }

    /// Whether the peer, as last heard, held nothing: called when it is declared dead,
    /// before its state changes, while its last report is still known.
    pub(super) fn peer_released_all(&self) -> bool {
        match &self.peer {
            PeerState::Gone | PeerState::Dead => true,
            PeerState::Alive {
                report: Some(r), ..
            } => r.hold.as_ref().map_or(
                r.rsc_hold == super::HoldSet::None,
                std::collections::BTreeSet::is_empty,
            ),
            PeerState::Alive { report: None, .. } | PeerState::Unknown => false,
        }
    }

    /// Ask for an attempt when one is due; true while starts must wait.
    pub(super) fn fence_step(&mut self, now: Instant) -> bool {
        match self.fence.step(now) {
            FenceStep::Clear => false,
            FenceStep::Wait => true,
            FenceStep::Start => {
                self.actions.push_back(Action::Fence);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine alone: a peer that died holding something is fenced before anything
    /// starts; a failure waits the pause, then retries; success clears the way.
    #[test]
    fn a_failed_attempt_waits_the_pause_then_retries() {
        let t0 = Instant::now();
        let pause = Duration::from_secs(5);
        let mut f = Fence::default();
        f.on_peer_dead(false);
        assert_eq!(f.step(t0), FenceStep::Clear, "no fencing configured");
        f.configure(Some(pause));
        f.on_peer_dead(false);
        assert!(f.pending());
        assert_eq!(f.step(t0), FenceStep::Start);
        assert_eq!(f.step(t0), FenceStep::Wait, "one attempt at a time");
        assert_eq!(f.timeout(), None, "nothing is due while it runs");
        f.on_fenced(t0, false);
        assert_eq!(f.timeout(), Some(t0 + pause));
        assert_eq!(f.step(t0 + pause / 2), FenceStep::Wait);
        assert_eq!(f.step(t0 + pause), FenceStep::Start);
        f.on_fenced(t0 + pause, true);
        assert!(!f.pending());
        assert_eq!(f.step(t0 + pause), FenceStep::Clear);
    }

    /// A peer that released everything needs no fence; one that comes back cancels it;
    /// turning fencing off forgets it.
    #[test]
    fn released_returned_or_unconfigured_needs_no_fence() {
        let t0 = Instant::now();
        let mut f = Fence::default();
        f.configure(Some(Duration::from_secs(1)));
        f.on_peer_dead(true);
        assert_eq!(f.step(t0), FenceStep::Clear);
        f.on_peer_dead(false);
        assert_eq!(f.step(t0), FenceStep::Start);
        f.cancel();
        f.on_fenced(t0, false);
        assert_eq!(
            f.step(t0),
            FenceStep::Clear,
            "a late failure after the peer came back"
        );
        f.on_peer_dead(false);
        f.configure(None);
        assert!(!f.pending());
        assert_eq!(f.step(t0), FenceStep::Clear);
    }
}
