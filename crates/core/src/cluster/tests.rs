//! Deterministic two-node tests of the cluster rules: a tiny simulator wires two `Cluster`s
//! together, runs their group operations as instant (or failing) outcomes, and checks that
//! a group is never held by both nodes while they can talk. What one node sends the other
//! (reports, `starting`, `shutdone`, Heartbeat messages) goes through the real codec and the
//! node's `on_liveness_event` (`node.rs`); every other output is checked (`Notify`, `Announce`) or
//! refused (`Fence`: no fence command is configured here).

use super::*;
use crate::codec::Message;
use crate::liveness::LivenessEvent;
use crate::{AutoFailback, NodeName};
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

const A: usize = 0;
const B: usize = 1;

enum Ev {
    Input(usize, ClusterInput),
}

struct Sim {
    nodes: [Cluster; 2],
    now: Instant,
    connected: bool,
    fail_start: [HashSet<usize>; 2],
    queue: VecDeque<Ev>,
    exited: [bool; 2],
    starts: [usize; 2],
    /// Restarts in place run on each node.
    restarts: [usize; 2],
    /// The `StopResources`/`StartResources` actions each node emitted (reload), in order.
    reload_ops: [Vec<Action>; 2],
    /// When false, a group held by both while connected is tolerated (split-brain tests).
    check_exclusive: bool,
    /// The notify hooks each node ran, in order.
    notified: [Vec<(GroupId, NotifyState)>; 2],
    /// The groups each node re-announced, in order.
    announced: [Vec<GroupId>; 2],
    /// Each node's order of the peer's reports, as the node keeps it.
    order: [ReportOrder; 2],
    netlog: [crate::netlog::NetLog; 2],
    /// Sequence numbers of each node's messages (Liveness numbers them on the wire).
    seq: [u64; 2],
}

const NAMES: [&str; 2] = ["node1", "node2"];

fn cfg(local: &str, peer: &str, af: AutoFailback, groups: &[(&str, &str)]) -> ClusterConfig {
    ClusterConfig {
        local: local.into(),
        peer: peer.into(),
        groups: groups
            .iter()
            .map(|(owner, key)| GroupInfo {
                key: key.to_string(),
                preferred_local: *owner == local,
                resources: vec![(*key).into()].into(),
            })
            .collect(),
        auto_failback: af,
        report_timeout: Duration::from_secs(2),
    }
}

impl Sim {
    fn new(af: AutoFailback, groups: &[(&str, &str)]) -> Self {
        let now = Instant::now();
        Self {
            nodes: [
                Cluster::new(cfg("node1", "node2", af, groups), now),
                Cluster::new(cfg("node2", "node1", af, groups), now),
            ],
            now,
            connected: true,
            fail_start: [HashSet::new(), HashSet::new()],
            queue: VecDeque::new(),
            exited: [false, false],
            starts: [0, 0],
            restarts: [0, 0],
            reload_ops: [Vec::new(), Vec::new()],
            check_exclusive: true,
            notified: [Vec::new(), Vec::new()],
            announced: [Vec::new(), Vec::new()],
            order: [ReportOrder::default(), ReportOrder::default()],
            netlog: [
                crate::netlog::NetLog::default(),
                crate::netlog::NetLog::default(),
            ],
            seq: [0, 0],
        }
    }

    /// Node `from` sends `m` to its peer: encoded, decoded, and turned into the peer's
    /// cluster input by the node's own glue.
    fn wire(&mut self, from: usize, mut m: Message) {
        let to = 1 - from;
        self.seq[from] += 1;
        m.push_str("src", NAMES[from]);
        m.push_str("seq", format!("{:x}", self.seq[from]));
        m.push_str("hg", "1");
        let bytes = crate::codec::encode_netstring(&m);
        let msg = crate::codec::decode(&bytes)
            .expect("our own message decodes")
            .msg;
        let peer = NodeName::from(NAMES[from]);
        let ev = LivenessEvent::Message {
            from: peer.clone(),
            msg,
        };
        let input = crate::node::on_liveness_event(
            ev,
            &peer,
            &mut self.order[to],
            &mut self.netlog[to],
            self.now,
        );
        let input = input.expect("every message the cluster sends means something to the peer");
        self.queue.push_back(Ev::Input(to, input));
    }

