//! End to end (issue 3): Debian's real Heartbeat 3.0.6 on one lab node and `had` on the other
//! form one cluster: it forms, fails over on a crash both ways, fails back, hands over at once
//! on a graceful stop, and moves the group on `hb_standby` / `hactl standby`. Plus: garbage
//! and mangled packets sent at had from the client namespace are dropped and counted.
//! Needs root and the heartbeat package; with HA_REQUIRE_LAB=1 it fails instead of skipping.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::time_to;
use ha_lab::{ClusterSpec, Group, Lab, LabOptions, find_bin, web_script};

const PROBE: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug)]
enum Media {
    Bcast,
    Ucast,
}

/// One mixed pair: which node runs Heartbeat, keys, media and timers.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    /// The node running Heartbeat; the other runs had. node1 is the group's preferred node.
    hb_node: &'static str,
    /// The authkeys key line (index 1).
    key: &'static str,
    media: Media,
    keepalive: &'static str,
    deadtime: &'static str,
    warntime: &'static str,
    initdead: &'static str,
    auto_failback: &'static str,
}

impl Scenario {
    fn had_node(&self) -> &'static str {
        if self.hb_node == "node1" {
            "node2"
        } else {
            "node1"
        }
    }

    fn deadtime(&self) -> Duration {
        parse_time(self.deadtime)
    }
}

fn parse_time(t: &str) -> Duration {
    match t.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.parse().unwrap_or(0)),
        None => Duration::from_secs_f64(t.parse().unwrap_or(0.0)),
    }
}

/// A running mixed pair.
struct Mixed {
    lab: Lab,
    sc: Scenario,
    had: PathBuf,
    hactl: PathBuf,
    vip: Ipv4Addr,
}

impl Mixed {
    fn start(sc: Scenario) -> anyhow::Result<Mixed> {
        let lab = Lab::new(LabOptions::default())?;
        let vip = lab.vip(0);
        ClusterSpec::new(&format!("interop lab: {} runs heartbeat", sc.hb_node))
            .logfacility(None)
            // had must not write a logfile into the host's /var/log: it logs to stderr.
            .heartbeat_on(sc.hb_node)
            .timers(sc.keepalive, sc.warntime, sc.deadtime, sc.initdead)
            .media([match sc.media {
                Media::Bcast => ha_lab::Media::Bcast,
                Media::Ucast => ha_lab::Media::Ucast,
            }])
            .auto_failback(sc.auto_failback)
            .line("crm off")
            .group(Group::new("node1").ip(vip, 24).res(format!("web::{vip}")))
            .auth(sc.key)
            .script("resource.d/web", &web_script(80))
            .write(&lab)?;
        let mut m = Mixed {
            lab,
            sc,
            had: find_bin("had")?,
            hactl: find_bin("hactl")?,
            vip,
        };
        m.start_node("node1")?;
        m.start_node("node2")?;
        Ok(m)
    }

    fn start_node(&mut self, n: &str) -> anyhow::Result<()> {
        if n == self.sc.hb_node {
            self.lab.node_mut(n).start_heartbeat()
        } else {
            let had = self.had.clone();
            self.lab.node_mut(n).start_had(&had, &[])
        }
    }

    fn hb(&self) -> &ha_lab::Node {
        self.lab.node(self.sc.hb_node)
    }

    fn served_by(&self) -> Option<String> {
        self.lab
            .client_http_get(self.vip, 80, Duration::from_millis(300))
            .ok()
            .map(|b| b.trim().to_string())
    }

    fn expect_served_by(&self, node: &str, timeout: Duration) -> Duration {
        match self
            .lab
            .wait_until(timeout, || self.served_by().as_deref() == Some(node))
        {
            Some(d) => d,
            None => panic!(
                "not served by {node} within {timeout:?} (now: {:?})\n{}",
                self.served_by(),
                self.logs()
            ),
        }
    }

