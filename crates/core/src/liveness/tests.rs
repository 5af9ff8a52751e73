//! Rule-by-rule tests of the liveness machine, with invented instants.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::NodeName;

use super::*;
use crate::auth::{Auth, AuthMethod, DropReason};
use crate::codec::{Message, Value, decode};
use ha_logsafe::Untrusted;

const KA: Duration = Duration::from_secs(1);
const DT: Duration = Duration::from_secs(5);
const WARN: Duration = Duration::from_secs(3);
const INITDEAD: Duration = Duration::from_secs(20);
const UNIX0: u64 = 0x6b04_de53;

pub(super) fn auth(secret: &str) -> Auth {
    Auth::from_keys(1, [(1, AuthMethod::Sha1, secret.as_bytes().to_vec())])
}

pub(super) fn config(local: &str, peer: &str, generation: u64) -> LivenessConfig {
    let mut uuid = [0u8; 16];
    for (i, b) in uuid.iter_mut().enumerate() {
        *b = local.as_bytes()[local.len() - 1]
            .wrapping_mul(17)
            .wrapping_add(i as u8);
    }
    LivenessConfig {
        local: NodeName::from(local),
        uuid,
        generation,
        peers: vec![NodeName::from(local), NodeName::from(peer)],
        media: vec!["eth0".into(), "eth1".into()],
        keepalive: KA,
        deadtime: DT,
        warntime: WARN,
        initdead: INITDEAD,
        auth: auth("secret"),
        unix_now_at_start: UNIX0,
        // node1 is 198.18.0.1, node2 198.18.0.2 (see `addr`).
        local_addrs: vec![addr(local.as_bytes()[local.len() - 1] - b'0').ip()],
        peer_floors: Vec::new(),
    }
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)), 694)
}

fn n(s: &str) -> NodeName {
    NodeName::from(s)
}

fn drain_tx(l: &mut Liveness) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| l.poll_transmit())
        .map(|t| t.bytes)
        .collect()
}

fn drain_ev(l: &mut Liveness) -> Vec<LivenessEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn fields(bytes: &[u8]) -> Vec<(String, Value)> {
    decode(bytes)
        .unwrap()
        .msg
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.value.clone()))
        .collect()
}

fn msg_of(bytes: &[u8]) -> Message {
    decode(bytes).unwrap().msg
}

fn dropped(l: &Liveness, now: Instant, r: DropReason) -> u64 {
    l.snapshot(now).dropped[r.as_str()]
}

/// node1 under test, node2 as a real second machine feeding it.
struct Two {
    t0: Instant,
    a: Liveness,
    b: Liveness,
}

impl Two {
    fn new() -> Self {
        let t0 = Instant::now();
        Two {
            t0,
            a: Liveness::new(config("node1", "node2", 100), t0),
            b: Liveness::new(config("node2", "node1", 200), t0),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Delivers everything b has queued to a, on the given media.
    fn b_to_a(&mut self, now: Instant, media: &[usize]) {
        for bytes in drain_tx(&mut self.b) {
            for &m in media {
                self.a.handle_datagram(now, MediumId(m), addr(2), &bytes);
            }
        }
    }
}

#[test]
fn first_status_is_queued_at_once_field_by_field() {
    let t0 = Instant::now();
    let cfg = config("node1", "node2", 0x6b04_de54);
    let uuid = cfg.uuid;
    let mut l = Liveness::new(cfg, t0);
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    let f = fields(&tx[0]);
    let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "t", "st", "dt", "src", "srcuuid", "seq", "hg", "ts", "ld", "ttl", "auth"
        ]
    );
    let s = |v: &str| Value::Str(v.to_owned());
    assert_eq!(f[0].1, s("status"));
    assert_eq!(f[1].1, s("up"));
    assert_eq!(f[2].1, s("1388"), "5000 ms in lower-case hex, not inflated");
    assert_eq!(f[3].1, s("node1"));
    assert_eq!(f[4].1, Value::Bin(uuid.to_vec()));
    assert_eq!(f[5].1, s("1"));
    assert_eq!(f[6].1, s("6b04de54"));
    assert_eq!(f[7].1, s("6b04de53"));
    assert_eq!(f[8].1, s("n/a"));
    assert_eq!(f[9].1, s("3"));
    assert!(matches!(&f[10].1, Value::Str(a) if a.starts_with("1 ") && a.len() == 42));
    assert!(auth("secret").verify(&tx[0]).is_ok());
    assert!(decode(&tx[0]).unwrap().trailer.is_some());
    assert!(
        !names.contains(&"protocol"),
        "protocol would turn flow control on"
    );

    // Next one a keepalive later, with the new load and a later ts.
    l.set_load("0.08 0.03 0.01 1/187 2345".into());
    assert_eq!(l.poll_timeout(), Some(t0 + KA));
    l.handle_timeout(t0 + KA - Duration::from_nanos(1));
    assert!(drain_tx(&mut l).is_empty());
    l.handle_timeout(t0 + Duration::from_millis(2500));
    let m = msg_of(&drain_tx(&mut l)[0]);
    assert_eq!(m.get("seq"), Some("2"));
    assert_eq!(m.get("ts"), Some("6b04de55"));
    assert_eq!(m.get("ld"), Some("0.08 0.03 0.01 1/187 2345"));
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_millis(3500)));
}

#[test]
fn local_status_change_sends_at_once() {
    let t0 = Instant::now();
    let mut l = Liveness::new(config("node1", "node2", 1), t0);
    drain_tx(&mut l);
    let t = t0 + Duration::from_millis(300);
    l.set_local_status(t, NodeStatus::Up);
    assert!(drain_tx(&mut l).is_empty(), "no change, no packet");
    l.set_local_status(t, NodeStatus::Active);
    let m = msg_of(&drain_tx(&mut l)[0]);
    assert_eq!(m.get("st"), Some("active"));
    assert_eq!(m.get("seq"), Some("2"));
    assert_eq!(l.poll_timeout(), Some(t + KA));
}

#[test]
fn peer_up_then_dead_exactly_at_its_advertised_deadtime() {
    let mut w = Two::new();
    // node2 advertises 3 s; node1 itself uses 5 s: node2's own value rules.
    w.b = Liveness::new(
        LivenessConfig {
            deadtime: Duration::from_secs(3),
            ..config("node2", "node1", 200)
        },
        w.t0,
    );
    drain_tx(&mut w.a);
    let t1 = w.at(400);
    w.b_to_a(t1, &[0]);
    let ev = drain_ev(&mut w.a);
    assert!(ev.contains(&LivenessEvent::PeerUp {
        node: n("node2"),
        status: NodeStatus::Up,
        returning_after_partition: false,
        restarted: false
    }));
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Up);
    let death = t1 + Duration::from_secs(3);
    // Drive by poll_timeout alone: the machine must wake exactly at the death.
    let mut now = t1;
    let mut woke_at_death = false;
    while now < death {
        now = w.a.poll_timeout().unwrap();
        assert!(now <= death, "overslept the deadline");
        woke_at_death |= now == death;
        let before = now < death;
        w.a.handle_timeout(now);
        let ev = drain_ev(&mut w.a);
        let dead = ev
            .iter()
            .any(|e| matches!(e, LivenessEvent::PeerDead { .. }));
        assert_eq!(dead, !before, "dead exactly at {death:?}, not at {now:?}");
    }
    assert!(woke_at_death);
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Dead);
    let snap = w.a.snapshot(death);
    assert_eq!(snap.peers[0].status, "dead");
    assert_eq!(snap.peers[0].deadtime_ms, 3000);
    assert_eq!(snap.peers[0].last_heard_ms, Some(3000));
}

