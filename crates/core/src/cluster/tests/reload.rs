//! Reload through the cluster: a changed group running here is brought to its new resource
//! list by `StopResources`/`StartResources` and their outcomes, like any start and stop.

use super::*;

const KEY: &str = "IPaddr::198.18.0.100/24/eth0";
const WEB: &str = "web::198.18.0.100";
const VIP2: &str = "IPaddr::198.18.0.101/24/eth0";
const VIP3: &str = "IPaddr::198.18.0.102/24/eth0";

fn group(local: &str, owner: &str, resources: &[&str]) -> Vec<GroupInfo> {
    vec![GroupInfo {
        key: resources[0].to_string(),
        preferred_local: owner == local,
        resources: resources.iter().map(|r| (*r).into()).collect(),
    }]
}

/// Node1 (preferred) runs the one group `before`; both nodes up and settled.
fn running(before: &[&str]) -> Sim {
    let mut s = Sim::new(AutoFailback::On, ONE);
    let now = s.now;
    for (n, local) in [(A, "node1"), (B, "node2")] {
        s.nodes[n]
            .reconfigure(now, &group(local, "node1", before), AutoFailback::On)
            .expect("reload accepted");
        s.drain(n);
    }
    s.run();
    s.both_up();
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    s.reload_ops = [Vec::new(), Vec::new()];
    s
}

/// Reload both nodes with the group `after` (node1 preferred) and let everything settle.
fn reload_both(s: &mut Sim, after: &[&str]) -> [Remap; 2] {
    let now = s.now;
    let a = s.nodes[A]
        .reconfigure(now, &group("node1", "node1", after), AutoFailback::On)
        .expect("reload accepted");
    let b = s.nodes[B]
        .reconfigure(now, &group("node2", "node1", after), AutoFailback::On)
        .expect("reload accepted");
    s.drain(A);
    s.drain(B);
    s.run();
    [a, b]
}

fn key_held_by(c: &Cluster) -> bool {
    c.report().hold.is_some_and(|h| h.contains(KEY))
}

#[test]
fn a_reload_whose_new_resource_fails_to_start_leaves_the_group_in_the_state_the_cluster_reports() {
    let mut s = running(&[KEY, WEB]);
    let starts = s.starts;
    s.fail_start[A].insert(0);
    reload_both(&mut s, &[KEY, WEB, VIP2]);
    assert_eq!(
        s.reload_ops[A],
        vec![Action::StartResources {
            group: GroupId(0),
            resources: vec![2]
        }]
    );
    // Rolled back, as any failed start: failed and refused here, and what the peer hears.
    assert_eq!(s.state(A, 0), GroupState::Failed);
    let report = s.nodes[A].report();
    assert!(report.refuse.contains(KEY), "{report:?}");
    assert!(!key_held_by(&s.nodes[A]), "{report:?}");
    assert!(
        s.nodes[A]
            .transitions()
            .any(|t| t.what == "failed" && t.reason.contains("failed to start")),
        "the failure is in the log"
    );
    // The peer took the group over with its new list.
    assert_eq!(s.state(B, 0), GroupState::Running);
    assert_eq!(s.starts[B], starts[B] + 1);
    assert_eq!(s.nodes[B].group_resources(GroupId(0)), [KEY, WEB, VIP2]);
    // Cleanup makes node1 eligible again; auto_failback brings the group home.
    s.fail_start[A].clear();
    s.input(A, ClusterInput::Admin(AdminCommand::Cleanup));
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
}

#[test]
fn reload_adding_a_vip_starts_only_it_where_the_group_runs() {
    let mut s = running(&[KEY, WEB]);
    let starts = s.starts;
    let [ra, rb] = reload_both(&mut s, &[KEY, WEB, VIP2]);
    assert_eq!(ra.changed.len(), 1);
    assert!(ra.changed[0].applied_here);
    assert_eq!(ra.changed[0].added(), vec![2]);
    assert!(ra.changed[0].removed().is_empty());
    assert!(!rb.changed[0].applied_here, "node2 does not run it");
    assert_eq!(
        s.reload_ops[A],
        vec![Action::StartResources {
            group: GroupId(0),
            resources: vec![2]
        }]
    );
    assert!(s.reload_ops[B].is_empty());
    assert_eq!(s.starts, starts, "no whole-group start anywhere");
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    assert!(key_held_by(&s.nodes[A]));
    assert!(s.nodes[A].report().stable);
}

