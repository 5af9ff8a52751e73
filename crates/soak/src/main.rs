//! `ha-soak N [--seed S] [--timers KEEPALIVE/DEADTIME] [--mixed] [--out DIR]`: the lab chaos
//! soak (root). Exit 0 with zero violations, 1 with violations, 2 when it could not run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::Parser;
use ha_soak::{Options, Timers, plan, run};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The lab chaos soak: N random faults against a two-node cluster, audited after each.
#[derive(Parser, Debug)]
#[command(name = "ha-soak", version)]
struct Args {
    /// How many faults.
    faults: usize,
    /// Seed of the schedule (default: from the clock; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// ha.cf keepalive/deadtime.
    #[arg(long, default_value = "1s/5s")]
    timers: String,
    /// node2 runs Heartbeat 3.0.6 (Debian's package) instead of had.
    #[arg(long)]
    mixed: bool,
    /// Where the report goes.
    #[arg(long, default_value = "docs/soak")]
    out: PathBuf,
    /// Only these fault kinds (comma-separated); all by default.
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// No line per fault.
    #[arg(long)]
    quiet: bool,
}

extern "C" fn on_signal(_: nix::libc::c_int) {
    ha_soak::run::STOP.store(true, Ordering::Relaxed);
}

fn main() -> ExitCode {
    let args = Args::parse();
    let timers = match Timers::parse(&args.timers) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ha-soak: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = plan::check_kinds(&args.kinds) {
        eprintln!("ha-soak: --kinds: {e}");
        return ExitCode::from(2);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(1)
    });
    eprintln!("[soak] seed {seed} (replay with --seed {seed})");
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            eprintln!("ha-soak: cannot handle {sig}: {e}");
        }
    }
    let opts = Options {
        faults: args.faults,
        seed,
        timers,
        mixed: args.mixed,
        kinds: args.kinds,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        progress: !args.quiet,
        logs_to: Some(args.out.clone()),
    };
    let report = match run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ha-soak: {e:#}");
            return ExitCode::from(2);
        }
    };
    match report.write(&args.out) {
        Ok((json, md)) => eprintln!("[soak] report: {} and {}", md.display(), json.display()),
        Err(e) => eprintln!("ha-soak: cannot write the report: {e:#}"),
    }
    eprintln!(
        "[soak] seed {seed}: {} faults in {:.0} s, availability {:.3} %, {} violation(s){}",
        report.faults_run,
        report.duration_s,
        report.availability.share * 100.0,
        report.violations.len(),
        report
            .stopped_early
            .as_ref()
            .map(|w| format!(", stopped early: {w}"))
            .unwrap_or_default()
    );
    if report.violations.is_empty() && report.stopped_early.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
