//! Scripted exchanges with a Heartbeat peer: the messages it sends (as its C code sends them)
//! go in, and the actions had takes come out, step by step.

use std::time::{Duration, Instant};

use crate::config::AutoFailback;

use super::super::{
    Action, AdminCommand, Cluster, ClusterConfig, ClusterInput, GroupId, GroupInfo, GroupState,
    HoldSet, Op, OpOutcome, PeerReport, Scope,
};
use super::{AskInfo, HbInput, input_from_message};

/// One group, preferred on node1, as in the interop lab.
fn cluster(local: &str, af: AutoFailback, now: Instant) -> Cluster {
    let peer = if local == "node1" { "node2" } else { "node1" };
    Cluster::new(
        ClusterConfig {
            local: local.into(),
            peer: peer.into(),
            groups: vec![GroupInfo {
                key: "IPaddr::198.18.0.100".into(),
                preferred_local: local == "node1",
                resources: vec!["IPaddr::198.18.0.100".into()].into(),
            }],
            auto_failback: af,
            report_timeout: Duration::from_secs(2),
        },
        now,
    )
}

/// A Heartbeat full report: coarse set only, no had fields.
fn hb_report(set: HoldSet, stable: bool) -> ClusterInput {
    ClusterInput::PeerReport(PeerReport {
        rsc_hold: set,
        stable,
        hold: None,
        refuse: Default::default(),
        want: Default::default(),
        standby: Default::default(),
        ping: None,
        prio: Default::default(),
        info: None,
    })
}

fn ask(set: HoldSet, info: AskInfo) -> ClusterInput {
    ClusterInput::Heartbeat(HbInput::Ask { set, info })
}

fn actions(c: &mut Cluster) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// The `ask_resources` / `hb_takeover` messages among `acts`, as (type, rsc_hold, info).
fn sent(acts: &[Action]) -> Vec<(String, String, String)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some((
                m.msg_type().unwrap_or("").to_string(),
                m.get("rsc_hold").unwrap_or("").to_string(),
                m.get("info").unwrap_or("").to_string(),
            )),
            _ => None,
        })
        .collect()
}

fn msg(t: &str, hold: &str, info: &str) -> (String, String, String) {
    (t.into(), hold.into(), info.into())
}

fn outcome(op: Op) -> ClusterInput {
    ClusterInput::Outcome(OpOutcome {
        group: GroupId(0),
        op,
        ok: true,
        detail: "test".into(),
    })
}

const G: GroupId = GroupId(0);

/// had on node2 took node1's group while Heartbeat on node1 was dead.
fn holding_peers_group(now: Instant) -> Cluster {
    let mut c = cluster("node2", AutoFailback::On, now);
    c.handle(now, ClusterInput::PeerDead);
    assert!(actions(&mut c).contains(&Action::Start(G)));
    c.handle(now, outcome(Op::Start));
    actions(&mut c);
    assert_eq!(c.group_states()[0], GroupState::Running);
    c
}

#[test]
fn auto_failback_gives_the_group_back_through_the_standby_exchange() {
    let t0 = Instant::now();
    let mut c = holding_peers_group(t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    );
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::SendStarting));
    // Heartbeat answers `starting` with what it holds: nothing, stable.
    c.handle(t0, hb_report(HoldSet::None, true));
    let acts = actions(&mut c);
    assert!(
        !acts.contains(&Action::Stop(G)),
        "a Heartbeat peer never takes a group that is just dropped: {acts:?}"
    );
    // The group is the peer's: `foreign` from our side.
    assert_eq!(sent(&acts), vec![msg("ask_resources", "foreign", "me")]);
    c.handle(t0, ask(HoldSet::Foreign, AskInfo::Other));
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::Stop(G)), "{acts:?}");
    assert!(sent(&acts).is_empty(), "done only after the release");
    c.handle(t0, outcome(Op::Stop));
    let acts = actions(&mut c);
    assert_eq!(sent(&acts), vec![msg("ask_resources", "foreign", "done")]);
    // Heartbeat acquires, then reports holding its local groups: we stay out.
    c.handle(t0, ask(HoldSet::Foreign, AskInfo::Done));
    c.handle(t0, hb_report(HoldSet::Local, true));
    let acts = actions(&mut c);
    assert!(!acts.contains(&Action::Start(G)), "{acts:?}");
    assert_eq!(c.group_states()[0], GroupState::Stopped);
}

