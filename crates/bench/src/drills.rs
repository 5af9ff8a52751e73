//! The timed drills, the same for every contender: crash + failback,
//! planned handover + handback, service death, idle footprint, and timer
//! stability under CPU load. Times come from the client's HTTP prober
//! (every 20 ms, as in the reference measurements), t0 just before the action.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use ha_lab::{Lab, Prober, max_gap_after};

use crate::contenders::{Contender, Speed};
use crate::procfs::{self, Load};
use crate::report::BenchReport;

/// The client's probe period.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// The fine probe of the gap drills (failback, handover, handback): a fresh connection every
/// 5 ms, up to `FINE_WORKERS` in flight, each given `FINE_TIMEOUT`.
const FINE_EVERY: Duration = Duration::from_millis(5);
/// Long enough for a fork-per-connection web server on a loaded host, short enough that a
/// probe to an address nobody holds frees its worker soon.
const FINE_TIMEOUT: Duration = Duration::from_millis(100);
/// FINE_TIMEOUT ÷ FINE_EVERY probes can wait at once, plus slack.
const FINE_WORKERS: usize = 28;
/// How long any "node X serves again" wait may take before the phase fails.
const RECOVER: Duration = Duration::from_secs(60);

/// A contender's cluster in its lab, with what the drills need to remember.
pub struct Ctx<'a> {
    /// The lab.
    pub lab: Lab,
    /// The contender.
    pub c: &'a mut dyn Contender,
    /// The speed it runs at.
    pub speed: Speed,
    /// Web port.
    pub port: u16,
    /// When each node's daemon was last started.
    pub started: HashMap<String, Instant>,
    /// Progress lines.
    pub out: &'a mut dyn Write,
}

impl Ctx<'_> {
    fn name(&self) -> &'static str {
        self.c.name()
    }

    fn say(&mut self, msg: &str) {
        let _ = writeln!(self.out, "  [{} {:?}] {msg}", self.c.name(), self.speed);
    }

    /// Starts both nodes and waits until node1 serves.
    pub fn start(&mut self) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        self.c.start(&mut self.lab, self.speed)?;
        for n in ["node1", "node2"] {
            self.started.insert(n.into(), Instant::now());
        }
        self.wait_serving("node1", RECOVER)
            .context("node1 never served after the cluster started")?;
        Ok(t0.elapsed())
    }

    /// Polls the VIP from the client until `node` answers.
    fn wait_serving(&self, node: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let vip = self.lab.vip(0);
        self.lab
            .wait_until(timeout, || {
                self.lab
                    .client_http_get(vip, self.port, Duration::from_millis(300))
                    .is_ok_and(|b| b.trim() == node)
            })
            .with_context(|| format!("{node} did not serve within {timeout:?}"))
    }

    /// Waits until node1 serves, its daemon has run for the contender's settle time and
    /// the cluster has nothing in flight.
    pub(crate) fn ready(&mut self) -> anyhow::Result<()> {
        self.wait_serving("node1", RECOVER)?;
        self.c.quiesce(&self.lab)?;
        let settle = self.c.settle();
        if let Some(t) = self.started.get("node1") {
            let due = *t + settle;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        // And a quiet moment after whatever the previous drill did.
        std::thread::sleep(Duration::from_millis(500));
        Ok(())
    }

    fn probe(&self) -> Prober {
        let p = self.lab.probe(self.lab.vip(0), self.port, PROBE_EVERY);
        // Let it see the steady state first.
        std::thread::sleep(Duration::from_millis(200));
        p
    }

    /// The 5 ms probe of the gap drills.
    fn probe_fine(&self) -> anyhow::Result<Prober> {
        let p = self.lab.probe_concurrent(
            self.lab.vip(0),
            self.port,
            FINE_EVERY,
            FINE_TIMEOUT,
            FINE_WORKERS,
        )?;
        std::thread::sleep(Duration::from_millis(200));
        Ok(p)
    }

    /// Each node's log and its length now, for contenders whose logs carry millisecond
    /// stamps (had): the gap split reads what was written after this.
    fn log_marks(&self) -> Option<[(std::path::PathBuf, u64); 2]> {
        let at = |n: &str| {
            let (path, _) = self.c.decision_log(&self.lab, n)?;
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            Some((path, len))
        };
        Some([at("node1")?, at("node2")?])
    }

    /// had's share of a move's gap, from both logs since `logs` were marked: pushed as
    /// `<drill>_split_<part>` rows.
    #[allow(clippy::too_many_arguments)]
    fn split(
        &mut self,
        r: &mut BenchReport,
        drill: &str,
        decision: crate::split::Decision<'_>,
        logs: Option<&[(std::path::PathBuf, u64); 2]>,
        old: &str,
        answer: Option<(Instant, Instant, SystemTime)>,
    ) {
        let (Some(logs), Some((at, t0, wall0))) = (logs, answer) else {
            return;
        };
        let tail = |(p, off): &(std::path::PathBuf, u64)| {
            let text = std::fs::read(p).unwrap_or_default();
            String::from_utf8_lossy(text.get(*off as usize..).unwrap_or_default()).into_owned()
        };
        let (n1, n2) = (tail(&logs[0]), tail(&logs[1]));
        let (old_log, new_log) = if old == "node1" {
            (&n1, &n2)
        } else {
            (&n2, &n1)
        };
        let answer = wall0 + at.saturating_duration_since(t0);
        let vip = self.lab.vip(0).to_string();
        match crate::split::marks(decision, old_log, new_log, old, &vip, answer) {
            Ok(m) => {
                let parts = m.parts_ms();
                let mut line = String::new();
                for ((key, _), v) in crate::split::PARTS.iter().zip(parts) {
                    r.push(&format!("{drill}_split_{key}"), self.name(), v);
                    match v {
                        Some(v) => line.push_str(&format!(" {key} {v:.2}")),
                        None => line.push_str(&format!(" {key} ? (no line)")),
                    }
                }
                self.say(&format!("{drill} split (ms):{line}"));
            }
            Err(e) => {
                r.note(&format!("{drill}_split_release"), self.name(), e.clone());
                let kept = crate::keep_logs(&self.lab);
                self.say(&format!("{drill} split: {e}; logs kept in {kept}"));
            }
        }
    }
}