    fn input(&mut self, n: usize, i: ClusterInput) {
        self.queue.push_back(Ev::Input(n, i));
        self.run();
    }

    fn both_up(&mut self) {
        self.queue.push_back(Ev::Input(
            A,
            ClusterInput::PeerUp {
                returning_after_partition: false,
                restarted: false,
            },
        ));
        self.queue.push_back(Ev::Input(
            B,
            ClusterInput::PeerUp {
                returning_after_partition: false,
                restarted: false,
            },
        ));
        self.run();
    }

    fn run(&mut self) {
        let mut steps = 0;
        while let Some(Ev::Input(n, i)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 10_000, "no quiescence: the rules loop");
            if self.exited[n] {
                continue;
            }
            self.nodes[n].handle(self.now, i);
            self.drain(n);
            self.check();
        }
    }

    fn drain(&mut self, n: usize) {
        while let Some(a) = self.nodes[n].poll_action() {
            match a {
                Action::Start(g) => {
                    self.starts[n] += 1;
                    let ok = !self.fail_start[n].contains(&g.0);
                    self.queue.push_back(Ev::Input(
                        n,
                        ClusterInput::Outcome(OpOutcome {
                            group: g,
                            op: Op::Start,
                            ok,
                            detail: "test".into(),
                        }),
                    ));
                }
                Action::Restart { group, .. } => {
                    self.restarts[n] += 1;
                    let ok = !self.fail_start[n].contains(&group.0);
                    self.queue.push_back(Ev::Input(
                        n,
                        ClusterInput::Outcome(OpOutcome {
                            group,
                            op: Op::Restart,
                            ok,
                            detail: "test".into(),
                        }),
                    ));
                }
                Action::StopResources { group, .. } => {
                    self.reload_ops[n].push(a.clone());
                    self.queue.push_back(Ev::Input(
                        n,
                        ClusterInput::Outcome(OpOutcome {
                            group,
                            op: Op::ReloadStop,
                            ok: true,
                            detail: "test".into(),
                        }),
                    ));
                }
                Action::StartResources { group, .. } => {
                    self.reload_ops[n].push(a.clone());
                    let ok = !self.fail_start[n].contains(&group.0);
                    self.queue.push_back(Ev::Input(
                        n,
                        ClusterInput::Outcome(OpOutcome {
                            group,
                            op: Op::ReloadStart,
                            ok,
                            detail: "test: new resource failed to start".into(),
                        }),
                    ));
                }
                Action::Stop(g) => self.queue.push_back(Ev::Input(
                    n,
                    ClusterInput::Outcome(OpOutcome {
                        group: g,
                        op: Op::Stop,
                        ok: true,
                        detail: "test".into(),
                    }),
                )),
                Action::SendReport(r) if self.connected => self.wire(n, r.to_message()),
                Action::SendStarting if self.connected => {
                    self.wire(n, Message::with_type("starting"))
                }
                Action::SendShutdone if self.connected => {
                    let mut m = Message::with_type("shutdone");
                    m.push_str("st", "dead");
                    self.wire(n, m)
                }
                Action::Send(m) if self.connected => self.wire(n, m),
                // Lost in the partition.
                Action::SendReport(_)
                | Action::SendStarting
                | Action::SendShutdone
                | Action::Send(_) => {}
                Action::Exit => self.exited[n] = true,
                // The heartbeat status: no Liveness here, the peer is told by the inputs.
                Action::CommUp => {}
                Action::Fence => panic!("node {n} fences with no fence command configured"),
                Action::Notify { group, state, .. } => {
                    let st = self.nodes[n].group_states()[group.0];
                    // The same step may already move the group on (a stop after `running`).
                    let fits = match state {
                        NotifyState::Active => {
                            matches!(st, GroupState::Running | GroupState::Stopping)
                        }
                        NotifyState::Standby => {
                            matches!(st, GroupState::Stopped | GroupState::Starting)
                        }
                        // Failed, stop-failed, or unhealthy (refused while it still runs).
                        NotifyState::Fault => {
                            matches!(st, GroupState::Failed | GroupState::StopFailed)
                                || [Reason::Failed, Reason::Unhealthy, Reason::Standby]
                                    .into_iter()
                                    .any(|r| self.nodes[n].refusal(group).contains(r))
                        }
                    };
                    assert!(
                        fits,
                        "node {n}: notify {state:?} for group {group:?} in {st:?}"
                    );
                    self.notified[n].push((group, state));
                }
                Action::Announce(g) => {
                    let st = self.nodes[n].group_states()[g.0];
                    assert_eq!(st, GroupState::Running, "node {n} announces {g:?}");
                    self.announced[n].push(g);
                }
            }
        }
    }

    fn check(&self) {
        if !self.connected || !self.check_exclusive {
            return;
        }
        for g in 0..self.nodes[A].group_states().len() {
            let a = self.nodes[A].group_states()[g];
            let b = self.nodes[B].group_states()[g];
            // Starting on one side while the other is still stopping would put the VIP on two
            // nodes; a settled Running on both is the real violation.
            assert!(
                !(a == GroupState::Running && b == GroupState::Running),
                "group {g} running on both nodes"
            );
            assert!(
                !((a.is_held() && b == GroupState::Starting)
                    || (b.is_held() && a == GroupState::Starting)),
                "group {g} started while the other node still holds it: {a:?} / {b:?}"
            );
        }
    }

    /// Both nodes hear each other again after node A restarted.
    fn both_up_restarted(&mut self) {
        self.queue.push_back(Ev::Input(
            A,
            ClusterInput::PeerUp {
                returning_after_partition: false,
                restarted: false,
            },
        ));
        self.queue.push_back(Ev::Input(
            B,
            ClusterInput::PeerUp {
                returning_after_partition: false,
                restarted: true,
            },
        ));
        self.run();
    }

    fn state(&self, n: usize, g: usize) -> GroupState {
        self.nodes[n].group_states()[g]
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        for n in [A, B] {
            if !self.exited[n] {
                self.nodes[n].handle_timeout(self.now);
                self.drain(n);
            }
        }
        self.run();
    }
}

