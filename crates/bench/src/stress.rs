//! The stress window: stress-ng (Debian's package) inside both nodes' network namespaces —
//! CPU on every core, VM pressure on most of the free memory, a bounded fork storm and disk
//! IO in a directory made for it — while each contender runs at its fastest setting. Counted:
//! takeovers of a healthy owner (the VIP appears on node2 although node1 never failed) and
//! probes the owner did not answer.
//!
//! Every stress-ng is started by PID in its own process group, bounded by `--timeout` (so it
//! ends by itself if this process dies), and ended by PID: SIGTERM to it, then SIGKILL to each
//! process left in its group, also when the window fails (Drop).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ha_lab::{Lab, LabOptions, Sample, VipSample, VipWatch};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::contenders::{Contender, Speed};
use crate::drills::Ctx;
use crate::report::BenchReport;
use crate::{keep_logs, procfs};

/// The default stress window (`--long`: [`LONG_WINDOW`]).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);
/// The stress window with `--long`.
pub const LONG_WINDOW: Duration = Duration::from_secs(600);
/// The client's probe period in the window (the bench's probe; no finer one exists yet).
pub const PROBE_EVERY: Duration = Duration::from_millis(20);
/// How often the VIP's place is sampled on both nodes.
const VIP_EVERY: Duration = Duration::from_millis(10);
/// Share of the available memory the VM stressors of both nodes touch together.
const VM_SHARE: f64 = 0.6;
/// Memory always left free, whatever the share says: other work on the host must not meet
/// the OOM killer because of the bench.
const VM_HEADROOM: u64 = 2 << 30;
/// Below this, VM pressure is left out (and the note says so).
const VM_MIN: u64 = 64 << 20;
/// Children each fork-storm worker creates per round (stress-ng's `--fork-max`).
const FORK_MAX: u32 = 32;
/// Bytes each disk worker writes (stress-ng's `--hdd-bytes`).
const HDD_BYTES: u64 = 128 << 20;
/// Beyond the window, how long stress-ng may run before its own `--timeout` ends it.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(30);
/// How long stress-ng gets to stop its workers after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(10);
/// After the window, how long a VIP move still counts (the decision may lag the load).
const SETTLE: Duration = Duration::from_secs(2);
/// The stress-ng binary (Debian: /usr/bin/stress-ng, from `just setup`).
const STRESS_NG: &str = "stress-ng";

/// What each node's stress-ng runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StressPlan {
    /// VM bytes per node (0: no VM stressor).
    pub vm_bytes: u64,
    /// Fork-storm children per round.
    pub fork_max: u32,
    /// Disk bytes per node.
    pub hdd_bytes: u64,
}

impl StressPlan {
    /// The plan for `nodes` nodes on a host with `available` bytes of MemAvailable: the VM
    /// stressors together touch [`VM_SHARE`] of it, never leaving less than [`VM_HEADROOM`].
    pub fn new(available: u64, nodes: u64) -> StressPlan {
        let share = (available as f64 * VM_SHARE) as u64;
        let total = share.min(available.saturating_sub(VM_HEADROOM));
        let per_node = total / nodes.max(1);
        StressPlan {
            vm_bytes: if per_node >= VM_MIN { per_node } else { 0 },
            fork_max: FORK_MAX,
            hdd_bytes: HDD_BYTES,
        }
    }

    /// The plan for this host now (two nodes).
    pub fn for_this_host() -> anyhow::Result<StressPlan> {
        Ok(StressPlan::new(mem_available()?, 2))
    }

    /// stress-ng's arguments for a `window`, with disk files in `temp`.
    pub fn args(&self, window: Duration, temp: &Path) -> Vec<String> {
        let timeout = (window + TIMEOUT_MARGIN).as_secs().max(1);
        let mut a: Vec<String> = vec![
            // 0 = one CPU worker per online CPU.
            "--cpu".into(),
            "0".into(),
            "--fork".into(),
            "1".into(),
            "--fork-max".into(),
            self.fork_max.to_string(),
            "--hdd".into(),
            "1".into(),
            "--hdd-bytes".into(),
            self.hdd_bytes.to_string(),
            "--temp-path".into(),
            temp.display().to_string(),
            "--timeout".into(),
            format!("{timeout}s"),
            "--metrics-brief".into(),
        ];
        if self.vm_bytes > 0 {
            // --vm-populate: the kernel faults the whole mapping in at once, so the pressure is
            // there from the window's first second, not after a starved worker has touched it
            // page by page; --vm-keep: the pages then stay mapped and are rewritten.
            a.extend([
                "--vm".into(),
                "1".into(),
                "--vm-bytes".into(),
                self.vm_bytes.to_string(),
                "--vm-populate".into(),
                "--vm-keep".into(),
            ]);
        }
        a
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let vm = if self.vm_bytes > 0 {
            format!(
                "--vm 1 --vm-bytes {} MiB --vm-populate --vm-keep",
                self.vm_bytes >> 20
            )
        } else {
            "no VM stressor (too little free memory)".to_owned()
        };
        format!(
            "stress-ng in each node: --cpu 0 (every core), {vm}, --fork 1 --fork-max {}, --hdd 1 --hdd-bytes {} MiB",
            self.fork_max,
            self.hdd_bytes >> 20
        )
    }
}

