//! Reload (SIGHUP, `hactl reload`): re-read the configuration directory and apply what can
//! change while running, or refuse the whole new configuration with the reason and keep the
//! running one.
//!
//! Applied: authkeys at once; haresources by group key (new groups added, removed groups
//! stopped and retired, a changed group running here gets just its removed resources
//! stopped and its added ones started, through the cluster's actions and outcomes like any
//! other operation; unchanged groups untouched);
//! `auto_failback`; had.toml's `[arp]`. Reported as needing a restart: media, `udpport`,
//! timers, node list, logging, and had.toml monitors.
//!
//! Invariant kept with `daemon.rs`: `config.haresources.groups` is in cluster slot order
//! (see `cluster/reload.rs`), retired groups included, so index `i` there is `GroupId(i)`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ha_agents::Resource;
use ha_config::{AutoFailback, Config, Diagnostics, GroupSpec, NodeName, Target};
use ha_transport::auth::Auth;

use crate::cluster::{Busy, Cluster, GroupDelta, GroupId, GroupInfo};
use crate::groups::{Groups, ResourceView};
use crate::node::{Node, Reconfig};
use crate::record::Recorder;

/// Everything a reload may change, borrowed from the daemon loop.
pub struct Running<'a> {
    pub node: &'a mut Node,
    /// `had --record`: the reload is one of the node's inputs.
    pub record: Option<&'a mut Recorder>,
    pub groups: &'a mut Groups,
    pub config: &'a mut Config,
    pub local: &'a NodeName,
    pub peer: &'a NodeName,
}

/// What a reload did: applied (with what changed), or refused (nothing changed).
#[derive(Debug)]
pub enum ReloadResult {
    Applied(Applied),
    Refused(Refused),
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug)]
pub enum Refused {
    /// A group starts, stops or restarts here: its outcome would meet a changed group.
    Busy(Busy),
    /// The new files fail the checks `had` makes at start.
    Invalid {
        dir: PathBuf,
        diagnostics: Diagnostics,
    },
    /// ha.cf names another peer: changing nodes needs a restart.
    PeerChanged { peer: NodeName, nodes: Vec<String> },
}

/// What a valid reload changed, in the order it is reported.
#[derive(Debug, Default)]
pub struct Applied {
    /// The new authkeys sign and verify from now on.
    pub authkeys: bool,
    /// Groups added, changed, moved or removed, in haresources order (removed ones last).
    pub groups: Vec<GroupChange>,
    /// The new `auto_failback`, when it changed.
    pub auto_failback: Option<AutoFailback>,
    /// had.toml sections applied at once (`[arp]`, `[agent]`, `[group]`, `[priority]`,
    /// `[fence]`, `[notify]`).
    pub sections: Vec<&'static str>,
    /// had.toml monitors changed: kept as they run until a restart.
    pub monitors_need_restart: bool,
    /// ha.cf changes kept as they run until a restart.
    pub needs_restart: Vec<&'static str>,
}

/// One group's change.
#[derive(Debug, PartialEq, Eq)]
pub enum GroupChange {
    /// A new key: started where the rules say.
    Added { key: String },
    /// A removed key: stopped if it runs here, then forgotten.
    Removed { key: String, stopping_here: bool },
    /// Resources added, removed or replaced; carried out now where the group runs.
    Changed {
        key: String,
        added: Vec<String>,
        removed: Vec<String>,
        /// (before, after) at the same position with the same agent.
        replaced: Vec<(String, String)>,
        applying_here: bool,
    },
    /// Only the order of the resources changed: used from the next start or stop.
    Reordered { key: String },
    /// The preferred node changed: the group moves as the rules say.
    Moved { key: String, node: NodeName },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy(b) => write!(f, "reload refused: {b}"),
            Self::Invalid { dir, diagnostics } => write!(
                f,
                "reload refused, the running configuration stays: {} is invalid:\n{diagnostics}",
                dir.display()
            ),
            Self::PeerChanged { peer, nodes } => write!(
                f,
                "reload refused: the peer must stay {peer} (ha.cf now names {}); changing nodes needs a restart",
                nodes.join(", ")
            ),
        }
    }
}

