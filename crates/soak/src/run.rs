//! The soak itself: builds the lab cluster, injects the schedule fault by fault, settles after
//! each one (polling, bounded by a timeout derived from the timers) and audits.

// A node is an index into several parallel arrays (NAMES, the open windows, the expected
// daemons, the log positions), and loop bodies call `&mut self` methods with it.
#![allow(clippy::needless_range_loop)]
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ha_lab::{
    ClusterSpec, Group, Lab, LabOptions, Media, Net, Prober, VipWatch, find_bin, web_script,
};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::audit::OverlapAudit;
use crate::plan::{Fault, Target, Timers, fmt_ms, schedule};
use crate::report::{AllowedOverlap, FaultRecord, Report, Step, Violation};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Faults to inject.
    pub faults: usize,
    /// Seed of the schedule.
    pub seed: u64,
    /// ha.cf timers.
    pub timers: Timers,
    /// node2 runs Heartbeat 3.0.6 instead of had.
    pub mixed: bool,
    /// Only these kinds (all when empty).
    pub kinds: Vec<String>,
    /// The command line, for the report.
    pub command: String,
    /// Print a line per fault.
    pub progress: bool,
    /// Where to copy each node's whole log at the end (`<dir>/<stem>-node1.log`, ...).
    pub logs_to: Option<PathBuf>,
}

/// Set by SIGINT/SIGTERM: finish the current fault, write the report, tear the lab down.
pub static STOP: AtomicBool = AtomicBool::new(false);

const NAMES: [&str; 2] = ["node1", "node2"];
/// Probe period of the client (a fresh connection each).
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// VIP sampler period.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// A monitor check's limit: a status script forks a shell, which on a loaded machine can take
/// a good part of a second; the soak tests failover, not the machine's speed.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(2);
/// Daemon budgets.
const RSS_BUDGET_KIB: u64 = 64 * 1024;
const FD_BUDGET: u64 = 128;
/// The kinds injected in a had + Heartbeat 3.0.6 pair (node2 runs Heartbeat). Left out:
/// the service, agent and VIP faults (Heartbeat v1 watches nodes, not resources, so a holder
/// running Heartbeat would never notice them, by design) and reloads (`hactl reload` is had's;
/// Heartbeat rereads haresources only on a restart).
const MIXED_KINDS: &[&str] = &[
    "kill9",
    "kill9_early",
    "freeze",
    "cut_one_link",
    "split_brain",
    "one_way",
    "loss",
    "iface_flap",
    "standby_takeover",
    "restart_both",
    "power_cycle",
    "hostile_burst",
];

/// The heartbeat media: eth0 (the LAN, through the switch) and eth1 (a direct cable).
const LINKS: [&str; 2] = ["eth0", "eth1"];
/// The lines of a node's log that tell what happened around a fault.
const RELEVANT: &[&str] = &[
    "WARN",
    "ERROR",
    "acquir",
    "releas",
    "takeover",
    "standby",
    "dead",
    "taking over",
    "monitor",
    "reload",
    "giving up",
    "failed",
    "split",
    "=== ha-lab",
];
/// Kept per node and fault.
const LOG_LINES: usize = 12;

/// Runs the soak; the report (also when the run stopped early).
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let kinds: Vec<String> = if opts.mixed && opts.kinds.is_empty() {
        MIXED_KINDS.iter().map(|k| k.to_string()).collect()
    } else {
        opts.kinds.clone()
    };
    if opts.mixed
        && let Some(k) = kinds.iter().find(|k| !MIXED_KINDS.contains(&k.as_str()))
    {
        bail!("--mixed: {k} is not injected in a had + Heartbeat pair (see the report's list)");
    }
    if opts.mixed && !ha_lab::heartbeat_installed() {
        bail!("--mixed needs Debian's heartbeat package (just setup installs it)");
    }
    let plan = schedule(opts.seed, opts.faults, &opts.timers, &kinds);
    let mut s = Soak::new(opts)?;
    eprintln!(
        "[soak] seed {} timers {} faults {}: lab {} up; settle: stable {} ms, timeout {} ms",
        opts.seed,
        opts.timers.label(),
        opts.faults,
        s.lab.id(),
        s.stable.as_millis(),
        s.settle_timeout.as_millis()
    );
    let first = s.settle(Instant::now(), s.settle_timeout + opts.timers.initdead);
    if first.is_none() {
        s.report.stopped_early = Some(format!(
            "the cluster did not settle after its start: {}",
            s.last_why
        ));
    } else {
        s.post_settle_audits("start");
        s.flush_logs();
        // Availability counts from the first fault on, not the cluster's cold start.
        s.probes = 0;
        s.answered = 0;
    }
    if s.report.stopped_early.is_none() {
        for (i, f) in plan.iter().enumerate() {
            if STOP.load(Ordering::Relaxed) {
                s.report.stopped_early = Some("interrupted".into());
                break;
            }
            if let Err(e) = s.one(i + 1, f) {
                s.report.stopped_early = Some(format!("fault {}: {e:#}", i + 1));
                break;
            }
        }
    }
    s.finish();
    if let Some(dir) = &opts.logs_to {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("[soak] cannot create {}: {e}", dir.display());
        }
        for i in 0..2 {
            let to = dir.join(format!("{}-{}.log", s.report.stem(), NAMES[i]));
            match std::fs::copy(s.log_of(i), &to) {
                Ok(_) => eprintln!("[soak] {} log: {}", NAMES[i], to.display()),
                Err(e) => eprintln!("[soak] cannot copy {}'s log: {e}", NAMES[i]),
            }
        }
    }
    Ok(s.report)
}

/// The run's state.
struct Soak {
    t: Timers,
    lab: Lab,
    /// The cluster's files (ha.cf, haresources, authkeys, had.toml), rendered for `net`; the
    /// second one has the second VIP in its group (`reload_vip`).
    spec: [ClusterSpec; 2],
    net: Net,
    /// The web resource's start and stop limit (had.toml `[[resource]]`).
    agent_timeout: Duration,
    had: PathBuf,
    hactl: PathBuf,
    vip: Ipv4Addr,
    vip2: Ipv4Addr,
    vip2_on: bool,
    t0: Instant,
    watch: VipWatch,
    prober: Prober,
    audit: OverlapAudit,
    report: Report,
    probes: u64,
    answered: u64,
    /// The latest probe: when it was sent, and the body or the error.
    last_probe: Option<(Instant, Result<String, String>)>,
    /// Open no-talk window of each node (daemon dead or frozen, node off).
    down: [Option<usize>; 2],
    /// Whether each daemon should be running now.
    expected: [bool; 2],
    /// A leftover resource was seen (and reported) on each node.
    leftover: [bool; 2],
    log_pos: [u64; 2],
    stable: Duration,
    settle_timeout: Duration,
    monitor_every: Duration,
    last_why: String,
    // The fault being run.
    cur: usize,
    cur_kind: String,
    steps: Vec<Step>,
    overlaps: Vec<AllowedOverlap>,
    violations: Vec<usize>,
    drops_before: [BTreeMap<String, u64>; 2],
    logs: BTreeMap<String, Vec<String>>,
    progress: bool,
    /// The node runs Heartbeat 3.0.6 (node2 with --mixed).
    hb: [bool; 2],
}

