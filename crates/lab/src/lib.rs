//! ha-lab: whole clusters on one machine in network namespaces, for
//! end-to-end tests, the demo, drills and the bench (crates/bench).
//!
//! A [`Lab`] is a switch namespace holding a bridge, one namespace per node
//! (`eth0` at 198.18.n.11, .12, ...) and a client namespace (.50). Every name
//! starts with the run id; everything is removed when the `Lab` drops, and a
//! record in /run/ha-lab lets `ha-lab down` clean up after a dead run.

mod arp;
pub mod demo;
pub mod drill;
mod floor;
pub mod gate;
mod hbwatch;
mod heartbeat;
mod http;
pub mod keepalived;
mod lab;
mod logtime;
mod netns;
mod node;
pub mod pacemaker;
mod packet;
pub mod record;
mod serial;
pub mod services;
pub mod spec;
pub mod vipwatch;
mod web;

use std::path::PathBuf;

pub use arp::{ArpSeen, ArpWatch};
pub use floor::Floor;
pub use gate::{
    lab_available, lab_needs, lab_required, lab_with_heartbeat, program_installed, require_lab,
    root_available,
};
pub use hbwatch::{HbMatch, HbWatch, longest_silence};
pub use heartbeat::{HEARTBEAT_BIN, heartbeat_installed};
pub use http::{
    ProbeRate, Prober, Sample, first_answer_from, http_get, http_get_path, max_gap, max_gap_after,
};
pub use lab::{Lab, LabOptions};
pub use logtime::{last_stamp, log_stamp};
pub use netns::netns_pids;
pub use node::Node;
pub use serial::PtyPair;
pub use spec::{ClusterSpec, Group, HEARTBEAT_LOGGING, Media, Net, ha_time};
pub use vipwatch::{VipSample, VipWatch, overlaps};
pub use web::{web_script, web6_script};

/// Locates a workspace binary: `$HA_BIN_DIR/<name>`, else next to the
/// current executable (or one level up from `target/<profile>/deps/`).
pub fn find_bin(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HA_BIN_DIR") {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
        anyhow::bail!(
            "{} not found (HA_BIN_DIR is set); build it first: cargo build --bins",
            p.display()
        );
    }
    let exe = std::env::current_exe()?;
    if let Some(dir) = exe.parent() {
        let mut candidates = vec![dir.join(name)];
        if dir.file_name().is_some_and(|n| n == "deps")
            && let Some(up) = dir.parent()
        {
            candidates.push(up.join(name));
        }
        if let Some(p) = candidates.into_iter().find(|p| p.is_file()) {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "no `{name}` binary next to {}; build it first: cargo build --bins",
        exe.display()
    )
}