/// The achieved pace of a fine probe, pushed as `probe_rate` (probes per second).
fn push_rate(ctx: &mut Ctx, r: &mut BenchReport, drill: &str, rate: ha_lab::ProbeRate) {
    r.push("probe_rate", ctx.name(), Some(rate.per_sec()));
    ctx.say(&format!(
        "{drill}: 5 ms probe achieved {:.0}/s ({} sent, {} ticks skipped with every worker busy, {:.1} s)",
        rate.per_sec(),
        rate.sent,
        rate.skipped,
        rate.secs
    ));
}

/// After a failed drill: crash both nodes (everything in them killed, VIPs
/// removed), power them on and start the cluster afresh.
pub fn restart_cluster(ctx: &mut Ctx) -> anyhow::Result<()> {
    for n in ["node1", "node2"] {
        ctx.lab.node_mut(n).crash()?;
        ctx.c.crashed(n);
    }
    for n in ["node1", "node2"] {
        ctx.lab.node_mut(n).power_on()?;
    }
    ctx.start()?;
    Ok(())
}

/// Waits up to `timeout` for a probe sent after `t0` to be answered by `node`; ms after t0.
fn answered(p: &Prober, node: &str, t0: Instant, timeout: Duration) -> Option<f64> {
    let deadline = t0 + timeout;
    loop {
        if let Some(at) = p.first_answer_from(node, t0) {
            return Some(ms(at.saturating_duration_since(t0)));
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A random wait in [0, max): keeps t0 off the keepalive schedule.
fn jitter(max: Duration) -> Duration {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let frac = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(frac)
}

/// Crash node1, time the peer's first answer; power node1 on, start its
/// daemon, time the failback and its client gap.
pub fn crash(ctx: &mut Ctx, r: &mut BenchReport, run: usize) -> anyhow::Result<()> {
    let sfx = suffix(ctx.speed);
    let t = ctx.c.timers(ctx.speed);
    ctx.ready()?;
    let p = ctx.probe_fine()?;
    std::thread::sleep(jitter(t.keepalive));
    let t0 = Instant::now();
    ctx.lab.node_mut("node1").crash()?;
    ctx.c.crashed("node1");
    let took = answered(&p, "node2", t0, t.deadtime * 3 + Duration::from_secs(10));
    r.push(&format!("crash_http_{sfx}"), ctx.name(), took);
    let Some(took) = took else {
        bail!("run {run}: node2 never answered after node1 crashed");
    };
    std::thread::sleep(Duration::from_millis(300));
    ctx.lab.node_mut("node1").power_on()?;
    // As in the reference drill: the node's daemon starts 0.5 s after power-on.
    std::thread::sleep(Duration::from_millis(500));
    let logs = ctx.log_marks();
    let (wall1, t1) = (SystemTime::now(), Instant::now());
    ctx.c.start_node(&mut ctx.lab, "node1")?;
    ctx.started.insert("node1".into(), t1);
    let back = answered(&p, "node1", t1, RECOVER);
    std::thread::sleep(Duration::from_millis(500));
    let first = p.first_answer_from("node1", t1).map(|at| (at, t1, wall1));
    let back_from = crate::split::Decision::PeerReturn { new: "node1" };
    ctx.split(
        r,
        &format!("failback_{sfx}"),
        back_from,
        logs.as_ref(),
        "node2",
        first,
    );
    let rate = p.rate();
    let samples = p.stop();
    push_rate(ctx, r, "crash/failback", rate);
    let gap = back.and(max_gap_after(&samples, t1).map(ms));
    if ctx.speed == Speed::Slow {
        r.push("failback_http_1s", ctx.name(), back);
    }
    r.push(&format!("failback_gap_{sfx}"), ctx.name(), gap);
    ctx.say(&format!(
        "run {run}: crash → node2 {took:.0} ms; failback → node1 {} ms, gap {} ms",
        fmt(back),
        fmt(gap)
    ));
    if back.is_none() {
        bail!("run {run}: node1 never served again after its restart");
    }
    Ok(())
}

/// Planned handover node1 → node2, then back.
pub fn handover(ctx: &mut Ctx, r: &mut BenchReport, run: usize) -> anyhow::Result<()> {
    ctx.ready()?;
    let p = ctx.probe_fine()?;
    let logs = ctx.log_marks();
    let (wall0, t0) = (SystemTime::now(), Instant::now());
    ctx.c.handover(&mut ctx.lab)?;
    let to = answered(&p, "node2", t0, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let first = p.first_answer_from("node2", t0).map(|at| (at, t0, wall0));
    let admin = crate::split::Decision::Admin;
    ctx.split(r, "handover", admin, logs.as_ref(), "node1", first);
    let gap = to.and(max_gap_after(&p.snapshot(), t0).map(ms));
    r.push("handover_http", ctx.name(), to);
    r.push("handover_gap", ctx.name(), gap);
    if to.is_none() {
        bail!("run {run}: node2 never answered after the handover");
    }
    // Let the cluster settle on node2 before handing back.
    std::thread::sleep(Duration::from_secs(1));
    let logs = ctx.log_marks();
    let (wall1, t1) = (SystemTime::now(), Instant::now());
    ctx.c.handback(&mut ctx.lab)?;
    ctx.started.insert("node1".into(), t1);
    let back = answered(&p, "node1", t1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let first = p.first_answer_from("node1", t1).map(|at| (at, t1, wall1));
    ctx.split(r, "handback", admin, logs.as_ref(), "node2", first);
    let rate = p.rate();
    let samples = p.stop();
    push_rate(ctx, r, "handover/handback", rate);
    let back_gap = back.and(max_gap_after(&samples, t1).map(ms));
    r.push("handback_http", ctx.name(), back);
    r.push("handback_gap", ctx.name(), back_gap);
    ctx.say(&format!(
        "run {run}: handover → node2 {} ms, gap {} ms; handback → node1 {} ms, gap {} ms",
        fmt(to),
        fmt(gap),
        fmt(back),
        fmt(back_gap)
    ));
    if back.is_none() {
        bail!("run {run}: node1 never served again after the handback");
    }
    Ok(())
}

/// The web server dies on node1: when does node2 answer? Then repair.
pub fn service(ctx: &mut Ctx, r: &mut BenchReport, run: usize) -> anyhow::Result<()> {
    ctx.ready()?;
    let p = ctx.probe();
    let t0 = Instant::now();
    ctx.c.kill_service(&mut ctx.lab, "node1")?;
    let window = ctx.c.service_window();
    let took = answered(&p, "node2", t0, window);
    let samples = p.stop();
    r.push("service_http", ctx.name(), took);
    // Whoever answers first after the outage began: the peer, or node1 after a restart in place.
    let first_fail = samples
        .iter()
        .find(|s| s.sent >= t0 && s.result.is_err())
        .map(|s| s.sent);
    let again = first_fail.and_then(|f| {
        samples
            .iter()
            .find(|s| s.sent > f && s.result.is_ok())
            .map(|s| ms(s.at.saturating_duration_since(t0)))
    });
    r.push("service_any", ctx.name(), again);
    if took.is_none() && ctx.c.monitors_service() {
        let kept = crate::keep_logs(&ctx.lab);
        let _ = writeln!(
            ctx.out,
            "  [{} {:?}] run {run}: the peer never answered; logs kept in {kept}",
            ctx.c.name(),
            ctx.speed
        );
    }
    if took.is_none() {
        let failed = samples
            .iter()
            .filter(|s| s.sent >= t0 && s.result.is_err())
            .count();
        let sent = samples.iter().filter(|s| s.sent >= t0).count();
        r.note(
            "service_http",
            ctx.name(),
            format!(
                "no answer from the peer within {} s: {failed} of {sent} probes failed",
                window.as_secs()
            ),
        );
    }
    ctx.say(&format!(
        "run {run}: service killed → node2 {} ms",
        fmt(took)
    ));
    ctx.c.restore_service(&mut ctx.lab, "node1")?;
    ctx.wait_serving("node1", RECOVER)
        .context("node1 did not serve again after the repair")?;
    Ok(())
}

/// Idle footprint of both nodes' daemons over `idle`, CPU scaled to 60 s.
pub fn footprint(ctx: &mut Ctx, r: &mut BenchReport, idle: Duration) -> anyhow::Result<()> {
    ctx.ready()?;
    // Past the drills' churn: a few quiet seconds before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let comms = ctx.c.daemon_comms();
    let comm = match comms {
        [one] => (*one).to_owned(),
        _ => format!("{} daemon", comms.join("/")),
    };
    let pids: Vec<(&str, Vec<u32>)> = ["node1", "node2"]
        .into_iter()
        .map(|n| {
            let ns = ctx.lab.node(n).netns();
            (n, procfs::daemon_pids(ns, comms))
        })
        .collect();
    for (n, p) in &pids {
        if p.is_empty() {
            bail!("{n}: no {comm} process to measure");
        }
    }
    let before: Vec<Vec<Option<procfs::ProcSample>>> = pids
        .iter()
        .map(|(_, p)| p.iter().map(|pid| procfs::sample(*pid)).collect())
        .collect();
    std::thread::sleep(idle);
    let tck = procfs::clock_ticks();
    let scale = 60.0 / idle.as_secs_f64();
    let mut passive_cpu = 0.0;
    for ((node, p), b) in pids.iter().zip(&before) {
        let (mut rss, mut pss, mut pss_ok, mut cpu, mut child) = (0u64, 0u64, true, 0f64, 0u64);
        for (pid, b) in p.iter().zip(b) {
            let (Some(b), Some(a)) = (b, procfs::sample(*pid)) else {
                bail!("{node}: {comm} process {pid} went away while idle");
            };
            rss += a.rss_kib;
            match a.pss_kib {
                Some(v) => pss += v,
                None => pss_ok = false,
            }
            cpu += a.cpu_secs_since(b);
            child += a.child_ticks.saturating_sub(b.child_ticks);
        }
        let role = if *node == "node1" {
            "active"
        } else {
            "passive"
        };
        let mib = |k: u64| k as f64 / 1024.0;
        r.push(&format!("idle_rss_{role}"), ctx.name(), Some(mib(rss)));
        r.push(&format!("idle_cpu_{role}"), ctx.name(), Some(cpu * scale));
        if role == "passive" {
            passive_cpu = cpu * scale;
        }
        if role == "active" {
            r.push("idle_pss_active", ctx.name(), pss_ok.then_some(mib(pss)));
            r.push(
                "idle_cpu_children_active",
                ctx.name(),
                Some(child as f64 / tck * scale),
            );
        }
        ctx.say(&format!(
            "{node}: {} {comm} process(es), RSS {:.1} MiB, PSS {}, CPU {:.3} s + children {:.3} s per 60 s",
            p.len(),
            mib(rss),
            if pss_ok { format!("{:.1} MiB", mib(pss)) } else { "n/a".into() },
            cpu * scale,
            child as f64 / tck * scale,
        ));
    }
    let floor = floor(ctx, r, idle)?;
    if floor > 0.0 {
        r.push(
            "idle_cpu_passive_over_floor",
            ctx.name(),
            Some(passive_cpu / floor),
        );
    }
    Ok(())
}

/// The lab's floor over `idle` (see `ha_lab::Floor`), in the lab the footprint was just
/// measured in, with the daemons still idle beside it: what the passive node's figure
/// cannot go below here. Returns the passive node's floor, CPU s per 60 s.
fn floor(ctx: &mut Ctx, r: &mut BenchReport, idle: Duration) -> anyhow::Result<f64> {
    let f = ctx.lab.floor(Duration::from_secs(1))?;
    // Past the first send and the threads' start.
    std::thread::sleep(Duration::from_millis(1500));
    let before: Vec<Option<u64>> = (0..2).map(|i| f.cpu_ns(i)).collect();
    std::thread::sleep(idle);
    let per60 = |i: usize| -> Option<f64> {
        let (b, a) = (before.get(i).copied().flatten()?, f.cpu_ns(i)?);
        Some(a.saturating_sub(b) as f64 / 1e9 * 60.0 / idle.as_secs_f64())
    };
    let (active, passive) = (per60(0), per60(1));
    let got = [f.received(0), f.received(1)];
    f.stop();
    // One datagram a second from the peer, or the figure is not the floor of anything.
    let expected = idle.as_secs() / 2;
    if got.iter().any(|&g| g < expected) {
        bail!("the floor's receivers got {got:?} datagrams in {idle:?}: the lab lost them");
    }
    let Some(passive) = passive else {
        bail!("the floor's threads could not be measured");
    };
    r.push("idle_cpu_floor", ctx.name(), Some(passive));
    ctx.say(&format!(
        "the lab's floor (bare threads, one broadcast a second each way): {:.3} s per 60 s in node2's namespace, {} in node1's",
        passive,
        active.map_or("n/a".into(), |a| format!("{a:.3} s")),
    ));
    Ok(passive)
}

/// What a stability window saw.
#[derive(Debug, Clone, Copy)]
pub struct Stability {
    /// Takeovers (or lost memberships) logged.
    pub events: usize,
    /// Probes not answered by node1.
    pub missed: usize,
    /// Probes sent.
    pub probes: usize,
}

impl Stability {
    /// A healthy owner kept the service through the window.
    pub fn stable(&self) -> bool {
        self.events == 0 && self.missed == 0
    }
}

/// Runs the cluster for `dur` with every CPU busy and counts takeovers
/// nobody asked for (log lines) and probes node1 did not answer.
pub fn stability(ctx: &mut Ctx, r: &mut BenchReport, dur: Duration) -> anyhow::Result<()> {
    let s = watch_stability(ctx, dur)?;
    r.push("stability_fast", ctx.name(), Some(s.events as f64));
    r.push("stability_probes_fast", ctx.name(), Some(s.missed as f64));
    Ok(())
}

/// The stability window itself, reported to `ctx.out` only.
pub fn watch_stability(ctx: &mut Ctx, dur: Duration) -> anyhow::Result<Stability> {
    ctx.ready()?;
    let logs = ctx.c.takeover_logs(&ctx.lab);
    let offsets = crate::log_ends(&logs);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let p = ctx
        .lab
        .probe(ctx.lab.vip(0), ctx.port, Duration::from_millis(50));
    let load = Load::start(cpus)?;
    std::thread::sleep(dur);
    let burnt = load.cpu_secs();
    drop(load);
    let samples = p.stop();
    let events: usize = logs
        .iter()
        .zip(offsets)
        .map(|((path, pat), off)| crate::count_in_log(path, pat, off).unwrap_or(0))
        .sum();
    let missed = samples.iter().filter(|s| s.body() != Some("node1")).count();
    ctx.say(&format!(
        "{} s under {cpus} busy loops ({burnt:.1} CPU s burnt): {events} takeover(s) logged, {missed} of {} probes not answered by node1",
        dur.as_secs(),
        samples.len()
    ));
    Ok(Stability {
        events,
        missed,
        probes: samples.len(),
    })
}

fn suffix(speed: Speed) -> &'static str {
    match speed {
        Speed::Slow => "1s",
        Speed::Fast => "fast",
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "never".to_owned(), |v| format!("{v:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let max = Duration::from_millis(1000);
        let v: Vec<Duration> = (0..50).map(|_| jitter(max)).collect();
        assert!(v.iter().all(|d| *d < max));
        assert!(v.iter().any(|d| *d != v[0]));
    }
}
