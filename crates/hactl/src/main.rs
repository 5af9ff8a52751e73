//! `hactl`: talk to `had` (status, standby, takeover, cleanup) and check configs offline.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ha_daemon::control::{DEFAULT_SOCKET, Request, Response};

/// Exit codes (stable, for monitoring scripts; see docs/hactl.md).
const EXIT_FAIL: u8 = 1;
const EXIT_NOT_RUNNING: u8 = 3;
const EXIT_CONFIG: u8 = 6;

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

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Show this node, the peer, links and resource groups.
    Status {
        /// Machine-readable output (schema in docs/status-json.md).
        #[arg(long)]
        json: bool,
    },
    /// Validate a configuration directory offline (no daemon needed).
    Check {
        #[arg(long, default_value = "/etc/ha.d")]
        config_dir: PathBuf,
    },
    /// Hand every resource group to the peer (planned maintenance).
    Standby,
    /// Lift standby and failures here, so this node takes its groups again.
    Takeover,
    /// Forget resource failures on this node after fixing their cause.
    Cleanup,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { config_dir } => check(&config_dir),
        Cmd::Status { json } => match request(&cli.socket, &Request::Status) {
            Ok(resp) => match (resp.ok, resp.status) {
                (true, Some(s)) => {
                    if json {
                        match serde_json::to_string_pretty(&s) {
                            Ok(t) => println!("{t}"),
                            Err(e) => {
                                eprintln!("hactl: {e}");
                                return ExitCode::from(EXIT_FAIL);
                            }
                        }
                    } else {
                        print!("{}", s.render());
                    }
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!(
                        "hactl: {}",
                        resp.error.unwrap_or_else(|| "no status".into())
                    );
                    ExitCode::from(EXIT_FAIL)
                }
            },
            Err(code) => code,
        },
        Cmd::Standby => simple(&cli.socket, &Request::Standby),
        Cmd::Takeover => simple(&cli.socket, &Request::Takeover),
        Cmd::Cleanup => simple(&cli.socket, &Request::Cleanup),
    }
}

fn simple(socket: &Path, req: &Request) -> ExitCode {
    match request(socket, req) {
        Ok(r) if r.ok => {
            if let Some(m) = r.message {
                println!("{m}");
            }
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("hactl: {}", r.error.unwrap_or_else(|| "refused".into()));
            ExitCode::from(EXIT_FAIL)
        }
        Err(code) => code,
    }
}

fn request(socket: &Path, req: &Request) -> Result<Response, ExitCode> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        eprintln!(
            "hactl: cannot reach had at {}: {e}\n       is had running? (`--socket` selects another socket)",
            socket.display()
        );
        ExitCode::from(EXIT_NOT_RUNNING)
    })?;
    let io = |e: std::io::Error| {
        eprintln!("hactl: talking to had at {}: {e}", socket.display());
        ExitCode::from(EXIT_FAIL)
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| {
        eprintln!("hactl: {e}");
        ExitCode::from(EXIT_FAIL)
    })?;
    line.push(b'\n');
    s.write_all(&line).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).map_err(io)?;
    serde_json::from_str(&reply).map_err(|e| {
        eprintln!("hactl: unreadable answer from had: {e}");
        ExitCode::from(EXIT_FAIL)
    })
}

fn check(dir: &Path) -> ExitCode {
    match ha_config::load(dir) {
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
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprintln!("{d}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