const ONE: &[(&str, &str)] = &[("node1", "IPaddr::198.18.0.100/24/eth0")];
const TWO: &[(&str, &str)] = &[
    ("node1", "IPaddr::198.18.0.100/24/eth0"),
    ("node2", "IPaddr::198.18.0.101/24/eth0"),
];

#[test]
fn both_start_each_takes_its_own_groups_without_waiting() {
    let mut s = Sim::new(AutoFailback::On, TWO);
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 1), GroupState::Running);
    assert_eq!(s.state(A, 1), GroupState::Stopped);
}

#[test]
fn nothing_is_taken_before_the_peer_is_heard_or_initdead_expires() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.advance(Duration::from_secs(60));
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert!(s.nodes[A].poll_action().is_none());
}

#[test]
fn lone_node_takes_everything_when_initdead_expires() {
    let mut s = Sim::new(AutoFailback::On, TWO);
    s.connected = false;
    s.input(B, ClusterInput::PeerDead);
    assert_eq!(s.state(B, 0), GroupState::Running);
    assert_eq!(s.state(B, 1), GroupState::Running);
}

#[test]
fn crash_moves_group_to_peer_and_failback_on_returns_it() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Running);
    // node1 crashes: it is gone from the simulation and comes back as a new instance.
    s.exited[A] = true;
    s.connected = false;
    s.input(B, ClusterInput::PeerDead);
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.nodes[A] = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), s.now);
    s.exited[A] = false;
    s.connected = true;
    s.input(
        A,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    s.input(
        B,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    );
    assert_eq!(s.state(A, 0), GroupState::Running, "failback to node1");
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn failback_off_leaves_the_group_where_it_is() {
    let mut s = Sim::new(AutoFailback::Off, ONE);
    s.both_up();
    s.exited[A] = true;
    s.connected = false;
    s.input(B, ClusterInput::PeerDead);
    s.nodes[A] = Cluster::new(cfg("node1", "node2", AutoFailback::Off, ONE), s.now);
    s.exited[A] = false;
    s.connected = true;
    s.both_up();
    assert_eq!(s.state(B, 0), GroupState::Running, "stays on node2");
    assert_eq!(s.state(A, 0), GroupState::Stopped);
}

#[test]
fn graceful_shutdown_releases_then_peer_takes_over_at_once() {
    let mut s = Sim::new(AutoFailback::On, TWO);
    s.both_up();
    s.input(A, ClusterInput::Admin(AdminCommand::Shutdown));
    assert!(s.exited[A]);
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Running);
    assert_eq!(s.state(B, 1), GroupState::Running);
    assert_eq!(s.nodes[B].peer(), &PeerState::Gone);
}

