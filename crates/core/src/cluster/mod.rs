//! The cluster state machine: who should hold each resource group, and when to move it.
//! Pure (sans-IO): events in, actions out, `Instant` passed in; the daemon loop does the IO.

mod admin;
mod fence;
mod group;
mod health;
mod heartbeat;
pub mod leftovers;
mod legacy;
mod notify;
mod ping;
mod priority;
mod reload;
mod report;

pub use admin::Scope;
pub use group::{Reason, Refusal};
pub use health::CheckRule;
pub use heartbeat::{AskInfo, HbInput, input_from_message};
pub use legacy::{LegacyInput, legacy_input_from_message};
pub use notify::NotifyState;
pub use reload::{Busy, GroupDelta, Remap};
pub use report::{HoldSet, PeerReport, ReportOrder};

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use group::GroupRecord;

use crate::config::AutoFailback;
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
    /// The group's resources as written, in start order (a reload compares them): the very
    /// list haresources was parsed into, shared, not a copy (issue 14).
    pub resources: std::sync::Arc<[crate::config::ResourceSpec]>,
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

/// The local state of one group; the legal changes are `group::legal`'s table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    #[default]
    Stopped,
    Starting,
    Running,
    Stopping,
    /// Start failed (rolled back); not run here until cleared.
    Failed,
    /// Stop failed after its retries: resources may still be up here, so the group counts
    /// as held (the peer must not start it) until an admin cleans it up.
    StopFailed,
}

impl GroupState {
    /// Whether the resources may be (partly) up here: the peer must not start the group.
    pub fn is_held(self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Running | Self::Stopping | Self::StopFailed
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Failed => "failed",
            Self::StopFailed => "stop_failed",
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

/// A group operation finished: how, and why not (the agent's error as text).
#[derive(Clone, Debug, PartialEq)]
pub struct OpOutcome {
    pub group: GroupId,
    pub op: Op,
    pub ok: bool,
    pub detail: String,
}

/// Monitor `monitor` of the group ran: `ok` or not. `rule.failures` consecutive failures
/// while the group runs here restart it in place (up to `rule.restarts` times within
/// `rule.window`) or make it unhealthy; that monitor passing again makes it healthy.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOutcome {
    pub group: GroupId,
    pub monitor: usize,
    pub ok: bool,
    pub rule: CheckRule,
    pub detail: String,
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
    Outcome(OpOutcome),
    /// A monitor ran.
    Check(CheckOutcome),
    /// Administrative commands.
    Admin(AdminCommand),
    /// How many ping nodes this node reaches now (`ping.rs`).
    PingCount(u32),
    /// The `[fence]` command finished (`fence.rs`): the peer is fenced when `ok`.
    Fenced { ok: bool, detail: String },
    /// Heartbeat's standby protocol and partial reports (`heartbeat.rs`).
    Heartbeat(HbInput),
    /// `auto_failback legacy`: `ip-request` and `ip-request-resp` (`legacy.rs`).
    Legacy(LegacyInput),
}

/// Group operations the daemon runs for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Start,
    Stop,
    /// Restart in place after a monitor failure (see `Action::Restart`).
    Restart,
    /// Stop the resources a reload removed (see `Action::StopResources`).
    ReloadStop,
    /// Start the resources a reload added (see `Action::StartResources`).
    ReloadStart,
}

