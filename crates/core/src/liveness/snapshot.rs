//! Serializable view of the liveness state, for `hactl status`.

use std::collections::BTreeMap;

use serde::Serialize;

/// The whole liveness state at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivenessSnapshot {
    /// Our status (`up`, `active`, ...).
    pub local_status: String,
    /// Our generation.
    pub generation: u64,
    /// Last seq we used.
    pub seq: u64,
    /// One entry per configured peer.
    pub peers: Vec<PeerSnapshot>,
    /// Packets queued for sending (retransmissions included).
    pub sent: u64,
    /// Datagrams handed to the machine.
    pub received: u64,
    /// Dropped packets by reason (`DropReason::as_str`); every reason is present.
    pub dropped: BTreeMap<String, u64>,
    /// Late heartbeats seen.
    pub late: u64,
    /// Signed packets with our own node name from an address not ours.
    pub own_name_elsewhere: u64,
    /// Retransmissions and NAKs not sent because the requester's rate was spent.
    pub rexmit_limited: u64,
}

/// One peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerSnapshot {
    /// Node name.
    pub node: String,
    /// `init`, `up`, `active` or `dead`.
    pub status: String,
    /// Milliseconds since anything arrived from it.
    pub last_heard_ms: Option<u64>,
    /// The deadtime it is judged by (its advertised `dt`, else ours).
    pub deadtime_ms: u64,
    /// Its generation, once a status arrived.
    pub generation: Option<u64>,
    /// One entry per medium.
    pub links: Vec<LinkSnapshot>,
}

/// One link to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkSnapshot {
    /// Link (interface) name.
    pub name: String,
    /// `init`, `up` or `dead`.
    pub status: String,
    /// Milliseconds since anything arrived from the peer on it.
    pub last_heard_ms: Option<u64>,
}
