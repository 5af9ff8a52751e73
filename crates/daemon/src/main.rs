//! `had`: the cluster daemon. Reads Heartbeat's /etc/ha.d files and runs in the foreground.

use std::process::ExitCode;

use clap::Parser;
use ha_config::{NodeName, Target};
use ha_daemon::cli::Args;
use ha_daemon::daemon::{DaemonSetup, run};
use ha_daemon::groups::Groups;
use ha_daemon::validate::{Dirs, Validated, validate};

/// LSB exit status "program is not configured", as Heartbeat uses for config errors.
const EXIT_NOT_CONFIGURED: u8 = 6;

fn main() -> ExitCode {
    one_malloc_arena();
    // The guard had starts beside itself (guard.rs): none of the daemon's start-up.
    if ha_daemon::guard::invoked_as_guard() {
        return ha_daemon::guard::main();
    }
    let args = Args::parse();
    let _ = args.foreground;
    let local = match &args.node_name {
        Some(n) => NodeName::from(n.as_str()),
        None => match ha_config::local_node_name() {
            Ok(n) => n,
            Err(e) => {
                eprintln!("had: cannot read the node name (uname -n): {e}");
                return ExitCode::from(EXIT_NOT_CONFIGURED);
            }
        },
    };
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| args.run_dir.join("had.sock"));
    // The same checks as `hactl check` on this node (StrictModes on the files, the programs,
    // the state and run dirs included): every problem is an error here.
    let dirs = Dirs {
        state: Some(&args.state_dir),
        run: socket.parent(),
    };
    let checked = match validate(&args.config_dir, &Target::here(local.clone()), &dirs) {
        Ok(v) => v,
        Err(d) => {
            eprintln!("{d}");
            eprintln!("had: configuration error, not started.");
            return ExitCode::from(EXIT_NOT_CONFIGURED);
        }
    };
    let keys = checked.keys();
    let Validated {
        mut config,
        peer,
        resources,
        ..
    } = checked;
    config.haresources.forget_spans();
    let Some(peer) = peer else {
        eprintln!("had: no peer for {local} in ha.cf");
        return ExitCode::from(EXIT_NOT_CONFIGURED);
    };
    ha_daemon::logging::init(
        config.ha_cf.logfile.as_deref(),
        config.ha_cf.debugfile.as_deref(),
        config.ha_cf.logfacility.as_deref(),
        if args.debug {
            config.ha_cf.debug.max(1)
        } else {
            config.ha_cf.debug
        },
    );
    for w in &config.warnings {
        ha_daemon::logcat::log(&ha_daemon::logcat::LogEvent::ConfigWarning {
            text: &w.to_string(),
        });
    }

    // This thread runs the loop that receives, times and sends heartbeats; the runtime
    // below and every thread and child it starts come after, at normal priority.
    ha_daemon::realtime::apply(config.ha_cf.realtime, config.ha_cf.rtprio);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("had: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let setup = DaemonSetup {
        config,
        local,
        peer,
        state_dir: args.state_dir.clone(),
        socket,
        groups: Groups::new(keys, resources),
        record: args.record.clone(),
    };
    let res = rt.block_on(async move {
        ha_agents::process::init_reaper()?;
        run(setup).await
    });
    match res {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            ha_daemon::logcat::log(&ha_daemon::logcat::LogEvent::Fatal {
                reason: &format!("{e:#}"),
            });
            eprintln!("had: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates its own arena; had's few threads allocate little,
/// so every extra arena is mostly its own first pages, resident (and locked) for nothing.
/// Must run before any thread starts.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only tunes the allocator; no thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
