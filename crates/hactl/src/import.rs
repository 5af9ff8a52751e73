//! `hactl import keepalived`: the CLI around the `ha-import` crate.

use std::path::PathBuf;

use clap::Subcommand;

use crate::client::exit;

/// What to import from.
#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// Read keepalived.conf (and the peer's with --peer) and write ha.cf, haresources,
    /// authkeys and had.toml; what cannot be carried is listed with its line.
    Keepalived {
        /// This node's keepalived.conf.
        #[arg(default_value = "/etc/keepalived/keepalived.conf")]
        file: PathBuf,
        /// The peer's keepalived.conf: priorities, checks and addresses of both nodes.
        #[arg(long)]
        peer: Option<PathBuf>,
        /// Where to write the files (created if missing).
        #[arg(long, default_value = "had-from-keepalived")]
        out: PathBuf,
        /// This node's name (`uname -n`); default: global_defs router_id, else `node1`.
        #[arg(long)]
        node: Option<String>,
        /// The peer's name; default: its router_id, else `node2`.
        #[arg(long)]
        peer_node: Option<String>,
        /// keepalived's config id for `@id` lines (`keepalived -i`); default: the node name.
        #[arg(long)]
        config_id: Option<String>,
        /// The peer's config id; with no --peer, FILE is read a second time as the peer's.
        #[arg(long)]
        peer_config_id: Option<String>,
        /// The peer's priority, when its file is not at hand (weighted checks need it).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=255))]
        peer_priority: Option<u32>,
        /// Overwrite files already in the output directory.
        #[arg(long)]
        force: bool,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Run an import command; returns the exit code.
pub fn run(cmd: ImportCmd) -> u8 {
    let ImportCmd::Keepalived {
        file,
        peer,
        out,
        node,
        peer_node,
        config_id,
        peer_config_id,
        peer_priority,
        force,
        dry_run,
    } = cmd;
    let opts = ha_import::Options {
        file,
        peer,
        node,
        peer_node,
        config_id,
        peer_config_id,
        peer_priority,
    };
    let key = match ha_import::new_key() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("hactl: cannot read /dev/urandom for a new key: {e}");
            return exit::FAIL;
        }
    };
    let mut diags = ha_config::Diagnostics::new();
    let result = ha_import::import(&opts, &key, &mut diags);
    if !diags.is_empty() {
        eprintln!("{diags}");
    }
    print!("{}", ha_import::report(&result));
    if diags.has_errors() {
        eprintln!("hactl: nothing written: fix the errors above and run the import again");
        return exit::CONFIG;
    }
    if dry_run {
        for (name, text) in &result.files {
            println!("==> {name} <==\n{text}");
        }
        return exit::OK;
    }
    match ha_import::write(&result, &out, force) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            println!(
                "next: review the files, copy them to /etc/ha.d on BOTH nodes (same authkeys), then `hactl check --config-dir /etc/ha.d`"
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("hactl: cannot write to {}: {e}", out.display());
            exit::FAIL
        }
    }
}