#[test]
fn shutdown_with_nothing_held_exits_at_once() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.input(A, ClusterInput::Admin(AdminCommand::Shutdown));
    assert!(s.exited[A]);
}

#[test]
fn failed_start_hands_the_group_to_the_peer() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.fail_start[A].insert(0);
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Failed);
    assert_eq!(s.state(B, 0), GroupState::Running);
}

#[test]
fn failing_everywhere_ends_stopped_on_both_without_flapping() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.fail_start[A].insert(0);
    s.fail_start[B].insert(0);
    s.both_up();
    for _ in 0..10 {
        s.advance(Duration::from_secs(5));
    }
    assert_eq!(s.state(A, 0), GroupState::Failed);
    assert_eq!(s.state(B, 0), GroupState::Failed);
    assert!(s.starts[A] + s.starts[B] <= 2, "starts: {:?}", s.starts);
}

#[test]
fn cleanup_lets_a_failed_node_take_its_group_back() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.fail_start[A].insert(0);
    s.both_up();
    s.fail_start[A].clear();
    s.input(A, ClusterInput::Admin(AdminCommand::Cleanup));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn standby_hands_over_and_takeover_brings_back() {
    let mut s = Sim::new(AutoFailback::Off, ONE);
    s.both_up();
    s.input(A, ClusterInput::Admin(AdminCommand::Standby(Scope::All)));
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.input(A, ClusterInput::Admin(AdminCommand::Takeover(Scope::All)));
    // Takeover means "this node wants them": even sticky groups come back.
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn unhealthy_group_moves_and_comes_back_when_healthy() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    let check = |ok| {
        ClusterInput::Check(CheckOutcome {
            group: GroupId(0),
            monitor: 0,
            ok,
            rule: CheckRule::failover_after(2),
            detail: "no process named apache2".into(),
        })
    };
    s.input(A, check(false));
    assert_eq!(
        s.state(A, 0),
        GroupState::Running,
        "one failure is below the threshold"
    );
    s.input(A, check(false));
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Running);
    // Stopped here, its checks fail as expected: that must not count.
    s.input(A, check(false));
    s.input(A, check(true));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn split_brain_heals_to_the_preferred_node_without_restart() {
    let mut s = Sim::new(AutoFailback::Off, ONE);
    s.both_up();
    s.connected = false;
    s.input(A, ClusterInput::PeerDead);
    s.input(B, ClusterInput::PeerDead);
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.connected = true;
    s.check_exclusive = false;
    for n in [A, B] {
        s.input(
            n,
            ClusterInput::PeerUp {
                returning_after_partition: true,
                restarted: false,
            },
        );
    }
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    // The keeper points the LAN back at itself once the other released; the other does not.
    assert_eq!(s.announced, [vec![GroupId(0)], vec![]]);
    assert_eq!(
        s.notified[B],
        [
            (GroupId(0), NotifyState::Active),
            (GroupId(0), NotifyState::Standby)
        ]
    );
}

#[test]
fn silent_peer_does_not_block_our_own_groups_forever() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.connected = false;
    s.input(
        A,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    s.advance(Duration::from_secs(3));
    assert_eq!(s.state(A, 0), GroupState::Running);
}

#[test]
fn report_round_trips_through_the_wire_message() {
    let mut s = Sim::new(AutoFailback::On, TWO);
    s.both_up();
    let r = s.nodes[A].report();
    let (back, partial) = PeerReport::from_message(&r.to_message()).expect("parses");
    assert!(!partial);
    assert_eq!(back, r);
    assert_eq!(r.rsc_hold, HoldSet::Local);
}

/// A failing check of monitor `m` on group 0 with `restarts` restarts in place per 60 s.
fn failing(m: usize, restarts: u32) -> ClusterInput {
    ClusterInput::Check(CheckOutcome {
        group: GroupId(0),
        monitor: m,
        ok: false,
        rule: CheckRule {
            failures: 1,
            restarts,
            window: Duration::from_secs(60),
            from: 1,
            weight: 0,
            rise: 1,
            everywhere: false,
        },
        detail: "no process named named".into(),
    })
}

fn passing(m: usize) -> ClusterInput {
    ClusterInput::Check(CheckOutcome {
        group: GroupId(0),
        monitor: m,
        ok: true,
        rule: CheckRule::failover_after(1),
        detail: String::new(),
    })
}

