//! Simulator tests of the operator rules in `cluster/admin.rs`.

use super::*;

fn standby(scope: Scope) -> ClusterInput {
    ClusterInput::Admin(AdminCommand::Standby(scope))
}

fn takeover(scope: Scope) -> ClusterInput {
    ClusterInput::Admin(AdminCommand::Takeover(scope))
}

#[test]
fn scope_words_follow_hb_standby() {
    assert_eq!(Scope::parse("all"), Some(Scope::All));
    assert_eq!(Scope::parse("local"), Some(Scope::Local));
    assert_eq!(Scope::parse("foreign"), Some(Scope::Foreign));
    assert_eq!(Scope::parse("failback"), Some(Scope::Foreign));
    assert_eq!(Scope::parse("everything"), None);
}

#[test]
fn standby_local_moves_only_our_own_groups() {
    let mut s = Sim::new(AutoFailback::On, TWO);
    s.both_up();
    // node2 holds its own group 1 and node1's group 0 after node1 stands by for `local`.
    s.input(A, standby(Scope::Local));
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Running);
    assert_eq!(s.state(B, 1), GroupState::Running);
    assert!(s.nodes[A].is_standby_for(GroupId(0)));
    assert!(!s.nodes[A].is_standby_for(GroupId(1)));
}

#[test]
fn standby_stays_after_failback_on_until_takeover() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.input(A, standby(Scope::All));
    s.advance(Duration::from_secs(30));
    assert_eq!(
        s.state(B, 0),
        GroupState::Running,
        "no failback while standby"
    );
    s.input(A, takeover(Scope::All));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn takeover_foreign_takes_the_peers_groups_and_the_peer_stands_by() {
    let mut s = Sim::new(AutoFailback::On, TWO);
    s.both_up();
    s.input(A, takeover(Scope::Foreign));
    assert_eq!(
        s.state(A, 1),
        GroupState::Running,
        "node1 took node2's group"
    );
    assert_eq!(s.state(B, 1), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    assert!(s.nodes[B].is_standby_for(GroupId(1)));
    assert!(!s.nodes[B].is_standby_for(GroupId(0)));
    // The wish was acknowledged and forgotten: nothing is in transition any more.
    assert_eq!(
        s.nodes[A].admin_refusal(AdminCommand::Standby(Scope::All)),
        None
    );
    assert!(s.nodes[A].report().want.is_empty());
    // node2 takes its group back the same way.
    s.input(B, takeover(Scope::Local));
    assert_eq!(s.state(B, 1), GroupState::Running);
    assert_eq!(s.state(A, 1), GroupState::Stopped);
    assert_eq!(s.state(A, 0), GroupState::Running, "untouched");
}

#[test]
fn takeover_with_failback_off_brings_sticky_groups_here() {
    let mut s = Sim::new(AutoFailback::Off, ONE);
    s.both_up();
    s.input(A, standby(Scope::All));
    assert_eq!(s.state(B, 0), GroupState::Running);
    // Sticky (auto_failback off) would keep it on node2; an explicit takeover overrides that.
    s.input(A, takeover(Scope::Local));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn standby_is_refused_when_the_peer_is_dead() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.connected = false;
    s.input(A, ClusterInput::PeerDead);
    let why = s.nodes[A]
        .admin_refusal(AdminCommand::Standby(Scope::All))
        .expect("refused");
    assert!(why.contains("not alive"), "{why}");
    let why = s.nodes[A]
        .admin_refusal(AdminCommand::Takeover(Scope::All))
        .expect("refused");
    assert!(why.contains("not alive"), "{why}");
}

/// Standby is a handover, as Heartbeat's hb_standby: when the node that took the groups
/// dies, the standby node runs them rather than leave them unrun; takeover still lifts it.
#[test]
fn standby_node_takes_over_when_the_peer_dies_and_takeover_lifts_standby() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.input(A, standby(Scope::All));
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.connected = false;
    s.exited[B] = true;
    s.input(A, ClusterInput::PeerDead);
    assert_eq!(s.state(A, 0), GroupState::Running, "nobody else can run it");
    assert_eq!(
        s.nodes[A].admin_refusal(AdminCommand::Takeover(Scope::All)),
        None
    );
    s.input(A, takeover(Scope::All));
    assert!(!s.nodes[A].is_standby());
    assert_eq!(s.state(A, 0), GroupState::Running);
}

