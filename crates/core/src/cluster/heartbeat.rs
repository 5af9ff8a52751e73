//! Heartbeat's R1 resource protocol beyond the full report: the three-phase standby
//! (`ask_resources` with `info=me|other|done`), `hb_takeover` and partial reports. This is how
//! groups move to and from a Heartbeat 3.0.6 peer, which reads none of had's extension fields;
//! between two had nodes the reports alone move groups and none of this runs.
//!
//! The exchange, with A giving up the set S (named from A's point of view) to B:
//! A sends `me`; B (stable, not busy) answers `other`; A releases S and sends `done`; B acquires
//! what S means on its side and sends `done`. A Heartbeat node hears its own broadcasts and
//! steps on them; had does not, so it steps when it sends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::codec::Message;
use crate::message::{self, MessageType};

use super::{Action, AdminCommand, Cluster, ClusterInput, GroupId, GroupState, HoldSet, PeerState};

/// How long a standby request waits for the peer's `other` (Heartbeat's own limit).
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answered request waits for the requester's `done`. Heartbeat allows an hour,
/// because releasing may retry a failing stop ten times; had keeps that bound.
const GRANT_TIMEOUT: Duration = Duration::from_secs(3600);
/// After an unanswered request, wait this long before offering again (Heartbeat retries its
/// auto-failback every second).
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long both nodes must claim a group before we ask the Heartbeat peer to stand by.
const BOTH_HELD_GRACE: Duration = Duration::from_millis(500);

/// The `info` of an `ask_resources` message: the phase of the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskInfo {
    /// The sender wants to give up the set.
    Me,
    /// The receiver of `me` agrees to take it.
    Other,
    /// The sender finished its part (released, or acquired).
    Done,
}

impl AskInfo {
    /// `me`, `other` or `done`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Me => "me",
            Self::Other => "other",
            Self::Done => "done",
        }
    }

    /// Parses Heartbeat's word.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "me" => Self::Me,
            "other" => Self::Other,
            "done" => Self::Done,
            _ => return None,
        })
    }
}

/// Heartbeat-protocol inputs to the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HbInput {
    /// A partial `resource` report (no `rtype=full`, e.g. `info=mach_down`): OR-ed into the
    /// last full one, as Heartbeat does (`none` clears it).
    PartialReport(HoldSet),
    /// `ask_resources`: `set` names the groups from the point of view of the node giving them up.
    Ask { set: HoldSet, info: AskInfo },
    /// `hb_takeover`: the peer wants `set` (its point of view) and expects us to stand by.
    Takeover(HoldSet),
}

/// The cluster input for a `resource`, `ask_resources` or `hb_takeover` message; `None` when
/// the message is malformed (the caller logs it).
pub fn input_from_message(msg: &Message) -> Option<ClusterInput> {
    Some(match message::Message::decode(msg).ok()? {
        message::Message::Resource { report, partial } => {
            if partial {
                ClusterInput::Heartbeat(HbInput::PartialReport(report.rsc_hold))
            } else {
                ClusterInput::PeerReport(report)
            }
        }
        message::Message::AskResources { set, info } => {
            ClusterInput::Heartbeat(HbInput::Ask { set, info })
        }
        message::Message::HbTakeover { set } => ClusterInput::Heartbeat(HbInput::Takeover(set)),
        _ => return None,
    })
}

/// An `ask_resources` message.
pub fn ask_message(set: HoldSet, info: AskInfo) -> Message {
    let mut m = MessageType::AskResources.message();
    m.push_str("rsc_hold", set.as_str());
    m.push_str("info", info.as_str());
    m
}

/// An `hb_takeover` message: we want `set` (our point of view).
pub fn takeover_message(set: HoldSet) -> Message {
    let mut m = MessageType::HbTakeover.message();
    m.push_str("rsc_hold", set.as_str());
    m
}