#[test]
fn initdead_applies_before_first_packet() {
    let t0 = Instant::now();
    let mut l = Liveness::new(config("node1", "node2", 1), t0);
    let now = loop {
        let now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
        let ev = drain_ev(&mut l);
        if !ev.is_empty() {
            assert_eq!(
                ev,
                vec![LivenessEvent::PeerDead {
                    node: n("node2"),
                    never_heard: true
                }]
            );
            break now;
        }
        assert!(now < t0 + INITDEAD);
    };
    assert_eq!(now, t0 + INITDEAD);
    assert_eq!(l.peer_status(&n("node2")), NodeStatus::Dead);
    // Heard later: an ordinary first contact, not a partition.
    let mut b = Liveness::new(config("node2", "node1", 7), now);
    for bytes in drain_tx(&mut b) {
        l.handle_datagram(now, MediumId(0), addr(2), &bytes);
    }
    assert!(drain_ev(&mut l).contains(&LivenessEvent::PeerUp {
        node: n("node2"),
        status: NodeStatus::Up,
        returning_after_partition: false,
        restarted: false
    }));
}

#[test]
fn duplicates_over_two_media_are_absorbed_but_refresh_each_link() {
    let mut w = Two::new();
    let t = w.at(10);
    w.b_to_a(t, &[0, 1]);
    let ev = drain_ev(&mut w.a);
    let ups = ev
        .iter()
        .filter(|e| matches!(e, LivenessEvent::PeerUp { .. }))
        .count();
    assert_eq!(ups, 1);
    for link in ["eth0", "eth1"] {
        assert!(ev.contains(&LivenessEvent::LinkUp {
            node: n("node2"),
            link: link.into()
        }));
    }
    assert_eq!(dropped(&w.a, t, DropReason::Duplicate), 1);
    let snap = w.a.snapshot(t + Duration::from_millis(7));
    let links: Vec<(&str, &str, Option<u64>)> = snap.peers[0]
        .links
        .iter()
        .map(|l| (l.name.as_str(), l.status.as_str(), l.last_heard_ms))
        .collect();
    assert_eq!(links, [("eth0", "up", Some(7)), ("eth1", "up", Some(7))]);
}

#[test]
fn link_dies_while_peer_lives_on_the_other_link() {
    let mut w = Two::new();
    let t1 = w.at(0);
    w.b_to_a(t1, &[0, 1]);
    drain_ev(&mut w.a);
    // eth1 goes silent; eth0 keeps carrying statuses every second.
    let mut down_at = None;
    for s in 1..=12u64 {
        let now = w.at(s * 1000);
        w.a.handle_timeout(now);
        w.b.handle_timeout(now);
        w.b_to_a(now, &[0]);
        for e in drain_ev(&mut w.a) {
            match e {
                LivenessEvent::LinkDown { node, link } => {
                    assert_eq!((node.as_str(), link.as_str()), ("node2", "eth1"));
                    down_at = Some(now);
                }
                LivenessEvent::PeerDead { .. } => panic!("peer alive on eth0"),
                _ => {}
            }
        }
        // Deadline exactness for the link too.
        if s == 4 {
            assert_eq!(w.a.poll_timeout(), Some(t1 + DT));
        }
    }
    assert_eq!(down_at, Some(w.at(5000)));
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Up);
    // eth1 comes back.
    let now = w.at(12_500);
    w.b.set_local_status(now, NodeStatus::Active);
    w.b_to_a(now, &[1]);
    let ev = drain_ev(&mut w.a);
    assert!(ev.contains(&LivenessEvent::LinkUp {
        node: n("node2"),
        link: "eth1".into()
    }));
    assert!(ev.contains(&LivenessEvent::PeerStatus {
        node: n("node2"),
        status: NodeStatus::Active
    }));
}

#[test]
fn every_failed_packet_is_counted_and_reported_with_its_claim_escaped() {
    let t0 = Instant::now();
    let mut a = Liveness::new(config("node1", "node2", 1), t0);
    let mut b = Liveness::new(
        LivenessConfig {
            auth: auth("other"),
            ..config("node2", "node1", 2)
        },
        t0,
    );
    for s in 0..3u64 {
        let now = t0 + Duration::from_secs(s);
        b.handle_timeout(now);
        for bytes in drain_tx(&mut b) {
            a.handle_datagram(now, MediumId(0), addr(2), &bytes);
        }
    }
    // One event per packet: how many become log lines is the daemon's limiter's business.
    let ev = drain_ev(&mut a);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert!(ev.iter().all(|e| *e
        == LivenessEvent::AuthFailed {
            addr: addr(2),
            claimed_src: Some(Untrusted::new("node2")),
            reason: DropReason::BadAuth
        }));
    assert_eq!(dropped(&a, t0, DropReason::BadAuth), 3);
    assert_eq!(a.peer_status(&n("node2")), NodeStatus::Init);
    a.handle_datagram(t0, MediumId(0), addr(3), b"hello");
    assert_eq!(
        drain_ev(&mut a),
        vec![LivenessEvent::AuthFailed {
            addr: addr(3),
            claimed_src: None,
            reason: DropReason::Malformed
        }]
    );
    // A forged claim cannot carry a line break into the log.
    a.handle_datagram(t0, MediumId(0), addr(3), b"###\n12:(0)src=x\ry z,%%%\n");
    match drain_ev(&mut a).as_slice() {
        [
            LivenessEvent::AuthFailed {
                claimed_src: Some(c),
                ..
            },
        ] => assert_eq!(c.as_str(), "x\\ry z"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn own_packets_are_ignored_and_strangers_dropped() {
    let t0 = Instant::now();
    let mut a = Liveness::new(config("node1", "node2", 1), t0);
    for bytes in drain_tx(&mut a) {
        a.handle_datagram(t0, MediumId(0), addr(1), &bytes);
    }
    assert!(drain_ev(&mut a).is_empty());
    assert!(a.snapshot(t0).dropped.values().all(|&c| c == 0));
    let mut c = Liveness::new(config("node3", "node1", 1), t0);
    for bytes in drain_tx(&mut c) {
        a.handle_datagram(t0, MediumId(0), addr(3), &bytes);
    }
    assert!(drain_ev(&mut a).is_empty());
    assert_eq!(dropped(&a, t0, DropReason::UnknownNode), 1);
}

#[test]
fn a_peer_with_our_uuid_is_reported_once() {
    let t0 = Instant::now();
    let mut a = Liveness::new(config("node1", "node2", 1), t0);
    let mut cfg = config("node2", "node1", 1);
    cfg.uuid = config("node1", "node2", 1).uuid;
    let mut b = Liveness::new(cfg, t0);
    for _ in 0..3 {
        for bytes in drain_tx(&mut b) {
            a.handle_datagram(t0, MediumId(0), addr(2), &bytes);
        }
        b.set_local_status(t0, NodeStatus::Active);
    }
    let same: Vec<_> = drain_ev(&mut a)
        .into_iter()
        .filter(|e| matches!(e, LivenessEvent::SameUuid { node } if *node == n("node2")))
        .collect();
    assert_eq!(same.len(), 1);
}

/// Signs a message as node2 would, with explicit control fields.
fn forged(t: &str, seq: Option<u64>, hg: u64, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut m = Message::with_type(t);
    for (k, v) in extra {
        m.push_str(k, *v);
    }
    m.push_str("src", "node2");
    if let Some(s) = seq {
        m.push_str("seq", format!("{s:x}"));
    }
    m.push_str("hg", format!("{hg:x}"));
    auth("secret").sign(&mut m)
}

#[test]
fn older_generation_is_a_replay() {
    let mut w = Two::new();
    let t = w.at(0);
    w.b_to_a(t, &[0]);
    drain_ev(&mut w.a);
    w.a.handle_datagram(
        t,
        MediumId(0),
        addr(2),
        &forged("status", Some(50), 199, &[("st", "active")]),
    );
    w.a.handle_datagram(
        t,
        MediumId(0),
        addr(2),
        &forged("resource", Some(51), 199, &[]),
    );
    w.a.handle_datagram(
        t,
        MediumId(0),
        addr(2),
        &forged("NS_ackmsg", None, 199, &[]),
    );
    assert!(drain_ev(&mut w.a).is_empty());
    assert_eq!(dropped(&w.a, t, DropReason::Replay), 3);
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Up);
    // No seq at all.
    w.a.handle_datagram(t, MediumId(0), addr(2), &forged("resource", None, 200, &[]));
    w.a.handle_datagram(
        t,
        MediumId(0),
        addr(2),
        &forged("resource", Some(0), 200, &[]),
    );
    assert_eq!(dropped(&w.a, t, DropReason::BadSeq), 2);
}

#[test]
fn newer_generation_while_alive_is_a_restart() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0]);
    w.b.handle_timeout(w.at(1000));
    w.b_to_a(w.at(1000), &[0]);
    drain_ev(&mut w.a);
    // node2 restarts: generation 201, its seqs begin at 1 again.
    w.b = Liveness::new(config("node2", "node1", 201), w.at(1500));
    w.b_to_a(w.at(1500), &[0]);
    assert_eq!(
        drain_ev(&mut w.a),
        vec![LivenessEvent::PeerRestarted { node: n("node2") }]
    );
    let mut m = Message::with_type("starting");
    m.push_str("x", "1");
    w.b.send(w.at(1600), m);
    w.b_to_a(w.at(1600), &[0]);
    assert!(matches!(
        drain_ev(&mut w.a).as_slice(),
        [LivenessEvent::Message { from, msg }] if from.as_str() == "node2" && msg.get("seq") == Some("2")
    ));
    assert_eq!(w.a.snapshot(w.at(1600)).peers[0].generation, Some(201));
}

