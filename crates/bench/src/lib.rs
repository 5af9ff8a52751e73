//! ha-bench (`just bench`): failover time, handover gap and idle footprint of had,
//! side by side with Debian's Heartbeat 3.0.6, Keepalived 2.2.7 and Pacemaker
//! 2.1 + Corosync 3.1, in the
//! same run and the same lab shape (two nodes and a client on one bridge, a
//! VIP, a busybox web server answering the node name), reported as
//! min / median / max with had's ratios (design.md §7).
//!
//! Every contender gets a fresh lab per timer setting: at 1 s timers it goes
//! through crash + failback, planned handover + handback, service death and
//! the idle footprint; at its fast timers through crash + failback and a
//! stability window with every CPU busy. Pacemaker's fast setting is found
//! first: the fastest corosync token whose healthy owner keeps the service
//! through a stability window. Last, the scale shapes (scale.rs): many
//! addresses in one group, and 50 groups of 2.

mod contenders;
mod drills;
mod pacemaker;
mod procfs;
pub mod report;
mod scale;
mod split;
pub mod stress;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use ha_lab::{Lab, LabOptions};

pub use contenders::Speed;
use contenders::{Contender, Had, Heartbeat, Keepalive};
use drills::Ctx;
use pacemaker::Pacemaker;
pub use report::BenchReport;

/// The drills `--drills` can pick, in run order (`token`: Pacemaker's token search;
/// `scale`: the shapes of scale.rs; `monitors`: 0 vs 100 checks every 1 s;
/// `stress`: the stress-ng window).
pub const DRILLS: [&str; 9] = [
    "crash",
    "handover",
    "service",
    "footprint",
    "stability",
    "token",
    "scale",
    "monitors",
    "stress",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The had binary (use a release build).
    pub had: PathBuf,
    /// The hactl binary.
    pub hactl: PathBuf,
    /// Runs per drill.
    pub runs: usize,
    /// Runs of the service-death drill for Heartbeat (it never reacts; one proves it).
    pub heartbeat_service_runs: usize,
    /// Idle window of the footprint (CPU is scaled to 60 s).
    pub idle: Duration,
    /// Length of the stability window under load.
    pub stability: Duration,
    /// Window per token tried by Pacemaker's token search (same load as `stability`).
    pub token_window: Duration,
    /// The stress-ng window at each contender's fastest settings (stress.rs); None: not run.
    pub stress: Option<Duration>,
    /// Contenders to run, by name (had, heartbeat, keepalived, pacemaker).
    pub only: Vec<String>,
    /// Drills to run, by name (see [`DRILLS`]); empty = all.
    pub drills: Vec<String>,
    /// Timer settings to run; empty = both.
    pub speeds: Vec<Speed>,
    /// Pacemaker's token at fast timers; None = search for the fastest stable one.
    pub pacemaker_token: Option<Duration>,
    /// Scale shapes to run (keys: 1, 10, 100, 1000, 50x2); empty = none.
    pub scale_shapes: Vec<String>,
    /// How long a scale shape may take to come up or to fail over.
    pub scale_timeout: Duration,
    /// Idle window of a scale shape's footprint (and of the monitors comparison).
    pub scale_idle: Duration,
    /// Labs whose idle footprint is taken at the flatness rows' two ends (1 and 1,000
    /// addresses): 1 by default, 3 with `--long`.
    pub scale_idle_labs: usize,
    /// Run the monitors comparison (0 vs 100 checks every 1 s).
    pub monitors: bool,
    /// had's fast keepalive.
    pub had_fast_keepalive: Duration,
    /// had's fast deadtime.
    pub had_fast_deadtime: Duration,
    /// had's web monitor interval.
    pub had_monitor_interval: Duration,
    /// ha.cf's `realtime` for had outside the stress window (which measures both).
    pub had_realtime: bool,
    /// keepalived's advert_int at fast timers (the stress window tries its own two).
    pub keepalived_fast_advert: Duration,
    /// Web port.
    pub port: u16,
    /// The `--quick` smoke test: cheap rows only (see [`BenchOptions::quick`]).
    pub quick: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            had: PathBuf::from("had"),
            hactl: PathBuf::from("hactl"),
            runs: 5,
            heartbeat_service_runs: 1,
            idle: Duration::from_secs(60),
            stability: Duration::from_secs(60),
            token_window: Duration::from_secs(60),
            stress: Some(stress::DEFAULT_WINDOW),
            only: report::CONTENDERS.iter().map(|s| (*s).to_owned()).collect(),
            drills: Vec::new(),
            speeds: Vec::new(),
            pacemaker_token: None,
            scale_shapes: scale::SHAPES.iter().map(|s| s.key.to_owned()).collect(),
            scale_timeout: Duration::from_secs(120),
            scale_idle: Duration::from_secs(20),
            scale_idle_labs: 1,
            monitors: true,
            had_fast_keepalive: Duration::from_millis(50),
            had_fast_deadtime: Duration::from_millis(200),
            had_monitor_interval: Duration::from_secs(1),
            had_realtime: true,
            keepalived_fast_advert: contenders::KEEPALIVED_FAST_ADVERT,
            port: 80,
            quick: false,
        }
    }
}

