//! `hactl`: talk to `had` (status, standby, takeover, reload, log, cl-status) and check
//! configs offline. Called as `cl_status` (a link to this binary) it is Heartbeat's tool.

mod cl_status;
mod client;
mod drill;
mod export;
mod gendocs;
mod import;
mod nagios;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use ha_config::validate::{Dirs, validate};
use ha_config::{NodeName, Target};
use ha_control::{DEFAULT_SOCKET, Request, Scope};

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
        /// One line for Nagios/Icinga: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, perfdata.
        #[arg(long, conflicts_with_all = ["json", "watch"])]
        nagios: bool,
    },
    /// Validate a configuration directory offline with the checks `had` makes at start.
    ///
    /// Checked as this host (`uname -n`) by default, where everything `had` would refuse is
    /// an error. With `--node-name` for another node, problems of this machine (names that do
    /// not resolve, interfaces, agents, file modes) are warnings. A directory holding an
    /// `EXAMPLE` file is checked as an example to install.
    Check {
        #[arg(long, default_value = "/etc/ha.d")]
        config_dir: PathBuf,
        /// had's state directory (hb_uuid, hb_generation, the FIFO), checked for unsafe
        /// owners, modes and links as had checks it at start.
        #[arg(long, default_value = "/var/lib/heartbeat")]
        state_dir: PathBuf,
        /// Check as this node (default: this host's name).
        #[arg(long)]
        node_name: Option<String>,
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
    /// Packaging: write man pages and shell completions under OUT (`just deb` runs it).
    #[command(name = "gen-docs", hide = true)]
    GenDocs {
        out: PathBuf,
        /// The configuration reference the file-format pages are made from.
        #[arg(long, default_value = "docs/configuration.md")]
        config_md: PathBuf,
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
            node_name,
            state_dir,
        } => check(&config_dir, node_name.as_deref(), &state_dir),
        Cmd::Status { nagios: true, .. } => nagios::status(&cli.socket),
        Cmd::Status { json, watch, .. } => status::status(&cli.socket, json, watch),
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
        Cmd::GenDocs { out, config_md } => {
            match gendocs::gen_docs(&out, &config_md, Cli::command()) {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("hactl gen-docs: {e:#}");
                    exit::FAIL
                }
            }
        }
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

/// had.toml's agent limits as `hactl check` shows them, when the file sets any.
fn agent_timeouts_line(had: &ha_config::HadToml) -> Option<String> {
    let a = &had.agent;
    if *a == ha_config::AgentTimeouts::default() && had.resources.is_empty() {
        return None;
    }
    let secs = |d: std::time::Duration| format!("{} s", d.as_secs_f64());
    let mut line = format!(
        "agent timeouts: start {}, stop {}",
        secs(a.start),
        secs(a.stop)
    );
    for r in &had.resources {
        line.push_str(&format!(
            "; {}: start {}, stop {}",
            r.name,
            secs(r.start.unwrap_or(a.start)),
            secs(r.stop.unwrap_or(a.stop))
        ));
    }
    Some(line)
}

fn check(dir: &Path, node_name: Option<&str>, state_dir: &Path) -> u8 {
    let host = ha_config::local_node_name();
    let (node, here) = match (node_name, &host) {
        (Some(n), _) => {
            let n = NodeName::from(n);
            let here = host.as_ref().is_ok_and(|h| *h == n);
            (Some(n), here)
        }
        (None, _) if ha_config::is_example(dir) => (None, false),
        (None, Ok(h)) => (Some(h.clone()), true),
        (None, Err(e)) => {
            eprintln!("hactl: cannot read this host's name (uname -n): {e}; pass --node-name");
            return exit::CONFIG;
        }
    };
    let as_what = match (&node, here, &host) {
        (Some(n), true, _) => format!("as node {n} (this host)"),
        (Some(n), false, Ok(h)) => {
            format!("for node {n} from host {h}: problems of this machine are warnings")
        }
        (Some(n), false, Err(_)) => {
            format!("for node {n} from another host: problems of this machine are warnings")
        }
        (None, _, _) => format!(
            "as an example ({} file): no node; install it before use (docs/configuration.md)",
            ha_config::EXAMPLE_MARKER
        ),
    };
    let target = Target {
        node,
        here,
        resolve: &ha_config::ha_cf::system_resolver,
    };
    let dirs = Dirs {
        state: Some(state_dir),
        run: None,
    };
    match validate(dir, &target, &dirs) {
        Ok(v) => {
            let c = &v.config;
            for w in &c.warnings {
                eprintln!("{w}");
                eprintln!();
            }
            println!(
                "{}: configuration is valid ({} node(s), {} resource group(s), {} medi{}{}), checked {as_what}",
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
            if let Some(line) = agent_timeouts_line(&c.had) {
                println!("{line}");
            }
            exit::OK
        }
        Err(d) => {
            eprintln!("{d}");
            eprintln!(
                "{}: configuration is invalid, checked {as_what}",
                dir.display()
            );
            exit::CONFIG
        }
    }
}
