//! Scripted `ip-request` exchanges with a legacy Heartbeat peer (it sends no reports and no
//! `starting`, only the messages its `req_resource` and `rc.d/ip-request` scripts write), and
//! two had nodes in legacy mode, which keep the report rules.

use std::time::{Duration, Instant};

use crate::config::AutoFailback;

use super::super::{
    Action, AdminCommand, Cluster, ClusterConfig, ClusterInput, GroupId, GroupInfo, GroupState, Op,
    OpOutcome, PeerState, Scope,
};
use super::{LegacyInput, legacy_input_from_message, request_message, response_message};

const G1: &str = "IPaddr::198.18.0.100";
const G2: &str = "IPaddr::198.18.0.101";

/// Two groups: `G1` preferred on node1, `G2` on node2.
fn cluster(local: &str, af: AutoFailback, now: Instant) -> Cluster {
    let peer = if local == "node1" { "node2" } else { "node1" };
    Cluster::new(
        ClusterConfig {
            local: local.into(),
            peer: peer.into(),
            groups: vec![
                GroupInfo {
                    key: G1.into(),
                    preferred_local: local == "node1",
                    resources: vec![G1.into()].into(),
                },
                GroupInfo {
                    key: G2.into(),
                    preferred_local: local == "node2",
                    resources: vec![G2.into()].into(),
                },
            ],
            auto_failback: af,
            report_timeout: Duration::from_secs(2),
        },
        now,
    )
}

fn actions(c: &mut Cluster) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// The ip-request messages among `acts`, as (type, ipaddr, dest, weown).
fn sent(acts: &[Action]) -> Vec<(String, String, String, String)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some((
                m.msg_type().unwrap_or("").to_string(),
                m.get("ipaddr").unwrap_or("").to_string(),
                m.get("dest").unwrap_or("").to_string(),
                m.get("weown").unwrap_or("").to_string(),
            )),
            _ => None,
        })
        .collect()
}

fn req(key: &str) -> (String, String, String, String) {
    (
        "ip-request".into(),
        key.into(),
        String::new(),
        String::new(),
    )
}

fn resp(dest: &str, key: &str, weown: &str) -> (String, String, String, String) {
    (
        "ip-request-resp".into(),
        key.into(),
        dest.into(),
        weown.into(),
    )
}

fn peer_up() -> ClusterInput {
    ClusterInput::PeerUp {
        returning_after_partition: false,
        restarted: false,
    }
}

fn outcome(g: usize, op: Op) -> ClusterInput {
    ClusterInput::Outcome(OpOutcome {
        group: GroupId(g),
        op,
        ok: true,
        detail: "test".into(),
    })
}

/// The peer's `ip-request-resp` to us, as its `rc.d/ip-request` writes it.
fn answer(to: &str, key: &str, weown: bool) -> ClusterInput {
    legacy_input_from_message(&response_message(to, key, weown)).unwrap()
}

fn asks(key: &str) -> ClusterInput {
    legacy_input_from_message(&request_message(key)).unwrap()
}

/// The legacy input a message becomes, if any.
fn parsed(m: &crate::codec::Message) -> Option<LegacyInput> {
    match legacy_input_from_message(m) {
        Some(ClusterInput::Legacy(i)) => Some(i),
        _ => None,
    }
}

fn starts(acts: &[Action]) -> Vec<usize> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Start(g) => Some(g.0),
            _ => None,
        })
        .collect()
}

fn stops(acts: &[Action]) -> Vec<usize> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Stop(g) => Some(g.0),
            _ => None,
        })
        .collect()
}

#[test]
fn messages_parse_as_heartbeats_scripts_write_them() {
    let r = response_message("node1", G1, true);
    assert_eq!(r.get("ok"), Some("OK"));
    assert_eq!(
        parsed(&r),
        Some(LegacyInput::Response {
            key: G1.into(),
            dest: "node1".into(),
            weown: true,
            ok: true,
        })
    );
    assert_eq!(
        parsed(&request_message(G2)),
        Some(LegacyInput::Request { key: G2.into() })
    );
    // No key, or a response without its addressee: malformed.
    let mut m = crate::codec::Message::with_type("ip-request");
    assert_eq!(parsed(&m), None);
    m.push_str("dest", "node1");
    assert_eq!(parsed(&m), None);
    let mut m = crate::codec::Message::with_type("ip-request-resp");
    m.push_str("ipaddr", G1);
    assert_eq!(parsed(&m), None);
}