#[test]
fn an_unanswered_request_is_dropped_after_ten_seconds_and_made_again() {
    let t0 = Instant::now();
    let mut c = holding_peers_group(t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    );
    c.handle(t0, hb_report(HoldSet::None, true));
    assert_eq!(sent(&actions(&mut c)).len(), 1);
    let deadline = c.poll_timeout().expect("a deadline for the answer");
    assert_eq!(deadline, t0 + Duration::from_secs(10));
    c.handle_timeout(deadline);
    assert!(sent(&actions(&mut c)).is_empty(), "not at once");
    let retry = c.poll_timeout().expect("a retry deadline");
    assert_eq!(retry, deadline + Duration::from_secs(1));
    c.handle_timeout(retry);
    assert_eq!(
        sent(&actions(&mut c)),
        vec![msg("ask_resources", "foreign", "me")]
    );
    assert_eq!(c.group_states()[0], GroupState::Running, "kept meanwhile");
}

#[test]
fn nothing_is_offered_to_a_peer_in_transition() {
    let t0 = Instant::now();
    let mut c = holding_peers_group(t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    );
    c.handle(t0, hb_report(HoldSet::None, false));
    assert!(sent(&actions(&mut c)).is_empty());
    c.handle(t0, hb_report(HoldSet::None, true));
    assert_eq!(sent(&actions(&mut c)).len(), 1);
}

#[test]
fn hb_standby_on_the_peer_hands_us_its_group_and_it_stays() {
    let t0 = Instant::now();
    let mut c = cluster("node2", AutoFailback::On, t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(t0, hb_report(HoldSet::Local, true));
    assert!(sent(&actions(&mut c)).is_empty());
    // hb_standby all on node1.
    c.handle(t0, ask(HoldSet::All, AskInfo::Me));
    assert_eq!(
        sent(&actions(&mut c)),
        vec![msg("ask_resources", "all", "other")]
    );
    // It reports releasing (unstable), releases, then says done.
    c.handle(t0, hb_report(HoldSet::None, false));
    assert!(
        !actions(&mut c).contains(&Action::Start(G)),
        "not before done"
    );
    c.handle(t0, ask(HoldSet::All, AskInfo::Done));
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::Start(G)), "{acts:?}");
    assert!(sent(&acts).is_empty(), "our done comes after the start");
    c.handle(t0, outcome(Op::Start));
    let acts = actions(&mut c);
    assert_eq!(sent(&acts), vec![msg("ask_resources", "all", "done")]);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::SendReport(r) if r.stable)),
        "{acts:?}"
    );
    // Heartbeat's bits: both sides are ours now, node2's own (empty) one included.
    assert_eq!(c.report().rsc_hold, HoldSet::All);
    // The peer is stable and holds nothing: auto_failback on does not pull it back, as
    // between two Heartbeat nodes after a standby.
    c.handle(t0, hb_report(HoldSet::None, true));
    let acts = actions(&mut c);
    assert!(
        sent(&acts).is_empty() && !acts.contains(&Action::Stop(G)),
        "{acts:?}"
    );
    assert_eq!(c.group_states()[0], GroupState::Running);
}

