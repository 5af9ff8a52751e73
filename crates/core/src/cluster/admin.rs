//! Operator rules: standby and takeover by scope (`all`, `local`, `foreign`), the refusals
//! an admin gets back, and re-announcing addresses after a split brain heals.
//!
//! Takeover between two had nodes: the requester lifts its own standby for the scope and
//! lists the groups in its report (`had_want`); the peer treats a newly wanted group as its
//! own standby (Heartbeat's `hb_takeover` does the same: the peer runs `hb_standby`), releases
//! it, and acknowledges by refusing it. The requester forgets the wish on that acknowledgement.

use std::collections::BTreeSet;
use std::time::Instant;

use super::group::flip;
use super::{Action, Cluster, GroupId, GroupState, PeerReport, PeerState};

pub use crate::config::Scope;

impl Cluster {
    /// Why an admin command cannot run now (`None`: it may). Pure: the daemon asks before
    /// feeding the command so that hactl gets the reason back.
    pub fn admin_refusal(&self, cmd: super::AdminCommand) -> Option<String> {
        use super::AdminCommand as C;
        if let Some(why) = self.legacy_refusal(cmd) {
            return Some(why);
        }
        let peer = &self.cfg.peer;
        let alive = matches!(self.peer, PeerState::Alive { .. });
        match cmd {
            C::Standby(scope) => {
                if !alive {
                    return Some(format!(
                        "standby refused: peer {peer} is not alive, nobody could take the resources"
                    ));
                }
                let mut gs = self.in_scope(scope).peekable();
                // An empty scope (no foreign groups, say) is a harmless no-op, as in Heartbeat.
                if gs.peek().is_some() && gs.all(|g| self.groups[g].standby) {
                    return Some(format!(
                        "standby refused: already in standby for {} groups",
                        scope.as_str()
                    ));
                }
                self.transition_reason()
                    .map(|r| format!("standby refused: {r}"))
            }
            C::Takeover(scope) => {
                if !alive {
                    // Lifting our own standby is all a takeover can do with the peer gone.
                    if self.in_scope(scope).any(|g| self.groups[g].standby) {
                        return None;
                    }
                    return Some(format!(
                        "takeover refused: peer {peer} is not alive; this node already runs every group it can"
                    ));
                }
                self.transition_reason()
                    .map(|r| format!("takeover refused: {r}"))
            }
            C::Cleanup | C::Shutdown => None,
        }
    }

    /// Something is moving: a group starts or stops here, the peer reports itself unstable,
    /// or an earlier takeover is still waiting for the peer.
    fn transition_reason(&self) -> Option<String> {
        if self.shutting_down {
            return Some("this node is shutting down".into());
        }
        for (i, rec) in self.groups.iter().enumerate() {
            let st = rec.state;
            if matches!(st, GroupState::Starting | GroupState::Stopping) {
                return Some(format!(
                    "cluster in transition: {} is {} here",
                    self.cfg.groups[i].key,
                    st.as_str()
                ));
            }
        }
        if let Some(r) = self.peer_report()
            && !r.stable
        {
            return Some(format!(
                "cluster in transition: {} reports its resources in flux",
                self.cfg.peer
            ));
        }
        if self.groups.iter().any(|r| r.want) {
            return Some(format!(
                "cluster in transition: a takeover is waiting for {}",
                self.cfg.peer
            ));
        }
        None
    }

    pub(super) fn in_scope(&self, scope: Scope) -> impl Iterator<Item = usize> + '_ {
        self.cfg
            .groups
            .iter()
            .enumerate()
            .filter(move |(_, g)| scope.covers(g.preferred_local))
            .map(|(i, _)| i)
    }

    pub(super) fn on_standby(&mut self, now: Instant, scope: Scope) {
        let gs: Vec<usize> = self.in_scope(scope).collect();
        for g in gs {
            let rec = &mut self.groups[g];
            rec.want = false;
            if flip(&mut rec.standby, true) {
                self.note(
                    now,
                    GroupId(g),
                    "standby",
                    &format!("admin standby {}", scope.as_str()),
                );
            }
        }
    }

    pub(super) fn on_takeover(&mut self, now: Instant, scope: Scope) {
        let gs: Vec<usize> = self.in_scope(scope).collect();
        let alive = matches!(self.peer, PeerState::Alive { .. });
        for g in gs {
            let rec = &mut self.groups[g];
            rec.standby = false;
            // Failures are forgotten too: the admin says this node is fit to run it.
            rec.failed = false;
            rec.unhealthy = false;
            if rec.state == GroupState::Failed {
                let _ = self.transition(now, GroupId(g), GroupState::Stopped);
            }
            if alive && !self.groups[g].state.is_held() {
                self.groups[g].want = true;
            }
            self.note(
                now,
                GroupId(g),
                "takeover",
                &format!("admin takeover {}", scope.as_str()),
            );
        }
    }

    /// Rules that look at how the peer's report changed: a newly wanted group becomes our
    /// standby; an acknowledged wish is forgotten; a group the peer stops holding while we
    /// run it (the other side of a healed split brain) is announced again, because the
    /// peer's gratuitous ARPs may have pointed the LAN at it.
    pub(super) fn on_peer_report_ops(
        &mut self,
        now: Instant,
        old: Option<&PeerReport>,
        new: &PeerReport,
    ) {
        let empty = BTreeSet::new();
        let old_want = old.map(|o| &o.want).unwrap_or(&empty);
        let old_standby = old.map(|o| &o.standby).unwrap_or(&empty);
        for g in 0..self.cfg.groups.len() {
            let key = self.cfg.groups[g].key.clone();
            let peers_local = !self.cfg.groups[g].preferred_local;
            if new.want.contains(&key)
                && !old_want.contains(&key)
                && flip(&mut self.groups[g].standby, true)
            {
                self.groups[g].want = false;
                self.note(
                    now,
                    GroupId(g),
                    "standby",
                    &format!("{} took it over", self.cfg.peer),
                );
            }
            // The latest command wins, as with Heartbeat's hb_standby: when the peer stands
            // by for a group we stood by for (say, after its own takeover), ours is lifted,
            // or nobody would run it.
            if new.standby.contains(&key)
                && !old_standby.contains(&key)
                && flip(&mut self.groups[g].standby, false)
            {
                self.note(
                    now,
                    GroupId(g),
                    "standby lifted",
                    &format!("{} stands by for it", self.cfg.peer),
                );
            }
            if self.groups[g].want && new.refuses(&key, peers_local) {
                self.groups[g].want = false;
            }
            let peer_held =
                old.is_some_and(|o| o.holds(&key, peers_local)) || self.groups[g].reannounce;
            if self.groups[g].state == GroupState::Running
                && peer_held
                && !new.holds(&key, peers_local)
            {
                self.groups[g].reannounce = false;
                self.note(
                    now,
                    GroupId(g),
                    "announced",
                    &format!("{} released it after a split brain", self.cfg.peer),
                );
                self.actions.push_back(Action::Announce(GroupId(g)));
            }
        }
        // The first report after the heal settles what the peer holds.
        for rec in &mut self.groups {
            rec.reannounce = false;
        }
    }

    /// After a partition, each group we run may have been taken by the peer too.
    pub(super) fn on_partition_healed(&mut self) {
        for rec in &mut self.groups {
            rec.reannounce = rec.state == GroupState::Running;
        }
    }

    /// Forget wishes the dead peer can no longer answer.
    pub(super) fn on_peer_lost(&mut self) {
        for rec in &mut self.groups {
            rec.want = false;
            rec.reannounce = false;
        }
    }
}
