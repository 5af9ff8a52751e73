//! Resources a previous `had` left up: what a starting daemon releases before it joins the
//! cluster, in which order, and what a failure to release one means; and the order in which
//! the guard releases what a dead daemon held. Pure: `ha_daemon::leftovers` probes and stops,
//! `ha_daemon::guard` runs the guard.
//!
//! The rule (docs/operations.md): every resource found running, or whose status cannot be
//! read, is stopped with its agent's normal stop (and the usual retries), last group first,
//! each group right to left as a shutdown stops it. A group with a resource that could not be
//! stopped becomes `stop_failed` here: it counts as held, so the peer never starts it on top
//! of the unknown copy while the two nodes talk, and this node refuses it until an admin has
//! looked and run `hactl cleanup`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Cluster, GroupId, GroupState};

/// What the start-up probe found of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Its agent says it is not running.
    Stopped,
    /// Its agent says it runs: nobody but a previous `had` of this node started it.
    Running,
    /// Its status could not be read (the error): it may run, so it is stopped too.
    Unknown(String),
}

/// One resource to stop at start, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub group: GroupId,
    /// Index of the resource in its group (haresources order).
    pub resource: usize,
    /// Why it is stopped, for the log line.
    pub why: String,
}

/// The resources to stop, in order, given what the probe found in each group.
pub fn plan(found: &[Vec<Found>]) -> Vec<Step> {
    let mut steps = Vec::new();
    for (g, group) in found.iter().enumerate().rev() {
        for (i, f) in group.iter().enumerate().rev() {
            let why = match f {
                Found::Stopped => continue,
                Found::Running => "left running by a previous had that did not stop it".to_string(),
                Found::Unknown(e) => format!(
                    "its status could not be read ({e}) and a previous had may have left it running"
                ),
            };
            steps.push(Step {
                group: GroupId(g),
                resource: i,
                why,
            });
        }
    }
    steps
}

/// The groups that must stay `stop_failed` here after the steps ran: every group with a
/// resource whose stop failed, with the first failure's reason.
pub fn failed_groups<'a>(
    results: impl IntoIterator<Item = (&'a Step, Result<(), String>)>,
) -> BTreeMap<GroupId, String> {
    let mut out = BTreeMap::new();
    for (step, r) in results {
        if let Err(e) = r {
            out.entry(step.group).or_insert(e);
        }
    }
    out
}

/// The order in which the guard releases what a dead daemon held: addresses first (they are
/// what makes two nodes answer at once, and they go in milliseconds), last group first; then
/// every other resource, last group first and each group right to left. `held[g]` is `None`
/// for a group not held, else whether each of its resources is an address.
pub fn guard_order(held: &[Option<Vec<bool>>]) -> Vec<(usize, usize)> {
    let mut addrs = Vec::new();
    let mut rest = Vec::new();
    for (g, group) in held.iter().enumerate().rev() {
        let Some(group) = group else { continue };
        for (i, &is_addr) in group.iter().enumerate().rev() {
            if is_addr {
                addrs.push((g, i));
            } else {
                rest.push((g, i));
            }
        }
    }
    addrs.extend(rest);
    addrs
}

