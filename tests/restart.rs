//! End to end (issues 3 and 9): both nodes restarted in any order never leave the VIP on both
//! nodes, nor on neither for longer than deadtime + 1 s. For had+had and for had+Heartbeat
//! (with `auto_failback on`, and with `legacy` on both), restart sequences run one after
//! another while a watcher thread looks at each node's addresses every 5 ms; every interval
//! with the VIP on both nodes or on neither, while at least one daemon runs and is past its
//! initdead, is measured: "both" must never happen, "neither" must stay within the bound.
//! Needs root (and the heartbeat package for the mixed pairs).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ha_lab::{ClusterSpec, Group, Lab, LabOptions, VipWatch, find_bin, web_script};
use nix::sys::signal::Signal;

/// The watcher's sampling period: short enough to see a VIP on both nodes for 10 ms.
const POLL: Duration = Duration::from_millis(5);
const DEADTIME: Duration = Duration::from_secs(1);
const INITDEAD: Duration = Duration::from_secs(2);
/// A freshly started Heartbeat advertises deadtime + 2 s for its first ~5 s.
const HB_SETTLE: Duration = Duration::from_secs(6);
const NODES: [&str; 2] = ["node1", "node2"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Had,
    Heartbeat,
}

/// How a node is taken down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Down {
    Term,
    Crash,
}

/// When a daemon ran on a node: `(start, stop requested)`.
type Span = (Instant, Option<Instant>);

struct Pair {
    lab: Lab,
    kinds: [Kind; 2],
    had: PathBuf,
    /// Where the VIP is; a crashed node is marked off (its addresses do not count).
    watch: VipWatch,
    /// Per node: powered off after a crash.
    off: [bool; 2],
    spans: [Vec<Span>; 2],
    /// What happened when, for the failure message.
    steps: Vec<(Instant, String)>,
    t0: Instant,
}

impl Pair {
    fn new(kinds: [Kind; 2], auto_failback: &str) -> anyhow::Result<Pair> {
        let lab = Lab::new(LabOptions::default())?;
        let vip = lab.vip(0);
        let mut spec = ClusterSpec::new("restart lab")
            .logfacility(None)
            .timers(
                "200ms",
                "500ms",
                &DEADTIME.as_secs().to_string(),
                &INITDEAD.as_secs().to_string(),
            )
            .auto_failback(auto_failback)
            .line("crm off")
            .group(Group::new("node1").ip(vip, 24).res(format!("web::{vip}")))
            .script("resource.d/web", &web_script(80));
        for (i, n) in NODES.iter().enumerate() {
            if kinds[i] == Kind::Heartbeat {
                spec = spec.heartbeat_on(n);
            }
        }
        spec.write(&lab)?;
        let netns: Vec<&str> = NODES.iter().map(|n| lab.node(n).netns()).collect();
        let watch = VipWatch::start(&netns, vip, POLL)?;
        Ok(Pair {
            lab,
            kinds,
            had: find_bin("had")?,
            watch,
            off: [false, false],
            spans: [Vec::new(), Vec::new()],
            steps: Vec::new(),
            t0: Instant::now(),
        })
    }

    fn step(&mut self, what: String) {
        eprintln!("{:>7.2}s {what}", self.t0.elapsed().as_secs_f64());
        self.steps.push((Instant::now(), what));
    }

    fn running(&self, i: usize) -> bool {
        self.spans[i].last().is_some_and(|s| s.1.is_none())
    }

    fn start(&mut self, i: usize) {
        let n = NODES[i];
        if self.off[i] {
            self.lab.node_mut(n).power_on().expect("power on");
            self.off[i] = false;
            self.watch.set_off(i, false);
        }
        self.step(format!("start {n} ({:?})", self.kinds[i]));
        let now = Instant::now();
        match self.kinds[i] {
            Kind::Had => {
                let had = self.had.clone();
                self.lab
                    .node_mut(n)
                    .start_had(&had, &[])
                    .expect("start had")
            }
            Kind::Heartbeat => self
                .lab
                .node_mut(n)
                .start_heartbeat()
                .expect("start heartbeat"),
        }
        self.spans[i].push((now, None));
    }

    fn down(&mut self, i: usize, how: Down) {
        let n = NODES[i];
        self.step(format!("{how:?} {n} ({:?})", self.kinds[i]));
        if let Some(s) = self.spans[i].last_mut() {
            s.1 = Some(Instant::now());
        }
        match how {
            Down::Crash => {
                self.lab.node_mut(n).crash().expect("crash");
                self.off[i] = true;
                self.watch.set_off(i, true);
            }
            Down::Term => {
                let node = self.lab.node_mut(n);
                let exited = match self.kinds[i] {
                    Kind::Had => {
                        node.signal_had(Signal::SIGTERM).expect("SIGTERM");
                        node.wait_had_exit(Duration::from_secs(30))
                    }
                    Kind::Heartbeat => node.stop_heartbeat(Duration::from_secs(30)),
                };
                assert!(
                    matches!(exited, Ok(Some(_))),
                    "{n} did not stop: {exited:?}\n{}",
                    self.logs()
                );
            }
        }
    }

