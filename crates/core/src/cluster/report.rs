//! The resource report exchanged between nodes (`t=resource`), Heartbeat's fields plus
//! had's exact per-group extension fields, which a Heartbeat peer ignores.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::Message;
use crate::message::{self, Generation, MessageType, Seq};

/// Heartbeat's coarse `rsc_hold`: which groups the sender holds, relative to the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldSet {
    None,
    Local,
    Foreign,
    All,
}

impl HoldSet {
    /// From "holds some of its own groups" / "holds some of the other node's groups".
    pub fn from_flags(local: bool, foreign: bool) -> Self {
        match (local, foreign) {
            (false, false) => Self::None,
            (true, false) => Self::Local,
            (false, true) => Self::Foreign,
            (true, true) => Self::All,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Local => "local",
            Self::Foreign => "foreign",
            Self::All => "all",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "local" => Self::Local,
            "foreign" => Self::Foreign,
            "all" => Self::All,
            _ => return None,
        })
    }
    /// Whether the set covers the sender's own groups (`local`) or the others' (`foreign`).
    pub fn covers(self, senders_local: bool) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Local => senders_local,
            Self::Foreign => !senders_local,
        }
    }
    /// Union, as Heartbeat ORs partial reports into the full one.
    pub fn union(self, other: Self) -> Self {
        Self::from_flags(
            self.covers(true) || other.covers(true),
            self.covers(false) || other.covers(false),
        )
    }
}

/// A node's resource report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerReport {
    pub rsc_hold: HoldSet,
    pub stable: bool,
    /// Exact group keys held (had extension `had_hold`); `None` from a Heartbeat peer.
    pub hold: Option<BTreeSet<String>>,
    /// Group keys the sender will not run (had extension `had_refuse`).
    pub refuse: BTreeSet<String>,
    /// Group keys the sender asks to take over (had extension `had_want`, see `admin.rs`).
    pub want: BTreeSet<String>,
    /// The part of `refuse` that is only standby (had extension `had_standby`): the sender
    /// would rather not run these, but will when nobody else can.
    pub standby: BTreeSet<String>,
    /// Ping nodes the sender reaches (had extension `had_ping`), when it has ping nodes.
    pub ping: Option<u32>,
    /// The sender's effective priority per group key (had extension `had_prio`, weighted
    /// checks); empty when it uses no priorities.
    pub prio: BTreeMap<String, u32>,
    pub info: Option<String>,
}

impl PeerReport {
    /// Whether the sender holds the group `key`; `senders_local` says whether the group is
    /// preferred by the sender (needed when only the coarse set is known).
    pub fn holds(&self, key: &str, senders_local: bool) -> bool {
        match &self.hold {
            Some(keys) => keys.contains(key),
            None => self.rsc_hold.covers(senders_local),
        }
    }

    /// Whether the sender refuses to run the group.
    pub fn refuses(&self, key: &str, _senders_local: bool) -> bool {
        self.refuse.contains(key)
    }

    /// Whether the sender cannot run the group at all (failed, unhealthy, leaving), as
    /// opposed to standing by for it.
    pub fn refuses_hard(&self, key: &str) -> bool {
        self.refuse.contains(key) && !self.standby.contains(key)
    }

    /// The wire message (`t=resource ... rtype=full`).
    pub fn to_message(&self) -> Message {
        let mut m = MessageType::Resource.message();
        m.push_str("rsc_hold", self.rsc_hold.as_str());
        m.push_str("rtype", "full");
        m.push_str("isstable", if self.stable { "1" } else { "0" });
        if let Some(info) = &self.info {
            m.push_str("info", info.clone());
        }
        if let Some(hold) = &self.hold {
            m.push_str("had_hold", join(hold));
        }
        m.push_str("had_refuse", join(&self.refuse));
        if !self.want.is_empty() {
            m.push_str("had_want", join(&self.want));
        }
        if !self.standby.is_empty() {
            m.push_str("had_standby", join(&self.standby));
        }
        if let Some(n) = self.ping {
            m.push_str("had_ping", n.to_string());
        }
        if !self.prio.is_empty() {
            let list: Vec<String> = self.prio.iter().map(|(k, p)| format!("{k}={p}")).collect();
            m.push_str("had_prio", list.join(" "));
        }
        m
    }

    /// Parse a `t=resource` message. Partial reports (no `rtype`) are returned with
    /// `partial = true` so the caller can OR them into the last full one.
    pub fn from_message(m: &Message) -> Option<(Self, bool)> {
        match message::Message::decode(m) {
            Ok(message::Message::Resource { report, partial }) => Some((report, partial)),
            _ => None,
        }
    }
}

fn join(keys: &BTreeSet<String>) -> String {
    // Heartbeat's lists are space-separated; a lone space marks the empty list, as in
    // `repnodes`'s `delnodelist`.
    if keys.is_empty() {
        " ".into()
    } else {
        keys.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The newest full report heard from the peer, by (generation, seq). Liveness delivers a
/// message whose first copy was lost when its retransmission arrives, and a copy that took
/// the slower of two links after a newer one: either would otherwise replace the peer's
/// current report with an older one, and leave this node believing the peer still holds a
/// group it has released (or does not hold one it runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportOrder(Option<(u64, u64)>);

impl ReportOrder {
    /// Whether the full report `msg` is older than one already taken (and must be dropped);
    /// a report that is not stale becomes the newest. Other messages are never stale.
    pub fn is_stale(&mut self, msg: &Message) -> bool {
        if MessageType::of(msg) != Some(MessageType::Resource) || msg.get("rtype") != Some("full") {
            return false;
        }
        let (Some(Generation(hg)), Some(Seq(seq))) =
            (Generation::of(msg), msg.get("seq").and_then(Seq::from_hex))
        else {
            // Liveness drops unsequenced messages; nothing to order them by here.
            return false;
        };
        if self.0.is_some_and(|newest| (hg, seq) <= newest) {
            return true;
        }
        self.0 = Some((hg, seq));
        false
    }
}
