//! The lab itself: a switch namespace with a bridge, one namespace per node
//! and one for the client, all named after the run id and removed on drop.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http::{self, Prober};
use crate::netns;
use crate::node::{self, IFACE, Node};
use crate::record::Record;

/// What to build.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Node names, in address order (.11, .12, ...).
    pub nodes: Vec<String>,
    /// IPv6 on in the node and client namespaces: 2001:db8:0:n::k/64 (n and k as 16-bit
    /// groups) beside 198.18.n.k/24,
    /// without DAD or router solicitations (off by default: quieter captures and timings).
    pub ipv6: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            nodes: vec!["node1".into(), "node2".into()],
            ipv6: false,
        }
    }
}

impl LabOptions {
    /// Options for `n` nodes named node1..nodeN.
    pub fn with_nodes(n: usize) -> Self {
        LabOptions {
            nodes: (1..=n).map(|i| format!("node{i}")).collect(),
            ..LabOptions::default()
        }
    }

    /// Two nodes with IPv6 on.
    pub fn dual_stack() -> Self {
        LabOptions {
            ipv6: true,
            ..LabOptions::default()
        }
    }
}

/// Host part of the first node's address; node k gets NODE_BASE + k - 1.
const NODE_BASE: u8 = 11;
/// Host part of the client's address.
const CLIENT_HOST: u8 = 50;
/// Most nodes that fit below the client's address.
const MAX_NODES: usize = (CLIENT_HOST - NODE_BASE) as usize;
/// Every lab subnet is a /24.
const PREFIX_LEN: u8 = 24;
/// The floor's UDP port (no daemon in the lab listens on it).
const FLOOR_PORT: u16 = 7694;
/// And, with IPv6, a /64 of the documentation prefix.
const PREFIX6_LEN: u8 = 64;

/// 2001:db8:0:`subnet`::`host`.
fn ip6_of(subnet: u8, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, u16::from(subnet), 0, 0, 0, host)
}

/// A running lab. Dropping it kills every process in its namespaces (by
/// PID), deletes the namespaces and its scratch dir and its record.
#[derive(Debug)]
pub struct Lab {
    id: String,
    subnet: u8,
    dir: PathBuf,
    switch_ns: String,
    bridge: String,
    client_ns: String,
    client_port: String,
    nodes: Vec<Node>,
    record: Record,
    kept: bool,
    ipv6: bool,
}

impl Lab {
    /// Builds the lab; fails with a clear message when not root or tools are missing.
    pub fn new(opts: LabOptions) -> anyhow::Result<Lab> {
        if !nix::unistd::geteuid().is_root() {
            bail!("the lab needs root (network namespaces)");
        }
        check_node_names(&opts.nodes)?;
        netns::ip_output(&["-V"]).context("the lab needs iproute2's `ip`")?;
        let id = new_id();
        let subnet = pick_subnet(&id);
        let dir = crate::record::scratch_dir(&id);
        crate::record::prepare_scratch_base()?;
        let switch_ns = format!("{id}-sw");
        let client_ns = format!("{id}-cl");
        let nodes: Vec<Node> = opts
            .nodes
            .iter()
            .enumerate()
            .map(|(i, name)| Node {
                name: name.clone(),
                netns: format!("{id}-n{}", i + 1),
                ip: Ipv4Addr::new(198, 18, subnet, NODE_BASE + i as u8),
                prefix_len: PREFIX_LEN,
                ip6: opts
                    .ipv6
                    .then(|| ip6_of(subnet, u16::from(NODE_BASE) + i as u16)),
                dir: dir.join(name),
                switch_ns: switch_ns.clone(),
                switch_port: format!("{id}n{}p", i + 1),
                child: None,
            })
            .collect();
        let mut all_ns = vec![switch_ns.clone()];
        all_ns.extend(nodes.iter().map(|n| n.netns.clone()));
        all_ns.push(client_ns.clone());
        // The record comes first, so that whatever gets created below is
        // listed even if this process dies half-way.
        let record = Record::new(&id, subnet, all_ns, dir.clone(), opts.nodes.clone());
        record.write()?;
        let mut lab = Lab {
            bridge: format!("{id}br"),
            client_port: format!("{id}clp"),
            id,
            subnet,
            dir,
            switch_ns,
            client_ns,
            nodes,
            record,
            kept: false,
            ipv6: opts.ipv6,
        };
        // On error `lab` is dropped here, which removes the half-built lab.
        lab.build()?;
        Ok(lab)
    }