#[test]
fn joining_node_asks_for_its_own_groups_and_starts_them_on_the_answer() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::Legacy, t0);
    c.handle(t0, peer_up());
    let acts = actions(&mut c);
    // Starting and a report (for a had peer), then the request; nothing starts yet.
    assert!(acts.contains(&Action::SendStarting));
    assert_eq!(sent(&acts), vec![req(G1)]);
    assert!(starts(&acts).is_empty());
    // The peer's report timeout does not make us take it without an answer.
    c.handle_timeout(t0 + Duration::from_millis(900));
    assert!(starts(&actions(&mut c)).is_empty());
    // Heartbeat drops requests before its own comm-up: ask again a second later.
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    c.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(sent(&actions(&mut c)), vec![req(G1)]);
    c.handle_timeout(t0 + Duration::from_secs(5));
    assert!(
        starts(&actions(&mut c)).is_empty(),
        "never without an answer"
    );
    // An answer for somebody else is not ours.
    c.handle(t0 + Duration::from_secs(5), answer("node3", G1, true));
    assert!(starts(&actions(&mut c)).is_empty());
    c.handle(t0 + Duration::from_secs(5), answer("node1", G1, true));
    assert_eq!(starts(&actions(&mut c)), vec![0]);
    c.handle(t0 + Duration::from_secs(5), outcome(0, Op::Start));
    // Answered: no more requests, no timer, and the peer's group stays with the peer.
    let acts = actions(&mut c);
    assert!(sent(&acts).is_empty());
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + Duration::from_secs(30));
    assert!(actions(&mut c).is_empty());
    assert_eq!(c.group_states()[1], GroupState::Stopped);
}

#[test]
fn holder_releases_on_request_then_answers_weown_yes() {
    let t0 = Instant::now();
    let mut c = cluster("node2", AutoFailback::Legacy, t0);
    // node1 was dead: node2 took everything.
    c.handle(t0, ClusterInput::PeerDead);
    assert_eq!(starts(&actions(&mut c)), vec![0, 1]);
    c.handle(t0, outcome(0, Op::Start));
    c.handle(t0, outcome(1, Op::Start));
    actions(&mut c);
    // node1 (Heartbeat) comes back: we keep both until it asks.
    let t1 = t0 + Duration::from_secs(10);
    c.handle(t1, peer_up());
    let acts = actions(&mut c);
    assert!(stops(&acts).is_empty());
    assert!(
        sent(&acts).is_empty(),
        "we hold our own group: nothing to ask"
    );
    c.handle_timeout(t1 + Duration::from_secs(3));
    assert!(stops(&actions(&mut c)).is_empty(), "kept until asked");
    c.handle(t1 + Duration::from_secs(3), asks(G1));
    let acts = actions(&mut c);
    assert_eq!(stops(&acts), vec![0]);
    assert!(sent(&acts).is_empty(), "the answer waits for the stop");
    c.handle(t1 + Duration::from_secs(3), outcome(0, Op::Stop));
    assert_eq!(sent(&actions(&mut c)), vec![resp("node1", G1, "yes")]);
    // Not taken back while node1 lives, and our own group stays.
    c.handle_timeout(t1 + Duration::from_secs(30));
    assert!(actions(&mut c).is_empty());
    assert_eq!(c.group_states()[0], GroupState::Stopped);
    assert_eq!(c.group_states()[1], GroupState::Running);
    // node1 dies again: take it over.
    c.handle(t1 + Duration::from_secs(40), ClusterInput::PeerDead);
    assert_eq!(starts(&actions(&mut c)), vec![0]);
}

#[test]
fn request_for_a_group_not_held_is_answered_at_once_and_a_starting_one_after_its_stop() {
    let t0 = Instant::now();
    let mut c = cluster("node2", AutoFailback::Legacy, t0);
    c.handle(t0, peer_up());
    actions(&mut c);
    c.handle(t0, asks(G1));
    assert_eq!(sent(&actions(&mut c)), vec![resp("node1", G1, "no")]);
    // An unknown key: not ours either.
    c.handle(t0, asks("IPaddr::198.18.0.200"));
    assert_eq!(
        sent(&actions(&mut c)),
        vec![resp("node1", "IPaddr::198.18.0.200", "no")]
    );
    // A group still starting is released once it runs, then answered.
    let mut c = cluster("node2", AutoFailback::Legacy, t0);
    c.handle(t0, ClusterInput::PeerDead);
    actions(&mut c);
    c.handle(t0, peer_up());
    actions(&mut c);
    c.handle(t0, asks(G1));
    assert!(sent(&actions(&mut c)).is_empty());
    c.handle(t0, outcome(0, Op::Start));
    let acts = actions(&mut c);
    assert_eq!(stops(&acts), vec![0]);
    assert!(sent(&acts).is_empty());
    c.handle(t0, outcome(0, Op::Stop));
    assert_eq!(sent(&actions(&mut c)), vec![resp("node1", G1, "yes")]);
}