impl BenchOptions {
    /// The `--quick` smoke test, under 3 minutes: one run of the cheap rows with short
    /// windows. Pacemaker is left out unless named (`--only pacemaker`: its labs take
    /// tens of seconds each to settle), Heartbeat runs crash and handover at 1 s timers only
    /// (its start, 8 s warm-up and 20 s service window are most of a run), and scale,
    /// monitors and the stress window only when asked for.
    pub fn quick(mut self) -> Self {
        self.quick = true;
        self.runs = 1;
        self.idle = Duration::from_secs(10);
        self.stability = Duration::from_secs(10);
        // Up to three labs in a row: short, so that --quick stays a few minutes.
        self.token_window = Duration::from_secs(5);
        self.only.retain(|c| c != "pacemaker");
        // A lab per shape and contender: only when asked for (`--scale 10`).
        self.scale_shapes.clear();
        self.scale_idle = Duration::from_secs(5);
        self.monitors = false;
        // Two labs per contender for minutes each: --quick leaves it out (--stress-secs runs it).
        self.stress = None;
        self
    }

    /// Is `drill` (one of [`DRILLS`]) to run?
    pub fn runs_drill(&self, drill: &str) -> bool {
        self.drills.is_empty() || self.drills.iter().any(|d| d == drill)
    }

    /// Are the phases at `speed` to run?
    pub fn runs_speed(&self, speed: Speed) -> bool {
        self.speeds.is_empty() || self.speeds.contains(&speed)
    }
}

