//! What we know about one peer: its reported status, generation, sequence
//! state, and when we last heard from it on each link.

use std::time::{Duration, Instant};

use ha_config::NodeName;

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
}

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
        }
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
            (_, None) => Some(initdead_at),
            (_, Some(t)) => Some(t + self.deadtime_or(ours)),
        }
    }

    /// When each live link goes dead if nothing more arrives on it.
    pub(super) fn link_deadline(&self, link: &Link, ours: Duration) -> Option<Instant> {
        match (link.state, link.last_heard) {
            (LinkState::Up, Some(t)) => Some(t + self.deadtime_or(ours)),
            _ => None,
        }
    }
}
