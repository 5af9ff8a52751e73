//! The cluster managers the bench drives through the same drills: had,
//! Debian's Heartbeat 3.0.6 and Keepalived 2.2.7 here, Pacemaker + Corosync
//! in pacemaker.rs. Each knows how to
//! configure itself for a timer setting, start, hand over, hand back and
//! lose its web service in a lab; the drills (drills.rs) do the timing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use ha_lab::keepalived::{Keepalived, KeepalivedConf, StaticWeb, VrrpCheck};
use ha_lab::{ClusterSpec, Group, Lab, ha_time, web_script};

use crate::procfs;
use crate::scale::Layout;

/// had's line for a late wake-up of its own (docs/logs.md, `OwnWakeLate`).
const HAD_LATE_WAKE: &str = "ms late (the host or this process was paused)";

/// The two timer settings every contender is measured at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// keepalive 1 s / deadtime 5 s; keepalived advert 1 s.
    Slow,
    /// The fastest setting that does not flap (had: configurable), hb 100 ms / 500 ms, keepalived 0.1 s.
    Fast,
}

/// One contender's timers at one speed.
#[derive(Debug, Clone)]
pub struct Timers {
    /// For the report.
    pub label: String,
    /// Interval of the liveness messages: crashes are spread over U(0, this).
    pub keepalive: Duration,
    /// Time to declare the peer dead: bounds the waits.
    pub deadtime: Duration,
}

/// A cluster manager under test.
pub trait Contender {
    /// `had`, `heartbeat`, `keepalived` or `pacemaker`.
    fn name(&self) -> &'static str;
    /// Its timers at `speed`.
    fn timers(&self, speed: Speed) -> Timers;
    /// Time to wait after a node's daemon started before crashing it.
    fn settle(&self) -> Duration;
    /// Writes the config for `speed` and starts both nodes.
    fn start(&mut self, lab: &mut Lab, speed: Speed) -> anyhow::Result<()>;
    /// Starts `node` again after `Node::power_on`.
    fn start_node(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()>;
    /// `node` was crashed: forget what ran there.
    fn crashed(&mut self, node: &str);
    /// Planned handover node1 → node2.
    fn handover(&mut self, lab: &mut Lab) -> anyhow::Result<()>;
    /// Give the service back to node1 after [`Contender::handover`].
    fn handback(&mut self, lab: &mut Lab) -> anyhow::Result<()>;
    /// Kill the web server on `node` (SIGKILL, like a crash of the service).
    fn kill_service(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()>;
    /// The planned move of every group from node1 to node2 (`back`: from node2 to node1) in
    /// a scale lab; the drills' handover and handback unless they move one group only.
    fn move_all(&mut self, lab: &mut Lab, back: bool) -> anyhow::Result<()> {
        if back {
            self.handback(lab)
        } else {
            self.handover(lab)
        }
    }
    /// Repair the web service on `node` the way an admin would.
    fn restore_service(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()>;
    /// How long to wait for the peer to answer after the service died.
    fn service_window(&self) -> Duration;
    /// Does it watch the web service at all (Heartbeat v1 does not)?
    fn monitors_service(&self) -> bool {
        true
    }
    /// Waits until the cluster has nothing in flight (before a drill is timed).
    fn quiesce(&mut self, _lab: &Lab) -> anyhow::Result<()> {
        Ok(())
    }
    /// The daemons' process names (`comm`), summed for the footprint.
    fn daemon_comms(&self) -> &'static [&'static str];
    /// `(log file, text)` whose occurrences count as a takeover.
    fn takeover_logs(&self, lab: &Lab) -> Vec<(PathBuf, &'static str)>;
    /// Writes a config serving `layout` (address groups preferring node1, no service) at
    /// 1 s timers and starts both nodes: the scale shapes.
    fn start_layout(&mut self, lab: &mut Lab, layout: &Layout) -> anyhow::Result<()>;
    /// The logs in which the contender warns of a late heartbeat (had, Heartbeat); none for
    /// those that do not log one.
    fn late_heartbeat_logs(&self, _lab: &Lab) -> Vec<PathBuf> {
        Vec::new()
    }
    /// The frames a node of the contender sends on every keepalive whatever its role, for
    /// the longest silence of each node in the scale rows (had and Heartbeat: UDP 694). None
    /// for keepalived: a VRRP backup sends nothing, so its silence says nothing.
    fn heartbeat_frames(&self) -> Option<ha_lab::HbMatch> {
        None
    }
    /// The text of the line the contender writes when its own timer woke late and it gave
    /// the peer more time (had); none for those that do not say so.
    fn own_late_wake_line(&self) -> Option<&'static str> {
        None
    }
    /// `(log, text)` of the line `node` writes when it decides to take its groups, for
    /// contenders whose log has millisecond wall-clock stamps (had).
    fn decision_log(&self, _lab: &Lab, _node: &str) -> Option<(PathBuf, &'static str)> {
        None
    }
    /// Writes the 1 s-timer config with `count` checks of the web service, each every 1 s
    /// (had: in-process `tcp:` monitors; keepalived: `vrrp_script` curl; Pacemaker: Dummy
    /// resources monitored every 1 s) and starts both nodes; None if it has no monitors.
    fn start_monitors(&mut self, _lab: &mut Lab, _count: usize) -> Option<anyhow::Result<()>> {
        None
    }
    /// One status query on node1 as an admin types it; None if the contender has none.
    fn status(&self, _lab: &Lab) -> Option<anyhow::Result<()>> {
        None
    }
    /// The fast settings of the stress window (stress.rs), the fastest first; the second,
    /// if any, is measured beside it (had `realtime off`, keepalived at 0.01 s).
    fn stress_settings(&self) -> Vec<String> {
        vec![self.timers(Speed::Fast).label]
    }
    /// Use setting `i` of [`Contender::stress_settings`] at fast timers; `None`: back to the
    /// bench's usual fast setting.
    fn use_stress_setting(&mut self, _i: Option<usize>) {}
}

/// Fails with the command's output unless it succeeded.
pub(crate) fn check_output(what: &str, out: &std::process::Output) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!(
            "{what} exited {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// SIGKILLs the busybox httpd serving the web site in `node`'s namespace.
pub(crate) fn kill_busybox_httpd(lab: &Lab, node: &str) -> anyhow::Result<()> {
    let pids = procfs::pids_named(lab.node(node).netns(), "busybox");
    let httpd: Vec<u32> = pids
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"httpd"))
        })
        .collect();
    if httpd.is_empty() {
        bail!("{node}: no busybox httpd runs");
    }
    for p in httpd {
        kill(Pid::from_raw(p as i32), Signal::SIGKILL).with_context(|| format!("kill -9 {p}"))?;
    }
    Ok(())
}