impl Soak {
    fn new(opts: &Options) -> anyhow::Result<Soak> {
        let t = opts.timers;
        let lab = Lab::new(LabOptions::default())?;
        let had = find_bin("had")?;
        let hactl = find_bin("hactl")?;
        let (vip, vip2) = (lab.vip(0), lab.vip(1));
        direct_link(&lab)?;
        let monitor_every = (t.deadtime / 2).max(Duration::from_millis(500));
        let agent_timeout = agent_timeout(&t);
        let spec = [None, Some(vip2)]
            .map(|v2| cluster_spec(&t, vip, v2, opts.mixed, monitor_every, agent_timeout));
        let net = Net::of(&lab);
        spec[0].write(&lab)?;
        for (i, n) in NAMES.iter().enumerate() {
            let node = lab.node(n);
            nft(node.netns(), NFT_TABLE)?;
            // The lab gives each had start a fresh tmpfs on /run; a host's /run outlives a
            // daemon killed -9 (and only a reboot clears it). The server's pidfile goes to a
            // per-node directory that behaves like that, so a restarted had finds what the
            // previous one left running.
            let host_run = host_run_dir(&lab, i);
            std::fs::create_dir_all(&host_run)
                .with_context(|| format!("creating {}", host_run.display()))?;
            let real = web_script(80).replace("/run/$TAG", &format!("{}/$TAG", host_run.display()));
            node.write_file("resource.d/web-real", &real, 0o755)?;
            let flags = flag_dir(&lab, i);
            std::fs::create_dir_all(&flags)
                .with_context(|| format!("creating {}", flags.display()))?;
            node.write_file(
                "resource.d/web",
                &web_wrapper(&flags, &node.config_dir()),
                0o755,
            )?;
        }
        let nss: Vec<&str> = NAMES.iter().map(|n| lab.node(n).netns()).collect();
        let watch = VipWatch::start(&nss, vip, SAMPLE_EVERY)?;
        let prober = lab.probe_with_timeout(vip, 80, PROBE_EVERY, Duration::from_millis(200))?;
        // The sim's bound (keepalive + 500 ms + 6 latencies + one op) with lab latencies and a
        // loaded machine's op times: keepalive + 2 s.
        let handover = t.keepalive + Duration::from_secs(2);
        let stable = (t.keepalive * 2 + Duration::from_millis(300)).max(Duration::from_millis(500));
        let settle_timeout =
            t.initdead + t.deadtime * 4 + monitor_every * 2 + Duration::from_secs(15);
        let report = Report {
            seed: opts.seed,
            command: opts.command.clone(),
            timers: t.label(),
            keepalive_ms: t.keepalive.as_millis() as u64,
            deadtime_ms: t.deadtime.as_millis() as u64,
            warntime_ms: t.warntime.as_millis() as u64,
            initdead_ms: t.initdead.as_millis() as u64,
            handover_ms: handover.as_millis() as u64,
            settle_timeout_ms: settle_timeout.as_millis() as u64,
            stable_ms: stable.as_millis() as u64,
            pair: if opts.mixed {
                "had (node1) + Heartbeat 3.0.6 (node2)".into()
            } else {
                "had + had".into()
            },
            links: "two: eth0 (the LAN through the lab switch, also the client's path) and eth1 (a direct veth cable), `bcast` on both".into(),
            faults_planned: opts.faults,
            not_injected: not_injected(opts.mixed),
            ..Report::default()
        };
        let mut s = Soak {
            t,
            lab,
            spec,
            net,
            agent_timeout,
            had,
            hactl,
            vip,
            vip2,
            vip2_on: false,
            t0: Instant::now(),
            watch,
            prober,
            audit: OverlapAudit::new(handover),
            report,
            probes: 0,
            answered: 0,
            last_probe: None,
            down: [None, None],
            expected: [true, true],
            leftover: [false, false],
            log_pos: [0, 0],
            stable,
            settle_timeout,
            monitor_every,
            last_why: String::new(),
            cur: 0,
            cur_kind: "start".into(),
            steps: Vec::new(),
            overlaps: Vec::new(),
            violations: Vec::new(),
            drops_before: [BTreeMap::new(), BTreeMap::new()],
            logs: BTreeMap::new(),
            progress: opts.progress,
            hb: [false, opts.mixed],
        };
        s.report.footprint.rss_budget_kib = RSS_BUDGET_KIB;
        s.report.footprint.fd_budget = FD_BUDGET;
        for i in 0..2 {
            s.start(i)?;
        }
        Ok(s)
    }

    fn rel(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    fn step(&mut self, what: impl Into<String>) {
        let at_s = self.rel(Instant::now());
        self.steps.push(Step {
            at_s,
            what: what.into(),
        });
    }

    fn violation(&mut self, rule: &str, at: Instant, duration: Option<Duration>, detail: String) {
        eprintln!(
            "[soak] VIOLATION fault {} ({}) {rule}: {}",
            self.cur,
            self.cur_kind,
            detail.lines().next().unwrap_or("")
        );
        self.report.violations.push(Violation {
            fault: self.cur,
            kind: self.cur_kind.clone(),
            rule: rule.into(),
            at_s: self.rel(at),
            duration_ms: duration.map(|d| d.as_millis() as u64),
            detail,
        });
        self.violations.push(self.report.violations.len() - 1);
    }

    /// Reads the samplers: overlaps are classified as their runs close; probes are counted.
    fn pump(&mut self) {
        let closed = self.audit.feed(self.watch.drain());
        for o in closed {
            self.overlap_closed(o);
        }
        for p in self.prober.drain() {
            self.probes += 1;
            if p.result.is_ok() {
                self.answered += 1;
            }
            let r = match &p.result {
                Ok(b) => Ok(b.trim().to_string()),
                Err(e) => Err(e.clone()),
            };
            self.last_probe = Some((p.sent, r));
        }
    }

    fn overlap_closed(&mut self, o: crate::audit::Overlap) {
        if o.outside.is_zero() {
            self.overlaps.push(AllowedOverlap {
                at_s: self.rel(o.start),
                ms: o.len.as_millis() as u64,
            });
        } else {
            let detail = format!(
                "VIP {} on both nodes for {} ms from {:.3} s, {} ms of it while they could talk (handover bound {} ms)",
                self.vip,
                o.len.as_millis(),
                self.rel(o.start),
                o.outside.as_millis(),
                self.audit.handover().as_millis()
            );
            self.violation("overlap", o.start, Some(o.outside), detail);
        }
    }

    /// Sleeps `d` while reading the samplers.
    fn pause(&mut self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            self.pump();
            let now = Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }

    /// Who holds the VIP by the latest sample: each node's flag.
    fn vip_on(&self) -> [bool; 2] {
        match self.audit.last() {
            Some(s) => [s.on.first() == Some(&true), s.on.get(1) == Some(&true)],
            None => [false, false],
        }
    }

    /// The single holder, if exactly one node has the VIP.
    fn holder(&self) -> Option<usize> {
        match self.vip_on() {
            [true, false] => Some(0),
            [false, true] => Some(1),
            _ => None,
        }
    }

    fn resolve(&self, t: Target) -> usize {
        let h = self.holder().unwrap_or(0);
        match t {
            Target::Holder => h,
            Target::Other => 1 - h,
        }
    }

    fn node(&self, i: usize) -> &ha_lab::Node {
        self.lab.node(NAMES[i])
    }

    // ---- daemons ----

    /// The daemon's name on node `i`, for the report.
    fn daemon(&self, i: usize) -> &'static str {
        if self.hb[i] { "heartbeat" } else { "had" }
    }

    /// The daemon's PID on node `i` (Heartbeat's master control process), while it runs.
    fn daemon_pid(&self, i: usize) -> Option<u32> {
        if self.hb[i] {
            self.node(i).heartbeat_pid()
        } else {
            self.node(i).had_pid()
        }
    }

    /// The client's neighbour entry for the VIP (`ip neigh`), for reports.
    fn client_neigh(&self) -> String {
        let out = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let vip = self.vip.to_string();
        let mut s = out(&["-n", self.lab.client_netns(), "neigh", "show", &vip]);
        for i in 0..2 {
            let link = out(&["-n", self.node(i).netns(), "-br", "link", "show", "eth0"]);
            s.push_str(&format!("; {} {link}", NAMES[i]));
        }
        s
    }

    /// The daemon's log: had's output, Heartbeat's ha-log.
    fn log_of(&self, i: usize) -> PathBuf {
        if self.hb[i] {
            self.node(i).heartbeat_log_path()
        } else {
            self.node(i).log_path()
        }
    }

    /// Sends `sig` to the daemon of node `i` (Heartbeat: its master control process).
    fn signal(&self, i: usize, sig: Signal) -> anyhow::Result<()> {
        let pid = self
            .daemon_pid(i)
            .with_context(|| format!("{}: {} is not running", NAMES[i], self.daemon(i)))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
            .with_context(|| format!("kill -{sig} {pid}"))
    }

    fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let had = self.had.clone();
        let hb = self.hb[i];
        let mut last = None;
        for attempt in 0..3 {
            let node = self.lab.node_mut(NAMES[i]);
            let r = if hb {
                node.start_heartbeat()
            } else {
                node.start_had(&had, &[])
            };
            match r {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    let detail = format!(
                        "{}: {} did not start (attempt {}): {e:#}",
                        NAMES[i],
                        self.daemon(i),
                        attempt + 1
                    );
                    self.violation("daemon_start", Instant::now(), None, detail);
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        self.expected[i] = true;
        if let Some(w) = self.down[i].take() {
            self.audit.can_talk(w, Instant::now());
        }
        self.step(format!("{}: {} started", NAMES[i], self.daemon(i)));
        Ok(())
    }

    fn mark_down(&mut self, i: usize) {
        if self.down[i].is_none() {
            self.down[i] = Some(self.audit.cannot_talk(Instant::now()));
        }
    }

    fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        self.mark_down(i);
        self.expected[i] = false;
        if self.hb[i] {
            // Heartbeat is a tree (master control, one reader and one writer per medium, the
            // FIFO reader): all of it dies, the resources it started stay.
            let pids = heartbeat_processes_in(self.node(i).netns());
            for pid in &pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
            }
            self.lab
                .node_mut(NAMES[i])
                .wait_had_exit(Duration::from_secs(10))?;
            self.step(format!(
                "{}: heartbeat processes {pids:?} killed -9",
                NAMES[i]
            ));
            return Ok(());
        }
        let node = self.lab.node_mut(NAMES[i]);
        if node.had_pid().is_some() {
            node.signal_had(Signal::SIGKILL)?;
            node.wait_had_exit(Duration::from_secs(10))?;
        }
        self.step(format!("{}: had killed -9", NAMES[i]));
        Ok(())
    }

    fn sigterm_both(&mut self) -> anyhow::Result<()> {
        for i in 0..2 {
            self.expected[i] = false;
            if self.daemon_pid(i).is_some() {
                self.signal(i, Signal::SIGTERM)?;
            }
        }
        self.step("SIGTERM to both daemons");
        for i in 0..2 {
            let limit = self.t.deadtime * 2 + Duration::from_secs(30);
            let mut code = self.lab.node_mut(NAMES[i]).wait_had_exit(limit)?;
            if self.hb[i] {
                // After a restart of its own, Heartbeat no longer runs under the lab's tini:
                // wait for its processes themselves.
                let ns = self.node(i).netns().to_string();
                let end = Instant::now() + limit;
                while !heartbeat_processes_in(&ns).is_empty() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if !heartbeat_processes_in(&ns).is_empty() {
                    code = None;
                }
            }
            self.mark_down(i);
            match code {
                Some(c) => self.step(format!("{}: {} exited ({c})", NAMES[i], self.daemon(i))),
                None => {
                    let detail = format!(
                        "{}: {} still runs {limit:?} after SIGTERM; killed -9",
                        NAMES[i],
                        self.daemon(i)
                    );
                    self.violation("daemon_stop", Instant::now(), None, detail);
                    self.kill9(i)?;
                }
            }
        }
        Ok(())
    }

    fn hactl(&mut self, i: usize, args: &[&str]) -> (Option<i32>, String) {
        if self.hb[i] {
            return self.hb_admin(i, args);
        }
        let out = self.node(i).hactl(&self.hactl, args);
        let (code, text) = match out {
            Ok(o) => (
                o.status.code(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout).trim(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            ),
            Err(e) => (None, format!("{e:#}")),
        };
        let short: String = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(160)
            .collect();
        self.step(format!(
            "{}: hactl {} -> {} {short}",
            NAMES[i],
            args.join(" "),
            code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
        ));
        (code, text)
    }

    /// The admin commands on a Heartbeat node: `hb_standby all`, `hb_takeover all`; it has no
    /// failure state to clean up.
    fn hb_admin(&mut self, i: usize, args: &[&str]) -> (Option<i32>, String) {
        let r = match args.first().copied() {
            Some("standby") => Some(self.node(i).hb_standby("all")),
            Some("takeover") => Some(self.node(i).hb_takeover("all")),
            _ => None,
        };
        let (code, text) = match r {
            None => (Some(0), "nothing to do on Heartbeat".to_string()),
            Some(Ok(())) => (Some(0), String::new()),
            Some(Err(e)) => (Some(1), format!("{e:#}")),
        };
        let short: String = text.chars().take(160).collect();
        self.step(format!(
            "{}: hb_{} all -> {} {short}",
            NAMES[i],
            args.first().copied().unwrap_or("?"),
            code.unwrap_or(1)
        ));
        (code, text)
    }

    /// `hactl status --json` of a had node; None for a Heartbeat node or when it fails.
    fn status(&self, i: usize) -> Option<Value> {
        if self.hb[i] {
            return None;
        }
        let o = self
            .node(i)
            .hactl(&self.hactl, &["status", "--json"])
            .ok()?;
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    // ---- network ----

    fn nft(&mut self, i: usize, rules: &str) -> anyhow::Result<()> {
        nft(self.node(i).netns(), rules)?;
        let one: String = rules.split_whitespace().collect::<Vec<_>>().join(" ");
        self.step(format!("{}: nft {one}", NAMES[i]));
        Ok(())
    }

    fn heal_nft(&mut self) -> anyhow::Result<()> {
        for i in 0..2 {
            nft(
                self.node(i).netns(),
                "flush chain inet soak in\nflush chain inet soak out\n",
            )?;
        }
        self.step("nft rules flushed on both nodes");
        Ok(())
    }

    fn ip(&mut self, i: usize, args: &str) -> anyhow::Result<()> {
        let ns = self.node(i).netns().to_string();
        let mut full = vec!["-n", ns.as_str()];
        full.extend(args.split_whitespace());
        run_ok("ip", &full)?;
        self.step(format!("{}: ip {args}", NAMES[i]));
        Ok(())
    }

    // ---- resource faults ----

    fn flag(&mut self, i: usize, name: &str, value: &str) -> anyhow::Result<()> {
        let p = flag_dir(&self.lab, i).join(name);
        std::fs::write(&p, value).with_context(|| format!("writing {}", p.display()))?;
        self.step(format!("{}: web {name} armed ({value})", NAMES[i]));
        Ok(())
    }

    fn clear_flags(&mut self, i: usize) {
        if let Ok(rd) = std::fs::read_dir(flag_dir(&self.lab, i)) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Polls `f` until it holds or `limit` passes; whether it held.
    fn wait_for(&mut self, limit: Duration, mut f: impl FnMut(&mut Soak) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            self.pump();
            if f(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Until node `i` no longer holds the group (it released or refused it), bounded.
    fn wait_released(&mut self, i: usize, limit: Duration) -> bool {
        let ok = self.wait_for(limit, |s| {
            !s.vip_on()[i] || s.status(i).is_some_and(|st| failed(&st))
        });
        self.step(if ok {
            format!("{} released the group", NAMES[i])
        } else {
            format!("{} still holds the group after {}", NAMES[i], fmt_ms(limit))
        });
        ok
    }

    /// Until node `i` reports the group failed there (its monitor or start noticed), or, with
    /// `or_moved`, the VIP left it (a failure cleared at once by a passing check), bounded.
    fn wait_failed(&mut self, i: usize, limit: Duration, or_moved: bool) -> bool {
        let ok = self.wait_for(limit, |s| {
            (or_moved && !s.vip_on()[i]) || s.status(i).is_some_and(|st| failed(&st))
        });
        self.step(if ok {
            format!("{} reports the group failed there", NAMES[i])
        } else {
            format!(
                "{} did not report a failure within {}",
                NAMES[i],
                fmt_ms(limit)
            )
        });
        ok
    }

    /// haresources as the spec renders it, with the second VIP when it is on.
    fn haresources(&self) -> String {
        self.spec[usize::from(self.vip2_on)].haresources(&self.net)
    }

    fn write_haresources(&mut self, i: usize, text: &str) -> anyhow::Result<()> {
        self.node(i).write_file("haresources", text, 0o644)
    }

    // ---- one fault ----

    fn one(&mut self, index: usize, f: &Fault) -> anyhow::Result<()> {
        self.cur = index;
        self.cur_kind = f.kind().into();
        self.steps.clear();
        self.overlaps.clear();
        self.violations.clear();
        self.logs.clear();
        self.pump();
        for i in 0..2 {
            self.drops_before[i] = self.status(i).map(|s| drops(&s)).unwrap_or_default();
        }
        let holder_before = self.holder().map(|h| NAMES[h].to_string());
        let injected = Instant::now();
        self.inject(f)?;
        let ended = Instant::now();
        self.step("fault ended");
        let recovery = self.settle(ended, self.settle_timeout);
        let mut fatal = None;
        let recovery = match recovery {
            Some(r) => Some(r),
            None => {
                let detail = format!(
                    "not settled {} after the fault ended: {}",
                    fmt_ms(self.settle_timeout),
                    self.last_why
                );
                self.violation("not_settled", Instant::now(), None, detail);
                fatal = self.recover()?;
                None
            }
        };
        if fatal.is_none() {
            self.post_settle_audits(f.kind());
            self.clear_refusals()?;
        }
        let mut drops_delta = BTreeMap::new();
        for i in 0..2 {
            let now = self.status(i).map(|s| drops(&s)).unwrap_or_default();
            let before = &self.drops_before[i];
            let d: BTreeMap<String, u64> = now
                .into_iter()
                .filter_map(|(k, v)| {
                    let b = before.get(&k).copied().unwrap_or(0);
                    // A restarted daemon counts from zero again.
                    let delta = if v >= b { v - b } else { v };
                    (delta > 0).then_some((k, delta))
                })
                .collect();
            drops_delta.insert(NAMES[i].to_string(), d);
        }
        self.flush_logs();
        let rec = FaultRecord {
            index,
            kind: f.kind().into(),
            what: f.describe(),
            holder_before,
            holder_after: self.holder().map(|h| NAMES[h].to_string()),
            injected_at_s: self.rel(injected),
            ended_at_s: self.rel(ended),
            recovery_ms: recovery.map(|r| r.as_millis() as u64),
            steps: std::mem::take(&mut self.steps),
            logs: std::mem::take(&mut self.logs),
            drops: drops_delta,
            allowed_overlaps: std::mem::take(&mut self.overlaps),
            violations: std::mem::take(&mut self.violations),
        };
        if self.progress {
            eprintln!(
                "[soak] fault {index}/{} {} ({}): recovery {}, holder {}{}",
                self.report.faults_planned,
                rec.kind,
                rec.what,
                rec.recovery_ms
                    .map(|r| format!("{r} ms"))
                    .unwrap_or_else(|| "NOT SETTLED".into()),
                rec.holder_after.as_deref().unwrap_or("none"),
                if rec.violations.is_empty() {
                    String::new()
                } else {
                    format!(", {} VIOLATION(S)", rec.violations.len())
                }
            );
        }
        self.report.faults.push(rec);
        self.report.faults_run = index;
        match fatal {
            Some(why) => bail!(why),
            None => Ok(()),
        }
    }

    fn inject(&mut self, f: &Fault) -> anyhow::Result<()> {
        let dt = self.t.deadtime;
        match *f {
            Fault::Kill9 { target, down } => {
                let i = self.resolve(target);
                self.kill9(i)?;
                self.pause(down);
                self.start(i)?;
            }
            Fault::Kill9Early { target, down, up } => {
                let i = self.resolve(target);
                self.kill9(i)?;
                self.pause(down);
                self.start(i)?;
                self.pause(up);
                self.kill9(i)?;
                self.pause(down / 2);
                self.start(i)?;
            }
            Fault::Freeze { frozen } => {
                let i = self.resolve(Target::Holder);
                self.signal(i, Signal::SIGSTOP)?;
                self.mark_down(i);
                self.step(format!("{}: {} SIGSTOP", NAMES[i], self.daemon(i)));
                self.pause(frozen);
                self.signal(i, Signal::SIGCONT)?;
                if let Some(w) = self.down[i].take() {
                    self.audit.can_talk(w, Instant::now());
                }
                self.step(format!("{}: {} SIGCONT", NAMES[i], self.daemon(i)));
            }
            Fault::CutOneLink { link, cut } => {
                let l = LINKS[usize::from(link.min(1))];
                for i in 0..2 {
                    self.nft(i, &drop_rules(&[l], true, true, None))?;
                }
                self.pause(cut);
                self.heal_nft()?;
            }
            Fault::SplitBrain {
                side,
                physical,
                cut,
            } => {
                let i = self.resolve(side);
                let w = self.audit.cannot_talk(Instant::now());
                if physical {
                    self.node(i).cut_link()?;
                    self.ip(i, "link set eth1 down")?;
                    self.step(format!("{}: switch port down", NAMES[i]));
                } else {
                    self.nft(i, &drop_rules(&LINKS, true, true, None))?;
                }
                self.pause(cut);
                if physical {
                    self.ip(i, "link set eth1 up")?;
                    self.node(i).restore_link()?;
                    self.step(format!("{}: switch port up", NAMES[i]));
                } else {
                    self.heal_nft()?;
                }
                self.audit.can_talk(w, Instant::now());
            }
            Fault::OneWay { deaf, cut } => {
                let i = self.resolve(deaf);
                let w = self.audit.cannot_talk(Instant::now());
                self.nft(i, &drop_rules(&LINKS, true, false, None))?;
                self.pause(cut);
                self.heal_nft()?;
                self.audit.can_talk(w, Instant::now());
            }
            Fault::Loss { percent, lossy } => {
                let w = self.audit.cannot_talk(Instant::now());
                for i in 0..2 {
                    self.nft(i, &drop_rules(&LINKS, true, false, Some(percent)))?;
                }
                self.pause(lossy);
                self.heal_nft()?;
                self.audit.can_talk(w, Instant::now());
            }
            Fault::ServiceKill => {
                let i = self.resolve(Target::Holder);
                self.kill_web(i)?;
                let limit = self.monitor_every * 3 + MONITOR_TIMEOUT + dt + Duration::from_secs(5);
                self.wait_failed(i, limit, true);
                self.hactl(i, &["cleanup"]);
            }
            Fault::ServiceHangStop { hang } => {
                let i = self.resolve(Target::Holder);
                self.flag(i, "hang-stop", &secs(hang))?;
                let (code, _) = self.hactl(i, &["standby"]);
                if code == Some(0) {
                    self.wait_released(i, hang + dt + Duration::from_secs(10));
                    // Back where it was: the admin lifts the standby.
                    self.wait_settled_quietly();
                    self.hactl(i, &["takeover"]);
                }
                self.clear_flags(i);
            }
            Fault::ServiceFailStart => {
                let h = self.resolve(Target::Holder);
                let o = 1 - h;
                self.flag(o, "fail-start", "1")?;
                let (code, _) = self.hactl(h, &["standby"]);
                if code == Some(0) {
                    let ok = self.wait_for(dt * 2 + Duration::from_secs(10), |s| {
                        s.status(o).is_some_and(|st| failed(&st))
                    });
                    self.step(format!(
                        "{}: {}",
                        NAMES[o],
                        if ok {
                            "refuses the group (start failed)"
                        } else {
                            "never refused the group"
                        }
                    ));
                }
                self.clear_flags(o);
                self.hactl(o, &["cleanup"]);
                if code == Some(0) {
                    self.wait_settled_quietly();
                    self.hactl(h, &["takeover"]);
                }
            }
            Fault::AgentHangStatus => {
                let i = self.resolve(Target::Holder);
                let hang = MONITOR_TIMEOUT + self.monitor_every;
                self.flag(i, "hang-status", &secs(hang))?;
                let limit = self.monitor_every * 4 + hang + dt + Duration::from_secs(5);
                self.wait_failed(i, limit, true);
                self.clear_flags(i);
                self.hactl(i, &["cleanup"]);
            }
            Fault::AgentHangStart => self.agent_hang_start()?,
            Fault::AgentHangStop => self.agent_hang_stop()?,
            Fault::VipDelete => {
                let i = self.resolve(Target::Holder);
                let arg = format!("addr del {}/24 dev eth0", self.vip);
                self.ip(i, &arg)?;
                let limit = self.monitor_every * 3 + MONITOR_TIMEOUT + dt + Duration::from_secs(5);
                self.wait_failed(i, limit, false);
                self.hactl(i, &["cleanup"]);
            }
            Fault::IfaceFlap { down } => {
                let i = self.resolve(Target::Holder);
                self.ip(i, "link set eth0 down")?;
                self.pause(down);
                self.ip(i, "link set eth0 up")?;
            }
            Fault::StandbyTakeover {
                standby,
                takeover,
                gap,
            } => {
                let a = self.resolve(standby);
                self.hactl(a, &["standby"]);
                self.pause(gap);
                let b = self.resolve(takeover);
                self.hactl(b, &["takeover"]);
            }
            Fault::ReloadVip => {
                self.vip2_on = !self.vip2_on;
                let text = self.haresources();
                for i in 0..2 {
                    self.write_haresources(i, &text)?;
                }
                self.step(format!(
                    "haresources: {} {}",
                    if self.vip2_on { "added" } else { "removed" },
                    self.vip2
                ));
                for i in 0..2 {
                    let (code, text) = self.hactl(i, &["reload"]);
                    if code != Some(0) {
                        let detail = format!("{}: a valid reload failed: {text}", NAMES[i]);
                        self.violation("reload", Instant::now(), None, detail);
                    }
                }
            }
            Fault::ReloadInvalid { on } => {
                let i = self.resolve(on);
                let good = self.haresources();
                self.write_haresources(i, &format!("{}node1 nosuchagent::x\n", good))?;
                self.step(format!("{}: invalid haresources written", NAMES[i]));
                let (code, text) = self.hactl(i, &["reload"]);
                if code != Some(1) {
                    let detail = format!(
                        "{}: an invalid reload was not refused (exit {code:?}): {text}",
                        NAMES[i]
                    );
                    self.violation("reload", Instant::now(), None, detail);
                }
                self.write_haresources(i, &good)?;
                self.step(format!("{}: valid haresources restored", NAMES[i]));
            }
            Fault::RestartBoth { hard, down } => {
                if hard {
                    self.kill9(0)?;
                    self.kill9(1)?;
                } else {
                    self.sigterm_both()?;
                }
                self.pause(down);
                self.start(0)?;
                self.start(1)?;
            }
            Fault::PowerCycle { target, off } => {
                let i = self.resolve(target);
                self.mark_down(i);
                self.expected[i] = false;
                self.watch.set_off(i, true);
                self.ip(i, "link set eth1 down")?;
                self.lab.node_mut(NAMES[i]).crash()?;
                self.step(format!("{}: power cut", NAMES[i]));
                self.pause(off);
                self.lab.node_mut(NAMES[i]).power_on()?;
                // A reboot empties /run.
                let host_run = host_run_dir(&self.lab, i);
                let _ = std::fs::remove_dir_all(&host_run);
                std::fs::create_dir_all(&host_run)
                    .with_context(|| format!("creating {}", host_run.display()))?;
                self.ip(i, "link set eth1 up")?;
                self.watch.set_off(i, false);
                self.step(format!("{}: powered on", NAMES[i]));
                self.start(i)?;
            }
            Fault::HostileBurst { packets, seed } => {
                let targets = [self.lab.ip("node1"), self.lab.ip("node2")];
                let listen = self.t.keepalive * 3 + Duration::from_millis(200);
                let b =
                    crate::hostile::burst(self.lab.client_netns(), targets, packets, seed, listen)?;
                self.step(format!(
                    "hostile: {} captured, sent {} replays, {} wrong-key, {} junk",
                    b.captured, b.replays, b.wrong_key, b.junk
                ));
            }
        }
        Ok(())
    }

    /// The other node's web start hangs past its limit when a standby of the holder asks it
    /// to start the group. had must kill it at the limit and handle it as a failed start:
    /// rolled back, the group refused there (and so kept by the holder, standby or not);
    /// anything else is a violation (`agent_timeout`). Then `cleanup` and `takeover`.
    fn agent_hang_start(&mut self) -> anyhow::Result<()> {
        let Some(h) = self.holder() else {
            self.step("nobody holds the group: nothing to start elsewhere");
            return Ok(());
        };
        let o = 1 - h;
        let limit = self.agent_timeout;
        // Longer than the limit: only the kill ends it.
        let hang = limit + self.t.deadtime + Duration::from_secs(2);
        self.flag(o, "hang-start", &secs(hang))?;
        let asked = Instant::now();
        let (code, _) = self.hactl(h, &["standby"]);
        if code == Some(0) {
            let within = limit + self.t.deadtime * 2 + Duration::from_secs(10);
            let refused = self.wait_for(within, |s| s.status(o).is_some_and(|st| failed(&st)));
            let took = asked.elapsed();
            let err = self.status(o).map(|st| web_error(&st)).unwrap_or_default();
            if refused && err.contains("start timed out") && took >= limit {
                self.step(format!(
                    "{}: web start killed at its {} limit, group rolled back and refused there \
                     ({} after the standby): {err}",
                    NAMES[o],
                    fmt_ms(limit),
                    fmt_ms(took)
                ));
            } else {
                let detail = format!(
                    "{}: a web start hanging past its {} limit was not killed and handled as a \
                     failed start within {}: refused {refused} after {}, web's error {err:?}",
                    NAMES[o],
                    fmt_ms(limit),
                    fmt_ms(within),
                    fmt_ms(took)
                );
                self.violation("agent_timeout", Instant::now(), None, detail);
            }
        }
        self.clear_flags(o);
        self.hactl(o, &["cleanup"]);
        if code == Some(0) {
            self.wait_settled_quietly();
            self.hactl(h, &["takeover"]);
        }
        Ok(())
    }

    /// The holder's web stop hangs past its limit on every try while a standby moves the
    /// group. had's rule for a stop that fails after its retries (docs/monitoring.md): the
    /// address is still released, the group stays `stop_failed` and held on that node, and
    /// the peer never starts it on top (no VIP anywhere, no web on the peer) until the admin
    /// stops the leftover by hand and runs `hactl cleanup`. Anything else is a violation
    /// (`agent_timeout`, `stop_failed_taken`). Then the admin's repair and `takeover`.
    fn agent_hang_stop(&mut self) -> anyhow::Result<()> {
        let Some(h) = self.holder() else {
            self.step("nobody holds the group: nothing to stop");
            return Ok(());
        };
        let o = 1 - h;
        let limit = self.agent_timeout;
        self.flag(h, "hang-stop-always", &secs(limit * 2 + self.t.deadtime))?;
        let asked = Instant::now();
        let (code, _) = self.hactl(h, &["standby"]);
        if code == Some(0) {
            // Two tries (stop_retries = 1), each killed at the limit, 200 ms apart.
            let within = limit * 2 + self.t.deadtime * 2 + Duration::from_secs(10);
            let failed_stop = self.wait_for(within, |s| {
                s.status(h)
                    .is_some_and(|st| st["groups"][0]["state"] == "stop_failed")
            });
            let took = asked.elapsed();
            let err = self.status(h).map(|st| web_error(&st)).unwrap_or_default();
            if failed_stop && err.contains("stop timed out") && took >= limit * 2 {
                self.step(format!(
                    "{}: both web stops killed at the {} limit; group stop_failed and held \
                     there ({} after the standby): {err}",
                    NAMES[h],
                    fmt_ms(limit),
                    fmt_ms(took)
                ));
                self.hold_after_failed_stop(h, o);
            } else {
                let detail = format!(
                    "{}: web stops hanging past their {} limit did not end in stop_failed \
                     within {}: stop_failed {failed_stop} after {}, web's error {err:?}",
                    NAMES[h],
                    fmt_ms(limit),
                    fmt_ms(within),
                    fmt_ms(took)
                );
                self.violation("agent_timeout", Instant::now(), None, detail);
            }
        }
        // The admin: the service stopped by hand, then cleanup releases the group.
        self.clear_flags(h);
        if listens_on_80(self.node(h).netns()) == Some(true) {
            self.kill_web(h)?;
        }
        self.hactl(h, &["cleanup"]);
        if code == Some(0) {
            self.wait_settled_quietly();
            self.hactl(h, &["takeover"]);
        }
        Ok(())
    }

    /// After a failed stop on `h`: for 2 × deadtime (at least 1 s) the group must stay held
    /// by `h` with no address on either node, and `o` must not start it.
    fn hold_after_failed_stop(&mut self, h: usize, o: usize) {
        let watch = (self.t.deadtime * 2).max(Duration::from_secs(1));
        let end = Instant::now() + watch;
        while Instant::now() < end {
            self.pump();
            let on = self.vip_on();
            let peer_state = self
                .status(o)
                .map(|st| st["groups"][0]["state"].as_str().unwrap_or("?").to_string());
            let peer_starts = matches!(peer_state.as_deref(), Some("starting" | "running"));
            if on[o] || peer_starts || listens_on_80(self.node(o).netns()) == Some(true) {
                let detail = format!(
                    "{} started the group while {} held it stop_failed (VIP on {:?}, {}'s \
                     state {peer_state:?})",
                    NAMES[o], NAMES[h], on, NAMES[o]
                );
                self.violation("stop_failed_taken", Instant::now(), None, detail);
                return;
            }
            if on[h] {
                let detail = format!(
                    "{}: the VIP is still up after the group's stop (only web's stop failed)",
                    NAMES[h]
                );
                self.violation("stop_failed_vip", Instant::now(), None, detail);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.step(format!(
            "{}: held the group stop_failed for {} with the VIP on no node; {} never started it",
            NAMES[h],
            fmt_ms(watch),
            NAMES[o]
        ));
    }

    fn kill_web(&mut self, i: usize) -> anyhow::Result<()> {
        let pidfile = host_run_dir(&self.lab, i).join(format!("web-{}-80.pid", self.vip));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap_or_default()
            .trim()
            .parse()
            .with_context(|| format!("{}: no web pid in {}", NAMES[i], pidfile.display()))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)
            .with_context(|| format!("kill -9 {pid}"))?;
        self.step(format!("{}: web server (pid {pid}) killed -9", NAMES[i]));
        Ok(())
    }

    /// Waits (bounded) until no group is starting or stopping, so that the admin's next
    /// command is not refused as "in transition".
    fn wait_settled_quietly(&mut self) {
        let limit = self.t.deadtime * 2 + Duration::from_secs(10);
        self.wait_for(limit, |s| {
            (0..2).all(|i| {
                s.status(i)
                    .is_some_and(|st| no_transition(&st) && st["peer"]["stable"] != false)
            })
        });
    }

    /// The repair after a fault that did not settle: every fault undone, both daemons run,
    /// failures cleared.
    /// After a fault that did not settle: the repair, then (if that is not enough) both
    /// daemons restarted, as an admin would. The reason to stop the run when even that fails.
    fn recover(&mut self) -> anyhow::Result<Option<String>> {
        self.repair()?;
        if self.settle(Instant::now(), self.settle_timeout).is_some() {
            return Ok(None);
        }
        let detail = format!("not settled after the repair: {}", self.last_why);
        self.violation("not_settled", Instant::now(), None, detail);
        self.step("repair: both daemons restarted");
        self.sigterm_both()?;
        self.start(0)?;
        self.start(1)?;
        let limit = self.settle_timeout + self.t.initdead;
        if self.settle(Instant::now(), limit).is_some() {
            return Ok(None);
        }
        Ok(Some(format!(
            "the cluster did not settle even after a repair and a restart of both daemons: {}",
            self.last_why
        )))
    }

    fn repair(&mut self) -> anyhow::Result<()> {
        self.step("repair: heal links, clear flags, restart dead daemons, cleanup");
        self.heal_nft()?;
        for i in 0..2 {
            self.clear_flags(i);
            let _ = self.ip(i, "link set eth1 up");
            let _ = self.ip(i, "link set eth0 up");
            self.node(i).restore_link()?;
            if self.daemon_pid(i).is_some() {
                let _ = self.signal(i, Signal::SIGCONT);
            } else {
                self.start(i)?;
            }
            self.hactl(i, &["cleanup"]);
        }
        Ok(())
    }

    /// A node that still refuses the group once settled (a failure the fault's own steps did
    /// not clear, e.g. a service that cannot start beside a leftover) gets the admin's
    /// `hactl cleanup`, so that later faults start from a whole cluster.
    fn clear_refusals(&mut self) -> anyhow::Result<()> {
        let refused: Vec<usize> = (0..2)
            .filter(|&i| self.status(i).is_some_and(|st| failed(&st)))
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        for &i in &refused {
            let what = self.status(i).map(|s| brief(&s)).unwrap_or_default();
            self.step(format!(
                "{} still refuses the group once settled ({what}): cleanup",
                NAMES[i]
            ));
            self.hactl(i, &["cleanup"]);
        }
        if self.settle(Instant::now(), self.settle_timeout).is_none() {
            let detail = format!("not settled after the cleanup: {}", self.last_why);
            self.violation("not_settled", Instant::now(), None, detail);
            if let Some(why) = self.recover()? {
                bail!(why);
            }
        }
        self.post_settle_audits("cleanup");
        Ok(())
    }

    // ---- settle and audits ----

    /// Polls until the cluster is settled and stayed so for the stable window, or `limit`
    /// passes (None, with the reason in `last_why`). The time from `from` to the start of the
    /// stable stretch.
    fn settle(&mut self, from: Instant, limit: Duration) -> Option<Duration> {
        let end = Instant::now() + limit;
        let mut since: Option<Instant> = None;
        let poll =
            (self.t.keepalive / 2).clamp(Duration::from_millis(50), Duration::from_millis(200));
        loop {
            self.pump();
            let now = Instant::now();
            match self.check() {
                Ok(()) => {
                    let s = *since.get_or_insert(now);
                    if now - s >= self.stable {
                        self.audit.settled(now);
                        return Some(s.saturating_duration_since(from));
                    }
                }
                Err(why) => {
                    since = None;
                    self.last_why = why;
                }
            }
            if now >= end {
                return None;
            }
            std::thread::sleep(poll);
        }
    }

    /// Is the cluster settled now? Why not, if not.
    fn check(&mut self) -> Result<(), String> {
        for i in 0..2 {
            if self.daemon_pid(i).is_none() {
                // Heartbeat restarts itself after a partition ("restart exec"): its pid file is
                // away for a while, and the lab's daemon slot (tini) may be gone with the old
                // master while the new one runs. Dead means no Heartbeat process in the node.
                let gone = !self.hb[i]
                    || (self.node(i).had_pid().is_none()
                        && heartbeat_processes_in(self.node(i).netns()).is_empty());
                if self.expected[i] && gone {
                    let detail = format!(
                        "{}: {} died without being killed; log tail:\n{}",
                        NAMES[i],
                        self.daemon(i),
                        tail(&self.log_of(i), 15)
                    );
                    self.violation("daemon_died", Instant::now(), None, detail);
                    self.mark_down(i);
                    if self.hb[i] {
                        // Whatever is left of the tree goes before a new one starts.
                        let _ = self.kill9(i);
                    }
                    if let Err(e) = self.start(i) {
                        return Err(format!(
                            "{}: {} cannot start again: {e:#}",
                            NAMES[i],
                            self.daemon(i)
                        ));
                    }
                }
                return Err(format!("{}: {} not running", NAMES[i], self.daemon(i)));
            }
        }
        for i in (0..2).filter(|&i| self.hb[i]) {
            let peer = NAMES[1 - i];
            let node = self.node(i);
            let seen = node.cl_status(&["nodestatus", peer]).unwrap_or_default();
            if seen != "active" {
                return Err(format!("{}: heartbeat sees {peer} {seen:?}", NAMES[i]));
            }
            let rsc = node.cl_status(&["rscstatus"]).unwrap_or_default();
            if rsc == "transition" || rsc.is_empty() {
                return Err(format!("{}: heartbeat rscstatus {rsc:?}", NAMES[i]));
            }
        }
        // A Heartbeat node has no status to read: it shows as a node that may run the group
        // and is not in standby (its standby hands everything to had, whose view counts).
        let st = [0, 1].map(|i| {
            if self.hb[i] {
                Some(serde_json::json!({"node": {"standby": false}, "groups": [{"refused_here": false}]}))
            } else {
                self.status(i)
            }
        });
        let [Some(s1), Some(s2)] = &st else {
            return Err("hactl status failed on a node".into());
        };
        for (i, s) in [s1, s2].iter().enumerate() {
            if self.hb[i] {
                continue;
            }
            if !no_transition(s) {
                return Err(format!("{}: a group is starting or stopping", NAMES[i]));
            }
            if s["peer"]["stable"] == false {
                return Err(format!("{}: the peer reports itself unstable", NAMES[i]));
            }
            if s["peer"]["status"] != "active" {
                return Err(format!("{}: peer status {}", NAMES[i], s["peer"]["status"]));
            }
        }
        let expected = expected_holder(s1, s2);
        let on = self.vip_on();
        let holders: Vec<usize> = (0..2).filter(|&i| on[i]).collect();
        match (expected, holders.as_slice()) {
            (Expect::Nobody, []) => {}
            (Expect::Nobody, h) => {
                return Err(format!(
                    "VIP on {h:?} but no node may run the group; node1 {}; node2 {}",
                    brief(s1),
                    brief(s2)
                ));
            }
            (Expect::Node(e), [h]) if *h == e => {}
            (Expect::Either, [_]) => {}
            (e, h) => {
                return Err(format!(
                    "VIP on {h:?}, expected {e:?}; node1 {}; node2 {}",
                    brief(s1),
                    brief(s2)
                ));
            }
        }
        let holder = holders.first().map(|&h| NAMES[h]);
        for (i, s) in [s1, s2].iter().enumerate() {
            if self.hb[i] {
                continue;
            }
            let held = s["groups"][0]["held_by"].as_str();
            if held != holder {
                return Err(format!(
                    "{} says the group is held by {held:?}, the VIP is on {holder:?}",
                    NAMES[i]
                ));
            }
        }
        if let Some(h) = holder {
            match &self.last_probe {
                Some((_, Ok(body))) if body == h => {}
                Some((_, r)) => {
                    return Err(format!(
                        "the client's last probe got {r:?} from the VIP held by {h}; client's ARP entry: {}",
                        self.client_neigh()
                    ));
                }
                None => return Err("no probe yet".into()),
            }
        }
        Ok(())
    }

    /// The audits of a settled cluster: resources on the VIP's node only, budgets, cores,
    /// bad news in the logs.
    fn post_settle_audits(&mut self, kind: &str) {
        let now = Instant::now();
        let holder = self.holder();
        for i in 0..2 {
            let ns = self.node(i).netns().to_string();
            let listening = listens_on_80(&ns);
            let want = holder == Some(i);
            if listening != Some(want) {
                let orphans = if want {
                    Vec::new()
                } else {
                    web_servers_in(&ns)
                };
                let detail = format!(
                    "{}: web listening {listening:?} but holder is {:?} (web server pids here: {orphans:?})",
                    NAMES[i],
                    holder.map(|h| NAMES[h])
                );
                // A leftover stays until removed: reported once, then removed by hand as an
                // admin would, so that later faults start from a clean node.
                if !self.leftover[i] {
                    self.violation("resources", now, None, detail);
                }
                self.leftover[i] = true;
                for pid in orphans {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                    self.step(format!(
                        "{}: leftover web server pid {pid} killed by hand",
                        NAMES[i]
                    ));
                }
            } else {
                self.leftover[i] = false;
            }
            let has2 = self.node(i).has_addr(self.vip2);
            if has2 != (want && self.vip2_on) {
                let detail = format!(
                    "{}: second VIP {} present {has2}, configured {}, holder {:?}",
                    NAMES[i],
                    self.vip2,
                    self.vip2_on,
                    holder.map(|h| NAMES[h])
                );
                self.violation("resources", now, None, detail);
            }
            if let Some(pid) = self.node(i).had_pid().filter(|_| !self.hb[i]) {
                let (rss, fds) = footprint(pid);
                let name = NAMES[i].to_string();
                let fp = &mut self.report.footprint;
                let m = fp.max_rss_kib.entry(name.clone()).or_default();
                *m = (*m).max(rss);
                let m = fp.max_fds.entry(name).or_default();
                *m = (*m).max(fds);
                if rss > RSS_BUDGET_KIB || fds > FD_BUDGET {
                    let detail = format!("{}: RSS {rss} KiB, {fds} fds", NAMES[i]);
                    self.violation("budget", now, None, detail);
                }
            }
        }
        for c in find_cores(self.lab.dir()) {
            let detail = format!("core file {}", c.display());
            self.violation("core", now, None, detail);
            let _ = std::fs::remove_file(&c);
        }
        let _ = kind;
    }

    /// Reads what each node logged since the last call: a few relevant lines for the fault's
    /// record, and the bad-news check.
    fn flush_logs(&mut self) {
        for i in 0..2 {
            let path = self.log_of(i);
            let (text, pos) = read_from(&path, self.log_pos[i]);
            self.log_pos[i] = pos;
            let mut keep = Vec::new();
            for line in text.lines() {
                // had's own start-up advice about the lab's short timers is not news.
                let noise = line.contains("warning: ")
                    || !(line.starts_with("20") || line.starts_with("==="));
                if let Some(why) = bad_news(line, &self.cur_kind).filter(|_| !self.hb[i]) {
                    let detail = format!("{}: {why}: {line}", NAMES[i]);
                    self.violation("bad_log", Instant::now(), None, detail);
                }
                if !noise && RELEVANT.iter().any(|k| line.contains(k)) && keep.len() < LOG_LINES {
                    keep.push(line.chars().take(240).collect());
                }
            }
            self.logs.insert(NAMES[i].to_string(), keep);
        }
    }

    fn finish(&mut self) {
        self.pump();
        if let Some(o) = self.audit.finish() {
            self.overlap_closed(o);
        }
        // Overlaps and violations after the last fault's record belong to it.
        if let Some(last) = self.report.faults.last_mut() {
            last.allowed_overlaps.append(&mut self.overlaps);
            last.violations.append(&mut self.violations);
        }
        self.report.duration_s = self.t0.elapsed().as_secs_f64();
        self.report.availability.probes = self.probes;
        self.report.availability.answered = self.answered;
        self.report.availability.share = if self.probes == 0 {
            0.0
        } else {
            self.answered as f64 / self.probes as f64
        };
        self.report.summarise();
    }
}

/// Which node the rules say holds the group.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Nobody,
    Either,
    Node(usize),
}

/// auto_failback on: the preferred node (node1) unless it may not run the group (it refused it
/// after a failure) or is in standby while node2 may run it; node2 likewise. `refused_here`
/// covers standby too: a node in standby still runs the group when the peer cannot.
fn expected_holder(s1: &Value, s2: &Value) -> Expect {
    let (e1, e2) = (!failed(s1), !failed(s2));
    let (b1, b2) = (standby(s1), standby(s2));
    match (e1, e2) {
        (false, false) => Expect::Nobody,
        (true, false) => Expect::Node(0),
        (false, true) => Expect::Node(1),
        (true, true) => match (b1, b2) {
            (false, _) => Expect::Node(0),
            (true, false) => Expect::Node(1),
            (true, true) => Expect::Either,
        },
    }
}

/// A node's view in one line, for the report: group state, holder, refusal, standby, the
/// last transitions.
fn brief(s: &Value) -> String {
    let g = &s["groups"][0];
    let last: Vec<String> = s["transitions"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .rev()
                .take(3)
                .map(|t| {
                    format!(
                        "{} ({})",
                        t["what"].as_str().unwrap_or("?"),
                        t["reason"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "[state {}, held_by {}, refused_here {} {}, standby {}, last: {}]",
        g["state"],
        g["held_by"],
        g["refused_here"],
        g["refused_for"],
        s["node"]["standby"],
        last.join("; ")
    )
}

fn standby(s: &Value) -> bool {
    s["node"]["standby"] == true
}

/// The node refuses the group for a failure (a failed start, a failed monitor), not for
/// standby: `refused_for` names the reasons (a daemon without it: refused but not standby).
fn failed(s: &Value) -> bool {
    let g = &s["groups"][0];
    match g["refused_for"].as_array() {
        Some(why) => why.iter().any(|r| r == "failed" || r == "unhealthy"),
        None => g["refused_here"] == true && !standby(s),
    }
}

/// The web resource's `last_error` in a node's status ("" when none).
fn web_error(s: &Value) -> String {
    s["groups"][0]["resources"]
        .as_array()
        .and_then(|rs| {
            rs.iter()
                .find(|r| r["name"].as_str().is_some_and(|n| n.starts_with("web")))
        })
        .and_then(|r| r["last_error"].as_str())
        .unwrap_or("")
        .to_string()
}

fn no_transition(s: &Value) -> bool {
    s["groups"].as_array().is_some_and(|gs| {
        gs.iter()
            .all(|g| g["state"] != "starting" && g["state"] != "stopping")
    })
}

fn drops(s: &Value) -> BTreeMap<String, u64> {
    s["packets"]["dropped"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_u64().map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default()
}

/// A line from the "bad news" list that the fault kind does not explain.
fn bad_news(line: &str, kind: &str) -> Option<&'static str> {
    if line.contains("panicked") {
        return Some("panic");
    }
    // Only the web stops the fault made hang explain a failed stop.
    if line.contains("STOP failure")
        && !(kind == "agent_hang_stop" && line.contains("stop timed out"))
    {
        return Some("a resource failed to stop");
    }
    let explained = match kind {
        "agent_hang_status" => true,
        "agent_hang_start" => line.contains("start timed out"),
        "agent_hang_stop" => line.contains("stop timed out"),
        _ => false,
    };
    if line.contains("timed out") && !explained {
        return Some("an agent timed out without a hang injected");
    }
    None
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The web resource's start and stop limit: 3 × deadtime, at least 4 s. Above every hang the
/// soak means to survive (`service_hang_stop` hangs at most 2 × deadtime) and above a web
/// start on a loaded machine; short enough that a hang past it costs seconds, not minutes.
fn agent_timeout(t: &Timers) -> Duration {
    (t.deadtime * 3).max(Duration::from_secs(4))
}

/// The group: the VIP, the web service on it, and the second VIP when `vip2` is given.
fn group(vip: Ipv4Addr, vip2: Option<Ipv4Addr>) -> Group {
    let g = Group::new("node1").ip(vip, 24).res(format!("web::{vip}"));
    match vip2 {
        Some(v) => g.ip(v, 24),
        None => g,
    }
}

/// The cluster: two media (eth0 through the switch, the direct eth1), `auto_failback on`,
/// sha1 keys; node2 runs Heartbeat with `mixed` (its log files; `crm off` for both).
fn cluster_spec(
    t: &Timers,
    vip: Ipv4Addr,
    vip2: Option<Ipv4Addr>,
    mixed: bool,
    monitor_every: Duration,
    agent_timeout: Duration,
) -> ClusterSpec {
    let spec = ClusterSpec::new("ha-soak: two media, auto_failback on")
        .logfacility(None)
        .timers_d(t.keepalive, t.warntime, t.deadtime, t.initdead)
        .media([Media::Bcast, Media::Line("bcast eth1".into())])
        .auto_failback("on")
        .line("crm off")
        .auth("sha1 ha-soak-lab-key-not-secret-0123456789")
        .group(group(vip, vip2))
        .had_toml(&had_toml(vip, monitor_every, agent_timeout));
    if mixed {
        spec.heartbeat_on(NAMES[1])
    } else {
        spec
    }
}

fn had_toml(vip: Ipv4Addr, every: Duration, agent_timeout: Duration) -> String {
    let ms = every.as_millis();
    let tm = MONITOR_TIMEOUT.as_millis();
    let at = agent_timeout.as_millis();
    format!(
        "# ha-soak: the web service and the VIP are watched; one stop retry\n\
         [group]\n\
         stop_retries = 1\n\
         stop_retry_delay = \"200ms\"\n\n\
         [[resource]]\n\
         name = \"web\"\n\
         start_timeout = \"{at}ms\"\n\
         stop_timeout = \"{at}ms\"\n\n\
         [[monitor]]\n\
         resource = \"web\"\n\
         check = \"status\"\n\
         interval = \"{ms}ms\"\n\
         timeout = \"{tm}ms\"\n\n\
         [[monitor]]\n\
         resource = \"IPaddr::{vip}/24/eth0\"\n\
         check = \"status\"\n\
         interval = \"{ms}ms\"\n\
         timeout = \"{tm}ms\"\n"
    )
}

/// Where the web server keeps its pidfile and pages: the node's /run as a host would have it.
fn host_run_dir(lab: &Lab, i: usize) -> PathBuf {
    lab.node(NAMES[i]).config_dir().join("soak-run")
}

fn flag_dir(lab: &Lab, i: usize) -> PathBuf {
    lab.node(NAMES[i]).config_dir().join("soak-flags")
}

/// resource.d/web: the lab's web script behind switches the soak sets (a start that fails or
/// hangs once, a stop that hangs once or every time, a status that hangs once).
fn web_wrapper(flags: &Path, cfg: &Path) -> String {
    let f = flags.display();
    let real = cfg.join("resource.d/web-real");
    format!(
        r#"#!/bin/sh
# ha-soak: faults injected into the web service, then the real script.
F='{f}'
for op in "$@"; do :; done
case "$op" in
start)
  if [ -e "$F/fail-start" ]; then echo "web: start fails (ha-soak)"; exit 1; fi
  if [ -e "$F/hang-start" ]; then d=$(cat "$F/hang-start"); rm -f "$F/hang-start"; sleep "$d"; fi ;;
stop)
  if [ -e "$F/hang-stop" ]; then d=$(cat "$F/hang-stop"); rm -f "$F/hang-stop"; sleep "$d"; fi
  if [ -e "$F/hang-stop-always" ]; then sleep "$(cat "$F/hang-stop-always")"; fi ;;
status)
  if [ -e "$F/hang-status" ]; then d=$(cat "$F/hang-status"); rm -f "$F/hang-status"; sleep "$d"; fi ;;
esac
exec '{real}' "$@"
"#,
        real = real.display()
    )
}

/// The soak's nftables table in a node: empty chains on input and output.
const NFT_TABLE: &str = "table inet soak {\n\
  chain in { type filter hook input priority 0; policy accept; }\n\
  chain out { type filter hook output priority 0; policy accept; }\n\
}\n";

/// Rules dropping heartbeat traffic (UDP 694) on `links`: incoming and/or outgoing, all of it
/// or `percent` % at random (nftables numgen).
fn drop_rules(links: &[&str], inbound: bool, outbound: bool, percent: Option<u8>) -> String {
    let mut r = String::new();
    let verdict = match percent {
        Some(p) => format!("numgen random mod 100 < {p} drop"),
        None => "drop".into(),
    };
    for l in links {
        if inbound {
            r.push_str(&format!(
                "add rule inet soak in iifname \"{l}\" udp dport {} {verdict}\n",
                crate::hostile::PORT
            ));
        }
        if outbound {
            r.push_str(&format!(
                "add rule inet soak out oifname \"{l}\" udp dport {} {verdict}\n",
                crate::hostile::PORT
            ));
        }
    }
    r
}

fn nft(netns: &str, rules: &str) -> anyhow::Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (install nftables: just setup)")?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(rules.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft in {netns} failed: {}\n{rules}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn run_ok(prog: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {prog}"))?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The second medium: a veth cable straight from node1 to node2 (eth1 on both),
/// 198.19.<subnet>.11 and .12/24. Removed with the namespaces.
fn direct_link(lab: &Lab) -> anyhow::Result<()> {
    let (n1, n2) = (lab.node("node1").netns(), lab.node("node2").netns());
    run_ok(
        "ip",
        &[
            "-n", n1, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", n2,
        ],
    )?;
    let subnet = lab.subnet_prefix();
    let third = subnet.rsplit('.').next().unwrap_or("0");
    for (ns, host) in [(n1, 11), (n2, 12)] {
        let addr = format!("198.19.{third}.{host}/24");
        run_ok(
            "ip",
            &["-n", ns, "addr", "add", &addr, "brd", "+", "dev", "eth1"],
        )?;
        run_ok("ip", &["-n", ns, "link", "set", "eth1", "up"])?;
    }
    Ok(())
}

/// Is something listening on TCP port 80 in `netns`? None when it cannot be read.
fn listens_on_80(netns: &str) -> Option<bool> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "cat", "/proc/net/tcp"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().skip(1).any(|l| {
        let mut w = l.split_whitespace();
        let local = w.nth(1).unwrap_or("");
        let state = w.nth(1).unwrap_or("");
        local.ends_with(":0050") && state == "0A"
    }))
}

/// PIDs of Heartbeat's processes in `netns` (`heartbeat: master control process`, its
/// readers and writers; the package's binary path for the master before it renames itself).
fn heartbeat_processes_in(netns: &str) -> Vec<i32> {
    processes_in(netns, |c| {
        c.starts_with("heartbeat") || c.contains("/heartbeat/heartbeat")
    })
}

/// PIDs of the processes in `netns` whose command line passes `f`.
fn processes_in(netns: &str, f: impl Fn(&str) -> bool) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(format!("/run/netns/{netns}")) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev())
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| f(&String::from_utf8_lossy(&c)))
        })
        .collect()
}