#[test]
fn reload_removing_vips_stops_only_them_right_to_left() {
    let mut s = running(&[KEY, VIP2, WEB, VIP3]);
    let starts = s.starts;
    let [ra, _] = reload_both(&mut s, &[KEY, WEB]);
    assert_eq!(ra.changed[0].removed(), vec![3, 1]);
    assert_eq!(
        s.reload_ops[A],
        vec![Action::StopResources {
            group: GroupId(0),
            resources: vec![3, 1]
        }]
    );
    assert_eq!(s.starts, starts);
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    assert_eq!(s.nodes[A].group_resources(GroupId(0)), [KEY, WEB]);
}

#[test]
fn a_replaced_resource_is_stopped_before_its_successor_starts() {
    let mut s = running(&[KEY, VIP2, WEB]);
    let [ra, _] = reload_both(&mut s, &[KEY, VIP3, WEB]);
    assert_eq!(ra.changed[0].replaced(), vec![(1, 1)]);
    assert_eq!(
        s.reload_ops[A],
        vec![
            Action::StopResources {
                group: GroupId(0),
                resources: vec![1]
            },
            Action::StartResources {
                group: GroupId(0),
                resources: vec![1]
            },
        ]
    );
    assert_eq!(s.state(A, 0), GroupState::Running);
}

#[test]
fn a_reorder_alone_starts_and_stops_nothing() {
    let mut s = running(&[KEY, VIP2, VIP3]);
    let [ra, _] = reload_both(&mut s, &[KEY, VIP3, VIP2]);
    assert!(ra.changed[0].is_reorder());
    assert!(s.reload_ops[A].is_empty());
    assert_eq!(s.state(A, 0), GroupState::Running);
    assert_eq!(s.nodes[A].group_resources(GroupId(0)), [KEY, VIP3, VIP2]);
}

#[test]
fn while_the_change_runs_the_group_is_in_transition_and_a_second_reload_waits() {
    let t = Instant::now();
    let mut c = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), t);
    c.handle(t, ClusterInput::PeerDead);
    while c.poll_action().is_some() {}
    c.handle(
        t,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::Start,
            ok: true,
            detail: String::new(),
        }),
    );
    while c.poll_action().is_some() {}
    c.reconfigure(t, &group("node1", "node1", &[KEY, VIP2]), AutoFailback::On)
        .expect("accepted");
    let acts: Vec<Action> = std::iter::from_fn(|| c.poll_action()).collect();
    assert!(acts.contains(&Action::StartResources {
        group: GroupId(0),
        resources: vec![1]
    }));
    assert_eq!(c.group_states()[0], GroupState::Starting);
    assert!(!c.report().stable, "the peer hears a transition");
    let busy = c
        .reconfigure(t, &group("node1", "node1", &[KEY]), AutoFailback::On)
        .expect_err("refused while the change runs");
    assert_eq!(busy.doing, "starting");
    assert_eq!(
        c.group_resources(GroupId(0)),
        [KEY, VIP2],
        "nothing changed"
    );
    c.handle(
        t,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::ReloadStart,
            ok: true,
            detail: String::new(),
        }),
    );
    assert_eq!(c.group_states()[0], GroupState::Running);
    assert!(c.report().stable);
}

#[test]
fn reload_while_a_group_is_starting_is_refused_and_changes_nothing() {
    let t = Instant::now();
    let mut c = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), t);
    c.handle(t, ClusterInput::PeerDead);
    assert_eq!(c.group_states()[0], GroupState::Starting);
    let busy = c
        .reconfigure(t, &group("node1", "node1", &[KEY, VIP2]), AutoFailback::Off)
        .expect_err("refused");
    assert_eq!(busy.group, KEY);
    assert_eq!(busy.doing, "starting");
    assert!(busy.to_string().contains("retry"), "{busy}");
    assert_eq!(c.group_resources(GroupId(0)), [KEY]);
    // The start that was in flight completes on the list it started with.
    while c.poll_action().is_some() {}
    c.handle(
        t,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::Start,
            ok: true,
            detail: String::new(),
        }),
    );
    assert_eq!(c.group_states()[0], GroupState::Running);
    c.reconfigure(t, &group("node1", "node1", &[KEY, VIP2]), AutoFailback::On)
        .expect("accepted once settled");
}