/// Where an exchange with a Heartbeat peer stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Idle,
    /// We sent `me` for `set` (our view) and wait for `other`.
    Asking {
        set: HoldSet,
        groups: BTreeSet<usize>,
        until: Instant,
    },
    /// The peer agreed: we stop `groups`, then send `done`.
    Releasing {
        set: HoldSet,
        groups: BTreeSet<usize>,
    },
    /// We answered the peer's `me` for `set` (its view) and wait for its `done`.
    Granting { set: HoldSet, until: Instant },
    /// The peer released: we start `groups`, then send `done`.
    Acquiring {
        set: HoldSet,
        groups: BTreeSet<usize>,
    },
}

/// The cluster's state for the Heartbeat protocol.
#[derive(Clone, Debug, Default)]
pub(super) struct HbState {
    phase: Phase,
    /// Groups whose holder a finished exchange settled: `true` here, `false` on the peer. It
    /// overrides the failback rule until the peer dies, leaves or restarts, as a Heartbeat
    /// pair never fails back after a standby either.
    settled: BTreeMap<usize, bool>,
    /// Groups the peer asked for with `hb_takeover`, offered at the next chance.
    asked: BTreeSet<usize>,
    /// No new offer before this instant (after an unanswered one).
    quiet_until: Option<Instant>,
    /// Since when the peer's stable report claims a group that runs here and should (see
    /// `hb_reclaim`).
    both_since: Option<Instant>,
    /// Heartbeat's `rsc_hold` bits mean "responsible for that side's groups", also when the
    /// side has none; these say whether we claim a side that has no groups (`coarse_hold`).
    claim_empty: ClaimEmpty,
}

/// Whether to claim our own / the peer's side in `rsc_hold` when it has no groups at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClaimEmpty {
    local: bool,
    foreign: bool,
}

impl Default for ClaimEmpty {
    /// A node takes its own side at start, as Heartbeat's `req_our_resources` does.
    fn default() -> Self {
        Self {
            local: true,
            foreign: false,
        }
    }
}

/// What `handle` saw, for the protocol's bookkeeping after the main rules ran.
#[derive(Clone, Copy, Debug)]
pub(super) enum Seen {
    Other,
    /// The peer died, shut down or restarted: every exchange with it is void.
    PeerReset,
    /// An admin takeover for these groups.
    Takeover(super::Scope),
}

impl Seen {
    pub(super) fn of(input: &ClusterInput) -> Self {
        match input {
            ClusterInput::PeerDead | ClusterInput::PeerShutdown => Self::PeerReset,
            ClusterInput::PeerUp {
                returning_after_partition,
                restarted,
            } if *returning_after_partition || *restarted => Self::PeerReset,
            ClusterInput::Admin(AdminCommand::Takeover(scope)) => Self::Takeover(*scope),
            _ => Self::Other,
        }
    }
}

impl Cluster {
    /// Whether the peer speaks only Heartbeat's protocol: its full reports lack `had_hold`.
    pub fn peer_is_heartbeat(&self) -> bool {
        self.peer_report().is_some_and(|r| r.hold.is_none())
    }

    /// Heartbeat's coarse `rsc_hold` for our report. A node with no groups of its own counts
    /// as holding them (Heartbeat sets that bit once it has taken its own groups, whatever
    /// their number); otherwise a Heartbeat peer logs "No one owns foreign resources!".
    pub(super) fn coarse_hold(&self, local_held: bool, foreign_held: bool) -> HoldSet {
        let none_of = |local: bool| !self.cfg.groups.iter().any(|g| g.preferred_local == local);
        let claim = |empty: bool, claimed: bool| empty && claimed && !self.shutting_down;
        HoldSet::from_flags(
            local_held || claim(none_of(true), self.hb.claim_empty.local),
            foreign_held || claim(none_of(false), self.hb.claim_empty.foreign),
        )
    }

    /// The holder an exchange with a Heartbeat peer decided for group `g`, if any.
    pub(super) fn hb_desired(&self, g: usize) -> Option<bool> {
        match &self.hb.phase {
            Phase::Asking { groups, .. } | Phase::Releasing { groups, .. }
                if groups.contains(&g) =>
            {
                Some(false)
            }
            Phase::Acquiring { groups, .. } if groups.contains(&g) => Some(true),
            _ => self.hb.settled.get(&g).copied(),
        }
    }