/// PIDs of the web servers (busybox httpd or python's http.server) living in `netns`.
fn web_servers_in(netns: &str) -> Vec<i32> {
    processes_in(netns, |c| c.contains("httpd") || c.contains("http.server"))
}

/// RSS (KiB) and open fds of a process.
fn footprint(pid: u32) -> (u64, u64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (rss, fds)
}

/// Files named `core` or `core.*` under `dir`.
fn find_cores(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                todo.push(p);
            } else if ft.is_file() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n == "core" || n.starts_with("core.") {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The text of `path` from byte `pos` on, and the new end position.
fn read_from(path: &Path, pos: u64) -> (String, u64) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (String::new(), pos);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if len < pos { 0 } else { pos };
    if f.seek(SeekFrom::Start(start)).is_err() {
        return (String::new(), pos);
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    (
        String::from_utf8_lossy(&buf).into_owned(),
        start + buf.len() as u64,
    )
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Kinds of issue 11 this soak does not inject, with the reason.
fn not_injected(mixed: bool) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if mixed {
        v.push((
            "service, agent and VIP faults, reloads (--mixed)".into(),
            "Heartbeat 3.0.6 watches nodes, not resources: a failed service or a deleted VIP on \
             a Heartbeat holder is never noticed, by design; `hactl reload` is had's and \
             Heartbeat rereads haresources only on a restart. The had + had run covers them"
                .into(),
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status with standby and a failure as given (refused_here covers both, as had shows it).
    fn st(standby: bool, failed: bool) -> Value {
        serde_json::json!({"node": {"standby": standby}, "groups": [{"refused_here": standby || failed}]})
    }

    /// `refused_for` decides when present: a node in standby whose start also failed has
    /// failed (the old reading, refused and not in standby, missed it); standby alone has not.
    #[test]
    fn the_refusal_reasons_decide_a_failure() {
        let why = |standby: bool, reasons: &[&str]| {
            serde_json::json!({"node": {"standby": standby},
                "groups": [{"refused_here": !reasons.is_empty(), "refused_for": reasons}]})
        };
        assert!(failed(&why(true, &["failed", "standby"])));
        assert!(!failed(&st(true, true)), "the reading without reasons");
        assert!(!failed(&why(true, &["standby"])));
        assert!(failed(&why(false, &["unhealthy"])));
        assert!(!failed(&why(false, &["ping"])));
        assert!(!failed(&why(false, &[])));
    }

    #[test]
    fn the_rules_pick_the_holder() {
        assert_eq!(
            expected_holder(&st(false, false), &st(false, false)),
            Expect::Node(0)
        );
        assert_eq!(
            expected_holder(&st(true, false), &st(false, false)),
            Expect::Node(1)
        );
        assert_eq!(
            expected_holder(&st(false, false), &st(true, false)),
            Expect::Node(0)
        );
        assert_eq!(
            expected_holder(&st(false, true), &st(false, false)),
            Expect::Node(1)
        );
        assert_eq!(
            expected_holder(&st(true, false), &st(false, true)),
            Expect::Node(0)
        );
        assert_eq!(
            expected_holder(&st(true, true), &st(false, false)),
            Expect::Node(1)
        );
        assert_eq!(
            expected_holder(&st(false, true), &st(false, true)),
            Expect::Nobody
        );
        assert_eq!(
            expected_holder(&st(true, false), &st(true, false)),
            Expect::Either
        );
    }

    #[test]
    fn drop_rules_name_the_links_and_the_share() {
        let r = drop_rules(&["eth1"], true, true, None);
        assert!(r.contains("iifname \"eth1\" udp dport 694 drop"), "{r}");
        assert!(r.contains("oifname \"eth1\" udp dport 694 drop"), "{r}");
        let r = drop_rules(&LINKS, true, false, Some(30));
        assert_eq!(r.lines().count(), 2);
        assert!(r.contains("numgen random mod 100 < 30 drop"), "{r}");
    }

    #[test]
    fn bad_news_is_explained_by_the_fault() {
        assert!(bad_news("thread 'main' panicked at x", "kill9").is_some());
        assert!(bad_news("monitor 0: check timed out after 1s", "agent_hang_status").is_none());
        assert!(bad_news("monitor 0: check timed out after 1s", "freeze").is_some());
        assert!(bad_news("peer node2 is dead", "freeze").is_none());
        let gave_up = "Giving up resources due to failure of web::198.18.0.100: \
                       web::198.18.0.100: start timed out after 4s";
        assert!(bad_news(gave_up, "agent_hang_start").is_none());
        assert!(bad_news(gave_up, "agent_hang_stop").is_some());
        assert!(bad_news(gave_up, "service_fail_start").is_some());
        let failure = "Resource STOP failure for web::198.18.0.100: web::198.18.0.100: stop \
                       timed out after 4s; manual action required";
        assert!(bad_news(failure, "agent_hang_stop").is_none());
        assert!(bad_news(failure, "agent_hang_start").is_some());
        assert!(bad_news(failure, "agent_hang_status").is_some());
        let other = "Resource STOP failure for web::198.18.0.100: exit 1; manual action required";
        assert!(bad_news(other, "agent_hang_stop").is_some());
    }

    #[test]
    fn the_soak_cluster_is_written_by_the_one_spec() {
        let net = Net {
            iface: "eth0".into(),
            addrs: vec![
                ("node1".into(), Ipv4Addr::new(198, 18, 7, 11).into()),
                ("node2".into(), Ipv4Addr::new(198, 18, 7, 12).into()),
            ],
        };
        let t = Timers::parse("100ms/500ms").expect("timers");
        let (vip, vip2) = (
            Ipv4Addr::new(198, 18, 7, 100),
            Ipv4Addr::new(198, 18, 7, 101),
        );
        let every = Duration::from_millis(500);
        let at = agent_timeout(&t);
        assert_eq!(at, Duration::from_secs(4));
        assert_eq!(
            agent_timeout(&Timers::parse("1s/5s").expect("timers")),
            Duration::from_secs(15)
        );
        let s = cluster_spec(&t, vip, None, false, every, at);
        assert_eq!(
            s.ha_cf("node1", &net),
            "# ha-soak: two media, auto_failback on\nkeepalive 100ms\nwarntime 300ms\n\
             deadtime 500ms\ninitdead 1\nbcast eth0\nbcast eth1\nauto_failback on\n\
             node node1 node2\ncrm off\n"
        );
        assert_eq!(
            s.haresources(&net),
            "node1 IPaddr::198.18.7.100/24/eth0 web::198.18.7.100\n"
        );
        assert_eq!(
            s.authkeys("node2"),
            "auth 1\n1 sha1 ha-soak-lab-key-not-secret-0123456789\n"
        );
        let toml = s.had_toml_for("node2").expect("had.toml");
        assert!(
            toml.contains("[[resource]]\nname = \"web\"\nstart_timeout = \"4000ms\"\nstop_timeout = \"4000ms\"\n"),
            "{toml}"
        );
        let mixed = cluster_spec(&t, vip, Some(vip2), true, every, at);
        assert!(
            mixed
                .ha_cf("node2", &net)
                .contains("logfile /var/log/ha-log\n")
        );
        assert!(!mixed.ha_cf("node1", &net).contains("logfile"));
        assert_eq!(
            mixed.haresources(&net),
            "node1 IPaddr::198.18.7.100/24/eth0 web::198.18.7.100 IPaddr::198.18.7.101/24/eth0\n"
        );
    }
}
