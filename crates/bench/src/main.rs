//! `ha-bench`: had against Heartbeat 3.0.6, Keepalived and Pacemaker in the same lab run
//! (`just bench`); the table goes to stdout, progress to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ha_bench::{self as bench, BenchOptions};
use ha_lab::find_bin;

/// Failover, handover and idle footprint of had vs Heartbeat 3.0.6, Keepalived 2.2.7 and
/// Pacemaker 2.1 + Corosync 3.1 (root).
#[derive(Parser)]
#[command(name = "ha-bench")]
struct BenchArgs {
    /// The had binary (default: found next to ha-bench or in $HA_BIN_DIR; use a release build).
    #[arg(long)]
    had: Option<PathBuf>,
    /// The hactl binary (default: found like had).
    #[arg(long)]
    hactl: Option<PathBuf>,
    /// Runs per drill.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Smoke test (< 3 min): one run of the cheap rows, 10 s idle and stability windows,
    /// Pacemaker only if named in --only, Heartbeat crash and handover only.
    #[arg(long)]
    quick: bool,
    /// The stress window (stress-ng on both nodes at each contender's fastest settings) lasts
    /// 10 minutes instead of 2, and a scale shape's idle window 60 s instead of 20 (in 3
    /// labs at 1 and 1,000 addresses).
    #[arg(long)]
    long: bool,
    /// The stress window, seconds (default 120, 600 with --long; --quick leaves it out
    /// unless this is given).
    #[arg(long)]
    stress_secs: Option<u64>,
    /// Contenders to run, comma-separated (had, heartbeat, keepalived, pacemaker); default
    /// all (--quick: all but pacemaker).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Drills to run, comma-separated (crash, handover, service, footprint, stability,
    /// token = Pacemaker's token search, scale, monitors, stress = the stress-ng window); default all (--quick: not
    /// scale and monitors unless named here).
    #[arg(long, value_delimiter = ',')]
    drills: Vec<String>,
    /// Timer settings to run, comma-separated (slow = 1 s timers, fast); default both.
    #[arg(long, value_delimiter = ',')]
    speed: Vec<String>,
    /// Pacemaker's corosync token at fast timers (e.g. 500ms); default: the fastest stable
    /// one, searched for first.
    #[arg(long)]
    pacemaker_token: Option<String>,
    /// Scale shapes, comma-separated (1, 10, 100, 1000 addresses in one group; 50x2 = 50
    /// groups of 2); default all, none with --quick.
    #[arg(long, value_delimiter = ',')]
    scale: Option<Vec<String>>,
    /// How long a scale shape may take to come up or fail over, seconds (default 120).
    #[arg(long)]
    scale_timeout_secs: Option<u64>,
    /// Idle window of a scale shape's footprint, seconds (default 20, 60 with --long, 5 with
    /// --quick); the shapes between 1 and 1,000 addresses idle 20 s at most.
    #[arg(long)]
    scale_idle_secs: Option<u64>,
    /// Labs whose idle footprint is taken at 1 and 1,000 addresses (the flatness rows show
    /// min / median / max over them): default 1, 3 with --long.
    #[arg(long)]
    scale_idle_labs: Option<usize>,
    /// Idle window for RSS/CPU, seconds (CPU is reported per 60 s).
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Stability window under full CPU load at fast timers, seconds.
    #[arg(long)]
    stability_secs: Option<u64>,
    /// Window per token of Pacemaker's token search, seconds (default 60, 5 with --quick).
    #[arg(long)]
    token_secs: Option<u64>,
    /// had's keepalive at fast timers (e.g. 50ms).
    #[arg(long, default_value = "50ms")]
    had_fast_keepalive: String,
    /// Run had with `realtime off` (no SCHED_RR, no locked memory) outside the stress
    /// window, e.g. to compare its footprint.
    #[arg(long)]
    had_realtime_off: bool,
    /// had's deadtime at fast timers (e.g. 200ms).
    #[arg(long, default_value = "200ms")]
    had_fast_deadtime: String,
    /// keepalived's advert_int at fast timers (default 100ms; VRRPv3 counts in
    /// centiseconds, so 10ms is its floor). The stress window tries 20ms and 10ms anyway.
    #[arg(long, default_value = "100ms")]
    keepalived_fast_advert: String,
    /// Write latest.md and latest.json here (quick.md/.json with --quick), e.g. docs/bench.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Print the JSON report instead of the Markdown table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    match run(BenchArgs::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ha-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(p) = &a.had
        && p.file_name().is_none_or(|n| n != "had")
    {
        // The footprint rows find the daemon and its guard by process name: a copy named
        // otherwise would be left out of them without a word.
        anyhow::bail!(
            "--had {}: the binary must be named `had` (copy it into a directory of its own)",
            p.display()
        );
    }
    let mut opts = BenchOptions {
        had: a.had.map_or_else(|| find_bin("had"), Ok)?,
        hactl: a.hactl.map_or_else(|| find_bin("hactl"), Ok)?,
        runs: a.runs,
        drills: a.drills,
        speeds: a
            .speed
            .iter()
            .map(|s| match s.as_str() {
                "slow" => Ok(bench::Speed::Slow),
                "fast" => Ok(bench::Speed::Fast),
                other => anyhow::bail!("unknown --speed {other:?}: slow or fast"),
            })
            .collect::<anyhow::Result<_>>()?,
        pacemaker_token: a
            .pacemaker_token
            .as_deref()
            .map(bench::parse_duration)
            .transpose()?,
        had_fast_keepalive: bench::parse_duration(&a.had_fast_keepalive)?,
        had_fast_deadtime: bench::parse_duration(&a.had_fast_deadtime)?,
        had_realtime: !a.had_realtime_off,
        keepalived_fast_advert: bench::parse_duration(&a.keepalived_fast_advert)?,
        ..Default::default()
    };
    if opts.keepalived_fast_advert < std::time::Duration::from_millis(10) {
        anyhow::bail!(
            "--keepalived-fast-advert {}: keepalived's advert_int counts in centiseconds; \
             use 10ms or more",
            a.keepalived_fast_advert
        );
    }
    if a.quick {
        opts = opts.quick();
    }
    if let Some(only) = a.only {
        opts.only = only;
    }
    if let Some(s) = a.idle_secs {
        opts.idle = Duration::from_secs(s.max(1));
    }
    if let Some(s) = a.stability_secs {
        opts.stability = Duration::from_secs(s.max(1));
    }
    if let Some(s) = a.token_secs {
        opts.token_window = Duration::from_secs(s.max(1));
    }
    if let Some(s) = a.scale {
        opts.scale_shapes = s;
    } else if a.quick && opts.drills.iter().any(|d| d == "scale") {
        opts.scale_shapes = vec!["10".into()];
    }
    if opts.drills.iter().any(|d| d == "monitors") {
        opts.monitors = true;
    }
    if let Some(s) = a.scale_timeout_secs {
        opts.scale_timeout = Duration::from_secs(s.max(1));
    }
    if a.long {
        opts.stress = Some(bench::stress::LONG_WINDOW);
        // The flatness rows (1 → 1,000 addresses) compare idle figures of a few ms per
        // 60 s: a 20 s window is too short to tell 10 % from noise.
        opts.scale_idle = bench::SCALE_LONG_IDLE;
        opts.scale_idle_labs = 3;
    }
    if let Some(n) = a.scale_idle_labs {
        opts.scale_idle_labs = n.max(1);
    }
    if let Some(s) = a.scale_idle_secs {
        opts.scale_idle = Duration::from_secs(s.max(1));
    }
    if let Some(s) = a.stress_secs {
        opts.stress = Some(Duration::from_secs(s.max(1)));
    }
    eprintln!("ha-bench: had = {}", opts.had.display());
    let started = std::time::Instant::now();
    let report = bench::run(&opts, &mut std::io::stderr())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.markdown());
    }
    if let Some(dir) = a.out_dir {
        // A smoke test must not overwrite the results of a full run.
        let (stem, title) = if a.quick {
            ("quick", "ha-bench --quick: smoke-test results (1 run)")
        } else {
            ("latest", "ha-bench: latest results")
        };
        let md = bench::write_results(&report, &dir, stem, title)?;
        eprintln!("wrote {} (and .json)", md.display());
    }
    let wall = started.elapsed().as_secs();
    eprintln!("ha-bench: wall time {} min {:02} s", wall / 60, wall % 60);
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
