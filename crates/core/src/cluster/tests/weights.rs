//! Weighted checks (`priority.rs`) in the simulator, with seed 001 (the hospital's
//! keepalived.conf) as the worked example: node1 `priority 100` with three `vrrp_script`
//! checks (`pidof nginx`, `pidof vsftpd`, `pidof named`) of `weight 11`, node2 `priority 90`
//! with no checks.

use super::*;
use crate::codec::Message;

/// A result of weighted monitor `m` on group 0 (`fall 1`, `rise 1`).
fn weighted(m: usize, ok: bool, weight: i32) -> ClusterInput {
    ClusterInput::Check(CheckOutcome {
        group: GroupId(0),
        monitor: m,
        ok,
        rule: CheckRule {
            weight,
            ..CheckRule::failover_after(1)
        },
        detail: if ok {
            String::new()
        } else {
            "no process".into()
        },
    })
}

fn seed001(weight: i32) -> Sim {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.nodes[A].set_priority(Some(100));
    s.nodes[B].set_priority(Some(90));
    s.both_up();
    for m in 0..3 {
        s.input(A, weighted(m, true, weight));
    }
    s
}

fn holder(s: &Sim) -> &'static str {
    match (s.state(A, 0), s.state(B, 0)) {
        (GroupState::Running, GroupState::Stopped) => "node1",
        (GroupState::Stopped, GroupState::Running) => "node2",
        other => panic!("not settled: {other:?}"),
    }
}

/// Kill the services one after another on node1; return (node1's priority, holder) after each.
fn table(weight: i32) -> Vec<(u32, u32, &'static str)> {
    let mut s = seed001(weight);
    let mut rows = vec![(
        s.nodes[A]
            .effective_priority(GroupId(0))
            .expect("priorities on"),
        s.nodes[B]
            .effective_priority(GroupId(0))
            .expect("priorities on"),
        holder(&s),
    )];
    for m in 0..3 {
        s.input(A, weighted(m, false, weight));
        rows.push((
            s.nodes[A].effective_priority(GroupId(0)).expect("on"),
            s.nodes[B].effective_priority(GroupId(0)).expect("on"),
            holder(&s),
        ));
    }
    rows
}

#[test]
fn seed_001_as_written_service_deaths_never_move_the_vip() {
    // Positive weights add while the check passes: 100 + 3 × 11 = 133 with every service up.
    // Each dead service takes its 11 away, but even with all three dead node1 is at 100,
    // above node2's 90: as written, the checks cannot move the VIP (only a crash can).
    let rows = table(11);
    println!("seed 001 as written (weight 11): {rows:?}");
    assert_eq!(
        rows,
        vec![
            (133, 90, "node1"),
            (122, 90, "node1"),
            (111, 90, "node1"),
            (100, 90, "node1"),
        ]
    );
}

#[test]
fn seed_001_with_negative_weights_moves_at_the_threshold() {
    // What the seed's prose intends ("la priorité baisse"): a negative weight subtracts while
    // the check fails. At -11 the first dead service already crosses 90.
    let rows = table(-11);
    assert_eq!(
        rows,
        vec![
            (100, 90, "node1"),
            (89, 90, "node2"),
            (78, 90, "node2"),
            (67, 90, "node2")
        ]
    );
    // At -6 one dead service does not move the VIP (94 > 90); the second crosses the
    // threshold (88 < 90).
    let rows = table(-6);
    assert_eq!(
        rows,
        vec![
            (100, 90, "node1"),
            (94, 90, "node1"),
            (88, 90, "node2"),
            (82, 90, "node2")
        ]
    );
}

#[test]
fn service_back_raises_the_priority_and_the_vip_returns() {
    let mut s = seed001(-11);
    s.input(A, weighted(0, false, -11));
    assert_eq!(holder(&s), "node2");
    s.input(A, weighted(0, true, -11));
    assert_eq!(s.nodes[A].effective_priority(GroupId(0)), Some(100));
    assert_eq!(
        holder(&s),
        "node1",
        "preemption: the higher priority takes it back"
    );
}