#[test]
fn dead_peer_heard_again_same_generation_is_returning_after_partition() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0, 1]);
    let stale = {
        w.b.handle_timeout(w.at(1000));
        drain_tx(&mut w.b).remove(0)
    };
    w.a.handle_datagram(w.at(1000), MediumId(0), addr(2), &stale);
    drain_ev(&mut w.a);
    // Partition: node2 keeps sending, nothing arrives.
    for s in 2..=8u64 {
        let now = w.at(s * 1000);
        w.b.handle_timeout(now);
        drain_tx(&mut w.b);
        w.a.handle_timeout(now);
    }
    let ev = drain_ev(&mut w.a);
    assert!(ev.contains(&LivenessEvent::PeerDead {
        node: n("node2"),
        never_heard: false
    }));
    // A replayed old status must not revive it.
    w.a.handle_datagram(w.at(8100), MediumId(0), addr(2), &stale);
    assert!(drain_ev(&mut w.a).is_empty());
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Dead);
    // Heal.
    let now = w.at(9000);
    w.b.handle_timeout(now);
    w.b_to_a(now, &[0]);
    let ev = drain_ev(&mut w.a);
    assert!(ev.contains(&LivenessEvent::PeerUp {
        node: n("node2"),
        status: NodeStatus::Up,
        returning_after_partition: true,
        restarted: false
    }));
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Up);
    // And no retransmission requests for the partition's lost seqs.
    let t = w.at(9000 + 2000);
    w.a.handle_timeout(t);
    assert!(
        drain_tx(&mut w.a)
            .iter()
            .all(|b| msg_of(b).msg_type() == Some("status"))
    );
}

#[test]
fn late_heartbeat_is_reported_with_its_interval() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0]);
    w.b.handle_timeout(w.at(3000));
    w.b_to_a(w.at(3000), &[0]);
    assert!(
        drain_ev(&mut w.a)
            .iter()
            .all(|e| !matches!(e, LivenessEvent::Late { .. }))
    );
    w.b.handle_timeout(w.at(6001));
    w.b_to_a(w.at(6001), &[0]);
    assert_eq!(
        drain_ev(&mut w.a),
        vec![LivenessEvent::Late {
            node: n("node2"),
            interval: Duration::from_millis(3001)
        }]
    );
    assert_eq!(w.a.snapshot(w.at(6001)).late, 1);
}

#[test]
fn reqnodes_is_answered_with_repnodes() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0]);
    drain_tx(&mut w.a);
    let mut req = Message::with_type("reqnodes");
    req.push_str("dest", "node1");
    w.b.send(w.at(100), req);
    w.b_to_a(w.at(100), &[0]);
    let tx = drain_tx(&mut w.a);
    assert_eq!(tx.len(), 1);
    let m = msg_of(&tx[0]);
    assert_eq!(m.msg_type(), Some("repnodes"));
    assert_eq!(m.get("dest"), Some("node2"));
    assert_eq!(m.get("nodelist"), Some("node1 node2 "));
    assert_eq!(m.get("delnodelist"), Some(" "));
    assert_eq!(
        m.get_bin("destuuid"),
        Some(&config("node2", "x", 0).uuid[..])
    );
    assert!(m.get("seq").is_some());
    assert!(
        drain_ev(&mut w.a)
            .iter()
            .all(|e| !matches!(e, LivenessEvent::Message { .. }))
    );
    // And node2 accepts it as addressed to it.
    for b in &tx {
        w.b.handle_datagram(w.at(101), MediumId(0), addr(1), b);
    }
    assert_eq!(dropped(&w.b, w.at(101), DropReason::NotForUs), 0);
}

fn rexmit(first: u64, last: u64) -> Message {
    let mut m = Message::with_type("NS_rexmit");
    m.push_str("dest", "node1");
    m.push_str("firstseq", first.to_string());
    m.push_str("lastseq", last.to_string());
    m
}

#[test]
fn rexmit_requests_are_answered_from_history_or_naked() {
    let mut w = Two::new();
    let mut sent = vec![drain_tx(&mut w.a).remove(0)];
    for i in 0..30 {
        let mut m = Message::with_type("resource");
        m.push_str("i", i.to_string());
        w.a.send(w.at(1), m);
        sent.push(drain_tx(&mut w.a).remove(0));
    }
    // seq 26 = 0x1a: decimal in the request.
    w.b.send(w.at(2), rexmit(26, 26));
    w.b_to_a(w.at(2), &[0]);
    assert_eq!(drain_tx(&mut w.a), vec![sent[25].clone()]);
    // Not again within 240 ms.
    w.b.send(w.at(100), rexmit(26, 26));
    w.b_to_a(w.at(100), &[0]);
    assert!(drain_tx(&mut w.a).is_empty());
    w.b.send(w.at(300), rexmit(25, 27));
    w.b_to_a(w.at(300), &[0]);
    assert_eq!(
        drain_tx(&mut w.a),
        vec![sent[24].clone(), sent[25].clone(), sent[26].clone()]
    );
    // Unsent seqs are ignored.
    w.b.send(w.at(600), rexmit(99, 99));
    w.b_to_a(w.at(600), &[0]);
    assert!(drain_tx(&mut w.a).is_empty());
    // Age seq 1 out of the 500-message history: NAK with a hex seq.
    for _ in 0..500 {
        w.a.send(w.at(700), Message::with_type("resource"));
    }
    drain_tx(&mut w.a);
    w.b.send(w.at(800), rexmit(1, 1));
    w.b_to_a(w.at(800), &[0]);
    let tx = drain_tx(&mut w.a);
    assert_eq!(tx.len(), 1);
    let nak = msg_of(&tx[0]);
    assert_eq!(nak.msg_type(), Some("NS_nak_rexmit"));
    assert_eq!(nak.get("firstseq"), Some("1"));
    assert_eq!(nak.get("dest"), Some("node2"));
    assert_eq!(nak.get("info"), Some("seqno too low"));
    assert_eq!(nak.get("seq"), None);
    assert_eq!(nak.get("ld"), None);
    // A request for someone else is not answered.
    let mut other = rexmit(26, 26);
    other.set_str("dest", "node3");
    w.b.send(w.at(900), other);
    w.b_to_a(w.at(900), &[0]);
    assert!(drain_tx(&mut w.a).is_empty());
}