#[test]
fn a_request_we_would_not_serve_gets_no_answer() {
    let t0 = Instant::now();
    let mut c = cluster("node2", AutoFailback::On, t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(t0, hb_report(HoldSet::Local, true));
    c.handle(t0, ClusterInput::Admin(AdminCommand::Standby(Scope::All)));
    actions(&mut c);
    c.handle(t0, ask(HoldSet::All, AskInfo::Me));
    assert!(sent(&actions(&mut c)).is_empty());
}

#[test]
fn hactl_standby_against_a_heartbeat_peer_runs_the_exchange() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::On, t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(t0, hb_report(HoldSet::Local, true));
    assert!(actions(&mut c).contains(&Action::Start(G)));
    c.handle(t0, outcome(Op::Start));
    actions(&mut c);
    c.handle(t0, ClusterInput::Admin(AdminCommand::Standby(Scope::All)));
    let acts = actions(&mut c);
    assert!(!acts.contains(&Action::Stop(G)));
    assert_eq!(sent(&acts), vec![msg("ask_resources", "local", "me")]);
    c.handle(t0, ask(HoldSet::Local, AskInfo::Other));
    assert!(actions(&mut c).contains(&Action::Stop(G)));
    c.handle(t0, outcome(Op::Stop));
    assert_eq!(
        sent(&actions(&mut c)),
        vec![msg("ask_resources", "local", "done")]
    );
}

#[test]
fn hactl_takeover_sends_hb_takeover_and_acquires_on_the_peers_standby() {
    let t0 = Instant::now();
    let mut c = cluster("node2", AutoFailback::On, t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(t0, hb_report(HoldSet::Local, true));
    actions(&mut c);
    c.handle(t0, ClusterInput::Admin(AdminCommand::Takeover(Scope::All)));
    let acts = actions(&mut c);
    assert_eq!(sent(&acts), vec![msg("hb_takeover", "all", "")]);
    assert!(
        c.admin_refusal(AdminCommand::Takeover(Scope::All))
            .is_none(),
        "no had_want left waiting for a peer that never answers it"
    );
    // The peer's rc.d/hb_takeover runs hb_standby all.
    c.handle(t0, ask(HoldSet::All, AskInfo::Me));
    assert_eq!(
        sent(&actions(&mut c)),
        vec![msg("ask_resources", "all", "other")]
    );
    c.handle(t0, hb_report(HoldSet::None, false));
    c.handle(t0, ask(HoldSet::All, AskInfo::Done));
    assert!(actions(&mut c).contains(&Action::Start(G)));
}

#[test]
fn hb_takeover_from_the_peer_makes_us_stand_by_for_the_complement() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::On, t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(t0, hb_report(HoldSet::Local, true));
    actions(&mut c);
    c.handle(t0, outcome(Op::Start));
    actions(&mut c);
    // The peer wants its foreign groups: our local ones.
    c.handle(
        t0,
        ClusterInput::Heartbeat(HbInput::Takeover(HoldSet::Foreign)),
    );
    assert_eq!(
        sent(&actions(&mut c)),
        vec![msg("ask_resources", "local", "me")]
    );
    c.handle(t0, ask(HoldSet::Local, AskInfo::Other));
    assert!(actions(&mut c).contains(&Action::Stop(G)));
    c.handle(t0, outcome(Op::Stop));
    actions(&mut c);
    // Although preferred here, the group is not taken back while the peer lives.
    c.handle(t0, ask(HoldSet::Local, AskInfo::Done));
    c.handle(t0, hb_report(HoldSet::All, true));
    let acts = actions(&mut c);
    assert!(!acts.contains(&Action::Start(G)), "{acts:?}");
    // Its death voids that: we take the group.
    c.handle(t0, ClusterInput::PeerDead);
    assert!(actions(&mut c).contains(&Action::Start(G)));
}

#[test]
fn partial_reports_are_or_ed_into_the_full_one() {
    let t0 = Instant::now();
    let mut c = cluster("node2", AutoFailback::On, t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(t0, hb_report(HoldSet::Local, true));
    let part = |s| ClusterInput::Heartbeat(HbInput::PartialReport(s));
    c.handle(t0, part(HoldSet::Foreign));
    assert_eq!(c.peer_report().map(|r| r.rsc_hold), Some(HoldSet::All));
    c.handle(t0, part(HoldSet::None));
    assert_eq!(c.peer_report().map(|r| r.rsc_hold), Some(HoldSet::None));
}

#[test]
fn a_node_without_groups_of_its_own_reports_holding_them() {
    let t0 = Instant::now();
    let c = cluster("node2", AutoFailback::On, t0);
    assert_eq!(c.report().rsc_hold, HoldSet::Local);
    let c = cluster("node1", AutoFailback::On, t0);
    assert_eq!(c.report().rsc_hold, HoldSet::None);
}

#[test]
fn between_had_nodes_no_exchange_runs() {
    let t0 = Instant::now();
    let mut c = holding_peers_group(t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: true,
        },
    );
    let mut r = PeerReport {
        rsc_hold: HoldSet::None,
        stable: true,
        hold: Some(Default::default()),
        refuse: Default::default(),
        want: Default::default(),
        standby: Default::default(),
        ping: None,
        prio: Default::default(),
        info: None,
    };
    r.refuse.clear();
    c.handle(t0, ClusterInput::PeerReport(r));
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::Stop(G)), "{acts:?}");
    assert!(sent(&acts).is_empty());
}

