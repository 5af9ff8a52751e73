//! `had`'s command line, here rather than in the daemon so that `hactl gen-docs` renders had(8)
//! and the shell completions from the same definition the daemon parses, without linking it.

use std::path::PathBuf;

use clap::Parser;

/// had's arguments.
#[derive(Parser, Debug)]
#[command(
    name = "had",
    version,
    about = "High-availability cluster daemon (Heartbeat-compatible)"
)]
pub struct Args {
    /// Stay in the foreground (always the case; accepted for Heartbeat's `-f`).
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Directory with ha.cf, haresources, authkeys (and had.toml).
    #[arg(long, default_value = "/etc/ha.d")]
    pub config_dir: PathBuf,
    /// This node's name (default: `uname -n`).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Where hb_uuid and hb_generation live.
    #[arg(long, default_value = "/var/lib/heartbeat")]
    pub state_dir: PathBuf,
    /// Runtime directory (control socket).
    #[arg(long, default_value = "/run/had")]
    pub run_dir: PathBuf,
    /// Control socket path (default: RUN_DIR/had.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Write every input and output of the node to FILE as JSON lines (no keys), for
    /// replaying a run as a test.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}
