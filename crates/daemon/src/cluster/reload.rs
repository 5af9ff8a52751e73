//! Reload: a new haresources applied to a running cluster without touching groups that did
//! not change. Groups are matched by key (their first resource); a group keeps its slot
//! (`GroupId`) for as long as the daemon runs, so every per-group state (monitors, restart
//! history, standby) stays attached to it. New groups get new slots at the end; a removed
//! group's slot is retired: stopped if it runs here, never started again, and revived if a
//! later reload brings its key back. A retired key is not advertised as refused: the peer
//! must not take over a group the admin is removing, and when both nodes revive a key at
//! the same time neither may read the other's stale refusal as "take it".

use std::time::Instant;

use ha_config::AutoFailback;

use super::{Cluster, GroupId, GroupInfo, GroupState};

/// How a reload mapped the new haresources onto the cluster's group slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remap {
    /// For each group of the new haresources, in file order: its slot.
    pub slots: Vec<GroupId>,
    /// Slots created for new keys (the daemon builds their resources).
    pub added: Vec<GroupId>,
    /// Slots whose key left haresources.
    pub retired: Vec<GroupId>,
}

impl Cluster {
    /// Apply a reloaded group list and failback mode. The daemon refuses a reload while a
    /// group starts or stops (see `reload_blocker`), so no outcome is in flight here.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        new: &[GroupInfo],
        auto_failback: AutoFailback,
    ) -> Remap {
        let mut remap = Remap::default();
        let mut used = vec![false; self.cfg.groups.len()];
        for info in new {
            let slot = match self.cfg.groups.iter().position(|g| g.key == info.key) {
                Some(i) => {
                    if self.retired.remove(&i) {
                        self.note(now, GroupId(i), "configured", "back in haresources");
                    }
                    self.cfg.groups[i].preferred_local = info.preferred_local;
                    i
                }
                None => {
                    self.cfg.groups.push(info.clone());
                    self.groups.push(GroupState::Stopped);
                    used.push(false);
                    let i = self.cfg.groups.len() - 1;
                    remap.added.push(GroupId(i));
                    self.note(now, GroupId(i), "configured", "new in haresources");
                    i
                }
            };
            used[slot] = true;
            remap.slots.push(GroupId(slot));
        }
        for (i, u) in used.iter().enumerate() {
            if !u && self.retired.insert(i) {
                remap.retired.push(GroupId(i));
                self.note(now, GroupId(i), "retired", "removed from haresources");
            }
        }
        self.cfg.auto_failback = auto_failback;
        self.queue_report(true);
        self.reconcile(now);
        remap
    }

    /// Why a reload must wait (`None`: it may run now): a group in the middle of a start or
    /// stop would have its outcome applied to a changed group.
    pub fn reload_blocker(&self) -> Option<String> {
        self.groups
            .iter()
            .enumerate()
            .find(|(_, s)| matches!(s, GroupState::Starting | GroupState::Stopping))
            .map(|(i, s)| {
                format!(
                    "{} is {} here; retry when it settled",
                    self.cfg.groups[i].key,
                    s.as_str()
                )
            })
    }

    /// Whether slot `g` was removed from haresources by a reload.
    pub fn is_retired(&self, g: GroupId) -> bool {
        self.retired.contains(&g.0)
    }

    /// The group keys by slot (retired ones included).
    pub fn group_keys(&self) -> impl Iterator<Item = &str> {
        self.cfg.groups.iter().map(|g| g.key.as_str())
    }
}