    fn status_json(&self) -> anyhow::Result<serde_json::Value> {
        let n = self.lab.node(self.sc.had_node());
        let out = n.hactl(&self.hactl, &["status", "--json"])?;
        anyhow::ensure!(
            out.status.success(),
            "hactl status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn hactl(&self, args: &[&str]) -> std::process::Output {
        match self.lab.node(self.sc.had_node()).hactl(&self.hactl, args) {
            Ok(o) => o,
            Err(e) => panic!("hactl {args:?}: {e:#}"),
        }
    }

    fn hb_log(&self) -> String {
        std::fs::read_to_string(self.hb().heartbeat_log_path()).unwrap_or_default()
    }

    fn had_log(&self) -> String {
        std::fs::read_to_string(self.lab.node(self.sc.had_node()).log_path()).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- heartbeat ({}) ha-log ---\n{}\n--- had ({}) log ---\n{}",
            self.sc.hb_node,
            self.hb_log(),
            self.sc.had_node(),
            self.had_log()
        )
    }

    /// Both sides see each other active, and the group runs on exactly one node, stably.
    fn expect_formed(&self, owner: &str, timeout: Duration) {
        let had_node = self.sc.had_node();
        let hb_node = self.sc.hb_node;
        let formed = self.lab.wait_until(timeout, || {
            let hb_sees = self
                .hb()
                .cl_status(&["nodestatus", had_node])
                .is_ok_and(|s| s == "active");
            let had_sees = self
                .status_json()
                .is_ok_and(|s| s["peer"]["status"] == "active" && s["node"]["status"] == "active");
            let rsc = self.hb().cl_status(&["rscstatus"]).unwrap_or_default();
            hb_sees && had_sees && rsc != "transition" && !rsc.is_empty()
        });
        assert!(
            formed.is_some(),
            "cluster did not form within {timeout:?}: cl_status nodestatus {had_node} = {:?}, \
             rscstatus = {:?}, hactl peer = {:?}\n{}",
            self.hb().cl_status(&["nodestatus", had_node]),
            self.hb().cl_status(&["rscstatus"]),
            self.status_json().map(|s| s["peer"].clone()),
            self.logs()
        );
        self.expect_served_by(owner, timeout);
        let other = if owner == hb_node { had_node } else { hb_node };
        assert!(
            !self.lab.node(other).has_addr(self.vip),
            "VIP on both nodes\n{}",
            self.logs()
        );
    }

    /// The VIP is held by exactly `owner`.
    fn assert_only_owner(&self, owner: &str) {
        let other = if owner == "node1" { "node2" } else { "node1" };
        assert!(
            self.lab.node(owner).has_addr(self.vip),
            "VIP not on {owner}\n{}",
            self.logs()
        );
        assert!(
            !self.lab.node(other).has_addr(self.vip),
            "VIP also on {other}\n{}",
            self.logs()
        );
    }

    /// Heartbeat logged nothing bad about the pair (its own ERROR/CRIT lines).
    fn assert_hb_log_clean(&self) {
        let log = self.hb_log();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ERROR:") || l.contains("CRIT:"))
            // Expected around a crash of the peer: no STONITH device in a lab.
            .filter(|l| !l.contains("STONITH") && !l.contains("Shared disks"))
            // The lab's own limits, nothing to do with the peer: the memlock rlimit, and
            // setsid() under tini, which already made Heartbeat a process group leader.
            .filter(|l| !l.contains("Cannot lock ourselves into memory"))
            .filter(|l| !l.contains("setsid() failure"))
            // `auto_failback legacy` is Heartbeat's default, and it calls it deprecated.
            .filter(|l| !l.contains("Deprecated 'legacy' auto_failback"))
            .collect();
        assert!(
            bad.is_empty(),
            "heartbeat logged errors:\n{}\n{}",
            bad.join("\n"),
            self.logs()
        );
    }
}