#[test]
fn a_restarted_peer_voids_the_exchange_and_we_ask_again() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::Legacy, t0);
    c.handle(t0, peer_up());
    assert_eq!(sent(&actions(&mut c)), vec![req(G1)]);
    c.handle(
        t0 + Duration::from_millis(300),
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    );
    assert_eq!(sent(&actions(&mut c)), vec![req(G1)], "asked at once");
    // An answer after the peer died is void: the dead-peer rule starts it anyway.
    c.handle(t0 + Duration::from_secs(2), ClusterInput::PeerDead);
    assert_eq!(starts(&actions(&mut c)), vec![0, 1]);
}

#[test]
fn standby_and_takeover_are_refused_with_a_legacy_heartbeat_peer() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::Legacy, t0);
    c.handle(t0, peer_up());
    let why = c.admin_refusal(AdminCommand::Standby(Scope::All)).unwrap();
    assert!(
        why.starts_with("standby refused: auto_failback is legacy"),
        "{why}"
    );
    assert!(
        c.admin_refusal(AdminCommand::Takeover(Scope::All))
            .unwrap()
            .starts_with("takeover refused")
    );
    assert_eq!(c.admin_refusal(AdminCommand::Shutdown), None);
}

#[test]
fn shutdown_releases_and_says_shutdone_without_asking() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::Legacy, t0);
    c.handle(t0, peer_up());
    actions(&mut c);
    c.handle(t0, answer("node1", G1, false));
    c.handle(t0, outcome(0, Op::Start));
    actions(&mut c);
    c.handle(t0, ClusterInput::Admin(AdminCommand::Shutdown));
    let acts = actions(&mut c);
    assert_eq!(stops(&acts), vec![0]);
    c.handle(t0, outcome(0, Op::Stop));
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::SendShutdone));
    assert!(sent(&acts).is_empty());
}

/// Two had nodes in legacy mode: reports flow, the report rules move groups back to their
/// preferred node at once, and the ip-requests the joiner sends before it knows what the
/// peer is are ignored by the had peer.
#[test]
fn two_had_nodes_in_legacy_mode_fail_back_through_reports() {
    let t0 = Instant::now();
    let mut a = cluster("node1", AutoFailback::Legacy, t0);
    let mut b = cluster("node2", AutoFailback::Legacy, t0);
    // node2 alone took both.
    b.handle(t0, ClusterInput::PeerDead);
    actions(&mut b);
    b.handle(t0, outcome(0, Op::Start));
    b.handle(t0, outcome(1, Op::Start));
    actions(&mut b);
    // node1 joins; deliver messages both ways until quiet, running ops at once.
    let mut q: std::collections::VecDeque<(usize, ClusterInput)> = Default::default();
    q.push_back((0, peer_up()));
    q.push_back((
        1,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    ));
    let mut requests_seen = 0;
    let mut steps = 0;
    while let Some((n, input)) = q.pop_front() {
        steps += 1;
        assert!(steps < 1000);
        let c = if n == 0 { &mut a } else { &mut b };
        c.handle(t0, input);
        for act in actions(c) {
            match act {
                Action::Start(g) => q.push_back((n, outcome(g.0, Op::Start))),
                Action::Stop(g) => q.push_back((n, outcome(g.0, Op::Stop))),
                Action::SendReport(r) => q.push_back((1 - n, ClusterInput::PeerReport(r))),
                Action::SendStarting => q.push_back((1 - n, ClusterInput::PeerStarting)),
                Action::Send(m) => {
                    requests_seen += 1;
                    q.push_back((1 - n, legacy_input_from_message(&m).unwrap()));
                }
                _ => {}
            }
        }
        for g in 0..2 {
            let (x, y) = (a.group_states()[g], b.group_states()[g]);
            assert!(
                !((x.is_held() && y == GroupState::Starting)
                    || (y.is_held() && x == GroupState::Starting)),
                "group {g} started while the other holds it"
            );
        }
    }
    assert_eq!(requests_seen, 1, "node1's one request, unanswered by had");
    assert_eq!(
        a.group_states(),
        &[GroupState::Running, GroupState::Stopped]
    );
    assert_eq!(
        b.group_states(),
        &[GroupState::Stopped, GroupState::Running]
    );
    assert!(matches!(
        a.peer(),
        PeerState::Alive {
            report: Some(_),
            ..
        }
    ));
    // Standby works between had nodes (no refusal once the peer's report is known).
    assert_eq!(a.admin_refusal(AdminCommand::Standby(Scope::All)), None);
}