/// MemAvailable from /proc/meminfo, in bytes.
pub fn mem_available() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    procfs::kib_field(&text, "MemAvailable:")
        .map(|k| k << 10)
        .context("no MemAvailable in /proc/meminfo")
}

/// One node's stress-ng.
pub struct StressNg {
    node: String,
    child: Option<Child>,
    pid: i32,
    temp: PathBuf,
}

/// What a stopped stress-ng did.
#[derive(Debug, Clone, Default)]
pub struct StressSummary {
    /// CPU seconds of its whole process tree (proof the load ran).
    pub cpu_secs: f64,
    /// RSS of its processes just before it was stopped, MiB.
    pub rss_mib: f64,
}

impl StressNg {
    /// Starts stress-ng in `netns` (node `node`) for `window`, its disk files in a directory
    /// it creates under `dir`, its output appended to `dir/stress-ng-<node>.log`.
    pub fn start(
        node: &str,
        netns: &str,
        plan: &StressPlan,
        window: Duration,
        dir: &Path,
    ) -> anyhow::Result<StressNg> {
        let temp = dir.join(format!("stress-{node}"));
        std::fs::create_dir_all(&temp).with_context(|| format!("creating {}", temp.display()))?;
        let log_path = dir.join(format!("stress-ng-{node}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        // `ip netns exec` execs stress-ng: the child's PID is stress-ng's. Its own process
        // group holds its workers and the fork storm's children, and nothing else.
        let child = Command::new("ip")
            .args(["netns", "exec", netns, STRESS_NG])
            .args(plan.args(window, &temp))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("{node}: starting stress-ng (need iproute2)"))?;
        let pid = i32::try_from(child.id()).context("PID out of range")?;
        let mut s = StressNg {
            node: node.to_owned(),
            child: Some(child),
            pid,
            temp,
        };
        // A missing binary or a refused option ends it at once: say so rather than measure
        // a window without load.
        std::thread::sleep(Duration::from_millis(300));
        if let Some(c) = s.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            s.child = None;
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(3).collect();
            bail!(
                "{node}: stress-ng exited at once ({status}); install it with `just setup` (Debian package stress-ng): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            );
        }
        Ok(s)
    }

    /// PIDs of the processes in stress-ng's process group (its workers, their children).
    fn group(&self) -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&p| process_group(p) == Some(self.pid))
            .collect()
    }

    /// CPU seconds and RSS of the process tree so far.
    fn summary(&self) -> StressSummary {
        let tck = procfs::clock_ticks();
        let (mut ticks, mut rss) = (0u64, 0u64);
        for p in self.group() {
            if let Some(s) = u32::try_from(p).ok().and_then(procfs::sample) {
                ticks += s.cpu_ticks + s.child_ticks;
                rss += s.rss_kib;
            }
        }
        StressSummary {
            cpu_secs: ticks as f64 / tck,
            rss_mib: rss as f64 / 1024.0,
        }
    }

    /// Ends it by PID: SIGTERM (stress-ng stops its workers), then SIGKILL to whatever is left
    /// in its group; reaps it and removes its directory. Returns what it did.
    pub fn stop(mut self) -> anyhow::Result<StressSummary> {
        let s = self.summary();
        self.end()?;
        Ok(s)
    }

    fn end(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            let _ = std::fs::remove_dir_all(&self.temp);
            return Ok(());
        };
        match kill(Pid::from_raw(self.pid), Signal::SIGTERM) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => bail!("{}: kill -TERM {}: {e}", self.node, self.pid),
        }
        let deadline = Instant::now() + TERM_GRACE;
        while child.try_wait()?.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let deadline = Instant::now() + TERM_GRACE;
        loop {
            let left: Vec<i32> = self.group();
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: stress-ng processes {left:?} survive SIGKILL",
                    self.node
                );
            }
            for p in left {
                match kill(Pid::from_raw(p), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => bail!("{}: kill -KILL {p}: {e}", self.node),
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child
            .wait()
            .with_context(|| format!("{}: reaping stress-ng", self.node))?;
        let _ = std::fs::remove_dir_all(&self.temp);
        Ok(())
    }
}