#[test]
fn rexmit_resigns_after_a_key_change() {
    let mut w = Two::new();
    drain_tx(&mut w.a);
    w.a.send(w.at(1), Message::with_type("resource"));
    let old = drain_tx(&mut w.a).remove(0);
    w.a.set_auth(auth("new"));
    w.b.set_auth(auth("new"));
    w.b.send(w.at(2), rexmit(2, 2));
    for bytes in drain_tx(&mut w.b) {
        w.a.handle_datagram(w.at(2), MediumId(0), addr(2), &bytes);
    }
    let tx = drain_tx(&mut w.a);
    assert_eq!(tx.len(), 1);
    assert_ne!(tx[0], old);
    assert!(auth("new").verify(&tx[0]).is_ok());
    assert_eq!(msg_of(&tx[0]).get("seq"), Some("2"));
}

#[test]
fn a_gap_is_requested_and_filled_late() {
    let mut w = Two::new();
    drain_tx(&mut w.a);
    w.b_to_a(w.at(0), &[0]);
    w.b.send(w.at(10), Message::with_type("resource"));
    let lost = drain_tx(&mut w.b).remove(0);
    w.b.send(w.at(20), Message::with_type("starting"));
    w.b_to_a(w.at(20), &[0]);
    let ev = drain_ev(&mut w.a);
    assert!(
        matches!(ev.last(), Some(LivenessEvent::Message { msg, .. }) if msg.msg_type() == Some("starting"))
    );
    // The request goes out after a 50..=250 ms wait, decimal seqs, to node2.
    let due = w.a.poll_timeout().unwrap();
    assert!(due >= w.at(70) && due <= w.at(270), "{:?}", due - w.t0);
    w.a.handle_timeout(due);
    let tx = drain_tx(&mut w.a);
    assert_eq!(tx.len(), 1);
    let req = msg_of(&tx[0]);
    assert_eq!(req.msg_type(), Some("NS_rexmit"));
    assert_eq!(req.get("dest"), Some("node2"));
    assert_eq!(req.get("firstseq"), Some("2"));
    assert_eq!(req.get("lastseq"), Some("2"));
    // node2 answers with the original bytes; node1 accepts them once.
    w.b.handle_datagram(due, MediumId(0), addr(1), &tx[0]);
    let answer = drain_tx(&mut w.b);
    assert_eq!(answer, vec![lost]);
    for b in &answer {
        w.a.handle_datagram(due, MediumId(0), addr(2), b);
        w.a.handle_datagram(due, MediumId(1), addr(2), b);
    }
    let ev: Vec<_> = drain_ev(&mut w.a)
        .into_iter()
        .filter(|e| matches!(e, LivenessEvent::Message { .. }))
        .collect();
    assert_eq!(ev.len(), 1);
    w.a.handle_timeout(due + Duration::from_millis(300));
    assert!(
        drain_tx(&mut w.a)
            .iter()
            .all(|b| msg_of(b).msg_type() == Some("status"))
    );
}

#[test]
fn nak_stops_the_requests() {
    let mut w = Two::new();
    drain_tx(&mut w.a);
    w.b_to_a(w.at(0), &[0]);
    w.a.handle_datagram(
        w.at(5),
        MediumId(0),
        addr(2),
        &forged("resource", Some(5), 200, &[]),
    );
    let mut nak = Message::with_type("NS_nak_rexmit");
    nak.push_str("dest", "node1");
    for s in 2..=4u64 {
        nak.set_str("firstseq", format!("{s:x}"));
        w.b.send(w.at(6), nak.clone());
    }
    w.b_to_a(w.at(6), &[0]);
    w.a.handle_timeout(w.at(500));
    assert!(
        drain_tx(&mut w.a)
            .iter()
            .all(|b| msg_of(b).msg_type() == Some("status"))
    );
}

#[test]
fn messages_for_others_are_dropped_after_sequencing() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0]);
    drain_ev(&mut w.a);
    let mut m = Message::with_type("ip-request-resp");
    m.push_str("dest", "node3");
    w.b.send(w.at(1), m);
    let mut m = Message::with_type("ip-request-resp");
    m.push_str("dest", "NODE1");
    w.b.send(w.at(2), m);
    w.b_to_a(w.at(2), &[0]);
    let ev = drain_ev(&mut w.a);
    assert_eq!(ev.len(), 1);
    assert!(matches!(&ev[0], LivenessEvent::Message { msg, .. } if msg.get("seq") == Some("3")));
    assert_eq!(dropped(&w.a, w.at(2), DropReason::NotForUs), 1);
    // A wrong destuuid wins over a matching dest.
    let mut m = Message::with_type("x");
    m.push_str("dest", "node1");
    m.push_bin("destuuid", vec![0; 16]);
    m.push_str("src", "node2");
    m.push_str("seq", "4");
    m.push_str("hg", "c8");
    let bytes = auth("secret").sign(&mut m);
    w.a.handle_datagram(w.at(3), MediumId(0), addr(2), &bytes);
    assert!(drain_ev(&mut w.a).is_empty());
    assert_eq!(dropped(&w.a, w.at(3), DropReason::NotForUs), 2);
}

#[test]
fn classic_framing_from_old_peers_is_accepted() {
    let mut w = Two::new();
    let mut m = Message::with_type("status");
    m.push_str("st", "active");
    m.push_str("dt", "7530");
    m.push_str("src", "node2");
    m.push_str("seq", "1a");
    m.push_str("hg", "5");
    let bytes = auth("secret").sign_classic(&mut m);
    w.a.handle_datagram(w.at(0), MediumId(0), addr(2), &bytes);
    assert!(drain_ev(&mut w.a).contains(&LivenessEvent::PeerUp {
        node: n("node2"),
        status: NodeStatus::Active,
        returning_after_partition: false,
        restarted: false
    }));
    assert_eq!(w.a.snapshot(w.at(0)).peers[0].deadtime_ms, 30_000);
}

#[test]
fn snapshot_serializes() {
    let w = Two::new();
    let snap = w.a.snapshot(w.t0);
    assert_eq!(snap.local_status, "up");
    assert_eq!(snap.seq, 1);
    assert_eq!(snap.sent, 1);
    assert_eq!(snap.peers[0].status, "init");
    assert_eq!(snap.peers[0].links[1].status, "init");
    assert_eq!(snap.dropped.len(), DropReason::ALL.len());
}