impl fmt::Display for GroupChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Added { key } => write!(f, "group {key} added"),
            Self::Removed { key, stopping_here } => write!(
                f,
                "group {key} removed{}",
                if *stopping_here {
                    " (stopping here)"
                } else {
                    ""
                }
            ),
            Self::Changed {
                key,
                added,
                removed,
                replaced,
                applying_here,
            } => {
                let mut parts = Vec::new();
                if !added.is_empty() {
                    parts.push(format!("added {}", added.join(" ")));
                }
                if !removed.is_empty() {
                    parts.push(format!("removed {}", removed.join(" ")));
                }
                for (a, b) in replaced {
                    parts.push(format!("replaced {a} by {b}"));
                }
                write!(
                    f,
                    "group {key}: {}{}",
                    parts.join(", "),
                    if *applying_here {
                        " (applying here)"
                    } else {
                        ""
                    }
                )
            }
            Self::Reordered { key } => write!(f, "group {key}: resources reordered"),
            Self::Moved { key, node } => write!(f, "group {key}: preferred node now {node}"),
        }
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut notes: Vec<String> = Vec::new();
        if self.authkeys {
            notes.push("authkeys applied".into());
        }
        notes.extend(self.groups.iter().map(ToString::to_string));
        if let Some(af) = self.auto_failback {
            notes.push(format!("auto_failback now {af:?}"));
        }
        for s in &self.sections {
            notes.push(if *s == "[arp]" {
                "[arp] applied to new resources".into()
            } else if *s == "[agent]" {
                // Running resources and the guard keep the limits they were built with.
                "[agent]/[[resource]] timeouts applied to new resources (a restart applies \
                 them to all)"
                    .into()
            } else {
                format!("{s} applied")
            });
        }
        if self.monitors_need_restart {
            notes.push("had.toml monitors changed: restart had to apply them".into());
        }
        if !self.needs_restart.is_empty() {
            notes.push(format!(
                "not applied until a restart: {}",
                self.needs_restart.join(", ")
            ));
        }
        if notes.is_empty() {
            notes.push("no change".into());
        }
        write!(f, "reload: {}", notes.join("; "))
    }
}

/// Re-read `config.dir` and apply it, or refuse it whole (then nothing changed). Resource
/// starts and stops are not made here: the cluster emits them as actions, and the daemon
/// loop runs them as it runs every other.
pub fn reload(now: std::time::Instant, r: Running<'_>) -> ReloadResult {
    match apply(now, r) {
        Ok(a) => ReloadResult::Applied(a),
        Err(e) => ReloadResult::Refused(e),
    }
}