/// warntime between keepalive and deadtime (Heartbeat warns when it is not).
fn warntime(keepalive: Duration, deadtime: Duration) -> Duration {
    (deadtime * 3 / 4).max(keepalive * 2).min(deadtime)
}

/// The cluster both had and Heartbeat read: seed 002's shape at the contender's timers.
fn v1_spec(t: &Timers, heartbeat: bool) -> ClusterSpec {
    let spec = ClusterSpec::new("written by ha-bench")
        .timers_d(
            t.keepalive,
            warntime(t.keepalive, t.deadtime),
            t.deadtime,
            Duration::from_secs(10),
        )
        .auto_failback("on");
    if heartbeat {
        ["node1", "node2"]
            .into_iter()
            .fold(spec.logfacility(None), |s, n| {
                s.node_line(n, "logfile /var/log/ha-log\nlogfacility none")
            })
            .line("crm off")
    } else {
        spec
    }
}

/// Writes `spec` with seed 002's group and resource.d/web on both nodes.
fn write_v1_config(lab: &Lab, spec: ClusterSpec, port: u16) -> anyhow::Result<()> {
    let vip = lab.vip(0);
    spec.group(Group::new("node1").ip(vip, 24).res(format!("web::{vip}")))
        .script("resource.d/web", &web_script(port))
        .write(lab)
}

/// Writes ha.cf, haresources (one line per group of `IPaddr::A/P/IF`) and authkeys.
fn write_v1_layout(lab: &Lab, t: &Timers, heartbeat: bool, layout: &Layout) -> anyhow::Result<()> {
    let mut spec = v1_spec(t, heartbeat);
    for g in &layout.groups {
        spec = spec.group(g.iter().fold(Group::new("node1"), |g, (a, p)| g.ip(*a, *p)));
    }
    spec.write(lab)
}