#[test]
fn first_contact_out_of_order_is_delivered_once() {
    let mut w = Two::new();
    let first_status = drain_tx(&mut w.b).remove(0);
    w.b.send(w.at(10), Message::with_type("starting"));
    let starting = drain_tx(&mut w.b).remove(0);
    // The app message overtakes the status; its copy on eth1 comes last.
    w.a.handle_datagram(w.at(11), MediumId(0), addr(2), &starting);
    w.a.handle_datagram(w.at(12), MediumId(0), addr(2), &first_status);
    w.a.handle_datagram(w.at(13), MediumId(1), addr(2), &starting);
    let messages = drain_ev(&mut w.a)
        .into_iter()
        .filter(|e| matches!(e, LivenessEvent::Message { .. }))
        .count();
    assert_eq!(messages, 1);
}

#[test]
fn restarted_peer_messages_before_its_status_are_not_duplicates() {
    let mut w = Two::new();
    for s in 0..5u64 {
        w.b.handle_timeout(w.at(s * 1000));
        w.b_to_a(w.at(s * 1000), &[0]);
    }
    drain_ev(&mut w.a);
    w.b = Liveness::new(config("node2", "node1", 201), w.at(5000));
    drain_tx(&mut w.b); // its first status is lost
    w.b.send(w.at(5010), Message::with_type("starting"));
    w.b_to_a(w.at(5010), &[0]);
    assert!(matches!(
        drain_ev(&mut w.a).as_slice(),
        [LivenessEvent::Message { msg, .. }] if msg.msg_type() == Some("starting")
    ));
    // Now the old generation is a replay.
    w.a.handle_datagram(
        w.at(5020),
        MediumId(0),
        addr(2),
        &forged("resource", Some(9), 200, &[]),
    );
    assert_eq!(dropped(&w.a, w.at(5020), DropReason::Replay), 1);
    w.b.handle_timeout(w.at(6000));
    w.b_to_a(w.at(6000), &[0]);
    assert_eq!(
        drain_ev(&mut w.a),
        vec![LivenessEvent::PeerRestarted { node: n("node2") }]
    );
}

#[test]
fn snapshot_json_has_the_documented_shape() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[1]);
    let v = serde_json::to_value(w.a.snapshot(w.at(250))).unwrap();
    assert_eq!(v["local_status"], "up");
    assert_eq!(v["generation"], 100);
    assert_eq!(v["peers"][0]["node"], "node2");
    assert_eq!(v["peers"][0]["status"], "up");
    assert_eq!(v["peers"][0]["last_heard_ms"], 250);
    assert_eq!(v["peers"][0]["deadtime_ms"], 5000);
    assert_eq!(v["peers"][0]["generation"], 200);
    assert_eq!(v["peers"][0]["links"][0]["status"], "init");
    assert_eq!(
        v["peers"][0]["links"][0]["last_heard_ms"],
        serde_json::Value::Null
    );
    assert_eq!(v["peers"][0]["links"][1]["name"], "eth1");
    assert_eq!(v["peers"][0]["links"][1]["status"], "up");
    assert_eq!(v["received"], 1);
    assert_eq!(v["dropped"]["bad_auth"], 0);
    assert_eq!(v["late"], 0);
}

/// The captured Heartbeat 3.0.6 status (node1, sha1 key `secret`).
fn heartbeat_status_vector() -> Vec<u8> {
    let text = include_str!("../../../transport/tests/fixtures/status-vector.txt");
    text.lines()
        .skip_while(|l| !l.starts_with("## payload hex"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("##"))
        .flat_map(|l| {
            l.get(6..53)
                .unwrap_or("")
                .split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_real_heartbeat_status_brings_the_peer_up() {
    let bytes = heartbeat_status_vector();
    assert_eq!(bytes.len(), 309);
    let t0 = Instant::now();
    let mut l = Liveness::new(config("node2", "node1", 1), t0);
    l.handle_datagram(t0, MediumId(0), addr(11), &bytes);
    assert_eq!(
        drain_ev(&mut l),
        vec![
            LivenessEvent::LinkUp {
                node: n("node1"),
                link: "eth0".into()
            },
            LivenessEvent::PeerUp {
                node: n("node1"),
                status: NodeStatus::Active,
                returning_after_partition: false,
                restarted: false
            }
        ]
    );
    let snap = l.snapshot(t0);
    assert_eq!(snap.peers[0].deadtime_ms, 5000);
    assert_eq!(snap.peers[0].generation, Some(0x6b04_de54));
    // Our reply is addressed by the UUID it announced.
    l.send(t0, {
        let mut m = Message::with_type("ip-request-resp");
        m.push_str("dest", "node1");
        m
    });
    let tx = drain_tx(&mut l);
    let uuid = msg_of(&tx[1]).get_bin("destuuid").map(<[u8]>::to_vec);
    assert_eq!(
        uuid,
        Some(vec![
            0xa3, 0xf4, 0xac, 0x1f, 0xe1, 0xc0, 0x45, 0x3f, 0x97, 0xf0, 0x0e, 0xa5, 0x0c, 0x10,
            0x73, 0x2b
        ])
    );
}

#[test]
fn a_peers_ip_request_resp_to_itself_is_delivered_other_addressees_are_not() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0]);
    drain_ev(&mut w.a);
    // A legacy Heartbeat taking a group alone answers its own request: we must hear it.
    let mut own = Message::with_type("ip-request-resp");
    own.push_str("dest", "node2");
    own.push_str("ipaddr", "IPaddr::198.18.0.100");
    w.b.send(w.at(100), own);
    // Any other message to a third node stays dropped.
    let mut other = Message::with_type("ip-request-resp");
    other.push_str("dest", "node3");
    w.b.send(w.at(100), other);
    w.b_to_a(w.at(100), &[0]);
    let got: Vec<String> = drain_ev(&mut w.a)
        .into_iter()
        .filter_map(|e| match e {
            LivenessEvent::Message { msg, .. } => msg.get("dest").map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec!["node2".to_string()]);
}

// ---- Fresh evidence only (issue 9): replays, copies and NS_ packets. ----

/// Runs a's timers up to `until`, returning when node2 was declared dead.
fn death_of_node2(a: &mut Liveness, until: Instant) -> Option<(Instant, bool)> {
    loop {
        let now = a.poll_timeout()?;
        if now > until {
            return None;
        }
        a.handle_timeout(now);
        for e in drain_ev(a) {
            if let LivenessEvent::PeerDead { node, never_heard } = e {
                assert_eq!(node.as_str(), "node2");
                return Some((now, never_heard));
            }
        }
    }
}

/// node2 sends statuses at 0, 1000 and 2000 ms, delivered on eth0, then crashes;
/// returns every packet it sent (what a hostile host captured).
fn captured_then_crash(w: &mut Two) -> Vec<Vec<u8>> {
    let mut captured = Vec::new();
    for s in 0..3u64 {
        let now = w.at(s * 1000);
        w.b.handle_timeout(now);
        let mut r = Message::with_type("resource");
        r.push_str("rsc_hold", "all");
        w.b.send(now, r);
        for bytes in drain_tx(&mut w.b) {
            w.a.handle_datagram(now, MediumId(0), addr(2), &bytes);
            captured.push(bytes);
        }
    }
    drain_ev(&mut w.a);
    captured
}

#[test]
fn byte_copies_never_extend_the_deadline_on_any_link() {
    let mut w = Two::new();
    let captured = captured_then_crash(&mut w);
    let last_fresh = w.at(2000);
    assert_eq!(
        w.a.poll_timeout().map(|t| t >= last_fresh + DT),
        Some(false)
    );
    // The copies flow every 100 ms on both links until long after the deadtime.
    let mut t = 2100;
    let mut dead_at = None;
    while t <= 12_000 {
        let now = w.at(t);
        for bytes in &captured {
            for m in [0, 1] {
                w.a.handle_datagram(now, MediumId(m), addr(2), bytes);
            }
        }
        if let Some(d) = death_of_node2(&mut w.a, now) {
            dead_at.get_or_insert(d);
        }
        assert!(
            drain_ev(&mut w.a).iter().all(|e| !matches!(
                e,
                LivenessEvent::PeerUp { .. } | LivenessEvent::Message { .. }
            )),
            "a copy revived or fed the cluster at {t} ms"
        );
        t += 100;
    }
    assert_eq!(dead_at, Some((last_fresh + DT, false)));
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Dead);
    assert!(dropped(&w.a, w.at(12_000), DropReason::Duplicate) > 500);
    // Copies on eth1 proved it for one keepalive after the last fresh
    // packet (they could have been the second path's), never later.
    let snap = w.a.snapshot(w.at(12_000));
    assert_eq!(snap.peers[0].links[1].status, "dead");
    assert_eq!(snap.peers[0].links[1].last_heard_ms, Some(12_000 - 3000));
}

#[test]
fn a_copy_on_another_link_within_one_keepalive_marks_only_that_link() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0]);
    drain_ev(&mut w.a);
    w.b.handle_timeout(w.at(1000));
    let status = drain_tx(&mut w.b).remove(0);
    w.a.handle_datagram(w.at(1000), MediumId(0), addr(2), &status);
    // The same packet on eth1 900 ms later (within KA = 1 s): eth1 is up ...
    w.a.handle_datagram(w.at(1900), MediumId(1), addr(2), &status);
    assert_eq!(
        drain_ev(&mut w.a),
        vec![LivenessEvent::LinkUp {
            node: n("node2"),
            link: "eth1".into()
        }]
    );
    let snap = w.a.snapshot(w.at(1900));
    assert_eq!(
        snap.peers[0].last_heard_ms,
        Some(900),
        "node: fresh packet only"
    );
    assert_eq!(snap.peers[0].links[1].last_heard_ms, Some(0));
    // ... but the node's deadline still runs from the fresh receipt at 1000 ms.
    assert_eq!(
        death_of_node2(&mut w.a, w.t0 + Duration::from_millis(20_000)),
        Some((w.at(1000) + DT, false))
    );
}

