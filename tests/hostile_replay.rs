//! End to end (issue 9): a hostile host in the client namespace replays and forges heartbeat
//! packets. Copies of a crashed node's packets, wrong-key copies, right-key copies of an older
//! generation and `NS_*` packets must neither delay the takeover nor revive the dead node, also
//! right after the surviving daemon restarts; crc-signed forgeries beside a sha1 key change
//! nothing. Needs root; with HA_REQUIRE_LAB=1 it fails instead of skipping.

mod common;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Cluster, Setup, time_to};
use ha_lab::Lab;
use ha_transport::auth::{Auth, AuthMethod};
use ha_transport::codec::{self, Message};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::Signal;

const KEY: &str = "hostile-lab-key";
const PORT: u16 = 694;
/// The liar never runs longer than this, whatever happens to the test.
const LIAR_MAX: Duration = Duration::from_secs(60);
/// Pause between two rounds of lies.
const LIAR_EVERY: Duration = Duration::from_millis(20);

/// Moves the calling thread into the lab's client namespace (the hostile host).
fn enter_client(lab: &Lab) -> anyhow::Result<()> {
    let f = File::open(format!("/run/netns/{}", lab.client_netns()))?;
    setns(&f, CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

/// Records, from the client namespace, every heartbeat datagram `from` sends during `span`.
fn capture(lab: &Lab, from: Ipv4Addr, span: Duration) -> Vec<Vec<u8>> {
    std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<Vec<Vec<u8>>> {
            enter_client(lab)?;
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT))?;
            sock.set_read_timeout(Some(Duration::from_millis(50)))?;
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            let end = Instant::now() + span;
            while Instant::now() < end && got.len() < 1000 {
                if let Ok((n, src)) = sock.recv_from(&mut buf)
                    && src.ip() == from
                {
                    got.push(buf[..n].to_vec());
                }
            }
            Ok(got)
        })
        .join()
        .expect("capture thread")
    })
    .expect("capture in the client namespace")
}

fn sha1(key: &str) -> Auth {
    Auth::from_keys(1, [(1, AuthMethod::Sha1, key.as_bytes().to_vec())])
}

fn decoded(bytes: &[u8]) -> Message {
    codec::decode(bytes).expect("a captured packet decodes").msg
}

fn hex_field(m: &Message, name: &str) -> u64 {
    m.get(name)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or_else(|| panic!("no hex {name} in {m:?}"))
}

/// Every lie of the issue, built from what the hostile host captured from `victim`.
fn lies(captured: &[Vec<u8>], victim: &str, target: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = captured.to_vec();
    let generation = hex_field(&decoded(&captured[0]), "hg");
    for bytes in captured {
        let m = decoded(bytes);
        // The same content signed with a key the cluster does not have.
        out.push(sha1("not-the-key").sign(&mut m.clone()));
        // Right key, older generations (a recording from an earlier life).
        for back in [1, 1000] {
            let mut old = m.clone();
            old.set_str("hg", format!("{:x}", generation.saturating_sub(back)));
            out.push(sha1(KEY).sign(&mut old));
        }
    }
    // Right key, current generation, no seq: NS_ packets prove nothing.
    for (t, extra) in [
        ("NS_ackmsg", vec![("ackseq", "1")]),
        ("NS_rexmit", vec![("firstseq", "1"), ("lastseq", "50")]),
        ("NS_nak_rexmit", vec![("firstseq", "1"), ("info", "lost")]),
    ] {
        let mut m = Message::with_type(t);
        for (k, v) in extra {
            m.push_str(k, v);
        }
        m.push_str("dest", target);
        m.push_str("src", victim);
        m.push_str("hg", format!("{generation:x}"));
        m.push_str("ts", "6a000000");
        m.push_str("ttl", "3");
        out.push(sha1(KEY).sign(&mut m));
    }
    out
}