/// The bench's sequence: standby, takeover back, then the service dies on the taker. The
/// node that stood by for the takeover must take the group, not leave it unrun.
#[test]
fn after_a_takeover_the_peer_still_takes_the_group_when_it_fails_here() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.input(A, standby(Scope::All));
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.input(A, takeover(Scope::All));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    let fail = |_| {
        ClusterInput::Check(CheckOutcome {
            group: GroupId(0),
            monitor: 0,
            ok: false,
            rule: CheckRule::failover_after(1),
            detail: "no process named busybox".into(),
        })
    };
    for i in 0..3 {
        s.input(A, fail(i));
    }
    assert_ne!(s.state(A, 0), GroupState::Running);
    assert_eq!(
        s.state(B, 0),
        GroupState::Running,
        "the group was left unrun"
    );
    // And a later standby on B hands it back: the latest command wins.
    s.input(A, ClusterInput::Admin(AdminCommand::Cleanup));
    s.input(B, standby(Scope::All));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn admin_commands_are_refused_in_transition() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    // Feed node1 a standby without letting its stop finish: the group is `stopping`.
    s.nodes[A].handle(s.now, standby(Scope::All));
    let why = s.nodes[A]
        .admin_refusal(AdminCommand::Takeover(Scope::All))
        .expect("refused");
    assert!(why.contains("in transition"), "{why}");
    // A peer that says it is unstable counts too.
    let mut r = s.nodes[B].report();
    r.stable = false;
    // The peer still holds the group, so the fresh node1 below starts nothing itself.
    r.hold = Some(BTreeSet::from([ONE[0].1.to_string()]));
    let mut c = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), s.now);
    c.handle(
        s.now,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(s.now, ClusterInput::PeerReport(r));
    let why = c
        .admin_refusal(AdminCommand::Standby(Scope::All))
        .expect("refused");
    assert!(why.contains("in flux"), "{why}");
}

#[test]
fn split_brain_heal_re_announces_on_the_keeper_only() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.connected = false;
    s.input(A, ClusterInput::PeerDead);
    s.input(B, ClusterInput::PeerDead);
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.connected = true;
    s.check_exclusive = false;
    // Record the actions by hand: run node1 and node2 through the heal step by step.
    let heal = ClusterInput::PeerUp {
        returning_after_partition: true,
        restarted: false,
    };
    let mut announced = [0usize; 2];
    let mut pending: VecDeque<(usize, ClusterInput)> =
        VecDeque::from([(A, heal.clone()), (B, heal)]);
    let mut steps = 0;
    while let Some((n, i)) = pending.pop_front() {
        steps += 1;
        assert!(steps < 1000);
        s.nodes[n].handle(s.now, i);
        while let Some(a) = s.nodes[n].poll_action() {
            match a {
                Action::Announce(_) => announced[n] += 1,
                Action::SendReport(r) => pending.push_back((1 - n, ClusterInput::PeerReport(r))),
                Action::SendStarting => pending.push_back((1 - n, ClusterInput::PeerStarting)),
                Action::Stop(g) => pending.push_back((
                    n,
                    ClusterInput::Outcome(OpOutcome {
                        group: g,
                        op: Op::Stop,
                        ok: true,
                        detail: String::new(),
                    }),
                )),
                _ => {}
            }
        }
    }
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    assert_eq!(announced, [1, 0], "the keeper re-announces once");
}

#[test]
fn want_field_round_trips_and_is_absent_when_empty() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    let r = s.nodes[A].report();
    assert!(r.to_message().get("had_want").is_none());
    let mut r2 = r.clone();
    r2.want.insert("IPaddr::198.18.0.100/24/eth0".into());
    let (back, _) = PeerReport::from_message(&r2.to_message()).expect("parses");
    assert_eq!(back, r2);
}

