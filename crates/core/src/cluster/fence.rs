//! Fencing: before taking over from a peer that was not heard releasing its groups (it
//! died holding some, or was never heard at all), had runs the `[fence]` command and
//! starts nothing until it succeeds; a failed attempt is retried after `retry`. A peer
//! that said `shutdone`, or whose last report held nothing, needs no fencing (Heartbeat's
//! STONITH rule, with an external command in place of a STONITH plugin).

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

impl Cluster {
    /// Turn fencing on (`Some(pause between failed attempts)`) or off.
    pub fn set_fencing(&mut self, retry: Option<Duration>) {
        self.fence.retry = retry;
        if retry.is_none() {
            self.fence = super::fence::Fence::default();
        }
    }

    /// Whether takeover waits for a fence to succeed.
    pub fn fence_pending(&self) -> bool {
        self.fence.needed
    }

    /// The peer was declared dead: decide whether it must be fenced. Called before the
    /// peer state changes, while its last report is still known.
    pub(super) fn fence_on_peer_dead(&mut self) {
        if self.fence.retry.is_none() || self.fence.needed {
            return;
        }
        let released = match &self.peer {
            PeerState::Gone | PeerState::Dead => true,
            PeerState::Alive {
                report: Some(r), ..
            } => r.hold.as_ref().map_or(
                r.rsc_hold == super::HoldSet::None,
                std::collections::BTreeSet::is_empty,
            ),
            PeerState::Alive { report: None, .. } | PeerState::Unknown => false,
        };
        self.fence.needed = !released;
    }

    /// The peer is back (or left cleanly): whatever it held, it tells us now.
    pub(super) fn fence_cancel(&mut self) {
        self.fence.needed = false;
        self.fence.retry_at = None;
    }

    /// The daemon's fence attempt finished.
    pub(super) fn on_fenced(&mut self, now: Instant, ok: bool) {
        self.fence.running = false;
        if !self.fence.needed {
            return;
        }
        if ok {
            self.fence.needed = false;
            self.fence.retry_at = None;
        } else {
            self.fence.retry_at = Some(now + self.fence.retry.unwrap_or_default());
        }
    }

    /// Ask for an attempt when one is due; true while starts must wait.
    pub(super) fn fence_step(&mut self, now: Instant) -> bool {
        if !self.fence.needed {
            return false;
        }
        let due = self.fence.retry_at.is_none_or(|t| now >= t);
        if !self.fence.running && due {
            self.fence.running = true;
            self.fence.retry_at = None;
            self.actions.push_back(Action::Fence);
        }
        true
    }

    /// When the next attempt is due.
    pub(super) fn fence_timeout(&self) -> Option<Instant> {
        if self.fence.needed && !self.fence.running {
            self.fence.retry_at
        } else {
            None
        }
    }
}
