//! The cluster state machine: who should hold each resource group, and when to move it.
//! Pure (sans-IO): events in, actions out, `Instant` passed in; the daemon loop does the IO.

mod report;

pub use report::{HoldSet, PeerReport};

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use ha_config::AutoFailback;
use serde::Serialize;

/// Index of a resource group in haresources order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct GroupId(pub usize);

/// What the cluster needs to know about one resource group.
#[derive(Clone, Debug)]
pub struct GroupInfo {
    /// The group's key: its first resource as written in haresources.
    pub key: String,
    /// True when the haresources line names this node as the preferred owner.
    pub preferred_local: bool,
}

/// Static input of the cluster state machine.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub local: String,
    pub peer: String,
    pub groups: Vec<GroupInfo>,
    pub auto_failback: AutoFailback,
    /// How long to wait for the peer's resource report before deciding alone.
    pub report_timeout: Duration,
}

/// The local state of one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    Stopped,
    Starting,
    Running,
    Stopping,
    /// Start failed (rolled back) or stop failed; not run here until cleared.
    Failed,
}

impl GroupState {
    /// Whether the resources may be (partly) up here: the peer must not start the group.
    pub fn is_held(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Stopping)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Failed => "failed",
        }
    }
}

/// What we know of the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Not heard yet, initdead not expired.
    Unknown,
    /// Heard; `report` is its last full resource report, if any arrived since it came up.
    Alive {
        report: Option<PeerReport>,
        since: Instant,
    },
    /// Declared dead by liveness.
    Dead,
    /// Sent `shutdone`: it released everything and is leaving.
    Gone,
}

/// Inputs to the cluster.
#[derive(Clone, Debug)]
pub enum ClusterInput {
    /// The peer was heard (first time, after death, or after a restart).
    PeerUp {
        returning_after_partition: bool,
        restarted: bool,
    },
    /// The peer is dead (deadtime or initdead expired on every link).
    PeerDead,
    /// The peer sent its resource report.
    PeerReport(PeerReport),
    /// The peer asked for our report (`starting`).
    PeerStarting,
    /// The peer released everything and is shutting down (`shutdone`).
    PeerShutdown,
    /// A group operation finished.
    Outcome {
        group: GroupId,
        op: Op,
        ok: bool,
        detail: String,
    },
    /// A monitor of the group ran: `ok` or not; `threshold` consecutive failures while the
    /// group runs here make it unhealthy, and one pass makes it healthy again.
    Check {
        group: GroupId,
        ok: bool,
        threshold: u32,
        detail: String,
    },
    /// Administrative commands.
    Admin(AdminCommand),
}

/// Group operations the daemon runs for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Start,
    Stop,
}

/// Commands from `hactl` or signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Hand every group to the peer and refuse them until `Takeover`/`Cleanup`.
    Standby,
    /// Take every group the peer holds (the peer must be alive and agree).
    Takeover,
    /// Forget failures (after the admin fixed the cause).
    Cleanup,
    /// Graceful stop: release all, tell the peer, exit.
    Shutdown,
}

/// Outputs of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the group: resources left to right, rolled back on failure.
    Start(GroupId),
    /// Stop the group: resources right to left.
    Stop(GroupId),
    /// Send our full resource report to the peer.
    SendReport(PeerReport),
    /// Ask the peer for its report.
    SendStarting,
    /// Tell the peer we released everything and are leaving.
    SendShutdone,
    /// Our heartbeat status becomes `active` (communication is up).
    CommUp,
    /// Graceful shutdown finished: the daemon may exit.
    Exit,
}

/// A transition, for `hactl log` and the status view.
#[derive(Clone, Debug, Serialize)]
pub struct Transition {
    pub at_ms: u64,
    pub group: String,
    pub what: String,
    pub reason: String,
}

/// The cluster state machine.
pub struct Cluster {
    cfg: ClusterConfig,
    start: Instant,
    peer: PeerState,
    groups: Vec<GroupState>,
    /// Groups we will not run: failed here, or standby.
    refuse: BTreeSet<usize>,
    /// Groups whose monitor failed while they ran here, until a check passes again.
    unhealthy: BTreeSet<usize>,
    /// Consecutive failed checks per group while it runs here.
    failed_checks: Vec<u32>,
    standby: bool,
    shutting_down: bool,
    comm_up: bool,
    exited: bool,
    actions: VecDeque<Action>,
    last_report: Option<PeerReport>,
    log: VecDeque<Transition>,
}