fn infos(local: &str, groups: &[(&str, &str)]) -> Vec<GroupInfo> {
    groups
        .iter()
        .map(|(owner, key)| GroupInfo {
            key: key.to_string(),
            preferred_local: *owner == local,
            resources: vec![(*key).into()].into(),
        })
        .collect()
}

/// Reload both nodes with `groups` (both before either's messages arrive: the simulator's
/// exclusivity check compares the nodes group by group).
fn reload_both(s: &mut Sim, groups: &[(&str, &str)]) -> [Remap; 2] {
    let now = s.now;
    let a = s.nodes[A]
        .reconfigure(now, &infos("node1", groups), AutoFailback::On)
        .expect("reload accepted");
    let b = s.nodes[B]
        .reconfigure(now, &infos("node2", groups), AutoFailback::On)
        .expect("reload accepted");
    s.drain(A);
    s.drain(B);
    s.run();
    [a, b]
}

#[test]
fn reload_adds_a_group_without_touching_the_others() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    let starts = s.starts;
    let [ra, rb] = reload_both(&mut s, TWO);
    assert_eq!(ra.slots, vec![GroupId(0), GroupId(1)]);
    assert_eq!(ra.added, vec![GroupId(1)]);
    assert_eq!(rb.added, vec![GroupId(1)]);
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 1), GroupState::Running, "new group on its node");
    assert_eq!(s.starts[A], starts[A], "node1 started nothing again");
    assert_eq!(s.starts[B], starts[B] + 1);
}

#[test]
fn reload_removing_a_group_stops_it_and_a_later_reload_revives_its_slot() {
    let mut s = Sim::new(AutoFailback::On, TWO);
    s.both_up();
    // Only node2's group stays, now first in the file: it keeps slot 1.
    let [ra, _] = reload_both(&mut s, &TWO[1..]);
    assert_eq!(ra.slots, vec![GroupId(1)]);
    assert_eq!(ra.retired, vec![GroupId(0)]);
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(
        s.state(B, 0),
        GroupState::Stopped,
        "the peer does not take it"
    );
    assert_eq!(s.state(B, 1), GroupState::Running);
    assert!(s.nodes[A].is_retired(GroupId(0)));
    reload_both(&mut s, TWO);
    assert!(!s.nodes[A].is_retired(GroupId(0)));
    assert_eq!(s.state(A, 0), GroupState::Running);
}

#[test]
fn reload_moves_a_group_whose_preferred_node_changed() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    reload_both(&mut s, &[("node2", ONE[0].1)]);
    assert_eq!(s.state(A, 0), GroupState::Stopped);
    assert_eq!(s.state(B, 0), GroupState::Running);
}

#[test]
fn reload_waits_while_a_group_starts_or_stops() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    assert_eq!(s.nodes[A].reload_blocker(), None);
    s.nodes[A].handle(s.now, standby(Scope::All));
    let why = s.nodes[A].reload_blocker().expect("blocked");
    assert!(why.contains("stopping"), "{why}");
}

fn notes(c: &mut Cluster) -> Vec<(NotifyState, String)> {
    let mut out = Vec::new();
    while let Some(a) = c.poll_action() {
        if let Action::Notify { state, reason, .. } = a {
            out.push((state, reason));
        }
    }
    out
}

#[test]
fn notify_hooks_hear_active_standby_and_fault_with_the_moves_reason() {
    let t = Instant::now();
    let mut c = Cluster::new(cfg("node2", "node1", AutoFailback::On, ONE), t);
    c.handle(t, ClusterInput::PeerDead);
    assert!(notes(&mut c).is_empty(), "nothing until the start finished");
    let done = |op, ok| {
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op,
            ok,
            detail: "exit 1".into(),
        })
    };
    c.handle(t, done(Op::Start, true));
    assert_eq!(
        notes(&mut c),
        vec![(NotifyState::Active, "node1 is dead".to_string())]
    );
    // node1 returns and takes its group back: node2 hears `standby`.
    c.handle(
        t,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    );
    let mut r = c.report();
    r.hold = Some(BTreeSet::new());
    r.refuse = BTreeSet::new();
    c.handle(t, ClusterInput::PeerReport(r));
    c.handle(t, done(Op::Stop, true));
    assert_eq!(
        notes(&mut c),
        vec![(NotifyState::Standby, "the peer should hold it".to_string())]
    );
    // A failed start is a fault, with the failure as the reason.
    let mut c = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), t);
    c.handle(t, ClusterInput::PeerDead);
    c.handle(t, done(Op::Start, false));
    assert_eq!(
        notes(&mut c),
        vec![(NotifyState::Fault, "exit 1".to_string())]
    );
}