impl Drop for StressNg {
    fn drop(&mut self) {
        if let Err(e) = self.end() {
            eprintln!("ha-bench: {e:#}");
        }
    }
}

/// The process group of `pid` (field 5 of /proc/PID/stat), if it exists.
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state): ppid is 4, pgrp 5.
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Starts stress-ng in every node of `lab`; on failure the ones started are ended.
pub fn start_all(lab: &Lab, plan: &StressPlan, window: Duration) -> anyhow::Result<Vec<StressNg>> {
    let mut all = Vec::new();
    for n in lab.nodes() {
        all.push(StressNg::start(
            n.name(),
            n.netns(),
            plan,
            window,
            lab.dir(),
        )?);
    }
    Ok(all)
}

/// Which pair of report rows a setting fills: the fastest one, or the second one measured
/// beside it (had with `realtime off`, keepalived at 0.01 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// `stress_takeovers`, `stress_probes`.
    Main,
    /// `stress_takeovers_alt`, `stress_probes_alt`.
    Alt,
}

impl Rows {
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Rows::Main => ("stress_takeovers", "stress_probes"),
            Rows::Alt => ("stress_takeovers_alt", "stress_probes_alt"),
        }
    }
}

/// What one window measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Times the VIP appeared on node2 while node1 was never failed.
    pub takeovers: usize,
    /// Takeover lines in the contender's logs (a cross-check of `takeovers`).
    pub logged: usize,
    /// Probes not answered by node1.
    pub missed: usize,
    /// Probes sent.
    pub probes: usize,
}

/// Times the address appeared on node2 (sample index 1) from `from` to `to`: each start of a
/// run of samples with it there.
pub fn vip_moves(samples: &[VipSample], from: Instant, to: Instant) -> usize {
    let mut moves = 0;
    let mut there = false;
    for s in samples.iter().filter(|s| s.at >= from && s.at <= to) {
        let on2 = s.on.get(1).copied().unwrap_or(false);
        if on2 && !there {
            moves += 1;
        }
        there = on2;
    }
    moves
}

/// Probes sent from `from` to `to` and those not answered by node1.
pub fn missed_probes(samples: &[Sample], from: Instant, to: Instant) -> (usize, usize) {
    let in_window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= from && s.sent <= to)
        .collect();
    let missed = in_window
        .iter()
        .filter(|s| s.body() != Some("node1"))
        .count();
    (missed, in_window.len())
}