/// Heartbeat decides it is alone when our status is not processed yet at its comm-up: it
/// answers its own request (`dest` = itself) and takes the group. We let go at once instead
/// of keeping it too (found by tests/restart.rs: the VIP stayed on both nodes).
#[test]
fn peer_answering_itself_takes_the_group_and_we_release_it() {
    let t0 = Instant::now();
    let mut c = cluster("node2", AutoFailback::Legacy, t0);
    c.handle(t0, ClusterInput::PeerDead);
    c.handle(t0, outcome(0, Op::Start));
    c.handle(t0, outcome(1, Op::Start));
    actions(&mut c);
    c.handle(t0, peer_up());
    actions(&mut c);
    c.handle(t0, answer("node1", G1, true));
    let acts = actions(&mut c);
    assert_eq!(stops(&acts), vec![0]);
    assert!(sent(&acts).is_empty(), "nobody waits for an answer");
    c.handle(t0, outcome(0, Op::Stop));
    assert!(sent(&actions(&mut c)).is_empty());
    // Not taken back while the peer lives; our own group stays.
    c.handle_timeout(t0 + Duration::from_secs(10));
    assert!(actions(&mut c).is_empty());
    assert_eq!(
        c.group_states(),
        &[GroupState::Stopped, GroupState::Running]
    );
}

/// The machine alone, without a Cluster: a request for a group held here is answered only
/// once the view shows it released; an unknown key is answered `weown=no` at once; our own
/// request goes out again after `RETRY` until granted, and a grant ends it.
#[test]
fn the_exchange_machine_answers_after_release_and_retries_its_requests() {
    use super::{LegacyGroup, LegacyOut, LegacyState, LegacyView, RETRY};
    let t0 = Instant::now();
    let view = |held: [bool; 2]| LegacyView {
        local: "node1",
        peer: "node2",
        groups: vec![
            LegacyGroup {
                key: "ip1",
                preferred_local: true,
                held: held[0],
                refused: false,
            },
            LegacyGroup {
                key: "ip2",
                preferred_local: false,
                held: held[1],
                refused: false,
            },
        ],
    };
    let sends = |out: &[LegacyOut]| -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                LegacyOut::Send(m) => Some(format!(
                    "{} {} {}",
                    m.get("t").unwrap_or(""),
                    m.get("ipaddr").unwrap_or(""),
                    m.get("weown").unwrap_or("")
                )),
                LegacyOut::Note { .. } => None,
            })
            .collect()
    };
    let mut l = LegacyState::default();
    let out = l.on_input(
        LegacyInput::Request { key: "nope".into() },
        &view([false, true]),
    );
    assert_eq!(sends(&out), ["ip-request-resp nope no"]);
    let out = l.on_input(
        LegacyInput::Request { key: "ip2".into() },
        &view([false, true]),
    );
    assert!(matches!(
        &out[..],
        [LegacyOut::Note {
            group: 1,
            what: "asked for",
            ..
        }]
    ));
    assert_eq!(l.desired(1, &view([false, true]).groups[1]), Some(false));
    // Still held: no answer yet; our own group goes out as a request.
    let out = l.step(t0, &view([false, true]), true);
    assert_eq!(sends(&out), ["ip-request ip1 "]);
    assert_eq!(l.timeout(), Some(t0 + RETRY));
    assert!(sends(&l.step(t0 + RETRY / 2, &view([false, true]), true)).is_empty());
    // Released: answered; the retry of our request is due.
    let out = l.step(t0 + RETRY, &view([false, false]), true);
    assert_eq!(sends(&out), ["ip-request-resp ip2 yes", "ip-request ip1 "]);
    let grant = LegacyInput::Response {
        key: "ip1".into(),
        dest: "node1".into(),
        weown: true,
        ok: true,
    };
    let out = l.on_input(grant, &view([false, false]));
    assert!(matches!(
        &out[..],
        [LegacyOut::Note {
            group: 0,
            what: "granted",
            ..
        }]
    ));
    assert_eq!(l.desired(0, &view([false, false]).groups[0]), Some(true));
    assert!(sends(&l.step(t0 + RETRY * 2, &view([false, false]), true)).is_empty());
    assert_eq!(l.timeout(), None);
}
