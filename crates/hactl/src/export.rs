//! `hactl export pacemaker`: writes the Pacemaker CIB, `crm` script and `corosync.conf`
//! equivalent to a configuration directory, and prints the notes to read before switching.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ha_export::{Host, Level, NodeAddr, Options};

use crate::client::exit;

/// What to export to.
#[derive(Subcommand, Debug)]
pub enum Target {
    /// Corosync 3 + Pacemaker 2: cib.xml, crm.txt (crm configure script), corosync.conf.
    Pacemaker {
        /// The had/Heartbeat configuration to read.
        #[arg(long, default_value = "/etc/ha.d")]
        config_dir: PathBuf,
        /// Where to write the files (created if missing; existing files are replaced).
        #[arg(long, default_value = "pacemaker-export")]
        out: PathBuf,
        /// A node's address(es), one per Corosync link; repeat per node. A name not in
        /// ha.cf adds a node (Pacemaker is not limited to two).
        #[arg(long = "node", value_name = "NAME=ADDR[,ADDR]")]
        nodes: Vec<String>,
        /// Corosync's cluster_name.
        #[arg(long, default_value = "had")]
        cluster_name: String,
    },
}

/// Runs the export; 0 written, 1 not exportable or not writable, 6 configuration invalid.
pub fn run(target: Target) -> u8 {
    let Target::Pacemaker {
        config_dir,
        out,
        nodes,
        cluster_name,
    } = target;
    pacemaker(&config_dir, &out, &nodes, cluster_name)
}

fn pacemaker(config_dir: &Path, out: &Path, nodes: &[String], cluster_name: String) -> u8 {
    let config = match ha_config::load(config_dir) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("{d}");
            return exit::CONFIG;
        }
    };
    let mut parsed = Vec::new();
    for n in nodes {
        match NodeAddr::parse(n) {
            Ok(a) => parsed.push(a),
            Err(e) => {
                eprintln!("hactl: --node {e}");
                return exit::FAIL;
            }
        }
    }
    let opts = Options {
        cluster_name: Some(cluster_name),
        nodes: parsed,
        local_node: ha_config::local_node_name()
            .ok()
            .map(|n| n.as_str().to_string()),
    };
    let export = match ha_export::pacemaker(&config, &opts, &Host::for_config_dir(config_dir)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("hactl: cannot export {}: {e}", config_dir.display());
            return exit::FAIL;
        }
    };
    let written = match export.write_to(out) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("hactl: writing {}: {e}", out.display());
            return exit::FAIL;
        }
    };
    for n in &export.cluster.notes {
        let tag = ha_export::level_tag(n.level);
        let lines = ha_export::wrap(&n.text, 96 - tag.len());
        for (i, line) in lines.iter().enumerate() {
            let lead = if i == 0 {
                tag.to_string()
            } else {
                " ".repeat(tag.len())
            };
            // The loud ones go to stderr too, so a redirected stdout cannot hide them.
            if n.level == Level::Danger {
                eprintln!("{lead}{line}");
            } else {
                println!("{lead}{line}");
            }
        }
    }
    let c = &export.cluster;
    println!(
        "wrote {} ({} node(s), {} group(s), {} primitive(s))",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        c.nodes.len(),
        c.groups.len(),
        c.groups.iter().map(|g| g.primitives.len()).sum::<usize>()
    );
    exit::OK
}