/// Parses `50ms`, `1s`, `2` (seconds) or `0.5` (seconds).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("ms") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("bad duration {s:?} (write 50ms, 1s or 0.5)"))?;
    if !v.is_finite() || v < 0.0 {
        bail!("bad duration {s:?}");
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// A scale shape's idle window with `--long` (the default is [`BenchOptions::scale_idle`]).
pub const SCALE_LONG_IDLE: Duration = Duration::from_secs(60);

/// Runs the benchmark, narrating to `out`; labs are torn down as it goes.
pub fn run(opts: &BenchOptions, out: &mut dyn Write) -> anyhow::Result<BenchReport> {
    for c in &opts.only {
        if !report::CONTENDERS.contains(&c.as_str()) {
            bail!(
                "unknown contender {c:?}: choose from {}",
                report::CONTENDERS.join(", ")
            );
        }
    }
    for d in &opts.drills {
        if !DRILLS.contains(&d.as_str()) {
            bail!("unknown drill {d:?}: choose from {}", DRILLS.join(", "));
        }
    }
    for s in &opts.scale_shapes {
        if !scale::SHAPES.iter().any(|k| k.key == s) {
            bail!("unknown scale shape {s:?}: choose from 1, 10, 100, 1000, 50x2");
        }
    }
    if opts
        .pacemaker_token
        .is_some_and(|t| t < Duration::from_millis(10))
    {
        bail!("--pacemaker-token must be at least 10ms");
    }
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let started = Instant::now();
    let mut r = BenchReport {
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        runs: opts.runs,
        host: host_facts(),
        ..Default::default()
    };
    for name in report::CONTENDERS {
        if !opts.only.iter().any(|o| o == name) {
            continue;
        }
        let mut c: Box<dyn Contender> = match name {
            "had" => Box::new(Had {
                had: opts.had.clone(),
                hactl: opts.hactl.clone(),
                port: opts.port,
                fast_keepalive: opts.had_fast_keepalive,
                fast_deadtime: opts.had_fast_deadtime,
                monitor_interval: opts.had_monitor_interval,
                realtime: opts.had_realtime,
            }),
            "heartbeat" => Box::new(Heartbeat { port: opts.port }),
            "keepalived" => Box::new(Keepalive::with_fast_advert(
                opts.port,
                opts.keepalived_fast_advert,
            )),
            _ => Box::new(pacemaker_contender(opts, &mut r, out)),
        };
        for speed in [Speed::Slow, Speed::Fast] {
            if !opts.runs_speed(speed) || plan(c.name(), speed, opts).is_empty() {
                continue;
            }
            let label = c.timers(speed).label;
            r.settings
                .entry(c.name().to_owned())
                .or_default()
                .push(format!("{speed:?}: {label}"));
            if let Err(e) = phase(c.as_mut(), speed, opts, &mut r, out) {
                let msg = format!("{} {speed:?}: {e:#}", c.name());
                let _ = writeln!(out, "  ERROR {msg}");
                r.errors.push(msg);
            }
        }
        if opts.runs_drill("scale") {
            scale::run(c.as_mut(), &opts.scale_shapes, opts, &mut r, out);
        }
        if opts.monitors && opts.runs_drill("monitors") {
            scale::monitors(c.as_mut(), opts, &mut r, out);
        }
        if let Some(window) = opts.stress
            && opts.runs_drill("stress")
        {
            stress::phases(c.as_mut(), window, opts.port, &mut r, out);
        }
    }
    if opts.stress.is_none() && opts.runs_drill("stress") {
        r.host.insert(
            "stress window".into(),
            "not run (--quick leaves it out; --stress-secs N runs it)".into(),
        );
    }
    r.duration_secs = started.elapsed().as_secs();
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        r.host.insert(
            "load average at end".into(),
            l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        );
    }
    r.finish();
    Ok(r)
}

/// One contender at one speed, in its own lab.
fn phase(
    c: &mut dyn Contender,
    speed: Speed,
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let lab = Lab::new(LabOptions::default())?;
    r.labs.push(lab.id().to_owned());
    writeln!(
        out,
        "{} at {speed:?} timers ({}): lab {}",
        c.name(),
        c.timers(speed).label,
        lab.id()
    )?;
    let mut ctx = Ctx {
        lab,
        c,
        speed,
        port: opts.port,
        started: HashMap::new(),
        out,
    };
    let result = drive(&mut ctx, speed, opts, r);
    let Ctx { lab, .. } = ctx;
    let id = lab.id().to_owned();
    let down = lab.shutdown();
    result?;
    down.with_context(|| format!("tearing down lab {id}"))
}