/// The hostile host sending `packets` to `to` again and again, until stopped (or `LIAR_MAX`).
struct Liar {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Liar {
    fn start(lab: &Lab, to: Ipv4Addr, packets: Vec<Vec<u8>>) -> Liar {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let ns = File::open(format!("/run/netns/{}", lab.client_netns())).expect("client netns");
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            if setns(&ns, CloneFlags::CLONE_NEWNET).is_err() {
                return;
            }
            let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
                return;
            };
            let dest = SocketAddr::from((to, PORT));
            let end = Instant::now() + LIAR_MAX;
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                for p in &packets {
                    if sock.send_to(p, dest).is_ok() {
                        sent2.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(LIAR_EVERY);
            }
        });
        Liar {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn dropped(st: &serde_json::Value, reason: &str) -> u64 {
    st["packets"]["dropped"][reason].as_u64().unwrap_or(0)
}

fn wait_joined(c: &Cluster, timeout: Duration) {
    let ok = c.lab.wait_until(timeout, || {
        ["node1", "node2"].iter().all(|n| {
            c.status_json(n)
                .map(|s| s["peer"]["status"] == "active" && s["node"]["status"] == "active")
                .unwrap_or(false)
        })
    });
    assert!(ok.is_some(), "cluster did not form\n{}", c.logs());
}

/// Polls node2's view of node1 for `span`: it must stay `dead` (or `init` right after a
/// restart, until initdead); returns every status seen.
fn watch_peer_stays_down(c: &Cluster, span: Duration) -> Vec<String> {
    let end = Instant::now() + span;
    let mut seen = Vec::new();
    while Instant::now() < end {
        if let Ok(st) = c.status_json("node2") {
            let s = st["peer"]["status"].as_str().unwrap_or("?").to_string();
            assert!(
                s == "dead" || s == "init",
                "a lie revived node1 on node2: peer status {s}\n{st:#}\n{}",
                c.logs()
            );
            if seen.last() != Some(&s) {
                seen.push(s);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    seen
}

#[test]
fn replays_and_forgeries_neither_delay_a_takeover_nor_revive_the_dead_node() {
    if !ha_lab::lab_available("hostile_replay") {
        return;
    }
    let started = Instant::now();
    let setup = Setup {
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        auth: "1 sha1 hostile-lab-key",
        ..Setup::default()
    };
    let mut c = Cluster::start(&setup).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(20));
    wait_joined(&c, Duration::from_secs(10));

    // The hostile host records node1 while it is alive (statuses and reports).
    let node1 = c.lab.ip("node1");
    let captured = capture(&c.lab, node1, Duration::from_millis(1500));
    assert!(
        captured.len() >= 5,
        "captured only {} packets of node1",
        captured.len()
    );
    let lies = lies(&captured, "node1", "node2");
    eprintln!(
        "captured {} packets of node1; {} lies per round, every {LIAR_EVERY:?}",
        captured.len(),
        lies.len()
    );
    let liar = Liar::start(&c.lab, c.lab.ip("node2"), lies);
    std::thread::sleep(Duration::from_millis(500));
    let before = c.status_json("node2").expect("status");

    // node1 really crashes (link cut + SIGKILL) while the lies keep flowing.
    let probe = c.lab.probe(c.vip, 80, Duration::from_millis(20));
    let t0 = Instant::now();
    c.lab.node_mut("node1").crash().expect("crash node1");
    c.expect_served_by("node2", c.deadtime + Duration::from_secs(5));
    let took = time_to(&probe, "node2", t0).expect("prober saw node2");
    drop(probe);
    eprintln!(
        "crash -> served by node2 under replay: {took:?} (deadtime {:?})",
        c.deadtime
    );
    assert!(
        took <= c.deadtime + Duration::from_secs(1),
        "takeover took {took:?} > deadtime + 1 s under replay\n{}",
        c.logs()
    );

    // The same lies do not revive node1.
    let seen = watch_peer_stays_down(&c, Duration::from_secs(3));
    assert_eq!(seen, ["dead"], "{}", c.logs());
    assert_eq!(c.served_by().as_deref(), Some("node2"));
    let after = c.status_json("node2").expect("status");
    for reason in ["duplicate", "bad_auth", "replay"] {
        assert!(
            dropped(&after, reason) > dropped(&before, reason),
            "no {reason} drops counted: {}",
            after["packets"]
        );
    }
    eprintln!("node2 packets after the crash: {}", after["packets"]);

    // Our daemon restarts, killed (the floor written when node1 was declared dead is all
    // there is) and then cleanly: the lies still revive nothing.
    let mut restarted = serde_json::Value::Null;
    for (how, sig) in [("SIGKILL", Signal::SIGKILL), ("SIGTERM", Signal::SIGTERM)] {
        let t1 = Instant::now();
        c.lab.node("node2").signal_had(sig).expect("signal had");
        let code = c
            .lab
            .node_mut("node2")
            .wait_had_exit(Duration::from_secs(10))
            .expect("wait");
        if sig == Signal::SIGTERM {
            assert_eq!(code, Some(0), "{}", c.logs());
        }
        c.start_node("node2").expect("restart had on node2");
        let seen = watch_peer_stays_down(&c, Duration::from_millis(4500));
        assert_eq!(seen.last().map(String::as_str), Some("dead"), "{seen:?}");
        c.expect_served_by("node2", Duration::from_secs(10));
        eprintln!(
            "node2's had restarted ({how}) under replay: node1 stayed {seen:?}; served {:?} after the restart began (initdead 3 s)",
            t1.elapsed()
        );
        restarted = c.status_json("node2").expect("status");
        assert!(
            dropped(&restarted, "replay") > 0,
            "the copies are replays after the restart: {}",
            restarted["packets"]
        );
        assert!(
            restarted["peer"]["generation"].is_null(),
            "no status of node1 was accepted after the restart: {restarted:#}"
        );
    }
    let sent = liar.stop();
    eprintln!(
        "the hostile host sent {sent} packets; node2 after its restart: {}; test took {:?}",
        restarted["packets"],
        started.elapsed()
    );
    assert!(
        !c.log("node2").contains("Heartbeat restart on node node1"),
        "a replay was taken for a restart of node1\n{}",
        c.log("node2")
    );
}

#[test]
fn crc_signed_forgeries_beside_a_sha1_key_change_nothing() {
    if !ha_lab::lab_available("hostile_crc") {
        return;
    }
    let started = Instant::now();
    let setup = Setup {
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        // A leftover crc line from a key rotation.
        auth: "1 sha1 hostile-lab-key\n2 crc",
        ..Setup::default()
    };
    let c = Cluster::start(&setup).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(20));
    wait_joined(&c, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<serde_json::Value> = ["node1", "node2"]
        .iter()
        .map(|n| c.status_json(n).expect("status"))
        .collect();

    // Forgeries in each node's name to the other, with its real generation and fresh seqs.
    let crc = Auth::from_keys(2, [(2, AuthMethod::Crc, Vec::new())]);
    let mut sent = 0u64;
    std::thread::scope(|s| {
        for (victim, target) in [("node1", "node2"), ("node2", "node1")] {
            let seen = capture(&c.lab, c.lab.ip(victim), Duration::from_millis(600));
            let last = seen.last().map(|b| decoded(b)).expect("captured a packet");
            let (generation, seq) = (hex_field(&last, "hg"), hex_field(&last, "seq"));
            let mut forged = Vec::new();
            for (i, (t, fields)) in [
                ("hb_takeover", vec![("rsc_hold", "all")]),
                ("ask_resources", vec![("rsc_hold", "all"), ("info", "me")]),
                (
                    "resource",
                    vec![("rsc_hold", "all"), ("rtype", "full"), ("isstable", "1")],
                ),
                ("shutdone", vec![("st", "dead")]),
                ("status", vec![("st", "dead"), ("dt", "ffffffff")]),
            ]
            .into_iter()
            .enumerate()
            {
                let mut m = Message::with_type(t);
                for (k, v) in fields {
                    m.push_str(k, v);
                }
                m.push_str("src", victim);
                m.push_str("seq", format!("{:x}", seq + 3 + i as u64));
                m.push_str("hg", format!("{generation:x}"));
                m.push_str("ts", "6a000000");
                m.push_str("ttl", "3");
                forged.push(crc.sign(&mut m.clone()));
                forged.push(crc.sign_classic(&mut m));
            }
            let to = c.lab.ip(target);
            let lab = &c.lab;
            let n = forged.len() as u64;
            s.spawn(move || {
                enter_client(lab).expect("client netns");
                let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("socket");
                for _ in 0..5 {
                    for p in &forged {
                        sock.send_to(p, (to, PORT)).expect("send");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            sent += 5 * n;
        }
    });
    std::thread::sleep(Duration::from_secs(2));

    assert_eq!(c.served_by().as_deref(), Some("node1"), "{}", c.logs());
    assert!(
        !c.lab.node("node2").has_addr(c.vip),
        "VIP on node2 after crc forgeries"
    );
    for (i, n) in ["node1", "node2"].iter().enumerate() {
        let st = c.status_json(n).expect("status");
        assert_eq!(st["peer"]["status"], "active", "{n}: {st:#}\n{}", c.logs());
        assert_eq!(st["node"]["standby"], false, "{n}: {st:#}");
        assert_eq!(st["node"]["shutting_down"], false, "{n}: {st:#}");
        assert!(
            st["peer"]["deadtime_ms"].as_u64() <= Some(5000),
            "{n}: the forged dt was used: {st:#}"
        );
        let bad = dropped(&st, "bad_auth") - dropped(&before[i], "bad_auth");
        eprintln!("{n}: {bad} crc-signed forgeries counted as bad_auth");
        assert_eq!(bad, sent / 2, "{n}: {}", st["packets"]);
    }
    eprintln!("crc forgeries: {sent} sent, all dropped");

    // A correctly signed packet with node2's own name from the client's address (a cloned
    // machine): counted and reported once per address, visible in `hactl status`.
    let mut clone = Message::with_type("status");
    clone.push_str("st", "active");
    clone.push_str("src", "node2");
    clone.push_str("seq", "1");
    clone.push_str("hg", "1");
    let clone = sha1(KEY).sign(&mut clone);
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_client(&c.lab).expect("client netns");
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("socket");
            for _ in 0..3 {
                sock.send_to(&clone, (c.lab.ip("node2"), PORT))
                    .expect("send");
            }
        });
    });
    let counted = c.lab.wait_until(Duration::from_secs(3), || {
        c.status_json("node2")
            .map(|st| st["packets"]["own_name_elsewhere"] == 3)
            .unwrap_or(false)
    });
    assert!(
        counted.is_some(),
        "{:#}",
        c.status_json("node2").expect("status")
    );
    assert_eq!(
        c.log("node2").matches("another node uses our name").count(),
        1,
        "{}",
        c.log("node2")
    );
    let text = c
        .lab
        .node("node2")
        .hactl(&c.hactl, &["status"])
        .expect("hactl status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("another node uses our name: 3"), "{text}");
    assert_eq!(
        c.status_json("node1").expect("status")["packets"]["own_name_elsewhere"],
        0
    );
    assert_eq!(c.served_by().as_deref(), Some("node1"));
    eprintln!(
        "own name from the client: counted 3, logged once; test took {:?}",
        started.elapsed()
    );
}