/// node2 with fencing on, after node1 ran the group and reported holding it.
fn fencing_node2(t: Instant) -> Cluster {
    let mut c = Cluster::new(cfg("node2", "node1", AutoFailback::On, ONE), t);
    c.set_fencing(Some(Duration::from_secs(5)));
    c.handle(
        t,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    let mut r = c.report();
    r.hold = Some(BTreeSet::from([ONE[0].1.to_string()]));
    r.rsc_hold = HoldSet::Local;
    c.handle(t, ClusterInput::PeerReport(r));
    while c.poll_action().is_some() {}
    c
}

fn actions(c: &mut Cluster) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action())
        .filter(|a| matches!(a, Action::Fence | Action::Start(_)))
        .collect()
}

#[test]
fn takeover_from_a_peer_that_died_holding_waits_for_the_fence() {
    let t = Instant::now();
    let mut c = fencing_node2(t);
    c.handle(t, ClusterInput::PeerDead);
    assert_eq!(
        actions(&mut c),
        vec![Action::Fence],
        "fence first, no start"
    );
    assert!(c.fence_pending());
    c.handle(
        t,
        ClusterInput::Fenced {
            ok: true,
            detail: String::new(),
        },
    );
    assert_eq!(actions(&mut c), vec![Action::Start(GroupId(0))]);
    assert!(!c.fence_pending());
}

#[test]
fn a_failed_fence_is_retried_after_the_pause_and_nothing_starts_meanwhile() {
    let t = Instant::now();
    let mut c = fencing_node2(t);
    c.handle(t, ClusterInput::PeerDead);
    assert_eq!(actions(&mut c), vec![Action::Fence]);
    let failed = ClusterInput::Fenced {
        ok: false,
        detail: "exit 1".into(),
    };
    c.handle(t, failed.clone());
    assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(5)));
    c.handle_timeout(t + Duration::from_secs(4));
    assert!(actions(&mut c).is_empty());
    c.handle_timeout(t + Duration::from_secs(5));
    assert_eq!(actions(&mut c), vec![Action::Fence]);
    c.handle(
        t + Duration::from_secs(6),
        ClusterInput::Fenced {
            ok: true,
            detail: String::new(),
        },
    );
    assert_eq!(actions(&mut c), vec![Action::Start(GroupId(0))]);
}

#[test]
fn no_fence_after_shutdone_or_when_the_peer_held_nothing_or_came_back() {
    let t = Instant::now();
    let mut c = fencing_node2(t);
    c.handle(t, ClusterInput::PeerShutdown);
    assert_eq!(actions(&mut c), vec![Action::Start(GroupId(0))]);

    // A peer whose last report held nothing is not fenced.
    let mut c = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), t);
    c.set_fencing(Some(Duration::from_secs(5)));
    c.handle(
        t,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    let mut r = c.report();
    r.hold = Some(BTreeSet::new());
    c.handle(t, ClusterInput::PeerReport(r));
    c.handle(t, ClusterInput::PeerDead);
    assert!(!actions(&mut c).contains(&Action::Fence));
    assert!(!c.fence_pending());

    // The peer returns while its fence runs: the fence is off and its late result ignored.
    let mut c = fencing_node2(t);
    c.handle(t, ClusterInput::PeerDead);
    assert_eq!(actions(&mut c), vec![Action::Fence]);
    c.handle(
        t,
        ClusterInput::PeerUp {
            returning_after_partition: true,
            restarted: false,
        },
    );
    c.handle(
        t,
        ClusterInput::Fenced {
            ok: true,
            detail: String::new(),
        },
    );
    assert!(!c.fence_pending());
    assert!(actions(&mut c).is_empty(), "the peer still holds it");
}

