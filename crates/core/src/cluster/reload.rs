//! Reload: a new haresources applied to a running cluster without touching what did not
//! change. Groups are matched by key (their first resource); a group keeps its slot
//! (`GroupId`) for as long as the daemon runs, so every per-group state (monitors, restart
//! history, standby) stays attached to it. New groups get new slots at the end; a removed
//! group's slot is retired: stopped if it runs here, never started again, and revived if a
//! later reload brings its key back. A retired key is not advertised as refused: the peer
//! must not take over a group the admin is removing, and when both nodes revive a key at
//! the same time neither may read the other's stale refusal as "take it".
//!
//! A group whose resource list changed while it runs here is brought to the new list through
//! the same path as every start and stop: `Action::StopResources` (what left, right to left)
//! then `Action::StartResources` (what is new, left to right), each answered by an ordinary
//! `Outcome`. A failed start is a failed start: the group was rolled back, it is `Failed`
//! here and refused, and the peer takes it over as the rules say.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use crate::config::{AutoFailback, ResourceSpec};
use serde::Serialize;

use super::group::flip;
use super::{Action, Cluster, GroupId, GroupInfo, GroupRecord, GroupState};

/// How a reload mapped the new haresources onto the cluster's group slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remap {
    /// For each group of the new haresources, in file order: its slot.
    pub slots: Vec<GroupId>,
    /// Slots created for new keys (the daemon builds their resources).
    pub added: Vec<GroupId>,
    /// Slots whose key left haresources.
    pub retired: Vec<GroupId>,
    /// Kept groups whose resource list changed, in file order.
    pub changed: Vec<GroupDelta>,
}

/// How a reload changed the resource list of one kept group (resources as written).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupDelta {
    /// The group's slot.
    pub group: GroupId,
    /// The resource list before the reload.
    pub before: Vec<String>,
    /// The resource list after the reload (the order every later start and stop uses).
    pub after: Vec<String>,
    /// For each position of `after`: the position in `before` of the same resource, if kept.
    pub kept: Vec<Option<usize>>,
    /// Whether the group runs here, so the change is carried out here now.
    pub applied_here: bool,
}

impl GroupDelta {
    /// Compare two resource lists; a resource is kept when the same text is in both (each
    /// old entry matches at most one new one, so a repeated resource counts twice).
    pub fn between<S: AsRef<str>>(group: GroupId, before: &[S], after: &[S]) -> Self {
        let mut used = vec![false; before.len()];
        let kept = after
            .iter()
            .map(|r| {
                let i =
                    (0..before.len()).find(|&i| !used[i] && before[i].as_ref() == r.as_ref())?;
                used[i] = true;
                Some(i)
            })
            .collect();
        Self {
            group,
            before: before.iter().map(|r| r.as_ref().to_owned()).collect(),
            after: after.iter().map(|r| r.as_ref().to_owned()).collect(),
            kept,
            applied_here: false,
        }
    }

    /// Positions in `before` of the resources no longer in the group, right to left (the
    /// order to stop them in).
    pub fn removed(&self) -> Vec<usize> {
        (0..self.before.len())
            .rev()
            .filter(|i| !self.kept.contains(&Some(*i)))
            .collect()
    }

    /// Positions in `after` of the resources new to the group, left to right (the order to
    /// start them in).
    pub fn added(&self) -> Vec<usize> {
        (0..self.after.len())
            .filter(|&j| self.kept[j].is_none())
            .collect()
    }

    /// Resources replaced in place: a removed and an added one at the same position with the
    /// same agent (`IPaddr::10.0.0.1/24` → `IPaddr::10.0.0.1/25`), as (before, after).
    pub fn replaced(&self) -> Vec<(usize, usize)> {
        let removed = self.removed();
        self.added()
            .into_iter()
            .filter(|j| removed.contains(j) && agent(&self.before[*j]) == agent(&self.after[*j]))
            .map(|j| (j, j))
            .collect()
    }

    /// Nothing added or removed: only the order changed (or nothing at all).
    pub fn is_reorder(&self) -> bool {
        self.kept.iter().all(Option::is_some) && self.before.len() == self.after.len()
    }
}

fn agent(raw: &str) -> String {
    crate::config::ResourceSpec::parse(raw)
        .map_or_else(|| raw.to_string(), |s| s.agent().to_string())
}

/// Why a reload must wait: a group of this node is in the middle of an operation whose
/// outcome would be applied to a changed group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Busy {
    /// The group's key.
    pub group: String,
    /// What it is doing: `starting`, `stopping`, `restarting in place`.
    pub doing: &'static str,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} here; retry when it settled",
            self.group, self.doing
        )
    }
}

/// The second half of a reload's change to a running group, waiting for the first.
#[derive(Debug, Default)]
pub(super) struct Pending(BTreeMap<usize, Vec<usize>>);