    /// Whether group `g` is in a set the peer offered us and we accepted (`other` sent): it
    /// stays where it is until the peer's `done` says it has been released.
    pub(super) fn hb_granting(&self, g: usize) -> bool {
        matches!(&self.hb.phase, Phase::Granting { set, .. } if self.in_peer_set(*set, g))
    }

    /// Whether the peer's `done` released group `g` to us in the exchange under way.
    pub(super) fn hb_released(&self, g: usize) -> bool {
        matches!(&self.hb.phase, Phase::Acquiring { groups, .. } if groups.contains(&g))
    }

    /// Heartbeat-protocol messages from the peer.
    pub(super) fn on_hb_input(&mut self, now: Instant, input: HbInput) {
        match input {
            HbInput::PartialReport(set) => {
                if let PeerState::Alive {
                    report: Some(r), ..
                } = &mut self.peer
                {
                    r.rsc_hold = match set {
                        HoldSet::None => HoldSet::None,
                        s => r.rsc_hold.union(s),
                    };
                }
            }
            HbInput::Ask { set, info } => self.on_ask(now, set, info),
            HbInput::Takeover(set) => {
                // The peer's `local` is our `foreign` and the other way round.
                let ours = HoldSet::from_flags(set.covers(false), set.covers(true));
                self.hb.asked = (0..self.groups.len())
                    .filter(|&g| self.groups[g].state.is_held() && self.in_set(ours, g))
                    .collect();
                for g in self.hb.asked.clone() {
                    self.note(
                        now,
                        GroupId(g),
                        "standby",
                        &format!("{} asked for it (hb_takeover)", self.cfg.peer),
                    );
                }
                self.hb.quiet_until = None;
            }
        }
    }

    fn on_ask(&mut self, now: Instant, set: HoldSet, info: AskInfo) {
        match (&self.hb.phase, info) {
            (Phase::Idle, AskInfo::Me) => {
                // The set is the peer's: its `local` groups are those it prefers.
                let coming: Vec<usize> = (0..self.groups.len())
                    .filter(|&g| self.in_peer_set(set, g) && !self.refuses(g))
                    .collect();
                // Heartbeat's own rule: both sides stable. And never answer for groups we
                // would not run: silence makes the peer keep them.
                if coming.is_empty() || self.shutting_down || !self.locally_stable() {
                    return;
                }
                self.actions
                    .push_back(Action::Send(ask_message(set, AskInfo::Other)));
                self.hb.phase = Phase::Granting {
                    set,
                    until: now + GRANT_TIMEOUT,
                };
            }
            (
                Phase::Asking {
                    set: ours, groups, ..
                },
                AskInfo::Other,
            ) if *ours == set => {
                let groups = groups.clone();
                for &g in &groups {
                    if self.groups[g].state == GroupState::Running
                        && self.transition(now, GroupId(g), GroupState::Stopping)
                    {
                        self.note(
                            now,
                            GroupId(g),
                            "stopping",
                            &format!("standby: {} takes it", self.cfg.peer),
                        );
                        self.actions.push_back(Action::Stop(GroupId(g)));
                    }
                }
                self.hb.phase = Phase::Releasing { set, groups };
                self.queue_report(false);
            }
            (Phase::Granting { set: theirs, .. }, AskInfo::Done) if *theirs == set => {
                let groups: BTreeSet<usize> = (0..self.groups.len())
                    .filter(|&g| self.in_peer_set(set, g) && !self.refuses(g))
                    .collect();
                for &g in &groups {
                    self.hb.settled.insert(g, true);
                }
                // The peer's `foreign` is our side, its `local` the other.
                if set.covers(false) {
                    self.hb.claim_empty.local = true;
                }
                if set.covers(true) {
                    self.hb.claim_empty.foreign = true;
                }
                self.hb.phase = Phase::Acquiring { set, groups };
            }
            // Late or crossed messages (the peer's final `done`, a second `me`): Heartbeat
            // ignores them too.
            _ => {}
        }
    }

