//! The node's own rules, with invented instants: node1 is the `Node` under test; node2 (its
//! peer) and node3 (configured, not the peer) are real `Liveness` machines, so every message
//! the node reads was numbered and signed by one and goes through the real codec and
//! `Auth::verify` before it arrives as `Input::Verified` (or raw, as `Input::Datagram`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::AutoFailback;
use crate::auth::{Auth, AuthMethod};
use crate::cluster::{GroupInfo, GroupState, HoldSet, Op, PeerReport, PeerState, Scope};
use crate::codec::decode;
use crate::liveness::NodeStatus;

const KA: Duration = Duration::from_secs(1);
const DT: Duration = Duration::from_secs(5);
const INITDEAD: Duration = Duration::from_secs(20);
/// node1's own group.
const G0: &str = "IPaddr::198.18.0.100/24/eth0";
/// node2's own group.
const G1: &str = "IPaddr::198.18.0.101/24/eth0";

fn auth() -> Auth {
    Auth::from_keys(1, [(1, AuthMethod::Sha1, b"secret".to_vec())])
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)), 694)
}

fn live_config(local: &str, nodes: &[&str], generation: u64) -> LivenessConfig {
    let last = local.as_bytes()[local.len() - 1];
    LivenessConfig {
        local: NodeName::from(local),
        uuid: [last; 16],
        generation,
        peers: nodes.iter().map(|n| NodeName::from(*n)).collect(),
        media: vec!["eth0".into()],
        keepalive: KA,
        deadtime: DT,
        warntime: Duration::from_secs(3),
        initdead: INITDEAD,
        auth: auth(),
        unix_now_at_start: 0x6b04_de53,
        local_addrs: vec![addr(last - b'0').ip()],
        peer_floors: Vec::new(),
    }
}

fn setup(af: AutoFailback, nodes: &[&str]) -> NodeSetup {
    let group = |key: &str, mine: bool| GroupInfo {
        key: key.into(),
        preferred_local: mine,
        resources: vec![key.into()].into(),
    };
    NodeSetup {
        live: live_config("node1", nodes, 100),
        cluster: ClusterConfig {
            local: "node1".into(),
            peer: "node2".into(),
            groups: vec![group(G0, true), group(G1, false)],
            auto_failback: af,
            report_timeout: Duration::from_secs(2),
        },
        fencing: None,
        priority: None,
        failback_delay: Duration::ZERO,
        ping_grace: Duration::ZERO,
        not_released: Vec::new(),
        load: "0.00 0.00 0.00 1/99 42".into(),
    }
}

/// node1 under test, with its peer node2 (and node3 when configured) feeding it.
struct Bench {
    t0: Instant,
    now: Instant,
    node: Node,
    node2: Liveness,
    node3: Option<Liveness>,
}

impl Bench {
    fn new(af: AutoFailback) -> Self {
        Self::with_nodes(af, &["node1", "node2"])
    }

    fn with_nodes(af: AutoFailback, nodes: &[&str]) -> Self {
        let t0 = Instant::now();
        let third = nodes.contains(&"node3");
        Bench {
            t0,
            now: t0,
            node: Node::new(setup(af, nodes), t0),
            node2: Liveness::new(live_config("node2", nodes, 200), t0),
            node3: third.then(|| Liveness::new(live_config("node3", nodes, 300), t0)),
        }
    }

    fn at(&mut self, ms: u64) {
        self.now = self.t0 + Duration::from_millis(ms);
    }

    /// Everything node2 has queued, verified as the receive thread does, into node1; the
    /// node's outputs, with group operations answered at once.
    fn deliver_node2(&mut self) -> Vec<Output> {
        let bytes: Vec<Vec<u8>> = std::iter::from_fn(|| self.node2.poll_transmit())
            .map(|t| t.bytes)
            .collect();
        self.deliver(addr(2), bytes)
    }