const LOG_KEEP: usize = 200;

impl Cluster {
    /// A cluster that holds nothing and waits to hear from the peer.
    pub fn new(cfg: ClusterConfig, now: Instant) -> Self {
        let n = cfg.groups.len();
        Self {
            cfg,
            start: now,
            peer: PeerState::Unknown,
            groups: vec![GroupState::Stopped; n],
            refuse: BTreeSet::new(),
            unhealthy: BTreeSet::new(),
            failed_checks: vec![0; n],
            standby: false,
            shutting_down: false,
            comm_up: false,
            exited: false,
            actions: VecDeque::new(),
            last_report: None,
            log: VecDeque::new(),
        }
    }

    /// Feed one input; actions become available through `poll_action`.
    pub fn handle(&mut self, now: Instant, input: ClusterInput) {
        match input {
            ClusterInput::PeerUp {
                returning_after_partition,
                restarted,
            } => {
                let was_alive = matches!(self.peer, PeerState::Alive { .. });
                if !was_alive || restarted || returning_after_partition {
                    self.peer = PeerState::Alive {
                        report: None,
                        since: now,
                    };
                    self.set_comm_up();
                    // Whatever it knew of us may be stale: ask for its view and give ours.
                    self.actions.push_back(Action::SendStarting);
                    self.queue_report(true);
                }
            }
            ClusterInput::PeerDead => {
                if !matches!(self.peer, PeerState::Gone) {
                    self.peer = PeerState::Dead;
                }
                self.set_comm_up();
            }
            ClusterInput::PeerShutdown => {
                self.peer = PeerState::Gone;
                self.set_comm_up();
            }
            ClusterInput::PeerStarting => {
                if !matches!(self.peer, PeerState::Alive { .. }) {
                    self.peer = PeerState::Alive {
                        report: None,
                        since: now,
                    };
                    self.set_comm_up();
                }
                self.queue_report(true);
            }
            ClusterInput::PeerReport(r) => match &mut self.peer {
                PeerState::Alive { report, .. } => *report = Some(r),
                _ => {
                    self.peer = PeerState::Alive {
                        report: Some(r),
                        since: now,
                    };
                    self.set_comm_up();
                }
            },
            ClusterInput::Outcome {
                group,
                op,
                ok,
                detail,
            } => self.on_outcome(now, group, op, ok, &detail),
            ClusterInput::Check {
                group,
                ok,
                threshold,
                detail,
            } => self.on_check(now, group, ok, threshold, &detail),
            ClusterInput::Admin(cmd) => self.on_admin(now, cmd),
        }
        self.reconcile(now);
    }

