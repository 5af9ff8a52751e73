//! End to end (issue 15): every medium and address family Heartbeat has. An all-IPv6 pair
//! (ucast6, an IPv6 VIP announced with unsolicited neighbour advertisements), a dual-stack
//! group over bcast + mcast6, a mixed had + Heartbeat 3.0.6 pair over mcast6, and the serial
//! medium over a socat pty pair (alone, beside bcast, and with Heartbeat at the other end).
//! Needs root (and the heartbeat package for the mixed cases); with HA_REQUIRE_LAB=1 it fails
//! instead of skipping.

mod common;

use std::fs::File;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::time_to;
use ha_lab::{ClusterSpec, Lab, LabOptions, PtyPair, find_bin, web_script, web6_script};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn6, recvfrom, setsockopt, socket,
    sockopt,
};

const PROBE: Duration = Duration::from_millis(20);
const WEB6_PORT: u16 = 8080;

/// Which daemon a node runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Daemon {
    Had,
    Heartbeat,
}

/// A running pair: node1 is the group's preferred node.
struct Pair {
    lab: Lab,
    daemons: [Daemon; 2],
    had: PathBuf,
    hactl: PathBuf,
    deadtime: Duration,
    /// The address the client probes, and its port.
    target: (IpAddr, u16),
    _pty: Option<PtyPair>,
}

/// What to write: timers, per-node media lines, haresources.
struct Spec<'a> {
    daemons: [Daemon; 2],
    ipv6: bool,
    keepalive: &'a str,
    deadtime: &'a str,
    warntime: &'a str,
    initdead: &'a str,
    /// Media lines for node i, given the lab and the pty pair (if any).
    media: &'a dyn Fn(usize, &Lab, Option<&PtyPair>) -> String,
    serial: bool,
    haresources: &'a dyn Fn(&Lab) -> String,
    /// Probe target, from the lab.
    target: &'a dyn Fn(&Lab) -> (IpAddr, u16),
}

fn name(i: usize) -> &'static str {
    ["node1", "node2"][i]
}

fn secs(t: &str) -> Duration {
    match t.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.parse().unwrap_or(0)),
        None => Duration::from_secs_f64(t.parse().unwrap_or(0.0)),
    }
}

impl Pair {
    fn start(s: &Spec<'_>) -> anyhow::Result<Pair> {
        let lab = Lab::new(LabOptions {
            ipv6: s.ipv6,
            ..LabOptions::default()
        })?;
        let pty = if s.serial {
            Some(PtyPair::new(lab.dir(), "null-modem")?)
        } else {
            None
        };
        let mut spec = ClusterSpec::new("issue 15 lab")
            .logfacility(None)
            .timers(s.keepalive, s.warntime, s.deadtime, s.initdead)
            .media([])
            .auto_failback("on")
            .line("crm off")
            .auth("sha1 v6-and-serial")
            .haresources_lines(&(s.haresources)(&lab))
            .script("resource.d/web", &web_script(80))
            .script("resource.d/web6", &web6_script(WEB6_PORT));
        for i in 0..2 {
            if s.daemons[i] == Daemon::Heartbeat {
                spec = spec.heartbeat_on(name(i));
            }
            spec = spec.node_media(name(i), &(s.media)(i, &lab, pty.as_ref()));
        }
        spec.write(&lab)?;
        let target = (s.target)(&lab);
        let mut p = Pair {
            lab,
            daemons: s.daemons,
            had: find_bin("had")?,
            hactl: find_bin("hactl")?,
            deadtime: secs(s.deadtime),
            target,
            _pty: pty,
        };
        p.start_node(0)?;
        p.start_node(1)?;
        Ok(p)
    }

    fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        match self.daemons[i] {
            Daemon::Heartbeat => self.lab.node_mut(name(i)).start_heartbeat(),
            Daemon::Had => {
                let had = self.had.clone();
                self.lab.node_mut(name(i)).start_had(&had, &[])
            }
        }
    }

    fn served_by(&self) -> Option<String> {
        self.lab
            .client_http_get(self.target.0, self.target.1, Duration::from_millis(300))
            .ok()
            .map(|b| b.trim().to_string())
    }

    fn served_by_at(&self, ip: IpAddr, port: u16) -> Option<String> {
        self.lab
            .client_http_get(ip, port, Duration::from_millis(300))
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

    fn log(&self, i: usize) -> String {
        let node = self.lab.node(name(i));
        let path = match self.daemons[i] {
            Daemon::Had => node.log_path(),
            Daemon::Heartbeat => node.heartbeat_log_path(),
        };
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- node1 ({:?}) log ---\n{}\n--- node2 ({:?}) log ---\n{}",
            self.daemons[0],
            self.log(0),
            self.daemons[1],
            self.log(1)
        )
    }

    fn status_json(&self, i: usize) -> anyhow::Result<serde_json::Value> {
        let out = self
            .lab
            .node(name(i))
            .hactl(&self.hactl, &["status", "--json"])?;
        anyhow::ensure!(
            out.status.success(),
            "hactl status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Both daemons see each other active.
    fn expect_formed(&self, timeout: Duration) -> Duration {
        let sees = |i: usize| {
            let other = name(1 - i);
            match self.daemons[i] {
                Daemon::Had => self.status_json(i).is_ok_and(|s| {
                    s["peer"]["status"] == "active" && s["node"]["status"] == "active"
                }),
                Daemon::Heartbeat => self
                    .lab
                    .node(name(i))
                    .cl_status(&["nodestatus", other])
                    .is_ok_and(|s| s == "active"),
            }
        };
        match self.lab.wait_until(timeout, || sees(0) && sees(1)) {
            Some(d) => d,
            None => panic!("the pair did not form within {timeout:?}\n{}", self.logs()),
        }
    }
}

/// Unsolicited neighbour advertisements seen by a raw ICMPv6 socket in the client namespace.
#[derive(Debug, Clone)]
struct Na {
    at: Instant,
    from: Ipv6Addr,
    target: Ipv6Addr,
    flags: u8,
    lladdr: Option<[u8; 6]>,
    checksum_ok: bool,
}

struct NaWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Na>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl NaWatch {
    fn start(netns: &str) -> NaWatch {
        let file = File::open(format!("/run/netns/{netns}")).expect("client netns");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let opened = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .and_then(|()| {
                        socket(
                            AddressFamily::Inet6,
                            SockType::Raw,
                            SockFlag::SOCK_CLOEXEC,
                            SockProtocol::IcmpV6,
                        )
                    });
                let fd = match opened {
                    Ok(fd) => fd,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let tv = nix::sys::time::TimeVal::new(0, 50_000);
                let _ = setsockopt(&fd, sockopt::ReceiveTimeout, &tv);
                let _ = ready_tx.send(Ok(()));
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, Some(from))) = recvfrom::<SockaddrIn6>(fd.as_raw_fd(), &mut buf)
                    else {
                        continue;
                    };
                    let m = &buf[..n];
                    if n < 24 || m[0] != 136 {
                        continue;
                    }
                    let target = Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).unwrap_or([0; 16]));
                    let lladdr = (n >= 32 && m[24] == 2 && m[25] == 1)
                        .then(|| <[u8; 6]>::try_from(&m[26..32]).unwrap_or([0; 6]));
                    let src = from.ip();
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push(Na {
                        at: Instant::now(),
                        from: src,
                        target,
                        flags: m[4],
                        lladdr,
                        checksum_ok: icmpv6_sums_to_zero(src, "ff02::1".parse().unwrap_or(src), m),
                    });
                }
            })
        };
        ready_rx
            .recv()
            .expect("NA watcher thread")
            .expect("raw ICMPv6 socket in the client namespace");
        NaWatch {
            stop,
            seen,
            handle: Some(handle),
        }
    }

    fn seen(&self) -> Vec<Na> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for NaWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One's-complement sum over the pseudo-header and the message, as received (checksum in).
