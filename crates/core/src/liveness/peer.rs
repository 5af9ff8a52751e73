//! What we know about one peer: its reported status, generation, sequence
//! state, and when we last heard from it on each link.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::NodeName;

use super::NodeStatus;
use super::seq::SeqTracker;

/// Our verdict on a peer, separate from the status it reports (a live peer
/// may still report `init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PeerState {
    /// No status received yet, not yet declared dead.
    Unknown,
    /// Heard within its deadtime.
    Alive,
    /// Declared dead.
    Dead,
}

/// State of one (peer, medium) link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkState {
    /// Nothing received on it yet.
    Init,
    /// Heard within the peer's deadtime.
    Up,
    /// Silent for the peer's deadtime.
    Dead,
}

impl LinkState {
    /// `init`, `up` or `dead`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            LinkState::Init => "init",
            LinkState::Up => "up",
            LinkState::Dead => "dead",
        }
    }
}

/// One link to a peer.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub(super) state: LinkState,
    pub(super) last_heard: Option<Instant>,
}

/// One configured peer.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) name: NodeName,
    pub(super) state: PeerState,
    /// The `st` of its last status.
    pub(super) reported: NodeStatus,
    pub(super) uuid: Option<Vec<u8>>,
    /// Highest generation seen in a status; 0 until the first one.
    pub(super) generation: u64,
    /// Generation the sequence tracking belongs to (any message type).
    pub(super) seq_generation: u64,
    pub(super) last_heard: Option<Instant>,
    /// Its advertised `dt`.
    pub(super) deadtime: Option<Duration>,
    pub(super) last_status_at: Option<Instant>,
    pub(super) last_status_seq: u64,
    pub(super) seq: SeqTracker,
    pub(super) links: Vec<Link>,
    /// (generation, seq): anything at or below it is a replay (see `PeerFloor`).
    pub(super) floor: (u64, u64),
    /// Where and when the latest seqs were first received, newest last.
    recent: VecDeque<(u64, Instant, usize)>,
    /// A clamped `dt` was reported already.
    pub(super) dt_clamp_reported: bool,
    /// Retransmission answers left, in thousandths (token bucket).
    rexmit_milli_tokens: u64,
    rexmit_refilled_at: Option<Instant>,
    /// Set when our own wake-up came late during this silence: its death (and its links')
    /// waits at least until then. Once per silence, cleared by fresh evidence.
    pub(super) grace: Option<Instant>,
}

/// First receipts remembered per peer: a copy older than these is older than
/// a keepalive at any rate a peer sends.
const RECENT: usize = 32;

impl Peer {
    /// A peer never heard from, with `media` links.
    pub(super) fn new(name: NodeName, media: usize) -> Self {
        Peer {
            name,
            state: PeerState::Unknown,
            reported: NodeStatus::Init,
            uuid: None,
            generation: 0,
            seq_generation: 0,
            last_heard: None,
            deadtime: None,
            last_status_at: None,
            last_status_seq: 0,
            seq: SeqTracker::default(),
            links: vec![
                Link {
                    state: LinkState::Init,
                    last_heard: None,
                };
                media
            ],
            floor: (0, 0),
            recent: VecDeque::with_capacity(RECENT),
            dt_clamp_reported: false,
            rexmit_milli_tokens: 0,
            rexmit_refilled_at: None,
            grace: None,
        }
    }

    /// Remembers that `seq` was first received at `at` on medium `medium`.
    pub(super) fn note_first_receipt(&mut self, seq: u64, at: Instant, medium: usize) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, at, medium));
    }

    /// When and on which medium `seq` was first received, if recently.
    pub(super) fn first_receipt(&self, seq: u64) -> Option<(Instant, usize)> {
        self.recent
            .iter()
            .rev()
            .find(|(s, _, _)| *s == seq)
            .map(|&(_, at, m)| (at, m))
    }

    /// Takes one retransmission token from a bucket of `burst` refilled at
    /// `per_sec`; false when it is empty.
    pub(super) fn take_rexmit_token(&mut self, now: Instant, burst: u64, per_sec: u64) -> bool {
        let cap = burst * 1000;
        match self.rexmit_refilled_at {
            None => {
                self.rexmit_milli_tokens = cap;
                self.rexmit_refilled_at = Some(now);
            }
            Some(t) => {
                // Whole milliseconds only, so that frequent calls lose no credit.
                let ms =
                    u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX);
                self.rexmit_milli_tokens = self
                    .rexmit_milli_tokens
                    .saturating_add(ms.saturating_mul(per_sec))
                    .min(cap);
                self.rexmit_refilled_at = Some(t + Duration::from_millis(ms));
            }
        }
        if self.rexmit_milli_tokens < 1000 {
            return false;
        }
        self.rexmit_milli_tokens -= 1000;
        true
    }

    /// The status to show for it.
    pub(super) fn status(&self) -> NodeStatus {
        match self.state {
            PeerState::Unknown => NodeStatus::Init,
            PeerState::Alive => self.reported,
            PeerState::Dead => NodeStatus::Dead,
        }
    }

    /// The deadtime to judge it by: its own `dt`, else ours.
    pub(super) fn deadtime_or(&self, ours: Duration) -> Duration {
        self.deadtime.unwrap_or(ours)
    }

    /// When it is declared dead if nothing more arrives.
    pub(super) fn death_deadline(&self, ours: Duration, initdead_at: Instant) -> Option<Instant> {
        match (self.state, self.last_heard) {
            (PeerState::Dead, _) => None,
            (_, None) => Some(self.graced(initdead_at)),
            (_, Some(t)) => Some(self.graced(t + self.deadtime_or(ours))),
        }
    }

    fn graced(&self, deadline: Instant) -> Instant {
        self.grace.map_or(deadline, |g| deadline.max(g))
    }

    /// When each live link goes dead if nothing more arrives on it.
    pub(super) fn link_deadline(&self, link: &Link, ours: Duration) -> Option<Instant> {
        match (link.state, link.last_heard) {
            (LinkState::Up, Some(t)) => Some(self.graced(t + self.deadtime_or(ours))),
            _ => None,
        }
    }
}