    fn deliver(&mut self, from: SocketAddr, packets: Vec<Vec<u8>>) -> Vec<Output> {
        let mut out = Vec::new();
        for bytes in packets {
            let msg = auth().verify(&bytes).expect("a signed packet verifies");
            let r = self.node.handle(
                self.now,
                Input::Verified {
                    medium: MediumId(0),
                    from,
                    msg,
                },
            );
            assert_eq!(r, Ok(()));
            out.extend(self.drain());
        }
        out
    }

    /// node2 sends `m` (numbered and signed by its Liveness) and node1 reads it.
    fn node2_says(&mut self, m: Message) -> Vec<Output> {
        self.node2.send(self.now, m);
        self.deliver_node2()
    }

    /// node2's status reaches node1: the peer is up.
    fn peer_up(&mut self) -> Vec<Output> {
        self.deliver_node2()
    }

    /// The node's outputs until it is quiet; starts and stops succeed at once (node1's transmits
    /// are not fed back to node2: they are returned for inspection).
    fn drain(&mut self) -> Vec<Output> {
        let mut all = Vec::new();
        while let Some(o) = self.node.poll_output() {
            all.push(o.clone());
            let answer = match o {
                Output::Act(Action::Start(g)) => Some((g, Op::Start)),
                Output::Act(Action::Stop(g)) => Some((g, Op::Stop)),
                _ => None,
            };
            if let Some((group, op)) = answer {
                let r = self.node.handle(
                    self.now,
                    Input::Outcome(OpOutcome {
                        group,
                        op,
                        ok: true,
                        detail: "test".into(),
                    }),
                );
                assert_eq!(r, Ok(()));
            }
        }
        all
    }

    fn timeout(&mut self) -> Vec<Output> {
        assert_eq!(self.node.handle(self.now, Input::Timeout), Ok(()));
        self.drain()
    }

    fn admin(&mut self, cmd: AdminCommand, origin: Origin) -> Result<(), String> {
        self.node.handle(self.now, Input::Admin { cmd, origin })
    }

    fn state(&self, g: usize) -> GroupState {
        self.node.cluster().group_states()[g]
    }

    /// A full report from node2 (its point of view: G1 is its own group).
    fn report(hold: &[&str], refuse: &[&str], stable: bool) -> Message {
        let local = hold.contains(&G1);
        let foreign = hold.contains(&G0);
        PeerReport {
            rsc_hold: HoldSet::from_flags(local, foreign),
            stable,
            hold: Some(hold.iter().map(|s| s.to_string()).collect()),
            refuse: refuse.iter().map(|s| s.to_string()).collect(),
            want: Default::default(),
            standby: Default::default(),
            ping: None,
            prio: Default::default(),
            info: None,
        }
        .to_message()
    }

    /// node1 up with node2, which holds G1 and reported so: G0 runs here, G1 there.
    fn settled(af: AutoFailback) -> Self {
        let mut b = Self::new(af);
        b.peer_up();
        b.node2_says(Self::report(&[G1], &[], true));
        assert_eq!(b.state(0), GroupState::Running);
        assert_eq!(b.state(1), GroupState::Stopped);
        b
    }
}

/// The messages among `out`'s transmits, decoded.
fn sent(out: &[Output]) -> Vec<Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transmit(b) => Some(decode(b).expect("our own packet decodes").msg),
            _ => None,
        })
        .collect()
}

fn of_type(out: &[Output], t: MessageType) -> Vec<Message> {
    sent(out)
        .into_iter()
        .filter(|m| MessageType::of(m) == Some(t))
        .collect()
}

