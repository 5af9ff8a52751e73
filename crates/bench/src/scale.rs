//! Scale (issue 14): the same contender serving many addresses instead of one VIP and a
//! web server. Shapes: one group of N addresses (N = 1, 10, 100, 1000) and 50 groups of
//! 2. Each shape gets a fresh lab and the contender's 1 s timers; the client watches ARP
//! for every address (ha-lab's `ArpWatch`, every 100 ms), which is what "the address is
//! up" means to a neighbour. Measured: cold start → every address answers from node1;
//! the status command's latency; idle CPU and RSS of node1's daemons; a planned move of
//! everything to node2 and back; the late heartbeats logged and the longest silence of
//! either node on the wire over all that (ha-lab's `HbWatch`); crash of node1 → first and →
//! last address answering from node2, and the gratuitous ARPs seen.
//! A contender that does not bring a shape up within the timeout is not tried at larger
//! counts: the report says where it stopped.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ha_lab::{Lab, LabOptions};

use crate::contenders::Contender;
use crate::procfs;
use crate::report::BenchReport;
use crate::{BenchOptions, keep_logs};

/// How often the client asks for each address that has not answered yet.
const ASK_EVERY: Duration = Duration::from_millis(100);
/// The client's address in the /16 holding every address but the lab's VIP.
const CLIENT_ALT: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 50);
/// Status queries timed per shape (the median is reported).
const STATUS_RUNS: usize = 5;

/// A scale shape: `groups` groups of `per` addresses, reported under `key`.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Its name in the report keys and `--scale`.
    pub key: &'static str,
    /// Number of resource groups.
    pub groups: usize,
    /// Addresses per group.
    pub per: usize,
}

/// The shapes, in report order.
pub const SHAPES: [Shape; 5] = [
    Shape {
        key: "1",
        groups: 1,
        per: 1,
    },
    Shape {
        key: "10",
        groups: 1,
        per: 10,
    },
    Shape {
        key: "100",
        groups: 1,
        per: 100,
    },
    Shape {
        key: "1000",
        groups: 1,
        per: 1000,
    },
    Shape {
        key: "50x2",
        groups: 50,
        per: 2,
    },
];

/// The rows of each shape, in report order: (key, label, unit).
pub const ROWS: [(&str, &str, crate::report::Unit); 16] = [
    (
        "start_all",
        "daemons started → every address answers ARP from node1",
        crate::report::Unit::Ms,
    ),
    (
        "start_decision_all",
        "node1's decision (had: \"acquiring resource group\" in its log) → every address answers",
        crate::report::Unit::Ms,
    ),
    (
        "status",
        "status command on node1 (hactl status / cl_status rscstatus / crm_mon -1), median of 5",
        crate::report::Unit::Ms,
    ),
    (
        "idle_cpu",
        "idle CPU per 60 s of node1's daemons and the children they reaped (monitors, agents)",
        crate::report::Unit::Secs,
    ),
    (
        "idle_rss",
        "idle RSS of node1's daemons (summed)",
        crate::report::Unit::Mib,
    ),
    (
        "idle_rss_anon",
        "of that RSS, the anonymous part (heap, stacks: what can grow with the count; the rest, code and library pages, moves by 64 KiB steps from run to run)",
        crate::report::Unit::Mib,
    ),
    (
        "handover_all",
        "planned move to node2 (hactl standby / hb_standby / SIGTERM of keepalived / crm node standby) → every address answers ARP from node2",
        crate::report::Unit::Ms,
    ),
    (
        "handover_release",
        "of that move, node1's release of every address (had's own \"resource group … released in\" line)",
        crate::report::Unit::Ms,
    ),
    (
        "handback_all",
        "and back to node1 (hactl takeover / hb_takeover / keepalived restarted, preempting / standby off) → every address answers ARP from node1",
        crate::report::Unit::Ms,
    ),
    (
        "handback_release",
        "of that move, node2's release of every address (had's own line)",
        crate::report::Unit::Ms,
    ),
    (
        "late",
        "\"Late heartbeat\" lines logged by either node from the start through both moves to the crash: every address acquired and released by each node with its peer listening (had, Heartbeat; warntime ¾ of deadtime: 3.75 s at the shapes' 1 s / 5 s)",
        crate::report::Unit::Count,
    ),
    (
        "silence",
        "longest silence of either node on its heartbeat port over that span (frames its interface sent, keepalive 1 s: 1,000 ms means no heartbeat was delayed; had and Heartbeat UDP 694, corosync 5405)",
        crate::report::Unit::Ms,
    ),
    (
        "crash_first",
        "crash of node1 → first address answers ARP from node2",
        crate::report::Unit::Ms,
    ),
    (
        "crash_all",
        "crash of node1 → every address answers ARP from node2",
        crate::report::Unit::Ms,
    ),
    (
        "crash_decision_all",
        "after the crash, node2's decision (had's log) → every address answers",
        crate::report::Unit::Ms,
    ),
    (
        "crash_garps",
        "gratuitous ARPs the client saw from node2, from the crash to 1.2 s after the last answer",
        crate::report::Unit::Count,
    ),
];