/// had, from this workspace.
pub struct Had {
    /// The had binary (a release build for fair numbers).
    pub had: PathBuf,
    /// The hactl binary.
    pub hactl: PathBuf,
    /// Web port.
    pub port: u16,
    /// Fast-timer keepalive.
    pub fast_keepalive: Duration,
    /// Fast-timer deadtime.
    pub fast_deadtime: Duration,
    /// Monitor interval for the web service.
    pub monitor_interval: Duration,
    /// ha.cf's `realtime` (had's default, on, unless the stress window measures it off).
    pub realtime: bool,
}

impl Had {
    fn hactl(&self, lab: &Lab, node: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = lab.node(node).hactl(&self.hactl, args)?;
        if !out.status.success() {
            bail!(
                "{node}: hactl {} exited {:?}: {}{}",
                args.join(" "),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Contender for Had {
    fn name(&self) -> &'static str {
        "had"
    }

    fn timers(&self, speed: Speed) -> Timers {
        let (k, d) = match speed {
            Speed::Slow => (Duration::from_secs(1), Duration::from_secs(5)),
            Speed::Fast => (self.fast_keepalive, self.fast_deadtime),
        };
        Timers {
            label: format!(
                "keepalive {} / deadtime {}; realtime {}; monitor process:busybox every {}",
                ha_time(k),
                ha_time(d),
                if self.realtime { "on" } else { "off" },
                ha_time(self.monitor_interval)
            ),
            keepalive: k,
            deadtime: d,
        }
    }

    fn settle(&self) -> Duration {
        // had advertises its real deadtime from the start: no warm-up to wait out.
        Duration::from_secs(1)
    }

    fn start(&mut self, lab: &mut Lab, speed: Speed) -> anyhow::Result<()> {
        let t = self.timers(speed);
        let mut spec = v1_spec(&t, false);
        if !self.realtime {
            // Heartbeat's directive, read by had too (default on).
            spec = spec.line("realtime off");
        }
        write_v1_config(lab, spec, self.port)?;
        // An in-process check (no fork) of the web server's process in the node's namespace;
        // failures = 1 and no restart in place, so a dead server moves the group at once.
        let toml = format!(
            "[[monitor]]\nresource = \"web\"\ncheck = \"process:busybox\"\ninterval = \"{}\"\ntimeout = \"500ms\"\nfailures = 1\nrestarts = 0\n",
            ha_time(self.monitor_interval)
        );
        for n in lab.nodes() {
            n.write_file("had.toml", &toml, 0o644)?;
        }
        for n in ["node1", "node2"] {
            self.start_node(lab, n)?;
        }
        Ok(())
    }

    fn start_node(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        lab.node_mut(node).start_had(&self.had, &[])
    }

    fn crashed(&mut self, _node: &str) {}

    fn handover(&mut self, lab: &mut Lab) -> anyhow::Result<()> {
        self.hactl(lab, "node1", &["standby"])
    }

    fn handback(&mut self, lab: &mut Lab) -> anyhow::Result<()> {
        self.hactl(lab, "node1", &["takeover"])
    }

    fn kill_service(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        kill_busybox_httpd(lab, node)
    }

    fn restore_service(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        // The group is refused on node1 while its monitor failed; cleanup lets it come back.
        self.hactl(lab, node, &["cleanup"])
    }

    fn service_window(&self) -> Duration {
        self.monitor_interval * 3 + Duration::from_secs(5)
    }

    fn daemon_comms(&self) -> &'static [&'static str] {
        // The guard (guard.rs) is had's second process: counted as Heartbeat's four are.
        &["had", "had-guard"]
    }

    fn takeover_logs(&self, lab: &Lab) -> Vec<(PathBuf, &'static str)> {
        lab.nodes()
            .iter()
            .map(|n| (n.log_path(), "is dead"))
            .collect()
    }

    fn own_late_wake_line(&self) -> Option<&'static str> {
        Some(HAD_LATE_WAKE)
    }

    fn start_layout(&mut self, lab: &mut Lab, layout: &Layout) -> anyhow::Result<()> {
        write_v1_layout(lab, &self.timers(Speed::Slow), false, layout)?;
        for n in ["node1", "node2"] {
            self.start_node(lab, n)?;
        }
        Ok(())
    }

    fn start_monitors(&mut self, lab: &mut Lab, count: usize) -> Option<anyhow::Result<()>> {
        let run = |me: &mut Self, lab: &mut Lab| -> anyhow::Result<()> {
            write_v1_config(lab, v1_spec(&me.timers(Speed::Slow), false), me.port)?;
            let vip = lab.vip(0);
            let mut toml = String::new();
            for _ in 0..count {
                toml.push_str(&format!(
                    "[[monitor]]\nresource = \"web\"\ncheck = \"tcp:{vip}:{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
                    me.port
                ));
            }
            for n in lab.nodes() {
                n.write_file("had.toml", &toml, 0o644)?;
            }
            for n in ["node1", "node2"] {
                me.start_node(lab, n)?;
            }
            Ok(())
        };
        Some(run(self, lab))
    }

    fn decision_log(&self, lab: &Lab, node: &str) -> Option<(PathBuf, &'static str)> {
        Some((lab.node(node).log_path(), "acquiring resource group"))
    }

    fn heartbeat_frames(&self) -> Option<ha_lab::HbMatch> {
        Some(ha_lab::HbMatch::UdpPort(694))
    }

    fn late_heartbeat_logs(&self, lab: &Lab) -> Vec<PathBuf> {
        lab.nodes().iter().map(|n| n.log_path()).collect()
    }

    fn status(&self, lab: &Lab) -> Option<anyhow::Result<()>> {
        Some(
            lab.node("node1")
                .hactl(&self.hactl, &["status"])
                .and_then(|o| check_output("node1: hactl status", &o)),
        )
    }

    fn stress_settings(&self) -> Vec<String> {
        let (k, d) = (ha_time(self.fast_keepalive), ha_time(self.fast_deadtime));
        vec![
            format!("keepalive {k} / deadtime {d}, realtime on"),
            format!("keepalive {k} / deadtime {d}, realtime off"),
        ]
    }

    fn use_stress_setting(&mut self, i: Option<usize>) {
        self.realtime = i != Some(1);
    }
}

/// Debian's Heartbeat 3.0.6 (v1 mode, haresources).
pub struct Heartbeat {
    /// Web port.
    pub port: u16,
}

impl Contender for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    fn timers(&self, speed: Speed) -> Timers {
        let (k, d) = match speed {
            Speed::Slow => (Duration::from_secs(1), Duration::from_secs(5)),
            Speed::Fast => (Duration::from_millis(100), Duration::from_millis(500)),
        };
        Timers {
            label: format!(
                "keepalive {} / deadtime {}; no resource monitoring",
                ha_time(k),
                ha_time(d)
            ),
            keepalive: k,
            deadtime: d,
        }
    }