fn acts(out: &[Output]) -> Vec<Action> {
    out.iter()
        .filter_map(|o| match o {
            Output::Act(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_peer_status_makes_the_peer_up_and_comm_up_is_said_once() {
    let mut b = Bench::new(AutoFailback::On);
    assert_eq!(b.node.liveness().local_status(), NodeStatus::Up);
    let out = b.peer_up();
    assert_eq!(
        out.iter().filter(|o| **o == Output::PeerUp).count(),
        1,
        "{out:?}"
    );
    assert!(matches!(b.node.cluster().peer(), PeerState::Alive { .. }));
    let active: Vec<_> = of_type(&out, MessageType::Status)
        .into_iter()
        .filter(|m| m.get("st") == Some("active"))
        .collect();
    assert_eq!(
        active.len(),
        1,
        "comm-up: one `active` status at once: {out:?}"
    );
    assert_eq!(b.node.liveness().local_status(), NodeStatus::Active);
    // Later statuses of the peer: neither PeerUp nor a status out of the keepalive schedule.
    for ms in [1000, 2000, 3000] {
        b.at(ms);
        b.node2.handle_timeout(b.now);
        let out = b.deliver_node2();
        assert!(!out.contains(&Output::PeerUp), "{out:?}");
        assert_eq!(of_type(&out, MessageType::Status), vec![], "at {ms} ms");
    }
}

#[test]
fn a_report_of_a_peer_refusing_its_own_group_starts_it_here() {
    let mut b = Bench::settled(AutoFailback::On);
    let out = b.node2_says(Bench::report(&[], &[G1], true));
    assert!(acts(&out).contains(&Action::Start(GroupId(1))), "{out:?}");
    assert_eq!(b.state(1), GroupState::Running);
}

#[test]
fn an_older_report_arriving_late_is_ignored() {
    let mut b = Bench::settled(AutoFailback::On);
    // node2 refuses G1, then takes it back; the two reports arrive the other way round.
    b.node2.send(b.now, Bench::report(&[], &[G1], true));
    b.node2.send(b.now, Bench::report(&[G1], &[], true));
    let mut pkts: Vec<Vec<u8>> = std::iter::from_fn(|| b.node2.poll_transmit())
        .map(|t| t.bytes)
        .collect();
    assert_eq!(pkts.len(), 2);
    pkts.reverse();
    let out = b.deliver(addr(2), pkts);
    assert!(!acts(&out).contains(&Action::Start(GroupId(1))), "{out:?}");
    assert_eq!(b.state(1), GroupState::Stopped);
    assert!(
        b.node
            .cluster()
            .peer_report()
            .is_some_and(|r| r.holds(G1, true)),
        "the newer report stands"
    );
}

#[test]
fn a_malformed_resource_message_changes_nothing() {
    let mut b = Bench::settled(AutoFailback::On);
    let before = b.node.cluster().peer_report().cloned();
    let mut m = MessageType::Resource.message();
    m.push_str("rsc_hold", "everything");
    m.push_str("rtype", "full");
    m.push_str("isstable", "1");
    let out = b.node2_says(m);
    assert_eq!(acts(&out), vec![], "{out:?}");
    assert_eq!(sent(&out), vec![], "{out:?}");
    assert_eq!(b.node.cluster().peer_report().cloned(), before);
    assert_eq!(b.state(0), GroupState::Running);
    assert_eq!(b.state(1), GroupState::Stopped);
}

#[test]
fn a_message_from_a_node_that_is_not_the_peer_is_ignored() {
    let mut b = Bench::with_nodes(AutoFailback::On, &["node1", "node2", "node3"]);
    b.peer_up();
    b.node2_says(Bench::report(&[G1], &[], true));
    assert_eq!(b.state(1), GroupState::Stopped);
    let node3 = b.node3.as_mut().expect("node3 configured");
    // node3's status first (it is a configured node: Liveness takes its packets), then what
    // would make node1 take G1 if it came from node2.
    node3.send(b.now, Bench::report(&[], &[G1], true));
    node3.send(b.now, MessageType::Shutdone.message());
    let pkts: Vec<Vec<u8>> = std::iter::from_fn(|| node3.poll_transmit())
        .map(|t| t.bytes)
        .collect();
    assert_eq!(pkts.len(), 3);
    let out = b.deliver(addr(3), pkts);
    assert_eq!(acts(&out), vec![], "{out:?}");
    assert_eq!(b.state(1), GroupState::Stopped);
    assert!(matches!(b.node.cluster().peer(), PeerState::Alive { .. }));
    // The same report from node2 does it: the test would see a mapping that ignored `from`.
    let out = b.node2_says(Bench::report(&[], &[G1], true));
    assert!(acts(&out).contains(&Action::Start(GroupId(1))), "{out:?}");
}

#[test]
fn starting_is_answered_with_our_report() {
    let mut b = Bench::settled(AutoFailback::On);
    let out = b.node2_says(MessageType::Starting.message());
    let reports = of_type(&out, MessageType::Resource);
    assert_eq!(reports.len(), 1, "{out:?}");
    let (r, partial) = PeerReport::from_message(&reports[0]).expect("a report");
    assert!(!partial);
    assert!(r.holds(G0, true));
    assert!(!r.holds(G1, false));
}

#[test]
fn shutdone_makes_the_peer_gone_and_we_take_its_groups() {
    let mut b = Bench::settled(AutoFailback::On);
    let mut m = MessageType::Shutdone.message();
    m.push_str("st", "dead");
    let out = b.node2_says(m);
    assert_eq!(b.node.cluster().peer(), &PeerState::Gone);
    assert!(acts(&out).contains(&Action::Start(GroupId(1))), "{out:?}");
    assert_eq!(b.state(1), GroupState::Running);
}

/// A Heartbeat 3.0.6 peer sends `hb_takeover` for the groups it wants (its `foreign`: our
/// own G0): we offer them with the standby exchange's first step, `ask_resources me`.
#[test]
fn hb_takeover_from_a_heartbeat_peer_starts_our_standby_offer() {
    let mut b = Bench::new(AutoFailback::On);
    b.peer_up();
    // Heartbeat's report: no had extension fields.
    let mut r = MessageType::Resource.message();
    r.push_str("rsc_hold", "local");
    r.push_str("rtype", "full");
    r.push_str("isstable", "1");
    b.node2_says(r);
    assert_eq!(b.state(0), GroupState::Running);
    let mut m = MessageType::HbTakeover.message();
    m.push_str("rsc_hold", "foreign");
    let out = b.node2_says(m);
    let asks = of_type(&out, MessageType::AskResources);
    assert_eq!(asks.len(), 1, "{out:?}");
    assert_eq!(asks[0].get("info"), Some("me"));
    assert_eq!(asks[0].get("rsc_hold"), Some("local"), "our own groups");
}

#[test]
fn ask_resources_me_is_answered_other() {
    let mut b = Bench::settled(AutoFailback::On);
    // node2 offers its own groups (Heartbeat's standby, phase 1).
    let out = b.node2_says({
        let mut m = MessageType::AskResources.message();
        m.push_str("rsc_hold", "local");
        m.push_str("info", "me");
        m
    });
    let asks = of_type(&out, MessageType::AskResources);
    assert_eq!(asks.len(), 1, "{out:?}");
    assert_eq!(asks[0].get("info"), Some("other"));
}

/// `auto_failback legacy` with a peer that sends no report: we ask for our own group with
/// `ip-request` and start it on the peer's `ip-request-resp ok=OK`; the peer's own
/// `ip-request` for a group we do not know is answered `weown=no`.
#[test]
fn ip_request_and_its_response_reach_the_legacy_exchange() {
    let mut b = Bench::new(AutoFailback::Legacy);
    let out = b.peer_up();
    let asked = of_type(&out, MessageType::IpRequest);
    assert_eq!(asked.len(), 1, "{out:?}");
    assert_eq!(asked[0].get("ipaddr"), Some(G0));
    assert_eq!(
        b.state(0),
        GroupState::Stopped,
        "not before the peer answers"
    );
    let mut resp = MessageType::IpRequestResp.message();
    resp.push_str("dest", "node1");
    resp.push_str("ipaddr", G0);
    resp.push_str("weown", "no");
    resp.push_str("ok", "OK");
    let out = b.node2_says(resp);
    assert!(acts(&out).contains(&Action::Start(GroupId(0))), "{out:?}");
    assert_eq!(b.state(0), GroupState::Running);
    let mut m = MessageType::IpRequest.message();
    m.push_str("ipaddr", "IPaddr::198.18.0.200");
    let out = b.node2_says(m);
    let resp = of_type(&out, MessageType::IpRequestResp);
    assert_eq!(resp.len(), 1, "{out:?}");
    assert_eq!(resp[0].get("weown"), Some("no"));
    assert_eq!(resp[0].get("ipaddr"), Some("IPaddr::198.18.0.200"));
    assert_eq!(resp[0].get("dest"), Some("node2"));
}

#[test]
fn standby_and_takeover_are_refused_in_transition_whatever_the_origin() {
    let origins = [
        Origin::Client {
            uid: 0,
            pid: Some(4242),
        },
        Origin::Fifo,
        Origin::Signal("SIGUSR1"),
    ];
    let mut answers = Vec::new();
    for origin in origins {
        let mut b = Bench::settled(AutoFailback::On);
        // node2 says its resources are in flux: both commands are refused, with the reason.
        b.node2_says(Bench::report(&[G1], &[], false));
        for cmd in [
            AdminCommand::Standby(Scope::All),
            AdminCommand::Takeover(Scope::All),
        ] {
            let r = b.admin(cmd, origin);
            let why = r.expect_err("refused in transition");
            assert!(why.contains("in transition"), "{origin:?}: {why}");
            assert!(why.contains("node2 reports its resources in flux"), "{why}");
            assert_eq!(b.drain(), vec![], "a refused command does nothing");
            answers.push(Err(why));
        }
        // Stable again: standby is taken, and G0 is released.
        b.node2_says(Bench::report(&[G1], &[], true));
        assert_eq!(b.admin(AdminCommand::Standby(Scope::All), origin), Ok(()));
        let out = b.drain();
        assert!(
            acts(&out).contains(&Action::Stop(GroupId(0))),
            "{origin:?}: {out:?}"
        );
        assert_eq!(b.state(0), GroupState::Stopped);
        answers.push(Ok(()));
        // node2 took G0 and reports it, stable: nothing moves, a takeover is accepted.
        b.node2_says(Bench::report(&[G0, G1], &[], true));
        let r = b.admin(AdminCommand::Takeover(Scope::All), origin);
        assert_eq!(r, Ok(()));
        answers.push(r);
    }
    // The same three answers, word for word, from the control socket, the FIFO and a signal.
    let per_origin: Vec<&[Result<(), String>]> = answers.chunks(4).collect();
    assert_eq!(per_origin.len(), 3);
    assert!(
        per_origin.iter().all(|a| *a == per_origin[0]),
        "{per_origin:?}"
    );
}

#[test]
fn standby_is_refused_while_a_group_starts_here() {
    let mut b = Bench::new(AutoFailback::On);
    b.peer_up();
    // The start of G0 goes out and is not answered: G0 is starting.
    b.node2.send(b.now, Bench::report(&[G1], &[], true));
    let pkts: Vec<Vec<u8>> = std::iter::from_fn(|| b.node2.poll_transmit())
        .map(|t| t.bytes)
        .collect();
    for bytes in pkts {
        let msg = auth().verify(&bytes).expect("verifies");
        b.node
            .handle(
                b.now,
                Input::Verified {
                    medium: MediumId(0),
                    from: addr(2),
                    msg,
                },
            )
            .expect("not an admin command");
    }
    let out: Vec<Output> = std::iter::from_fn(|| b.node.poll_output()).collect();
    assert!(acts(&out).contains(&Action::Start(GroupId(0))), "{out:?}");
    assert_eq!(b.state(0), GroupState::Starting);
    let why = b
        .admin(AdminCommand::Standby(Scope::All), Origin::Fifo)
        .expect_err("refused while starting");
    assert!(why.contains(&format!("{G0} is starting here")), "{why}");
}

#[test]
fn deadtime_without_a_peer_heartbeat_starts_the_group_and_no_deadline_is_past() {
    let mut b = Bench::settled(AutoFailback::On);
    // node2 falls silent: keep node1 running on its own deadlines until the group starts.
    let mut out = Vec::new();
    let mut polls = 0;
    while b.state(1) != GroupState::Running {
        polls += 1;
        assert!(polls < 1000, "the group never started");
        let t = b.node.poll_timeout().expect("a deadline is always set");
        assert!(t >= b.now, "deadline {t:?} before now {:?}", b.now);
        b.now = t;
        out.extend(b.timeout());
        if let Some(t) = b.node.poll_timeout() {
            assert!(
                t > b.now,
                "after a timeout, deadline {t:?} is not after now {:?}",
                b.now
            );
        }
    }
    let silent = b.now - b.t0;
    println!("group started {silent:?} after the last heartbeat, {polls} timeouts");
    assert!(silent >= DT, "before deadtime: {silent:?}");
    assert!(silent < DT + KA * 2, "long after deadtime: {silent:?}");
    let dead = out
        .iter()
        .find_map(|o| match o {
            Output::PeerDead { since, not_held } => Some((*since, not_held.clone())),
            _ => None,
        })
        .expect("PeerDead");
    assert_eq!(dead.0, b.t0, "silent since its last heartbeat");
    assert_eq!(dead.1, vec![GroupId(1)], "G1's failover clock starts");
    assert!(acts(&out).contains(&Action::Start(GroupId(1))), "{out:?}");
    assert!(matches!(b.node.cluster().peer(), PeerState::Dead));
}

#[test]
fn shutdown_releases_then_sends_shutdone_then_exits() {
    let mut b = Bench::settled(AutoFailback::On);
    assert_eq!(
        b.admin(AdminCommand::Shutdown, Origin::Signal("SIGTERM")),
        Ok(())
    );
    let out = b.drain();
    let pos = |f: &dyn Fn(&Output) -> bool| out.iter().position(f);
    let stopping = pos(&|o| *o == Output::Stopping).expect("Stopping");
    let stop = pos(&|o| *o == Output::Act(Action::Stop(GroupId(0)))).expect("stop G0");
    let shutdone = pos(&|o| {
        matches!(o, Output::Transmit(bytes)
            if MessageType::of(&decode(bytes).expect("decodes").msg) == Some(MessageType::Shutdone))
    })
    .expect("shutdone sent");
    let exit = pos(&|o| *o == Output::Act(Action::Exit)).expect("exit");
    assert!(stopping < stop && stop < shutdone && stop < exit, "{out:?}");
    // The last report before `shutdone` says everything was released.
    let reports = of_type(&out[..shutdone], MessageType::Resource);
    let last = reports.last().expect("a report");
    assert_eq!(last.get("rsc_hold"), Some("none"), "{last:?}");
    // `Exit` comes out before the transmits queued in the same round (the shutdone among
    // them): the daemon drains every output before it acts on `exit`, so the packet goes
    // out; the record replay pins this order.
    println!("stopping {stopping}, stop {stop}, exit {exit}, shutdone {shutdone}");
    // A second request (another signal) is taken and changes nothing.
    assert_eq!(b.admin(AdminCommand::Shutdown, Origin::Fifo), Ok(()));
    assert_eq!(b.drain(), vec![]);
}

#[test]
fn a_raw_datagram_is_authenticated_here() {
    let mut b = Bench::new(AutoFailback::On);
    let bytes: Vec<Vec<u8>> = std::iter::from_fn(|| b.node2.poll_transmit())
        .map(|t| t.bytes)
        .collect();
    // A forged copy first (signed with another key): only a counter moves.
    let forger = Auth::from_keys(1, [(1, AuthMethod::Sha1, b"guess".to_vec())]);
    let mut m = decode(&bytes[0]).expect("decodes").msg;
    m.remove("auth");
    let forged = forger.sign(&mut m);
    let h = |b: &mut Bench, bytes: Vec<u8>| {
        b.node
            .handle(
                b.now,
                Input::Datagram {
                    medium: MediumId(0),
                    from: addr(2),
                    bytes,
                },
            )
            .expect("not an admin command");
        b.drain()
    };
    let out = h(&mut b, forged);
    assert!(!out.contains(&Output::PeerUp), "{out:?}");
    assert_eq!(b.node.cluster().peer(), &PeerState::Unknown);
    assert_eq!(b.node.liveness().snapshot(b.now).dropped["bad_auth"], 1);
    let out = h(&mut b, bytes[0].clone());
    assert!(out.contains(&Output::PeerUp), "{out:?}");
}