fn drive(
    ctx: &mut Ctx,
    speed: Speed,
    opts: &BenchOptions,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let up = ctx.start()?;
    let _ = writeln!(
        ctx.out,
        "  cluster up, node1 serving after {} ms",
        up.as_millis()
    );
    let mut failed = Vec::new();
    for (drill, runs) in plan(ctx.c.name(), speed, opts) {
        let mut in_a_row = 0;
        for i in 1..=runs {
            let res = match drill {
                Drill::Crash => drills::crash(ctx, r, i),
                Drill::Handover => drills::handover(ctx, r, i),
                Drill::Service => drills::service(ctx, r, i),
                Drill::Footprint => drills::footprint(ctx, r, opts.idle),
                Drill::Stability => drills::stability(ctx, r, opts.stability),
            };
            match res {
                Ok(()) => in_a_row = 0,
                Err(e) => {
                    // A failed run is a result (recorded as "never"), not the end of the phase:
                    // keep the logs, restart the cluster from scratch and go on; give the drill
                    // up after two failures in a row.
                    let kept = keep_logs(&ctx.lab);
                    let msg = format!("{drill:?} {e:#} (logs: {kept})");
                    let _ = writeln!(ctx.out, "  ERROR {} {speed:?}: {msg}", ctx.c.name());
                    failed.push(msg);
                    drills::restart_cluster(ctx)
                        .context("restarting the cluster after a failure")?;
                    in_a_row += 1;
                    if in_a_row >= 2 {
                        break;
                    }
                }
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("{}", failed.join("; "))
    }
}

/// The drills of `contender`'s phase at `speed` and their runs, as `opts` filter them.
fn plan(contender: &str, speed: Speed, opts: &BenchOptions) -> Vec<(Drill, usize)> {
    let service_runs = if contender == "heartbeat" {
        opts.heartbeat_service_runs.clamp(1, opts.runs)
    } else {
        opts.runs
    };
    let all = match speed {
        // --quick: Heartbeat's cheap rows only, unless the drills are named.
        Speed::Slow if opts.quick && contender == "heartbeat" && opts.drills.is_empty() => {
            vec![(Drill::Crash, opts.runs), (Drill::Handover, opts.runs)]
        }
        Speed::Fast if opts.quick && contender == "heartbeat" && opts.drills.is_empty() => {
            Vec::new()
        }
        Speed::Slow => vec![
            (Drill::Crash, opts.runs),
            (Drill::Handover, opts.runs),
            (Drill::Service, service_runs),
            (Drill::Footprint, 1),
        ],
        Speed::Fast => vec![(Drill::Crash, opts.runs), (Drill::Stability, 1)],
    };
    all.into_iter()
        .filter(|(d, _)| opts.runs_drill(d.name()))
        .collect()
}

/// The Pacemaker contender at its fast token: `--pacemaker-token`, else the fastest
/// stable one found by [`token_search`] (when the fast phase and the search are to run).
fn pacemaker_contender(opts: &BenchOptions, r: &mut BenchReport, out: &mut dyn Write) -> Pacemaker {
    let mut p = Pacemaker::new(opts.port, pacemaker::DEFAULT_TOKEN_MS);
    if let Some(t) = opts.pacemaker_token {
        p.fast_token_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
    } else if opts.runs_speed(Speed::Fast) && opts.runs_drill("token") {
        match token_search(&mut p, opts, r, out) {
            Ok(Some(t)) => p.fast_token_ms = t,
            Ok(None) => {
                let msg = format!(
                    "pacemaker token search: no token up to {} ms was stable; fast timers use the default {} ms",
                    pacemaker::TOKEN_CANDIDATES_MS[pacemaker::TOKEN_CANDIDATES_MS.len() - 1],
                    pacemaker::DEFAULT_TOKEN_MS
                );
                let _ = writeln!(out, "  {msg}");
                r.errors.push(msg);
            }
            Err(e) => {
                let msg = format!("pacemaker token search: {e:#}");
                let _ = writeln!(out, "  ERROR {msg}");
                r.errors.push(msg);
            }
        }
    }
    p
}

/// Tries corosync tokens fastest first, each in a fresh lab, through one stability window
/// under full CPU load; the first whose healthy owner keeps the service (no lost
/// membership, every probe answered by node1) is the fastest stable token.
fn token_search(
    p: &mut Pacemaker,
    opts: &BenchOptions,
    r: &mut BenchReport,
    out: &mut dyn Write,
) -> anyhow::Result<Option<u64>> {
    let mut tried = Vec::new();
    let mut found = None;
    for token in pacemaker::TOKEN_CANDIDATES_MS {
        p.fast_token_ms = token;
        let lab = Lab::new(LabOptions::default())?;
        r.labs.push(lab.id().to_owned());
        writeln!(
            out,
            "pacemaker token search: token {token} ms, {} s window: lab {}",
            opts.token_window.as_secs(),
            lab.id()
        )?;
        let mut ctx = Ctx {
            lab,
            c: p,
            speed: Speed::Fast,
            port: opts.port,
            started: HashMap::new(),
            out: &mut *out,
        };
        let res = ctx
            .start()
            .and_then(|_| drills::watch_stability(&mut ctx, opts.token_window));
        if !res.as_ref().is_ok_and(|s| s.stable()) {
            let kept = keep_logs(&ctx.lab);
            let _ = writeln!(ctx.out, "  token {token} ms not stable (logs: {kept})");
        }
        let Ctx { lab, .. } = ctx;
        let id = lab.id().to_owned();
        let down = lab.shutdown();
        match res {
            Ok(s) if s.stable() => {
                tried.push(format!(
                    "{token} ms stable ({} probes all answered by node1)",
                    s.probes
                ));
                found = Some(token);
            }
            Ok(s) => tried.push(format!(
                "{token} ms: {} lost membership(s), {} of {} probes not answered by node1",
                s.events, s.missed, s.probes
            )),
            // The first line says what failed; the log tails are in the kept logs.
            Err(e) => tried.push(format!(
                "{token} ms: {}",
                format!("{e:#}").lines().next().unwrap_or_default()
            )),
        }
        down.with_context(|| format!("tearing down lab {id}"))?;
        if found.is_some() {
            break;
        }
    }
    r.push("fastest_stable_token", "pacemaker", found.map(|t| t as f64));
    r.note(
        "fastest_stable_token",
        "pacemaker",
        format!(
            "{} s windows under full CPU load: {}",
            opts.token_window.as_secs(),
            tried.join("; ")
        ),
    );
    Ok(found)
}

/// The drills of a phase.
#[derive(Debug, Clone, Copy)]
enum Drill {
    Crash,
    Handover,
    Service,
    Footprint,
    Stability,
}

impl Drill {
    /// Its name in [`DRILLS`].
    fn name(self) -> &'static str {
        match self {
            Drill::Crash => "crash",
            Drill::Handover => "handover",
            Drill::Service => "service",
            Drill::Footprint => "footprint",
            Drill::Stability => "stability",
        }
    }
}

/// Copies the lab's scratch dir (configs and logs) to /tmp/ha-bench-logs/<id>-<n>; where.
/// Each log's length now: where [`count_in_log`] starts counting after a window.
pub(crate) fn log_ends(logs: &[(PathBuf, &str)]) -> Vec<u64> {
    logs.iter()
        .map(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect()
}

/// Occurrences of `pat` in the log at `path` after its first `from` bytes.
pub(crate) fn count_in_log(path: &Path, pat: &str, from: u64) -> std::io::Result<usize> {
    Ok(count_after(&std::fs::read(path)?, pat, from))
}

/// In one read of the log at `path`: the occurrences of `pat` after byte `from` (as
/// [`count_in_log`]) and the first `max` lines holding it, each cut to 160 characters and led
/// by the name of the log's directory (the lab node's).
pub(crate) fn hits_in_log(
    path: &Path,
    pat: &str,
    from: u64,
    max: usize,
) -> std::io::Result<(usize, Vec<String>)> {
    let text = std::fs::read(path)?;
    let node = path
        .parent()
        .and_then(Path::file_name)
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let lines = lines_after(&text, pat, from, max)
        .into_iter()
        .map(|l| format!("{node}: {l}"))
        .collect();
    Ok((count_after(&text, pat, from), lines))
}

/// `text` after its first `from` bytes, as text (logs may hold any bytes).
fn text_after(text: &[u8], from: u64) -> std::borrow::Cow<'_, str> {
    let tail = usize::try_from(from)
        .ok()
        .and_then(|f| text.get(f..))
        .unwrap_or_default();
    String::from_utf8_lossy(tail)
}

fn lines_after(text: &[u8], pat: &str, from: u64, max: usize) -> Vec<String> {
    text_after(text, from)
        .lines()
        .filter(|l| l.contains(pat))
        .take(max)
        .map(|l| l.trim().chars().take(160).collect())
        .collect()
}

/// Occurrences of `pat` in `text` after its first `from` bytes.
fn count_after(text: &[u8], pat: &str, from: u64) -> usize {
    text_after(text, from).matches(pat).count()
}

pub(crate) fn keep_logs(lab: &Lab) -> String {
    let base = Path::new("/tmp/ha-bench-logs");
    let _ = std::fs::create_dir_all(base);
    let mut n = 1;
    let dest = loop {
        let d = base.join(format!("{}-{n}", lab.id()));
        if !d.exists() {
            break d;
        }
        n += 1;
    };
    match std::process::Command::new("cp")
        .arg("-a")
        .arg(lab.dir())
        .arg(&dest)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => dest.display().to_string(),
        Ok(o) => format!(
            "not kept: cp failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("not kept: {e}"),
    }
}

/// CPUs, kernel and load average at the start: the noise floor of the numbers.
fn host_facts() -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    m.insert("CPUs".into(), cpus.to_string());
    if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        m.insert("kernel".into(), k.trim().to_owned());
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        m.insert(
            "load average at start".into(),
            l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        );
    }
    for (name, cmd) in [
        ("keepalived", &["keepalived", "--version"][..]),
        (
            "heartbeat package",
            &["dpkg-query", "-W", "-f", "${Version}", "heartbeat"][..],
        ),
        (
            "pacemaker package",
            &["dpkg-query", "-W", "-f", "${Version}", "pacemaker"][..],
        ),
        (
            "corosync package",
            &["dpkg-query", "-W", "-f", "${Version}", "corosync"][..],
        ),
    ] {
        if let Ok(o) = std::process::Command::new(cmd[0]).args(&cmd[1..]).output() {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if let Some(line) = text.lines().next().filter(|l| !l.is_empty()) {
                m.insert(name.into(), line.trim().to_owned());
            }
        }
    }
    m
}