impl Cluster {
    /// A resource of group `g` that a previous run left up could not be stopped at start:
    /// the group is `stop_failed` here (held, refused) until `hactl cleanup`. Called before
    /// the cluster's first input; the peer learns it from our first report.
    pub fn leftover_not_released(&mut self, now: Instant, g: GroupId, detail: &str) {
        if !self.transition(now, g, GroupState::StopFailed) {
            return;
        }
        let why = format!("left up by a previous had and could not be stopped: {detail}");
        self.note(now, g, "stop failed", &why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Action, ClusterConfig, ClusterInput, GroupInfo, PeerReport};
    use std::time::Duration;

    #[test]
    fn plan_stops_what_runs_or_is_unknown_last_group_first_right_to_left() {
        let found = vec![
            vec![Found::Running, Found::Stopped, Found::Running],
            vec![Found::Stopped, Found::Stopped],
            vec![Found::Running, Found::Unknown("timed out".into())],
        ];
        let p = plan(&found);
        let order: Vec<(usize, usize)> = p.iter().map(|s| (s.group.0, s.resource)).collect();
        assert_eq!(order, vec![(2, 1), (2, 0), (0, 2), (0, 0)]);
        assert!(p[0].why.contains("timed out"), "{}", p[0].why);
        assert!(p[1].why.contains("previous had"), "{}", p[1].why);
    }

    #[test]
    fn nothing_found_nothing_to_do() {
        assert!(plan(&[vec![Found::Stopped], vec![]]).is_empty());
        assert!(plan(&[]).is_empty());
    }

    #[test]
    fn a_failed_stop_fails_its_group_only_with_the_first_reason() {
        let found = vec![vec![Found::Running, Found::Running], vec![Found::Running]];
        let p = plan(&found);
        let results = vec![
            (&p[0], Ok(())),
            (&p[1], Err("b failed to stop".to_string())),
            (&p[2], Err("a failed to stop".to_string())),
        ];
        let f = failed_groups(results);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f.get(&GroupId(0)).map(String::as_str),
            Some("b failed to stop")
        );
        assert!(failed_groups(p.iter().map(|s| (s, Ok(())))).is_empty());
    }

    #[test]
    fn guard_releases_addresses_first_then_the_rest_in_reverse() {
        let held = vec![
            Some(vec![true, false, true, false]),
            None,
            Some(vec![true, false]),
        ];
        assert_eq!(
            guard_order(&held),
            vec![(2, 0), (0, 2), (0, 0), (2, 1), (0, 3), (0, 1)]
        );
        assert!(guard_order(&[None, Some(vec![])]).is_empty());
    }

    fn cluster(now: Instant) -> Cluster {
        Cluster::new(
            ClusterConfig {
                local: "a".into(),
                peer: "b".into(),
                groups: vec![
                    GroupInfo {
                        key: "ip1".into(),
                        preferred_local: true,
                        resources: vec!["ip1".into()].into(),
                    },
                    GroupInfo {
                        key: "ip2".into(),
                        preferred_local: true,
                        resources: vec!["ip2".into()].into(),
                    },
                ],
                auto_failback: crate::config::AutoFailback::On,
                report_timeout: Duration::from_secs(2),
            },
            now,
        )
    }

    #[test]
    fn a_leftover_not_released_is_held_refused_and_never_started_here() {
        let t0 = Instant::now();
        let mut c = cluster(t0);
        c.leftover_not_released(t0, GroupId(0), "ip1 failed to stop: EPERM");
        assert_eq!(c.group_states()[0], GroupState::StopFailed);
        // The peer is dead: group 1 starts here, group 0 does not (a copy may run).
        c.handle(t0, ClusterInput::PeerDead);
        let starts: Vec<Action> = std::iter::from_fn(|| c.poll_action())
            .filter(|a| matches!(a, Action::Start(_)))
            .collect();
        assert_eq!(starts, vec![Action::Start(GroupId(1))]);
        // Our report tells the peer we hold it and refuse it: it must not start it on top.
        let r: PeerReport = c.report();
        assert!(r.hold.as_ref().is_some_and(|h| h.contains("ip1")));
        assert!(r.refuse.contains("ip1"));
        assert!(c.transitions().any(|t| t.what == "stop failed"
            && t.group == "ip1"
            && t.reason.contains("previous had")));
        // After the admin's cleanup the group may run here again.
        c.handle(
            t0,
            ClusterInput::Admin(crate::cluster::AdminCommand::Cleanup),
        );
        let starts: Vec<Action> = std::iter::from_fn(|| c.poll_action())
            .filter(|a| matches!(a, Action::Start(_)))
            .collect();
        assert_eq!(starts, vec![Action::Start(GroupId(0))]);
    }
}