fn apply(now: std::time::Instant, r: Running<'_>) -> Result<Applied, Refused> {
    if let Some(b) = r.node.cluster().reload_busy() {
        return Err(Refused::Busy(b));
    }
    let dir = r.config.dir.clone();
    // The checks `had` makes at start: a reload must not take what a start would refuse.
    let dirs = crate::validate::Dirs::default();
    let checked = crate::validate::validate(&dir, &Target::here(r.local.clone()), &dirs).map_err(
        |diagnostics| Refused::Invalid {
            dir: dir.clone(),
            diagnostics,
        },
    )?;
    if checked.peer.as_ref() != Some(r.peer) {
        return Err(Refused::PeerChanged {
            peer: r.peer.clone(),
            nodes: checked
                .config
                .ha_cf
                .nodes
                .iter()
                .map(|p| p.to_string())
                .collect(),
        });
    }
    let new = checked.config;
    let infos: Vec<GroupInfo> = new
        .haresources
        .groups
        .iter()
        .map(|g| GroupInfo {
            key: g.key().to_string(),
            preferred_local: g.node == *r.local,
            resources: std::sync::Arc::clone(&g.resources),
        })
        .collect();
    let old_specs = r.config.haresources.groups.clone();
    let (was, now_had) = (&r.config.had, &new.had);
    let reconfig = Reconfig {
        groups: infos,
        auto_failback: new.ha_cf.auto_failback,
        auth: (r.config.authkeys != new.authkeys).then(|| Auth::new(&new.authkeys)),
        failback_delay: (was.group != now_had.group).then_some(now_had.group.failback_delay),
        priority: (was.priority != now_had.priority)
            .then(|| now_had.priority_of(r.node.cluster().local_name())),
        fencing: (was.fence != now_had.fence).then(|| now_had.fence.as_ref().map(|f| f.retry)),
    };
    if let Some(rec) = r.record {
        rec.reconfig(now, &reconfig);
    }
    let mut out = Applied {
        authkeys: reconfig.auth.is_some(),
        ..Applied::default()
    };
    // The node decides what starts and stops; from here on the reload is applied.
    let remap = r.node.reconfigure(now, reconfig).map_err(Refused::Busy)?;

    let restart = needs_restart(r.config, &new);
    // Slot-ordered specs: the old ones stay for retired slots (status shows nothing of
    // them, the stop of a running one still needs its resources).
    let mut specs: Vec<GroupSpec> = old_specs.clone();
    for (i, (slot, fresh)) in remap.slots.iter().zip(checked.resources).enumerate() {
        let spec = new.haresources.groups[i].clone();
        let key = spec.key().to_string();
        if remap.added.contains(slot) {
            r.groups.keys.push(key.clone());
            push_view(r.groups, fresh.len());
            r.groups.resources.push(crate::groups::shared(fresh));
            specs.push(spec);
            out.groups.push(GroupChange::Added { key });
            continue;
        }
        if let Some(d) = remap.changed.iter().find(|d| d.group == *slot) {
            // A kept resource goes over as a clone, which is the same running resource (an
            // IP keeps its burst place); the new ones are those just built. The old list
            // stays for `StopResources`.
            let old_rs = r.groups.resources[slot.0].clone();
            let rs: Arc<[Resource]> = fresh
                .into_iter()
                .enumerate()
                .map(|(j, res)| {
                    d.kept
                        .get(j)
                        .copied()
                        .flatten()
                        .and_then(|k| old_rs.get(k).cloned())
                        .unwrap_or(res)
                })
                .collect();
            rebuild_view(r.groups, slot.0, &d.kept, rs.len());
            r.groups.before_reload.insert(slot.0, old_rs);
            r.groups.resources[slot.0] = rs;
            out.groups.push(change_of(&key, d));
        }
        if old_specs[slot.0].node != spec.node {
            out.groups.push(GroupChange::Moved {
                key,
                node: spec.node.clone(),
            });
        }
        specs[slot.0] = spec;
    }
    for g in &remap.retired {
        out.groups.push(GroupChange::Removed {
            key: specs[g.0].key().to_string(),
            stopping_here: r.node.cluster().group_states()[g.0].is_held(),
        });
    }
    if r.config.ha_cf.auto_failback != new.ha_cf.auto_failback {
        out.auto_failback = Some(new.ha_cf.auto_failback);
    }
    if r.config.had.arp != new.had.arp {
        out.sections.push("[arp]");
    }
    if r.config.had.agent != new.had.agent || r.config.had.resources != new.had.resources {
        out.sections.push("[agent]");
    }
    if r.config.had.group != new.had.group {
        r.groups.configure(&new.had.group);
        out.sections.push("[group]");
    }
    if r.config.had.priority != new.had.priority {
        out.sections.push("[priority]");
    }
    for w in &new.warnings {
        crate::logcat::log(&crate::logcat::LogEvent::ConfigWarning {
            text: &w.to_string(),
        });
    }
    let keep_monitors = r.config.had.monitors.clone();
    let mut applied = new;
    applied.haresources.groups = specs;
    applied.haresources.forget_spans();
    if applied.had.monitors != keep_monitors {
        out.monitors_need_restart = true;
        applied.had.monitors = keep_monitors;
    }
    if !restart.is_empty() {
        out.needs_restart = restart;
        // Keep reporting what actually runs.
        let running = r.config.ha_cf.clone();
        let af = applied.ha_cf.auto_failback;
        applied.ha_cf = running;
        applied.ha_cf.auto_failback = af;
    }
    if r.config.had.fence != applied.had.fence {
        out.sections.push("[fence]");
    }
    if r.config.had.notify != applied.had.notify {
        out.sections.push("[notify]");
    }
    *r.config = applied;
    Ok(out)
}

fn change_of(key: &str, d: &GroupDelta) -> GroupChange {
    if d.is_reorder() {
        return GroupChange::Reordered {
            key: key.to_string(),
        };
    }
    let replaced = d.replaced();
    let added = d
        .added()
        .into_iter()
        .filter(|j| !replaced.iter().any(|(_, a)| a == j))
        .map(|j| d.after[j].clone())
        .collect();
    let mut removed: Vec<String> = d
        .removed()
        .into_iter()
        .filter(|i| !replaced.iter().any(|(b, _)| b == i))
        .map(|i| d.before[i].clone())
        .collect();
    removed.reverse();
    GroupChange::Changed {
        key: key.to_string(),
        added,
        removed,
        replaced: replaced
            .into_iter()
            .map(|(b, a)| (d.before[b].clone(), d.after[a].clone()))
            .collect(),
        applying_here: d.applied_here,
    }
}

