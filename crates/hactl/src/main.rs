//! `hactl`: talk to `had` (status, standby, takeover, reload, log, cl-status) and check
//! configs offline. Called as `cl_status` (a link to this binary) it is Heartbeat's tool.

mod cl_status;
mod client;
mod drill;
mod export;
mod import;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ha_daemon::cluster::Scope;
use ha_daemon::control::{DEFAULT_SOCKET, Request};

use client::exit;

#[derive(Parser, Debug)]
#[command(
    name = "hactl",
    version,
    about = "Control and inspect the had cluster daemon"
)]
struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Which groups a standby or takeover covers, seen from this node.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
enum ScopeArg {
    /// Every group.
    #[default]
    All,
    /// The groups haresources prefers on this node.
    Local,
    /// The groups haresources prefers on the peer.
    Foreign,
    /// Heartbeat's word for `foreign`.
    Failback,
}

impl From<ScopeArg> for Scope {
    fn from(a: ScopeArg) -> Self {
        match a {
            ScopeArg::All => Scope::All,
            ScopeArg::Local => Scope::Local,
            ScopeArg::Foreign | ScopeArg::Failback => Scope::Foreign,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Show this node, the peer, links and resource groups.
    Status {
        /// Machine-readable output (schema in docs/status-json.md); one line per refresh.
        #[arg(long)]
        json: bool,
        /// Refresh every SECS seconds until interrupted.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
        watch: Option<f64>,
    },
    /// Validate a configuration directory offline (no daemon needed).
    Check {
        #[arg(long, default_value = "/etc/ha.d")]
        config_dir: PathBuf,
        /// had's state directory (hb_uuid, hb_generation, the FIFO), checked for unsafe
        /// owners, modes and links as had checks it at start.
        #[arg(long, default_value = "/var/lib/heartbeat")]
        state_dir: PathBuf,
    },
    /// Hand resource groups to the peer (planned maintenance); Heartbeat's hb_standby.
    Standby {
        #[arg(value_enum, default_value_t = ScopeArg::All)]
        scope: ScopeArg,
    },
    /// Take resource groups to this node (the peer stands by for them); hb_takeover.
    Takeover {
        #[arg(value_enum, default_value_t = ScopeArg::All)]
        scope: ScopeArg,
    },
    /// Forget resource failures on this node after fixing their cause.
    Cleanup,
    /// Re-read the configuration directory (as SIGHUP); an invalid one is refused.
    Reload,
    /// Recent cluster transitions with reasons and timings.
    Log {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// How many entries, newest last.
        #[arg(short = 'n', long, default_value_t = 50)]
        last: usize,
    },
    /// Run a failover drill scenario (etc/drills/*.toml) on this node, as root.
    Drill {
        /// The scenario file.
        file: PathBuf,
        /// Print the report as JSON instead of Markdown.
        #[arg(long)]
        json: bool,
        /// Where resource.d scripts are looked up when /etc/init.d has none.
        #[arg(long, default_value = "/etc/ha.d")]
        config_dir: PathBuf,
    },
    /// Write the equivalent configuration for another cluster stack.
    #[command(subcommand)]
    Export(export::Target),
    /// Convert another tool's configuration into had's files.
    #[command(subcommand)]
    Import(import::ImportCmd),
    /// Heartbeat's cl_status (also available as a `cl_status` link to hactl).
    #[command(name = "cl-status", disable_help_flag = true)]
    ClStatus {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let called = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("hactl");
    if called == "cl_status" {
        let socket = std::env::var_os("HAD_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        return cl_status_main(&socket, &argv[1..]);
    }
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Check {
            config_dir,
            state_dir,
        } => check(&config_dir, &state_dir),
        Cmd::Status { json, watch } => status::status(&cli.socket, json, watch),
        Cmd::Standby { scope } => simple(
            &cli.socket,
            &Request::Standby {
                scope: scope.into(),
            },
        ),
        Cmd::Takeover { scope } => simple(
            &cli.socket,
            &Request::Takeover {
                scope: scope.into(),
            },
        ),
        Cmd::Cleanup => simple(&cli.socket, &Request::Cleanup),
        Cmd::Reload => simple(&cli.socket, &Request::Reload),
        Cmd::Log { json, last } => status::log(&cli.socket, json, last),
        Cmd::Drill {
            file,
            json,
            config_dir,
        } => drill::drill(&cli.socket, &file, json, &config_dir),
        Cmd::Export(target) => export::run(target),
        Cmd::Import(cmd) => import::run(cmd),
        Cmd::ClStatus { args } => return cl_status_main(&cli.socket, &args),
    };
    ExitCode::from(code)
}

fn cl_status_main(socket: &Path, args: &[String]) -> ExitCode {
    let r = cl_status::run(args, &mut cl_status::SocketSource(socket));
    print!("{}", r.stdout);
    eprint!("{}", r.stderr);
    ExitCode::from(r.code)
}

fn simple(socket: &Path, req: &Request) -> u8 {
    // A reload re-reads files and a standby may wait on nothing; 30 s is generous for both.
    match client::request(socket, req, Duration::from_secs(30)) {
        Ok(r) if r.ok => {
            if let Some(m) = r.message {
                println!("{m}");
            }
            exit::OK
        }
        Ok(r) => {
            eprintln!("hactl: {}", r.error.unwrap_or_else(|| "refused".into()));
            exit::FAIL
        }
        Err(e) => {
            eprintln!("hactl: {}", e.message());
            e.code()
        }
    }
}

fn check(dir: &Path, state_dir: &Path) -> u8 {
    let loaded = ha_config::load(dir);
    let unsafe_files =
        ha_daemon::strict::unsafe_files(dir, loaded.as_ref().ok(), Some(state_dir), None);
    for d in &unsafe_files {
        eprintln!("{d}\n");
    }
    match loaded {
        Ok(c) if !unsafe_files.is_empty() => {
            for w in &c.warnings {
                eprintln!("{w}");
            }
            eprintln!(
                "{}: {} unsafe file(s): had refuses to start with them",
                dir.display(),
                unsafe_files.len()
            );
            exit::CONFIG
        }
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: configuration is valid ({} node(s), {} resource group(s), {} medi{}{})",
                dir.display(),
                c.ha_cf.nodes.len(),
                c.haresources.groups.len(),
                c.ha_cf.media.len(),
                if c.ha_cf.media.len() == 1 { "um" } else { "a" },
                if c.warnings.is_empty() {
                    String::new()
                } else {
                    format!(", {} warning(s)", c.warnings.len())
                }
            );
            exit::OK
        }
        Err(d) => {
            eprintln!("{d}");
            exit::CONFIG
        }
    }
}