/// Runs the stress window on a ready cluster (node1 serving) and records the counts in
/// `rows` for the contender, with `setting` in the note.
pub fn window(
    ctx: &mut Ctx,
    r: &mut BenchReport,
    rows: Rows,
    setting: &str,
    window: Duration,
) -> anyhow::Result<Counts> {
    ctx.ready()?;
    let plan = StressPlan::for_this_host()?;
    let logs = ctx.c.takeover_logs(&ctx.lab);
    let offsets = crate::log_ends(&logs);
    let load_before = loadavg();
    let ns: Vec<&str> = ["node1", "node2"]
        .iter()
        .map(|n| ctx.lab.node(n).netns())
        .collect();
    let mut watch = VipWatch::start(&ns, ctx.lab.vip(0), VIP_EVERY)?;
    let probe = ctx.lab.probe(ctx.lab.vip(0), ctx.port, PROBE_EVERY);
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let stress = start_all(&ctx.lab, &plan, window)?;
    let mut min_avail = u64::MAX;
    while t0.elapsed() < window {
        if let Ok(a) = mem_available() {
            min_avail = min_avail.min(a);
        }
        std::thread::sleep(Duration::from_millis(500).min(window.saturating_sub(t0.elapsed())));
    }
    let load_during = loadavg();
    let t1 = Instant::now();
    let mut summaries = Vec::new();
    for s in stress {
        summaries.push(s.stop()?);
    }
    let stopped = Instant::now();
    std::thread::sleep(SETTLE);
    watch.stop();
    let probes = probe.stop();
    let vip = watch.samples();
    // A move decided under the load may show only after it stopped.
    let takeovers = vip_moves(&vip, t0, stopped + SETTLE);
    let (missed, sent) = missed_probes(&probes, t0, t1);
    // How many, and which node wrote them and when: the lab's logs go with the lab.
    let (mut logged, mut lines) = (0, Vec::new());
    for ((path, pat), &off) in logs.iter().zip(&offsets) {
        if let Ok((n, first)) = crate::hits_in_log(path, pat, off, 3) {
            logged += n;
            lines.extend(first);
        }
    }
    // Pauses the daemon itself noticed (its timer woke late) and rode out with a grace.
    let late_wakes = ctx.c.own_late_wake_line().map(|pat| {
        logs.iter()
            .zip(&offsets)
            .filter_map(|((path, _), &off)| crate::count_in_log(path, pat, off).ok())
            .sum::<usize>()
    });
    let (kt, kp) = rows.keys();
    let name = ctx.c.name();
    r.push(kt, name, Some(takeovers as f64));
    r.push(kp, name, Some(missed as f64));
    let cpu: f64 = summaries.iter().map(|s| s.cpu_secs).sum();
    let rss: f64 = summaries.iter().map(|s| s.rss_mib).sum();
    let note = format!(
        "{setting}; {} s window; {}; stress-ng burnt {cpu:.0} CPU s, held {rss:.0} MiB; MemAvailable low {} MiB; load {load_before} before, {load_during} at the end; {logged} takeover line(s) logged; {missed} of {sent} probes (every {} ms) not answered by node1",
        window.as_secs(),
        plan.describe(),
        if min_avail == u64::MAX {
            "n/a".to_owned()
        } else {
            (min_avail >> 20).to_string()
        },
        PROBE_EVERY.as_millis(),
    );
    let wakes = late_wakes.map_or_else(String::new, |n| {
        format!("; {n} late wake-up(s) of its own logged (a peer's judgement deferred)")
    });
    let note = format!("{note}{wakes}");
    let note = if lines.is_empty() {
        note
    } else {
        format!("{note} ({})", lines.join(" | "))
    };
    r.note(kt, name, note);
    for l in &lines {
        let _ = writeln!(ctx.out, "  [{name} stress] logged: {l}");
    }
    let _ = writeln!(
        ctx.out,
        "  [{name} stress] {setting}: {} s: {takeovers} VIP move(s) to node2 ({logged} logged), {missed} of {sent} probes not answered by node1; stress-ng {cpu:.0} CPU s, {rss:.0} MiB{wakes}",
        window.as_secs()
    );
    Ok(Counts {
        takeovers,
        logged,
        missed,
        probes: sent,
    })
}

/// The stress windows of one contender: each of its stress settings (at most two: the rows
/// hold a main and an alternative setting) in a fresh lab. Failures go to the report's errors.
pub(crate) fn phases(
    c: &mut dyn Contender,
    window: Duration,
    port: u16,
    r: &mut BenchReport,
    out: &mut dyn Write,
) {
    for (i, setting) in c.stress_settings().into_iter().enumerate().take(2) {
        let rows = if i == 0 { Rows::Main } else { Rows::Alt };
        c.use_stress_setting(Some(i));
        r.settings
            .entry(c.name().to_owned())
            .or_default()
            .push(format!("Stress ({} s): {setting}", window.as_secs()));
        if let Err(e) = phase(c, rows, &setting, window, port, r, out) {
            let msg = format!("{} stress ({setting}): {e:#}", c.name());
            let _ = writeln!(out, "  ERROR {msg}");
            r.errors.push(msg);
        }
    }
    c.use_stress_setting(None);
}