#[test]
fn equal_priorities_go_to_the_haresources_node_and_nopreempt_sticks() {
    let mut s = seed001(-10);
    s.input(A, weighted(0, false, -10));
    assert_eq!(s.nodes[A].effective_priority(GroupId(0)), Some(90));
    assert_eq!(holder(&s), "node1", "a tie goes to the preferred node");
    // auto_failback off (nopreempt): a lower priority does not take the group back.
    let mut s = Sim::new(AutoFailback::Off, ONE);
    s.nodes[A].set_priority(Some(100));
    s.nodes[B].set_priority(Some(90));
    s.both_up();
    // As with Keepalived's nopreempt, a lower priority on the holder moves nothing either:
    // only a failure that refuses the group (weight 0), a crash or a stop does.
    s.input(A, weighted(0, false, -20));
    assert_eq!(s.nodes[A].effective_priority(GroupId(0)), Some(80));
    assert_eq!(holder(&s), "node1", "sticky: the holder keeps it");
    s.input(
        A,
        ClusterInput::Check(CheckOutcome {
            group: GroupId(0),
            monitor: 1,
            ok: false,
            rule: CheckRule::failover_after(1),
            detail: "down".into(),
        }),
    );
    assert_eq!(holder(&s), "node2", "an unweighted failure still moves it");
    s.input(A, weighted(0, true, -20));
    assert_eq!(holder(&s), "node2", "sticky: node2 keeps it");
}

#[test]
fn a_weighted_failure_on_a_dead_peer_is_no_refusal() {
    // Weights rank two willing nodes; alone, a node with a low priority still serves.
    let mut s = seed001(-50);
    for m in 0..3 {
        s.input(A, weighted(m, false, -50));
    }
    assert_eq!(holder(&s), "node2");
    s.exited[B] = true;
    s.connected = false;
    s.input(A, ClusterInput::PeerDead);
    assert_eq!(s.state(A, 0), GroupState::Running);
}

#[test]
fn failback_delay_keeps_the_group_on_the_peer_for_a_while() {
    let mut s = Sim::new(AutoFailback::On, ONE);
    s.nodes[B].set_failback_delay(Duration::from_secs(30));
    s.both_up();
    assert_eq!(
        holder(&s),
        "node1",
        "the delay is about moving back, not the first start"
    );
    s.exited[A] = true;
    s.connected = false;
    s.input(B, ClusterInput::PeerDead);
    assert_eq!(holder_b(&s), GroupState::Running);
    s.nodes[A] = Cluster::new(cfg("node1", "node2", AutoFailback::On, ONE), s.now);
    s.exited[A] = false;
    s.connected = true;
    s.both_up_restarted();
    assert_eq!(holder(&s), "node2", "held for failback_delay");
    let t = s.nodes[B]
        .poll_timeout()
        .expect("a deadline for the held failback");
    assert_eq!(t, s.now + Duration::from_secs(30));
    s.advance(Duration::from_secs(29));
    assert_eq!(holder(&s), "node2");
    s.advance(Duration::from_secs(2));
    assert_eq!(holder(&s), "node1", "moved back after the delay");
}

fn holder_b(s: &Sim) -> GroupState {
    s.state(B, 0)
}

#[test]
fn priorities_travel_in_the_report_and_bad_values_are_dropped() {
    let s = seed001(11);
    let r = s.nodes[A].report();
    let m = r.to_message();
    assert_eq!(m.get("had_prio"), Some("IPaddr::198.18.0.100/24/eth0=133"));
    let (back, _) = PeerReport::from_message(&m).expect("parses");
    assert_eq!(back, r);
    let mut m = Message::with_type("resource");
    m.push_str("rsc_hold", "none");
    m.push_str("had_prio", "a=1 b=0 c=256 =5 d=x e=255 f");
    let (r, _) = PeerReport::from_message(&m).expect("parses");
    let got: Vec<(&str, u32)> = r.prio.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(got, vec![("a", 1), ("e", 255)]);
}