fn icmpv6_sums_to_zero(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> bool {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&src.octets());
    bytes.extend_from_slice(&dst.octets());
    bytes.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 58]);
    bytes.extend_from_slice(msg);
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u64 = bytes
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// The MAC of a node's eth0.
fn mac_of(lab: &Lab, node: &str) -> [u8; 6] {
    let out = lab
        .node(node)
        .exec("cat /sys/class/net/eth0/address")
        .expect("read MAC");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut mac = [0u8; 6];
    for (i, part) in text.trim().split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    mac
}

#[test]
fn ipv6_pair_ucast6_fails_over_and_back_with_unsolicited_na() {
    if !ha_lab::lab_available("ipv6_pair_ucast6") {
        return;
    }
    let media = |i: usize, lab: &Lab, _: Option<&PtyPair>| {
        let peer = lab.ip6(name(1 - i));
        // The shared-file idiom: a line pointing at ourselves too is harmless.
        format!(
            "ucast6 {iface} {peer}\nucast6 {iface} {me}",
            iface = lab.iface(),
            me = lab.ip6(name(i))
        )
    };
    let haresources =
        |lab: &Lab| format!("node1 IPaddr2::{}/64/{} web6\n", lab.vip6(0), lab.iface());
    let target = |lab: &Lab| (IpAddr::V6(lab.vip6(0)), WEB6_PORT);
    let spec = Spec {
        daemons: [Daemon::Had, Daemon::Had],
        ipv6: true,
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        media: &media,
        serial: false,
        haresources: &haresources,
        target: &target,
    };
    let t_start = Instant::now();
    let mut p = Pair::start(&spec).expect("lab starts");
    let vip6 = p.lab.vip6(0);
    p.expect_formed(Duration::from_secs(15));
    p.expect_served_by("node1", Duration::from_secs(15));
    assert!(p.lab.node("node1").has_addr6(vip6));
    assert!(!p.lab.node("node2").has_addr6(vip6));
    let st = p.status_json(1).expect("status");
    eprintln!("links seen by node2: {}", st["peer"]["links"]);
    std::thread::sleep(Duration::from_secs(1));

    let na = NaWatch::start(p.lab.client_netns());
    let probe = p.lab.probe(IpAddr::V6(vip6), WEB6_PORT, PROBE);
    let t0 = Instant::now();
    p.lab.node_mut("node1").crash().expect("crash node1");
    p.expect_served_by("node2", p.deadtime + Duration::from_secs(3));
    let took = time_to(&probe, "node2", t0).expect("prober saw node2");
    eprintln!("IPv6: crash -> served by node2 over IPv6: {took:?}");
    assert!(
        took <= p.deadtime + Duration::from_secs(1),
        "IPv6 failover took {took:?} > deadtime + 1 s\n{}",
        p.logs()
    );
    // The unsolicited NA for the VIP from node2's MAC, with the override flag.
    let mac2 = mac_of(&p.lab, "node2");
    let got = p.lab.wait_until(Duration::from_secs(3), || {
        na.seen()
            .iter()
            .any(|n| n.at >= t0 && n.target == vip6 && n.lladdr == Some(mac2))
    });
    // The rest of the burst (IPaddr2's 5 packets, 200 ms apart).
    std::thread::sleep(Duration::from_millis(1200));
    let seen: Vec<Na> = na.seen().into_iter().filter(|n| n.target == vip6).collect();
    assert!(
        got.is_some(),
        "no unsolicited NA for {vip6} from node2 ({mac2:02x?}); seen: {seen:?}"
    );
    let first = seen
        .iter()
        .find(|n| n.lladdr == Some(mac2))
        .expect("an NA from node2");
    let burst = seen.iter().filter(|n| n.lladdr == Some(mac2)).count();
    eprintln!(
        "IPv6: {burst} NA(s) for the VIP from node2, the first {:?} after the crash; from {}",
        first.at.duration_since(t0),
        first.from
    );
    assert_eq!(
        first.flags & 0xe0,
        0x20,
        "override set, solicited and router clear"
    );
    assert!(first.checksum_ok, "ICMPv6 checksum");
    assert!(!p.lab.node("node1").has_addr6(vip6) || p.lab.node("node2").has_addr6(vip6));

    // Failback: node1 reboots (no VIP left) and starts had again.
    p.lab.node_mut("node1").power_on().expect("power on");
    assert!(
        !p.lab.node("node1").has_addr6(vip6),
        "power_on clears the VIP"
    );
    let t1 = Instant::now();
    p.start_node(0).expect("restart node1");
    p.expect_served_by("node1", Duration::from_secs(15));
    let back = time_to(&probe, "node1", t1).expect("prober saw node1");
    let samples = probe.stop();
    let gap = ha_lab::max_gap_after(&samples, t1 + back / 2);
    eprintln!("IPv6: failback {back:?} after node1's start; client gap {gap:?}");
    assert!(!p.lab.node("node2").has_addr6(vip6), "VIP6 left on node2");
    let mac1 = mac_of(&p.lab, "node1");
    assert!(
        p.lab
            .wait_until(Duration::from_secs(3), || na
                .seen()
                .iter()
                .any(|n| n.at >= t1 && n.target == vip6 && n.lladdr == Some(mac1)))
            .is_some(),
        "no NA from node1 on failback"
    );
    eprintln!("ipv6_pair_ucast6: {:?} in all", t_start.elapsed());
}