#[test]
fn an_old_copy_on_another_link_or_a_copy_on_the_same_link_proves_nothing() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0]);
    drain_ev(&mut w.a);
    w.b.handle_timeout(w.at(1000));
    let status = drain_tx(&mut w.b).remove(0);
    w.a.handle_datagram(w.at(1000), MediumId(0), addr(2), &status);
    // More than one keepalive later on eth1: a replay, not a second path.
    w.a.handle_datagram(w.at(2001), MediumId(1), addr(2), &status);
    // Again on eth0 itself, at once.
    w.a.handle_datagram(w.at(1001), MediumId(0), addr(2), &status);
    assert!(drain_ev(&mut w.a).is_empty());
    let snap = w.a.snapshot(w.at(2001));
    assert_eq!(snap.peers[0].links[1].status, "init");
    assert_eq!(snap.peers[0].links[0].last_heard_ms, Some(1001));
    assert_eq!(dropped(&w.a, w.at(2001), DropReason::Duplicate), 2);
}

#[test]
fn unsequenced_ns_messages_never_refresh_liveness() {
    let mut w = Two::new();
    w.b_to_a(w.at(0), &[0]);
    drain_ev(&mut w.a);
    // Fresh, correctly signed NS_ packets of the current generation, every 500 ms.
    for t in (500..=4500).step_by(500) {
        for ty in ["NS_ackmsg", "NS_nak_rexmit", "NS_rexmit"] {
            let bytes = forged(ty, None, 200, &[("dest", "node1"), ("firstseq", "1")]);
            w.a.handle_datagram(w.at(t), MediumId(0), addr(2), &bytes);
        }
    }
    assert_eq!(
        w.a.snapshot(w.at(4500)).peers[0].last_heard_ms,
        Some(4500),
        "last heard stays at the status"
    );
    assert_eq!(
        death_of_node2(&mut w.a, w.t0 + Duration::from_millis(20_000)),
        Some((w.at(0) + DT, false))
    );
}

#[test]
fn a_restart_of_ours_keeps_refusing_a_dead_peers_old_packets() {
    // Run 1: node2 is heard, crashes, and is declared dead; the floor is persisted.
    let mut w = Two::new();
    let captured = captured_then_crash(&mut w);
    assert!(
        w.a.poll_floors().is_some(),
        "first generation seen: persist"
    );
    assert_eq!(w.a.poll_floors(), None, "nothing new since");
    assert!(death_of_node2(&mut w.a, w.t0 + Duration::from_millis(20_000)).is_some());
    let floors = w.a.poll_floors().expect("the death moves the floor");
    assert_eq!(
        floors,
        vec![PeerFloor {
            node: n("node2"),
            generation: 200,
            seq: 6,
        }]
    );
    // Run 2: our daemon restarts (new generation), with the persisted floors.
    let t = w.at(30_000);
    let mut a = Liveness::new(
        LivenessConfig {
            peer_floors: floors.clone(),
            ..config("node1", "node2", 101)
        },
        t,
    );
    drain_tx(&mut a);
    for bytes in &captured {
        a.handle_datagram(t, MediumId(0), addr(2), bytes);
    }
    // Right-key packets of an older generation, and an NS_ one.
    for bytes in [
        forged("status", Some(50), 199, &[("st", "active")]),
        forged("resource", Some(51), 199, &[]),
        forged("NS_ackmsg", None, 199, &[]),
    ] {
        a.handle_datagram(t, MediumId(0), addr(2), &bytes);
    }
    assert!(
        drain_ev(&mut a).is_empty(),
        "no first contact from a replay"
    );
    assert_eq!(
        dropped(&a, t, DropReason::Replay),
        captured.len() as u64 + 3
    );
    assert_eq!(a.peer_status(&n("node2")), NodeStatus::Init);
    // Without the floor the same copy was a first contact (the bug).
    let mut forgetful = Liveness::new(config("node1", "node2", 101), t);
    forgetful.handle_datagram(t, MediumId(0), addr(2), &captured[0]);
    assert!(
        drain_ev(&mut forgetful)
            .iter()
            .any(|e| matches!(e, LivenessEvent::PeerUp { .. }))
    );
    // The peer stays dead: initdead expires with nothing fresh.
    assert_eq!(
        death_of_node2(&mut a, t + INITDEAD),
        Some((t + INITDEAD, true))
    );
    // A fresh status of the same generation (a partition healing) is accepted ...
    let fresh = forged("status", Some(7), 200, &[("st", "active")]);
    a.handle_datagram(t + INITDEAD, MediumId(0), addr(2), &fresh);
    assert!(
        drain_ev(&mut a)
            .iter()
            .any(|e| matches!(e, LivenessEvent::PeerUp { .. }))
    );
    // ... and so is a real restart of the peer (Heartbeat increments hg).
    let mut a2 = Liveness::new(
        LivenessConfig {
            peer_floors: floors,
            ..config("node1", "node2", 102)
        },
        t,
    );
    a2.handle_datagram(
        t,
        MediumId(0),
        addr(2),
        &forged("status", Some(1), 201, &[("st", "up")]),
    );
    assert!(drain_ev(&mut a2).contains(&LivenessEvent::PeerUp {
        node: n("node2"),
        status: NodeStatus::Up,
        returning_after_partition: false,
        restarted: false
    }));
    assert_eq!(
        a2.poll_floors(),
        Some(vec![PeerFloor {
            node: n("node2"),
            generation: 201,
            seq: 1,
        }])
    );
}