#[test]
fn messages_parse_as_heartbeat_writes_them() {
    use crate::codec::Message;
    let hb = |m: &Message| match input_from_message(m) {
        Some(ClusterInput::Heartbeat(i)) => Some(i),
        _ => None,
    };
    let mut m = Message::with_type("ask_resources");
    m.push_str("rsc_hold", "foreign");
    m.push_str("info", "me");
    let me = HbInput::Ask {
        set: HoldSet::Foreign,
        info: AskInfo::Me,
    };
    assert_eq!(hb(&m), Some(me));
    let mut m = Message::with_type("ask_resources");
    m.push_str("info", "done");
    let done = HbInput::Ask {
        set: HoldSet::All,
        info: AskInfo::Done,
    };
    assert_eq!(hb(&m), Some(done));
    let mut m = Message::with_type("ask_resources");
    m.push_str("rsc_hold", "foreign");
    m.push_str("info", "maybe");
    assert!(input_from_message(&m).is_none());
    let mut m = Message::with_type("hb_takeover");
    m.push_str("rsc_hold", "failback");
    assert_eq!(hb(&m), Some(HbInput::Takeover(HoldSet::All)));
    let mut m = Message::with_type("resource");
    m.push_str("rsc_hold", "foreign");
    m.push_str("info", "mach_down");
    assert_eq!(hb(&m), Some(HbInput::PartialReport(HoldSet::Foreign)));
    let mut m = Message::with_type("resource");
    m.push_str("rsc_hold", "local");
    m.push_str("rtype", "full");
    m.push_str("isstable", "1");
    assert!(matches!(
        input_from_message(&m),
        Some(ClusterInput::PeerReport(r)) if r.hold.is_none() && r.stable
    ));
}

/// had (preferred) restarts while a Heartbeat peer in `on` mode holds its group. The peer's
/// messages in the order the lab captured them: its report says `all`, it offers the group
/// back (`me`), then announces `rsc_hold=local isstable=0 info=standby` and even a stable
/// `local` before its release is over. Only its `done` may start the group here: starting on
/// either report put the VIP on both nodes for 60–380 ms.
#[test]
fn a_group_handed_back_by_heartbeat_starts_only_after_its_done() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::On, t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(t0, hb_report(HoldSet::All, true));
    c.handle(t0, hb_report(HoldSet::All, true));
    assert!(!actions(&mut c).contains(&Action::Start(G)));
    c.handle(t0, ask(HoldSet::Foreign, AskInfo::Me));
    assert_eq!(
        sent(&actions(&mut c)),
        vec![msg("ask_resources", "foreign", "other")]
    );
    let mut releasing = PeerReport {
        rsc_hold: HoldSet::Local,
        stable: false,
        hold: None,
        refuse: Default::default(),
        want: Default::default(),
        standby: Default::default(),
        ping: None,
        prio: Default::default(),
        info: Some("standby".into()),
    };
    c.handle(t0, ClusterInput::PeerReport(releasing.clone()));
    assert!(
        !actions(&mut c).contains(&Action::Start(G)),
        "an unstable report does not release the group"
    );
    releasing.stable = true;
    releasing.info = None;
    c.handle(t0, ClusterInput::PeerReport(releasing));
    assert!(
        !actions(&mut c).contains(&Action::Start(G)),
        "not before the peer's done"
    );
    c.handle(t0, ask(HoldSet::Foreign, AskInfo::Done));
    let acts = actions(&mut c);
    assert!(acts.contains(&Action::Start(G)), "{acts:?}");
    c.handle(t0, outcome(Op::Start));
    assert_eq!(
        sent(&actions(&mut c)),
        vec![msg("ask_resources", "foreign", "done")]
    );
    assert_eq!(c.group_states()[0], GroupState::Running);
}