    fn build(&mut self) -> anyhow::Result<()> {
        for n in &self.nodes {
            for d in [
                n.config_dir().join("resource.d"),
                n.state_dir(),
                n.run_dir(),
            ] {
                crate::record::mkdir_0755(&d)?;
            }
        }
        for ns in &self.record.netns {
            netns::ip(&["netns", "add", ns])?;
            netns::ip(&["-n", ns, "link", "set", "lo", "up"])?;
            if self.ipv6 && *ns != self.switch_ns {
                quiet_ipv6(ns)?;
            } else {
                disable_ipv6(ns)?;
            }
        }
        let sw = self.switch_ns.as_str();
        netns::ip(&[
            "-n",
            sw,
            "link",
            "add",
            &self.bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            // Multicast reaches every port, as on a dumb switch: no MLD/IGMP snooping state
            // that a restarted node would have to rebuild.
            "mcast_snooping",
            if self.ipv6 { "0" } else { "1" },
            // A switch filters nothing. With br_netfilter loaded on the host, every bridged
            // frame would go through this namespace's (empty) iptables, and the sender's
            // CPU pays for it (a large share of a heartbeat's send cost here, by perf; none
            // on a LAN).
            "nf_call_iptables",
            "0",
            "nf_call_ip6tables",
            "0",
            "nf_call_arptables",
            "0",
        ])?;
        netns::ip(&["-n", sw, "link", "set", &self.bridge, "up"])?;
        let mut hosts: Vec<(String, String, Ipv4Addr)> = self
            .nodes
            .iter()
            .map(|n| (n.netns.clone(), n.switch_port.clone(), n.ip))
            .collect();
        hosts.push((
            self.client_ns.clone(),
            self.client_port.clone(),
            self.ip("client"),
        ));
        for (ns, port, ip) in hosts {
            netns::ip(&[
                "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", IFACE, "netns", &ns,
            ])?;
            netns::ip(&["-n", sw, "link", "set", &port, "master", &self.bridge, "up"])?;
            netns::ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/{PREFIX_LEN}"),
                "brd",
                "+",
                "dev",
                IFACE,
            ])?;
            if self.ipv6 {
                let host = u16::from(ip.octets()[3]);
                netns::ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{}/{PREFIX6_LEN}", ip6_of(self.subnet, host)),
                    "dev",
                    IFACE,
                    "nodad",
                ])?;
            }
            netns::ip(&["-n", &ns, "link", "set", IFACE, "up"])?;
        }
        Ok(())
    }

    /// The run id (`hl` + 6 hex digits); every name the lab creates starts with it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first three octets of the lab's /24, e.g. "198.18.7".
    pub fn subnet_prefix(&self) -> String {
        format!("198.18.{}", self.subnet)
    }

    /// The address of "client" or of a node by name. Panics on an unknown host.
    pub fn ip(&self, host: &str) -> Ipv4Addr {
        if host == "client" {
            return Ipv4Addr::new(198, 18, self.subnet, CLIENT_HOST);
        }
        self.node(host).ip
    }

    /// Virtual address number k: 198.18.n.(100+k).
    pub fn vip(&self, k: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 100u8.saturating_add(k))
    }

    /// The IPv6 address of "client" or of a node (labs built with `ipv6`). Panics on an
    /// unknown host.
    pub fn ip6(&self, host: &str) -> Ipv6Addr {
        let v4 = self.ip(host);
        ip6_of(self.subnet, u16::from(v4.octets()[3]))
    }

    /// IPv6 virtual address number k: 2001:db8:0:n::(0x100+k), `…::100` for k = 0.
    pub fn vip6(&self, k: u8) -> Ipv6Addr {
        ip6_of(self.subnet, 0x100 + u16::from(k))
    }

    /// Whether the lab was built with IPv6.
    pub fn has_ipv6(&self) -> bool {
        self.ipv6
    }

    /// The node-side interface name, "eth0" in every node.
    pub fn iface(&self) -> &str {
        IFACE
    }

    /// The node named `name`. Panics on an unknown name (a test's own mistake).
    pub fn node(&self, name: &str) -> &Node {
        match self.nodes.iter().find(|n| n.name == name) {
            Some(n) => n,
            None => panic!("lab {} has no node {name:?}", self.id),
        }
    }

    /// The node named `name`, mutable. Panics on an unknown name.
    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        let id = self.id.clone();
        match self.nodes.iter_mut().find(|n| n.name == name) {
            Some(n) => n,
            None => panic!("lab {id} has no node {name:?}"),
        }
    }

    /// All nodes, in address order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The run's scratch dir, /var/lib/ha-lab/<id>/.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The client's network namespace.
    pub fn client_netns(&self) -> &str {
        &self.client_ns
    }

    /// The switch's network namespace (holding the bridge and the switch-side veths).
    pub fn switch_netns(&self) -> &str {
        &self.switch_ns
    }

    /// The bridge's name (in the switch namespace).
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The record written to /run/ha-lab/<id>.json.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// `GET /` from the client namespace (in-process, on a thread that joined it); the body
    /// of a 2xx answer.
    pub fn client_http_get(
        &self,
        ip: impl Into<IpAddr>,
        port: u16,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        self.client_http_get_path(ip, port, "/", timeout)
    }

    /// `GET path` from the client namespace; the body of a 2xx answer.
    pub fn client_http_get_path(
        &self,
        ip: impl Into<IpAddr>,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let ip = ip.into();
        netns::in_netns(&self.client_ns, || {
            http::http_get_path(ip, port, path, timeout)
        })
    }

    /// Polls `f` every 10 ms until it returns true (the time that took) or `timeout` passes (None).
    pub fn wait_until(&self, timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if f() {
                return Some(start.elapsed());
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Probes http://ip:port/ from the client every `every`, each probe
    /// given max(10 × every, 100 ms) capped at 300 ms: a probe sent to a dead
    /// MAC must give up soon, as the TCP retry would only come after 1 s.
    /// Panics if the client namespace is gone (the lab is broken).
    pub fn probe(&self, ip: impl Into<IpAddr>, port: u16, every: Duration) -> Prober {
        let timeout = (every * 10).clamp(Duration::from_millis(100), Duration::from_millis(300));
        match self.probe_with_timeout(ip, port, every, timeout) {
            Ok(p) => p,
            Err(e) => panic!("lab {}: cannot start a prober: {e:#}", self.id),
        }
    }

    /// Like [`Lab::probe`], with an explicit per-probe timeout.
    pub fn probe_with_timeout(
        &self,
        ip: impl Into<IpAddr>,
        port: u16,
        every: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Prober> {
        Prober::start(&self.client_ns, ip.into(), port, every, timeout)
    }

    /// Probes http://ip:port/ from the client every `every` on a fresh connection each,
    /// `workers` probes at most in flight: a probe stuck on an address nobody holds does not
    /// delay the next tick, so a gap is seen at the tick's resolution. [`Prober::rate`] tells
    /// the pace actually achieved.
    pub fn probe_concurrent(
        &self,
        ip: impl Into<IpAddr>,
        port: u16,
        every: Duration,
        timeout: Duration,
        workers: usize,
    ) -> anyhow::Result<Prober> {
        Prober::start_pool(&self.client_ns, ip.into(), port, every, timeout, workers)
    }

    /// The lab's floor (see [`crate::Floor`]): a sender and a receiver of one heartbeat-sized
    /// broadcast every `every` in each node's namespace, on a UDP port no daemon uses.
    pub fn floor(&self, every: Duration) -> anyhow::Result<crate::Floor> {
        let ns: Vec<&str> = self.nodes.iter().map(|n| n.netns.as_str()).collect();
        let broadcast = Ipv4Addr::new(198, 18, self.subnet, 255);
        crate::Floor::start(&ns, broadcast, FLOOR_PORT, every)
    }

    /// Watches ARP from the client: asks every `every` for each of `targets` not yet answered
    /// by `node`'s interface, and records the first answer of each. Addresses outside the
    /// lab's /24 are asked from `alt_src` (an address the caller put on the client).
    pub fn arp_watch(
        &self,
        node: &str,
        targets: Vec<Ipv4Addr>,
        alt_src: Ipv4Addr,
        every: Duration,
    ) -> anyhow::Result<crate::ArpWatch> {
        let mac = crate::arp::mac_of(self.node(node).netns())?;
        let (client, subnet) = (self.ip("client"), self.subnet);
        let src_of = move |t: Ipv4Addr| {
            let o = t.octets();
            if o[0] == 198 && o[1] == 18 && o[2] == subnet {
                client
            } else {
                alt_src
            }
        };
        crate::ArpWatch::start(&self.client_ns, targets, src_of, mac, every)
    }

    /// Records when `node`'s interface sends a frame of its daemon's heartbeat traffic
    /// (`m`), for the longest silence of a node while it works ([`crate::longest_silence`]).
    pub fn heartbeat_watch(&self, node: &str, m: crate::HbMatch) -> anyhow::Result<crate::HbWatch> {
        crate::HbWatch::start(self.node(node).netns(), m)
    }

    /// Leaves the lab running after this process exits (for `ha-lab up`):
    /// marks the record as kept so `ha-lab down --id` removes it later.
    pub fn keep(mut self) -> anyhow::Result<Record> {
        self.record.kept = true;
        self.record.write()?;
        self.kept = true;
        Ok(self.record.clone())
    }

    /// Tears the lab down now, reporting what could not be removed.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        let r = self.teardown();
        self.kept = true; // already torn down: nothing left for Drop
        r
    }

    fn teardown(&mut self) -> anyhow::Result<()> {
        if std::thread::panicking() {
            for n in &self.nodes {
                if n.log_path().exists() {
                    eprintln!(
                        "--- ha-lab {}: last lines of {} ---\n{}",
                        self.id,
                        n.log_path().display(),
                        node::tail(&n.log_path(), 40)
                    );
                }
            }
        }
        for n in &mut self.nodes {
            // Kill first so the wait below cannot block on a live had.
            let _ = netns::kill_all_in(&n.netns, Duration::from_secs(5));
            if let Some(mut child) = n.child.take() {
                if child.try_wait().ok().flatten().is_none() {
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
        self.record.teardown()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = self.teardown() {
            eprintln!(
                "ha-lab {}: teardown incomplete ({e:#}); run `ha-lab down --id {}`",
                self.id, self.id
            );
        }
    }
}

fn check_node_names(names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        bail!("a lab needs at least one node");
    }
    if names.len() > MAX_NODES {
        bail!("at most {MAX_NODES} nodes fit in a lab");
    }
    for (i, n) in names.iter().enumerate() {
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !n.starts_with('-');
        if !ok {
            bail!(
                "node name {n:?}: use lower-case letters, digits and '-' (it becomes the hostname)"
            );
        }
        if n == "client" {
            bail!("\"client\" is the client's name, not a node's");
        }
        if names[..i].contains(n) {
            bail!("node name {n:?} given twice");
        }
    }
    Ok(())
}

/// A fresh run id: `hl` + 6 hex digits from the pid, the time and a counter,
/// skipping ids that have a record or a namespace already.
fn new_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    loop {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let id = format!("hl{:06x}", h.finish() & 0xff_ffff);
        if !Record::path_for(&id).exists() && !netns::netns_exists(&format!("{id}-sw")) {
            return id;
        }
    }
}

/// The subnet octet for `id` (1..=254), moved on past those of recorded labs.
fn pick_subnet(id: &str) -> u8 {
    let used: Vec<u8> = Record::list()
        .into_iter()
        .flatten()
        .map(|r| r.subnet)
        .collect();
    let v = u32::from_str_radix(&id[2..], 16).unwrap_or(0);
    let mut n = (v % 254) as u8 + 1;
    for _ in 0..254 {
        if !used.contains(&n) {
            break;
        }
        n = n % 254 + 1;
    }
    n
}

/// IPv6 on inside a lab namespace, but quiet and immediate: no DAD (addresses usable at
/// once, as had's VIPs are with IFA_F_NODAD), no router solicitations or advertisements.
fn quiet_ipv6(ns: &str) -> anyhow::Result<()> {
    netns::in_netns(ns, || {
        for key in ["all", "default"] {
            for (knob, v) in [
                ("disable_ipv6", "0"),
                ("accept_dad", "0"),
                ("dad_transmits", "0"),
                ("accept_ra", "0"),
                ("router_solicitations", "0"),
            ] {
                let path = format!("/proc/sys/net/ipv6/conf/{key}/{knob}");
                std::fs::write(&path, v).with_context(|| format!("writing {path}"))?;
            }
        }
        Ok(())
    })
}

/// IPv6 off inside a lab namespace: no DAD, MLD or RS in captures or timings.
fn disable_ipv6(ns: &str) -> anyhow::Result<()> {
    netns::in_netns(ns, || {
        for key in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6");
            match std::fs::write(&path, "1") {
                Ok(()) => {}
                // A kernel without IPv6 has nothing to disable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("writing {path}")),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert!(check_node_names(&["node1".into(), "node2".into()]).is_ok());
        assert!(check_node_names(&[]).is_err());
        assert!(check_node_names(&["Node1".into()]).is_err());
        assert!(check_node_names(&["a b".into()]).is_err());
        assert!(check_node_names(&["client".into()]).is_err());
        assert!(check_node_names(&["n".into(), "n".into()]).is_err());
    }

    #[test]
    fn ids_are_valid_and_fit_interface_names() {
        let id = new_id();
        assert!(crate::record::valid_id(&id), "{id}");
        assert!(format!("{id}n{MAX_NODES}p").len() <= 15);
        assert_ne!(new_id(), id);
        let n = pick_subnet(&id);
        assert!((1..=254).contains(&n));
    }
}