#[test]
fn reload_on_the_passive_node_changes_the_list_for_its_next_start() {
    let mut s = running(&[KEY, WEB]);
    let [_, rb] = reload_both(&mut s, &[KEY, WEB, VIP2]);
    assert!(!rb.changed[0].applied_here);
    assert!(s.reload_ops[B].is_empty(), "node2 runs nothing of it");
    assert_eq!(s.state(B, 0), GroupState::Stopped);
    assert_eq!(s.nodes[B].group_resources(GroupId(0)), [KEY, WEB, VIP2]);
    // Node1 dies: node2 starts the whole group, new list and all.
    s.connected = false;
    let starts = s.starts;
    s.input(B, ClusterInput::PeerDead);
    assert_eq!(s.state(B, 0), GroupState::Running);
    assert_eq!(s.starts[B], starts[B] + 1);
    assert!(s.reload_ops[B].is_empty());
}

#[test]
fn a_failed_stop_of_a_removed_resource_holds_the_group_here() {
    let t = Instant::now();
    let mut c = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), t);
    c.reconfigure(t, &group("node1", "node1", &[KEY, VIP2]), AutoFailback::On)
        .expect("accepted");
    c.handle(t, ClusterInput::PeerDead);
    c.handle(
        t,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::Start,
            ok: true,
            detail: String::new(),
        }),
    );
    while c.poll_action().is_some() {}
    c.reconfigure(t, &group("node1", "node1", &[KEY]), AutoFailback::On)
        .expect("accepted");
    assert_eq!(c.group_states()[0], GroupState::Stopping);
    c.handle(
        t,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::ReloadStop,
            ok: false,
            detail: "IPaddr::198.18.0.101/24/eth0 failed to stop".into(),
        }),
    );
    // Something may still be up here: held, refused, and the peer must not start it.
    assert_eq!(c.group_states()[0], GroupState::StopFailed);
    let r = c.report();
    assert!(r.hold.is_some_and(|h| h.contains(KEY)));
    assert!(r.refuse.contains(KEY));
}

#[test]
fn shutdown_during_the_change_stops_the_group_after_it() {
    let t = Instant::now();
    let mut c = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), t);
    c.reconfigure(t, &group("node1", "node1", &[KEY, VIP2]), AutoFailback::On)
        .expect("accepted");
    c.handle(t, ClusterInput::PeerDead);
    c.handle(
        t,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::Start,
            ok: true,
            detail: String::new(),
        }),
    );
    while c.poll_action().is_some() {}
    c.reconfigure(t, &group("node1", "node1", &[KEY, VIP3]), AutoFailback::On)
        .expect("accepted");
    c.handle(t, ClusterInput::Admin(AdminCommand::Shutdown));
    while c.poll_action().is_some() {}
    c.handle(
        t,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::ReloadStop,
            ok: true,
            detail: String::new(),
        }),
    );
    let acts: Vec<Action> = std::iter::from_fn(|| c.poll_action()).collect();
    assert!(acts.contains(&Action::Stop(GroupId(0))), "{acts:?}");
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::StartResources { .. })),
        "{acts:?}"
    );
}

#[test]
fn a_restart_in_place_in_flight_makes_a_reload_wait() {
    let t = Instant::now();
    let mut c = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), t);
    c.handle(t, ClusterInput::PeerDead);
    c.handle(
        t,
        ClusterInput::Outcome(OpOutcome {
            group: GroupId(0),
            op: Op::Start,
            ok: true,
            detail: String::new(),
        }),
    );
    let rule = CheckRule {
        failures: 1,
        restarts: 1,
        window: Duration::from_secs(60),
        from: 0,
        weight: 0,
        rise: 1,
        everywhere: false,
    };
    c.handle(
        t,
        ClusterInput::Check(CheckOutcome {
            group: GroupId(0),
            monitor: 0,
            ok: false,
            rule,
            detail: "down".into(),
        }),
    );
    let busy = c.reload_busy().expect("busy");
    assert_eq!(busy.doing, "restarting in place");
}

#[test]
fn the_delta_matches_resources_by_their_text() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let d = GroupDelta::between(
        GroupId(0),
        &s(&[KEY, "a", "b", "a"]),
        &s(&[KEY, "a", "c", "b"]),
    );
    assert_eq!(d.kept, vec![Some(0), Some(1), None, Some(2)]);
    assert_eq!(d.removed(), vec![3], "the second `a` left");
    assert_eq!(d.added(), vec![2]);
    assert!(d.replaced().is_empty(), "`a` and `c` differ in agent");
    let d = GroupDelta::between(
        GroupId(0),
        &s(&[KEY, "IPaddr::198.18.0.9/24"]),
        &s(&[KEY, "IPaddr::198.18.0.9/25"]),
    );
    assert_eq!(d.replaced(), vec![(1, 1)]);
}
