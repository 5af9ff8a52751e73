//! One record per resource group (its state, the per-group flags) and the two rules every
//! other file asks: which state changes are legal, and why this node refuses a group.

use serde::Serialize;

use super::{Cluster, GroupId, GroupState};

/// What the cluster keeps of one group, indexed by `GroupId` in `Cluster::groups`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct GroupRecord {
    /// The local state; changed only through `Cluster::transition`.
    pub state: GroupState,
    /// Refused for a failure here (a failed start, stop or restart; a leftover that could
    /// not be stopped), until a cleanup or a takeover.
    pub failed: bool,
    /// Its monitor failed while it ran here, until a check passes again.
    pub unhealthy: bool,
    /// In admin standby here (ours, or the peer's takeover).
    pub standby: bool,
    /// An admin takeover asked the peer for it, until the peer acknowledges by refusing it.
    pub want: bool,
    /// To announce again once the peer, back from a partition, reports releasing it.
    pub reannounce: bool,
    /// A reload removed it from haresources (`reload.rs`).
    pub retired: bool,
}

/// Set `flag` to `on`; true when that changed it (as `BTreeSet::insert`/`remove` answer).
pub(super) fn flip(flag: &mut bool, on: bool) -> bool {
    std::mem::replace(flag, on) != on
}

/// One reason why this node will not run a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A reload removed the group from haresources.
    Retired,
    /// A graceful shutdown is under way.
    Shutdown,
    /// A start, stop or restart failed here.
    Failed,
    /// A monitor fails here.
    Unhealthy,
    /// Admin standby (or the peer's takeover) for the group.
    Standby,
    /// The peer reaches more ping nodes than we do (`ping.rs`).
    PingWorse,
}

impl Reason {
    /// Every reason, most serious first.
    pub const ALL: [Self; 6] = [
        Self::Retired,
        Self::Shutdown,
        Self::Failed,
        Self::Unhealthy,
        Self::Standby,
        Self::PingWorse,
    ];

    /// Hard reasons hold even when nobody else can run the group; standby and a worse ping
    /// view only give a group away, never leave it unrun.
    pub fn is_hard(self) -> bool {
        !matches!(self, Self::Standby | Self::PingWorse)
    }