    /// Bookkeeping after the main rules saw `seen`.
    pub(super) fn hb_after(&mut self, now: Instant, seen: Seen) {
        match seen {
            Seen::Other => {}
            Seen::PeerReset => {
                // Groups we were releasing keep stopping; the dead-peer rules take them back.
                self.hb = HbState::default();
            }
            Seen::Takeover(scope) => {
                if self.peer_is_heartbeat() && matches!(self.peer, PeerState::Alive { .. }) {
                    let set = match scope {
                        super::Scope::All => HoldSet::All,
                        super::Scope::Local => HoldSet::Local,
                        super::Scope::Foreign => HoldSet::Foreign,
                    };
                    self.actions.push_back(Action::Send(takeover_message(set)));
                    // A Heartbeat peer never acknowledges through `had_want`: its standby
                    // exchange is the acknowledgement.
                    let scoped: Vec<usize> = self.in_scope(scope).collect();
                    for g in scoped {
                        self.groups[g].want = false;
                    }
                    self.note_all(now, "takeover", "hb_takeover sent to the Heartbeat peer");
                }
            }
        }
    }

    /// Moves an exchange on: offers groups the peer should hold, finishes a release or an
    /// acquisition, gives up on a silent peer.
    pub(super) fn hb_step(&mut self, now: Instant) {
        if self.exited || !matches!(self.peer, PeerState::Alive { .. }) {
            return;
        }
        match self.hb.phase.clone() {
            Phase::Idle => {
                if self.hb.quiet_until.is_some_and(|t| now < t) {
                    return;
                }
                self.hb.quiet_until = None;
                self.hb_offer(now);
                if matches!(self.hb.phase, Phase::Idle) {
                    self.hb_reclaim(now);
                }
            }
            Phase::Asking { until, .. } | Phase::Granting { until, .. } if now >= until => {
                self.hb.phase = Phase::Idle;
                self.hb.quiet_until = Some(now + RETRY_AFTER);
            }
            Phase::Releasing { set, groups } => {
                if groups.iter().all(|&g| !self.groups[g].state.is_held()) {
                    let given: Vec<usize> = (0..self.groups.len())
                        .filter(|&g| self.in_set(set, g))
                        .collect();
                    for g in given {
                        self.hb.settled.insert(g, false);
                    }
                    if set.covers(true) {
                        self.hb.claim_empty.local = false;
                    }
                    if set.covers(false) {
                        self.hb.claim_empty.foreign = false;
                    }
                    self.actions
                        .push_back(Action::Send(ask_message(set, AskInfo::Done)));
                    self.hb.phase = Phase::Idle;
                    self.queue_report(false);
                }
            }
            Phase::Acquiring { set, groups } => {
                let settled = groups.iter().all(|&g| {
                    matches!(
                        self.groups[g].state,
                        GroupState::Running | GroupState::Failed
                    )
                });
                if settled {
                    self.actions
                        .push_back(Action::Send(ask_message(set, AskInfo::Done)));
                    self.hb.phase = Phase::Idle;
                    self.queue_report(true);
                }
            }
            Phase::Asking { .. } | Phase::Granting { .. } => {}
        }
    }

    /// The next instant at which `hb_step` has work of its own.
    pub(super) fn hb_timeout(&self) -> Option<Instant> {
        match &self.hb.phase {
            Phase::Asking { until, .. } | Phase::Granting { until, .. } => Some(*until),
            Phase::Idle => match (self.hb.quiet_until, self.hb.both_since) {
                (Some(q), _) => Some(q),
                (None, b) => b.map(|t| t + BOTH_HELD_GRACE),
            },
            _ => None,
        }
    }