#[test]
fn peer_floors_include_what_was_consumed_at_our_shutdown() {
    let mut w = Two::new();
    for s in 0..4u64 {
        w.b.handle_timeout(w.at(s * 1000));
        w.b_to_a(w.at(s * 1000), &[0]);
    }
    assert_eq!(
        w.a.peer_floors(),
        vec![PeerFloor {
            node: n("node2"),
            generation: 200,
            seq: 4,
        }]
    );
}

#[test]
fn rexmit_answers_and_naks_are_rate_limited_per_peer() {
    let mut w = Two::new();
    drain_tx(&mut w.a);
    for _ in 0..700 {
        w.a.send(w.at(1), Message::with_type("resource"));
    }
    drain_tx(&mut w.a);
    // Seqs 1..=201 aged out (NAKs), 202..=701 kept (copies).
    w.b_to_a(w.at(2), &[0]);
    let replayed = {
        w.b.send(w.at(2), rexmit(300, 349));
        drain_tx(&mut w.b).remove(0)
    };
    let answered = |w: &mut Two, t: u64, bytes: &[u8]| {
        w.a.handle_datagram(w.at(t), MediumId(0), addr(2), bytes);
        drain_tx(&mut w.a).len()
    };
    assert_eq!(answered(&mut w, 2, &replayed), 50, "one full burst");
    w.b.send(w.at(3), rexmit(400, 449));
    let more = drain_tx(&mut w.b).remove(0);
    assert_eq!(answered(&mut w, 3, &more), 0, "bucket empty");
    // 25 per second refill: 1 s later, 25 of 50 NAKs go out.
    w.b.send(w.at(1003), rexmit(100, 149));
    let naks = drain_tx(&mut w.b).remove(0);
    assert_eq!(answered(&mut w, 1003, &naks), 25);
    // A flood of the replayed request: at most 25 answers a second, however fast.
    let mut total = 0;
    for t in (1004..=11_003).step_by(5) {
        total += answered(&mut w, t, &replayed);
    }
    assert!((240..=251).contains(&total), "{total} answers in 10 s");
    let snap = w.a.snapshot(w.at(11_003));
    assert!(
        snap.rexmit_limited > 50 + 25 + 1000,
        "{}",
        snap.rexmit_limited
    );
}

#[test]
fn requests_for_seqs_never_sent_get_no_answer() {
    let mut w = Two::new();
    drain_tx(&mut w.a);
    for (first, last) in [
        (0, 0),
        (2, 2),
        (1_000_000, 1_000_049),
        (u64::MAX - 1, u64::MAX),
    ] {
        w.b.send(w.at(5), rexmit(first, last));
        w.b_to_a(w.at(5), &[0]);
    }
    assert!(drain_tx(&mut w.a).is_empty(), "no copy, no NAK");
    assert_eq!(w.a.snapshot(w.at(5)).rexmit_limited, 0);
    // Seq 1, which was sent, is answered.
    w.b.send(w.at(6), rexmit(0, 1));
    w.b_to_a(w.at(6), &[0]);
    assert_eq!(drain_tx(&mut w.a).len(), 1);
}

#[test]
fn advertised_deadtime_is_clamped_and_reported_once() {
    let mut w = Two::new();
    let huge = forged(
        "status",
        Some(1),
        200,
        &[("st", "active"), ("dt", "ffffffffffffffff")],
    );
    w.a.handle_datagram(w.at(0), MediumId(0), addr(2), &huge);
    let ev = drain_ev(&mut w.a);
    assert!(ev.contains(&LivenessEvent::DeadtimeClamped {
        node: n("node2"),
        advertised_ms: u64::MAX,
        used: PEER_DEADTIME_MAX,
    }));
    assert_eq!(w.a.snapshot(w.at(0)).peers[0].deadtime_ms, 3_600_000);
    // Again, and then too small: clamped, not reported again.
    let again = forged(
        "status",
        Some(2),
        200,
        &[("st", "active"), ("dt", "ffffffffffffffff")],
    );
    w.a.handle_datagram(w.at(1000), MediumId(0), addr(2), &again);
    let tiny = forged("status", Some(3), 200, &[("st", "active"), ("dt", "1")]);
    w.a.handle_datagram(w.at(2000), MediumId(0), addr(2), &tiny);
    assert!(
        drain_ev(&mut w.a)
            .iter()
            .all(|e| !matches!(e, LivenessEvent::DeadtimeClamped { .. }))
    );
    assert_eq!(w.a.snapshot(w.at(2000)).peers[0].deadtime_ms, 50);
    // The peer is judged by the clamped value: dead 50 ms after its last status.
    assert_eq!(
        death_of_node2(&mut w.a, w.t0 + Duration::from_millis(10_000)),
        Some((w.at(2050), false))
    );
    // A sane value is used as is.
    let sane = forged("status", Some(4), 200, &[("st", "active"), ("dt", "7530")]);
    w.a.handle_datagram(w.at(3000), MediumId(0), addr(2), &sane);
    assert_eq!(w.a.snapshot(w.at(3000)).peers[0].deadtime_ms, 30_000);
}

#[test]
fn our_name_from_another_address_is_counted_and_reported_once_per_address() {
    let t0 = Instant::now();
    let mut a = Liveness::new(config("node1", "node2", 1), t0);
    let ours = drain_tx(&mut a);
    // Our own loopback: nothing.
    a.handle_datagram(t0, MediumId(0), addr(1), &ours[0]);
    // A clone with our name (and key) elsewhere, twice, and a second address.
    let mut clone = Liveness::new(config("node1", "node2", 1), t0);
    let theirs = drain_tx(&mut clone).remove(0);
    a.handle_datagram(t0, MediumId(0), addr(9), &theirs);
    a.handle_datagram(t0, MediumId(0), addr(9), &theirs);
    a.handle_datagram(t0, MediumId(1), addr(10), &ours[0]);
    assert_eq!(
        drain_ev(&mut a),
        vec![
            LivenessEvent::OwnNameElsewhere { addr: addr(9) },
            LivenessEvent::OwnNameElsewhere { addr: addr(10) },
        ]
    );
    assert_eq!(a.snapshot(t0).own_name_elsewhere, 3);
    // An address that became ours (reload) is ours.
    a.set_local_addrs([addr(1).ip(), addr(9).ip()]);
    a.handle_datagram(t0, MediumId(0), addr(9), &theirs);
    assert_eq!(a.snapshot(t0).own_name_elsewhere, 3);
}