    /// The word for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retired => "retired",
            Self::Shutdown => "shutdown",
            Self::Failed => "failed",
            Self::Unhealthy => "unhealthy",
            Self::Standby => "standby",
            Self::PingWorse => "ping",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Why this node refuses a group: the set of reasons in force (empty: it would run it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusal(u8);

impl Refusal {
    /// Whether `r` is among the reasons.
    pub fn contains(self, r: Reason) -> bool {
        self.0 & r.bit() != 0
    }

    /// Whether this node refuses the group at all.
    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// Whether a hard reason is in force: the group is not run here even if nobody else can.
    pub fn is_hard(self) -> bool {
        self.reasons().any(Reason::is_hard)
    }

    /// Refused only for soft reasons: listed as standby (`had_standby`) to the peer.
    pub fn is_soft(self) -> bool {
        self.any() && !self.is_hard()
    }

    /// Whether the peer is told (`had_refuse`) and `hactl status` shows the group refused:
    /// every reason but a retirement, which is never advertised (see `reload.rs`).
    pub fn is_told(self) -> bool {
        self.reasons().any(|r| r != Reason::Retired)
    }

    /// The reasons in force, most serious first.
    pub fn reasons(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    fn with(self, r: Reason, on: bool) -> Self {
        if on { Self(self.0 | r.bit()) } else { self }
    }
}

/// Whether the local state of a group may go from `from` to `to`. The table is what the
/// rules do; every edge names the code path that takes it. Anything else is a bug.
pub(super) fn legal(from: GroupState, to: GroupState) -> bool {
    use GroupState::*;
    match (from, to) {
        // reconcile decides to run it here.
        (Stopped, Starting) => true,
        // A leftover of a previous run that could not be stopped (`leftovers.rs`).
        (Stopped, StopFailed) => true,
        // A start, or a reload's start of added resources, succeeded or failed (rolled back).
        (Starting, Running | Failed) => true,
        // A release (reconcile, shutdown, Heartbeat standby) or a reload's stop of removed
        // resources; a reload that only adds resources starts them from Running.
        (Running, Stopping | Starting) => true,
        // A stop succeeded or failed; a reload's stop of removed resources finished, and the
        // group runs on, or its added resources start.
        (Stopping, Stopped | StopFailed | Running | Starting) => true,
        // A cleanup (both), or a takeover (Failed only): the admin fixed the cause.
        (Failed | StopFailed, Stopped) => true,
        // A restart in place failed. It is asked while the group runs; the group may have
        // moved on meanwhile (a Heartbeat standby stops it), and a monitor that counts where
        // the group does not run (a link) restarts it in any state.
        (Running | Stopping | Stopped | Failed | StopFailed, Failed) => true,
        _ => false,
    }
}

impl Cluster {
    /// Move group `g` to `to`, if the table allows it (`legal`). An illegal change is a bug:
    /// it panics in debug builds; in release it is noted in the log and changes nothing, and
    /// the caller must then not act on it (false). Entering `Failed` or `StopFailed` makes
    /// the group refused here until a cleanup or a takeover.
    #[must_use]
    pub(super) fn transition(
        &mut self,
        now: std::time::Instant,
        g: GroupId,
        to: GroupState,
    ) -> bool {
        let Some(from) = self.groups.get(g.0).map(|r| r.state) else {
            return false;
        };
        if !legal(from, to) {
            debug_assert!(false, "illegal transition of {g:?}: {from:?} -> {to:?}");
            let why = format!("{} -> {} refused", from.as_str(), to.as_str());
            self.note(now, g, "illegal transition", &why);
            return false;
        }
        let rec = &mut self.groups[g.0];
        rec.state = to;
        if matches!(to, GroupState::Failed | GroupState::StopFailed) {
            rec.failed = true;
        }
        true
    }

    /// Why this node refuses group `g` (empty: it would run it). The one answer the rules,
    /// the report to the peer and `hactl status` all use.
    pub fn refusal(&self, g: GroupId) -> Refusal {
        let rec = self.groups.get(g.0).copied().unwrap_or_default();
        Refusal::default()
            .with(Reason::Retired, rec.retired)
            .with(Reason::Shutdown, self.shutting_down)
            .with(Reason::Failed, rec.failed)
            .with(Reason::Unhealthy, rec.unhealthy)
            .with(Reason::Standby, rec.standby)
            .with(Reason::PingWorse, self.ping.refusing())
    }

    /// Shorthand for the rules: whether this node refuses group `g` at all.
    pub(super) fn refuses(&self, g: usize) -> bool {
        self.refusal(GroupId(g)).any()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        Action, AdminCommand, ClusterConfig, ClusterInput, GroupInfo, HoldSet, Op, PeerReport,
        Scope,
    };
    use super::*;
    use GroupState::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::{Duration, Instant};

    const ALL: [GroupState; 6] = [Stopped, Starting, Running, Stopping, Failed, StopFailed];

    #[test]
    fn the_table_lists_exactly_the_edges_the_rules_take() {
        let edges: Vec<(GroupState, GroupState)> = ALL
            .iter()
            .flat_map(|&a| ALL.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| legal(a, b))
            .collect();
        assert_eq!(
            edges,
            vec![
                (Stopped, Starting),
                (Stopped, Failed),
                (Stopped, StopFailed),
                (Starting, Running),
                (Starting, Failed),
                (Running, Starting),
                (Running, Stopping),
                (Running, Failed),
                (Stopping, Stopped),
                (Stopping, Starting),
                (Stopping, Running),
                (Stopping, Failed),
                (Stopping, StopFailed),
                (Failed, Stopped),
                (Failed, Failed),
                (StopFailed, Stopped),
                (StopFailed, Failed),
            ]
        );
    }

    #[test]
    fn resources_come_up_and_go_down_only_through_starting_and_stopping() {
        for from in ALL {
            if from != Starting && from != Stopping {
                assert!(!legal(from, Running), "{from:?} -> Running");
            }
            if from != Stopping {
                assert!(!legal(from, StopFailed) || from == Stopped, "{from:?}");
            }
            // Nothing held becomes unheld without a stop (or the admin's cleanup).
            if from.is_held() && from != Stopping && from != StopFailed {
                assert!(!legal(from, Stopped), "{from:?} -> Stopped");
            }
        }
        assert!(!legal(Stopped, Running));
        assert!(!legal(Starting, Stopped));
        assert!(!legal(Running, Stopped));
        assert!(!legal(Failed, Starting));
        assert!(!legal(StopFailed, Starting));
    }

    #[test]
    fn refusal_reasons_split_into_hard_soft_and_told() {
        let r = |rs: &[Reason]| {
            rs.iter()
                .fold(Refusal::default(), |acc, &x| acc.with(x, true))
        };
        assert!(!Refusal::default().any());
        assert!(!Refusal::default().is_told());
        for x in Reason::ALL {
            let one = r(&[x]);
            assert!(one.any() && one.contains(x));
            assert_eq!(one.is_hard(), x.is_hard(), "{x:?}");
            assert_eq!(one.is_soft(), !x.is_hard(), "{x:?}");
            assert_eq!(one.is_told(), x != Reason::Retired, "{x:?}");
        }
        let both = r(&[Reason::Standby, Reason::Retired]);
        assert!(both.is_hard() && !both.is_soft() && both.is_told());
        assert_eq!(
            r(&[Reason::PingWorse, Reason::Failed])
                .reasons()
                .collect::<Vec<_>>(),
            vec![Reason::Failed, Reason::PingWorse]
        );
    }

    /// Two groups, one preferred here, one by the peer; the peer is alive, reaches two ping
    /// nodes and holds nothing; the groups run here.
    fn running_with_live_peer(t0: Instant) -> Cluster {
        let group = |key: &str, local| GroupInfo {
            key: key.into(),
            preferred_local: local,
            resources: vec![key.into()].into(),
        };
        let cfg = ClusterConfig {
            local: "a".into(),
            peer: "b".into(),
            groups: vec![group("ip1", true), group("ip2", false)],
            auto_failback: crate::config::AutoFailback::Off,
            report_timeout: Duration::from_secs(2),
        };
        let mut c = Cluster::new(cfg, t0);
        c.handle(t0, ClusterInput::PingCount(2));
        c.handle(t0, ClusterInput::PeerDead);
        c.handle(
            t0,
            ClusterInput::PeerUp {
                returning_after_partition: false,
                restarted: false,
            },
        );
        c.handle(
            t0,
            ClusterInput::PeerReport(PeerReport {
                rsc_hold: HoldSet::None,
                stable: true,
                hold: Some(BTreeSet::new()),
                refuse: BTreeSet::new(),
                want: BTreeSet::new(),
                standby: BTreeSet::new(),
                ping: Some(2),
                prio: BTreeMap::new(),
                info: None,
            }),
        );
        finish_ops(&mut c, t0, true);
        assert_eq!(c.group_states(), [Running, Running]);
        c
    }

    /// Answer every start and stop asked so far.
    fn finish_ops(c: &mut Cluster, now: Instant, ok: bool) {
        while let Some(a) = c.poll_action() {
            let (group, op) = match a {
                Action::Start(g) => (g, Op::Start),
                Action::Stop(g) => (g, Op::Stop),
                _ => continue,
            };
            let detail = String::new();
            c.handle(
                now,
                ClusterInput::Outcome(crate::cluster::OpOutcome {
                    group,
                    op,
                    ok,
                    detail,
                }),
            );
        }
    }

    /// What `hactl status` shows refused (`refused_here` of the groups it shows) and what
    /// the peer is told (`had_refuse`), as key sets.
    fn status_and_report(c: &Cluster) -> (BTreeSet<String>, BTreeSet<String>) {
        let keys: Vec<String> = c.group_keys().map(String::from).collect();
        let shown = |g: &GroupId| !c.is_retired(*g);
        let status = c
            .refused()
            .filter(shown)
            .map(|g| keys[g.0].clone())
            .collect();
        let report = c
            .report()
            .refuse
            .into_iter()
            .filter(|k| {
                keys.iter()
                    .position(|x| x == k)
                    .is_some_and(|i| shown(&GroupId(i)))
            })
            .collect();
        (status, report)
    }

    #[test]
    fn status_shows_every_refusal_the_peer_is_told_of() {
        let t0 = Instant::now();
        let both: BTreeSet<String> = ["ip1".to_string(), "ip2".to_string()].into();
        let one: BTreeSet<String> = ["ip1".to_string()].into();
        type Step = fn(&mut Cluster, Instant);
        let cases: [(&str, Step, &BTreeSet<String>); 5] = [
            (
                "ping",
                |c, t| c.handle(t, ClusterInput::PingCount(1)),
                &both,
            ),
            (
                "shutdown",
                |c, t| c.handle(t, ClusterInput::Admin(AdminCommand::Shutdown)),
                &both,
            ),
            (
                "standby",
                |c, t| c.handle(t, ClusterInput::Admin(AdminCommand::Standby(Scope::Local))),
                &one,
            ),
            (
                "failed",
                |c, t| {
                    c.handle(t, ClusterInput::Admin(AdminCommand::Standby(Scope::Local)));
                    finish_ops(c, t, true);
                    c.handle(t, ClusterInput::PeerDead);
                    finish_ops(c, t, false);
                },
                &one,
            ),
            (
                "unhealthy",
                |c, t| {
                    let rule = super::super::CheckRule::failover_after(1);
                    let check = ClusterInput::Check(crate::cluster::CheckOutcome {
                        group: GroupId(0),
                        monitor: 0,
                        ok: false,
                        rule,
                        detail: String::new(),
                    });
                    c.handle(t, check);
                },
                &one,
            ),
        ];
        for (name, step, want) in cases {
            let mut c = running_with_live_peer(t0);
            assert_eq!(status_and_report(&c), (BTreeSet::new(), BTreeSet::new()));
            step(&mut c, t0);
            let (status, report) = status_and_report(&c);
            println!("{name}: status {status:?}, report {report:?}");
            assert_eq!(&report, want, "{name}: the peer is told");
            assert_eq!(
                status, report,
                "{name}: hactl status and the peer report differ"
            );
        }
    }
}