    /// A group runs here, should run here, and the Heartbeat peer's stable report says it
    /// holds it too: we were frozen or cut off while it took the group, and it did not give
    /// it up when it heard us again (it does when it restarts itself, not always). Ask it to
    /// stand by for those groups, as `hactl takeover` does, once the state has lasted
    /// `BOTH_HELD_GRACE` (a report can lag a release by a message or two); again after
    /// `RETRY_AFTER` while it lasts.
    fn hb_reclaim(&mut self, now: Instant) {
        let both: Vec<usize> = match self.peer_report() {
            Some(r) if r.stable && r.hold.is_none() => (0..self.groups.len())
                .filter(|&g| {
                    self.groups[g].state == GroupState::Running
                        && r.holds(&self.cfg.groups[g].key, !self.cfg.groups[g].preferred_local)
                        && self.desired_here(now, g) == Some(true)
                })
                .collect(),
            _ => Vec::new(),
        };
        if both.is_empty() {
            self.hb.both_since = None;
            return;
        }
        let since = *self.hb.both_since.get_or_insert(now);
        if now < since + BOTH_HELD_GRACE {
            return;
        }
        let local = both.iter().any(|&g| self.cfg.groups[g].preferred_local);
        let foreign = both.iter().any(|&g| !self.cfg.groups[g].preferred_local);
        for &g in &both {
            self.note(
                now,
                GroupId(g),
                "takeover",
                &format!(
                    "{} holds it too: asking it to stand by (hb_takeover)",
                    self.cfg.peer
                ),
            );
        }
        self.actions
            .push_back(Action::Send(takeover_message(HoldSet::from_flags(
                local, foreign,
            ))));
        self.hb.both_since = None;
        self.hb.quiet_until = Some(now + RETRY_AFTER);
    }

    /// Starts a standby exchange for the groups we run but the peer should hold.
    fn hb_offer(&mut self, now: Instant) {
        let Some((set, groups)) = self.hb_offer_set(now) else {
            return;
        };
        self.actions
            .push_back(Action::Send(ask_message(set, AskInfo::Me)));
        for &g in &groups {
            self.note(
                now,
                GroupId(g),
                "standby",
                &format!("asking {} to take it (ask_resources me)", self.cfg.peer),
            );
        }
        self.hb.asked.clear();
        self.hb.phase = Phase::Asking {
            set,
            groups,
            until: now + ASK_TIMEOUT,
        };
    }

    /// What to offer now: the coarse set covering every group to hand over, and every group
    /// we hold in that set (Heartbeat's peer takes the whole set, so we must release it all).
    fn hb_offer_set(&self, now: Instant) -> Option<(HoldSet, BTreeSet<usize>)> {
        if !self.peer_is_heartbeat() || self.shutting_down || !self.locally_stable() {
            return None;
        }
        // Heartbeat ignores a standby request while it is itself in transition.
        if !self.peer_report().is_some_and(|r| r.stable) {
            return None;
        }
        let give: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.groups[g].state == GroupState::Running)
            .filter(|&g| self.hb.asked.contains(&g) || self.desired_here(now, g) == Some(false))
            .collect();
        if give.is_empty() {
            return None;
        }
        let set = HoldSet::from_flags(
            give.iter().any(|&g| self.cfg.groups[g].preferred_local),
            give.iter().any(|&g| !self.cfg.groups[g].preferred_local),
        );
        let groups = (0..self.groups.len())
            .filter(|&g| self.groups[g].state.is_held() && self.in_set(set, g))
            .collect();
        Some((set, groups))
    }

    /// No group of ours is starting or stopping.
    fn locally_stable(&self) -> bool {
        !self
            .groups
            .iter()
            .any(|s| matches!(s.state, GroupState::Starting | GroupState::Stopping))
    }

    /// Is group `g` in `set`, named from our point of view?
    fn in_set(&self, set: HoldSet, g: usize) -> bool {
        set.covers(self.cfg.groups[g].preferred_local)
    }

    /// Is group `g` in `set`, named from the peer's point of view?
    fn in_peer_set(&self, set: HoldSet, g: usize) -> bool {
        set.covers(!self.cfg.groups[g].preferred_local)
    }

    fn note_all(&mut self, now: Instant, what: &str, why: &str) {
        for g in 0..self.groups.len() {
            self.note(now, GroupId(g), what, why);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