impl Cluster {
    /// Apply a reloaded group list (each with its resources) and failback mode. Refused,
    /// changing nothing, while a group starts, stops or restarts here (`reload_busy`).
    /// Groups added, retired or moved are then started and stopped by the ordinary rules;
    /// a group running here whose resources changed gets `StopResources` for what left and
    /// then `StartResources` for what is new.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        new: &[GroupInfo],
        auto_failback: AutoFailback,
    ) -> Result<Remap, Busy> {
        if let Some(b) = self.reload_busy() {
            return Err(b);
        }
        let mut remap = Remap::default();
        let mut used = vec![false; self.cfg.groups.len()];
        for info in new {
            let slot = match self.cfg.groups.iter().position(|g| g.key == info.key) {
                Some(i) => {
                    if flip(&mut self.groups[i].retired, false) {
                        self.note(now, GroupId(i), "configured", "back in haresources");
                    }
                    if self.cfg.groups[i].resources != info.resources {
                        let mut d = GroupDelta::between(
                            GroupId(i),
                            &self.cfg.groups[i].resources,
                            &info.resources,
                        );
                        d.applied_here = self.groups[i].state == GroupState::Running;
                        if d.applied_here {
                            self.apply_delta(now, &d);
                        }
                        remap.changed.push(d);
                    }
                    self.cfg.groups[i] = info.clone();
                    i
                }
                None => {
                    self.cfg.groups.push(info.clone());
                    self.groups.push(GroupRecord::default());
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
            if !u && flip(&mut self.groups[i].retired, true) {
                remap.retired.push(GroupId(i));
                self.note(now, GroupId(i), "retired", "removed from haresources");
            }
        }
        self.cfg.auto_failback = auto_failback;
        self.queue_report(true);
        self.reconcile(now);
        Ok(remap)
    }

    /// Start carrying out `d` on the group running here: stop what left first (a new
    /// resource may take an address or port an old one held), then start what is new.
    fn apply_delta(&mut self, now: Instant, d: &GroupDelta) {
        let (removed, added) = (d.removed(), d.added());
        let g = d.group;
        if !removed.is_empty() {
            if !self.transition(now, g, GroupState::Stopping) {
                return;
            }
            let names: Vec<&str> = removed.iter().map(|&i| d.before[i].as_str()).collect();
            self.note(
                now,
                g,
                "reloading",
                &format!("reload: stopping {}", names.join(" ")),
            );
            self.reload.0.insert(g.0, added);
            self.actions.push_back(Action::StopResources {
                group: g,
                resources: removed,
            });
        } else if !added.is_empty() {
            self.start_added(now, g, added, &d.after);
        }
    }

    fn start_added<S: AsRef<str>>(
        &mut self,
        now: Instant,
        g: GroupId,
        added: Vec<usize>,
        list: &[S],
    ) {
        if !self.transition(now, g, GroupState::Starting) {
            return;
        }
        let names: Vec<&str> = added
            .iter()
            .filter_map(|&j| list.get(j).map(AsRef::as_ref))
            .collect();
        self.note(
            now,
            g,
            "reloading",
            &format!("reload: starting {}", names.join(" ")),
        );
        self.actions.push_back(Action::StartResources {
            group: g,
            resources: added,
        });
    }

    /// The outcome of `StopResources`: go on with the starts, or hold the group as a failed
    /// stop (a removed resource may still be up: the peer must not start the group on top).
    pub(super) fn on_reload_stopped(&mut self, now: Instant, g: GroupId, ok: bool, detail: &str) {
        let added = self.reload.0.remove(&g.0).unwrap_or_default();
        if !ok {
            if self.transition(now, g, GroupState::StopFailed) {
                self.note(now, g, "stop failed", detail);
            }
            return;
        }
        // Leaving anyway (shutdown, refused here): the ordinary stop follows from Running.
        if added.is_empty() || self.refuses(g.0) {
            if self.transition(now, g, GroupState::Running) {
                self.note(now, g, "reloaded", "reload: removed resources stopped");
            }
            return;
        }
        let list = self.cfg.groups[g.0].resources.clone();
        self.start_added(now, g, added, &list);
    }

    /// The outcome of `StartResources`: as any start, a failure (the group was rolled back)
    /// makes the group failed and refused here.
    pub(super) fn on_reload_started(&mut self, now: Instant, g: GroupId, ok: bool, detail: &str) {
        let (to, what, why) = if ok {
            (
                GroupState::Running,
                "reloaded",
                "reload: new resources started",
            )
        } else {
            (GroupState::Failed, "failed", detail)
        };
        if self.transition(now, g, to) {
            self.note(now, g, what, why);
        }
    }

    /// Why a reload must wait (`None`: it may run now): a group in the middle of a start,
    /// stop or restart in place would have its outcome applied to a changed group.
    pub fn reload_busy(&self) -> Option<Busy> {
        self.groups.iter().enumerate().find_map(|(i, r)| {
            let s = r.state;
            let doing = match s {
                GroupState::Starting | GroupState::Stopping => s.as_str(),
                _ if self.health.is_restarting(i) => "restarting in place",
                _ => return None,
            };
            Some(Busy {
                group: self.cfg.groups[i].key.clone(),
                doing,
            })
        })
    }

    /// `reload_busy` as the sentence hactl shows.
    pub fn reload_blocker(&self) -> Option<String> {
        self.reload_busy().map(|b| b.to_string())
    }

    /// Whether slot `g` was removed from haresources by a reload.
    pub fn is_retired(&self, g: GroupId) -> bool {
        self.groups.get(g.0).is_some_and(|r| r.retired)
    }

    /// The group keys by slot (retired ones included).
    pub fn group_keys(&self) -> impl Iterator<Item = &str> {
        self.cfg.groups.iter().map(|g| g.key.as_str())
    }

    /// The resources of slot `g` as the cluster runs them (as written, in start order).
    pub fn group_resources(&self, g: GroupId) -> &[ResourceSpec] {
        self.cfg.groups.get(g.0).map_or(&[], |g| &g.resources[..])
    }
}