/// A Heartbeat peer holding our group (`auto_failback off`) shuts down: it first reports
/// `none isstable=0 info=shutdown`, then releases, then sends `shutdone`. The group starts
/// here on `shutdone`, not on the report.
#[test]
fn a_heartbeat_peer_shutting_down_keeps_our_group_until_shutdone() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::Off, t0);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: false,
            restarted: false,
        },
    );
    c.handle(t0, hb_report(HoldSet::All, true));
    assert!(!actions(&mut c).contains(&Action::Start(G)));
    c.handle(
        t0,
        ClusterInput::PeerReport(PeerReport {
            rsc_hold: HoldSet::None,
            stable: false,
            hold: None,
            refuse: Default::default(),
            want: Default::default(),
            standby: Default::default(),
            ping: None,
            prio: Default::default(),
            info: Some("shutdown".into()),
        }),
    );
    assert!(!actions(&mut c).contains(&Action::Start(G)));
    c.handle(t0, ClusterInput::PeerShutdown);
    assert!(actions(&mut c).contains(&Action::Start(G)));
}

/// Lab soak `--mixed` (seed 9, 12 faults at 100 ms/500 ms, fault 9): had on node1 was frozen
/// 705 ms, Heartbeat on node2 took node1's group, then heard node1 again without restarting
/// itself; had, awake, kept its copy and Heartbeat kept its own: the address stayed on both
/// nodes for 38 s while they talked. had now asks the peer to stand by for it.
#[test]
fn a_group_both_hold_after_a_freeze_is_reclaimed_with_hb_takeover() {
    let t0 = Instant::now();
    let mut c = cluster("node1", AutoFailback::On, t0);
    c.handle(t0, ClusterInput::PeerDead);
    assert!(actions(&mut c).contains(&Action::Start(G)));
    c.handle(t0, outcome(Op::Start));
    actions(&mut c);
    c.handle(
        t0,
        ClusterInput::PeerUp {
            returning_after_partition: true,
            restarted: false,
        },
    );
    actions(&mut c);
    // Heartbeat holds both sides, stably: node1's group included.
    c.handle(t0, hb_report(HoldSet::All, true));
    let acts = actions(&mut c);
    assert!(sent(&acts).is_empty(), "not at once: {acts:?}");
    let at = c.poll_timeout().expect("a deadline to ask");
    assert!(at <= t0 + Duration::from_secs(1), "{:?}", at - t0);
    c.handle_timeout(at);
    let acts = actions(&mut c);
    // Our local group is the peer's foreign one; hb_takeover carries our point of view.
    assert_eq!(sent(&acts), vec![msg("hb_takeover", "local", "")]);
    assert!(!acts.contains(&Action::Stop(G)), "ours stays up: {acts:?}");
    // The peer's rc.d/hb_takeover runs hb_standby for it: we grant, it releases, done.
    c.handle(at, ask(HoldSet::Foreign, AskInfo::Me));
    assert_eq!(
        sent(&actions(&mut c)),
        vec![msg("ask_resources", "foreign", "other")]
    );
    c.handle(at, hb_report(HoldSet::Local, false));
    c.handle(at, ask(HoldSet::Foreign, AskInfo::Done));
    c.handle(at, hb_report(HoldSet::Local, true));
    let acts = actions(&mut c);
    assert!(!acts.contains(&Action::Stop(G)), "{acts:?}");
    assert_eq!(c.group_states()[0], GroupState::Running);
    // Nothing more to ask once the peer no longer claims it.
    if let Some(t) = c.poll_timeout() {
        c.handle_timeout(t + Duration::from_secs(2));
    }
    assert!(sent(&actions(&mut c)).is_empty());
}