/// What a contender serves in a scale shape: groups of (address, prefix length).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The groups, each a list of addresses on the lab's interface.
    pub groups: Vec<Vec<(Ipv4Addr, u8)>>,
}

impl Layout {
    /// `groups` groups of `per` addresses: the lab's first VIP (/24), then 198.19.x.y/16
    /// (secondaries beside the node's own address in that /16, as on a hosting box).
    pub fn new(lab: &Lab, groups: usize, per: usize) -> Layout {
        let mut all = vec![(lab.vip(0), 24)];
        for k in 1..groups * per {
            all.push((
                Ipv4Addr::new(198, 19, (k / 250) as u8, (k % 250 + 1) as u8),
                16,
            ));
        }
        Layout {
            groups: all.chunks(per.max(1)).map(<[_]>::to_vec).collect(),
        }
    }

    /// Every address, in group order.
    pub fn addrs(&self) -> Vec<Ipv4Addr> {
        self.groups.iter().flatten().map(|(a, _)| *a).collect()
    }
}

/// Runs every shape in `shapes` (keys of [`SHAPES`]) for `c`, smallest first.
pub fn run(
    c: &mut dyn Contender,
    shapes: &[String],
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
) {
    // Where one group of N stopped working: larger N are not tried (50 small groups are).
    let mut stopped: Option<&str> = None;
    for s in SHAPES {
        if !shapes.iter().any(|k| k == s.key) {
            continue;
        }
        if let (Some(at), 1) = (stopped, s.groups) {
            r.note(
                &format!("scale_{}_start_all", s.key),
                c.name(),
                format!("not tried: one group of {at} did not come up"),
            );
            continue;
        }
        match shape(c, s, opts, r, out) {
            Ok(true) => {}
            Ok(false) => {
                if s.groups == 1 {
                    stopped = Some(s.key);
                    let _ = writeln!(
                        out,
                        "  [{} scale] stopped at {}: larger groups not tried",
                        c.name(),
                        s.key
                    );
                }
            }
            Err(e) => {
                let msg = format!("{} scale {}: {e:#}", c.name(), s.key);
                let _ = writeln!(out, "  ERROR {msg}");
                r.errors.push(msg);
            }
        }
    }
}

/// Gives both nodes and the client an address in the /16 of the shapes' addresses.
fn add_alts(lab: &Lab) -> anyhow::Result<()> {
    for (i, node) in ["node1", "node2"].into_iter().enumerate() {
        let ns = lab.node(node).netns().to_owned();
        add_alt(lab, &ns, Ipv4Addr::new(198, 19, 255, 11 + i as u8))?;
    }
    add_alt(lab, lab.client_netns(), CLIENT_ALT)
}