    fn settle(&self) -> Duration {
        // A fresh Heartbeat advertises deadtime + 2 s for ≈5 s; the reference waited 8 s.
        Duration::from_secs(8)
    }

    fn start(&mut self, lab: &mut Lab, speed: Speed) -> anyhow::Result<()> {
        if !ha_lab::heartbeat_installed() {
            bail!("Debian's heartbeat package is not installed (`just setup`)");
        }
        let t = self.timers(speed);
        write_v1_config(lab, v1_spec(&t, true), self.port)?;
        for n in ["node1", "node2"] {
            self.start_node(lab, n)?;
        }
        Ok(())
    }

    fn start_node(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        lab.node_mut(node).start_heartbeat()
    }

    fn crashed(&mut self, _node: &str) {}

    fn handover(&mut self, lab: &mut Lab) -> anyhow::Result<()> {
        lab.node("node1").hb_standby("all")
    }

    fn handback(&mut self, lab: &mut Lab) -> anyhow::Result<()> {
        lab.node("node1").hb_takeover("all")
    }

    fn kill_service(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        kill_busybox_httpd(lab, node)
    }

    fn restore_service(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        let vip = lab.vip(0).to_string();
        let out = lab
            .node(node)
            .heartbeat_exec(&["/etc/ha.d/resource.d/web", &vip, "start"])?;
        if !out.status.success() {
            bail!(
                "{node}: web start failed: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(())
    }

    fn service_window(&self) -> Duration {
        // The reference watched 3 × deadtime + 5 s.
        Duration::from_secs(20)
    }

    fn monitors_service(&self) -> bool {
        false
    }

    fn daemon_comms(&self) -> &'static [&'static str] {
        &["heartbeat"]
    }

    fn takeover_logs(&self, lab: &Lab) -> Vec<(PathBuf, &'static str)> {
        lab.nodes()
            .iter()
            .map(|n| (n.heartbeat_log_path(), "is dead"))
            .collect()
    }

    fn heartbeat_frames(&self) -> Option<ha_lab::HbMatch> {
        Some(ha_lab::HbMatch::UdpPort(694))
    }

    fn late_heartbeat_logs(&self, lab: &Lab) -> Vec<PathBuf> {
        lab.nodes().iter().map(|n| n.heartbeat_log_path()).collect()
    }

    fn start_layout(&mut self, lab: &mut Lab, layout: &Layout) -> anyhow::Result<()> {
        if !ha_lab::heartbeat_installed() {
            bail!("Debian's heartbeat package is not installed (`just setup`)");
        }
        write_v1_layout(lab, &self.timers(Speed::Slow), true, layout)?;
        for n in ["node1", "node2"] {
            self.start_node(lab, n)?;
        }
        Ok(())
    }

    fn status(&self, lab: &Lab) -> Option<anyhow::Result<()>> {
        Some(lab.node("node1").cl_status(&["rscstatus"]).map(|_| ()))
    }
}

/// Keepalived 2.2.7: VRRP unicast on eth0, a VIP, a vrrp_script on the web
/// server, which runs on both nodes all the time.
pub struct Keepalive {
    /// Web port.
    pub port: u16,
    speed: Speed,
    /// advert_int at fast timers now (a stress window's setting while it runs).
    fast_advert: Duration,
    /// advert_int at fast timers outside the stress windows.
    base_advert: Duration,
    daemons: [Option<Keepalived>; 2],
    webs: [Option<StaticWeb>; 2],
    /// The scale shape being served, if any (`start_daemon` serves it again on a restart).
    layout: Option<Layout>,
}

/// keepalived's usual fast advert_int in the bench.
pub const KEEPALIVED_FAST_ADVERT: Duration = Duration::from_millis(100);
/// The stress window's settings: the fastest seen not to flap on a quiet host, and the one
/// that took the VIP from a healthy master on a busy host (issue 14).
const KEEPALIVED_STRESS_ADVERTS: [Duration; 2] =
    [Duration::from_millis(20), Duration::from_millis(10)];

impl Keepalive {
    /// A keepalived contender serving on `port`, whose fast timers are `advert_int` = `advert` (the crash
    /// time at the stress windows' 0.02 s and 0.01 s: `--keepalived-fast-advert`).
    pub fn with_fast_advert(port: u16, advert: Duration) -> Keepalive {
        Keepalive {
            port,
            speed: Speed::Slow,
            fast_advert: advert,
            base_advert: advert,
            daemons: [None, None],
            webs: [None, None],
            layout: None,
        }
    }

