//! `had`: the cluster daemon. Reads Heartbeat's /etc/ha.d files and runs in the foreground.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ha_agents::Resource;
use ha_config::NodeName;
use ha_daemon::daemon::{DaemonSetup, run};
use ha_daemon::groups::Groups;

/// LSB exit status "program is not configured", as Heartbeat uses for config errors.
const EXIT_NOT_CONFIGURED: u8 = 6;

#[derive(Parser, Debug)]
#[command(
    name = "had",
    version,
    about = "High-availability cluster daemon (Heartbeat-compatible)"
)]
struct Args {
    /// Stay in the foreground (always the case; accepted for Heartbeat's `-f`).
    #[arg(short = 'f', long)]
    foreground: bool,
    /// Directory with ha.cf, haresources, authkeys (and had.toml).
    #[arg(long, default_value = "/etc/ha.d")]
    config_dir: PathBuf,
    /// This node's name (default: `uname -n`).
    #[arg(long)]
    node_name: Option<String>,
    /// Where hb_uuid and hb_generation live.
    #[arg(long, default_value = "/var/lib/heartbeat")]
    state_dir: PathBuf,
    /// Runtime directory (control socket).
    #[arg(long, default_value = "/run/had")]
    run_dir: PathBuf,
    /// Control socket path (default: RUN_DIR/had.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'd', long)]
    debug: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = args.foreground;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| args.run_dir.join("had.sock"));
    let loaded = ha_config::load(&args.config_dir);
    // StrictModes: files, programs, state and run dirs that anyone but root can change.
    let unsafe_files = ha_daemon::strict::unsafe_files(
        &args.config_dir,
        loaded.as_ref().ok(),
        Some(&args.state_dir),
        socket.parent(),
    );
    for d in &unsafe_files {
        eprintln!("{d}\n");
    }
    let config = match loaded {
        Ok(c) if unsafe_files.is_empty() => c,
        Ok(_) => {
            eprintln!("had: unsafe files (see above), not started.");
            return ExitCode::from(EXIT_NOT_CONFIGURED);
        }
        Err(d) => {
            eprintln!("{d}");
            eprintln!("had: configuration error, not started.");
            return ExitCode::from(EXIT_NOT_CONFIGURED);
        }
    };
    ha_daemon::logging::init(
        config.ha_cf.logfile.as_deref(),
        config.ha_cf.logfacility.as_deref(),
        args.debug,
    );
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
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
    if let Err(d) = config.check_local_node(&local) {
        eprintln!("{d}");
        eprintln!("had: configuration error, not started.");
        return ExitCode::from(EXIT_NOT_CONFIGURED);
    }
    let peers = config.peers(&local);
    let peer = match peers.as_slice() {
        [p] => p.clone(),
        _ => {
            eprintln!(
                "had: {}: had runs two-node clusters; ha.cf lists {} node(s) besides {local}: {}",
                args.config_dir.join("ha.cf").display(),
                peers.len(),
                peers
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return ExitCode::from(EXIT_NOT_CONFIGURED);
        }
    };

    // The same environment a reload builds (reload.rs), so both resolve agents alike.
    let env = ha_daemon::reload::agent_env(&args.config_dir, &config);
    let mut keys = Vec::new();
    let mut resources = Vec::new();
    let mut bad = false;
    let hares = args.config_dir.join("haresources");
    for g in &config.haresources.groups {
        keys.push(g.key().to_string());
        let mut rs = Vec::new();
        for spec in &g.resources {
            match Resource::from_spec(spec, &env) {
                Ok(r) => rs.push(r),
                Err(e) => {
                    eprintln!(
                        "error: {}:{}: resource `{}`: {e}",
                        hares.display(),
                        g.line,
                        spec.raw
                    );
                    bad = true;
                }
            }
        }
        resources.push(rs);
    }
    if bad {
        eprintln!("had: configuration error, not started.");
        return ExitCode::from(EXIT_NOT_CONFIGURED);
    }

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
    };
    let res = rt.block_on(async move {
        ha_agents::process::init_reaper()?;
        run(setup).await
    });
    match res {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            tracing::error!("had: {e:#}");
            eprintln!("had: {e:#}");
            ExitCode::FAILURE
        }
    }
}