/// One stress window in its own lab.
fn phase(
    c: &mut dyn Contender,
    rows: Rows,
    setting: &str,
    window_len: Duration,
    port: u16,
    r: &mut BenchReport,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let lab = Lab::new(LabOptions::default())?;
    r.labs.push(lab.id().to_owned());
    writeln!(
        out,
        "{} stress window ({setting}, {} s): lab {}",
        c.name(),
        window_len.as_secs(),
        lab.id()
    )?;
    let mut ctx = Ctx {
        lab,
        c,
        speed: Speed::Fast,
        port,
        started: HashMap::new(),
        out,
    };
    let result = ctx
        .start()
        .and_then(|_| window(&mut ctx, r, rows, setting, window_len));
    if let Err(e) = &result {
        let kept = keep_logs(&ctx.lab);
        let _ = writeln!(ctx.out, "  stress window failed: {e:#} (logs: {kept})");
    }
    let Ctx { lab, .. } = ctx;
    let id = lab.id().to_owned();
    let down = lab.shutdown();
    result?;
    down.with_context(|| format!("tearing down lab {id}"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vm_share_leaves_headroom() {
        let gib = 1u64 << 30;
        let p = StressPlan::new(20 * gib, 2);
        assert_eq!(p.vm_bytes, 6 * gib);
        // Little memory: the headroom wins over the share.
        let p = StressPlan::new(3 * gib, 2);
        assert_eq!(p.vm_bytes, gib / 2);
        assert_eq!(StressPlan::new(2 * gib, 2).vm_bytes, 0);
        assert!(StressPlan::new(2 * gib, 2).describe().contains("no VM"));
    }

    #[test]
    fn args_are_bounded_by_a_timeout() {
        let p = StressPlan::new(20 << 30, 2);
        let a = p.args(Duration::from_secs(120), Path::new("/var/lib/x"));
        let at = a.iter().position(|x| x == "--timeout").unwrap();
        assert_eq!(a[at + 1], "150s");
        assert!(a.windows(2).any(|w| w == ["--temp-path", "/var/lib/x"]));
        assert!(a.windows(2).any(|w| w == ["--fork-max", "32"]));
        assert!(a.iter().any(|x| x == "--vm-keep"));
        assert!(a.iter().any(|x| x == "--vm-populate"));
    }

    fn vs(t0: Instant, ms: u64, on: [bool; 2]) -> VipSample {
        VipSample::steady(t0 + Duration::from_millis(ms), on.to_vec())
    }

    #[test]
    fn moves_count_arrivals_on_node2_in_the_window() {
        let t0 = Instant::now();
        let s = vec![
            vs(t0, 0, [true, true]),
            vs(t0, 10, [true, false]),
            vs(t0, 20, [false, true]),
            vs(t0, 30, [false, true]),
            vs(t0, 40, [true, false]),
            vs(t0, 50, [true, true]),
            vs(t0, 60, [true, false]),
        ];
        assert_eq!(
            vip_moves(
                &s,
                t0 + Duration::from_millis(5),
                t0 + Duration::from_secs(1)
            ),
            2
        );
        assert_eq!(vip_moves(&s, t0, t0 + Duration::from_millis(45)), 2);
        assert_eq!(
            vip_moves(
                &s,
                t0 + Duration::from_millis(35),
                t0 + Duration::from_millis(45)
            ),
            0
        );
    }

    #[test]
    fn probes_not_from_the_owner_are_missed() {
        let t0 = Instant::now();
        let p = |ms: u64, r: Result<&str, &str>| Sample {
            sent: t0 + Duration::from_millis(ms),
            at: t0 + Duration::from_millis(ms + 1),
            result: r.map(str::to_owned).map_err(str::to_owned),
        };
        let s = vec![
            p(0, Ok("node1\n")),
            p(20, Err("timed out")),
            p(40, Ok("node2")),
            p(60, Ok("node1")),
            p(80, Err("refused")),
        ];
        assert_eq!(
            missed_probes(&s, t0, t0 + Duration::from_millis(60)),
            (2, 4)
        );
    }

    /// stress-ng really starts, by PID, in its own group, and every process of it is gone
    /// after stop (root only: it runs in a namespace; skipped without stress-ng).
    #[test]
    fn stress_ng_starts_and_ends_by_pid() {
        if !ha_lab::lab_available("stress_ng_starts_and_ends_by_pid") {
            return;
        }
        if !ha_lab::gate::lab_needs(
            "stress_ng_starts_and_ends_by_pid",
            Command::new(STRESS_NG).arg("--version").output().is_ok(),
            "stress-ng is not installed (just setup)",
        ) {
            return;
        }
        let lab = Lab::new(ha_lab::LabOptions::default()).unwrap();
        // A small plan: the test checks the process handling, not the machine.
        let plan = StressPlan {
            vm_bytes: 64 << 20,
            fork_max: 4,
            hdd_bytes: 4 << 20,
        };
        let all = start_all(&lab, &plan, Duration::from_secs(3)).unwrap();
        let leaders: Vec<i32> = all.iter().map(|s| s.pid).collect();
        std::thread::sleep(Duration::from_millis(1500));
        let groups: Vec<usize> = all.iter().map(|s| s.group().len()).collect();
        // cpu (one per core) + fork + hdd + vm workers and the leader itself.
        assert!(groups.iter().all(|&g| g >= 4), "groups {groups:?}");
        let mut cpu = 0.0;
        for s in all {
            cpu += s.stop().unwrap().cpu_secs;
        }
        eprintln!("stress-ng burnt {cpu:.2} CPU s in 1.5 s, groups {groups:?}");
        assert!(cpu > 0.1, "stress-ng did no work: {cpu} CPU s");
        for l in leaders {
            let left: Vec<i32> = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&p| process_group(p) == Some(l))
                .collect();
            assert!(left.is_empty(), "left in group {l}: {left:?}");
        }
        assert!(!lab.dir().join("stress-node1").exists());
        lab.shutdown().unwrap();
    }
}