#[test]
fn without_a_fence_command_takeover_is_immediate() {
    let t = Instant::now();
    let mut c = fencing_node2(t);
    c.set_fencing(None);
    c.handle(t, ClusterInput::PeerDead);
    assert_eq!(actions(&mut c), vec![Action::Start(GroupId(0))]);
}

#[test]
fn losing_the_upstream_on_the_active_side_hands_the_groups_over() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.input(A, ClusterInput::PingCount(1));
    s.input(B, ClusterInput::PingCount(1));
    assert_eq!(s.state(A, 0), GroupState::Running);
    for n in [A, B] {
        s.nodes[n].set_ping_grace(Duration::from_millis(400));
    }
    s.input(A, ClusterInput::PingCount(0));
    assert_eq!(
        s.state(A, 0),
        GroupState::Running,
        "within the grace period"
    );
    assert_eq!(
        s.nodes[A].poll_timeout(),
        Some(s.now + Duration::from_millis(400))
    );
    s.advance(Duration::from_millis(400));
    assert_eq!(
        s.state(A, 0),
        GroupState::Stopped,
        "node1 lost its upstream"
    );
    assert_eq!(s.state(B, 0), GroupState::Running);
    // It comes back: auto_failback on returns the group to its preferred node.
    s.input(A, ClusterInput::PingCount(1));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn equal_ping_views_change_nothing() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    for n in [A, B] {
        s.nodes[n].set_ping_grace(Duration::from_millis(400));
    }
    s.input(A, ClusterInput::PingCount(2));
    s.input(B, ClusterInput::PingCount(2));
    // Both lose the upstream, node1 notices one ping interval earlier.
    s.input(A, ClusterInput::PingCount(0));
    s.advance(Duration::from_millis(200));
    s.input(B, ClusterInput::PingCount(0));
    s.advance(Duration::from_secs(5));
    assert_eq!(s.state(A, 0), GroupState::Running, "both lost it: stay");
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    assert!(s.starts[B] == 0, "node2 never started it");
}

#[test]
fn ping_counts_do_not_matter_without_a_live_peer() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    s.input(B, ClusterInput::PingCount(1));
    s.input(A, ClusterInput::PingCount(0));
    assert_eq!(s.state(B, 0), GroupState::Running);
    s.connected = false;
    s.exited[B] = true;
    s.input(A, ClusterInput::PeerDead);
    assert_eq!(
        s.state(A, 0),
        GroupState::Running,
        "a poor upstream beats nothing"
    );
    let (back, _) = PeerReport::from_message(&s.nodes[A].report().to_message()).expect("parses");
    assert_eq!(back.ping, Some(0));
}

/// Lab soak `--mixed` (seed 9, faults 5, 6, 8): had was frozen, Heartbeat took had's group
/// (its gratuitous ARPs pointed the LAN at it), then restarted itself on "returning after
/// partition" and gave everything up. had kept the group throughout and must announce it
/// again once the restarted peer reports it does not hold it, or clients stay on the peer's
/// MAC until their ARP entry expires.
#[test]
fn a_peer_that_restarts_after_taking_our_group_makes_us_announce_it() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Running);
    let hb_report = |rsc_hold| PeerReport {
        rsc_hold,
        stable: true,
        hold: None,
        refuse: BTreeSet::new(),
        want: BTreeSet::new(),
        standby: BTreeSet::new(),
        ping: None,
        prio: std::collections::BTreeMap::new(),
        info: None,
    };
    let node = &mut s.nodes[A];
    node.handle(s.now, ClusterInput::PeerReport(hb_report(HoldSet::All)));
    node.handle(
        s.now,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    );
    node.handle(s.now, ClusterInput::PeerReport(hb_report(HoldSet::None)));
    let mut announced = 0;
    while let Some(a) = node.poll_action() {
        if a == Action::Announce(GroupId(0)) {
            announced += 1;
        }
    }
    assert_eq!(announced, 1, "announced once after the peer's restart");
    assert_eq!(s.state(A, 0), GroupState::Running);
}