/// Adds `addr/16` on the lab's interface in namespace `ns`.
fn add_alt(lab: &Lab, ns: &str, addr: Ipv4Addr) -> anyhow::Result<()> {
    let o = std::process::Command::new("ip")
        .args(["-n", ns, "addr", "add", &format!("{addr}/16"), "dev"])
        .arg(lab.iface())
        .stdin(std::process::Stdio::null())
        .output()
        .context("running ip")?;
    if !o.status.success() {
        bail!(
            "ip -n {ns} addr add {addr}/16: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One shape in its own lab; false when the contender did not bring it up in time.
fn shape(
    c: &mut dyn Contender,
    s: Shape,
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut lab = Lab::new(LabOptions::default())?;
    r.labs.push(lab.id().to_owned());
    let (name, key) = (c.name(), s.key);
    writeln!(
        out,
        "{name} scale {key} ({} group(s) of {} address(es)): lab {}",
        s.groups,
        s.per,
        lab.id()
    )?;
    let res = measure(c, &mut lab, s, opts, r, out);
    let failed = !res.as_ref().is_ok_and(|up| *up);
    let down = end_lab(c, lab, failed.then(|| format!("{name} scale {key}")), out);
    let up = res?;
    down?;
    if up && FLAT_ENDS.contains(&key) {
        for _ in 1..opts.scale_idle_labs {
            idle_lab(c, s, opts, r, out)?;
        }
    }
    Ok(up)
}

/// The shapes the flatness rows compare: their idle footprint is taken in
/// [`BenchOptions::scale_idle_labs`] labs. A lab's file-backed pages (code and libraries,
/// mapped 64 KiB around each fault from whatever the page cache holds) differ by ±0.2 MiB
/// from one lab to the next at the same count: one lab per end would compare that noise.
const FLAT_ENDS: [&str; 2] = ["1", "1000"];

/// The longest idle window of the shapes between those ends: their figures are shown, not
/// compared, and 40 s more for each of them and each contender would add ≈ 8 min to `--long`.
const MIDDLE_IDLE: Duration = Duration::from_secs(20);

/// One more lab for shape `s`: start, every address up, settle, idle window; its idle
/// figures join the shape's rows (the table shows min / median / max over the labs).
fn idle_lab(
    c: &mut dyn Contender,
    s: Shape,
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut lab = Lab::new(LabOptions::default())?;
    r.labs.push(lab.id().to_owned());
    let (name, key) = (c.name(), s.key);
    writeln!(
        out,
        "{name} scale {key}, idle footprint again: lab {}",
        lab.id()
    )?;
    let res = (|| -> anyhow::Result<(f64, f64, f64)> {
        let layout = Layout::new(&lab, s.groups, s.per);
        add_alts(&lab)?;
        let watch = lab.arp_watch("node1", layout.addrs(), CLIENT_ALT, ASK_EVERY)?;
        c.start_layout(&mut lab, &layout)?;
        let up = watch.wait_all(opts.scale_timeout);
        watch.stop();
        if up.is_none() {
            bail!(
                "not every address answered within {} s",
                opts.scale_timeout.as_secs()
            );
        }
        std::thread::sleep(c.settle() + Duration::from_secs(2));
        c.quiesce(&lab)?;
        idle(c, &lab, opts.scale_idle)
    })();
    let failed = res.is_err().then(|| format!("{name} scale {key}"));
    let down = end_lab(c, lab, failed, out);
    let (cpu, rss, anon) = res?;
    down?;
    let row = |k: &str| format!("scale_{key}_{k}");
    r.push(&row("idle_cpu"), name, Some(cpu));
    r.push(&row("idle_rss"), name, Some(rss));
    r.push(&row("idle_rss_anon"), name, Some(anon));
    say(
        out,
        name,
        key,
        &format!("idle again: {cpu:.3} s CPU per 60 s, RSS {rss:.2} MiB (anonymous {anon:.2})"),
    );
    Ok(())
}

/// The shape's measurements in `lab`; false when it did not come up or fail over in time.
fn measure(
    c: &mut dyn Contender,
    lab: &mut Lab,
    s: Shape,
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let (name, key) = (c.name(), s.key);
    let row = |k: &str| format!("scale_{key}_{k}");
    let layout = Layout::new(lab, s.groups, s.per);
    let addrs = layout.addrs();
    let n = addrs.len();
    add_alts(lab)?;

    let hb = match c.heartbeat_frames() {
        Some(m) => NODES
            .iter()
            .map(|n| lab.heartbeat_watch(n, m))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let watch = lab.arp_watch("node1", addrs.clone(), CLIENT_ALT, ASK_EVERY)?;
    let t0 = Instant::now();
    if let Err(e) = c.start_layout(lab, &layout) {
        // A peer that refuses a shape's configuration has reached the count at which it
        // stops working: a finding for the table (Heartbeat 3.0.6 cuts a haresources line
        // of 1,000 addresses), not a failure of the bench. had refusing one stays an error.
        if name == "had" {
            return Err(e);
        }
        watch.stop();
        let why = refusal(&format!("{e:#}"));
        r.push(&row("start_all"), name, None);
        r.note(&row("start_all"), name, format!("did not start: {why}"));
        say(out, name, key, &format!("did not start: {why}"));
        return Ok(false);
    }
    let Some((all, all_wall)) = watch.wait_all(opts.scale_timeout) else {
        let got = watch.answered();
        watch.stop();
        r.push(&row("start_all"), name, None);
        r.note(
            &row("start_all"),
            name,
            format!(
                "{got} of {n} addresses answered within {} s",
                opts.scale_timeout.as_secs()
            ),
        );
        say(
            out,
            name,
            key,
            &format!("start: only {got} of {n} addresses answered"),
        );
        return Ok(false);
    };
    watch.stop();
    let start_all = ms(all.saturating_duration_since(t0));
    r.push(&row("start_all"), name, Some(start_all));
    let start_decision = decision_to(c, lab, "node1", 0, all_wall);
    if start_decision.is_some() {
        r.push(&row("start_decision_all"), name, start_decision);
    }

    // The start's bursts over, the cluster idle.
    std::thread::sleep(c.settle() + Duration::from_secs(2));
    c.quiesce(lab)?;

    let mut times = Vec::new();
    for _ in 0..STATUS_RUNS {
        let t = Instant::now();
        match c.status(lab) {
            None => break,
            Some(res) => res?,
        }
        times.push(ms(t.elapsed()));
    }
    times.sort_by(f64::total_cmp);
    let status = times.get(times.len() / 2).copied();
    if status.is_some() {
        r.push(&row("status"), name, status);
    }

    let window = if FLAT_ENDS.contains(&key) {
        opts.scale_idle
    } else {
        opts.scale_idle.min(MIDDLE_IDLE)
    };
    let (cpu, rss, anon) = idle(c, lab, window)?;
    r.push(&row("idle_cpu"), name, Some(cpu));
    r.push(&row("idle_rss"), name, Some(rss));
    r.push(&row("idle_rss_anon"), name, Some(anon));

    // A planned move to node2 and back: each node releases every address once while its
    // peer listens, so the late-heartbeat and silence rows cover release as well as
    // acquisition.
    let moved = planned_moves(c, lab, &addrs, opts, r, out, key)?;

    // While the addresses were acquired, released and the cluster idled: a heartbeat delayed
    // by that work is what would turn into a false takeover at a shorter deadtime.
    let logs = c.late_heartbeat_logs(lab);
    if !logs.is_empty() {
        // A log that cannot be read gives no figure rather than a zero.
        let late: std::io::Result<Vec<usize>> = logs
            .iter()
            .map(|p| crate::count_in_log(p, LATE_LINE, 0))
            .collect();
        match late {
            Ok(n) => r.push(&row("late"), name, Some(n.iter().sum::<usize>() as f64)),
            Err(e) => r.note(&row("late"), name, format!("a node's log unreadable: {e}")),
        }
    }

    if !hb.is_empty() {
        silence(&hb, t0, r, out, name, key);
    }
    drop(hb);
    if !moved {
        r.note(
            &row("crash_all"),
            name,
            "not measured: the planned move did not complete".to_owned(),
        );
        return Ok(true);
    }

    let watch = lab.arp_watch("node2", addrs, CLIENT_ALT, ASK_EVERY)?;
    let log_from = c
        .decision_log(lab, "node2")
        .and_then(|(p, _)| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    let t0 = Instant::now();
    lab.node_mut("node1").crash()?;
    c.crashed("node1");
    let done = watch.wait_all(opts.scale_timeout + c.timers(crate::Speed::Slow).deadtime);
    let first = watch
        .first_answer()
        .map(|f| ms(f.saturating_duration_since(t0)));
    r.push(&row("crash_first"), name, first);
    let crash_all = done.map(|(t, _)| ms(t.saturating_duration_since(t0)));
    r.push(&row("crash_all"), name, crash_all);
    let crash_decision = done.and_then(|(_, w)| decision_to(c, lab, "node2", log_from, w));
    if crash_decision.is_some() {
        r.push(&row("crash_decision_all"), name, crash_decision);
    }
    if crash_all.is_some() {
        // Bursts of gratuitous ARPs go on after the addresses answer.
        std::thread::sleep(Duration::from_millis(1200));
        r.push(&row("crash_garps"), name, Some(watch.garps() as f64));
    } else {
        r.note(
            &row("crash_all"),
            name,
            format!("{} of {n} addresses answered from node2", watch.answered()),
        );
    }
    let garps = watch.garps();
    let answered = watch.answered();
    watch.stop();
    let f = |v: Option<f64>| v.map_or_else(|| "never".to_owned(), |v| format!("{v:.0} ms"));
    say(
        out,
        name,
        key,
        &format!(
            "{n} addresses: start → all {start_all:.0} ms (decision → all {}); status {}; idle {cpu:.3} s CPU per 60 s, RSS {rss:.1} MiB; crash → first {}, → all {} (decision → all {}; {answered} answered, {garps} GARPs)",
            f(start_decision),
            status.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} ms")),
            f(first),
            f(crash_all),
            f(crash_decision)
        ),
    );
    Ok(crash_all.is_some())
}

/// The lab's two nodes, in the order the silence rows name them.
const NODES: [&str; 2] = ["node1", "node2"];

/// The planned move of every address to node2 (`handover`) and back to node1 (`handback`),
/// each timed from the command to every address answering ARP from the new holder; had's
/// own `released in` line gives the old holder's share. False when a move did not complete
/// within the shape's timeout (the crash is then not measured: nobody holds everything).
fn planned_moves(
    c: &mut dyn Contender,
    lab: &mut Lab,
    addrs: &[Ipv4Addr],
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
    key: &str,
) -> anyhow::Result<bool> {
    let name = c.name();
    for (step, old, new) in [
        ("handover", "node1", "node2"),
        ("handback", "node2", "node1"),
    ] {
        let all_key = format!("scale_{key}_{step}_all");
        let watch = lab.arp_watch(new, addrs.to_vec(), CLIENT_ALT, ASK_EVERY)?;
        let log = c.decision_log(lab, old).map(|(p, _)| p);
        let from = log
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        let t0 = Instant::now();
        let sent = c.move_all(lab, step == "handback");
        let done = sent
            .is_ok()
            .then(|| watch.wait_all(opts.scale_timeout))
            .flatten();
        let answered = watch.answered();
        watch.stop();
        if let Err(e) = sent {
            // As for a refused start: a peer's move command failing is a finding.
            if name == "had" {
                return Err(e);
            }
            let why = format!("the move command failed: {}", refusal(&format!("{e:#}")));
            r.push(&all_key, name, None);
            say(out, name, key, &format!("{step}: {why}"));
            r.note(&all_key, name, why);
            return Ok(false);
        }
        let all = done.map(|(t, _)| ms(t.saturating_duration_since(t0)));
        r.push(&all_key, name, all);
        let Some(all) = all else {
            let why = format!(
                "{answered} of {} addresses answered from {new} within {} s",
                addrs.len(),
                opts.scale_timeout.as_secs()
            );
            say(out, name, key, &format!("{step}: {why}"));
            r.note(&all_key, name, why);
            return Ok(false);
        };
        let release = log.and_then(|p| std::fs::read(p).ok()).and_then(|text| {
            let from = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
            released_ms(&String::from_utf8_lossy(&text[from..]))
        });
        if release.is_some() {
            r.push(&format!("scale_{key}_{step}_release"), name, release);
        }
        let of_old =
            release.map_or_else(String::new, |v| format!(" ({old} released in {v:.0} ms)"));
        say(
            out,
            name,
            key,
            &format!("{step}: → all {all:.0} ms from {new}{of_old}"),
        );
        // Its bursts of gratuitous ARPs and the old holder's last steps over before the next.
        std::thread::sleep(c.settle() + Duration::from_secs(1));
        c.quiesce(lab)?;
    }
    Ok(true)
}

/// The duration of the last `resource group … released in M ms` line of had's log `text`.
fn released_ms(text: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.contains("resource group "))
        .filter_map(|l| {
            l.split_once(" released in ")?
                .1
                .split_once(" ms")
                .map(|(v, _)| v)
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next_back()
}

/// The longest silence of either node on its heartbeat port from `from` to now, and whose.
fn silence(
    hb: &[ha_lab::HbWatch],
    from: Instant,
    r: &mut BenchReport,
    out: &mut dyn Write,
    name: &str,
    key: &str,
) {
    let to = Instant::now();
    let each: Vec<Option<Duration>> = hb
        .iter()
        .map(|w| ha_lab::longest_silence(&w.sent(), from, to))
        .collect();
    let row = format!("scale_{key}_silence");
    // A node with no frame at all was not watched on the right port: no figure, said loudly.
    if let Some(i) = each.iter().position(Option::is_none) {
        let node = NODES.get(i).copied().unwrap_or("a node");
        r.push(&row, name, None);
        r.note(&row, name, format!("no heartbeat frame seen from {node}"));
        say(
            out,
            name,
            key,
            &format!("no heartbeat frame seen from {node}"),
        );
        return;
    }
    let Some((i, longest)) = each.iter().flatten().enumerate().max_by_key(|(_, d)| **d) else {
        return;
    };
    let node = NODES.get(i).copied().unwrap_or("a node");
    r.push(&row, name, Some(ms(*longest)));
    say(
        out,
        name,
        key,
        &format!(
            "longest heartbeat silence {:.0} ms ({node}) from the start through both moves",
            ms(*longest)
        ),
    );
}

/// Monitors at scale: the bench's service with no check and with `MONITORS` checks every
/// 1 s, each in a fresh lab; idle CPU of node1's daemons and reaped children over the
/// scale idle window, and the difference per check.
pub const MONITORS: usize = 100;

/// Runs the monitor comparison for `c`, if it has monitors.
pub fn monitors(
    c: &mut dyn Contender,
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
) {
    let name = c.name();
    let mut cpu = Vec::new();
    for count in [0, MONITORS] {
        match monitors_once(c, count, opts, r, out) {
            Ok(Some(v)) => cpu.push(v),
            Ok(None) => return,
            Err(e) => {
                let msg = format!("{name} monitors {count}: {e:#}");
                let _ = writeln!(out, "  ERROR {msg}");
                r.errors.push(msg);
                return;
            }
        }
    }
    if let [none, many] = cpu[..] {
        r.push(
            "monitor_idle_cpu_each",
            name,
            Some((many - none) / MONITORS as f64),
        );
    }
}

/// One lab with `count` checks; node1's idle CPU per 60 s, or None (no monitors).
fn monitors_once(
    c: &mut dyn Contender,
    count: usize,
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
) -> anyhow::Result<Option<f64>> {
    let mut lab = Lab::new(LabOptions::default())?;
    let name = c.name();
    let res = (|| -> anyhow::Result<Option<f64>> {
        let Some(started) = c.start_monitors(&mut lab, count) else {
            return Ok(None);
        };
        r.labs.push(lab.id().to_owned());
        writeln!(
            out,
            "{name} with {count} monitors every 1 s: lab {}",
            lab.id()
        )?;
        started?;
        let vip = lab.vip(0);
        lab.wait_until(Duration::from_secs(90), || {
            lab.client_http_get(vip, opts.port, Duration::from_millis(300))
                .is_ok_and(|b| b.trim() == "node1")
        })
        .context("node1 never served")?;
        std::thread::sleep(c.settle() + Duration::from_secs(3));
        let key = if count == 0 {
            "monitors_0_idle_cpu"
        } else {
            "monitors_100_idle_cpu"
        };
        // A cluster still busy with its checks is a result, not a failure of the bench.
        if let Err(e) = c.quiesce(&lab) {
            let why = format!("{e:#}");
            let why = why.lines().next().unwrap_or_default();
            r.push(key, name, None);
            r.note(key, name, format!("never idle: {why}"));
            say(
                out,
                name,
                "monitors",
                &format!("{count} checks: never idle: {why}"),
            );
            return Ok(None);
        }
        let (cpu, rss, _) = idle(c, &lab, opts.scale_idle)?;
        r.push(key, name, Some(cpu));
        say(
            out,
            name,
            "monitors",
            &format!(
                "{count} checks: idle {cpu:.3} s CPU per 60 s (daemons + children), RSS {rss:.1} MiB"
            ),
        );
        Ok(Some(cpu))
    })();
    let failed = res.is_err().then(|| format!("{name} monitors"));
    let down = end_lab(c, lab, failed, out);
    let v = res?;
    down?;
    Ok(v)
}

/// Ends a measurement's lab: its logs kept first when `failed` names what failed, then the
/// contender's handles (they reap their children), then the lab itself.
fn end_lab(
    c: &mut dyn Contender,
    lab: Lab,
    failed: Option<String>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if let Some(what) = failed {
        let kept = keep_logs(&lab);
        let _ = writeln!(out, "  [{what}] logs kept in {kept}");
    }
    c.crashed("node1");
    c.crashed("node2");
    let id = lab.id().to_owned();
    lab.shutdown()
        .with_context(|| format!("tearing down lab {id}"))
}

/// node1's daemons over `window`: CPU per 60 s (own + reaped children), summed RSS and its
/// anonymous part (MiB).
fn idle(c: &dyn Contender, lab: &Lab, window: Duration) -> anyhow::Result<(f64, f64, f64)> {
    let comms = c.daemon_comms();
    let ns = lab.node("node1").netns().to_owned();
    let pids = procfs::daemon_pids(&ns, comms);
    if pids.is_empty() {
        bail!("node1: none of {comms:?} runs");
    }
    let before: Vec<Option<procfs::ProcSample>> = pids.iter().map(|p| procfs::sample(*p)).collect();
    std::thread::sleep(window);
    let (mut rss, mut anon, mut secs) = (0u64, 0u64, 0f64);
    for (pid, b) in pids.iter().zip(before) {
        let (Some(b), Some(a)) = (b, procfs::sample(*pid)) else {
            bail!("node1: daemon process {pid} went away while idle");
        };
        rss += a.rss_kib;
        anon += a.anon_kib;
        secs += a.cpu_secs_since(&b)
            + a.child_ticks.saturating_sub(b.child_ticks) as f64 / procfs::clock_ticks();
    }
    let cpu = secs * 60.0 / window.as_secs_f64();
    Ok((cpu, rss as f64 / 1024.0, anon as f64 / 1024.0))
}

/// Milliseconds from `node`'s last decision line after byte `from` of its log to `all`.
fn decision_to(
    c: &dyn Contender,
    lab: &Lab,
    node: &str,
    from: u64,
    all: std::time::SystemTime,
) -> Option<f64> {
    let (path, needle) = c.decision_log(lab, node)?;
    let text = std::fs::read_to_string(path).ok()?;
    let at = ha_lab::last_stamp(&text, usize::try_from(from).ok()?, needle)?;
    // A decision after the last answer would be someone else's: no figure then.
    all.duration_since(at).ok().map(ms)
}

/// What had and Heartbeat 3.0.6 alike write when a heartbeat came after warntime.
const LATE_LINE: &str = "Late heartbeat";

/// The line of a start failure that says why: its first `ERROR` line, else its first line,
/// cut short (the whole start output goes to the kept logs).
fn refusal(err: &str) -> String {
    let line = err
        .lines()
        .find(|l| l.contains("ERROR") && !l.contains("not started"))
        .or_else(|| err.lines().next())
        .unwrap_or("")
        .trim();
    // From the daemon's own words on: the syslog prefix says nothing.
    let line = line.find("ERROR").map_or(line, |i| &line[i..]);
    line.chars().take(200).collect()
}

fn say(out: &mut dyn Write, name: &str, key: &str, msg: &str) {
    let _ = writeln!(out, "  [{name} scale {key}] {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_heartbeats_are_counted_by_their_line() {
        use std::path::Path;
        let dir = std::env::temp_dir().join(format!("ha-bench-late-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let (log, empty) = (dir.join("had.log"), dir.join("empty.log"));
        std::fs::write(
            &log,
            "2026-12-03T07:17:36.1Z WARN had: Late heartbeat: Node node2: interval 2600 ms\n\
             Dec 03 07:17:36 node1 heartbeat: [5114]: WARN: Late heartbeat: Node node2: interval 2612 ms\n\
             2026-12-03T07:17:37.1Z INFO had: acquiring resource group 1\n",
        )
        .expect("write log");
        std::fs::write(&empty, "").expect("write log");
        let count = |p: &Path| crate::count_in_log(p, LATE_LINE, 0).expect("read log");
        assert_eq!(count(&log), 2);
        assert_eq!(count(&empty), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_refusal_is_told_by_its_error_line() {
        let err = "node1: heartbeat exited at once (status 6); start.out:\n\
                   Dec 03 07:17:36 node1 heartbeat: [5114]: info: Configuration validated.\n\
                   Dec 03 07:17:36 node1 heartbeat: [5114]: ERROR: Bad nodename in /etc/ha.d//haresources [h0]\n\
                   Dec 03 07:17:36 node1 heartbeat: [5114]: ERROR: Configuration error, heartbeat not started.";
        assert_eq!(
            refusal(err),
            "ERROR: Bad nodename in /etc/ha.d//haresources [h0]"
        );
        assert_eq!(
            refusal("spawn failed: no such file"),
            "spawn failed: no such file"
        );
        assert_eq!(refusal(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn the_release_is_read_from_hads_last_line() {
        let log = "Dec  4 14:00:00.000 node1 had[1]: info: resource group 198.19.0.1 released in 12 ms\n\
                   Dec  4 14:00:01.000 node1 had[1]: info: resource group 198.19.0.1 released in 7.5 ms\n\
                   Dec  4 14:00:02.000 node1 had[1]: info: resource group 198.19.0.1 acquired in 3 ms\n";
        assert_eq!(released_ms(log), Some(7.5));
        assert_eq!(released_ms("resource group g acquired in 3 ms\n"), None);
    }

    #[test]
    fn shapes_have_rows_and_distinct_addresses() {
        for s in SHAPES {
            assert!(!s.key.is_empty() && s.groups * s.per >= 1);
        }
        // The address plan of the largest shape has no duplicate (no lab needed for it).
        let mut seen = std::collections::BTreeSet::new();
        for k in 1..1000usize {
            assert!(seen.insert(Ipv4Addr::new(198, 19, (k / 250) as u8, (k % 250 + 1) as u8)));
        }
        assert!(!seen.contains(&CLIENT_ALT));
        assert!(!seen.contains(&Ipv4Addr::new(198, 19, 255, 11)));
    }
}