/// ha.cf changes a running daemon cannot take.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.ha_cf, &new.ha_cf);
    let mut out = Vec::new();
    if a.media != b.media || a.udpport != b.udpport || a.baud != b.baud {
        out.push("heartbeat media");
    }
    if a.keepalive != b.keepalive
        || a.deadtime != b.deadtime
        || a.warntime != b.warntime
        || a.initdead != b.initdead
    {
        out.push("timers");
    }
    if a.nodes != b.nodes {
        out.push("node list");
    }
    if a.ping != b.ping || a.deadping != b.deadping {
        out.push("ping nodes");
    }
    if a.logfile != b.logfile || a.debugfile != b.debugfile || a.logfacility != b.logfacility {
        out.push("logging");
    }
    out
}

fn push_view(groups: &Groups, n: usize) {
    if let Ok(mut v) = groups.view.lock() {
        v.push((0..n).map(|_| ResourceView::stopped()).collect());
    }
}

/// The status rows of slot `slot` after a reload: a kept resource keeps its row, a new one
/// shows `stopped` until `StartResources` reports on it.
fn rebuild_view(groups: &Groups, slot: usize, kept: &[Option<usize>], n: usize) {
    if let Ok(mut v) = groups.view.lock()
        && let Some(row) = v.get_mut(slot)
    {
        let fresh = (0..n)
            .map(|j| {
                kept.get(j)
                    .copied()
                    .flatten()
                    .and_then(|k| row.get(k).cloned())
                    .unwrap_or_else(ResourceView::stopped)
            })
            .collect();
        *row = fresh;
    }
}

/// Slot `g` of the status view is a live group (not retired by a reload).
pub fn shown(cluster: &Cluster, g: usize) -> bool {
    !cluster.is_retired(GroupId(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(before: &[&str], after: &[&str], here: bool) -> GroupDelta {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut d = GroupDelta::between(GroupId(0), &s(before), &s(after));
        d.applied_here = here;
        d
    }

    #[test]
    fn a_change_names_what_was_added_removed_and_replaced() {
        let d = delta(
            &["ip1", "IPaddr::198.18.0.5/24", "web", "old"],
            &["ip1", "IPaddr::198.18.0.5/25", "web", "new1", "new2"],
            true,
        );
        let c = change_of("ip1", &d);
        assert_eq!(
            c,
            GroupChange::Changed {
                key: "ip1".into(),
                added: vec!["new1".into(), "new2".into()],
                removed: vec!["old".into()],
                replaced: vec![(
                    "IPaddr::198.18.0.5/24".into(),
                    "IPaddr::198.18.0.5/25".into()
                )],
                applying_here: true,
            }
        );
        assert_eq!(
            c.to_string(),
            "group ip1: added new1 new2, removed old, replaced IPaddr::198.18.0.5/24 by \
             IPaddr::198.18.0.5/25 (applying here)"
        );
        let r = change_of("ip1", &delta(&["ip1", "a", "b"], &["ip1", "b", "a"], false));
        assert_eq!(r, GroupChange::Reordered { key: "ip1".into() });
    }

    #[test]
    fn the_summary_keeps_its_wording() {
        assert_eq!(Applied::default().to_string(), "reload: no change");
        let a = Applied {
            authkeys: true,
            groups: vec![
                GroupChange::Added { key: "g2".into() },
                GroupChange::Removed {
                    key: "g3".into(),
                    stopping_here: true,
                },
            ],
            auto_failback: Some(AutoFailback::Off),
            sections: vec!["[arp]", "[fence]"],
            monitors_need_restart: false,
            needs_restart: vec!["timers"],
        };
        assert_eq!(
            a.to_string(),
            "reload: authkeys applied; group g2 added; group g3 removed (stopping here); \
             auto_failback now Off; [arp] applied to new resources; [fence] applied; \
             not applied until a restart: timers"
        );
        let agent = Applied {
            sections: vec!["[agent]"],
            ..Applied::default()
        };
        assert_eq!(
            agent.to_string(),
            "reload: [agent]/[[resource]] timeouts applied to new resources (a restart applies \
             them to all)"
        );
        let busy = Refused::Busy(Busy {
            group: "g1".into(),
            doing: "starting",
        });
        assert_eq!(
            busy.to_string(),
            "reload refused: g1 is starting here; retry when it settled"
        );
    }
}