const FAST: Scenario = Scenario {
    hb_node: "node1",
    key: "sha1 secret",
    media: Media::Bcast,
    keepalive: "200ms",
    deadtime: "1",
    warntime: "500ms",
    initdead: "3",
    auto_failback: "on",
};

/// A freshly started Heartbeat advertises deadtime + 2 s for its first ~5 s: let it settle.
const HB_SETTLE: Duration = Duration::from_secs(6);

#[test]
fn heartbeat_owns_sha1_bcast_forms_fails_over_and_back() {
    if !ha_lab::lab_with_heartbeat("interop_hb_owns_sha1_bcast") {
        return;
    }
    let sc = FAST;
    let mut m = Mixed::start(sc).expect("lab starts");
    m.expect_formed("node1", Duration::from_secs(20));
    std::thread::sleep(HB_SETTLE);
    m.assert_hb_log_clean();

    // had's view of Heartbeat: the group is held by node1 and node1's report is stable.
    let st = m.status_json().expect("status");
    assert_eq!(st["groups"][0]["held_by"], "node1", "{st:#}");

    // Hard crash of the Heartbeat node: had takes over within deadtime + 1 s.
    let probe = m.lab.probe(m.vip, 80, PROBE);
    let t0 = Instant::now();
    m.lab.node_mut("node1").crash().expect("crash");
    m.expect_served_by("node2", sc.deadtime() + Duration::from_secs(3));
    let took = time_to(&probe, "node2", t0).expect("prober saw node2");
    eprintln!("heartbeat node crashed -> had serves after {took:?}");
    assert!(
        took <= sc.deadtime() + Duration::from_secs(1),
        "takeover {took:?}\n{}",
        m.logs()
    );

    // Heartbeat comes back: auto_failback on gives node1 its group back.
    m.lab.node_mut("node1").power_on().expect("power on");
    let t1 = Instant::now();
    m.start_node("node1").expect("restart heartbeat");
    m.expect_served_by("node1", Duration::from_secs(30));
    let back = time_to(&probe, "node1", t1).expect("prober saw node1");
    let samples = probe.stop();
    let gap = ha_lab::max_gap_after(&samples, t1 + back / 2);
    eprintln!("failback to heartbeat: {back:?} after its start, client gap {gap:?}");
    m.expect_formed("node1", Duration::from_secs(15));
    m.assert_only_owner("node1");
}