    fn index(node: &str) -> usize {
        usize::from(node != "node1")
    }

    fn conf(&self, lab: &Lab, node: &str) -> KeepalivedConf {
        let me = Self::index(node);
        let peer = if me == 0 { "node2" } else { "node1" };
        KeepalivedConf {
            router_id: node.to_owned(),
            iface: lab.iface().to_owned(),
            src: lab.ip(node),
            peer: lab.ip(peer),
            vip: lab.vip(0),
            vip_prefix: 24,
            priority: if me == 0 { 150 } else { 149 },
            master: me == 0,
            advert: self.timers(self.speed).keepalive,
            vrid: 51,
            check: Some(VrrpCheck::http_local(self.port)),
        }
    }

    /// One VRRP instance per group (VRRPv2 at 1 s, as the slow setting): the group's first
    /// address in the adverts, the rest in `virtual_ipaddress_excluded`, as keepalived's
    /// documentation advises for many addresses.
    fn layout_conf(&self, lab: &Lab, node: &str, layout: &Layout) -> String {
        let me = Self::index(node);
        let peer = if me == 0 { "node2" } else { "node1" };
        let iface = lab.iface();
        let mut s = format!(
            "# written by ha-bench (scale)\nglobal_defs {{\n    router_id {node}\n    vrrp_version 2\n}}\n"
        );
        for (i, g) in layout.groups.iter().enumerate() {
            let addr = |(a, p): &(std::net::Ipv4Addr, u8)| format!("        {a}/{p} dev {iface}\n");
            let first: String = g.iter().take(1).map(addr).collect();
            let rest: String = g.iter().skip(1).map(addr).collect();
            s.push_str(&format!(
                "vrrp_instance VI_{n} {{\n    state {state}\n    interface {iface}\n    virtual_router_id {n}\n    priority {prio}\n    advert_int 1\n    authentication {{\n        auth_type PASS\n        auth_pass secret\n    }}\n    unicast_src_ip {src}\n    unicast_peer {{\n        {dst}\n    }}\n    virtual_ipaddress {{\n{first}    }}\n",
                n = i + 1,
                state = if me == 0 { "MASTER" } else { "BACKUP" },
                prio = if me == 0 { 150 } else { 149 },
                src = lab.ip(node),
                dst = lab.ip(peer),
            ));
            if !rest.is_empty() {
                s.push_str(&format!(
                    "    virtual_ipaddress_excluded {{\n{rest}    }}\n"
                ));
            }
            s.push_str("}\n");
        }
        s
    }