#[test]
fn crc_signed_packets_beside_an_hmac_key_change_nothing() {
    // authkeys: `auth 1` / `1 sha1 secret` / `2 crc`.
    let keys = || {
        Auth::from_keys(
            1,
            [
                (1, AuthMethod::Sha1, b"secret".to_vec()),
                (2, AuthMethod::Crc, Vec::new()),
            ],
        )
    };
    let t0 = Instant::now();
    let mut a = Liveness::new(
        LivenessConfig {
            auth: keys(),
            ..config("node1", "node2", 100)
        },
        t0,
    );
    let mut b = Liveness::new(config("node2", "node1", 200), t0);
    for bytes in drain_tx(&mut b) {
        a.handle_datagram(t0, MediumId(0), addr(2), &bytes);
    }
    drain_ev(&mut a);
    let crc = Auth::from_keys(2, [(2, AuthMethod::Crc, Vec::new())]);
    for (i, ty) in [
        "hb_takeover",
        "ask_resources",
        "resource",
        "shutdone",
        "status",
    ]
    .iter()
    .enumerate()
    {
        let mut m = Message::with_type(ty);
        m.push_str("src", "node2");
        m.push_str("seq", format!("{:x}", 10 + i));
        m.push_str("hg", "c8");
        m.push_str("st", "dead");
        a.handle_datagram(t0, MediumId(0), addr(66), &crc.sign(&mut m));
    }
    let ev = drain_ev(&mut a);
    assert!(
        ev.iter().all(|e| matches!(
            e,
            LivenessEvent::AuthFailed {
                reason: DropReason::BadAuth,
                ..
            }
        )),
        "{ev:?}"
    );
    assert_eq!(dropped(&a, t0, DropReason::BadAuth), 5);
    assert_eq!(a.peer_status(&n("node2")), NodeStatus::Up);
    // The sha1 peer is still heard.
    b.send(t0, Message::with_type("resource"));
    for bytes in drain_tx(&mut b) {
        a.handle_datagram(t0, MediumId(0), addr(2), &bytes);
    }
    assert!(matches!(
        drain_ev(&mut a).as_slice(),
        [LivenessEvent::Message { .. }]
    ));
}

impl Two {
    /// node1 has heard node2's first status at 400 ms, on eth0, and nothing since.
    fn heard_at_400() -> Self {
        let mut w = Two::new();
        drain_tx(&mut w.a);
        w.b_to_a(w.at(400), &[0]);
        drain_ev(&mut w.a);
        w
    }

    /// Delivers everything a has queued to b, on eth0.
    fn a_to_b(&mut self, now: Instant) {
        for bytes in drain_tx(&mut self.a) {
            self.b.handle_datagram(now, MediumId(0), addr(1), &bytes);
        }
    }
}

fn deaths(ev: &[LivenessEvent]) -> usize {
    ev.iter()
        .filter(|e| matches!(e, LivenessEvent::PeerDead { .. }))
        .count()
}

#[test]
fn a_pause_of_the_whole_host_makes_neither_node_declare_the_other_dead() {
    let mut w = Two::new();
    w.b_to_a(w.at(1), &[0]);
    w.a_to_b(w.at(1));
    drain_ev(&mut w.a);
    drain_ev(&mut w.b);
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Up);
    assert_eq!(w.b.peer_status(&n("node1")), NodeStatus::Up);
    // Both run on time up to 2 s, then the host stops for 7 s (deadtime 5 s): on resume
    // both timers fire at the same instant, each 6 s late against its next status.
    for ms in [1000, 2000] {
        w.a.handle_timeout(w.at(ms));
        w.b.handle_timeout(w.at(ms));
        w.b_to_a(w.at(ms), &[0]);
        w.a_to_b(w.at(ms));
    }
    drain_ev(&mut w.a);
    drain_ev(&mut w.b);
    let resume = w.at(9000);
    w.a.handle_timeout(resume);
    w.b.handle_timeout(resume);
    let (ea, eb) = (drain_ev(&mut w.a), drain_ev(&mut w.b));
    assert_eq!(deaths(&ea) + deaths(&eb), 0, "{ea:?} {eb:?}");
    let late = LivenessEvent::OwnWakeLate {
        late: Duration::from_secs(6),
        grace: KA * 2,
    };
    assert_eq!(ea, vec![late.clone()]);
    assert_eq!(eb, vec![late]);
    // Each sent its overdue status on resume; they cross within a millisecond.
    let heard = resume + Duration::from_millis(1);
    w.b_to_a(heard, &[0]);
    w.a_to_b(heard);
    let (ea, eb) = (drain_ev(&mut w.a), drain_ev(&mut w.b));
    assert_eq!(deaths(&ea) + deaths(&eb), 0);
    assert!(ea.iter().any(|e| matches!(e, LivenessEvent::Late { .. })));
    // Life goes on, judged as before: nothing dies while both keep talking.
    for ms in (10_000..30_000).step_by(1000) {
        for l in [&mut w.a, &mut w.b] {
            while let Some(due) = l
                .poll_timeout()
                .filter(|d| *d <= w.t0 + Duration::from_millis(ms))
            {
                l.handle_timeout(due);
            }
        }
        w.b_to_a(w.at(ms), &[0]);
        w.a_to_b(w.at(ms));
        let (ea, eb) = (drain_ev(&mut w.a), drain_ev(&mut w.b));
        assert_eq!(deaths(&ea) + deaths(&eb), 0, "at {ms} ms: {ea:?} {eb:?}");
    }
    assert_eq!(w.a.peer_status(&n("node2")), NodeStatus::Up);
    assert_eq!(w.b.peer_status(&n("node1")), NodeStatus::Up);
}

#[test]
fn after_a_late_wake_a_real_death_waits_one_grace_and_only_once() {
    let mut w = Two::heard_at_400();
    // node2 is gone after 400 ms; node1 stalls from 1 s to 8 s (its judgement was due at
    // 5.4 s): it may not judge at 8 s, and judges at once when the grace ends.
    w.a.handle_timeout(w.at(1000));
    let resume = w.at(8000);
    w.a.handle_timeout(resume);
    let ev = drain_ev(&mut w.a);
    assert_eq!(deaths(&ev), 0);
    assert!(matches!(ev[..], [LivenessEvent::OwnWakeLate { .. }]));
    assert_eq!(
        death_of_node2(&mut w.a, w.t0 + Duration::from_secs(60)),
        Some((resume + KA * 2, false))
    );

    // A second stall in the same silence buys nothing more.
    let mut w = Two::heard_at_400();
    w.a.handle_timeout(w.at(1000));
    w.a.handle_timeout(w.at(8000));
    drain_ev(&mut w.a);
    let again = w.at(13_000);
    w.a.handle_timeout(again);
    let ev = drain_ev(&mut w.a);
    assert_eq!(deaths(&ev), 1, "{ev:?}");
    assert!(
        !ev.iter()
            .any(|e| matches!(e, LivenessEvent::OwnWakeLate { .. }))
    );

    // A wake-up a millisecond late (timer rounding) is no stall: death at that wake-up.
    let mut w = Two::heard_at_400();
    while let Some(due) = w.a.poll_timeout().filter(|d| *d < w.at(5400)) {
        w.a.handle_timeout(due);
    }
    w.a.handle_timeout(w.at(5401));
    let ev = drain_ev(&mut w.a);
    assert_eq!(deaths(&ev), 1, "{ev:?}");
}

#[test]
fn a_late_wake_with_every_peer_far_from_its_deadline_grants_nothing() {
    let mut w = Two::heard_at_400();
    // Late by 1.5 s against the status due at 1 s, node2's judgement at 5.4 s is far off:
    // no grace is spent and nothing is said.
    w.a.handle_timeout(w.at(2500));
    assert!(drain_ev(&mut w.a).is_empty());
    assert_eq!(
        death_of_node2(&mut w.a, w.t0 + Duration::from_secs(60)),
        Some((w.at(5400), false))
    );
}