#[test]
fn restart_in_place_within_the_window_then_failover() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.input(A, failing(0, 2));
    s.advance(Duration::from_secs(10));
    s.input(A, failing(0, 2));
    assert_eq!(s.restarts[A], 2);
    assert_eq!(s.state(A, 0), GroupState::Running, "restarted, not moved");
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    // The third failure within 60 s: the budget is spent, the group moves.
    s.advance(Duration::from_secs(10));
    s.input(A, failing(0, 2));
    assert_eq!(s.restarts[A], 2);
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Running);
    // The peer does not hand it back while the failure stands, even with auto_failback on.
    s.input(B, ClusterInput::PeerStarting);
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    // The failing monitor passes again: it comes back.
    s.input(A, passing(0));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn restart_budget_refills_after_the_window() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    for _ in 0..5 {
        s.input(A, failing(0, 1));
        s.advance(Duration::from_secs(61));
    }
    assert_eq!(s.restarts[A], 5, "one restart per window, never a failover");
    assert_eq!(s.state(A, 0), GroupState::Running);
}

#[test]
fn a_failed_restart_fails_the_group_over_and_cleanup_clears_it() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.fail_start[A].insert(0);
    s.input(A, failing(0, 3));
    assert_eq!(s.restarts[A], 1);
    assert_eq!(s.state(A, 0), GroupState::Failed);
    assert_eq!(s.state(B, 0), GroupState::Running);
    // A check passing does not clear a failed start: only cleanup does.
    s.input(A, passing(0));
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.fail_start[A].clear();
    s.input(A, ClusterInput::Admin(AdminCommand::Cleanup));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn one_monitor_passing_does_not_hide_another_that_fails() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.input(A, failing(0, 0));
    assert_eq!(s.state(B, 0), GroupState::Running);
    // Another monitor of the same group passes on A: A stays refused.
    s.input(A, passing(1));
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.input(A, passing(0));
    assert_eq!(s.state(A, 0), GroupState::Running);
}

#[test]
fn start_failing_on_both_nodes_stops_everywhere_without_flapping() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.fail_start[A].insert(0);
    s.fail_start[B].insert(0);
    s.both_up();
    for _ in 0..20 {
        s.advance(Duration::from_secs(5));
        s.input(A, ClusterInput::PeerStarting);
        s.input(B, ClusterInput::PeerStarting);
    }
    assert_eq!(s.state(A, 0), GroupState::Failed);
    assert_eq!(s.state(B, 0), GroupState::Failed);
    assert_eq!(s.starts, [1, 1], "each node tried once");
}

/// Operator rules (issue 5): standby/takeover by scope, refusals, split-brain announcements.
mod ops;
mod reload;
mod weights;

/// A group whose stop failed may still run here: the peer must not start it, and a graceful
/// stop leaves without `shutdone` so the peer waits for deadtime (and fencing).
#[test]
fn failed_stop_keeps_the_group_held_and_shutdown_skips_shutdone() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Running);
    // Standby asks node1 to release; its stop fails after the driver's retries.
    s.nodes[A].handle(
        s.now,
        ClusterInput::Admin(AdminCommand::Standby(Scope::All)),
    );
    let mut stop_seen = false;
    while let Some(a) = s.nodes[A].poll_action() {
        if a == Action::Stop(GroupId(0)) {
            stop_seen = true;
        }
    }
    assert!(stop_seen);
    s.input(
        A,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::Stop,
            ok: false,
            detail: "stop failed 3 times".into(),
        }),
    );
    assert_eq!(s.state(A, 0), GroupState::StopFailed);
    assert!(
        s.nodes[A]
            .report()
            .holds("IPaddr::198.18.0.100/24/eth0", true)
    );
    assert_eq!(
        s.state(B, 0),
        GroupState::Stopped,
        "peer started on top of a failed stop"
    );
    s.nodes[A].handle(s.now, ClusterInput::Admin(AdminCommand::Shutdown));
    let actions: Vec<Action> = std::iter::from_fn(|| s.nodes[A].poll_action()).collect();
    assert!(actions.contains(&Action::Exit), "{actions:?}");
    assert!(!actions.contains(&Action::SendShutdone), "{actions:?}");
}