    /// The bench's slow instance with `count` copies of its curl check, all tracked.
    fn monitors_conf(&self, lab: &Lab, node: &str, count: usize) -> String {
        let mut conf = self.conf(lab, node);
        let check = conf.check.take();
        let base = conf.render();
        let Some(c) = check else {
            return base;
        };
        let mut scripts = String::new();
        let mut track = String::new();
        for i in 0..count {
            scripts.push_str(&format!(
                "vrrp_script web_check{i} {{\n    script \"{}\"\n    interval {}\n    fall {}\n    rise {}\n    weight {}\n}}\n",
                c.script, c.interval_secs, c.fall, c.rise, c.weight
            ));
            track.push_str(&format!("        web_check{i}\n"));
        }
        // The checks before the instance, the instance tracking them all.
        let at = base.find("vrrp_instance").unwrap_or(base.len());
        let (head, inst) = base.split_at(at);
        let inst = match inst.rfind('}') {
            Some(end) if count > 0 => {
                format!("{}    track_script {{\n{track}    }}\n}}\n", &inst[..end])
            }
            _ => inst.to_owned(),
        };
        format!("{head}{scripts}{inst}")
    }

    /// Starts keepalived on `node` with the scale shape being served, else the drills'
    /// one-VIP config: a restart (handback, power-on) serves what the lab serves.
    fn start_daemon(&mut self, lab: &Lab, node: &str) -> anyhow::Result<()> {
        let k = match &self.layout {
            Some(layout) => {
                Keepalived::start_text(lab.node(node), &self.layout_conf(lab, node, layout))?
            }
            None => Keepalived::start(lab.node(node), &self.conf(lab, node))?,
        };
        self.daemons[Self::index(node)] = Some(k);
        Ok(())
    }
}

impl Contender for Keepalive {
    fn name(&self) -> &'static str {
        "keepalived"
    }

    fn timers(&self, speed: Speed) -> Timers {
        let advert = match speed {
            Speed::Slow => Duration::from_secs(1),
            Speed::Fast => self.fast_advert,
        };
        let label = match speed {
            Speed::Slow => "advert_int 1 (VRRPv2, PASS)".to_owned(),
            Speed::Fast => format!("advert_int {} (VRRPv3)", advert.as_secs_f64()),
        };
        Timers {
            label: format!(
                "{label}, unicast; priority 150/149, preempt; vrrp_script curl every 1 s, fall 1, rise 1, weight −20"
            ),
            keepalive: advert,
            // Master_Down = 3 × advert + skew.
            deadtime: advert * 4,
        }
    }

