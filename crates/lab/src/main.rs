//! `ha-lab`: build, list and remove namespace labs by hand, and run the demo.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ha_lab::demo::{self, DemoOptions};
use ha_lab::record::Record;
use ha_lab::{Lab, LabOptions, find_bin};

#[derive(Parser)]
#[command(
    name = "ha-lab",
    about = "Network-namespace labs for had: whole clusters on one machine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a lab and leave it running (remove it with `ha-lab down --id ID`).
    Up {
        /// Number of nodes (node1..nodeN).
        #[arg(long, default_value_t = 2)]
        nodes: usize,
    },
    /// Remove labs recorded in /run/ha-lab.
    Down {
        /// The lab to remove.
        #[arg(long, conflicts_with_all = ["all_dead", "all"])]
        id: Option<String>,
        /// Every lab whose creating process is gone, except labs kept by `up`.
        #[arg(long)]
        all_dead: bool,
        /// Every lab whose creating process is gone, including labs kept by `up`.
        #[arg(long)]
        all: bool,
    },
    /// List recorded labs.
    List,
    /// Run the seed-002 failover scenario (crash, takeover, failback) with timings.
    Demo {
        /// The had binary (default: found next to ha-lab or in $HA_BIN_DIR).
        #[arg(long)]
        had: Option<PathBuf>,
        /// The hactl binary (default: found next to ha-lab or in $HA_BIN_DIR).
        #[arg(long)]
        hactl: Option<PathBuf>,
        /// Port of the web service on the VIP.
        #[arg(long, default_value_t = 80)]
        port: u16,
    },
    /// Run a drill scenario (etc/drills/*.toml) in a two-node lab and print its report.
    Drill {
        /// The scenario file.
        file: PathBuf,
        /// Print the report as JSON instead of Markdown.
        #[arg(long)]
        json: bool,
        /// The had binary (default: found next to ha-lab or in $HA_BIN_DIR).
        #[arg(long)]
        had: Option<PathBuf>,
        /// The hactl binary (default: found like had).
        #[arg(long)]
        hactl: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ha-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Up { nodes } => up(nodes),
        Cmd::Down { id, all_dead, all } => down(id, all_dead, all),
        Cmd::List => list(),
        Cmd::Demo { had, hactl, port } => {
            let opts = DemoOptions {
                had: had.map_or_else(|| find_bin("had"), Ok)?,
                hactl: hactl.map_or_else(|| find_bin("hactl"), Ok)?,
                port,
            };
            let report = demo::run(&opts, &mut std::io::stdout())?;
            println!("\n{}", report.table());
            if report.passed() {
                println!("demo passed");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("demo FAILED: a step missed its deadline");
                Ok(ExitCode::FAILURE)
            }
        }
        Cmd::Drill {
            file,
            json,
            had,
            hactl,
        } => drill(&file, json, had, hactl),
    }
}

/// `ha-lab drill`: progress on stderr, the report on stdout; exit 0 only if every drill passed.
fn drill(
    file: &std::path::Path,
    json: bool,
    had: Option<PathBuf>,
    hactl: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let scenario = match ha_drill::Scenario::load(file) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(6));
        }
    };
    let opts = ha_lab::drill::DrillOptions {
        had: had.map_or_else(|| find_bin("had"), Ok)?,
        hactl: hactl.map_or_else(|| find_bin("hactl"), Ok)?,
    };
    let report = ha_lab::drill::run(&scenario, &opts, &mut std::io::stderr())?;
    if json {
        println!("{}", report.json());
    } else {
        println!("{}", report.markdown());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn up(nodes: usize) -> anyhow::Result<ExitCode> {
    let lab = Lab::new(LabOptions::with_nodes(nodes))?;
    println!(
        "lab {} is up: subnet {}.0/24, dir {}",
        lab.id(),
        lab.subnet_prefix(),
        lab.dir().display()
    );
    for n in lab.nodes() {
        println!(
            "  {:<8} {:<15} netns {:<12} config {}",
            n.name(),
            n.ip().to_string(),
            n.netns(),
            n.config_dir().display()
        );
    }
    println!(
        "  {:<8} {:<15} netns {}",
        "client",
        lab.ip("client").to_string(),
        lab.client_netns()
    );
    println!(
        "  switch: bridge {} in netns {}",
        lab.bridge(),
        lab.switch_netns()
    );
    println!(
        "enter a node:  ip netns exec {} bash",
        lab.nodes()[0].netns()
    );
    println!("remove it:     ha-lab down --id {}", lab.id());
    lab.keep()?;
    Ok(ExitCode::SUCCESS)
}

fn down(id: Option<String>, all_dead: bool, all: bool) -> anyhow::Result<ExitCode> {
    let targets: Vec<Record> = match id {
        Some(id) => {
            let rec = Record::read(&id)?;
            if rec.creator_alive() {
                bail!(
                    "lab {id} belongs to running process {}; it removes the lab itself",
                    rec.pid
                );
            }
            vec![rec]
        }
        None if all_dead || all => {
            let mut v = Vec::new();
            for r in Record::list() {
                match r {
                    Ok(rec) if !rec.creator_alive() && (all || !rec.kept) => v.push(rec),
                    Ok(_) => {}
                    Err(e) => eprintln!("ha-lab: skipping: {e:#}"),
                }
            }
            v
        }
        None => bail!("say which: --id ID, --all-dead or --all (see `ha-lab list`)"),
    };
    let mut failed = false;
    for rec in &targets {
        match rec.teardown() {
            Ok(()) => println!("removed lab {}", rec.id),
            Err(e) => {
                failed = true;
                eprintln!("ha-lab: {e:#}");
            }
        }
    }
    if targets.is_empty() {
        println!("nothing to remove");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn list() -> anyhow::Result<ExitCode> {
    let records = Record::list();
    if records.is_empty() {
        println!("no labs recorded in {}", ha_lab::record::RECORD_DIR);
    }
    for r in records {
        let rec = r.context("reading a record")?;
        let state = if rec.creator_alive() {
            format!("in use by pid {}", rec.pid)
        } else if rec.kept {
            "kept (ha-lab up)".to_owned()
        } else {
            "dead run (ha-lab down --all-dead)".to_owned()
        };
        println!(
            "{}  198.18.{}.0/24  nodes {}  netns alive {}/{}  {state}",
            rec.id,
            rec.subnet,
            rec.nodes.join(","),
            rec.live_netns().len(),
            rec.netns.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
