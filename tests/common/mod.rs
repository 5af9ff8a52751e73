//! Shared set-up for the end-to-end tests: a two-node `had` cluster in an ha-lab, configured
//! like seed 002 (one VIP on the node interface plus a web service answering its node name).

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ha_lab::{ClusterSpec, Group, Lab, LabOptions, Net, find_bin, web_script};

/// Timers and modes of one test cluster.
pub struct Setup {
    pub keepalive: &'static str,
    pub deadtime: &'static str,
    pub warntime: &'static str,
    pub initdead: &'static str,
    pub auto_failback: &'static str,
    pub auth: &'static str,
    /// A different authkeys line for node2 (wrong-key tests).
    pub auth_node2: Option<&'static str>,
    /// Write the VIP as a bare address (`198.18.n.100`, meaning IPaddr with the interface
    /// and netmask found from the node's own subnet) instead of `IPaddr::ip/24/eth0`.
    pub bare_vip: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            keepalive: "1",
            deadtime: "5",
            warntime: "3",
            initdead: "10",
            auto_failback: "on",
            auth: "1 md5 motdepasse",
            auth_node2: None,
            bare_vip: false,
        }
    }
}

/// A running two-node cluster.
pub struct Cluster {
    pub lab: Lab,
    pub had: PathBuf,
    pub hactl: PathBuf,
    pub vip: Ipv4Addr,
    pub deadtime: Duration,
}

impl Setup {
    /// Timers short enough that a second of trouble would be a takeover: keepalive 100 ms,
    /// deadtime 500 ms, warntime 300 ms, initdead 2 s.
    pub fn fast() -> Setup {
        Setup {
            keepalive: "100ms",
            deadtime: "500ms",
            warntime: "300ms",
            initdead: "2",
            ..Setup::default()
        }
    }

    /// The cluster as a [`ClusterSpec`]: seed 002 in the lab (the VIP and the web service on
    /// node1), these timers and keys.
    pub fn spec(&self, lab: &Lab) -> ClusterSpec {
        let vip = lab.vip(0);
        let group = if self.bare_vip {
            Group::new("node1").res(vip.to_string())
        } else {
            Group::new("node1").ip(vip, 24)
        };
        let mut spec = ClusterSpec::new("seed 002, rewritten into the lab")
            .timers(self.keepalive, self.warntime, self.deadtime, self.initdead)
            .auto_failback(self.auto_failback)
            .auth_lines(self.auth)
            .group(group.res(format!("web::{vip}")))
            .script("resource.d/web", &web_script(80));
        if let Some(a) = self.auth_node2 {
            spec = spec.node_auth_lines("node2", a);
        }
        spec
    }
}

/// node1's ha.cf of the cluster `s` (both nodes have the same).
pub fn ha_cf(s: &Setup, lab: &Lab) -> String {
    s.spec(lab).ha_cf("node1", &Net::of(lab))
}

fn parse_secs(t: &str) -> Duration {
    match t.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.parse().unwrap_or(0)),
        None => Duration::from_secs_f64(t.parse().unwrap_or(0.0)),
    }
}

impl Cluster {
    /// Build the lab, write the configs on both nodes, start both daemons.
    pub fn start(s: &Setup) -> anyhow::Result<Cluster> {
        let mut c = Self::prepare(s)?;
        c.start_node("node1")?;
        c.start_node("node2")?;
        Ok(c)
    }

    /// Build the lab and write the configs on both nodes; start nothing.
    pub fn prepare(s: &Setup) -> anyhow::Result<Cluster> {
        let lab = Lab::new(LabOptions::default())?;
        let had = find_bin("had")?;
        let hactl = find_bin("hactl")?;
        let vip = lab.vip(0);
        s.spec(&lab).write(&lab)?;
        Ok(Cluster {
            lab,
            had,
            hactl,
            vip,
            deadtime: parse_secs(s.deadtime),
        })
    }

    pub fn start_node(&mut self, n: &str) -> anyhow::Result<()> {
        let had = self.had.clone();
        self.lab.node_mut(n).start_had(&had, &[])
    }

    /// The node name answering HTTP on the VIP, if any.
    pub fn served_by(&self) -> Option<String> {
        self.lab
            .client_http_get(self.vip, 80, Duration::from_millis(300))
            .ok()
            .map(|b| b.trim().to_string())
    }

    /// Wait until `node` answers through the VIP; returns the time it took.
    pub fn wait_served_by(&self, node: &str, timeout: Duration) -> Option<Duration> {
        self.lab
            .wait_until(timeout, || self.served_by().as_deref() == Some(node))
    }

    pub fn status_json(&self, n: &str) -> anyhow::Result<serde_json::Value> {
        let out = self.lab.node(n).hactl(&self.hactl, &["status", "--json"])?;
        anyhow::ensure!(
            out.status.success(),
            "hactl status failed on {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    pub fn log(&self, n: &str) -> String {
        std::fs::read_to_string(self.lab.node(n).log_path()).unwrap_or_default()
    }

    /// Both logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- node1 log ---\n{}\n--- node2 log ---\n{}",
            self.log("node1"),
            self.log("node2")
        )
    }

    /// Wait until the client is served by `node`, failing with both logs.
    pub fn expect_served_by(&self, node: &str, timeout: Duration) -> Duration {
        match self.wait_served_by(node, timeout) {
            Some(d) => d,
            None => panic!(
                "not served by {node} within {timeout:?} (now: {:?})\n{}",
                self.served_by(),
                self.logs()
            ),
        }
    }
}

/// How long until the prober got an answer from `node` for a probe sent after `t0`. The
/// caller has just seen `node` answer; the prober's own probe may still be in flight, so
/// give it a moment.
pub fn time_to(p: &ha_lab::Prober, node: &str, t0: Instant) -> Option<Duration> {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(t) = p.first_answer_from(node, t0) {
            return Some(t.duration_since(t0));
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