/// `auto_failback legacy` on both sides (Heartbeat's default): the pair forms with the group on
/// its preferred node1, a crash of node1 moves it to node2, and node1's return takes it back
/// through Heartbeat's `ip-request` exchange. `hactl standby` is refused (Heartbeat has no
/// standby in legacy mode).
fn legacy_round_trip(hb_node: &'static str, name: &str) {
    if !ha_lab::lab_with_heartbeat(name) {
        return;
    }
    let sc = Scenario {
        hb_node,
        auto_failback: "legacy",
        ..FAST
    };
    let mut m = Mixed::start(sc).expect("lab starts");
    m.expect_formed("node1", Duration::from_secs(20));
    std::thread::sleep(HB_SETTLE);
    m.assert_only_owner("node1");

    let out = m.hactl(&["standby"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "standby in legacy mode: {err}");
    assert!(err.contains("legacy"), "reason: {err}");

    // Crash of the preferred node: node2 takes the group.
    let probe = m.lab.probe(m.vip, 80, PROBE);
    let t0 = Instant::now();
    m.lab.node_mut("node1").crash().expect("crash");
    m.expect_served_by("node2", Duration::from_secs(10));
    let took = time_to(&probe, "node2", t0).expect("prober saw node2");
    eprintln!("legacy, heartbeat on {hb_node}: node1 crashed -> node2 serves after {took:?}");
    if hb_node == "node1" {
        // had survives: its own deadtime rule.
        assert!(
            took <= sc.deadtime() + Duration::from_secs(1),
            "takeover {took:?}\n{}",
            m.logs()
        );
    }
    // (The crashed node1 keeps its addresses until it powers on, as a dead machine would.)

    // node1 comes back: it asks for its group (ip-request), node2 releases it and answers.
    m.lab.node_mut("node1").power_on().expect("power on");
    let t1 = Instant::now();
    m.start_node("node1").expect("restart node1");
    m.expect_served_by("node1", Duration::from_secs(30));
    let back = time_to(&probe, "node1", t1).expect("prober saw node1");
    let samples = probe.stop();
    let gap = ha_lab::max_gap_after(&samples, t1 + back / 2);
    eprintln!(
        "legacy, heartbeat on {hb_node}: node1 back -> serves {back:?} after its start, client gap {gap:?}"
    );
    m.expect_formed("node1", Duration::from_secs(15));
    m.assert_only_owner("node1");
    // The exchange went over the wire as Heartbeat's messages.
    let had_log = m.had_log();
    // A returning legacy Heartbeat either asks had (`ip-request`), or, when it believes it
    // is alone at comm-up, answers its own request and had releases on that answer: both
    // are Heartbeat's messages on the wire.
    let seen: &[&str] = if hb_node == "node1" {
        &["ip-request from node1", "ip-request-resp from node1"]
    } else {
        &["ip-request-resp from node2"]
    };
    assert!(
        seen.iter().any(|s| had_log.contains(s)),
        "none of {seen:?} in had's log\n{}",
        m.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    m.assert_only_owner("node1");
    m.assert_hb_log_clean();
}

#[test]
fn legacy_heartbeat_preferred_fails_back_through_ip_request() {
    legacy_round_trip("node1", "interop_legacy_hb_preferred");
}

#[test]
fn legacy_had_preferred_fails_back_through_ip_request() {
    legacy_round_trip("node2", "interop_legacy_had_preferred");
}

/// Waits until `node` serves, measured from `t0` by the prober; panics past `limit`.
fn handover(
    m: &Mixed,
    probe: &ha_lab::Prober,
    node: &str,
    t0: Instant,
    limit: Duration,
) -> Duration {
    m.expect_served_by(node, limit + Duration::from_secs(3));
    let took = time_to(probe, node, t0).expect("the prober saw the new owner");
    assert!(
        took <= limit,
        "{node} served after {took:?} > {limit:?}\n{}",
        m.logs()
    );
    took
}

#[test]
fn had_owns_md5_ucast_standby_takeover_crash_and_failback() {
    if !ha_lab::lab_with_heartbeat("interop_had_owns_md5_ucast") {
        return;
    }
    let sc = Scenario {
        hb_node: "node2",
        key: "md5 interop-md5-key",
        media: Media::Ucast,
        ..FAST
    };
    let mut m = Mixed::start(sc).expect("lab starts");
    m.expect_formed("node1", Duration::from_secs(20));
    std::thread::sleep(HB_SETTLE);
    let probe = m.lab.probe(m.vip, 80, PROBE);

    // hactl standby on had: Heartbeat takes the group through ask_resources me/other/done.
    let t0 = Instant::now();
    let out = m.hactl(&["standby"]);
    assert!(out.status.success(), "hactl standby: {out:?}\n{}", m.logs());
    let took = handover(&m, &probe, "node2", t0, Duration::from_secs(5));
    eprintln!("hactl standby -> heartbeat serves after {took:?}");
    m.expect_formed("node2", Duration::from_secs(10));

    // hactl takeover: hb_takeover to the peer, which stands by for us.
    let t1 = Instant::now();
    let out = m.hactl(&["takeover"]);
    assert!(
        out.status.success(),
        "hactl takeover: {out:?}\n{}",
        m.logs()
    );
    let took = handover(&m, &probe, "node1", t1, Duration::from_secs(5));
    eprintln!("hactl takeover -> had serves after {took:?}");
    m.expect_formed("node1", Duration::from_secs(10));

    // Crash had: Heartbeat takes over after its deadtime. What follows the deadtime here is
    // Heartbeat's own work (its IPaddr shell agent forks dozens of commands), not had's: on a
    // loaded 2-core machine it took 1.1 s past deadtime, so its bound is deadtime + 2 s.
    let t2 = Instant::now();
    m.lab.node_mut("node1").crash().expect("crash");
    let took = handover(
        &m,
        &probe,
        "node2",
        t2,
        sc.deadtime() + Duration::from_secs(2),
    );
    eprintln!("had crashed -> heartbeat serves after {took:?}");

    // had comes back: Heartbeat's auto_failback hands the group back (its standby of foreign).
    m.lab.node_mut("node1").power_on().expect("power on");
    let t3 = Instant::now();
    m.start_node("node1").expect("restart had");
    let took = handover(&m, &probe, "node1", t3, Duration::from_secs(20));
    eprintln!("failback to had: {took:?} after its start");
    m.expect_formed("node1", Duration::from_secs(10));
    drop(probe.stop());
    m.assert_hb_log_clean();
}

#[test]
fn heartbeat_owns_md5_bcast_hb_standby_then_graceful_stops_both_ways() {
    if !ha_lab::lab_with_heartbeat("interop_hb_owns_md5_bcast") {
        return;
    }
    let sc = Scenario {
        key: "md5 interop-md5-key",
        ..FAST
    };
    let mut m = Mixed::start(sc).expect("lab starts");
    m.expect_formed("node1", Duration::from_secs(20));
    std::thread::sleep(HB_SETTLE);
    let probe = m.lab.probe(m.vip, 80, PROBE);

    // hb_standby on the Heartbeat node moves the group to had.
    let t0 = Instant::now();
    m.hb().hb_standby("all").expect("hb_standby");
    let took = handover(&m, &probe, "node2", t0, Duration::from_secs(5));
    eprintln!("hb_standby -> had serves after {took:?}");
    m.expect_formed("node2", Duration::from_secs(10));

    // Graceful stop of had while it holds the group: Heartbeat takes over on shutdone.
    let t1 = Instant::now();
    m.lab
        .node("node2")
        .signal_had(nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM had");
    let took = handover(&m, &probe, "node1", t1, Duration::from_secs(3));
    eprintln!("had stopped -> heartbeat serves after {took:?}");
    assert!(
        m.hb_log().contains("Received shutdown notice from 'node2'"),
        "not via shutdone\n{}",
        m.logs()
    );
    let code = m
        .lab
        .node_mut("node2")
        .wait_had_exit(Duration::from_secs(10))
        .expect("wait");
    assert_eq!(code, Some(0), "{}", m.logs());

    // had again, then a graceful stop of Heartbeat while it holds the group.
    m.start_node("node2").expect("restart had");
    m.expect_formed("node1", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    let t2 = Instant::now();
    let code = m
        .lab
        .node_mut("node1")
        .stop_heartbeat(Duration::from_secs(30))
        .expect("stop heartbeat");
    let took = handover(&m, &probe, "node2", t2, Duration::from_secs(5));
    eprintln!("heartbeat stopped -> had serves after {took:?} (heartbeat exit {code:?})");
    assert!(
        m.had_log()
            .contains("Received shutdown notice from 'node1'"),
        "not via shutdone\n{}",
        m.logs()
    );
    let samples = probe.stop();
    eprintln!(
        "client gap over the run: {:?}",
        ha_lab::max_gap_after(&samples, t0)
    );
    m.assert_only_owner("node2");
}

#[test]
fn had_owns_sha1_ucast_hb_takeover_then_heartbeat_stops_gracefully() {
    if !ha_lab::lab_with_heartbeat("interop_had_owns_sha1_ucast") {
        return;
    }
    let sc = Scenario {
        hb_node: "node2",
        media: Media::Ucast,
        ..FAST
    };
    let mut m = Mixed::start(sc).expect("lab starts");
    m.expect_formed("node1", Duration::from_secs(20));
    std::thread::sleep(HB_SETTLE);
    let probe = m.lab.probe(m.vip, 80, PROBE);

    // hb_takeover on the Heartbeat node: had stands by for it.
    let t0 = Instant::now();
    m.hb().hb_takeover("all").expect("hb_takeover");
    let took = handover(&m, &probe, "node2", t0, Duration::from_secs(5));
    eprintln!("hb_takeover -> heartbeat serves after {took:?}");
    m.expect_formed("node2", Duration::from_secs(10));

    // Graceful stop of Heartbeat: had takes over at once.
    let t1 = Instant::now();
    let code = m
        .lab
        .node_mut("node2")
        .stop_heartbeat(Duration::from_secs(30))
        .expect("stop heartbeat");
    let took = handover(&m, &probe, "node1", t1, Duration::from_secs(5));
    eprintln!("heartbeat stopped -> had serves after {took:?} (heartbeat exit {code:?})");
    assert!(
        m.had_log()
            .contains("Received shutdown notice from 'node2'"),
        "not via shutdone\n{}",
        m.logs()
    );
    drop(probe.stop());
    m.assert_only_owner("node1");
}

/// Python run in the client namespace: hear a few real heartbeats (they are broadcast), then
/// send had garbage, truncated and bit-flipped copies of them, and one unsigned message.
const MANGLER: &str = r####"
import random, socket, sys, time
target, port = sys.argv[1], int(sys.argv[2])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
rx.bind(("", port)); rx.settimeout(5)
real = []
while len(real) < 5:
    real.append(rx.recv(65535))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rnd = random.Random(3)
sent = 0
def send(b):
    global sent
    tx.sendto(bytes(b), (target, port)); sent += 1
    # Paced, so that the kernel's socket buffer never overflows: every packet must reach had.
    time.sleep(0.002)
for i in range(100):
    send(rnd.randbytes(rnd.randrange(0, 1400)))
for p in real:
    for cut in range(0, len(p), 7):
        send(p[:cut])
    for _ in range(60):
        b = bytearray(p); j = rnd.randrange(len(b)); b[j] ^= 1 << rnd.randrange(8); send(b)
send(b">>>\nt=status\nst=active\nsrc=node9\n<<<\n")
send(b"###\n99999999999:(0)t=status,%%%\n")
send(b"###\n" + b"5:(0)t=x," * 7000 + b"%%%\n")
print(sent)
"####;

#[test]
fn malformed_packets_from_the_client_are_dropped_and_counted() {
    if !ha_lab::lab_with_heartbeat("interop_malformed") {
        return;
    }
    let m = Mixed::start(FAST).expect("lab starts");
    m.expect_formed("node1", Duration::from_secs(20));
    let had_node = m.sc.had_node();
    let before = m.status_json().expect("status");
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            m.lab.client_netns(),
            "python3",
            "-c",
            MANGLER,
        ])
        .arg(m.lab.ip(had_node).to_string())
        .arg("694")
        .output()
        .expect("run python3 in the client namespace");
    assert!(
        out.status.success(),
        "mangler: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(sent > 500, "sent {sent}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        m.lab.node(had_node).had_pid().is_some(),
        "had died\n{}",
        m.logs()
    );
    let after = m.status_json().expect("status after the flood");
    let total = |s: &serde_json::Value| -> u64 {
        s["packets"]["dropped"]
            .as_object()
            .map(|o| o.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0)
    };
    let dropped = total(&after) - total(&before);
    eprintln!(
        "sent {sent} mangled packets; dropped by reason now: {}",
        after["packets"]["dropped"]
    );
    // A bit flip in a field the signature does not cover cannot exist, but one in the trailer's
    // length or digits may still parse as another (bad) signature: every one must be dropped.
    assert!(
        dropped >= sent,
        "only {dropped} of {sent} counted as dropped: {}",
        after["packets"]
    );
    assert_eq!(after["peer"]["status"], "active", "{after:#}");
    m.expect_formed("node1", Duration::from_secs(5));
}