/// Samples which node holds each of two VIPs every ~5 ms: the group moves as one, and
/// never sits on both nodes.
struct OwnerSampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl OwnerSampler {
    fn start(netns: [String; 2], v4: std::net::Ipv4Addr, v6: Ipv6Addr) -> OwnerSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                let mut bad = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let held: Vec<(bool, bool)> = netns
                        .iter()
                        .map(|ns| {
                            let out = std::process::Command::new("ip")
                                .args(["-n", ns, "-o", "addr", "show", "dev", "eth0"])
                                .output()
                                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                                .unwrap_or_default();
                            (
                                out.contains(&format!(" {v4}/")),
                                out.contains(&format!(" {v6}/")),
                            )
                        })
                        .collect();
                    n += 1;
                    let (a, b) = (held[0], held[1]);
                    if (a.0 && b.0) || (a.1 && b.1) {
                        bad.push(format!("sample {n}: a VIP on both nodes {held:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                (n, bad)
            })
        };
        OwnerSampler {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

#[test]
fn dual_stack_group_over_bcast_and_mcast6_moves_as_one() {
    if !ha_lab::lab_available("dual_stack_group") {
        return;
    }
    let media = |_: usize, lab: &Lab, _: Option<&PtyPair>| {
        format!(
            "bcast {iface}\nmcast6 {iface} ff12::694:15 694 1 0",
            iface = lab.iface()
        )
    };
    let haresources = |lab: &Lab| {
        format!(
            "node1 IPaddr::{v4}/24/{iface} IPv6addr::{v6}/64/{iface} web::{v4} web6\n",
            v4 = lab.vip(0),
            v6 = lab.vip6(0),
            iface = lab.iface()
        )
    };
    let target = |lab: &Lab| (IpAddr::V4(lab.vip(0)), 80);
    let spec = Spec {
        daemons: [Daemon::Had, Daemon::Had],
        ipv6: true,
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        media: &media,
        serial: false,
        haresources: &haresources,
        target: &target,
    };
    let t_start = Instant::now();
    let mut p = Pair::start(&spec).expect("lab starts");
    let (v4, v6) = (p.lab.vip(0), p.lab.vip6(0));
    p.expect_formed(Duration::from_secs(15));
    p.expect_served_by("node1", Duration::from_secs(15));
    // web6 is the group's last resource: it may start a moment after web answers.
    expect_at(
        &p,
        IpAddr::V6(v6),
        WEB6_PORT,
        "node1",
        Duration::from_secs(5),
    );
    // Both media carry heartbeats: one link name (eth0) fed by the IPv4 and IPv6 sockets.
    let st = p.status_json(0).expect("status");
    eprintln!("dual stack: node1 sees links {}", st["peer"]["links"]);

    let t0 = Instant::now();
    p.lab.node_mut("node1").crash().expect("crash node1");
    p.expect_served_by("node2", p.deadtime + Duration::from_secs(3));
    let v6_at = p
        .lab
        .wait_until(Duration::from_secs(3), || {
            p.served_by_at(IpAddr::V6(v6), WEB6_PORT).as_deref() == Some("node2")
        })
        .expect("IPv6 VIP served by node2 too");
    eprintln!(
        "dual stack: crash -> both VIPs on node2 after {:?}",
        t0.elapsed() - v6_at
    );
    assert!(p.lab.node("node2").has_addr(v4) && p.lab.node("node2").has_addr6(v6));

    // A crashed node keeps its addresses on a dead link; power_on clears them. From then on
    // both nodes are live, and neither VIP may ever be on both.
    p.lab.node_mut("node1").power_on().expect("power on");
    let sampler = OwnerSampler::start(
        [
            p.lab.node("node1").netns().to_string(),
            p.lab.node("node2").netns().to_string(),
        ],
        v4,
        v6,
    );
    p.start_node(0).expect("restart node1");
    p.expect_served_by("node1", Duration::from_secs(15));
    p.lab
        .wait_until(Duration::from_secs(3), || {
            p.served_by_at(IpAddr::V6(v6), WEB6_PORT).as_deref() == Some("node1")
        })
        .expect("IPv6 VIP back on node1");
    std::thread::sleep(Duration::from_millis(300));
    let (n, bad) = sampler.finish();
    eprintln!(
        "dual stack: failback sampled {n} times at ~5 ms, {} overlaps",
        bad.len()
    );
    assert!(bad.is_empty(), "{}\n{}", bad.join("\n"), p.logs());
    let n2 = p.lab.node("node2");
    assert!(!n2.has_addr(v4) && !n2.has_addr6(v6), "a VIP left on node2");
    eprintln!("dual_stack_group: {:?} in all", t_start.elapsed());
}

/// Heartbeat opened the medium (`opened` is its log line) and authenticated every packet.
fn assert_hb_log_sane(p: &Pair, opened: &str) {
    let log = p.log(0);
    assert!(
        log.contains(opened),
        "Heartbeat's log lacks {opened:?}\n{log}"
    );
    for bad in ["failed authentication", "bad packet", "Invalid message"] {
        assert!(!log.contains(bad), "Heartbeat logged {bad:?}\n{log}");
    }
}

/// A freshly started Heartbeat advertises deadtime + 2 s for its first ~5 s: let it settle.
const HB_SETTLE: Duration = Duration::from_secs(6);

fn ipv4_web_group(lab: &Lab) -> String {
    format!(
        "node1 IPaddr::{vip}/24/{iface} web::{vip}\n",
        vip = lab.vip(0),
        iface = lab.iface()
    )
}

fn ipv4_target(lab: &Lab) -> (IpAddr, u16) {
    (IpAddr::V4(lab.vip(0)), 80)
}

/// The client's view of `ip:port`: which node answers.
fn served_at(p: &Pair, ip: IpAddr, port: u16) -> Option<String> {
    p.served_by_at(ip, port)
}

fn expect_at(p: &Pair, ip: IpAddr, port: u16, node: &str, timeout: Duration) {
    if p.lab
        .wait_until(timeout, || served_at(p, ip, port).as_deref() == Some(node))
        .is_none()
    {
        panic!(
            "{ip}:{port} not served by {node} within {timeout:?} (now {:?})\n{}",
            served_at(p, ip, port),
            p.logs()
        );
    }
}

/// Crash node `i`, which holds the group behind `ip:port`: the other node serves it within
/// deadtime + 1 s; `i` comes back and serves it again (auto_failback on).
fn crash_and_back(p: &mut Pair, i: usize, settle: Duration, (ip, port): (IpAddr, u16)) {
    let (me, other) = (name(i), name(1 - i));
    expect_at(p, ip, port, me, Duration::from_secs(30));
    std::thread::sleep(settle);
    let probe = p.lab.probe(ip, port, PROBE);
    let t0 = Instant::now();
    p.lab.node_mut(me).crash().expect("crash");
    expect_at(p, ip, port, other, p.deadtime + Duration::from_secs(3));
    let took = time_to(&probe, other, t0).expect("prober saw the takeover");
    eprintln!(
        "{:?} on {me} crashed -> {:?} on {other} serves {ip} after {took:?}",
        p.daemons[i],
        p.daemons[1 - i]
    );
    // had's detection is held to deadtime + 1 s; Heartbeat's own (its 250 ms check, then
    // IPaddr through ifconfig and send_arp) gets one second more on a loaded machine.
    let limit = match p.daemons[1 - i] {
        Daemon::Had => p.deadtime + Duration::from_secs(1),
        Daemon::Heartbeat => p.deadtime + Duration::from_secs(2),
    };
    assert!(took <= limit, "takeover {took:?} > {limit:?}\n{}", p.logs());
    p.lab.node_mut(me).power_on().expect("power on");
    let t1 = Instant::now();
    p.start_node(i).expect("restart");
    p.expect_formed(Duration::from_secs(30));
    expect_at(p, ip, port, me, Duration::from_secs(30));
    let back = time_to(&probe, me, t1).expect("prober saw the failback");
    eprintln!(
        "failback to {:?} on {me}: {back:?} after its start",
        p.daemons[i]
    );
}

#[test]
fn mixed_heartbeat_and_had_over_mcast6_fail_over_both_ways() {
    if !ha_lab::lab_with_heartbeat("mixed_mcast6") {
        return;
    }
    let media = |_: usize, lab: &Lab, _: Option<&PtyPair>| {
        format!("mcast6 {} ff12::694:16 694 1 0", lab.iface())
    };
    // One group preferring each node, so that each daemon holds one when the other dies.
    let groups = |lab: &Lab| {
        format!(
            "node1 IPaddr::{a}/24/{iface} web::{a}\nnode2 IPaddr::{b}/24/{iface} web::{b}\n",
            a = lab.vip(0),
            b = lab.vip(1),
            iface = lab.iface()
        )
    };
    let spec = Spec {
        daemons: [Daemon::Heartbeat, Daemon::Had],
        ipv6: true,
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        media: &media,
        serial: false,
        haresources: &groups,
        target: &ipv4_target,
    };
    let t_start = Instant::now();
    let mut p = Pair::start(&spec).expect("lab starts");
    let formed = p.expect_formed(Duration::from_secs(30));
    eprintln!("mcast6 mixed pair formed after {formed:?}");
    let (a, b) = (IpAddr::V4(p.lab.vip(0)), IpAddr::V4(p.lab.vip(1)));
    expect_at(&p, a, 80, "node1", Duration::from_secs(30));
    expect_at(&p, b, 80, "node2", Duration::from_secs(30));
    let hb_links = p
        .lab
        .node("node1")
        .cl_status(&["listhblinks", "node2"])
        .unwrap_or_default();
    eprintln!("heartbeat's links to node2 over mcast6: {hb_links:?}");
    assert_hb_log_sane(&p, "UDP multicast heartbeat started for [ff12::694:16]");
    // Heartbeat crashes: had takes node1's group; Heartbeat returns and takes it back.
    crash_and_back(&mut p, 0, HB_SETTLE, (a, 80));
    // had crashes: Heartbeat takes node2's group; had returns and takes it back.
    crash_and_back(&mut p, 1, HB_SETTLE, (b, 80));
    expect_at(&p, a, 80, "node1", Duration::from_secs(5));
    eprintln!("mixed_mcast6: {:?} in all", t_start.elapsed());
}

/// The lab gate plus `socat`, which makes the null-modem cable.
fn serial_gate(test: &str) -> bool {
    let have = || {
        std::process::Command::new("socat")
            .arg("-V")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ha_lab::lab_available(test)
        && ha_lab::lab_needs(test, have(), "socat is not installed (just setup)")
}

fn serial_media(extra: &'static str) -> impl Fn(usize, &Lab, Option<&PtyPair>) -> String {
    move |i, lab, pty| {
        let end = pty
            .map(|p| p.end(i).display().to_string())
            .unwrap_or_default();
        let extra = extra.replace("IFACE", lab.iface());
        format!("baud 115200\nserial {end}\n{extra}")
    }
}

#[test]
fn serial_alone_carries_the_pair_and_fails_over() {
    if !serial_gate("serial_alone") {
        return;
    }
    let media = serial_media("");
    let spec = Spec {
        daemons: [Daemon::Had, Daemon::Had],
        ipv6: false,
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        media: &media,
        serial: true,
        haresources: &ipv4_web_group,
        target: &ipv4_target,
    };
    let t_start = Instant::now();
    let mut p = Pair::start(&spec).expect("lab starts");
    let formed = p.expect_formed(Duration::from_secs(15));
    eprintln!("serial: pair formed over the pty after {formed:?}");
    let st = p.status_json(1).expect("status");
    let links = st["peer"]["links"].to_string();
    assert!(
        links.contains("null-modem-b"),
        "the link is the tty: {links}"
    );
    let target = p.target;
    crash_and_back(&mut p, 0, Duration::from_secs(1), target);
    eprintln!("serial_alone: {:?} in all", t_start.elapsed());
}

#[test]
fn serial_beside_bcast_keeps_the_pair_when_the_network_is_cut() {
    if !serial_gate("serial_plus_bcast") {
        return;
    }
    let media = serial_media("bcast IFACE");
    let spec = Spec {
        daemons: [Daemon::Had, Daemon::Had],
        ipv6: false,
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        media: &media,
        serial: true,
        haresources: &ipv4_web_group,
        target: &ipv4_target,
    };
    let t_start = Instant::now();
    let p = Pair::start(&spec).expect("lab starts");
    p.expect_formed(Duration::from_secs(15));
    p.expect_served_by("node1", Duration::from_secs(15));
    let vip = p.lab.vip(0);
    // Cut node2's network: bcast dies, the serial link carries on; nothing moves.
    p.lab.node("node2").cut_link().expect("cut");
    let t0 = Instant::now();
    let mut overlaps = 0;
    let mut samples = 0;
    while t0.elapsed() < p.deadtime * 4 {
        samples += 1;
        if p.lab.node("node2").has_addr(vip) {
            overlaps += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = p.status_json(1).expect("status");
    eprintln!(
        "serial + bcast, network cut for {:?}: {samples} samples, VIP on node2 in {overlaps}; node2 sees peer {} links {}",
        t0.elapsed(),
        st["peer"]["status"],
        st["peer"]["links"]
    );
    assert_eq!(
        overlaps,
        0,
        "the VIP moved although serial was up\n{}",
        p.logs()
    );
    assert_eq!(st["peer"]["status"], "active", "{st:#}");
    assert!(p.lab.node("node1").has_addr(vip));
    assert!(
        p.log(1).contains("eth0") && p.log(1).contains("dead"),
        "the bcast link was seen dead\n{}",
        p.log(1)
    );
    p.lab.node("node2").restore_link().expect("restore");
    p.expect_served_by("node1", Duration::from_secs(5));
    eprintln!("serial_plus_bcast: {:?} in all", t_start.elapsed());
}

#[test]
fn mixed_heartbeat_and_had_over_one_pty_pair_form_one_cluster() {
    if !ha_lab::lab_with_heartbeat("mixed_serial") || !serial_gate("mixed_serial") {
        return;
    }
    let media = serial_media("");
    let spec = Spec {
        daemons: [Daemon::Heartbeat, Daemon::Had],
        ipv6: false,
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        media: &media,
        serial: true,
        haresources: &ipv4_web_group,
        target: &ipv4_target,
    };
    let t_start = Instant::now();
    let mut p = Pair::start(&spec).expect("lab starts");
    let formed = p.expect_formed(Duration::from_secs(30));
    eprintln!("serial mixed pair formed after {formed:?}");
    p.expect_served_by("node1", Duration::from_secs(30));
    assert!(!p.lab.node("node2").has_addr(p.lab.vip(0)));
    assert_hb_log_sane(&p, "Starting serial heartbeat on tty");
    let target = p.target;
    crash_and_back(&mut p, 0, HB_SETTLE, target);
    eprintln!("mixed_serial: {:?} in all", t_start.elapsed());
}

#[test]
fn ping6_and_a_mixed_ping_group_break_the_tie_over_ipv6() {
    if !ha_lab::lab_available("ping6_tiebreak") {
        return;
    }
    // The client is the ping node, over IPv6: alone (`ping6`) and as the only live member of
    // a group whose IPv4 member does not exist.
    let media = |i: usize, lab: &Lab, _: Option<&PtyPair>| {
        format!(
            "ucast6 {iface} {peer}\nping6 {client6}\nping_group up {ghost} {client6}\ndeadping 1",
            iface = lab.iface(),
            peer = lab.ip6(name(1 - i)),
            client6 = lab.ip6("client"),
            ghost = lab.vip(99),
        )
    };
    let haresources =
        |lab: &Lab| format!("node1 IPaddr2::{}/64/{} web6\n", lab.vip6(0), lab.iface());
    let target = |lab: &Lab| (IpAddr::V6(lab.vip6(0)), WEB6_PORT);
    let spec = Spec {
        daemons: [Daemon::Had, Daemon::Had],
        ipv6: true,
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "3",
        media: &media,
        serial: false,
        haresources: &haresources,
        target: &target,
    };
    let p = Pair::start(&spec).expect("lab starts");
    p.expect_formed(Duration::from_secs(15));
    p.expect_served_by("node1", Duration::from_secs(15));
    let counted = p.lab.wait_until(Duration::from_secs(5), || {
        (0..2).all(|i| p.log(i).contains("ping nodes: 2 of 2 reachable"))
    });
    assert!(
        counted.is_some(),
        "IPv6 ping nodes not counted\n{}",
        p.logs()
    );
    // node1 can no longer reach the client over IPv6 (a blackhole route in node1: the
    // client's own route would not do, node1 may source its pings from the VIP): node1 sees
    // 0 of 2, node2 still 2. Heartbeats between the nodes are untouched.
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            p.lab.node("node1").netns(),
            "-6",
            "route",
            "add",
            "blackhole",
            &format!("{}/128", p.lab.ip6("client")),
        ])
        .output()
        .expect("ip route");
    assert!(out.status.success(), "{out:?}");
    let t0 = Instant::now();
    p.expect_served_by("node2", Duration::from_secs(5));
    eprintln!(
        "ping6: ping nodes lost on the active side -> served by node2 after {:?} (deadping 1 s)",
        t0.elapsed()
    );
    assert!(
        p.log(0).contains("ping nodes: 0 of 2 reachable"),
        "{}",
        p.logs()
    );
    assert!(!p.lab.node("node1").has_addr6(p.lab.vip6(0)));
}