/// Writes `<stem>.md` and `<stem>.json` into `dir`; returns the Markdown path.
pub fn write_results(
    r: &BenchReport,
    dir: &Path,
    stem: &str,
    title: &str,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let md_path = dir.join(format!("{stem}.md"));
    let md = format!("# {title}\n\n{}", r.markdown());
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = dir.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(r).context("serialising the report")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    Ok(md_path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_after_an_offset() {
        let log = b"a is dead\nb is dead\nc fine\nd is dead\n\xff is dead\n";
        // From the second line on, at most two.
        assert_eq!(
            lines_after(log, "is dead", 10, 2),
            vec!["b is dead", "d is dead"]
        );
        assert_eq!(count_after(log, "is dead", 10), 3);
        assert_eq!(lines_after(log, "is dead", 10, 5).len(), 3);
        assert!(lines_after(log, "is dead", 999, 5).is_empty());
        let long = format!("{} is dead", "x".repeat(300));
        assert_eq!(
            lines_after(long.as_bytes(), "dead", 0, 1)[0]
                .chars()
                .count(),
            160
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("0.25").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn options_are_checked_before_any_lab() {
        let mut o = BenchOptions {
            only: vec!["ucarp".into()],
            ..Default::default()
        };
        let mut sink = Vec::new();
        assert!(run(&o, &mut sink).is_err());
        o.only = vec!["had".into()];
        o.drills = vec!["nap".into()];
        assert!(run(&o, &mut sink).is_err());
        o.drills = vec!["crash".into()];
        o.pacemaker_token = Some(Duration::from_millis(1));
        assert!(run(&o, &mut sink).is_err());
        o.pacemaker_token = None;
        o.runs = 0;
        assert!(run(&o, &mut sink).is_err());
        let q = BenchOptions::default().quick();
        assert_eq!(q.runs, 1);
        assert!(q.runs_drill("token") && q.runs_speed(Speed::Fast));
    }

    #[test]
    fn filters_shape_the_plan() {
        let mut o = BenchOptions::default();
        assert_eq!(plan("had", Speed::Slow, &o).len(), 4);
        assert_eq!(plan("heartbeat", Speed::Slow, &o)[2].1, 1);
        o.drills = vec!["crash".into(), "footprint".into()];
        let slow: Vec<&str> = plan("pacemaker", Speed::Slow, &o)
            .iter()
            .map(|(d, _)| d.name())
            .collect();
        assert_eq!(slow, ["crash", "footprint"]);
        o.drills = vec!["token".into()];
        assert!(plan("pacemaker", Speed::Fast, &o).is_empty());
        o.speeds = vec![Speed::Slow];
        assert!(!o.runs_speed(Speed::Fast));
    }

    #[test]
    fn quick_keeps_the_cheap_rows() {
        let q = BenchOptions::default().quick();
        assert_eq!(q.only, ["had", "heartbeat", "keepalived"]);
        assert!(q.stress.is_none() && q.scale_shapes.is_empty() && !q.monitors);
        let names = |c, s| -> Vec<&str> { plan(c, s, &q).iter().map(|(d, _)| d.name()).collect() };
        assert_eq!(names("heartbeat", Speed::Slow), ["crash", "handover"]);
        assert!(names("heartbeat", Speed::Fast).is_empty());
        assert_eq!(names("had", Speed::Slow).len(), 4);
        assert_eq!(names("keepalived", Speed::Fast), ["crash", "stability"]);
        // Named drills are run as asked, even Heartbeat's expensive ones.
        let mut q = q;
        q.drills = vec!["service".into()];
        assert_eq!(plan("heartbeat", Speed::Slow, &q).len(), 1);
    }
}
