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
mod heartbeat;
mod http;
pub mod keepalived;
mod lab;
mod logtime;
mod netns;
mod node;
pub mod pacemaker;
pub mod record;
mod serial;
pub mod services;
pub mod vipwatch;
mod web;

use std::path::PathBuf;

pub use arp::{ArpSeen, ArpWatch};
pub use heartbeat::{HEARTBEAT_BIN, heartbeat_installed};
pub use http::{Prober, Sample, first_answer_from, http_get, max_gap, max_gap_after};
pub use lab::{Lab, LabOptions};
pub use logtime::{last_stamp, log_stamp};
pub use netns::netns_pids;
pub use node::Node;
pub use serial::PtyPair;
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

/// Ok if this process can build a lab: root, and `ip netns` works.
pub fn require_lab() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the lab needs root (network namespaces)".into());
    }
    match std::process::Command::new("ip")
        .args(["netns", "list"])
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `ip` (install iproute2): {e}")),
    }
}

/// The test gate: true if the lab can run. Otherwise panics when
/// `HA_REQUIRE_LAB=1`, else prints `SKIPPED (needs root): <test>: why` and returns false.
pub fn lab_available(test: &str) -> bool {
    match require_lab() {
        Ok(()) => true,
        Err(why) if std::env::var("HA_REQUIRE_LAB").is_ok_and(|v| v == "1") => {
            panic!("HA_REQUIRE_LAB=1 but the lab cannot run for {test}: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED (needs root): {test}: {why}");
            false
        }
    }
}