/// A peer that never reports: after the report deadline passes once, `poll_timeout` must
/// not keep returning it (the daemon loop would spin on a deadline in the past).
#[test]
fn a_silent_peer_leaves_no_deadline_in_the_past() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.connected = false;
    s.input(
        A,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    assert!(s.nodes[A].poll_timeout().is_some());
    s.advance(Duration::from_secs(3));
    assert_eq!(s.state(A, 0), GroupState::Running);
    if let Some(t) = s.nodes[A].poll_timeout() {
        assert!(t > s.now, "deadline {t:?} is not after now {:?}", s.now);
    }
}

/// Lab soak seed 1000, fault 536 (100 ms/500 ms): node1's web server was killed, node1
/// released the group and reported the failure; `hactl cleanup` on node1 ran at the very
/// moment node2 decided to take the group over. node1, preferred and seeing in node2's last
/// report that it held nothing, started the group again while node2 was starting it: the VIP
/// was on both nodes for 70 ms while they talked. After a cleanup, a node with a live peer
/// waits for the peer's next report before it starts what the cleanup made eligible.
#[test]
fn cleanup_racing_the_peers_takeover_never_starts_a_second_copy() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Running);
    // The monitor fails with no restart budget: node1 releases and reports it.
    s.queue.push_back(Ev::Input(A, failing(0, 0)));
    let mut steps = 0;
    while s.state(A, 0).is_held() {
        steps += 1;
        assert!(steps < 100, "node1 never released");
        let Some(Ev::Input(n, i)) = s.queue.pop_front() else {
            panic!("queue ran dry before node1 released");
        };
        s.nodes[n].handle(s.now, i);
        s.drain(n);
        s.check();
    }
    // node1's failure report is on its way to node2; the admin cleans up before node2's
    // answer (it starts the group) can arrive.
    s.queue
        .push_back(Ev::Input(A, ClusterInput::Admin(AdminCommand::Cleanup)));
    s.run();
    for _ in 0..10 {
        s.advance(Duration::from_secs(1));
    }
    let held: Vec<_> = (0..2).filter(|&n| s.state(n, 0).is_held()).collect();
    assert_eq!(held.len(), 1, "exactly one holder: {held:?}");
}

/// Lab soak seed 1002, `vip_delete` (100 ms/500 ms): node1's address was deleted, node1
/// released the group and the admin cleaned up at once; node2, whose view did not change,
/// had nothing new to report, so node1 waited out the whole report timeout (2 s) before it
/// started the group again (40 of 49 faults recovered in 2.1 s instead of 0.1 s). A peer
/// that sees a refusal lifted answers at once with its report.
#[test]
fn a_cleanup_is_answered_at_once_by_a_peer_with_nothing_new() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.fail_start[A].insert(0);
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Failed);
    assert_eq!(s.state(B, 0), GroupState::Running);
    // node2 goes into standby: it hands the group back, but node1 refuses it (failed), so
    // node2 keeps it; then it fails there too and nobody runs it.
    s.fail_start[B].insert(0);
    s.input(B, ClusterInput::Admin(AdminCommand::Standby(Scope::All)));
    s.queue.push_back(Ev::Input(B, failing(0, 0)));
    s.run();
    assert!(!s.state(B, 0).is_held(), "{:?}", s.state(B, 0));
    assert!(!s.state(A, 0).is_held());
    // The admin repairs node1 and cleans up there: node2's report does not change (it still
    // refuses, holds nothing), yet node1 must not wait for its report timeout.
    s.fail_start[A].clear();
    s.input(A, ClusterInput::Admin(AdminCommand::Cleanup));
    assert_eq!(
        s.state(A, 0),
        GroupState::Running,
        "node1 waited for a report its peer had no reason to send"
    );
}

/// A check that counts everywhere (a `link:` monitor) with a restart budget, failing on the
/// node that does not run the group: a restart in place there would start the group on a
/// second node. It makes the group refused there, never restarted.
#[test]
fn a_link_check_failing_where_the_group_does_not_run_never_restarts_it_there() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Running);
    let mut link_down = failing(0, 3);
    if let ClusterInput::Check(CheckOutcome { rule, .. }) = &mut link_down {
        rule.everywhere = true;
    }
    s.input(B, link_down);
    assert_eq!(
        s.restarts[B], 0,
        "restarted in place on the node that does not hold it"
    );
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    assert_eq!(s.state(A, 0), GroupState::Running);
}
