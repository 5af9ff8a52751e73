//! Feeds arbitrary argument lists (NUL-separated) to `cl_status`, answering from a fixed
//! daemon snapshot as its unit tests do.
#![no_main]
#![allow(dead_code)]

#[path = "../../crates/hactl/src/client.rs"]
mod client;
#[path = "../../crates/hactl/src/cl_status.rs"]
mod cl_status;

use cl_status::{Source, run};
use client::ClientError;
use ha_control::{GroupStatus, Link, LocalNode, Packets, PeerNode, Snapshot};
use libfuzzer_sys::fuzz_target;

struct Fixed(Snapshot);

impl Source for Fixed {
    fn snapshot(&mut self) -> Result<Snapshot, ClientError> {
        Ok(self.0.clone())
    }
    fn parameter(&mut self, name: &str) -> Result<Option<String>, ClientError> {
        Ok((name == "keepalive").then(|| "500ms".to_string()))
    }
}

fn snap() -> Snapshot {
    let (held_by_me, link) = (true, "up");
    Snapshot {
        schema: 1,
        version: "0.1.0".into(),
        nodes: vec!["node1".into(), "node2".into()],
        node: LocalNode {
            name: "node1".into(),
            status: "active".into(),
            pid: 1,
            uptime_ms: 0,
            generation: 1,
            standby: false,
            shutting_down: false,
            auto_failback: "on".into(),
            keepalive_ms: 500,
            deadtime_ms: 2000,
            auth: "sha1".into(),
            realtime: None,
        },
        peer: PeerNode {
            name: "node2".into(),
            status: "active".into(),
            last_heard_ms: Some(10),
            deadtime_ms: 2000,
            generation: Some(1),
            links: vec![Link {
                name: "eth0".into(),
                status: link.into(),
                last_heard_ms: Some(10),
            }],
            rsc_hold: Some("none".into()),
            stable: Some(true),
        },
        groups: vec![GroupStatus {
            key: "IPaddr::198.18.0.100".into(),
            preferred: "node1".into(),
            state: if held_by_me { "running" } else { "stopped" }.into(),
            held_by: held_by_me.then(|| "node1".into()),
            refused_here: false,
            priority: None,
            resources: vec![],
        }],
        packets: Packets {
            sent: 0,
            received: 0,
            dropped: Default::default(),
            late: 0,
            own_name_elsewhere: 0,
            rexmit_limited: 0,
        },
        transitions: vec![],
    }
}

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let _ = run(&args, &mut Fixed(snap()));
});