    /// Both at once: the requests go out back to back, then both are waited for.
    fn down_both(&mut self, how: Down) {
        match how {
            Down::Crash => {
                self.down(0, how);
                self.down(1, how);
            }
            Down::Term => {
                self.step(format!("SIGTERM both ({:?})", self.kinds));
                for (i, n) in NODES.iter().enumerate() {
                    if let Some(s) = self.spans[i].last_mut() {
                        s.1 = Some(Instant::now());
                    }
                    let node = self.lab.node(n);
                    let pid = match self.kinds[i] {
                        Kind::Had => node.had_pid(),
                        Kind::Heartbeat => node.heartbeat_pid(),
                    };
                    if let Some(pid) = pid {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            Signal::SIGTERM,
                        );
                    }
                }
                for n in NODES {
                    let r = self.lab.node_mut(n).wait_had_exit(Duration::from_secs(30));
                    assert!(matches!(r, Ok(Some(_))), "{n} did not stop: {r:?}");
                }
            }
        }
    }

    fn start_both(&mut self) {
        self.start(0);
        self.start(1);
    }

    /// Waits until the VIP is on exactly one node (or, with no daemon running, anywhere),
    /// then lets a freshly started Heartbeat settle its start-up deadtime.
    fn settle(&mut self) {
        let any = self.running(0) || self.running(1);
        let from = Instant::now();
        let deadline = from + Duration::from_secs(30);
        while any && Instant::now() < deadline {
            // Only a sample taken after the step counts.
            let on = self
                .watch
                .last()
                .filter(|x| x.at > from + POLL)
                .map(|x| x.on);
            if on.is_some_and(|on| on[0] != on[1]) {
                break;
            }
            std::thread::sleep(POLL);
        }
        let hb_fresh = (0..2).any(|i| {
            self.kinds[i] == Kind::Heartbeat
                && self.running(i)
                && self.spans[i]
                    .last()
                    .is_some_and(|s| s.0.elapsed() < HB_SETTLE)
        });
        std::thread::sleep(if hb_fresh {
            HB_SETTLE
        } else {
            Duration::from_secs(1)
        });
        let on = self.last_sample();
        self.step(format!("settled: VIP on node1 {} node2 {}", on[0], on[1]));
    }

    fn last_sample(&self) -> [bool; 2] {
        self.watch
            .last()
            .map(|x| [x.on[0], x.on[1]])
            .unwrap_or([false, false])
    }

    /// Whether the VIP must be on exactly one node at `t`: some daemon runs and is past its
    /// initdead.
    fn armed(&self, t: Instant) -> bool {
        self.spans
            .iter()
            .flatten()
            .any(|&(start, stop)| t >= start + INITDEAD && stop.is_none_or(|s| t < s))
    }

    /// Intervals with the VIP on both nodes or on neither, while armed: (start, length, what).
    fn bad_intervals(&self) -> Vec<(Instant, Duration, &'static str)> {
        let samples = self.watch.samples();
        let mut out = Vec::new();
        let mut open: Option<(Instant, &'static str)> = None;
        let mut last = None;
        for s in &samples {
            let kind = match (self.armed(s.at), [s.on[0], s.on[1]]) {
                (false, _) => None,
                (true, _) if s.on_several() => Some("both"),
                (true, [false, false]) => Some("neither"),
                _ => None,
            };
            match (open, kind) {
                (Some((_, k)), Some(k2)) if k == k2 => {}
                (o, k) => {
                    if let Some((from, what)) = o {
                        out.push((from, s.at.duration_since(from), what));
                    }
                    open = k.map(|k| (s.at, k));
                }
            }
            last = Some(s.at);
        }
        if let (Some((from, what)), Some(end)) = (open, last) {
            out.push((from, end.duration_since(from), what));
        }
        out
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, n) in NODES.iter().enumerate() {
            let node = self.lab.node(n);
            let path = match self.kinds[i] {
                Kind::Had => node.log_path(),
                Kind::Heartbeat => node.heartbeat_log_path(),
            };
            let log = std::fs::read_to_string(path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            out.push_str(&format!("--- {n} ({:?}) ---\n", self.kinds[i]));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Stops the watcher and checks every interval: never on both nodes, and never on
    /// neither for longer than deadtime + 1 s.
    fn finish(self, label: &str) {
        self.finish_within(label, DEADTIME + Duration::from_secs(1));
    }

    /// As `finish`, with the bound for "neither" given.
    fn finish_within(mut self, label: &str, limit: Duration) {
        self.watch.stop();
        let bad = self.bad_intervals();
        let worst = bad.iter().map(|b| b.1).max().unwrap_or_default();
        let n = self.watch.samples().len();
        eprintln!(
            "{label}: {n} samples, {} interval(s) with the VIP on both or neither, longest {worst:?}",
            bad.len()
        );
        for (from, len, what) in &bad {
            eprintln!(
                "  {:>7.2}s {what} for {len:?}",
                from.duration_since(self.t0).as_secs_f64()
            );
        }
        let over: Vec<String> = bad
            .iter()
            .filter(|b| b.2 == "both" || b.1 > limit)
            .map(|(from, len, what)| {
                format!(
                    "{what} for {len:?} from {:.2}s",
                    from.duration_since(self.t0).as_secs_f64()
                )
            })
            .collect();
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(t, s)| format!("{:>7.2}s {s}", t.duration_since(self.t0).as_secs_f64()))
            .collect();
        assert!(
            over.is_empty(),
            "{label}: VIP on both nodes, or on neither longer than {limit:?}: {over:?}\nsteps:\n{}\n{}",
            steps.join("\n"),
            self.logs()
        );
    }
}

/// Every sequence, one after another in the same lab: the cluster is running at the start
/// and at the end of each. `not_alone`: a node never started alone into an empty cluster
/// (see `legacy_mixed_pair_restarted_in_any_order`).
fn run_sequences(p: &mut Pair, not_alone: Option<usize>) {
    p.start_both();
    p.settle();
    // Stop A then B, start A then B (SIGTERM), both ways round.
    for (a, b) in [(0, 1), (1, 0)] {
        p.down(a, Down::Term);
        p.settle();
        p.down(b, Down::Term);
        p.settle();
        let (first, second) = if not_alone == Some(a) { (b, a) } else { (a, b) };
        p.start(first);
        p.settle();
        p.start(second);
        p.settle();
    }
    // Stop A, start A, stop B, start B: with SIGTERM and with a crash.
    for how in [Down::Term, Down::Crash] {
        for (a, b) in [(0, 1), (1, 0)] {
            p.down(a, how);
            p.settle();
            p.start(a);
            p.settle();
            p.down(b, how);
            p.settle();
            p.start(b);
            p.settle();
        }
    }
    // Crash A then B, then start both at once.
    p.down(0, Down::Crash);
    p.settle();
    p.down(1, Down::Crash);
    p.settle();
    p.start_both();
    p.settle();
    // Both at once: SIGTERM and crash, then both started together.
    for how in [Down::Term, Down::Crash] {
        p.down_both(how);
        p.settle();
        p.start_both();
        p.settle();
    }
}

fn gate(name: &str, kinds: [Kind; 2]) -> bool {
    if kinds.contains(&Kind::Heartbeat) {
        ha_lab::lab_with_heartbeat(name)
    } else {
        ha_lab::lab_available(name)
    }
}

fn restarts(name: &str, kinds: [Kind; 2], auto_failback: &str, not_alone: Option<usize>) {
    if !gate(name, kinds) {
        return;
    }
    let mut p = Pair::new(kinds, auto_failback).expect("lab starts");
    run_sequences(&mut p, not_alone);
    p.finish(name);
}

/// had (preferred) stopped and crashed, then started again, while a Heartbeat peer in `on`
/// mode holds its group: the group comes back without ever being on both nodes.
#[test]
fn had_preferred_returns_beside_heartbeat_without_overlap() {
    let kinds = [Kind::Had, Kind::Heartbeat];
    let name = "restart_had_returns_beside_hb";
    if !gate(name, kinds) {
        return;
    }
    let mut p = Pair::new(kinds, "on").expect("lab starts");
    p.start_both();
    p.settle();
    for how in [Down::Term, Down::Crash, Down::Term, Down::Crash] {
        p.down(0, how);
        p.settle();
        p.start(0);
        p.settle();
    }
    // What this test is about is "both"; after a crash of had, "neither" lasts as long as
    // Heartbeat's own detection and IPaddr script take (1.8 s on a quiet machine, more on
    // a loaded one), which the full sequences bound.
    p.finish_within(name, DEADTIME + Duration::from_secs(3));
}

#[test]
fn had_pair_restarted_in_any_order() {
    restarts("restart_had_had", [Kind::Had, Kind::Had], "on", None);
}

#[test]
fn heartbeat_preferred_and_had_restarted_in_any_order() {
    restarts("restart_hb_had", [Kind::Heartbeat, Kind::Had], "on", None);
}

#[test]
fn had_preferred_and_heartbeat_restarted_in_any_order() {
    restarts("restart_had_hb", [Kind::Had, Kind::Heartbeat], "on", None);
}

/// Both set to `legacy`. Heartbeat is not started alone into an empty cluster here: a legacy
/// Heartbeat that finds itself alone acquires its group twice at once (from comm-up and from
/// the initdead takeover of its peer; both `takegroup` runs show in its log), and in one run
/// it ended without the VIP for a minute; a legacy node never takes its peer's group without
/// an `ip-request` answer, so had cannot repair that. Every other order is exercised.
#[test]
fn legacy_mixed_pair_restarted_in_any_order() {
    restarts(
        "restart_legacy_hb_had",
        [Kind::Heartbeat, Kind::Had],
        "legacy",
        Some(0),
    );
}