    /// Time-driven rules (the peer's report timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.reconcile(now);
    }

    /// Next instant at which `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.peer {
            PeerState::Alive {
                report: None,
                since,
            } => Some(*since + self.cfg.report_timeout),
            _ => None,
        }
    }

    /// Next action for the daemon to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The local state of each group.
    pub fn group_states(&self) -> &[GroupState] {
        &self.groups
    }

    /// What we know of the peer.
    pub fn peer(&self) -> &PeerState {
        &self.peer
    }

    /// The peer's last report, if it is alive and reported.
    pub fn peer_report(&self) -> Option<&PeerReport> {
        match &self.peer {
            PeerState::Alive { report, .. } => report.as_ref(),
            _ => None,
        }
    }

    /// Groups this node refuses (failed here or standby).
    pub fn refused(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.refuse
            .iter()
            .chain(self.unhealthy.iter())
            .map(|&i| GroupId(i))
    }

    /// Whether standby is in force.
    pub fn is_standby(&self) -> bool {
        self.standby
    }

    /// Whether a graceful shutdown is in progress.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Recent transitions, oldest first.
    pub fn transitions(&self) -> impl Iterator<Item = &Transition> {
        self.log.iter()
    }

    /// Our resource report as the peer should see it now.
    pub fn report(&self) -> PeerReport {
        let mut hold = BTreeSet::new();
        for (i, st) in self.groups.iter().enumerate() {
            if st.is_held() {
                hold.insert(self.cfg.groups[i].key.clone());
            }
        }
        let refuse = self.refusing_keys();
        let local_held = self
            .groups
            .iter()
            .enumerate()
            .any(|(i, s)| s.is_held() && self.cfg.groups[i].preferred_local);
        let foreign_held = self
            .groups
            .iter()
            .enumerate()
            .any(|(i, s)| s.is_held() && !self.cfg.groups[i].preferred_local);
        let stable = !self
            .groups
            .iter()
            .any(|s| matches!(s, GroupState::Starting | GroupState::Stopping));
        PeerReport {
            rsc_hold: HoldSet::from_flags(local_held, foreign_held),
            stable,
            hold: Some(hold),
            refuse,
            info: if self.shutting_down {
                Some("shutdown".into())
            } else if self.standby {
                Some("standby".into())
            } else {
                None
            },
        }
    }

    fn refusing_keys(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for i in self.refuse.iter().chain(self.unhealthy.iter()) {
            if let Some(g) = self.cfg.groups.get(*i) {
                out.insert(g.key.clone());
            }
        }
        if self.standby || self.shutting_down {
            out.extend(self.cfg.groups.iter().map(|g| g.key.clone()));
        }
        out
    }

    fn refuses(&self, g: usize) -> bool {
        self.standby
            || self.shutting_down
            || self.refuse.contains(&g)
            || self.unhealthy.contains(&g)
    }

    fn set_comm_up(&mut self) {
        if !self.comm_up {
            self.comm_up = true;
            self.actions.push_back(Action::CommUp);
        }
    }

    fn queue_report(&mut self, force: bool) {
        let r = self.report();
        if force || self.last_report.as_ref() != Some(&r) {
            self.last_report = Some(r.clone());
            self.actions.push_back(Action::SendReport(r));
        }
    }

    fn note(&mut self, now: Instant, g: GroupId, what: &str, reason: &str) {
        let key = self
            .cfg
            .groups
            .get(g.0)
            .map(|g| g.key.clone())
            .unwrap_or_default();
        if self.log.len() >= LOG_KEEP {
            self.log.pop_front();
        }
        self.log.push_back(Transition {
            at_ms: now.saturating_duration_since(self.start).as_millis() as u64,
            group: key,
            what: what.into(),
            reason: reason.into(),
        });
    }

    fn on_outcome(&mut self, now: Instant, g: GroupId, op: Op, ok: bool, detail: &str) {
        let Some(st) = self.groups.get(g.0).copied() else {
            return;
        };
        match (op, ok) {
            (Op::Start, true) if st == GroupState::Starting => {
                self.groups[g.0] = GroupState::Running;
                self.note(now, g, "running", "start succeeded");
            }
            (Op::Start, false) if st == GroupState::Starting => {
                // The driver already rolled the group back (right to left).
                self.groups[g.0] = GroupState::Failed;
                self.refuse.insert(g.0);
                self.note(now, g, "failed", detail);
            }
            (Op::Stop, true) if st == GroupState::Stopping => {
                self.groups[g.0] = GroupState::Stopped;
                self.note(now, g, "stopped", "stop succeeded");
            }
            (Op::Stop, false) if st == GroupState::Stopping => {
                // Resources may still be up: never let the peer start them too.
                self.groups[g.0] = GroupState::Failed;
                self.refuse.insert(g.0);
                self.note(now, g, "stop failed", detail);
            }
            _ => {}
        }
        self.queue_report(false);
        if self.shutting_down && self.groups.iter().all(|s| !s.is_held()) && !self.exited {
            self.exited = true;
            self.queue_report(true);
            self.actions.push_back(Action::SendShutdone);
            self.actions.push_back(Action::Exit);
        }
    }

    fn on_check(&mut self, now: Instant, g: GroupId, ok: bool, threshold: u32, detail: &str) {
        let Some(st) = self.groups.get(g.0).copied() else {
            return;
        };
        if ok {
            self.failed_checks[g.0] = 0;
            if self.unhealthy.remove(&g.0) {
                self.note(now, g, "healthy", "monitor passes again");
            }
        } else if st == GroupState::Running {
            // Only a failure of what we run counts: a group stopped here is expected to fail
            // its checks, and must not be refused for it.
            self.failed_checks[g.0] += 1;
            if self.failed_checks[g.0] >= threshold.max(1) && self.unhealthy.insert(g.0) {
                self.note(now, g, "unhealthy", detail);
            }
        }
        self.queue_report(false);
    }

    fn on_admin(&mut self, now: Instant, cmd: AdminCommand) {
        match cmd {
            AdminCommand::Standby => {
                self.standby = true;
                for i in 0..self.groups.len() {
                    self.note(now, GroupId(i), "standby", "admin standby");
                }
            }
            AdminCommand::Takeover => {
                self.standby = false;
                self.refuse.clear();
            }
            AdminCommand::Cleanup => {
                self.refuse.clear();
                self.unhealthy.clear();
                for s in &mut self.groups {
                    if *s == GroupState::Failed {
                        *s = GroupState::Stopped;
                    }
                }
            }
            AdminCommand::Shutdown => {
                self.shutting_down = true;
                if self.groups.iter().all(|s| !s.is_held()) && !self.exited {
                    self.exited = true;
                    self.queue_report(true);
                    self.actions.push_back(Action::SendShutdone);
                    self.actions.push_back(Action::Exit);
                    return;
                }
            }
        }
        self.queue_report(false);
    }

    /// Which node should run group `g`: `Some(true)` us, `Some(false)` the peer, `None` nobody
    /// or not decidable yet.
    fn desired_here(&self, now: Instant, g: usize) -> Option<bool> {
        let we_refuse = self.refuses(g);
        let key = &self.cfg.groups[g].key;
        match &self.peer {
            PeerState::Unknown => None,
            PeerState::Dead | PeerState::Gone => Some(!we_refuse),
            PeerState::Alive { report, since } => {
                let Some(r) = report else {
                    // A peer that never reports (or a slow one) must not block us forever.
                    if now >= *since + self.cfg.report_timeout {
                        return Some(!we_refuse && self.cfg.groups[g].preferred_local);
                    }
                    return None;
                };
                let peer_refuses = r.refuses(key, !self.cfg.groups[g].preferred_local);
                let peer_holds = r.holds(key, !self.cfg.groups[g].preferred_local);
                let we_hold = self.groups[g].is_held();
                match (we_refuse, peer_refuses) {
                    (true, true) => Some(false),
                    (true, false) => Some(false),
                    (false, true) => Some(true),
                    (false, false) => {
                        let sticky = matches!(self.cfg.auto_failback, AutoFailback::Off);
                        if sticky && we_hold != peer_holds {
                            Some(we_hold)
                        } else {
                            Some(self.cfg.groups[g].preferred_local)
                        }
                    }
                }
            }
        }
    }

    fn reconcile(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        let mut changed = false;
        if self.shutting_down {
            // Release right to left across groups, all at once: each group stops its own
            // resources right to left.
            for g in (0..self.groups.len()).rev() {
                if self.groups[g] == GroupState::Running {
                    self.groups[g] = GroupState::Stopping;
                    self.note(now, GroupId(g), "stopping", "shutdown");
                    self.actions.push_back(Action::Stop(GroupId(g)));
                    changed = true;
                }
            }
            if changed {
                self.queue_report(false);
            }
            return;
        }
        for g in 0..self.groups.len() {
            let want = self.desired_here(now, g);
            let st = self.groups[g];
            let peer_holds = self.peer_report().is_some_and(|r| {
                r.holds(&self.cfg.groups[g].key, !self.cfg.groups[g].preferred_local)
            });
            match want {
                Some(true) if st == GroupState::Stopped && !peer_holds => {
                    self.groups[g] = GroupState::Starting;
                    let reason = self.reason_for_start();
                    self.note(now, GroupId(g), "starting", &reason);
                    self.actions.push_back(Action::Start(GroupId(g)));
                    changed = true;
                }
                Some(false) if st == GroupState::Running => {
                    self.groups[g] = GroupState::Stopping;
                    let reason = if self.refuses(g) {
                        "refused here (failed, unhealthy or standby)"
                    } else {
                        "the peer should hold it"
                    };
                    self.note(now, GroupId(g), "stopping", reason);
                    self.actions.push_back(Action::Stop(GroupId(g)));
                    changed = true;
                }
                _ => {}
            }
        }
        if changed {
            self.queue_report(false);
        }
    }

    fn reason_for_start(&self) -> String {
        match &self.peer {
            PeerState::Dead => format!("{} is dead", self.cfg.peer),
            PeerState::Gone => format!("{} shut down", self.cfg.peer),
            PeerState::Alive { report: None, .. } => {
                format!("{} did not report in time", self.cfg.peer)
            }
            _ => "preferred here".into(),
        }
    }
}

#[cfg(test)]
mod tests;