    fn settle(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn start(&mut self, lab: &mut Lab, speed: Speed) -> anyhow::Result<()> {
        self.speed = speed;
        self.layout = None;
        for n in ["node1", "node2"] {
            self.start_node(lab, n)?;
        }
        Ok(())
    }

    fn start_node(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        self.webs[Self::index(node)] = Some(StaticWeb::start(lab.node(node), self.port)?);
        self.start_daemon(lab, node)
    }

    fn crashed(&mut self, node: &str) {
        // The crash killed both; dropping the handles reaps them.
        self.daemons[Self::index(node)] = None;
        self.webs[Self::index(node)] = None;
    }

    fn handover(&mut self, _lab: &mut Lab) -> anyhow::Result<()> {
        // SIGTERM: keepalived sends a priority-0 advert and drops the VIP.
        self.daemons[0]
            .as_ref()
            .context("node1: keepalived is not running")?
            .signal(Signal::SIGTERM)
    }

    fn handback(&mut self, lab: &mut Lab) -> anyhow::Result<()> {
        if let Some(mut k) = self.daemons[0].take()
            && !k.wait_exit(Duration::from_secs(10))?
        {
            bail!("node1: keepalived did not exit after SIGTERM");
        }
        self.start_daemon(lab, "node1")
    }

    fn kill_service(&mut self, _lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        self.webs[Self::index(node)]
            .as_mut()
            .with_context(|| format!("{node}: no web server"))?
            .kill()
    }

    fn restore_service(&mut self, lab: &mut Lab, node: &str) -> anyhow::Result<()> {
        self.webs[Self::index(node)] = Some(StaticWeb::start(lab.node(node), self.port)?);
        Ok(())
    }

    fn service_window(&self) -> Duration {
        Duration::from_secs(15)
    }

    fn daemon_comms(&self) -> &'static [&'static str] {
        &["keepalived"]
    }

    fn takeover_logs(&self, lab: &Lab) -> Vec<(PathBuf, &'static str)> {
        // A backup that becomes master is the takeover; count it on node2.
        let dir = lab.node("node2").config_dir();
        dir.parent()
            .map(|d| vec![(d.join("keepalived.log"), "Entering MASTER STATE")])
            .unwrap_or_default()
    }

    fn start_monitors(&mut self, lab: &mut Lab, count: usize) -> Option<anyhow::Result<()>> {
        let run = |me: &mut Self, lab: &mut Lab| -> anyhow::Result<()> {
            me.speed = Speed::Slow;
            for n in ["node1", "node2"] {
                me.webs[Self::index(n)] = Some(StaticWeb::start(lab.node(n), me.port)?);
                let text = me.monitors_conf(lab, n, count);
                me.daemons[Self::index(n)] = Some(Keepalived::start_text(lab.node(n), &text)?);
            }
            Ok(())
        };
        Some(run(self, lab))
    }

    fn start_layout(&mut self, lab: &mut Lab, layout: &Layout) -> anyhow::Result<()> {
        self.speed = Speed::Slow;
        self.webs = [None, None];
        self.layout = Some(layout.clone());
        for n in ["node1", "node2"] {
            self.start_daemon(lab, n)?;
        }
        Ok(())
    }

    fn stress_settings(&self) -> Vec<String> {
        KEEPALIVED_STRESS_ADVERTS
            .iter()
            .map(|a| format!("advert_int {} (VRRPv3)", a.as_secs_f64()))
            .collect()
    }

    fn use_stress_setting(&mut self, i: Option<usize>) {
        self.fast_advert = i
            .and_then(|i| KEEPALIVED_STRESS_ADVERTS.get(i).copied())
            .unwrap_or(self.base_advert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hads_late_wake_line_is_the_one_its_catalogue_writes() {
        let doc = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/logs.md");
        let doc = std::fs::read_to_string(doc).expect("docs/logs.md");
        assert!(doc.contains(HAD_LATE_WAKE));
    }

    #[test]
    fn keepalived_returns_to_its_chosen_advert_after_a_stress_window() {
        let mut k = Keepalive::with_fast_advert(80, Duration::from_millis(20));
        assert_eq!(k.timers(Speed::Fast).keepalive, Duration::from_millis(20));
        k.use_stress_setting(Some(1));
        assert_eq!(k.timers(Speed::Fast).keepalive, Duration::from_millis(10));
        k.use_stress_setting(None);
        assert_eq!(k.timers(Speed::Fast).keepalive, Duration::from_millis(20));
    }

    #[test]
    fn warntime_lies_between_keepalive_and_deadtime() {
        let w = warntime(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(w, Duration::from_millis(3750));
        let w = warntime(Duration::from_millis(50), Duration::from_millis(200));
        assert_eq!(w, Duration::from_millis(150));
        let w = warntime(Duration::from_millis(100), Duration::from_millis(150));
        assert_eq!(w, Duration::from_millis(150));
    }
}