/// Commands from `hactl` or signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Hand the groups in scope to the peer and refuse them until `Takeover` (see `admin.rs`).
    Standby(Scope),
    /// This node wants the groups in scope: lift its standby, and the peer stands by for them.
    Takeover(Scope),
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
    /// Restart the group in place: stop its resources from index `from` rightwards (right to
    /// left), then start them again left to right; a failed start rolls the whole group back.
    Restart { group: GroupId, from: usize },
    /// Announce the group's addresses again (gratuitous ARP): the peer held them too.
    Announce(GroupId),
    /// Reload: stop these resources of the group's list as it was before the reload
    /// (positions, in the order given: right to left); answered by `Op::ReloadStop`.
    StopResources {
        group: GroupId,
        resources: Vec<usize>,
    },
    /// Reload: start these resources of the group's list (positions, left to right); a
    /// failure rolls the whole group back, right to left, as a failed start does; answered
    /// by `Op::ReloadStart`.
    StartResources {
        group: GroupId,
        resources: Vec<usize>,
    },
    /// Run the `[fence]` command against the peer; answer with `ClusterInput::Fenced`.
    Fence,
    /// Run the `[notify]` hooks for the group (`notify.rs`).
    Notify {
        group: GroupId,
        state: NotifyState,
        reason: String,
    },
    /// Send this message to the peer (Heartbeat protocol: `ask_resources`, `hb_takeover`).
    Send(crate::codec::Message),
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
    /// One record per group slot, indexed by `GroupId` (`group.rs`).
    groups: Vec<GroupRecord>,
    /// Monitor failure counts and restart-in-place history (`health.rs`).
    health: health::Health,
    /// The `since` of the peer's current up-period whose report deadline already passed.
    report_wait_over: Option<Instant>,
    /// Starts a reload's change to a running group still has to make (`reload.rs`).
    reload: reload::Pending,
    /// The reason of each move in progress, for the notify hooks (`notify.rs`).
    why: notify::Why,
    /// Fencing a dead peer before takeover (`fence.rs`).
    fence: fence::Fence,
    /// The ping tiebreak (`ping.rs`).
    ping: ping::Ping,
    /// Base priority and weighted checks (`priority.rs`).
    weights: priority::Weights,
    /// The standby exchange with a Heartbeat peer (`heartbeat.rs`).
    hb: heartbeat::HbState,
    /// The `ip-request` exchange with a legacy Heartbeat peer (`legacy.rs`).
    legacy: legacy::LegacyState,
    shutting_down: bool,
    comm_up: bool,
    exited: bool,
    actions: VecDeque<Action>,
    last_report: Option<PeerReport>,
    /// After a cleanup with a live peer: start nothing before the peer's next report (or
    /// this deadline). The peer may be taking over, this very moment, the group the cleanup
    /// made eligible here again; its answer to our failure report is on the way.
    cleanup_wait: Option<Instant>,
    log: VecDeque<Transition>,
    /// Transitions ever recorded (the log keeps only the last `LOG_KEEP`); for metrics.
    noted: u64,
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
            groups: vec![GroupRecord::default(); n],
            health: health::Health::default(),
            report_wait_over: None,
            reload: reload::Pending::default(),
            why: notify::Why::default(),
            fence: fence::Fence::default(),
            ping: ping::Ping::default(),
            weights: priority::Weights::default(),
            hb: heartbeat::HbState::default(),
            legacy: legacy::LegacyState::default(),
            shutting_down: false,
            comm_up: false,
            exited: false,
            actions: VecDeque::new(),
            last_report: None,
            cleanup_wait: None,
            log: VecDeque::new(),
            noted: 0,
        }
    }

    /// Feed one input; actions become available through `poll_action`.
    pub fn handle(&mut self, now: Instant, input: ClusterInput) {
        let seen = heartbeat::Seen::of(&input);
        match input {
            ClusterInput::PeerUp {
                returning_after_partition,
                restarted,
            } => {
                let was_alive = matches!(self.peer, PeerState::Alive { .. });
                self.fence.cancel();
                if !was_alive || restarted || returning_after_partition {
                    self.peer = PeerState::Alive {
                        report: None,
                        since: now,
                    };
                    self.set_comm_up();
                    // A peer that restarted may have taken our groups first (a Heartbeat
                    // peer gives them up by restarting on "returning after partition", with
                    // no report that it released them): re-announce once it says it does not
                    // hold them, as after a healed partition.
                    if returning_after_partition || restarted {
                        self.on_partition_healed();
                    }
                    // Whatever it knew of us may be stale: ask for its view and give ours.
                    self.actions.push_back(Action::SendStarting);
                    self.queue_report(true);
                }
            }
            ClusterInput::PeerDead => {
                // Its report will not come: the dead-peer rules decide now.
                self.cleanup_wait = None;
                self.fence.on_peer_dead(self.peer_released_all());
                self.on_peer_lost();
                if !matches!(self.peer, PeerState::Gone) {
                    self.peer = PeerState::Dead;
                }
                self.set_comm_up();
            }
            ClusterInput::PeerShutdown => {
                self.cleanup_wait = None;
                self.fence.cancel();
                self.on_peer_lost();
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
            ClusterInput::PeerReport(mut r) => {
                self.cleanup_wait = None;
                let old = self.peer_report().cloned();
                // The peer lifted a refusal (a cleanup there): it waits for our next report
                // before it starts anything, and ours may not change; answer at once.
                let lifted = old
                    .as_ref()
                    .is_some_and(|o| o.refuse.iter().any(|k| !r.refuse.contains(k)));
                // A Heartbeat peer announces the outcome of a transition before carrying it
                // out: `rsc_hold=local isstable=0 info=standby` while it is still releasing
                // our group, `none isstable=0 info=shutdown` before its own release. Until it
                // reports stable again, what it held still counts as held.
                if let Some(prev) = old
                    .as_ref()
                    .filter(|o| o.hold.is_none() && r.hold.is_none())
                    && !r.stable
                {
                    r.rsc_hold = r.rsc_hold.union(prev.rsc_hold);
                }
                self.on_peer_report_ops(now, old.as_ref(), &r);
                match &mut self.peer {
                    PeerState::Alive { report, .. } => *report = Some(r),
                    _ => {
                        self.peer = PeerState::Alive {
                            report: Some(r),
                            since: now,
                        };
                        self.set_comm_up();
                        // The peer came back through its report, before liveness says so;
                        // its `starting` may be lost, and its PeerUp will then find it alive
                        // already: without our report now, it would decide alone after its
                        // report timeout and start what we hold.
                        self.queue_report(true);
                    }
                }
                // Our report changes when the peer's takeover put groups in standby here.
                self.queue_report(lifted);
            }
            ClusterInput::Outcome(OpOutcome {
                group,
                op,
                ok,
                detail,
            }) => self.on_outcome(now, group, op, ok, &detail),
            ClusterInput::Check(CheckOutcome {
                group,
                monitor,
                ok,
                rule,
                detail,
            }) => self.on_check(now, group, monitor, ok, rule, &detail),
            ClusterInput::Admin(cmd) => self.on_admin(now, cmd),
            ClusterInput::Heartbeat(i) => self.on_hb_input(now, i),
            ClusterInput::Fenced { ok, .. } => self.fence.on_fenced(now, ok),
            ClusterInput::PingCount(n) => self.on_ping_count(n),
            ClusterInput::Legacy(i) => self.on_legacy_input(now, i),
        }
        self.hb_after(now, seen);
        self.legacy_after(seen);
        self.reconcile(now);
        self.hb_step(now);
        self.legacy_step(now);
    }

    /// Time-driven rules (the peer's report timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.cleanup_wait.is_some_and(|t| now >= t) {
            self.cleanup_wait = None;
        }
        if let PeerState::Alive {
            report: None,
            since,
        } = &self.peer
            && now >= *since + self.cfg.report_timeout
        {
            self.report_wait_over = Some(*since);
        }
        self.reconcile(now);
        self.hb_step(now);
        self.legacy_step(now);
    }

    /// Next instant at which `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let report = match &self.peer {
            // Under the legacy exchange nothing waits on a report (a legacy Heartbeat never
            // sends one, and a deadline left in the past would spin the daemon loop).
            // Once past, the report deadline has done its work (desired_here decides alone
            // from then on); returning it again would spin the daemon loop.
            PeerState::Alive {
                report: None,
                since,
            } if !self.legacy_applies() && self.report_wait_over != Some(*since) => {
                Some(*since + self.cfg.report_timeout)
            }
            _ => None,
        };
        report
            .into_iter()
            .chain(self.cleanup_wait)
            .chain(self.hb_timeout())
            .chain(self.legacy_timeout())
            .chain(self.fence.timeout())
            .chain(self.ping.timeout())
            .chain(self.failback_timeout())
            .min()
    }

    /// Next action for the daemon to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The local state of each group slot.
    pub fn group_states(&self) -> Vec<GroupState> {
        self.groups.iter().map(|r| r.state).collect()
    }

    /// The local state of group `g` (`None`: no such slot).
    pub fn group_state(&self, g: GroupId) -> Option<GroupState> {
        self.groups.get(g.0).map(|r| r.state)
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

    /// Groups this node refuses as the peer is told (`had_refuse`) and `hactl status` shows
    /// them (`refused_here`): `refusal(g).is_told()`.
    pub fn refused(&self) -> impl Iterator<Item = GroupId> + '_ {
        (0..self.groups.len())
            .map(GroupId)
            .filter(|&g| self.refusal(g).is_told())
    }

    /// Whether group `g`'s monitors have anything to tell: it runs here, or it is unhealthy
    /// here and only a passing check can clear that. Elsewhere checks would only fail, as
    /// expected, and cost CPU on an idle node.
    pub fn monitor_needed(&self, g: GroupId) -> bool {
        self.groups
            .get(g.0)
            .is_some_and(|r| r.state == GroupState::Running || r.unhealthy)
    }

    /// Whether standby is in force for any group.
    pub fn is_standby(&self) -> bool {
        self.groups.iter().any(|r| r.standby)
    }

    /// Whether group `g` is in admin standby here.
    pub fn is_standby_for(&self, g: GroupId) -> bool {
        self.groups.get(g.0).is_some_and(|r| r.standby)
    }

    /// Whether a graceful shutdown is in progress.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Recent transitions, oldest first.
    pub fn transitions(&self) -> impl Iterator<Item = &Transition> {
        self.log.iter()
    }

    /// How many transitions were ever recorded; the newest ones are the log's tail.
    pub fn transitions_total(&self) -> u64 {
        self.noted
    }

    /// Our resource report as the peer should see it now.
    pub fn report(&self) -> PeerReport {
        let keys = |pick: &dyn Fn(GroupId, &GroupRecord) -> bool| -> BTreeSet<String> {
            self.groups
                .iter()
                .enumerate()
                .filter(|&(i, r)| pick(GroupId(i), r))
                .filter_map(|(i, _)| self.cfg.groups.get(i).map(|g| g.key.clone()))
                .collect()
        };
        let held_where = |local: bool| {
            self.groups
                .iter()
                .zip(&self.cfg.groups)
                .any(|(r, g)| r.state.is_held() && g.preferred_local == local)
        };
        let stable = !self
            .groups
            .iter()
            .any(|r| matches!(r.state, GroupState::Starting | GroupState::Stopping));
        PeerReport {
            rsc_hold: self.coarse_hold(held_where(true), held_where(false)),
            stable,
            hold: Some(keys(&|_, r| r.state.is_held())),
            refuse: keys(&|g, _| self.refusal(g).is_told()),
            want: keys(&|_, r| r.want),
            standby: keys(&|g, _| self.refusal(g).is_soft()),
            ping: self.ping_count(),
            prio: self.priorities(),
            info: if self.shutting_down {
                Some("shutdown".into())
            } else if self.is_standby() {
                Some("standby".into())
            } else {
                None
            },
        }
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
        self.noted += 1;
        if self.log.len() >= LOG_KEEP {
            self.log.pop_front();
        }
        self.log.push_back(Transition {
            at_ms: now.saturating_duration_since(self.start).as_millis() as u64,
            group: key,
            what: what.into(),
            reason: reason.into(),
        });
        self.notify_on(g, what, reason);
    }

    fn on_outcome(&mut self, now: Instant, g: GroupId, op: Op, ok: bool, detail: &str) {
        let Some(st) = self.group_state(g) else {
            return;
        };
        let moved = match (op, ok) {
            (Op::Start, true) if st == GroupState::Starting => {
                Some((GroupState::Running, "running", "start succeeded"))
            }
            // The driver already rolled the group back (right to left).
            (Op::Start, false) if st == GroupState::Starting => {
                Some((GroupState::Failed, "failed", detail))
            }
            (Op::Stop, true) if st == GroupState::Stopping => {
                Some((GroupState::Stopped, "stopped", "stop succeeded"))
            }
            // Resources may still be up: never let the peer start them too.
            (Op::Stop, false) if st == GroupState::Stopping => {
                Some((GroupState::StopFailed, "stop failed", detail))
            }
            (Op::ReloadStop, ok) if st == GroupState::Stopping => {
                self.on_reload_stopped(now, g, ok, detail);
                None
            }
            (Op::ReloadStart, ok) if st == GroupState::Starting => {
                self.on_reload_started(now, g, ok, detail);
                None
            }
            (Op::Restart, true) => {
                self.health.restart_done(g.0);
                self.note(now, g, "restarted", "restart in place succeeded");
                None
            }
            // The driver rolled the whole group back, or could not: as a failed start.
            (Op::Restart, false) => {
                self.health.restart_done(g.0);
                Some((GroupState::Failed, "failed", detail))
            }
            _ => None,
        };
        if let Some((to, what, why)) = moved
            && self.transition(now, g, to)
        {
            self.note(now, g, what, why);
        }
        self.queue_report(false);
        self.maybe_finish_shutdown();
    }

    /// A graceful stop ends when nothing is running or moving any more. A group whose stop
    /// failed is not released: we leave without `shutdone`, so the peer waits for deadtime
    /// (and fences, if configured) instead of starting it on top of what may still run here.
    fn maybe_finish_shutdown(&mut self) {
        if !self.shutting_down || self.exited {
            return;
        }
        let busy = self.groups.iter().any(|r| {
            matches!(
                r.state,
                GroupState::Starting | GroupState::Running | GroupState::Stopping
            )
        });
        if busy {
            return;
        }
        self.exited = true;
        self.queue_report(true);
        if !self
            .groups
            .iter()
            .any(|r| r.state == GroupState::StopFailed)
        {
            self.actions.push_back(Action::SendShutdone);
        }
        self.actions.push_back(Action::Exit);
    }

    fn on_check(
        &mut self,
        now: Instant,
        g: GroupId,
        monitor: usize,
        ok: bool,
        rule: CheckRule,
        detail: &str,
    ) {
        let Some(st) = self.group_state(g) else {
            return;
        };
        if rule.weight != 0 {
            self.on_weighted_check(now, g, monitor, ok, rule, detail);
            return;
        }
        // Only a failure of what we run counts: a group stopped here is expected to fail its
        // checks, and must not be refused for it. A lost link counts everywhere: this node
        // could not serve the group's address.
        let running = st == GroupState::Running || rule.everywhere;
        // A restart in place where the group does not run would start a second copy.
        let rule = if st == GroupState::Running {
            rule
        } else {
            CheckRule {
                restarts: 0,
                ..rule
            }
        };
        match self.health.on_check(now, g.0, monitor, ok, running, rule) {
            health::Verdict::Nothing => {}
            health::Verdict::Restart { from } => {
                let used = self.health.restarts_used(g.0);
                let why = format!("{detail} (restart {used} of {})", rule.restarts);
                self.note(now, g, "restarting", &why);
                self.actions.push_back(Action::Restart { group: g, from });
            }
            health::Verdict::Unhealthy => {
                self.groups[g.0].unhealthy = true;
                self.note(now, g, "unhealthy", detail);
            }
            health::Verdict::Healthy => {
                self.groups[g.0].unhealthy = false;
                self.note(now, g, "healthy", "monitor passes again");
            }
        }
        self.queue_report(false);
    }

    fn on_admin(&mut self, now: Instant, cmd: AdminCommand) {
        match cmd {
            AdminCommand::Standby(scope) => self.on_standby(now, scope),
            AdminCommand::Takeover(scope) => self.on_takeover(now, scope),
            AdminCommand::Cleanup => {
                if matches!(
                    self.peer,
                    PeerState::Alive {
                        report: Some(_),
                        ..
                    }
                ) {
                    self.cleanup_wait = Some(now + self.cfg.report_timeout);
                }
                self.health.clear();
                for i in 0..self.groups.len() {
                    self.groups[i].failed = false;
                    self.groups[i].unhealthy = false;
                    // After a failed stop the admin has stopped the leftovers by hand.
                    if matches!(
                        self.groups[i].state,
                        GroupState::Failed | GroupState::StopFailed
                    ) {
                        let _ = self.transition(now, GroupId(i), GroupState::Stopped);
                    }
                }
            }
            AdminCommand::Shutdown => {
                self.shutting_down = true;
                self.maybe_finish_shutdown();
                if self.exited {
                    return;
                }
            }
        }
        self.queue_report(false);
    }

    /// Which node should run group `g`: `Some(true)` us, `Some(false)` the peer, `None` nobody
    /// or not decidable yet.
    fn desired_here(&self, now: Instant, g: usize) -> Option<bool> {
        let refusal = self.refusal(GroupId(g));
        let we_refuse = refusal.any();
        let key = &self.cfg.groups[g].key;
        match &self.peer {
            PeerState::Unknown => None,
            PeerState::Dead | PeerState::Gone => Some(!refusal.is_hard()),
            PeerState::Alive { report, since } => {
                let Some(r) = report else {
                    // `auto_failback legacy`: groups move through the ip-request exchange.
                    if let Some(d) = self.legacy_desired(g) {
                        return d;
                    }
                    // A peer that never reports (or a slow one) must not block us forever.
                    if now >= *since + self.cfg.report_timeout {
                        return Some(!we_refuse && self.cfg.groups[g].preferred_local);
                    }
                    return None;
                };
                // A group a Heartbeat peer is handing us is in transit until its `done`.
                if self.hb_granting(g) {
                    return None;
                }
                // A standby exchange with a Heartbeat peer settled the holder.
                if let Some(here) = self.hb_desired(g) {
                    return Some(here && !we_refuse);
                }
                let peer_refuses = r.refuses(key, !self.cfg.groups[g].preferred_local);
                let peer_holds = r.holds(key, !self.cfg.groups[g].preferred_local);
                let we_hold = self.groups[g].state.is_held();
                let (we_hard, peer_hard) = (refusal.is_hard(), r.refuses_hard(key));
                match (we_refuse, peer_refuses) {
                    _ if we_hard => Some(false),
                    // Standing by never leaves a group unrun: take it when the peer can't.
                    _ if peer_hard => Some(true),
                    (true, false) => Some(false),
                    (false, true) => Some(true),
                    (true, true) | (false, false) => {
                        let sticky = matches!(self.cfg.auto_failback, AutoFailback::Off);
                        if sticky && we_hold != peer_holds {
                            Some(we_hold)
                        } else if let Some(here) = self.priority_decides(g, r) {
                            Some(here || self.failback_held(now, g).is_some())
                        } else {
                            Some(
                                self.cfg.groups[g].preferred_local
                                    || self.failback_held(now, g).is_some(),
                            )
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
        self.ping_step(now);
        if self.shutting_down {
            // Release right to left across groups, all at once: each group stops its own
            // resources right to left.
            for g in (0..self.groups.len()).rev() {
                // A restart in flight reports back first; the group is stopped after it.
                if self.groups[g].state == GroupState::Running
                    && !self.health.is_restarting(g)
                    && self.transition(now, GroupId(g), GroupState::Stopping)
                {
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
        // A dead peer that may still hold resources is fenced before anything starts.
        let fencing = self.fence_step(now);
        let held = (0..self.groups.len())
            .filter_map(|g| self.failback_held(now, g))
            .min();
        self.set_failback_deadline(held);
        for g in 0..self.groups.len() {
            let want = self.desired_here(now, g);
            let st = self.groups[g].state;
            // A Heartbeat peer's `done` says it released the group, whatever its last
            // (possibly still unstable) report says.
            let peer_holds = !self.hb_released(g)
                && self.peer_report().is_some_and(|r| {
                    r.holds(&self.cfg.groups[g].key, !self.cfg.groups[g].preferred_local)
                });
            let to = match want {
                Some(true)
                    if st == GroupState::Stopped
                        && !peer_holds
                        && !fencing
                        && self.cleanup_wait.is_none() =>
                {
                    GroupState::Starting
                }
                // A Heartbeat peer takes groups only through the standby exchange (hb_step).
                Some(false)
                    if st == GroupState::Running
                        && !self.health.is_restarting(g)
                        && !self.peer_is_heartbeat() =>
                {
                    GroupState::Stopping
                }
                _ => continue,
            };
            if !self.transition(now, GroupId(g), to) {
                continue;
            }
            changed = true;
            if to == GroupState::Starting {
                let reason = self.reason_for_start(g);
                self.note(now, GroupId(g), "starting", &reason);
                self.actions.push_back(Action::Start(GroupId(g)));
            } else {
                let reason = if self.refuses(g) {
                    "refused here (failed, unhealthy or standby)"
                } else {
                    "the peer should hold it"
                };
                self.note(now, GroupId(g), "stopping", reason);
                // The same report may have asked to re-announce it (the peer released it
                // after a split brain, and should hold it now): gratuitous ARPs for an
                // address on its way out would point the LAN away from the peer.
                self.actions.retain(|a| *a != Action::Announce(GroupId(g)));
                self.actions.push_back(Action::Stop(GroupId(g)));
            }
        }
        if changed {
            self.queue_report(false);
        }
    }

    fn reason_for_start(&self, g: usize) -> String {
        // The peer will not run it: say why, rather than "preferred here".
        if let Some(r) = self.peer_report() {
            let key = &self.cfg.groups[g].key;
            if r.refuses(key, !self.cfg.groups[g].preferred_local) {
                return match r.info.as_deref() {
                    Some(i @ ("standby" | "shutdown")) => format!("{} is in {i}", self.cfg.peer),
                    _ => format!("{} refuses it (failed or unhealthy)", self.cfg.peer),
                };
            }
        }
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

/// The seeded soak: two real Liveness + Cluster pairs under random fault schedules.
#[cfg(test)]
mod soak;
/// The two-node simulator of the rule tests (`tests/`: operator, reload and weight rules).
#[cfg(test)]
mod tests;
